"""Issue 25, item 3: does the number of envs per member change what PPO learns per env step?

    python benchmarks/envs_per_member.py [--env Hopper-v5] [--envs 1 4 8] [--seeds 8] [--steps 5e5]
        [--curve-every 5e4] [--out benchmarks/results/envs_per_member.json]

For each ``--envs`` value N: one ``BatchedPPO`` population of ``--seeds`` members (member i has seed i; the
project's PPO defaults otherwise: 2048 env steps per update split over the member's N envs, 10 epochs,
minibatch 64, obs + reward normalisation), each member trained ``--steps`` env steps. A member's numbers do
not depend on the members beside it (README, "A member's run is its own"), so each member is one independent
seed. Recorded per member: the final return (mean undiscounted return of its last 20 finished episodes) and a
learning curve (mean return of the episodes finished in each ``--curve-every`` window); per N: mean, standard
error and median of the final returns, the area under the mean curve, and the wall time (a learning
benchmark: the returns do not depend on the machine's load, the wall times do). Between each N and the first:
a two-sided Mann-Whitney U test on the final returns (scipy.stats). The JSON is rewritten after every curve
point, so a killed run keeps what it measured.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, load_average, machine_info, write_json  # noqa: E402

LAST = 20


def run_config(env_id: str, n_envs: int, seeds: int, steps: int, every: int, record: dict, save) -> None:
    from rlpop.agents.batched_ppo import BatchedPPO

    b = BatchedPPO(env_id, [{"envs_per_actor": n_envs}] * seeds, list(range(seeds)))
    members = list(range(seeds))
    episodes: list[list[float]] = [[] for _ in members]
    record.update({"envs_per_member": n_envs, "load_before": load_average(), "curve_steps": [],
                   "curves": [[] for _ in members]})
    t0 = time.perf_counter()
    try:
        done = 0
        while done < steps:
            chunk = min(every, steps - done)
            res = b.train(members, chunk)
            done += res[0].steps
            for m in members:
                if res[m].failed:
                    raise RuntimeError(f"member {m} failed: {res[m].failed}")
                new = res[m].episode_returns
                episodes[m] += new
                record["curves"][m].append(float(np.mean(new)) if new else None)
            record["curve_steps"].append(done)
            record["wall_s"] = round(time.perf_counter() - t0, 1)
            record["final_returns"] = [float(np.mean(e[-LAST:])) if e else None for e in episodes]
            save()
            print(f"N={n_envs}: {done:,} steps/member, mean last-{LAST} return "
                  f"{np.mean([x for x in record['final_returns'] if x is not None]):.0f}", flush=True)
    finally:
        b.close()
    finals = np.asarray(record["final_returns"], float)
    mean_curve = [float(np.mean([c[i] for c in record["curves"] if c[i] is not None]))
                  for i in range(len(record["curve_steps"]))]
    record.update({"final_mean": float(finals.mean()), "final_sem": float(finals.std(ddof=1) / np.sqrt(len(finals))),
                   "final_median": float(np.median(finals)), "mean_curve": mean_curve,
                   "curve_mean": float(np.mean(mean_curve)),
                   "steps_per_s": round(steps * seeds / record["wall_s"], 1), "load_after": load_average()})


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--envs", type=int, nargs="+", default=[1, 4, 8])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=float, default=5e5)
    p.add_argument("--curve-every", type=float, default=5e4)
    p.add_argument("--out", default=str(RESULTS_DIR / "envs_per_member.json"))
    args = p.parse_args(argv)
    from scipy.stats import mannwhitneyu

    doc = {"env": args.env, "seeds": args.seeds, "steps_per_member": int(args.steps), "last_episodes": LAST,
           "machine": machine_info(), "configs": []}
    save = lambda: write_json(args.out, doc)  # noqa: E731
    for n in args.envs:
        rec: dict = {}
        doc["configs"].append(rec)
        run_config(args.env, n, args.seeds, int(args.steps), int(args.curve_every), rec, save)
        ref = doc["configs"][0]
        if rec is not ref:
            rec["vs_first"] = {"envs_per_member": ref["envs_per_member"],
                               "mean_ratio": rec["final_mean"] / ref["final_mean"],
                               "mannwhitney_p": float(mannwhitneyu(rec["final_returns"], ref["final_returns"]).pvalue)}
        save()
    for rec in doc["configs"]:
        print(f"N={rec['envs_per_member']}: final {rec['final_mean']:.0f} +- {rec['final_sem']:.0f} "
              f"(median {statistics.median(rec['final_returns']):.0f}), curve mean {rec['curve_mean']:.0f}, "
              f"{rec['steps_per_s']:,.0f} steps/s {rec.get('vs_first', '')}")
    print(f"wrote {save()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

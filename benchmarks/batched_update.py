"""The batched learner's update rate: K members in one update against one member, on the learner's device.

    python benchmarks/batched_update.py [--env Humanoid-v5] [--members 1 8 32] [--algo ppo] [--device auto]
        [--repeats 3] [--update-threads 1 2]

For each K: one rollout of every member (the learner's defaults: PPO 2048 steps over 8 envs per member),
then ``--repeats`` updates of all K members on it, timed (``torch.cuda.synchronize`` around each on a GPU).
Reported per K: seconds per update (median), member-updates per second (K / that) and the speed-up over K = 1
(``x_one_member``: how many members one batched update is worth). Collection is not timed (the env steps on the
CPU either way). With several ``--update-threads`` (CPU), the counts alternate within each repeat on the same
learner and rollout, and each record has its thread count and the process CPU seconds of an update. Writes ``benchmarks/results/batched_update_<device>.json``.

Meant for a machine with a GPU (issue 25: "run the batched learner on CUDA with 32+ Humanoid members and record
the update rate against one member's"); on the CPU it runs too, as a reference.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, Report, load_average  # noqa: E402


def time_updates(algo: str, env_id: str, k: int, device: str, repeats: int, threads: Sequence[int]) -> list[dict]:
    """One record per update-thread count; the counts alternate within each repeat (one learner, one rollout)."""
    import torch

    from rlpop.agents import batched_learner_class

    cls = batched_learner_class(algo)
    L = cls(env_id, [{"device": device, "lr": 3e-4 * (1 + i / k)} for i in range(k)], list(range(k)),
            update_threads=max(threads))
    try:
        members = list(range(k))
        ro = L.collect(members, L.hps[0]["rollout_steps"] // L.num_envs)
        sync = torch.cuda.synchronize if L.device.type == "cuda" else (lambda: None)
        L.learn(members, ro)  # warm-up (kernels, allocator, the update threads)
        times: dict[int, list[float]] = {t: [] for t in threads}
        cpu: dict[int, list[float]] = {t: [] for t in threads}
        for _ in range(repeats):
            for t in threads:
                L.update_threads = t
                sync()
                t0, c0 = time.perf_counter(), time.process_time()
                L.learn(members, ro)
                sync()
                times[t].append(time.perf_counter() - t0)
                cpu[t].append(time.process_time() - c0)
        out = []
        for t in threads:
            s = statistics.median(times[t])
            out.append({"members": k, "update_threads": t, "device": str(L.device), "update_s": round(s, 4),
                        "update_s_all": [round(x, 4) for x in times[t]],
                        "cpu_s": round(statistics.median(cpu[t]), 4),
                        "member_updates_per_s": round(k / s, 3),
                        "peak_gpu_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1)
                        if L.device.type == "cuda" else None})
        return out
    finally:
        L.close()


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--env", default="Humanoid-v5")
    ap.add_argument("--members", nargs="+", type=int, default=[1, 8, 32])
    ap.add_argument("--algo", default="ppo", choices=["ppo", "vmpo"])
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--update-threads", type=int, nargs="+", default=[1],
                    help="update thread counts to compare (CPU: members split in chunks of >= 4, one per thread)")
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    from rlpop.agents.rollout_hparams import pick_device

    device = str(pick_device(args.device))
    out = args.out or str(RESULTS_DIR / f"batched_update_{device.split(':')[0]}.json")
    report = Report(out, "batched_update", settings={"env": args.env, "algo": args.algo, "device": device,
                                                       "repeats": args.repeats,
                                                       "update_threads": args.update_threads}, runs=[])
    for k in args.members:
        for rec in time_updates(args.algo, args.env, k, args.device, args.repeats, args.update_threads):
            rec["load_before"] = load_average()
            report.doc["runs"].append(rec)
            print(rec, flush=True)
        report.save()
    one = next((r for r in report.doc["runs"] if r["members"] == 1), None)
    if one:
        for r in report.doc["runs"]:
            r["x_one_member"] = round(r["member_updates_per_s"] / one["member_updates_per_s"], 2)
    print(report.finish())
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Issue 25: does updating one half of the members while the other half collects pay on this machine?

    python benchmarks/update_overlap.py [--env Hopper-v5] [--members 8 32] [--rounds 3] [--repeats 3]

One ``BatchedPPO`` of K members (the project's defaults: one env per member, 2048-step rollouts, 10 epochs of
minibatch 64), two schedules measured alternately in the same process, ``--repeats`` times each:

- ``plain``: collect every member's rollout, then update every member (what ``BatchedLearner.train`` does);
- ``halves``: members split in halves A and B; A's update runs in a background thread while B collects, then B's
  update while A collects. Each member still collects with its latest weights (on-policy) and its numbers are the
  same as in ``plain``; only the wall time can differ.
- ``halves-process``: the same schedule with the update in ANOTHER process (no interpreter lock shared): a
  spawned worker holds its own ``BatchedPPO`` of K/2 members and one rollout of theirs, and runs one update of
  them (the same work as updating a half) each time the main process starts collecting a half. This bounds
  what moving the update to a second process could give, without building it: the main process collects
  exactly as ``halves`` does, the worker computes exactly a half's update.

Also recorded: the plain schedule's split between collecting and updating. Writes
``benchmarks/results/update_overlap.json`` with the machine, the load average before each measurement and the
rates (env steps per second over all members).
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS_DIR, load_average, machine_info, write_json  # noqa: E402


SCHEDULES = ("plain", "halves", "halves-process")


def _cpu() -> float:
    t = os.times()  # this process, every thread: the main one and EnvPool's
    return t.user + t.system


def plain(b, members, rounds, steps) -> dict:
    t0, tc, tl, cc, cl = time.perf_counter(), 0.0, 0.0, 0.0, 0.0
    for _ in range(rounds):
        a, ca = time.perf_counter(), _cpu()
        ro = b.collect(members, steps // b.num_envs)
        c, cb = time.perf_counter(), _cpu()
        b.learn(members, ro)
        tc, tl = tc + c - a, tl + time.perf_counter() - c
        cc, cl = cc + cb - ca, cl + _cpu() - cb
    wall = time.perf_counter() - t0
    n = rounds * steps * len(members)
    return {"steps_per_s": n / wall, "collect_s": tc, "update_s": tl,
            # CPU seconds (all threads) per env step: what the cores must do, however it is scheduled
            "collect_cpu_us_per_step": 1e6 * cc / n, "update_cpu_us_per_step": 1e6 * cl / n}


def halves(b, members, rounds, steps, pool) -> dict:
    A, B = members[:len(members) // 2], members[len(members) // 2:]
    t0 = time.perf_counter()
    ro_a = b.collect(A, steps // b.num_envs)
    for r in range(rounds):
        f = pool.submit(b.learn, A, ro_a)
        ro_b = b.collect(B, steps // b.num_envs)
        f.result()
        f = pool.submit(b.learn, B, ro_b)
        if r + 1 < rounds:
            ro_a = b.collect(A, steps // b.num_envs)
        f.result()
    return {"steps_per_s": rounds * steps * len(members) / (time.perf_counter() - t0)}


def _update_worker(conn, env: str, k: int) -> None:
    """``halves-process``'s worker: K members of its own and one rollout; one update per message."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # a benchmark started in the background ignores SIGINT
    import torch

    torch.set_num_threads(1)
    from rlpop.agents.batched_ppo import BatchedPPO

    b = BatchedPPO(env, [{}] * k, list(range(k)))
    try:
        members = list(range(k))
        ro = b.collect(members, b.hps[0]["rollout_steps"] // b.num_envs)
        b._learn(members, members, ro)  # warm-up
        conn.send("ready")
        while conn.recv():
            t = time.perf_counter()
            b._learn(members, members, ro)
            conn.send(time.perf_counter() - t)
    finally:
        b.close()


def halves_process(b, members, rounds, steps, conn) -> dict:
    A, B = members[:len(members) // 2], members[len(members) // 2:]
    t0, worker_s = time.perf_counter(), []
    b.collect(A, steps // b.num_envs)
    for r in range(rounds):
        conn.send(True)          # "A's update" in the worker while B collects
        b.collect(B, steps // b.num_envs)
        worker_s.append(conn.recv())
        conn.send(True)          # "B's update" while A collects
        if r + 1 < rounds:
            b.collect(A, steps // b.num_envs)
        worker_s.append(conn.recv())
    return {"steps_per_s": rounds * steps * len(members) / (time.perf_counter() - t0),
            "worker_update_s": [round(x, 3) for x in worker_s]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--members", type=int, nargs="+", default=[8, 32])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS_DIR / "update_overlap.json"))
    args = p.parse_args(argv)
    from rlpop.agents.batched_ppo import BatchedPPO

    out = {"env": args.env, "rounds": args.rounds, "repeats": args.repeats, "machine": machine_info(), "results": {}}
    pool = ThreadPoolExecutor(1)
    ctx = mp.get_context("spawn")
    for k in args.members:
        conn, child = ctx.Pipe()
        worker = ctx.Process(target=_update_worker, args=(child, args.env, k // 2), daemon=True)
        worker.start()
        if conn.recv() != "ready":
            raise RuntimeError("update worker did not start")
        b = BatchedPPO(args.env, [{}] * k, list(range(k)))
        try:
            members, steps = list(range(k)), b.hps[0]["rollout_steps"]
            b.train(members, steps)  # warm-up: pools built, first update done
            rows = []
            for rep in range(args.repeats):
                for name in SCHEDULES:
                    load = load_average()
                    res = (plain(b, members, args.rounds, steps) if name == "plain" else
                           halves(b, members, args.rounds, steps, pool) if name == "halves" else
                           halves_process(b, members, args.rounds, steps, conn))
                    rows.append({"schedule": name, "repeat": rep, "load_before": load, **res})
                    print(f"K={k} {name}: {res['steps_per_s']:,.0f} steps/s (load {load})", flush=True)
        finally:
            b.close()
            conn.send(False)
            worker.join(timeout=60)
        med = {s: statistics.median(r["steps_per_s"] for r in rows if r["schedule"] == s) for s in SCHEDULES}
        pl = [r for r in rows if r["schedule"] == "plain"]
        out["results"][str(k)] = {"measurements": rows, "median_steps_per_s": med,
                                  "halves_over_plain": med["halves"] / med["plain"],
                                  "halves_process_over_plain": med["halves-process"] / med["plain"],
                                  "plain_update_share": statistics.median(
                                      r["update_s"] / (r["update_s"] + r["collect_s"]) for r in pl)}
        print(f"K={k}: halves / plain = {med['halves'] / med['plain']:.2f}, halves-process / plain = "
              f"{med['halves-process'] / med['plain']:.2f}", flush=True)
    pool.shutdown()
    print(f"wrote {write_json(args.out, out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

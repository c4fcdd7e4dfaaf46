"""EnvPool: one pool per member (rlpop's bank) against one pool over all members.

    python benchmarks/envpool_bank.py [--env Hopper-v5] [--layouts 8x1 32x1 8x8] [--steps 2000] [--repeats 3]

Variants, all stepping the same members every step (the one-pool banks' best case) with random actions:

* ``per_member_pools``: rlpop's :class:`EnvPoolBank` (a pool of ``N`` envs per member with its default
  ``min(N, ceil(cores / K))`` C++ threads; a step sends to every pool, then receives from each);
* ``per_member_pools_n_threads``: the same with ``min(N, cores)`` threads per pool (run only where that
  differs from the default);
* ``one_pool``: the bank before issue 22 (read from git at :data:`OLD_REVISION`): one sync pool over the
  stepped members' envs, rebuilt -- every member's episodes restarted -- whenever the set changes;
* ``one_pool_async``: one async pool over all ``K*N`` envs (``batch_size=N``) that steps a subset with
  ``send(actions, env_ids)`` and ``len(subset)`` ``recv``\ s (a batch holds whichever ``N`` envs finished
  first: reassembled by env id). It keeps every member's episodes when the set changes, but the pool seeds
  env ``i`` with ``seed + i``: a member's envs depend on its place in the pool (no per-member seeds).

The variants run interleaved (A, B, C, D, then B, C, D, A, ...) in one process; each run records steps per
second of wall time and per CPU-second of the process (its C++ threads included) and the load average after
it, the report the load before and after. Writes ``benchmarks/results/envpool_bank.json``.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import RESULTS_DIR, Report, load_average  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the last revision with the one-pool bank
OLD_REVISION = "9f9c7d9"


def old_bank_class():
    """``EnvPoolBank`` as it was at :data:`OLD_REVISION` (read from git, imported under another name)."""
    src = subprocess.run(["git", "show", f"{OLD_REVISION}:agents/envbank.py"], cwd=ROOT, check=True,
                         capture_output=True, text=True).stdout
    path = Path(tempfile.mkdtemp()) / "old_envbank.py"
    path.write_text(src)
    spec = importlib.util.spec_from_file_location("old_envbank", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.EnvPoolBank


class AsyncOnePool:
    """One async EnvPool over all ``K*N`` envs (``batch_size=N``): :meth:`step` sends the stepped members'
    actions with their env ids and receives ``len(members)`` batches (the reset-slot bookkeeping as the
    banks do it, so the work compared is the same)."""

    def __init__(self, env_id: str, seeds, num_envs: int, num_threads: int | None = None):
        import os

        import envpool

        from rlpop.agents.envbank import ENVPOOL_IDS

        self.k, self.num_envs = len(seeds), num_envs
        total = self.k * num_envs
        threads = min(num_threads or len(os.sched_getaffinity(0)), total)
        self._pool = envpool.make(ENVPOOL_IDS[env_id], env_type="gymnasium", num_envs=total, batch_size=num_envs,
                                  num_threads=threads, seed=int(seeds[0]))
        self._pool.async_reset()
        obs = None
        for _ in range(self.k):
            o, _r, _te, _tr, info = self._pool.recv()
            if obs is None:
                obs = np.empty((total, *np.asarray(o).shape[1:]), np.float64)
            obs[np.asarray(info["env_id"])] = o
        self._obs = obs.reshape(self.k, num_envs, *obs.shape[1:])
        self._done = np.zeros((self.k, num_envs), bool)

    def observe(self, members):
        return self._obs[list(members)]

    def step(self, members, actions):
        members = list(members)
        n = self.num_envs
        ids = (np.asarray(members, np.int32)[:, None] * n + np.arange(n, dtype=np.int32)).ravel()
        self._pool.send(np.ascontiguousarray(actions.reshape(len(members) * n, *actions.shape[2:])), ids)
        flat_obs = self._obs.reshape(self.k * n, -1)
        rew, te, tr = (np.zeros(self.k * n, np.float64), np.zeros(self.k * n, bool), np.zeros(self.k * n, bool))
        for _ in members:
            o, r, e, t, info = self._pool.recv()
            j = np.asarray(info["env_id"])
            flat_obs[j], rew[j], te[j], tr[j] = o, r, e, t
        sel = np.asarray(members)
        was_reset = self._done[sel]
        shape = (len(members), n)
        te, tr = te[ids].reshape(shape) & ~was_reset, tr[ids].reshape(shape) & ~was_reset
        self._done[sel] = te | tr
        obs = self._obs[sel]
        return (obs, np.where(was_reset, 0.0, rew[ids].reshape(shape)), te, tr, None if not was_reset.any()
                else ~was_reset)

    def close(self) -> None:
        self._pool.close()


def rate(bank, k: int, n: int, steps: int, act_dim: int, rng: np.random.Generator) -> dict[str, float]:
    """Env steps per second of wall time, and per CPU-second of this process (its C++ threads included: less
    sensitive than wall time to what else runs on the machine)."""
    members = list(range(k))
    bank.observe(members)
    acts = rng.uniform(-1, 1, (steps + 50, k, n, act_dim)).astype(np.float32)
    for t in range(50):  # warm-up
        bank.step(members, acts[t])
    t0, c0 = time.perf_counter(), time.process_time()
    for t in range(50, steps + 50):
        bank.step(members, acts[t])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"steps_per_s": steps * k * n / wall, "steps_per_cpu_s": steps * k * n / cpu}


def main(argv=None) -> int:
    from rlpop.agents.envbank import EnvPoolBank, envpool_available

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--layouts", nargs="+", default=["8x1", "32x1", "8x8", "2x8"], help="MEMBERSxENVS")
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=str(RESULTS_DIR / "envpool_bank.json"))
    args = p.parse_args(argv)
    if not envpool_available(args.env):
        print(f"EnvPool does not provide {args.env} here", file=sys.stderr)
        return 2
    Old = old_bank_class()
    report = Report(args.out, "envpool_bank", env=args.env, steps=args.steps, repeats=args.repeats, results={})
    act_dim = int(np.prod(EnvPoolBank(args.env, [0], 1).single_action_space.shape))
    for layout in args.layouts:
        k, n = (int(x) for x in layout.split("x"))
        cores = len(os.sched_getaffinity(0))
        variants = {"per_member_pools": lambda: EnvPoolBank(args.env, list(range(k)), n),
                    "per_member_pools_n_threads": lambda: EnvPoolBank(args.env, list(range(k)), n, num_threads=cores),
                    "one_pool": lambda: Old(args.env, list(range(k)), n),
                    "one_pool_async": lambda: AsyncOnePool(args.env, list(range(k)), n)}
        probe = EnvPoolBank(args.env, list(range(k)), n)  # builds no pool before its first observe
        threads = {"per_member_pools": probe.threads,
                   "per_member_pools_n_threads": min(n, cores), "one_pool": min(k * n, cores),
                   "one_pool_async": min(k * n, cores)}
        probe.close()
        if threads["per_member_pools"] == threads["per_member_pools_n_threads"]:
            del variants["per_member_pools_n_threads"], threads["per_member_pools_n_threads"]
        runs = {name: [] for name in variants}
        names = list(variants)
        for r in range(args.repeats):
            for name in names[r % len(names):] + names[:r % len(names)]:  # each variant first once in a while
                bank = variants[name]()
                try:
                    runs[name].append({**rate(bank, k, n, args.steps, act_dim, np.random.default_rng(r)),
                                       "load_average": load_average()})
                finally:
                    bank.close()
        med = {name: float(np.median([x["steps_per_s"] for x in v])) for name, v in runs.items()}
        med_cpu = {name: float(np.median([x["steps_per_cpu_s"] for x in v])) for name, v in runs.items()}
        report.doc["results"][layout] = {
            "threads_per_pool": threads, "runs": runs, "median_steps_per_s": med,
            "median_steps_per_cpu_s": med_cpu,
            "ratio_to_one_pool": {name: v / med["one_pool"] for name, v in med.items()},
            "cpu_ratio_to_one_pool": {name: v / med_cpu["one_pool"] for name, v in med_cpu.items()}}
        report.save()
        print(layout, "steps/s", {k_: round(v) for k_, v in med.items()}, "steps/cpu-s",
              {k_: round(v) for k_, v in med_cpu.items()}, flush=True)
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

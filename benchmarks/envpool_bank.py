"""EnvPool: one pool per member (rlpop's bank) against one pool over all members (the bank before issue 22).

    python benchmarks/envpool_bank.py [--env Hopper-v5] [--layouts 8x1 32x1 8x8] [--steps 2000] [--repeats 3]

One pool over every member's envs steps them with one ``send``/``recv``, but cannot keep a member's envs when
the set of stepped members changes (it rebuilds, restarting every member's episodes) and seeds its env ``i``
with ``seed + i`` (a member's envs depend on its place in the pool). A pool per member keeps each member's
envs and seeds; it costs one ``send`` and one ``recv`` per member a step. Both step the same members every
step here (the old bank's best case), with random actions, measured interleaved (A, B, A, B, ...) in one
process; the load average is recorded before and after. Writes ``benchmarks/results/envpool_bank.json``.
"""
from __future__ import annotations

import argparse
import importlib.util
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


def rate(bank, k: int, n: int, steps: int, act_dim: int, rng: np.random.Generator) -> float:
    members = list(range(k))
    bank.observe(members)
    acts = rng.uniform(-1, 1, (steps, k, n, act_dim)).astype(np.float32)
    for t in range(50):  # warm-up
        bank.step(members, acts[t])
    t0 = time.perf_counter()
    for t in range(steps):
        bank.step(members, acts[t])
    return steps * k * n / (time.perf_counter() - t0)


def main(argv=None) -> int:
    from rlpop.agents.envbank import EnvPoolBank, envpool_available

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="Hopper-v5")
    p.add_argument("--layouts", nargs="+", default=["8x1", "32x1", "8x8"], help="MEMBERSxENVS")
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
        runs = {"per_member_pools": [], "one_pool": []}
        for r in range(args.repeats):
            for name, cls in (("per_member_pools", EnvPoolBank), ("one_pool", Old)):
                bank = cls(args.env, list(range(k)), n)
                try:
                    runs[name].append({"steps_per_s": rate(bank, k, n, args.steps, act_dim,
                                                            np.random.default_rng(r)),
                                       "load_average": load_average()})
                finally:
                    bank.close()
        med = {name: float(np.median([x["steps_per_s"] for x in v])) for name, v in runs.items()}
        report.doc["results"][layout] = {"runs": runs, "median_steps_per_s": med,
                                         "ratio_per_member_to_one_pool": med["per_member_pools"] / med["one_pool"]}
        report.save()
        print(layout, {k_: round(v) for k_, v in med.items()},
              f"ratio {med['per_member_pools'] / med['one_pool']:.3f}", flush=True)
    report.finish()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

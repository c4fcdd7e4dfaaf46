"""The Ray Tune side of ``pbt_overhead.py``: rlpop's PPO as a Tune function trainable.

The trainable does what an rlpop worker does between two Q evaluations --
``PPO.train(eval_steps)`` -- then reports Q (mean return of the episodes that
finished during the call; else of the last ``q_window`` episodes) and the
trial's env steps to Tune. It checkpoints its full learner state
(``PPO.get_state()`` via ``torch.save`` into a ``tune.Checkpoint`` directory) at
every report (``checkpoint_every="report"``) or only when its steps reach a
multiple of the PBT perturbation interval (``"ready"``: rlpop's cadence, one
checkpoint per ready interval). On (re)start it restores the newest checkpoint
Tune hands it -- its own after a pause, the donor's after an exploit -- and
then applies the (possibly mutated) ``lr`` of its config.

Every phase is timed inside the trial process and appended, one JSON line per
event (with its end time ``t``, epoch seconds), to ``<log_dir>/<pid>.jsonl``: ``boot`` (once per process: its age when
the trainable first runs in it -- Ray worker start, ``import ray``, Tune's
function-trainable wrapper), ``setup`` (imports + PPO construction; ``first``
marks a trial's first start, ``fresh`` a start in a new process),
``restore`` (checkpoint load), ``train`` (the ``PPO.train`` call only -- the
"training" of the overhead measure), ``save`` (state to disk) and ``report``
(time blocked in ``tune.report``). The benchmark sums them over all trials.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable

STATE_FILE = "state.pt"
_BOOT_FLAG = "RLPOP_BENCH_TRAINABLE_BOOTED"  # set in a process once its boot time is logged


def make_ppo_trainable(env_id: str, fixed_hparams: dict[str, Any], eval_steps: int, ready_steps: int,
                       total_steps: int, log_dir: str, checkpoint_every: str = "ready",
                       q_window: int = 10) -> Callable[[dict[str, Any]], None]:
    """A Tune function trainable running rlpop's PPO (``BatchedPPO``, one member) on ``env_id``.

    ``config`` keys: ``lr`` (mutated by PBT) and ``seed``. Raises ValueError for
    a bad ``checkpoint_every`` or non-positive step counts.
    """
    if checkpoint_every not in ("ready", "report"):
        raise ValueError(f"checkpoint_every={checkpoint_every!r}: use 'ready' (every perturbation interval, "
                         "rlpop's cadence) or 'report' (every tune.report)")
    for name, v in (("eval_steps", eval_steps), ("ready_steps", ready_steps), ("total_steps", total_steps)):
        if not isinstance(v, int) or v <= 0:
            raise ValueError(f"{name}={v!r} must be a positive integer number of env steps")
    fixed = dict(fixed_hparams)

    def ppo_trainable(config: dict[str, Any]) -> None:
        t0 = time.perf_counter()
        boot = None
        if not os.environ.get(_BOOT_FLAG):
            import psutil

            boot = max(0.0, time.time() - psutil.Process().create_time())
            os.environ[_BOOT_FLAG] = "1"
        import torch
        from ray import tune

        from rlpop.agents.batched_ppo import BatchedPPO

        t_import = time.perf_counter() - t0

        log_path = Path(log_dir) / f"{os.getpid()}.jsonl"
        trial = tune.get_context().get_trial_id()

        def log(kind: str, seconds: float, **extra: Any) -> None:
            with log_path.open("a") as f:
                f.write(json.dumps({"trial": trial, "kind": kind, "s": seconds, "t": time.time(), **extra}) + "\n")

        if boot is not None:
            log("boot", boot)
        # rlpop's PPO as a population of one (its only engine), one trial = one member
        learner = BatchedPPO(env_id, [{**fixed, "lr": float(config["lr"])}], [int(config["seed"])])
        ckpt = tune.get_checkpoint()
        log("setup", time.perf_counter() - t0, first=ckpt is None, fresh=boot is not None, imports=t_import)
        steps, recent = 0, deque(maxlen=q_window)
        if ckpt is not None:
            t = time.perf_counter()
            with ckpt.as_directory() as d:
                state = torch.load(Path(d) / STATE_FILE, weights_only=False)
            learner.set_state(0, state["learner"])
            learner.set_hparams(0, {"lr": float(config["lr"])})  # the exploit's explored lr, not the donor's
            steps = int(state["steps"])
            log("restore", time.perf_counter() - t)
        try:
            while steps < total_steps:
                t = time.perf_counter()
                res = learner.train([0], eval_steps)[0]
                dt = time.perf_counter() - t
                steps += res.steps
                log("train", dt, steps=res.steps)
                recent.extend(res.episode_returns)
                if res.episode_returns:
                    q = sum(res.episode_returns) / len(res.episode_returns)
                elif recent:
                    q = sum(recent) / len(recent)
                else:
                    q = -1e9  # PBT cannot rank NaN; no episode finished yet
                metrics = {"q": q, "steps": steps, "train_s": dt}
                at_ready = steps % ready_steps == 0 or steps >= total_steps
                if checkpoint_every == "report" or at_ready:
                    t = time.perf_counter()
                    with tempfile.TemporaryDirectory() as d:
                        torch.save({"learner": learner.get_state(0), "steps": steps}, Path(d) / STATE_FILE)
                        saved = time.perf_counter()
                        log("save", saved - t)
                        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
                        log("report", time.perf_counter() - saved)
                else:
                    t = time.perf_counter()
                    tune.report(metrics)
                    log("report", time.perf_counter() - t)
        finally:
            learner.close()

    return ppo_trainable

"""Backends carry out what the controller asks: train workers, copy state, set hparams.

* ``inline`` -- every shard in this process: deterministic for a seed. With a
  batched learner (PPO) the population is one shard (one batched policy, one
  batched update); other learners run a member at a time.
* ``ray`` -- every shard a Ray actor (GPUs requested when the cluster has
  them); copies within a shard are slice copies, across shards they move
  through Ray's object store (never the disk); ``ray.init()`` starts an
  embedded local cluster unless an address is given.

``engine``: ``"auto"`` (batched where the learner has it), ``"batched"`` or
``"member"``; ``shard_size``: members per shard (0: the backend decides);
``on_progress``: called with ``{"steps", "target", "t0"}`` during a round (progress lines); ``run_dir``: named by
the inline stall watchdog's message; ``experiment_dir``: the experiment's folder, shipped to the nodes of a
joined Ray cluster.
"""
from __future__ import annotations

from typing import Any, Callable

from rlpop.backends.base import Backend, WorkerFailure, WorkerSpec


def make_backend(name: str, address: str | None = None, engine: str = "auto", shard_size: int = 0,
                 on_progress: Callable[[dict[str, Any]], None] | None = None, run_dir: str | None = None,
                 experiment_dir: str | None = None) -> Backend:
    if name == "inline":
        from rlpop.backends.inline import InlineBackend

        return InlineBackend(engine=engine, shard_size=shard_size, on_progress=on_progress, run_dir=run_dir)
    if name == "ray":
        from rlpop.backends.ray_backend import RayBackend

        return RayBackend(address=address, engine=engine, shard_size=shard_size, on_progress=on_progress,
                          experiment_dir=experiment_dir)
    raise ValueError(f"backend={name!r}: use 'inline' or 'ray'")


__all__ = ["Backend", "WorkerSpec", "WorkerFailure", "make_backend"]

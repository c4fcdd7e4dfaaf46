"""Backends carry out what the controller asks: train workers, copy state, set hparams.

* ``inline`` -- every worker in this process, trained one after the other:
  deterministic for a seed, for tests and debugging.
* ``ray`` -- every worker a Ray actor; state copies move through Ray's object
  store (never the disk); ``ray.init()`` starts an embedded local cluster
  unless an address is given.
"""
from __future__ import annotations

from rlpop.backends.base import Backend, WorkerFailure, WorkerSpec


def make_backend(name: str, address: str | None = None) -> Backend:
    if name == "inline":
        from rlpop.backends.inline import InlineBackend

        return InlineBackend()
    if name == "ray":
        from rlpop.backends.ray_backend import RayBackend

        return RayBackend(address=address)
    raise ValueError(f"backend={name!r}: use 'inline' or 'ray'")


__all__ = ["Backend", "WorkerSpec", "WorkerFailure", "make_backend"]

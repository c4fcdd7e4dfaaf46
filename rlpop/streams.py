"""Per-member random streams: the one documented scheme that splits an experiment's seed.

A member's run is a function of (experiment seed, slot), its hyperparameters and the copies it received
alone. Nothing in it may depend on which members share its shard, how many members there are, the backend,
or what other members are doing. So every source of randomness a member uses comes from its own stream, split from the
experiment's seed with :class:`numpy.random.SeedSequence` (whose spawn keys give statistically independent
streams):

* ``member_seed(exp_seed, slot)`` -- the member's 32-bit seed: the first word of
  ``SeedSequence(exp_seed, spawn_key=(slot, 0))``. Learners receive it as their ``seed`` (32 bits, so
  stable-baselines3 and RLlib members take it as it is). A trial restart (ASHA, HyperBand) starts again
  from the slot's initial draw: the same weights and streams, with the new trial's hyperparameters.
* From a member's seed, one child per purpose, ``SeedSequence(seed, spawn_key=(PURPOSE,))``:

  ========== ======================================================================
  ``INIT``     initial weights (``torch.manual_seed`` under a forked RNG)
  ``ACTION``   action noise while collecting (one ``torch.Generator`` per member)
  ``MINIBATCH`` minibatch order (one ``numpy.random.Generator`` per member)
  ``ENV``      env seeds: reset ``r`` of the member's envs draws ``env_seeds(seed, r, n)``
  ``GROW``     fresh units of a layer that grows (``grow_generator(seed, epoch, update, layer)``)
  ========== ======================================================================

  Env seeds are 64-bit words of ``SeedSequence(seed, spawn_key=(ENV, r))``, so the envs of different
  members and of successive resets never share a seed (up to a 64-bit collision). EnvPool takes one
  31-bit seed per pool and seeds its env ``j`` with ``seed + j``: :func:`envpool_seed`.

A copy (exploit, evaluator assignment, success, the replacement of a diverged member) takes weights,
optimiser and normalisers, never the source's streams: the destination starts a fresh stream of its own, its
next *epoch* -- ``stream_seed(seed, e)`` for its ``e``-th copy received, from which all four purposes derive
as above (epoch 0 is the member seed itself). Fresh rather than continued, so what a member draws after a copy
is a function of (seed, number of copies it received) alone: ``rlpop.replay`` rebuilds it and replays a
lineage through its copies exactly. A learner keeps its streams' state under the :data:`KEY` entry of its
state; a copy drops that entry (:func:`without_streams`) before the destination loads the state, a checkpoint
keeps it, so the streams continue after ``--resume``.
"""
from __future__ import annotations

import copy

import numpy as np
import torch

INIT, ACTION, MINIBATCH, ENV, EPOCH, GROW = 0, 1, 2, 3, 4, 5
#: the entry of a learner's state that holds its streams (dropped by a copy, kept by a checkpoint)
KEY = "streams"


def without_streams(state: dict) -> dict:
    """A learner state as a copy hands it to another member: everything but the source's streams."""
    return {k: v for k, v in state.items() if k != KEY}


def member_seed(exp_seed: int, slot: int) -> int:
    """The 32-bit seed of ``slot`` in an experiment seeded ``exp_seed`` (every trial of the slot: see above)."""
    return int(np.random.SeedSequence(int(exp_seed), spawn_key=(int(slot), 0)).generate_state(1)[0])


def stream_seed(seed: int, epoch: int) -> int:
    """The seed a member's streams derive from after its ``epoch``-th copy received (0: the member seed)."""
    if int(epoch) == 0:
        return int(seed)
    return int(np.random.SeedSequence(int(seed), spawn_key=(EPOCH, int(epoch))).generate_state(1)[0])


def child(seed: int, purpose: int) -> np.random.SeedSequence:
    """The member's stream for one ``purpose`` (:data:`INIT`, :data:`ACTION`, :data:`MINIBATCH`, :data:`ENV`)."""
    return np.random.SeedSequence(int(seed), spawn_key=(int(purpose),))


def _torch_seed(ss: np.random.SeedSequence) -> int:
    """A 63-bit torch seed from a seed sequence."""
    return int(ss.generate_state(1, np.uint64)[0] >> np.uint64(1))


def torch_seed(seed: int, purpose: int) -> int:
    """A 63-bit torch seed for the member's ``purpose``."""
    return _torch_seed(child(seed, purpose))


def init_seed(seed: int) -> int:
    """The seed the member's initial weights are drawn under."""
    return torch_seed(seed, INIT)


def grow_generator(seed: int, epoch: int, update: int, layer: int) -> torch.Generator:
    """The generator of the fresh units a member's hidden ``layer`` gets when it grows (rlpop.agents.widths)
    at its ``update``-th update of stream ``epoch``: a function of the member's own history only."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(GROW, int(epoch), int(update), int(layer)))
    return torch.Generator().manual_seed(_torch_seed(ss))


def action_generator(seed: int) -> torch.Generator:
    """The member's action-noise generator (CPU)."""
    return torch.Generator().manual_seed(torch_seed(seed, ACTION))


def minibatch_rng(seed: int) -> np.random.Generator:
    """The member's minibatch-order generator."""
    return np.random.default_rng(child(seed, MINIBATCH))


def env_seeds(seed: int, reset: int, n: int) -> list[int]:
    """Seeds of the member's ``n`` envs at its ``reset``-th reset (0 = the first)."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(ENV, int(reset)))
    return [int(x) for x in ss.generate_state(n, np.uint64)]


def envpool_seed(seed: int, reset: int, n: int) -> int:
    """EnvPool's pool seed for the member's ``n`` envs at build ``reset`` (env ``j`` gets ``seed + j``)."""
    ss = np.random.SeedSequence(int(seed), spawn_key=(ENV, int(reset)))
    return int(ss.generate_state(1)[0] % np.uint32(2**31 - 1 - n))


def rng_state(rng: np.random.Generator) -> dict:
    """A numpy generator's state (plain data)."""
    return copy.deepcopy(rng.bit_generator.state)


def set_rng_state(rng: np.random.Generator, state: dict) -> None:
    rng.bit_generator.state = copy.deepcopy(state)


def generator_state(g: torch.Generator) -> torch.Tensor:
    """A torch generator's state (a uint8 tensor: plain checkpoint data)."""
    return g.get_state().clone()


def set_generator_state(g: torch.Generator, state: torch.Tensor) -> None:
    g.set_state(torch.as_tensor(state, dtype=torch.uint8).clone())

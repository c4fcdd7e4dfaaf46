"""Population strategies: decide, never do (see ``base.Strategy``).

Each is built from its spec in :mod:`rlpop.experiment` (what an experiment file writes: ``PBT`` builds
``PBTStrategy``, with the spec's fields as its keyword arguments)."""
from rlpop.strategies.asha import ASHAStrategy, rung_milestones
from rlpop.strategies.base import Strategy
from rlpop.strategies.fire import Assignment, FIREStrategy, parent_fitness
from rlpop.strategies.pb2 import PB2Strategy
from rlpop.strategies.pbt import PBTStrategy, truncation_count, truncation_pairs
from rlpop.strategies.random_search import RandomSearchStrategy
from rlpop.strategies.replay import ReplayStrategy
from rlpop.strategies.samplers import OptunaSampler, RandomSampler, make_sampler

__all__ = ["ASHAStrategy", "Assignment", "FIREStrategy", "OptunaSampler", "PB2Strategy", "PBTStrategy",
           "RandomSampler", "RandomSearchStrategy", "ReplayStrategy", "Strategy", "make_sampler", "parent_fitness",
           "rung_milestones", "truncation_count", "truncation_pairs"]

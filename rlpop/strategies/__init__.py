"""Population strategies: decide, never do (see ``base.Strategy``)."""
from rlpop.strategies.asha import ASHA, rung_milestones
from rlpop.strategies.base import Strategy
from rlpop.strategies.fire import Assignment, FirePBT, parent_fitness
from rlpop.strategies.pb2 import PB2
from rlpop.strategies.pbt import PBT, truncation_count, truncation_pairs
from rlpop.strategies.random_search import RandomSearch
from rlpop.strategies.samplers import OptunaSampler, RandomSampler, make_sampler

__all__ = ["ASHA", "Assignment", "FirePBT", "OptunaSampler", "PB2", "PBT", "RandomSampler", "RandomSearch",
           "Strategy", "make_sampler", "parent_fitness", "rung_milestones", "truncation_count", "truncation_pairs"]

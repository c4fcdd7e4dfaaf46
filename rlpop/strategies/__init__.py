"""Population strategies: decide, never do (see ``base.Strategy``)."""
from rlpop.strategies.base import Strategy
from rlpop.strategies.fire import Assignment, FirePBT, parent_fitness
from rlpop.strategies.pbt import PBT, truncation_count, truncation_pairs
from rlpop.strategies.random_search import RandomSearch

__all__ = ["Assignment", "FirePBT", "PBT", "RandomSearch", "Strategy", "parent_fitness", "truncation_count",
           "truncation_pairs"]

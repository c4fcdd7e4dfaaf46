"""Random search: every worker samples its hyperparameters once and keeps them."""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from rlpop.decisions import Decision
from rlpop.hparams import HParamSpace
from rlpop.view import MEMBER, PopulationView, WorkerSlot


def check_space(space: Any, owner: str) -> None:
    """``ValueError`` unless ``space`` is an ``HParamSpace``."""
    if not isinstance(space, HParamSpace):
        raise ValueError(f"{owner}: space must be an HParamSpace (got {type(space).__name__}); "
                         "wrap the dict: HParamSpace({'lr': LogUniform(1e-5, 1e-3), ...})")


def check_int(value: Any, name: str, owner: str, minimum: int) -> int:
    """``value`` as an int >= ``minimum``, else ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{owner}: {name}={value!r} must be an integer >= {minimum}")
    return int(value)


def initial_draws(space: HParamSpace, n_workers: int, seed: int) -> list[dict[str, Any]]:
    """Initial hyperparameters of workers 0..n-1, drawn up front from a stream
    of their own (seed, 0), so ``initial_hparams`` neither depends on the order
    it is called in nor consumes the decision rng."""
    rng = np.random.default_rng([seed, 0])
    return [space.sample(rng) for _ in range(n_workers)]


class RandomSearch:
    """RS (paper section 4): ``population_size`` members in one sub-population,
    hyperparameters sampled once from the space; ``decide`` never acts."""

    def __init__(self, space: HParamSpace, population_size: int, seed: int = 0) -> None:
        check_space(space, "RandomSearch")
        self.space = space
        self.population_size = check_int(population_size, "population_size", "RandomSearch", 1)
        self.seed = check_int(seed, "seed", "RandomSearch", 0)
        self._initial = initial_draws(space, self.population_size, self.seed)

    def layout(self) -> Sequence[WorkerSlot]:
        return [WorkerSlot(i, MEMBER, 1) for i in range(self.population_size)]

    def initial_hparams(self, worker: WorkerSlot) -> dict[str, Any]:
        return dict(self._initial[worker.id])

    def decide(self, view: PopulationView) -> list[Decision]:
        return []

    def get_state(self) -> dict[str, Any]:
        return {"strategy": "random_search"}

    def set_state(self, state: dict[str, Any]) -> None:
        if state.get("strategy") != "random_search":
            raise ValueError(f"RandomSearch.set_state: state is for strategy {state.get('strategy')!r}, "
                             "not 'random_search'; resume with the strategy the run was started with")

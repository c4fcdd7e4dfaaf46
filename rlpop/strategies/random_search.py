"""Random search: every worker samples its hyperparameters once and keeps them."""
from __future__ import annotations

from typing import Any, Sequence

from rlpop.decisions import Decision
from rlpop.hparams import HParamSpace
from rlpop.strategies.common import check_int, check_space, check_state_kind, initial_draws
from rlpop.view import MEMBER, PopulationView, WorkerSlot


class RandomSearchStrategy:
    """RS (paper section 4): ``population`` members in one sub-population,
    hyperparameters sampled once from the space; ``decide`` never acts."""

    def __init__(self, space: HParamSpace, population: int, seed: int = 0) -> None:
        check_space(space, "RandomSearch")
        self.space = space
        self.population = check_int(population, "population", "RandomSearch", 1)
        self.seed = check_int(seed, "seed", "RandomSearch", 0)
        self._initial = initial_draws(space, self.population, self.seed)

    def layout(self) -> Sequence[WorkerSlot]:
        return [WorkerSlot(i, MEMBER, 1) for i in range(self.population)]

    def initial_hparams(self, worker: WorkerSlot) -> dict[str, Any]:
        return dict(self._initial[worker.id])

    def decide(self, view: PopulationView) -> list[Decision]:
        return []

    def replacement(self, view: PopulationView, worker: int) -> None:
        """A diverged worker copies no peer here: the controller rebuilds it from its last checkpoint."""
        return None

    def get_state(self) -> dict[str, Any]:
        return {"strategy": "random_search"}

    def set_state(self, state: dict[str, Any]) -> None:
        check_state_kind(state, "random_search", "RandomSearch")

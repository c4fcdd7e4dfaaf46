"""Replay: one worker follows a fixed hyperparameter schedule from step 0 (the paper's "replay", Table 1).

The schedule is a list of ``(step, hparams)`` pairs, sorted by step, the first at step 0: from actor step
``step`` of the worker on, it trains with ``hparams`` (the searched ones; the rest come from
``agent.hparams``). ``decide`` emits one :class:`~rlpop.decisions.Explore` each time the worker reaches a step
where the schedule changes a value, so the change is logged in decisions.jsonl like any explore and shows in
curves.csv from the next Q row on. Nothing is copied: one fresh agent trains the whole schedule.

It is built from the spec :class:`rlpop.experiment.Replay` (``method`` ``"replay"``).
"""
from __future__ import annotations

from typing import Any, Sequence

from rlpop.decisions import Decision, Explore, FollowCopy
from rlpop.hparams import HParamSpace, format_value
from rlpop.strategies.common import check_state_kind
from rlpop.view import MEMBER, PopulationView, WorkerSlot

Schedule = Sequence[tuple[int, dict[str, Any]]]


def normalise_schedule(schedule: Schedule) -> list[tuple[int, dict[str, Any]]]:
    """Sorted ``(step, hparams)`` pairs with the first at step 0 and only the steps where a value changes.
    ``ValueError`` naming what is wrong otherwise."""
    items = []
    for entry in schedule:
        try:
            step, hp = entry
        except (TypeError, ValueError):
            raise ValueError(f"replay schedule entry {entry!r}: give (step, {{name: value}})") from None
        if isinstance(step, bool) or not float(step).is_integer() or step < 0:
            raise ValueError(f"replay schedule step {step!r} must be an integer >= 0")
        if not isinstance(hp, dict):
            raise ValueError(f"replay schedule at step {step}: hparams {hp!r} must be a dict name -> value")
        items.append((int(step), dict(hp)))
    if not items:
        raise ValueError("replay schedule is empty: give at least (0, {name: value})")
    items.sort(key=lambda e: e[0])
    if items[0][0] != 0:
        raise ValueError(f"replay schedule starts at step {items[0][0]}: its first entry must be at step 0")
    out = [items[0]]
    for step, hp in items[1:]:
        if step == out[-1][0]:
            raise ValueError(f"replay schedule has two entries at step {step}")
        if hp != out[-1][1]:
            out.append((step, hp))
    return out


class ReplayStrategy:
    """The strategy: worker ``worker`` (one member, sub-population 1) with the schedule's hparams."""

    def __init__(self, space: HParamSpace, schedule: Schedule, worker: int = 0,
                 follow: Sequence[Sequence[int]] = ()) -> None:
        self.space = space
        self.schedule = normalise_schedule(schedule)
        self.worker = int(worker)
        #: step -> (worker, epoch): where the traced lineage passed into a copy's destination
        self.follow = {int(s): (int(w), int(e)) for s, w, e in follow}
        unknown = sorted({k for _, hp in self.schedule for k in hp} - set(space.names))
        if unknown:
            raise ValueError(f"replay schedule sets {unknown}, which the run's space does not search "
                             f"(space: {list(space.names)})")

    def hparams_at(self, step: int) -> dict[str, Any]:
        """The hparams the schedule trains with from ``step`` on."""
        cur = self.schedule[0][1]
        for s, hp in self.schedule:
            if s <= step:
                cur = hp
        return dict(cur)

    def layout(self) -> Sequence[WorkerSlot]:
        return [WorkerSlot(self.worker, MEMBER, 1)]

    def initial_hparams(self, worker: WorkerSlot) -> dict[str, Any]:
        return dict(self.schedule[0][1])

    def decide(self, view: PopulationView) -> list[Decision]:
        w = view[self.worker]
        if not w.alive:
            return []
        out: list[Decision] = []
        if w.steps in self.follow:
            like, epoch = self.follow[w.steps]
            out.append(FollowCopy(worker=self.worker, like=like, epoch=epoch))
        want = self.hparams_at(w.steps)
        new = {k: v for k, v in want.items() if w.hparams.get(k) != v}
        if new:
            changes = {k: f"{format_value(w.hparams.get(k))} --(replay step {w.steps})--> {format_value(v)}"
                       for k, v in new.items()}
            out.append(Explore(dst=self.worker, hparams=new, changes=changes))
        return out

    def replacement(self, view: PopulationView, worker: int) -> None:
        """A diverged worker copies no peer here: the controller rebuilds it from its last checkpoint."""
        return None

    def get_state(self) -> dict[str, Any]:
        return {"strategy": "replay"}  # decisions depend only on the worker's steps and hparams

    def set_state(self, state: dict[str, Any]) -> None:
        check_state_kind(state, "replay", "Replay")


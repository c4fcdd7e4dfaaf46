"""Trial-based decisions in the controller: a slot restarted with a new configuration, a slot stopped for good,
the budget counted over every trial, the logs, and resume."""
import json

import numpy as np
import pandas as pd

from rlpop.backends.inline import InlineBackend
from rlpop.controller import Controller
from rlpop.decisions import RestartTrial, StopTrial
from rlpop.experiment import Agent, Experiment, RandomSearch
from rlpop.hparams import LogUniform
from rlpop.store import RunDir


class Scripted:
    """A strategy that restarts w0 with lr 0.5 after round 2 and stops w1 after round 3."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    def layout(self):
        return self.inner.layout()

    def initial_hparams(self, slot):
        return self.inner.initial_hparams(slot)

    def decide(self, view):
        self.calls += 1
        if self.calls == 2:
            return [RestartTrial(worker=0, hparams={"lr": 0.5}, reason="cut at rung 0")]
        if self.calls == 3:
            return [StopTrial(worker=1, reason="no more configurations")]
        return []

    def get_state(self):
        return {"calls": self.calls}

    def set_state(self, state):
        self.calls = state["calls"]


def toy(total=100):
    return Experiment(name="trials", env=None, agent=Agent("toy"), space={"lr": LogUniform(0.05, 0.2)},
                      strategy=RandomSearch(population=3), total_steps=total, eval_steps=10, seed=1)


def run_scripted(tmp_path, total=100):
    ctl = Controller(toy(total), RunDir.create(tmp_path, "t"), InlineBackend())
    ctl.strategy = Scripted(ctl.strategy)
    ctl.start()
    try:
        ctl.run()
    finally:
        ctl.backend.close()
    return ctl


def test_a_restarted_slot_starts_afresh_and_its_budget_counts_every_trial(tmp_path):
    ctl = run_scripted(tmp_path)
    w0, w1, w2 = (ctl.records[i] for i in range(3))
    # w0: 20 steps in trial 0, then a new trial trained to the slot's budget of 100 steps in all
    assert (w0.trial, w0.spent, w0.steps, w0.used) == (1, 20, 80, 100)
    assert w0.hparams == {"lr": 0.5}
    # w1: stopped for good after 30 steps; w2 untouched
    assert w1.stopped and w1.steps == 30 and w2.steps == 100 and not w2.stopped
    assert ctl.done() and ctl.round == 10

    curves = pd.read_csv(ctl.run_dir.path / "curves.csv")
    c0 = curves[curves.worker == 0]
    assert c0.step.tolist() == [10, 20] + list(range(10, 90, 10))  # the new trial's curve starts again
    assert np.allclose(c0.hp_lr.iloc[2:], 0.5)
    assert curves[curves.worker == 1].step.max() == 30

    log = (ctl.run_dir.path / "decisions.log").read_text()
    assert "w0 new trial (Q was" in log and "cut at rung 0 | lr=0.5" in log
    assert "w1 trial stops (Q=" in log and "no more configurations" in log
    kinds = [json.loads(ln)["kind"] for ln in (ctl.run_dir.path / "decisions.jsonl").read_text().splitlines()]
    assert kinds == ["restart_trial", "stop_trial"]
    assert ctl.counts["restart_trial"] == 1 and ctl.counts["stop_trial"] == 1
    last = ctl.round_finished()
    assert last.env_steps == 100 + 30 + 100 and last.fraction_done == 1.0


def test_a_restarted_trial_has_new_weights_not_the_old_trials(tmp_path):
    ctl = Controller(toy(), RunDir.create(tmp_path, "w"), InlineBackend())
    ctl.strategy = Scripted(ctl.strategy)
    ctl.start()
    try:
        ctl.step_round()
        before = ctl.backend.get_states([0])[0]
        ctl.step_round()  # the restart of w0 is applied at the end of this round
        after = ctl.backend.get_states([0])[0]
        fresh = Controller(toy(), RunDir.create(tmp_path, "f"), InlineBackend())
        fresh.start()
        initial = fresh.backend.get_states([0])[0]
        fresh.backend.close()
    finally:
        ctl.backend.close()
    assert after["steps"] == 0 and before["steps"] == 10
    assert np.allclose(np.asarray(after["learner"]["w"]), np.asarray(initial["learner"]["w"]))
    assert not np.allclose(np.asarray(before["learner"]["w"]), np.asarray(initial["learner"]["w"]))


def test_a_run_with_restarts_resumes_to_the_same_end(tmp_path):
    whole = run_scripted(tmp_path / "a")
    ctl = Controller(toy(), RunDir.create(tmp_path / "b", "t"), InlineBackend())
    ctl.strategy = Scripted(ctl.strategy)
    ctl.start()
    for _ in range(4):  # past the restart and the stop; a checkpoint every 5 rounds (5% of the budget x 10)
        ctl.step_round()
    ctl.checkpoint()
    ctl.backend.close()
    _, payload, _ = ctl.run_dir.load_latest_checkpoint()
    again = Controller(toy(), ctl.run_dir, InlineBackend())
    again.strategy = Scripted(again.strategy)
    again.start()
    try:
        again.resume(payload)
        again.run()
    finally:
        again.backend.close()
    for i in range(3):
        a, b = whole.records[i], again.records[i]
        assert (a.trial, a.spent, a.steps, a.stopped, a.hparams) == (b.trial, b.spent, b.steps, b.stopped, b.hparams)
        assert a.curve_q == b.curve_q

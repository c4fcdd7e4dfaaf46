"""The controller's event seam: what listeners hear, in what order, and that it matches the run directory."""
import dataclasses
import json

import pytest

from rlpop.backends.inline import InlineBackend
from rlpop.controller import Controller
from rlpop.events import (CheckpointSaved, DecisionApplied, RoundFinished, RunStarted, WorkerFailed,
                          stderr_failures)
from rlpop.experiment import FIRE, Agent, Experiment
from rlpop.hparams import LogUniform
from rlpop.progress import end_summary, summary_line, table
from rlpop.store import RunDir


def toy_fire(**kw) -> Experiment:
    return Experiment(name="ev", env=None, agent=Agent("toy"),
                      space={"lr": LogUniform(0.05, 1.0, factors=(0.5, 0.8, 1.25, 2.0), bounds=(1e-4, 1.5))},
                      strategy=FIRE(subpops=2, subpop_size=4, evaluators=3, ready_steps=40, max_eval_steps=200,
                                    min_steps_before_eval=(80,)),
                      total_steps=400, eval_steps=20, **kw)


@pytest.fixture()
def heard(tmp_path):
    ctl = Controller(toy_fire(), RunDir.create(tmp_path, "ev"), InlineBackend())
    events = []
    ctl.subscribe(events.append)
    ctl.start()
    try:
        ctl.run()
    finally:
        ctl.backend.close()
    return ctl, events


def test_listeners_hear_the_run_in_order_and_it_matches_the_run_directory(heard):
    ctl, events = heard
    assert isinstance(events[0], RunStarted) and events[0].round == 0 and not events[0].resumed
    rounds = [e for e in events if isinstance(e, RoundFinished)]
    assert [e.round for e in rounds] == list(range(1, ctl.round + 1))
    assert rounds[-1].done and not any(e.done for e in rounds[:-1])

    # every decision of decisions.jsonl was heard, with the same record and sentence, in the same order
    applied = [e for e in events if isinstance(e, DecisionApplied)]
    logged = [json.loads(ln) for ln in (ctl.run_dir.path / "decisions.jsonl").read_text().splitlines()]
    assert len(applied) == len(logged) > 0
    for e, rec in zip(applied, logged):
        assert e.record["kind"] == rec["kind"] == e.decision.kind
        assert rec["text"].endswith(e.text)
    assert {e.decision.kind for e in applied} >= {"exploit", "explore", "assign", "stop"}

    # a round's decisions are announced before the round that took them finishes
    for r in rounds:
        mine = [e for e in applied if e.round == r.round]
        assert [e.decision for e in mine] == list(r.decisions)

    # the counts a display shows are the decisions heard
    kinds = [e.decision.kind for e in applied]
    assert rounds[-1].counts["exploit"] == kinds.count("exploit")
    assert rounds[-1].counts["assign"] == kinds.count("assign")

    # one CheckpointSaved per checkpoint file written (round 0 included)
    saved = [e.round for e in events if isinstance(e, CheckpointSaved)]
    assert saved[0] == 0 and saved[-1] == ctl.round and len(saved) == len(set(saved))


def test_round_records_carry_the_population_and_timings(heard):
    ctl, events = heard
    last = [e for e in events if isinstance(e, RoundFinished)][-1]
    assert set(last.timings) == {"train", "record", "decide", "apply", "checkpoint"}
    assert all(v >= 0 for v in last.timings.values())
    assert last.timings["checkpoint"] > 0  # the last round always checkpoints
    by_id = {w.id: w for w in last.workers}
    for r in ctl.records.values():
        assert (by_id[r.id].steps, by_id[r.id].q, dict(by_id[r.id].hparams)) == (r.steps, r.q, r.hparams)
    assert last.env_steps == sum(r.steps for r in ctl.records.values())
    assert last.fraction_done == 1.0
    assert last.best_q == max(r.q for r in ctl.records.values() if r.role == "member")
    with pytest.raises(dataclasses.FrozenInstanceError):
        last.round = 0  # a listener cannot change what others hear


def test_the_display_reads_only_the_records(heard):
    ctl, events = heard
    last = [e for e in events if isinstance(e, RoundFinished)][-1]
    line = summary_line(last)
    assert f"round {last.round:>5}" in line and "100.0%" in line
    assert table(last).row_count == len(last.workers)
    text = end_summary(last)
    assert f"finished: {last.round} rounds" in text and str(ctl.run_dir.path) in text


def test_failures_are_heard_and_the_console_listener_can_be_replaced(tmp_path, capsys):
    import sys

    from test_failures import diverging_pbt  # one member diverges at lr >= 1

    exp = diverging_pbt(tmp_path, "div_ev")
    try:
        ctl = Controller(exp, RunDir.create(tmp_path / "runs", "div"), InlineBackend())
        assert stderr_failures in ctl.listeners
        heard = []
        ctl.subscribe(heard.append)
        ctl.start()
        ctl.step_round()
        ctl.backend.close()
        failed = [e for e in heard if isinstance(e, WorkerFailed)]
        assert failed and failed[0].action == "replaced" and "non-finite" in failed[0].reason
        assert failed[0].kind == "diverged" and failed[0].reason == "diverged: non-finite loss after an update"
        assert f"round 1: {failed[0].text}" in capsys.readouterr().err  # the default console listener

        ctl2 = Controller(exp, RunDir.create(tmp_path / "runs", "div2"), InlineBackend())
        heard2 = []
        ctl2.subscribe(heard2.append, replace_console=True)
        ctl2.start()
        ctl2.step_round()
        ctl2.backend.close()
        failed2 = [e for e in heard2 if isinstance(e, WorkerFailed)]
        assert failed2 and failed2[0].text == failed[0].text  # the same failure, heard by the listener ...
        assert "FAILED" not in capsys.readouterr().err  # ... and not printed
    finally:
        sys.path.remove(str(tmp_path))


def test_a_failure_says_its_kind_and_its_reason_in_one_line():
    import traceback

    from rlpop.agents.envbank import BankError
    from rlpop.worker import WorkerFailure

    def caught(exc: Exception) -> WorkerFailure:
        try:
            raise exc
        except Exception as e:  # noqa: BLE001
            return WorkerFailure.caught(3, e, traceback.format_exc())

    f = caught(ValueError("bad\nvalue"))
    assert (f.worker, f.kind, f.reason) == (3, "raised", "ValueError: bad value") and "Traceback" in f.detail
    remote = "env process 0 for env 'X' failed:\nTraceback (most recent call last):\n  ...\nKeyError: 'obs'"
    assert (caught(BankError(remote)).kind, caught(BankError(remote)).reason) == ("env_failed", "KeyError: 'obs'")
    assert WorkerFailure.learner(1, "diverged: non-finite loss").kind == "diverged"
    nan_env = WorkerFailure.learner(1, "env 'X' returned a non-finite observation (NaN or inf); fix the env")
    assert nan_env.kind == "env_failed" and nan_env.reason.startswith("env 'X' returned")
    assert WorkerFailure.of(2, "stalled", "stalled: no result within worker_timeout_s=5s").reason.startswith("stalled")

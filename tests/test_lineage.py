"""Lineage tracing on a scripted run directory, and on a real toy FIRE run."""
import json

import pandas as pd

from conftest import ROOT
from rlpop.lineage import trace_schedule
from rlpop.run import execute, load_experiment
from rlpop.store import RunDir


def _write_run(path, rows, decisions):
    pd.DataFrame(rows).to_csv(path / "curves.csv", index=False)
    (path / "decisions.jsonl").write_text("".join(json.dumps(d) + "\n" for d in decisions))


def test_schedule_follows_exploits_successes_and_assignments(tmp_path):
    # 3 members (0,1 in P1; 2 in P2) + evaluator 3; 10 steps per round
    rows = []
    lr = {0: 0.1, 1: 0.2, 2: 0.9, 3: None}
    for rnd in range(1, 7):
        if rnd == 3:
            lr[3] = lr[0]  # round 2 decisions: evaluator 3 <- weights of 2, hparams of target 0
        if rnd == 5:
            lr[1] = 0.05  # round 4: 1 <- 0 then explore
        for w in (0, 1, 2, 3):
            if w == 3 and rnd < 3:
                continue
            step = rnd * 10 if w != 3 else (rnd - 2) * 10
            rows.append({"round": rnd, "worker": w, "role": "evaluator" if w == 3 else "member",
                         "subpop": {0: 1, 1: 1, 2: 2}.get(w), "step": step, "q": float(rnd + w), "hp_lr": lr[w]})
    decisions = [
        {"kind": "assign", "evaluator": 3, "parent": 2, "child": 0, "round": 2},
        {"kind": "success", "evaluator": 3, "child": 0, "p_value": 0.001, "score_diff": 1.0, "round": 4},
        {"kind": "exploit", "src": 0, "dst": 1, "round": 4},  # after the success: 1 gets 3's weights via 0
        {"kind": "explore", "dst": 1, "hparams": {"lr": 0.05}, "round": 4},
    ]
    _write_run(tmp_path, rows, decisions)
    sched = trace_schedule(tmp_path, worker=1)
    assert list(zip(sched.worker, sched["round"])) == [(2, 1), (2, 2), (3, 3), (3, 4), (1, 5), (1, 6)]
    assert list(sched.hp_lr) == [0.9, 0.9, 0.1, 0.1, 0.05, 0.05]
    assert list(sched.lineage_step) == [10, 20, 30, 40, 50, 60]
    assert sched.via.tolist()[1] == "assign round 2: w3 <- w2"
    assert sched.via.tolist()[3] == "success round 4: w0 <- w3"  # 0 got 3's weights, then 1 copied 0
    # worker 0's lineage also goes through the evaluator (success), but 0 keeps training after it
    sched0 = trace_schedule(tmp_path, worker=0)
    assert list(sched0.worker) == [2, 2, 3, 3, 0, 0]


def test_best_member_of_a_toy_fire_run_traces_back_to_step_zero(tmp_path):
    exp = load_experiment(ROOT / "experiments" / "toy_fire.py").with_overrides({"total_steps": "1500"})
    run = RunDir.create(tmp_path, "fire")
    execute(exp, run, "inline", quiet=True)
    sched = trace_schedule(run.path)
    assert sched.lineage_step.iloc[0] == exp.eval_steps
    assert sched.lineage_step.diff().dropna().eq(exp.eval_steps).all()  # no gap, no overlap
    assert sched.lineage_step.iloc[-1] >= 1500

"""benchmarks/study.py's pure parts: settings from the budget, a run's JSON record from a small synthetic run
directory, finished / unfinished / missing detection, and a sitting's skip / resume / start order (with stand-in
commands, no training)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import study_results  # noqa: E402
import study_runs  # noqa: E402
import study_settings as ss  # noqa: E402


# --------------------------------------------------------------------------- settings
def test_settings_keep_the_paper_ratios_rounded_to_rollouts():
    s = ss.derive("Walker2d-v5", "ppo", 22, 500_000)
    assert s["env_key"] == "walker2d" and s["rollout_steps"] == 2048
    assert s["ready_steps"] == 6144 == s["eval_steps"]          # 5,000 rounded up to 3 rollouts
    assert s["max_eval_steps"] == 51_200                        # 50,000 -> 25 rollouts
    assert s["min_steps_before_eval"] == 83_968                 # 83,333 -> 41 rollouts
    assert s["fire"] == {"subpops": 2, "subpop_size": 8, "evaluators": 6, "evaluators_per_parent_member": 0.75}
    assert s["members"] == {"rs": 22, "pbt": 22}
    for k in ("ready_steps", "max_eval_steps", "min_steps_before_eval"):
        assert s[k] % s["rollout_steps"] == 0
    s1m = ss.derive("Hopper-v5", "ppo", 16, 1_000_000, rollout=1024)
    assert (s1m["ready_steps"], s1m["max_eval_steps"], s1m["min_steps_before_eval"]) == (10_240, 100_352, 166_912)
    assert s1m["fire"]["subpop_size"] == 6 and s1m["fire"]["evaluators"] == 4  # 16 workers: nearest to 3/4


def test_fire_layout_is_nearest_three_quarters():
    assert ss.fire_layout(22) == (8, 6)
    assert ss.fire_layout(11) == (4, 3)
    assert ss.fire_layout(16) == (6, 4)
    assert ss.fire_layout(50) == (18, 14)  # the paper's RL layout


def test_max_eval_steps_grows_until_a_success_is_reachable():
    s = ss.derive("Pendulum-v1", "ppo", 8, 40_960, rollout=1024)  # 1/10 = 4 ready intervals: 5 points < 7
    assert s["max_eval_steps"] == 6 * s["ready_steps"]


@pytest.mark.parametrize("kw, field", [({"learner": "sac"}, "--learner"),
                                       ({"steps_per_worker": 1000}, "--steps-per-worker"),
                                       ({"workers": 4}, "--workers"), ({"p_stat": 2.0}, "--p-stat")])
def test_bad_settings_name_the_field(kw, field):
    args = {"env": "Hopper-v5", "learner": "ppo", "workers": 16, "steps_per_worker": 500_000, **kw}
    with pytest.raises(ValueError, match=field):
        ss.derive(**args)


def test_overrides_carry_the_frozen_values():
    s = ss.derive("Walker2d-v5", "ppo", 22, 500_000)
    sets = ss.overrides(s, "fire", 2)[1::2]
    assert "env=Walker2d-v5" in sets and "seed=2" in sets and "total_steps=500000" in sets
    assert "strategy.subpop_size=8" in sets and "strategy.evaluators=6" in sets
    assert "strategy.min_steps_before_eval=(83968,)" in sets and "strategy.max_eval_steps=51200" in sets
    assert "strategy.population=22" in ss.overrides(s, "rs", 0)[1::2]


def test_freeze_once_and_refuse_changes(tmp_path):
    s = ss.derive("Pendulum-v1", "ppo", 8, 40_960, rollout=1024)
    path = tmp_path / "study_pendulum.json"
    doc = ss.freeze(s, path)
    assert doc["runs"] == [] and set(doc["settings"]["resolved"]) == set(ss.METHODS)
    assert doc["settings"]["resolved"]["fire"]["strategy"]["subpop_size"] == 3
    with pytest.raises(ValueError, match="never change"):
        ss.freeze(s, path)
    frozen = ss.load_frozen(path)["settings"]
    ss.check_unchanged(frozen)  # nothing changed
    frozen["experiment_sha256"]["study_space.py"] = "0" * 64
    with pytest.raises(ValueError, match="study_space.py changed"):
        ss.check_unchanged(frozen)
    with pytest.raises(ValueError, match="no frozen settings"):
        ss.load_frozen(tmp_path / "study_other.json")


# --------------------------------------------------------------------------- a synthetic run directory
def make_run(folder: Path, method="fire", finished=True, rounds=2) -> Path:
    d = folder / f"study_x_{method}-20260101-000000"
    d.mkdir(parents=True)
    strategy = {"type": "FIRE", "subpops": 2, "subpop_size": 2, "evaluators": 1} if method == "fire" \
        else {"type": "PBT", "population": 4}
    (d / "config.json").write_text(json.dumps({"method": method, "seed": 0, "total_steps": 2048, "eval_steps": 1024,
                                               "strategy": strategy, "space": {"lr": "LogUniform(lo=1e-05)"}}))
    (d / "status.json").write_text(json.dumps({"round": rounds, "finished": finished, "wall": 12.5}))
    rows = ["round,worker,role,subpop,step,q,wall_time,hp_lr"]
    qs = {0: (-5.0, 3.0), 1: (-4.0, 1.0), 2: (-6.0, -2.0), 3: (-7.0, 2.5)}
    for r in range(1, rounds + 1):
        for w, q in qs.items():
            rows.append(f"{r},{w},member,{1 + w // 2},{1024 * r},{q[r - 1]},{r},0.001")
        rows.append(f"{r},4,evaluator,,{1024 * r},0.0,{r},0.001")
    (d / "curves.csv").write_text("\n".join(rows) + "\n")
    dec = [{"kind": "assign", "evaluator": 4, "parent": 2, "child": 0, "round": 1, "step": 1024},
           {"kind": "stop", "evaluator": 4, "reason": "child lost evolution", "round": 1, "step": 1024},
           {"kind": "stop", "evaluator": 4, "reason": "p=0.5 > threshold 0.51 at T=2048", "round": 2, "step": 2048},
           {"kind": "stop", "evaluator": 4, "reason": "no overlap after T=3072 > max_eval_steps=2048", "round": 2,
            "step": 2048},
           {"kind": "success", "evaluator": 4, "child": 0, "p_value": 0.005, "score_diff": 1.0, "round": 2,
            "step": 2048},
           {"kind": "stop", "evaluator": 4, "reason": "success", "round": 2, "step": 2048}]
    (d / "decisions.jsonl").write_text("".join(json.dumps(x) + "\n" for x in dec if method == "fire"))
    return d


def test_run_record_from_a_run_directory(tmp_path):
    d = make_run(tmp_path / "fire_seed0")
    sittings = [{"wall_s": 10.0, "load1_samples": [1.0, 3.0]}, {"wall_s": 5.0, "load1_samples": [2.0]}]
    rec = study_results.run_record(d, "fire", 0, threshold=2.0, sittings=sittings)
    assert rec["workers"] == 5 and rec["steps_per_worker"] == 2048
    assert rec["best_final_q"] == 3.0                    # worker 0's last Q
    assert rec["steps_to_threshold"] == 2048             # the top return reaches 2.0 at step 2048 (worker 3's 2.5)
    assert rec["auc"] == pytest.approx((-4.0 + 3.0) / 2)  # mean height of the top-return curve (-4 -> 3)
    assert rec["successes"] == 1
    assert rec["evaluator_stops"] == {"child lost evolution": 1, "p above threshold": 1,
                                      "no overlap after max_eval_steps": 1, "success": 1}
    life = rec["evaluator_steps_before_stop"]  # steps since the evaluator's assignment at step 1024
    assert life["all"] == {"n": 4, "median": 1024, "max": 1024}
    assert life["child lost evolution"] == {"n": 1, "median": 0, "max": 0} and life["success"]["n"] == 1
    assert rec["wall_s"] == 12.5 and rec["process_wall_s"] == 15.0
    assert rec["load"] == {"sittings": 2, "samples": 3, "mean_load1": 2.0, "max_load1": 3.0}
    assert rec["finished"] is True and rec["member_steps_reached"] == 2048
    assert study_results.run_record(d, "fire", 0, threshold=10.0)["steps_to_threshold"] is None


def test_stop_kinds_of_fire_strategy_words():
    for reason, kind in [("success", "success"), ("parent lost evolution", "parent lost evolution"),
                         ("parent took new weights (evaluator success)", "parent took new weights"),
                         ("parent gone", "parent gone"), ("p=0.3 > threshold 0.2 at T=10", "p above threshold"),
                         ("no overlap after T=12 > max_eval_steps=10", "no overlap after max_eval_steps"),
                         ("something new at T=12", "something new at t=#")]:
        assert study_results.stop_kind(reason) == kind


def test_finished_unfinished_missing(tmp_path):
    assert study_runs.run_state(tmp_path / "fire_seed0") == ("missing", None)
    d = make_run(tmp_path / "fire_seed0", finished=False, rounds=1)
    assert study_runs.run_state(tmp_path / "fire_seed0") == ("unfinished", d)
    d2 = make_run(tmp_path / "pbt_seed0", method="pbt")
    assert study_runs.run_state(tmp_path / "pbt_seed0") == ("finished", d2)
    # status says finished but curves.csv stops early: not finished (rlpop.runs.Run.finished)
    (d2 / "curves.csv").write_text("\n".join((d2 / "curves.csv").read_text().splitlines()[:5]) + "\n")
    assert study_runs.run_state(tmp_path / "pbt_seed0")[0] == "unfinished"


# --------------------------------------------------------------------------- a sitting, with stand-in commands
FAKE = ("import json, pathlib, sys; d = pathlib.Path(sys.argv[1]); d.mkdir(parents=True, exist_ok=True); "
        "(d / 'touched').write_text(sys.argv[2])")


def test_sitting_skips_finished_resumes_unfinished_starts_missing(tmp_path, monkeypatch):
    study = tmp_path / "study"
    make_run(study / "fire_seed0")                                   # finished
    unfinished = make_run(study / "pbt_seed0", method="pbt", finished=False, rounds=1)
    monkeypatch.setattr(study_runs, "resume_command", lambda d: [sys.executable, "-c", FAKE, str(d), "resume"])
    plan = [(m, 0, lambda folder, m=m: [sys.executable, "-c", FAKE, str(folder / "new"), "start"])
            for m in ("fire", "pbt", "rs")]
    said: list[str] = []
    out = study_runs.sitting(study, plan, say=said.append)
    assert [(r["method"], r["action"], r["rc"]) for r in out] == [("pbt", "resume", 0), ("rs", "start", 0)]
    assert (unfinished / "touched").read_text() == "resume"
    assert (study / "rs_seed0" / "new" / "touched").read_text() == "start"
    assert said[0].startswith("[fire seed 0] finished")
    assert [r["method"] for r in study_runs.read_sittings(study)] == ["pbt", "rs"]
    # a deadline already passed: nothing starts
    said.clear()
    assert study_runs.sitting(study, plan, max_minutes=0, say=said.append) == []
    assert any("--max-minutes" in s for s in said)

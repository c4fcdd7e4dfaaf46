"""rlpop.plot, rlpop.replay, rlpop.summary on small real run directories (toy learner, in-process runs)."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
FIGS = ("top_return", "hparams", "population")


def _run(tmp: Path, exp: str, *sets: str) -> Path:
    from rlpop.run import main

    before = set(tmp.glob("*")) if tmp.exists() else set()
    argv = [str(ROOT / "experiments" / exp), "--runs-dir", str(tmp), "--quiet"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    (new,) = set(tmp.glob("*")) - before
    return new


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {
        "fire": _run(root, "toy_fire.py", "total_steps=1500"),
        "pbt": _run(root, "toy_pbt.py", "total_steps=600", "strategy.population=8"),
        "pbt1": _run(root, "toy_pbt.py", "total_steps=600", "strategy.population=8", "seed=1"),
    }


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _assert_figs(folder: Path) -> None:
    for name in FIGS:
        f = folder / f"{name}.png"
        assert f.is_file() and f.stat().st_size > 5000, f
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_plot_fire_and_pbt(runs, tmp_path):
    from rlpop.plot import main

    for key in ("fire", "pbt"):
        assert main([str(runs[key])]) == 0
        _assert_figs(runs[key] / "plots")
    out = tmp_path / "all"
    assert main([str(runs["fire"]), str(runs["pbt"]), str(runs["pbt1"]), "--out", str(out)]) == 0
    assert (out / "top_return.png").stat().st_size > 5000
    for key in ("fire", "pbt", "pbt1"):
        assert (out / runs[key].name / "hparams.png").stat().st_size > 5000
    assert main([str(runs["pbt"]), "--out", str(tmp_path / "svg"), "--format", "svg"]) == 0
    assert (tmp_path / "svg" / "hparams.svg").read_text().lstrip().startswith("<?xml")


def test_plot_and_summary_on_run_in_progress(runs, tmp_path):
    from rlpop.plot import main as plot_main
    from rlpop.lineage import trace_schedule as trace
    from rlpop.summary import summarise

    run = tmp_path / "inprogress"
    shutil.copytree(runs["fire"], run, ignore=shutil.ignore_patterns("plots"))
    (run / "status.json").unlink()
    text = (run / "curves.csv").read_text()
    cut = len(text) // 2
    while text[cut] in "\n":
        cut += 1
    (run / "curves.csv").write_text(text[:cut + 7])  # ends inside a row
    assert not (run / "curves.csv").read_text().endswith("\n")
    d = (run / "decisions.jsonl").read_text()
    (run / "decisions.jsonl").write_text(d[:len(d) // 2 + 3])
    assert plot_main([str(run)]) == 0
    _assert_figs(run / "plots")
    row = summarise(run)
    assert row["finished"] is False
    complete = text[:text.rfind("\n", 0, cut + 7) + 1]
    last_round = int(complete.splitlines()[-1].split(",")[0])
    sched = trace(run)
    assert sched["round"].max() <= last_round


def test_not_a_run_dir(tmp_path, capsys):
    from rlpop.plot import main as plot_main
    from rlpop.replay import main as replay_main
    from rlpop.summary import main as summary_main

    for target in (tmp_path, tmp_path / "missing"):
        for main in (plot_main, summary_main, replay_main):
            capsys.readouterr()
            assert main([str(target)]) == 2
            err = capsys.readouterr().err
            assert err.startswith("error:") and err.count("\n") == 1 and "not an rlpop run directory" in err


def test_summary_matches_curves(runs, tmp_path, capsys):
    from rlpop.summary import main

    out = tmp_path / "sum.csv"
    dirs = [runs["fire"], runs["pbt"], runs["pbt1"]]
    assert main([*map(str, dirs), "--threshold", "0.0", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    rows = {r["run"]: r for r in _read_csv(out)}
    assert (tmp_path / "sum.md").read_text().startswith("| run | method | seed |")
    for d in dirs:
        cfg = json.loads((d / "config.json").read_text())
        r = rows[d.name]
        assert d.name in printed
        assert r["method"] == cfg["method"] and int(r["seed"]) == cfg["seed"]
        last: dict[str, tuple[int, float]] = {}
        top, first_hit = -np.inf, None
        by_step: dict[int, float] = {}
        for c in _read_csv(d / "curves.csv"):
            if c["role"] != "member":
                continue
            if c["worker"] not in last or int(c["round"]) > last[c["worker"]][0]:
                last[c["worker"]] = (int(c["round"]), float(c["q"]))
            by_step[int(c["step"])] = max(by_step.get(int(c["step"]), -np.inf), float(c["q"]))
        for s in sorted(by_step):
            top = max(top, by_step[s])
            if first_hit is None and top >= 0.0:
                first_hit = s
        assert float(r["best_final_q"]) == pytest.approx(max(q for _, q in last.values()), rel=1e-12)
        assert (int(r["steps_to_threshold"]) if r["steps_to_threshold"] else None) == first_hit
        kinds = [json.loads(line)["kind"] for line in (d / "decisions.jsonl").read_text().splitlines()]
        assert int(r["exploits"]) == kinds.count("exploit") and int(r["successes"]) == kinds.count("success")
        assert r["finished"] == "True" and float(r["env_steps_per_s"]) > 0
    assert rows[runs["fire"].name]["method"] == "fire" and rows[runs["pbt"].name]["method"] == "pbt"


@pytest.mark.parametrize("key", ["pbt", "fire"])
def test_replay_follows_lineage(runs, tmp_path, key):
    from rlpop.lineage import trace_schedule
    from rlpop.replay import main, traced_schedule
    from rlpop.run import load_experiment
    from rlpop.strategies.replay import ReplayStrategy

    src = runs[key]
    lin = trace_schedule(src)
    sched, schedule = traced_schedule(src)
    assert sched.equals(lin)
    eval_steps = json.loads((src / "config.json").read_text())["eval_steps"]
    strat = ReplayStrategy(load_experiment(src / "experiment.py").hparam_space(), schedule)
    # the schedule gives every lineage row the hparams the row was trained with
    for _, row in lin.iterrows():
        assert strat.hparams_at(int(row["lineage_step"]) - eval_steps)["lr"] == row["hp_lr"]
    assert main([str(src), "--runs-dir", str(tmp_path), "--quiet"]) == 0
    (rdir,) = tmp_path.glob("*_replay-*")
    cfg = json.loads((rdir / "config.json").read_text())
    assert cfg["method"] == "replay" and cfg["replay_of"]["root_worker"] == int(lin["worker"].iloc[0])
    rows = _read_csv(rdir / "curves.csv")
    assert [int(r["step"]) for r in rows] == list(lin["lineage_step"])
    assert [float(r["hp_lr"]) for r in rows] == list(lin["hp_lr"])  # switches at the traced steps
    replay_log = [json.loads(x) for x in (rdir / "decisions.jsonl").read_text().splitlines()]
    switches = [int(d["step"]) for d in replay_log if d["kind"] == "explore"]
    # the lineage's copies are followed where they happened (FollowCopy: the destination's streams)
    assert [[int(d["step"]), d["like"], d["epoch"]] for d in replay_log if d["kind"] == "follow_copy"] == \
        cfg["replay_of"]["follow"]
    assert switches == [s for s, _ in schedule[1:]]
    if key == "pbt":  # the toy is deterministic and a copy carries its whole state: the same Q curve
        np.testing.assert_allclose([float(r["q"]) for r in rows], lin["q"].to_numpy(), rtol=1e-9)
    # --resume rebuilds the same experiment from the replay's own directory
    exp = load_experiment(rdir / "experiment.py")
    assert exp.method == "replay" and exp.total_steps == int(lin["lineage_step"].iloc[-1])
    assert [tuple(e) for e in exp.strategy.schedule] == [(s, hp) for s, hp in schedule]


def test_replay_strategy_emits_explore_at_changes():
    from rlpop.decisions import Explore
    from rlpop.hparams import HParamSpace, LogUniform
    from rlpop.strategies.replay import ReplayStrategy
    from rlpop.view import PopulationView, WorkerView

    space = HParamSpace({"lr": LogUniform(0.01, 1.0)})
    s = ReplayStrategy(space, [(0, {"lr": 0.5}), (40, {"lr": 0.5}), (60, {"lr": 0.25})], worker=3)
    assert s.schedule == [(0, {"lr": 0.5}), (60, {"lr": 0.25})]
    assert [w.id for w in s.layout()] == [3] and s.initial_hparams(s.layout()[0]) == {"lr": 0.5}
    view = lambda steps, lr: PopulationView({3: WorkerView(3, "member", 1, steps, {"lr": lr}, has_state=True)})
    assert s.decide(view(40, 0.5)) == []
    (d,) = s.decide(view(60, 0.5))
    assert isinstance(d, Explore) and d.dst == 3 and d.hparams == {"lr": 0.25}
    assert s.decide(view(80, 0.25)) == []
    with pytest.raises(ValueError, match="step 0"):
        ReplayStrategy(space, [(20, {"lr": 0.5})])
    with pytest.raises(ValueError, match="does not search"):
        ReplayStrategy(space, [(0, {"clip": 0.2})])

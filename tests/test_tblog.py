"""TensorBoard as people use it: one run per worker (tb/w000, ...) with the same tags, and the HParams tab holding
each worker's current hyperparameters against its Q -- read back with TensorBoard's own readers."""
import csv
import json

import pytest

from conftest import ROOT
from rlpop.tblog import read_scalars, read_session


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from rlpop.run import main

    runs = tmp_path_factory.mktemp("runs")
    rc = main([str(ROOT / "experiments" / "toy_pbt.py"), "--quiet", "--set", "total_steps=400",
               "--set", "strategy.population=4", "--set", "strategy.ready_steps=100", "--runs-dir", str(runs)])
    assert rc == 0
    (run,) = list(runs.iterdir())
    return run


def last_rows(run):
    rows = list(csv.DictReader((run / "curves.csv").open()))
    return rows, {int(r["worker"]): r for r in rows}


def test_one_run_per_worker_with_shared_tags(run_dir):
    tb = run_dir / "tb"
    assert sorted(p.name for p in tb.iterdir()) == ["population", "w000", "w001", "w002", "w003"]
    assert not list(tb.glob("events.out.tfevents.*"))  # nothing at the top: every chart overlays the runs
    rows, last = last_rows(run_dir)
    for w in range(4):
        scalars = read_scalars(tb / f"w{w:03d}")
        assert {"Q", "hparams/lr", "train/loss"} <= set(scalars), sorted(scalars)
        mine = [r for r in rows if int(r["worker"]) == w]
        assert [s for s, _ in scalars["Q"]] == [int(r["step"]) for r in mine]
        assert scalars["Q"][-1][1] == pytest.approx(float(mine[-1]["q"]), rel=1e-6)
        assert scalars["hparams/lr"][-1][1] == pytest.approx(float(mine[-1]["hp_lr"]), rel=1e-6)
    assert "best_Q" in read_scalars(tb / "population")


def test_hparams_sessions_hold_the_current_hparams(run_dir):
    rows, last = last_rows(run_dir)
    first = {int(r["worker"]): json.loads(r["hparams"]) for r in reversed(rows)}
    changed = 0
    for w, row in last.items():
        session = read_session(run_dir / "tb" / f"w{w:03d}")
        assert session["lr"] == pytest.approx(json.loads(row["hparams"])["lr"])
        assert session["role"] == "member" and session["subpop"] == 1
        changed += session["lr"] != pytest.approx(first[w]["lr"])
    assert changed >= 1  # PBT explored: the sessions say where the members are now, not where they began


def test_the_hparams_plugin_lists_every_member_against_q(run_dir):
    """TensorBoard's HParams plugin itself (what the tab shows): one session group per worker, metric Q."""
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import api_pb2, backend_context, list_session_groups

    logdir = str(run_dir / "tb")
    mux = pem.EventMultiplexer()
    mux.AddRunsFromDirectory(logdir)
    mux.Reload()
    ctx = backend_context.Context(base_plugin.TBContext(logdir=logdir, multiplexer=mux,
                                                        data_provider=data_provider.MultiplexerDataProvider(mux, logdir)))
    req = api_pb2.ListSessionGroupsRequest(start_index=0, slice_size=100, aggregation_type=api_pb2.AGGREGATION_AVG,
                                           allowed_statuses=[api_pb2.STATUS_UNKNOWN, api_pb2.STATUS_SUCCESS])
    groups = list_session_groups.Handler(context.RequestContext(), ctx, "", req).run().session_groups
    _, last = last_rows(run_dir)
    assert sorted(g.name for g in groups) == ["w000", "w001", "w002", "w003"]
    for g in groups:
        row = last[int(g.name[1:])]
        assert g.hparams["lr"].number_value == pytest.approx(json.loads(row["hparams"])["lr"])
        (metric,) = g.metric_values
        assert metric.name.tag == "Q" and metric.value == pytest.approx(float(row["q"]), rel=1e-6)

"""Loggers from the command line: ``rlpop run X.py --log wandb --log mlflow --log my_mod:my_listener``.

Each ``--log`` attaches a listener of the run's events (:mod:`rlpop.events`) beside the live table and
TensorBoard; nothing in the run changes. What each one records:

* ``wandb`` (``pip install 'rlpop[wandb]'``): one W&B run per rlpop run (id = the run directory's name, so
  ``--resume`` continues it), config = the resolved experiment; every round ``wNNN/Q`` and ``wNNN/<hparam>`` (the
  *current* value) per worker that trained, ``population/best_Q`` and ``population/env_steps``, at step = round.
  W&B's own environment variables apply (``WANDB_PROJECT``, default ``rlpop``; ``WANDB_MODE=offline``;
  ``WANDB_DIR``, default: the run directory).
* ``mlflow`` (``pip install 'rlpop[mlflow]'``): one MLflow run per rlpop run in the experiment named like the
  rlpop experiment, params = the resolved experiment (dotted keys), metrics ``wNNN/Q`` and ``wNNN/<hparam>`` at
  each worker's actor step, ``population/best_Q``; the tracking store is ``MLFLOW_TRACKING_URI`` (MLflow's
  default when unset) and is opened at spec time, so a store that cannot be used fails before the run directory.
  A ``--resume`` continues the same MLflow run.
* ``module:function``: ``function`` is subscribed as it is: called with every event (``module`` imports like an
  experiment's own modules: a file beside the experiment file works).

The ids that let ``--resume`` continue the same W&B / MLflow run are kept in ``RUN_DIR/loggers.json``.
"""
from __future__ import annotations

import importlib
import json
import math
import numbers
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from rlpop.events import Event, RoundFinished, RunStarted

BUILTIN = ("wandb", "mlflow")


def check(spec: str) -> None:
    """Raise ``ValueError`` (one line, naming ``--log`` and the fix) unless ``spec`` can be attached."""
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"--log {spec!r}: give wandb, mlflow or module:function")
    if spec in BUILTIN:
        from rlpop.extras import require

        require(spec, f"--log {spec}")
        if spec == "mlflow":
            MLflowLogger.check_store()
        return
    _load(spec)


def _load(spec: str) -> Callable[[Event], Any]:
    module, colon, attr = spec.partition(":")
    if not colon or not module or not attr:
        raise ValueError(f"--log {spec!r}: give wandb, mlflow or module:function (a listener called with every "
                         "event, e.g. my_loggers:to_slack)")
    try:
        fn = importlib.import_module(module)
        for part in attr.split("."):
            fn = getattr(fn, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--log {spec}: cannot load it ({type(exc).__name__}: {exc}); put {module}.py beside the "
                         "experiment file or install its package") from exc
    if not callable(fn):
        raise ValueError(f"--log {spec}: {attr} is a {type(fn).__name__}, not a function taking an event")
    return fn


def make(spec: str, run_dir: str | Path, config: dict[str, Any]) -> Callable[[Event], Any]:
    """The listener for ``spec`` (checked with :func:`check` first)."""
    if spec == "wandb":
        return WandbLogger(run_dir, config)
    if spec == "mlflow":
        return MLflowLogger(run_dir, config)
    return _load(spec)


def _ids(run_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((run_dir / "loggers.json").read_text())
    except (OSError, ValueError):
        return {}


def _save_id(run_dir: Path, key: str, value: str) -> None:
    ids = {**_ids(run_dir), key: value}
    tmp = run_dir / "loggers.json.tmp"
    tmp.write_text(json.dumps(ids, indent=2))
    os.replace(tmp, run_dir / "loggers.json")


def round_metrics(ev: RoundFinished, every_worker: bool = False) -> list[tuple[str, float, int]]:
    """(key, value, actor step) of one round: each trained worker's Q and current numeric hparams, the best Q.
    ``every_worker``: every worker's latest point instead (a resumed run's first record: the round its checkpoint
    ended, which the run stopped before telling its listeners)."""
    out = []
    workers = {s.id: s for s in ev.workers}
    points = ({s.id: (s.q, s.steps) for s in ev.workers if s.steps > 0} if every_worker
              else {i: (res.q, res.steps) for i, res in ev.reports.items()})
    for i, (q, steps) in points.items():
        tag = f"w{i:03d}"
        if not math.isnan(q):
            out.append((f"{tag}/Q", float(q), int(steps)))
        for name, v in workers[i].hparams.items():
            if isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v):
                out.append((f"{tag}/{name}", float(v), int(steps)))
    if not math.isnan(ev.best_q):
        out.append(("population/best_Q", float(ev.best_q), max(s.steps for s in ev.workers)))
    return out


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flatten(v, key + "."))
        else:
            out[key] = str(v)[:500]
    return out


class WandbLogger:
    """See the module doc. ``wandb.init`` happens at the run's start (RunStarted), ``finish`` at ``close``."""

    def __init__(self, run_dir: str | Path, config: dict[str, Any]):
        self.run_dir, self.config, self.run = Path(run_dir), config, None
        self.done = False

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted) and self.run is None:
            import wandb

            run_id = _ids(self.run_dir).get("wandb_id") or self.run_dir.name
            self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", "rlpop"), name=self.run_dir.name,
                                  id=run_id, resume="allow", config=self.config,
                                  dir=os.environ.get("WANDB_DIR") or str(self.run_dir))
            _save_id(self.run_dir, "wandb_id", run_id)
            if event.resumed:
                self.log(event.status, every_worker=True)
        elif isinstance(event, RoundFinished) and self.run is not None:
            self.log(event)

    def log(self, event: RoundFinished, every_worker: bool = False) -> None:
        data = {k: v for k, v, _ in round_metrics(event, every_worker)}
        data["population/env_steps"] = event.env_steps
        self.run.log(data, step=event.round)
        self.done = event.done

    def close(self) -> None:
        if self.run is not None:  # a run stopped before its end (Ctrl-C, failure) is marked as such
            self.run.finish(exit_code=0 if self.done else 1)
            self.run = None


class MLflowLogger:
    """See the module doc. The MLflow run is created at the run's start and terminated at ``close``."""

    def __init__(self, run_dir: str | Path, config: dict[str, Any]):
        self.run_dir, self.config = Path(run_dir), config
        self.client, self.run_id = None, None
        self.done = False

    @staticmethod
    def check_store() -> None:
        """Open the tracking store now (spec time): a store MLflow cannot use fails in one line."""
        import mlflow
        from mlflow import MlflowClient

        uri = mlflow.get_tracking_uri()
        try:
            MlflowClient().search_experiments(max_results=1)
        except Exception as exc:  # noqa: BLE001 -- whatever MLflow raises, in one line with the fix
            msg = " ".join(str(exc).split())[:300]
            raise ValueError(f"--log mlflow: MLflow cannot use its tracking store {uri} ({type(exc).__name__}: "
                             f"{msg}); set MLFLOW_TRACKING_URI (e.g. http://HOST:5000 or sqlite:///mlflow.db)") from exc

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStarted) and self.run_id is None:
            self.start()
            if event.resumed:
                self.log(event.status, every_worker=True)
        elif isinstance(event, RoundFinished) and self.run_id is not None:
            self.log(event)

    def log(self, event: RoundFinished, every_worker: bool = False) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v, step in round_metrics(event, every_worker)]
        for i in range(0, len(metrics), 1000):  # MLflow's batch limit
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 1000])
        self.done = event.done

    def start(self) -> None:
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.client = MlflowClient()
        run_id = _ids(self.run_dir).get("mlflow_run_id")
        if run_id:  # --resume: the same MLflow run
            self.client.update_run(run_id, status="RUNNING")
            self.run_id = run_id
            return
        name = str(self.config.get("name", "rlpop"))
        exp = self.client.get_experiment_by_name(name)
        exp_id = exp.experiment_id if exp is not None else self.client.create_experiment(name)
        run = self.client.create_run(exp_id, run_name=self.run_dir.name,
                                     tags={"rlpop.run_dir": str(self.run_dir.resolve())})
        self.run_id = run.info.run_id
        _save_id(self.run_dir, "mlflow_run_id", self.run_id)
        params = [Param(k, v) for k, v in flatten(self.config).items()
                  if k not in ("argv", "created", "notes")]
        for i in range(0, len(params), 100):
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def close(self) -> None:
        if self.run_id is not None:  # KILLED: stopped before its end; a --resume sets it RUNNING again
            self.client.set_terminated(self.run_id, status="FINISHED" if self.done else "KILLED")
            self.run_id = None


def make_all(specs: Sequence[str], run_dir: str | Path, config: dict[str, Any]) -> list:
    return [make(s, run_dir, config) for s in specs]

"""Shards as Ray actors; copies within a shard are slice copies, across shards through the object store.

``ray.init()`` starts an embedded local cluster (the default; :mod:`rlpop.reaper`
ends every process of it when the run ends or its driver dies) or joins one
(``address="auto"`` or ``"HOST:PORT"``).

* Batched learners (PPO): the population is split into shards of
  ``shard_size`` members (0: one shard per GPU when the cluster has GPUs, else
  one per two CPUs); each shard actor asks for its share of the cluster's CPUs
  and, where there are GPUs, a (fractional) GPU, so its learner runs on CUDA.
* Other learners: one member per actor, each asking for
  ``min(1, cluster CPUs / workers)`` CPUs, so a population larger than the
  machine time-shares instead of waiting forever for resources.
"""
from __future__ import annotations

import math
import os
import time
from typing import Any, Callable

from rlpop.agents import use_batched
from rlpop.backends.base import WorkerFailure, WorkerSpec
from rlpop.shard import BatchShard, MemberShard, split
from rlpop.worker import TrainReport


def driver_pythonpath(extra: list[str] | None = None) -> str:
    """PYTHONPATH for Ray workers: ``extra``, the driver's working directory, and its own PYTHONPATH."""
    parts = [*(extra or []), os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.pathsep.join(dict.fromkeys(parts))


#: set by ``rlpop.run.load_experiment``: the experiment file's folder (its env / learner modules)


def runtime_env(address: str | None, experiment_dir: str | None = None) -> dict[str, Any]:
    """The runtime environment of the run's Ray workers.

    Every worker gets the driver's PYTHONPATH (its working directory and the experiment's folder) and the envs
    registered at run time (an experiment file's ``register_env``). On a joined cluster the other nodes do not
    share the driver's disk, so the experiment's folder is also shipped as the workers' ``working_dir`` (Ray
    uploads it once; run directories, checkpoints and caches left out): modules beside the experiment file import
    on every node.
    """
    from rlpop.envs import SHIP_VAR

    env_vars = {"PYTHONPATH": driver_pythonpath()}
    if os.environ.get(SHIP_VAR):
        env_vars[SHIP_VAR] = os.environ[SHIP_VAR]
    out: dict[str, Any] = {"env_vars": env_vars}
    if address and experiment_dir and os.path.isdir(experiment_dir):
        out["working_dir"] = experiment_dir
        out["excludes"] = ["runs/", "*.pt", "__pycache__/", ".git/", "*.tmp", "tb/", "MUJOCO_LOG.TXT"]
    return out


class RayBackend:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None, engine: str = "auto",
                 shard_size: int = 0, on_progress: Callable[[dict[str, Any]], None] | None = None,
                 experiment_dir: str | None = None):
        import ray

        self.ray = ray
        self.engine = engine
        self.shard_size = int(shard_size or 0)
        self._owns_ray = False
        self._reaper = None
        if not ray.is_initialized():
            # log_to_driver=False: a worker's error reaches the driver once, as the exception its call raises,
            # not as every worker's interleaved traceback (worker logs stay in Ray's session log directory)
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=False,
                                          logging_level="WARNING", configure_logging=True)
            # workers import what the driver imports (its working directory, the experiment's folder -- shipped
            # to the other nodes of a joined cluster) and replay the envs it registered at run time
            if address:
                ray.init(address=address, runtime_env=runtime_env(address, experiment_dir), **kwargs)
            else:
                # the embedded cluster's processes are the children ray.init makes: watched, so that none of
                # them outlives this process (its DashboardAgent and RuntimeEnvAgent would, for a minute)
                from rlpop.reaper import init_ray

                self._reaper = init_ray(num_cpus=num_cpus or os.cpu_count(), runtime_env=runtime_env(None), **kwargs)
            self._owns_ray = True
        from rlpop.envs import register_with_ray

        register_with_ray()
        self.where: dict[int, Any] = {}          # worker id -> shard actor
        self.groups: dict[int, list[WorkerSpec]] = {}  # worker id -> the specs its shard was built from
        self.batched = False
        self.options: dict[str, Any] = {}
        self.threads = 1
        self.start_timeout_s = 600.0
        self._last_states: dict[int, dict[str, Any]] = {}
        #: called with {"steps", "target", "t0"} of the running shards every ~15 s during a round
        self.on_progress = on_progress
        self.poll_s = 15.0

    def _new_shard(self, group: list[WorkerSpec]):
        cls = BatchShard if self.batched else MemberShard
        # max_concurrency=2: progress() answers while train() runs
        actor = self.ray.remote(max_restarts=0, max_concurrency=2)(cls).options(**self.options).remote(
            group, self.threads)
        for s in group:
            self.where[s.id] = actor
            self.groups[s.id] = group
        return actor

    def start(self, specs: list[WorkerSpec]) -> None:
        res = self.ray.cluster_resources()
        cpus, gpus = float(res.get("CPU", 1.0)), float(res.get("GPU", 0.0))
        self.batched = use_batched(specs[0].learner if specs else None, self.engine)
        if self.batched:
            if self.shard_size:
                n = math.ceil(len(specs) / self.shard_size)
            else:
                n = int(gpus) if gpus >= 1 else max(1, int(cpus // 2))
            groups = split(specs, n)
            share = cpus / len(groups)
            # at most one CPU's reservation each (a shard never waits for a whole node to be free), spread
            # over the nodes; its update threads use its share of the cluster's cores
            self.options = {"num_cpus": max(0.01, min(1.0, share)), "scheduling_strategy": "SPREAD"}
            self.threads = max(1, int(share))
            if gpus > 0:
                self.options["num_gpus"] = gpus / len(groups)
        else:
            groups = [[s] for s in specs]
            self.options = {"num_cpus": max(0.01, min(1.0, cpus / max(1, len(specs))))}
            self.threads = 1
        actors = [self._new_shard(g) for g in groups]
        ready, pending = self.ray.wait([a.ping.remote() for a in actors], num_returns=len(actors),
                                       timeout=self.start_timeout_s)
        if pending:
            raise RuntimeError(f"{len(pending)} of {len(actors)} shard actors could not start within "
                               f"{self.start_timeout_s:.0f} s (each asks {self.options}); cluster resources: "
                               f"{self.ray.cluster_resources()}, available now: {self.ray.available_resources()}")
        self.ray.get(ready)  # surface construction errors now

    def _by_shard(self, ids: list[int]) -> list[tuple[Any, list[int]]]:
        out: dict[Any, tuple[Any, list[int]]] = {}
        for i in ids:
            a = self.where[i]
            out.setdefault(a, (a, []))[1].append(i)
        return list(out.values())

    def train(self, ids: list[int], steps: int, timeout_s: float) -> dict[int, TrainReport | WorkerFailure]:
        refs = {a.train.remote(group, steps): (a, group) for a, group in self._by_shard(ids)}
        deadline = time.monotonic() + timeout_s
        while True:
            left = max(0.0, deadline - time.monotonic())
            wait = left if self.on_progress is None else min(self.poll_s, left)
            ready, pending = self.ray.wait(list(refs), num_returns=len(refs), timeout=wait)
            if not pending or time.monotonic() >= deadline:
                break
            if self.on_progress is not None:
                self._report_progress([refs[r][0] for r in pending], len(ids) * steps)
        out: dict[int, TrainReport | WorkerFailure] = {}
        for ref in ready:
            _, group = refs[ref]
            try:
                out.update(self.ray.get(ref))
            except Exception as exc:  # noqa: BLE001 -- RayActorError, RayTaskError: reported
                text = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, self.ray.exceptions.RayActorError):
                    out.update({i: WorkerFailure.of(i, "died", text) for i in group})
                else:
                    out.update({i: WorkerFailure.caught(i, getattr(exc, "cause", None) or exc, text) for i in group})
        for ref in pending:
            actor, group = refs[ref]
            self.ray.kill(actor)
            out.update({i: WorkerFailure.of(i, "stalled", f"stalled: no result within worker_timeout_s={timeout_s}s")
                        for i in group})
        return out

    def _report_progress(self, running: list[Any], target: int) -> None:
        try:
            live = self.ray.get([a.progress.remote() for a in running], timeout=5)
        except Exception:  # noqa: BLE001 -- progress is best effort
            return
        done = sum(p.get("steps", 0) for p in live)
        target = sum(p.get("target", 0) for p in live) or target
        t0 = min((p["t0"] for p in live if "t0" in p), default=time.time())
        self.on_progress({"steps": done, "target": target, "t0": t0})

    def copy_state(self, src: int, dst: int) -> None:
        a, b = self.where[src], self.where[dst]
        if a == b:
            self.ray.get(a.copy.remote(src, dst))
            return
        state_ref = a.get_learner_state.remote(src)  # stays in the object store
        self.ray.get(b.set_learner_state.remote(dst, state_ref))

    def set_hparams(self, worker: int, hparams: dict[str, Any]) -> None:
        self.ray.get(self.where[worker].set_hparams.remote(worker, hparams))

    def restream(self, worker: int, seed: int, epoch: int) -> None:
        self.ray.get(self.where[worker].restream.remote(worker, seed, epoch))

    def get_states(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        out = self.peek_states(ids)
        self._last_states.update(out)  # what a shard that dies is restored from (the controller's checkpoint)
        return out

    def peek_states(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        """The states of ``ids``, without making them what a dead shard is restored from (the run's kept best
        states are not checkpoints)."""
        out: dict[int, dict[str, Any]] = {}
        for part in self.ray.get([a.get_states.remote(group) for a, group in self._by_shard(ids)]):
            out.update(part)
        return {i: out[i] for i in ids}

    def restore(self, worker: int, state: dict[str, Any]) -> None:
        self.ray.get(self.where[worker].restore.remote(worker, state))

    def _alive(self, actor) -> bool:
        try:
            self.ray.get(actor.ping.remote(), timeout=60)
            return True
        except Exception:  # noqa: BLE001 -- dead or killed
            return False

    def rebuild(self, spec: WorkerSpec, state: dict[str, Any] | None) -> None:
        old = self.where[spec.id]
        if self.batched and self._alive(old):
            # the shard process lives on: restore the member in place
            self.ray.get(old.restore.remote(spec.id, state) if state is not None else old.reinit.remote(spec.id))
            return
        try:
            self.ray.kill(old)
        except Exception:  # noqa: BLE001
            pass
        # a dead batched shard comes back whole: its other members -- idle evaluators, finished members,
        # failed ones rebuilt after this -- start from the last checkpoint the controller took
        group = self.groups[spec.id] if self.batched else [spec]
        actor = self._new_shard(group)
        self.ray.get(actor.ping.remote())
        for s in group:
            if s.id != spec.id and s.id in self._last_states:
                self.restore(s.id, self._last_states[s.id])
        if state is not None:
            self.restore(spec.id, state)

    def close(self) -> None:
        actors = list(dict.fromkeys(self.where.values()))
        for a in actors:
            try:
                self.ray.get(a.close.remote(), timeout=10)
            except Exception:  # noqa: BLE001
                pass
            try:
                self.ray.kill(a)
            except Exception:  # noqa: BLE001
                pass
        self.where.clear()
        if self._owns_ray:
            try:
                self.ray.shutdown()
            finally:
                if self._reaper is not None:  # what ray.shutdown() left (the agents) is ended now
                    self._reaper.close()
                    self._reaper = None

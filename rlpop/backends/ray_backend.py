"""Workers as Ray actors; state copies through Ray's object store.

``ray.init()`` starts an embedded local cluster (the default) or joins one
(``address="auto"`` or ``"HOST:PORT"``). Each worker asks for
``min(1, cluster CPUs / workers)`` CPUs, so a population larger than the
machine time-shares instead of waiting forever for resources.
"""
from __future__ import annotations

import os
from typing import Any

from rlpop.backends.base import WorkerFailure, WorkerSpec
from rlpop.worker import TrainReport, Worker


def driver_pythonpath(extra: list[str] | None = None) -> str:
    """PYTHONPATH for Ray workers: ``extra``, the driver's working directory, and its own PYTHONPATH."""
    parts = [*(extra or []), os.getcwd(), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return os.pathsep.join(dict.fromkeys(parts))


class RayBackend:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None):
        import ray

        self.ray = ray
        self._owns_ray = False
        if not ray.is_initialized():
            kwargs: dict[str, Any] = dict(include_dashboard=False, log_to_driver=True,
                                          logging_level="WARNING", configure_logging=True)
            if address:
                ray.init(address=address, **kwargs)
            else:
                # embedded cluster: workers import what the driver imports from its working directory
                # (a user's "my_pkg.my_envs:MyEnv-v0" or learner module next to the experiment)
                ray.init(num_cpus=num_cpus or os.cpu_count(),
                         runtime_env={"env_vars": {"PYTHONPATH": driver_pythonpath()}}, **kwargs)
            self._owns_ray = True
        from rlpop.envs import register_with_ray

        register_with_ray()
        self.workers: dict[int, Any] = {}
        self.cpus_per_worker = 1.0

    def _remote(self, spec: WorkerSpec):
        actor_cls = self.ray.remote(num_cpus=self.cpus_per_worker, max_restarts=0)(Worker)
        return actor_cls.options(name=None).remote(spec.id, spec.learner, spec.env_id, spec.hparams, spec.seed,
                                                   spec.env_kwargs, spec.q_window_episodes)

    def start(self, specs: list[WorkerSpec]) -> None:
        total = float(self.ray.cluster_resources().get("CPU", 1.0))
        self.cpus_per_worker = max(0.01, min(1.0, total / max(1, len(specs))))
        for s in specs:
            self.workers[s.id] = self._remote(s)
        self.ray.get([w.ping.remote() for w in self.workers.values()])  # surface construction errors now

    def train(self, ids: list[int], steps: int, timeout_s: float) -> dict[int, TrainReport | WorkerFailure]:
        refs = {self.workers[i].train.remote(steps): i for i in ids}
        ready, pending = self.ray.wait(list(refs), num_returns=len(refs), timeout=timeout_s)
        out: dict[int, TrainReport | WorkerFailure] = {}
        for ref in ready:
            i = refs[ref]
            try:
                out[i] = self.ray.get(ref)
            except Exception as exc:  # noqa: BLE001 -- RayActorError, RayTaskError: reported
                out[i] = WorkerFailure(i, f"{type(exc).__name__}: {exc}")
        for ref in pending:
            i = refs[ref]
            self.ray.kill(self.workers[i])
            out[i] = WorkerFailure(i, f"stalled: no result within worker_timeout_s={timeout_s}s")
        return out

    def copy_state(self, src: int, dst: int) -> None:
        state_ref = self.workers[src].get_learner_state.remote()  # stays in the object store
        self.ray.get(self.workers[dst].set_learner_state.remote(state_ref))

    def set_hparams(self, worker: int, hparams: dict[str, Any]) -> None:
        self.ray.get(self.workers[worker].set_hparams.remote(hparams))

    def get_states(self, ids: list[int]) -> dict[int, dict[str, Any]]:
        refs = [self.workers[i].get_state.remote() for i in ids]
        return dict(zip(ids, self.ray.get(refs)))

    def restore(self, worker: int, state: dict[str, Any]) -> None:
        self.ray.get(self.workers[worker].restore.remote(state))

    def rebuild(self, spec: WorkerSpec, state: dict[str, Any] | None) -> None:
        old = self.workers.pop(spec.id, None)
        if old is not None:
            try:
                self.ray.kill(old)
            except Exception:  # noqa: BLE001
                pass
        self.workers[spec.id] = self._remote(spec)
        if state is not None:
            self.restore(spec.id, state)

    def close(self) -> None:
        for w in self.workers.values():
            try:
                self.ray.get(w.close.remote(), timeout=10)
            except Exception:  # noqa: BLE001
                pass
            try:
                self.ray.kill(w)
            except Exception:  # noqa: BLE001
                pass
        self.workers.clear()
        if self._owns_ray:
            self.ray.shutdown()

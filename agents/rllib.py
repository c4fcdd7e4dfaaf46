"""RLlib algorithms as population members (``Agent("rllib:PPO", hparams={...})``).

A member is an RLlib ``Algorithm`` on the **new API stack** (RLModule, Learner, EnvRunner, ConnectorV2),
built with everything local to the member's process: ``num_env_runners=0`` (the local EnvRunner samples),
``num_learners=0`` (the local Learner updates, on CPU). It therefore runs the same in a plain process
(the inline backend) and nested inside a Ray actor (the Ray backend). RLlib itself needs a Ray session
(it puts objects into the object store even when everything is local): where none is running -- the
inline backend -- the first member starts a small local one (1 CPU, no dashboard) and the last member's
``close()`` shuts it down again; inside a Ray actor, or with a session the caller started, it is used and
left alone.

Hyperparameters keep RLlib's names (``lr``, ``clip_param``, ``lambda_``, ...); see :data:`PPO_DEFAULTS`.

**Mutable hyperparameters reach the Learner** (the fix for Ray issue #62173, where Tune's PBT restores a
checkpoint and silently keeps the old lr / clip_param / lambda_): the Learner reads ``lr`` from a
per-optimizer ``Scheduler`` built once from the frozen AlgorithmConfig and re-applies it after every update,
the loss reads ``clip_param``/``vf_clip_param``/``vf_loss_coeff``/``kl_target``/``grad_clip`` from
``learner.config.get_config_for_module(mid)``, the entropy coefficient from a per-module ``Scheduler``, and
GAE's ``gamma``/``lambda_`` live in the ``GeneralAdvantageEstimation`` piece of the Learner connector.
``set_hparams`` (and ``set_state``, after the copied state is loaded) rewrites all of these in place: the
Learner's own (unfrozen) config copy and its per-module overrides, a new lr ``Scheduler`` per optimizer plus
the optimizer's ``param_groups`` lr, a new entropy ``Scheduler`` per module, and the GAE connector's
attributes. The next ``algo.train()`` update uses them.
"""
from __future__ import annotations

import hashlib
import json
import math
from typing import Any, ClassVar

import numpy as np

from rlpop.agents.base import TrainResult, check_mutable, resolve_hparams

#: every hyperparameter ``rllib:PPO`` accepts, with its default (RLlib's names)
PPO_DEFAULTS: dict[str, Any] = {
    # mutable: they reach the Learner at its next update
    "lr": 3e-4,
    "clip_param": 0.2,
    "lambda_": 0.95,
    "gamma": 0.99,
    "entropy_coeff": 0.0,
    "vf_loss_coeff": 0.5,
    "vf_clip_param": 10.0,
    "kl_target": 0.01,
    "grad_clip": 0.5,            # None: no gradient clipping
    # fixed for a member's lifetime (batch shapes, network shapes, connector pipeline)
    "train_batch_size": 2048,    # env steps per algo.train() iteration (train_batch_size_per_learner)
    "minibatch_size": 64,
    "num_epochs": 10,
    "num_envs": 8,               # vector envs in the local EnvRunner (RLlib's per-step overhead is per vector)
    "hidden": (64, 64),          # fcnet_hiddens of the default PPO RLModule
    "activation": "tanh",
    "vf_share_layers": False,
    "use_kl_loss": False,
    "kl_coeff": 0.2,             # initial KL coefficient (adapted by RLlib towards kl_target) when use_kl_loss
    "normalize_obs": False,      # a MeanStdFilter env-to-module connector (its state is copied with the member)
}
PPO_MUTABLE = frozenset({"lr", "clip_param", "lambda_", "gamma", "entropy_coeff", "vf_loss_coeff",
                         "vf_clip_param", "kl_target", "grad_clip"})



def hparam_rules(hp: dict[str, Any]) -> dict[str, Any]:
    """What each ``rllib:PPO`` hyperparameter may be (checked at spec time, search spaces included)."""
    from rlpop.agents import hparam_rules as R

    tbs = hp.get("train_batch_size")
    tbs = tbs if isinstance(tbs, int) and not isinstance(tbs, bool) and tbs >= 1 else None
    return {
        "lr": R.positive(3e-4), "clip_param": R.positive(0.2), "lambda_": R.unit(0.95),
        "gamma": R.unit(0.99, lo_open=True), "entropy_coeff": R.nonnegative(0.01), "vf_loss_coeff": R.nonnegative(0.5),
        "vf_clip_param": R.positive(10.0), "kl_target": R.positive(0.01),
        "grad_clip": R.Rule("real", lo=0.0, lo_open=True, none_ok=True, example=0.5),
        "train_batch_size": R.integer(1, example=2048), "minibatch_size": R.integer(1, hi=tbs, example=64),
        "num_epochs": R.integer(1, example=10), "num_envs": R.integer(1, example=8), "hidden": R.Rule("layers"),
        "activation": R.one_of("tanh", "relu", "elu", "swish", "silu", "linear"), "vf_share_layers": R.flag(),
        "use_kl_loss": R.flag(), "kl_coeff": R.nonnegative(0.2), "normalize_obs": R.flag(),
    }


#: the hyperparameters the Learner reads from its config (per module) at every update
_LEARNER_CONFIG_KEYS = ("lr", "clip_param", "lambda_", "gamma", "entropy_coeff", "vf_loss_coeff",
                        "vf_clip_param", "kl_target", "grad_clip")

# a local Ray session this module started (inline backend), and how many live members use it
_ray_owned = False
_live_members = 0


def _acquire_ray() -> None:
    global _ray_owned, _live_members
    import ray

    if not ray.is_initialized():
        # a lean local session: nothing is scheduled on it (env runner and learner are local), so no worker
        # processes are prestarted
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False,
                 _system_config={"prestart_worker_first_driver": False, "enable_worker_prestart": False})
        _ray_owned = True
    _live_members += 1


def _release_ray() -> None:
    global _ray_owned, _live_members
    _live_members = max(0, _live_members - 1)
    if _live_members == 0 and _ray_owned:
        import ray

        ray.shutdown()
        _ray_owned = False


# ------------------------------------------------------------------ callbacks and env (module level: picklable)
def _on_episode_end(*, episode, prev_episode_chunks=None, env_runner=None, **_: Any) -> None:
    """Record each finished episode's full return (all its chunks) on the local EnvRunner."""
    ret = float(episode.get_return()) + sum(float(c.get_return()) for c in (prev_episode_chunks or []))
    env_runner.__dict__.setdefault("_rlpop_returns", []).append(ret)


def _on_sample_end(*, env_runner=None, samples=None, **_: Any) -> None:
    """Count the env steps each ``EnvRunner.sample()`` consumed."""
    n = sum(len(e) for e in (samples or []))
    env_runner.__dict__["_rlpop_steps"] = env_runner.__dict__.get("_rlpop_steps", 0) + n


def _mean_std_filter(env=None, spaces=None, device=None):
    from ray.rllib.connectors.env_to_module.mean_std_filter import MeanStdFilter

    return MeanStdFilter(multi_agent=False)


class _EnvCreator:
    """Ray tune registry creator: builds the env through rlpop's registry (custom envs included)."""

    def __init__(self, env_id: str, env_kwargs: dict[str, Any]):
        self.env_id, self.env_kwargs = env_id, dict(env_kwargs)

    def __call__(self, config: dict | None = None):
        from rlpop.envs import make_env

        return make_env(self.env_id, **{**self.env_kwargs, **dict(config or {})})


def _register_env(env_id: str, env_kwargs: dict[str, Any]) -> str:
    """Register ``env_id`` (+ kwargs) with Ray tune's registry under a name of its own; return the name."""
    from ray.tune.registry import register_env

    import rlpop.envs  # noqa: F401  (rlpop's own envs and shipped registrations)

    try:
        tag = json.dumps(env_kwargs, sort_keys=True, default=repr)
    except TypeError:
        tag = repr(sorted(env_kwargs.items()))
    name = f"rlpop:{env_id}" + (f"#{hashlib.sha1(tag.encode()).hexdigest()[:8]}" if env_kwargs else "")
    register_env(name, _EnvCreator(env_id, env_kwargs))
    return name


def _to_float(v: Any) -> float | None:
    try:
        f = float(np.asarray(v).item()) if np.asarray(v).size == 1 else None
    except (TypeError, ValueError):
        return None
    return f


class RLlibPPO:
    """``rllib:PPO`` -- RLlib's PPO (new API stack) behind rlpop's learner protocol."""

    mutable_hparams: ClassVar[frozenset[str]] = PPO_MUTABLE
    DEFAULTS: ClassVar[dict[str, Any]] = PPO_DEFAULTS
    needs_env: ClassVar[bool] = True
    name = "rllib:PPO"

    def __init__(self, env_id: str, hparams: dict[str, Any] | None = None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None):
        self.hp = resolve_hparams(self.name, PPO_DEFAULTS, hparams)
        from rlpop.envs import check_env_id

        check_env_id(env_id)
        self.env_id, self.seed = env_id, int(seed)
        _acquire_ray()
        self._closed = False
        try:
            self.algo = self._build(env_id, dict(env_kwargs or {}))
        except BaseException:
            self._closed = True
            _release_ray()
            raise
        self._apply_hparams()

    def _build(self, env_id: str, env_kwargs: dict[str, Any]):
        from ray.rllib.algorithms.ppo import PPOConfig
        from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

        hp = self.hp
        env_name = _register_env(env_id, env_kwargs)
        cfg = (
            PPOConfig()
            .api_stack(enable_rl_module_and_learner=True, enable_env_runner_and_connector_v2=True)
            .framework("torch")
            .environment(env=env_name)
            .env_runners(num_env_runners=0, num_envs_per_env_runner=int(hp["num_envs"]),
                         rollout_fragment_length="auto",
                         env_to_module_connector=_mean_std_filter if hp["normalize_obs"] else None)
            .learners(num_learners=0, num_gpus_per_learner=0)
            .training(lr=float(hp["lr"]), gamma=float(hp["gamma"]), lambda_=float(hp["lambda_"]),
                      clip_param=float(hp["clip_param"]), entropy_coeff=float(hp["entropy_coeff"]),
                      vf_loss_coeff=float(hp["vf_loss_coeff"]), vf_clip_param=float(hp["vf_clip_param"]),
                      kl_target=float(hp["kl_target"]), kl_coeff=float(hp["kl_coeff"]),
                      use_kl_loss=bool(hp["use_kl_loss"]),
                      grad_clip=None if hp["grad_clip"] is None else float(hp["grad_clip"]),
                      train_batch_size_per_learner=int(hp["train_batch_size"]),
                      minibatch_size=int(hp["minibatch_size"]), num_epochs=int(hp["num_epochs"]))
            .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=list(hp["hidden"]),
                                                       fcnet_activation=str(hp["activation"]),
                                                       vf_share_layers=bool(hp["vf_share_layers"])))
            .callbacks(on_episode_end=_on_episode_end, on_sample_end=_on_sample_end)
            .debugging(seed=self.seed, log_level="ERROR")
        )
        import logging
        import warnings

        # RLlib's build-time chatter (new-API-stack notice, deprecations, gymnasium re-registering its
        # "rllib-single-agent-env-v0" wrapper id on every build) would repeat once per member
        logging.getLogger("ray.rllib").setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Overriding environment.*")
            return cfg.build_algo()

    # ---------------------------------------------------------------- RLlib internals we reach into
    @property
    def learner(self):
        """The Algorithm's local Learner (``num_learners=0``)."""
        return self.algo.learner_group._learner

    @property
    def env_runner(self):
        """The Algorithm's local EnvRunner (``num_env_runners=0``)."""
        return self.algo.env_runner

    def gae_connector(self):
        """The ``GeneralAdvantageEstimation`` piece of the Learner's connector pipeline."""
        from ray.rllib.connectors.learner import GeneralAdvantageEstimation

        pipeline = self.learner._learner_connector
        for piece in getattr(pipeline, "connectors", []):
            if isinstance(piece, GeneralAdvantageEstimation):
                return piece
        raise RuntimeError("rllib:PPO: no GeneralAdvantageEstimation piece in the Learner connector pipeline")

    def _apply_hparams(self) -> None:
        """Write the mutable hparams into everything the Learner reads at its next update (see module doc)."""
        from ray.rllib.utils.schedules.scheduler import Scheduler

        hp, learner = self.hp, self.learner
        values = {k: (None if k == "grad_clip" and hp[k] is None else float(hp[k])) for k in _LEARNER_CONFIG_KEYS}
        configs = [learner.config, *learner.config._per_module_overrides.values()]
        for cfg in configs:
            frozen = getattr(cfg, "_is_frozen", False)
            if frozen:
                object.__setattr__(cfg, "_is_frozen", False)
            for k, v in values.items():
                setattr(cfg, k, v)
            if frozen:
                object.__setattr__(cfg, "_is_frozen", True)
        # lr: a fresh fixed-value Scheduler per optimizer (after_gradient_based_update re-applies the
        # scheduler's value after every update) and the optimizer's own param groups, now
        for optimizer in list(learner._optimizer_lr_schedules):
            learner._optimizer_lr_schedules[optimizer] = Scheduler(
                fixed_value_or_schedule=values["lr"], framework=learner.framework, device=learner._device)
        for optimizer in learner._named_optimizers.values():
            learner._set_optimizer_lr(optimizer, values["lr"])
        # entropy coefficient: a fresh Scheduler per module
        for mid in list(learner.module.keys()):
            learner.entropy_coeff_schedulers_per_module[mid] = Scheduler(
                fixed_value_or_schedule=values["entropy_coeff"], framework=learner.framework,
                device=learner._device)
        # GAE (Learner connector)
        gae = self.gae_connector()
        gae.gamma, gae.lambda_ = values["gamma"], values["lambda_"]

    def used_hparams(self, module_id: str = "default_policy") -> dict[str, Any]:
        """What the Learner will use at its next update, read back from RLlib's own objects."""
        learner = self.learner
        cfg = learner.config.get_config_for_module(module_id)
        opt_lrs = [float(learner._get_optimizer_lr(o)) for o in learner._named_optimizers.values()]
        gae = self.gae_connector()
        return {
            "optimizer_lr": opt_lrs[0] if len(set(opt_lrs)) == 1 else opt_lrs,
            "scheduler_lr": [float(s.get_current_value()) for s in learner._optimizer_lr_schedules.values()],
            "clip_param": cfg.clip_param, "vf_clip_param": cfg.vf_clip_param, "vf_loss_coeff": cfg.vf_loss_coeff,
            "kl_target": cfg.kl_target, "grad_clip": cfg.grad_clip,
            "entropy_coeff": float(learner.entropy_coeff_schedulers_per_module[module_id].get_current_value()),
            "gae_gamma": gae.gamma, "gae_lambda": gae.lambda_,
        }

    # ---------------------------------------------------------------- protocol
    def train(self, steps: int) -> TrainResult:
        runner = self.env_runner
        runner.__dict__["_rlpop_returns"] = []
        runner.__dict__["_rlpop_steps"] = 0
        updates: list[dict[str, float]] = []
        metrics: dict[str, float] = {}
        while runner.__dict__["_rlpop_steps"] < int(steps) or not updates:
            before = runner.__dict__["_rlpop_steps"]
            result = self.algo.train()
            metrics = self._metrics(result)
            updates.append({**metrics, "steps": float(runner.__dict__["_rlpop_steps"] - before)})
        return TrainResult(steps=int(runner.__dict__["_rlpop_steps"]),
                           episode_returns=list(runner.__dict__["_rlpop_returns"]),
                           metrics=metrics, updates=updates)

    @staticmethod
    def _metrics(result: dict[str, Any]) -> dict[str, float]:
        out: dict[str, float] = {}
        for k, v in (result.get("learners", {}).get("default_policy", {}) or {}).items():
            f = _to_float(v) if not isinstance(v, dict) else None
            if f is not None and math.isfinite(f):
                out[{"default_optimizer_learning_rate": "lr"}.get(k, k)] = f
        return out

    def get_hparams(self) -> dict[str, Any]:
        return dict(self.hp)

    def set_hparams(self, hparams: dict[str, Any]) -> None:
        check_mutable(self.name, hparams, self.hp, PPO_MUTABLE)
        self.hp.update(hparams)
        self._apply_hparams()

    def get_state(self) -> dict[str, Any]:
        """The Algorithm's own state (Learner: RLModule weights + optimizer; EnvRunner: connector states,
        e.g. the MeanStdFilter; metrics; iteration) plus rlpop's hparams."""
        return {"algo": self.algo.get_state(), "hparams": dict(self.hp)}

    def set_state(self, state: dict[str, Any]) -> None:
        from ray.rllib.core import COMPONENT_LEARNER, COMPONENT_LEARNER_GROUP
        from ray.rllib.utils.metrics import WEIGHTS_SEQ_NO

        algo_state = dict(state["algo"])
        # RLlib loads weights only when their sequence number is ahead of the Learner's (and then of the
        # EnvRunner's): a copy from a member that has made fewer updates would be silently dropped. Number
        # the copied weights past both, so the Learner takes them and syncs them to the EnvRunner.
        lg = algo_state.get(COMPONENT_LEARNER_GROUP)
        if lg is not None and COMPONENT_LEARNER in lg:
            lstate = dict(lg[COMPONENT_LEARNER])
            lstate[WEIGHTS_SEQ_NO] = 1 + max(int(lstate.get(WEIGHTS_SEQ_NO, 0)),
                                             int(self.learner._weights_seq_no),
                                             int(getattr(self.env_runner, "_weights_seq_no", 0)))
            algo_state[COMPONENT_LEARNER_GROUP] = {**lg, COMPONENT_LEARNER: lstate}
        self.algo.set_state(algo_state)
        self.hp.update({k: v for k, v in state.get("hparams", {}).items() if k in PPO_MUTABLE})
        self._apply_hparams()  # the loaded optimizer state carries the source's lr: ours wins

    def export(self, path: str) -> list[str]:
        """``rlpop export``'s hook: an RLlib checkpoint directory of the Algorithm with this member's state
        (``Algorithm.from_checkpoint(path)``; its RLModule alone: ``RLModule.from_checkpoint(path /
        "learner_group" / "learner" / "rl_module" / "default_policy")``). Returns [path]."""
        import os

        out = os.path.abspath(str(path))
        self.algo.save_to_path(out)
        return [out]

    # ---------------------------------------------------------------- acting (tests, replay)
    def policy_logits(self, obs: np.ndarray, where: str = "learner") -> np.ndarray:
        """Action-distribution inputs of the policy for a batch of observations (no obs filter applied);
        ``where``: the Learner's RLModule or the EnvRunner's (``"env_runner"``)."""
        import torch

        module = (self.learner.module["default_policy"] if where == "learner" else self.env_runner.module)
        with torch.no_grad():
            out = module.forward_inference({"obs": torch.as_tensor(np.asarray(obs, dtype=np.float32))})
        return out["action_dist_inputs"].cpu().numpy()

    def act(self, obs: np.ndarray, where: str = "learner") -> np.ndarray:
        """Deterministic actions: the argmax of the logits (Discrete), the Gaussian's mean (Box)."""
        import gymnasium as gym

        out = self.policy_logits(obs, where)
        space = self.learner.module["default_policy"].action_space
        if isinstance(space, gym.spaces.Box):
            return out[..., : out.shape[-1] // 2]  # [mean, log_std]
        return out.argmax(-1)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.algo.stop()
        finally:
            _release_ray()


#: the RLlib algorithms rlpop knows, by the name after "rllib:"
ALGORITHMS: dict[str, type] = {"PPO": RLlibPPO}


def adapter_class(algo: str) -> type:
    """The learner class for ``"rllib:<algo>"``; ValueError naming the known algorithms otherwise."""
    try:
        return ALGORITHMS[algo]
    except KeyError:
        raise ValueError(f"agent.learner='rllib:{algo}': unknown RLlib algorithm {algo!r}; "
                         f"known: {', '.join('rllib:' + a for a in sorted(ALGORITHMS))}") from None

"""stable-baselines3 algorithms as population members: ``Agent("sb3:PPO", hparams={...})``.

``rlpop.agents.learner_class("sb3:PPO")`` calls :func:`adapter_class` ("PPO", "A2C", "SAC", "TD3"), which
returns a learner class following :class:`rlpop.agents.base.Learner`. stable-baselines3 is imported only when
a member is built, so importing rlpop (and validating an experiment's hparam names) never needs it.

Envs come from rlpop's registry (:func:`rlpop.envs.make_env`, so custom registered envs work), each wrapped in
SB3's ``Monitor`` (the raw episode returns Q is computed from), ``n_envs`` of them in a ``DummyVecEnv``, wrapped
in ``VecNormalize`` when ``normalize=True`` (off by default: SB3's own default, right for CartPole-like tasks;
turn it on for MuJoCo). Each ``train(steps)`` is one ``model.learn(steps, reset_num_timesteps=False)``: episodes
continue across calls, and the steps reported are the growth of ``model.num_timesteps`` (whole rollouts for
PPO/A2C).

Hyperparameter names are SB3's (``n_steps``, ``batch_size``, ``n_epochs``, ``clip_range``, ``tau``, ...) except
``lr`` (SB3's ``learning_rate``), rlpop's name everywhere. A mutation reaches the running algorithm before its
next update: ``lr`` replaces SB3's ``lr_schedule`` (SB3 resets every optimiser's param-group lr from it at each
update, so setting the param groups alone would be undone) and is written into every optimiser at once;
``clip_range`` / ``clip_range_vf`` replace their schedules; ``gamma`` / ``gae_lambda`` also go to the rollout
buffer (and ``gamma`` to ``VecNormalize``'s return filter and to a replay buffer that stores one).
"""
from __future__ import annotations

import copy
import importlib.util
from typing import Any, ClassVar

from rlpop.agents.base import TrainResult, check_mutable, resolve_hparams

#: shared by every algorithm: fixed for a member's lifetime
COMMON: dict[str, Any] = {
    "policy": "MlpPolicy",
    "policy_kwargs": None,     # e.g. {"net_arch": [64, 64]}; plain JSON-like values only
    "n_envs": 1,               # envs in the member's DummyVecEnv
    "normalize": False,        # wrap the envs in VecNormalize (obs + reward); SB3's default is off
    "norm_obs": True,          # (with normalize=True)
    "norm_reward": True,       # (with normalize=True)
    "clip_obs": 10.0,
    "clip_reward": 10.0,
    "device": "cpu",
    "torch_threads": 1,        # torch.set_num_threads in the member's process (0: leave as is)
}

ALGOS: dict[str, dict[str, Any]] = {
    # SB3's own defaults per algorithm
    "PPO": {
        "defaults": {"lr": 3e-4, "n_steps": 2048, "batch_size": 64, "n_epochs": 10, "gamma": 0.99,
                     "gae_lambda": 0.95, "clip_range": 0.2, "clip_range_vf": None, "normalize_advantage": True,
                     "ent_coef": 0.0, "vf_coef": 0.5, "max_grad_norm": 0.5, "target_kl": None},
        "mutable": {"lr", "batch_size", "n_epochs", "gamma", "gae_lambda", "clip_range", "clip_range_vf",
                    "ent_coef", "vf_coef", "max_grad_norm", "target_kl"},
    },
    "A2C": {
        "defaults": {"lr": 7e-4, "n_steps": 5, "gamma": 0.99, "gae_lambda": 1.0, "ent_coef": 0.0,
                     "vf_coef": 0.5, "max_grad_norm": 0.5, "rms_prop_eps": 1e-5, "use_rms_prop": True,
                     "normalize_advantage": False},
        "mutable": {"lr", "gamma", "gae_lambda", "ent_coef", "vf_coef", "max_grad_norm"},
    },
    "SAC": {
        "defaults": {"lr": 3e-4, "buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 256,
                     "tau": 0.005, "gamma": 0.99, "train_freq": 1, "gradient_steps": 1, "ent_coef": "auto",
                     "target_update_interval": 1, "target_entropy": "auto", "device": "auto"},
        "mutable": {"lr", "batch_size", "tau", "gamma", "gradient_steps", "target_update_interval"},
    },
    "TD3": {
        # action_noise: std of the Gaussian exploration noise, as a fraction of the action range's half-width
        # (SB3's TD3 has none by default; RL Zoo uses 0.1); 0 = none
        "defaults": {"lr": 1e-3, "buffer_size": 1_000_000, "learning_starts": 100, "batch_size": 256,
                     "tau": 0.005, "gamma": 0.99, "train_freq": 1, "gradient_steps": 1, "policy_delay": 2,
                     "target_policy_noise": 0.2, "target_noise_clip": 0.5, "action_noise": 0.1,
                     "device": "auto"},
        "mutable": {"lr", "batch_size", "tau", "gamma", "gradient_steps", "policy_delay", "target_policy_noise",
                    "target_noise_clip", "action_noise"},
    },
}
ON_POLICY = frozenset({"PPO", "A2C"})
OFF_POLICY = frozenset({"SAC", "TD3"})
_OURS = frozenset(COMMON) | {"lr", "action_noise"}  # not passed to the SB3 constructor as they are


def _to_torch(obj: Any) -> Any:
    """numpy arrays/scalars (nested) -> CPU torch tensors / Python scalars, so states load with weights_only."""
    import numpy as np
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu().clone()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.array(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _to_torch(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_torch(v) for v in obj)
    return obj


def _to_numpy(t: Any):
    import numpy as np

    return t.numpy().copy() if hasattr(t, "numpy") else np.asarray(t)


class SB3Member:
    """A stable-baselines3 algorithm behind rlpop's learner protocol (see the module docstring).

    State (``get_state``): policy weights (every network SB3 keeps in ``model.policy``: for SAC/TD3 the target
    networks too), every optimiser's state (and SAC's learned log entropy coefficient), ``VecNormalize``'s
    statistics, the hyperparameters, ``num_timesteps`` and the update count -- CPU torch tensors and Python
    scalars/str/lists/dicts only, so checkpoints load with ``torch.load(weights_only=True)``. ``set_state`` makes
    this member act exactly as the source; its envs then start fresh episodes (none finished with the old
    weights is reported). Its own ``num_timesteps`` is kept (the worker counts steps; SB3's counter only drives
    ``learning_starts`` and schedules, which are constant here).

    Replay buffers (SAC, TD3) are **not** copied by ``get_state``/``set_state``: a buffer holds up to
    ``buffer_size`` transitions (1e6 by default: ~100 MB for Hopper, several GB for Humanoid's observations),
    which a PBT exploit would move between processes every ready interval and a checkpoint would write to
    disk; the member that copies keeps its own buffer (collected by a policy of the same population, so
    off-policy learning handles it), the same choice as the published PBT/SAC setups that keep per-member
    buffers. The learned networks, targets and optimisers are copied, so the copy acts identically.
    """

    algo: ClassVar[str] = ""
    mutable_hparams: ClassVar[frozenset[str]] = frozenset()
    DEFAULTS: ClassVar[dict[str, Any]] = {}
    needs_env: ClassVar[bool] = True

    def __init__(self, env_id: str, hparams: dict[str, Any] | None = None, seed: int = 0,
                 env_kwargs: dict[str, Any] | None = None):
        import gymnasium as gym
        import stable_baselines3 as sb3
        import torch
        from stable_baselines3.common.logger import Logger
        from stable_baselines3.common.monitor import Monitor
        from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

        from rlpop.envs import make_env

        name = f"sb3:{self.algo}"
        self.name = name
        self.hp = resolve_hparams(name, self.DEFAULTS, hparams)
        hp = self.hp
        self.env_id, self.seed = env_id, int(seed)
        if hp["torch_threads"]:
            torch.set_num_threads(int(hp["torch_threads"]))
        self._check_values(hp)
        env_kwargs = dict(env_kwargs or {})
        n_envs = int(hp["n_envs"])  # >= 1: its value rule

        def thunk():
            return Monitor(make_env(env_id, **env_kwargs))

        venv = DummyVecEnv([thunk] * n_envs)
        if self.algo in OFF_POLICY and not isinstance(venv.action_space, gym.spaces.Box):
            venv.close()
            raise ValueError(f"{name} needs continuous (Box) actions; env {env_id!r} has {venv.action_space}. "
                             "Use sb3:PPO or sb3:A2C for discrete actions")
        self.vecnorm = None
        if hp["normalize"]:
            venv = VecNormalize(venv, norm_obs=bool(hp["norm_obs"]), norm_reward=bool(hp["norm_reward"]),
                                clip_obs=float(hp["clip_obs"]), clip_reward=float(hp["clip_reward"]),
                                gamma=float(hp["gamma"]))
            self.vecnorm = venv
        self.venv = venv

        kwargs = {k: v for k, v in hp.items() if k not in _OURS}
        kwargs["learning_rate"] = float(hp["lr"])
        if self.algo == "TD3":
            kwargs["action_noise"] = self._make_noise(float(hp["action_noise"]))
        if hp["policy_kwargs"] is not None:
            kwargs["policy_kwargs"] = copy.deepcopy(dict(hp["policy_kwargs"]))
        cls = getattr(sb3, self.algo)
        self.model = cls(hp["policy"], venv, seed=self.seed, device=hp["device"], verbose=0, **kwargs)
        self.model.set_logger(Logger(folder=None, output_formats=[]))  # no stdout; metrics read after learn
        self._returns: list[float] = []
        self._callback = self._make_callback()
        self._apply_hparams(hp)

    # ---------------------------------------------------------------- protocol
    def train(self, steps: int) -> TrainResult:
        before = int(self.model.num_timesteps)
        self._returns.clear()
        self.model.learn(total_timesteps=int(steps), callback=self._callback, log_interval=None,
                         reset_num_timesteps=False, progress_bar=False)
        done = int(self.model.num_timesteps) - before
        log = self.model.logger
        metrics = {k.split("/", 1)[1]: float(v) for k, v in log.name_to_value.items()
                   if k.startswith("train/") and isinstance(v, (int, float))}
        log.dump()  # clears the accumulated values (no output formats)
        returns = list(self._returns)
        self._returns.clear()
        return TrainResult(done, returns, metrics)

    def get_hparams(self) -> dict[str, Any]:
        return copy.deepcopy(self.hp)

    def set_hparams(self, hparams: dict[str, Any]) -> None:
        """Takes effect at the algorithm's next update. Unknown or fixed names raise ValueError naming them."""
        check_mutable(self.name, hparams, self.hp, self.mutable_hparams)
        new = {**self.hp, **hparams}
        self._check_values(new)
        self.hp = new
        self._apply_hparams(new)

    def get_state(self) -> dict[str, Any]:
        m = self.model
        state: dict[str, Any] = {
            "algo": self.algo,
            "policy": {k: v.detach().cpu().clone() for k, v in m.policy.state_dict().items()},
            "optimizers": {k: _to_torch(copy.deepcopy(opt.state_dict())) for k, opt in self._optimizers().items()},
            "hparams": copy.deepcopy(self.hp),
            "num_timesteps": int(m.num_timesteps),
            "n_updates": int(getattr(m, "_n_updates", 0)),
        }
        if getattr(m, "log_ent_coef", None) is not None:
            state["log_ent_coef"] = m.log_ent_coef.detach().cpu().clone()
        if self.vecnorm is not None:
            v = self.vecnorm
            state["vecnorm"] = {
                "obs_mean": _to_torch(v.obs_rms.mean), "obs_var": _to_torch(v.obs_rms.var),
                "obs_count": float(v.obs_rms.count),
                "ret_mean": _to_torch(v.ret_rms.mean), "ret_var": _to_torch(v.ret_rms.var),
                "ret_count": float(v.ret_rms.count),
                "clip_obs": float(v.clip_obs), "clip_reward": float(v.clip_reward), "epsilon": float(v.epsilon),
                "gamma": float(v.gamma), "norm_obs": bool(v.norm_obs), "norm_reward": bool(v.norm_reward),
            }
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        """Weights, optimisers, normalisers and mutable hparams of ``state``; the envs start fresh episodes."""
        import torch

        if state.get("algo") != self.algo:
            raise ValueError(f"{self.name}: cannot load the state of a {state.get('algo')!r} member")
        m = self.model
        m.policy.load_state_dict(state["policy"])
        opts = self._optimizers()
        for k, opt in opts.items():
            if k in state["optimizers"]:
                opt.load_state_dict(copy.deepcopy(state["optimizers"][k]))
        if "log_ent_coef" in state and getattr(m, "log_ent_coef", None) is not None:
            with torch.no_grad():  # in place: the entropy optimiser holds this very tensor
                m.log_ent_coef.copy_(state["log_ent_coef"].to(m.log_ent_coef.device))
        vn = state.get("vecnorm")
        if vn is not None and self.vecnorm is not None:
            v = self.vecnorm
            v.obs_rms.mean, v.obs_rms.var = _to_numpy(vn["obs_mean"]), _to_numpy(vn["obs_var"])
            v.obs_rms.count = float(vn["obs_count"])
            v.ret_rms.mean, v.ret_rms.var = _to_numpy(vn["ret_mean"]), _to_numpy(vn["ret_var"])
            v.ret_rms.count = float(vn["ret_count"])
            v.clip_obs, v.clip_reward, v.epsilon = vn["clip_obs"], vn["clip_reward"], vn["epsilon"]
        self.hp.update({k: copy.deepcopy(v) for k, v in state["hparams"].items() if k in self.mutable_hparams})
        self._apply_hparams(self.hp)
        m._last_obs = None  # the next learn() resets the envs: fresh episodes under the copied weights

    #: what ``rlpop export`` appends to the default file name
    export_suffix = ".zip"

    def export(self, path: str) -> list[str]:
        """``rlpop export``'s hook: SB3's own ``.zip`` (``<ALGO>.load(path)``) and, when the member normalises
        (``normalize=True``), its VecNormalize statistics beside it (``<stem>.vecnormalize.pkl``:
        ``VecNormalize.load(file, venv)``, then ``training = False``). Returns the files written."""
        out = str(path)
        if not out.endswith(".zip"):
            out += ".zip"
        self.model.save(out)
        written = [out]
        if self.vecnorm is not None:
            stats = out[:-len(".zip")] + ".vecnormalize.pkl"
            self.vecnorm.save(stats)
            written.append(stats)
        return written

    def act(self, obs, deterministic: bool = True):
        """Actions for a batch of raw observations, normalised as the member sees them (VecNormalize)."""
        import numpy as np

        obs = np.asarray(obs, dtype=np.float32)
        if self.vecnorm is not None:
            obs = self.vecnorm.normalize_obs(obs)
        actions, _ = self.model.predict(obs, deterministic=deterministic)
        return actions

    def optimizers(self) -> dict:
        """Every torch optimiser of the algorithm, by name."""
        return self._optimizers()

    def close(self) -> None:
        try:
            self.venv.close()
        except Exception:  # noqa: BLE001 -- closing twice or a broken env must not hide the real error
            pass

    # ---------------------------------------------------------------- internals
    def _optimizers(self) -> dict:
        m = self.model
        if self.algo in ON_POLICY:
            return {"policy": m.policy.optimizer}
        out = {"actor": m.actor.optimizer, "critic": m.critic.optimizer}
        if getattr(m, "ent_coef_optimizer", None) is not None:
            out["ent_coef"] = m.ent_coef_optimizer
        return out

    def _check_values(self, hp: dict[str, Any]) -> None:
        """The algorithm's value rules (:func:`_rules_for`, also checked at spec time), on resolved hparams."""
        from rlpop.agents.hparam_rules import check_values

        check_values(self.hparam_rules(hp), hp, self.name)

    def _make_noise(self, std: float):
        import numpy as np
        from stable_baselines3.common.noise import NormalActionNoise

        if std <= 0:
            return None
        space = self.venv.action_space
        half = (np.asarray(space.high, dtype=np.float64) - np.asarray(space.low, dtype=np.float64)) / 2
        return NormalActionNoise(mean=np.zeros(space.shape), sigma=std * half)

    def _apply_hparams(self, hp: dict[str, Any]) -> None:
        """Push the mutable hyperparameters into the live SB3 objects (effective at the next update)."""
        from stable_baselines3.common.utils import FloatSchedule, update_learning_rate

        m = self.model
        lr = float(hp["lr"])
        m.learning_rate = lr
        m.lr_schedule = FloatSchedule(lr)  # SB3 resets param-group lr from this at every update
        for opt in self._optimizers().values():
            update_learning_rate(opt, lr)
        m.gamma = float(hp["gamma"])
        if self.vecnorm is not None:
            self.vecnorm.gamma = float(hp["gamma"])
        if self.algo in ON_POLICY:
            m.gae_lambda = float(hp["gae_lambda"])
            m.rollout_buffer.gamma = float(hp["gamma"])
            m.rollout_buffer.gae_lambda = float(hp["gae_lambda"])
            m.ent_coef = float(hp["ent_coef"])
            m.vf_coef = float(hp["vf_coef"])
            m.max_grad_norm = float(hp["max_grad_norm"])
        if self.algo == "PPO":
            m.clip_range = FloatSchedule(float(hp["clip_range"]))
            m.clip_range_vf = FloatSchedule(float(hp["clip_range_vf"])) if hp["clip_range_vf"] else None
            m.n_epochs = int(hp["n_epochs"])
            m.batch_size = int(hp["batch_size"])
            m.target_kl = None if hp["target_kl"] is None else float(hp["target_kl"])
        if self.algo in OFF_POLICY:
            m.tau = float(hp["tau"])
            m.batch_size = int(hp["batch_size"])
            m.gradient_steps = int(hp["gradient_steps"])
            if hasattr(m.replay_buffer, "gamma"):  # n-step buffers discount inside the buffer
                m.replay_buffer.gamma = float(hp["gamma"])
        if self.algo == "SAC":
            m.target_update_interval = int(hp["target_update_interval"])
        if self.algo == "TD3":
            m.policy_delay = int(hp["policy_delay"])
            m.target_policy_noise = float(hp["target_policy_noise"])
            m.target_noise_clip = float(hp["target_noise_clip"])
            std = float(hp["action_noise"])
            current = m.action_noise
            if std <= 0:
                m.action_noise = None
            elif current is None or not hasattr(current, "_sigma"):
                m.action_noise = self._make_noise(std)
            else:
                import numpy as np

                space = self.venv.action_space
                current._sigma = std * (np.asarray(space.high, dtype=np.float64)
                                        - np.asarray(space.low, dtype=np.float64)) / 2

    def _make_callback(self):
        from stable_baselines3.common.callbacks import BaseCallback

        returns = self._returns

        class _Episodes(BaseCallback):
            """Raw returns (Monitor's, before any VecNormalize) of the episodes that finish."""

            def _on_step(self) -> bool:
                for info in self.locals.get("infos") or ():
                    ep = info.get("episode") if isinstance(info, dict) else None
                    if ep is not None:
                        returns.append(float(ep["r"]))
                return True

        return _Episodes()


def _rules_for(algo: str):
    """``hparam_rules(hp)`` of one algorithm: checked at spec time (a search space that could explore out of
    range is clipped or refused before the run starts) and by the member itself on every hparams change."""

    def hparam_rules(hp: dict[str, Any]) -> dict[str, Any]:
        from rlpop.agents import hparam_rules as R

        rules = {"lr": R.learning_rate(3e-4), "gamma": R.unit(0.99, lo_open=True), "n_envs": R.integer(1)}
        if algo in ("PPO", "A2C"):
            rules.update(gae_lambda=R.unit(0.95), ent_coef=R.nonnegative(0.0), vf_coef=R.nonnegative(0.5),
                         n_steps=R.integer(1, example=2048))
        if algo == "PPO":
            n = hp.get("n_steps"), hp.get("n_envs")
            buffer = n[0] * n[1] if all(isinstance(v, int) and v >= 1 for v in n) else None
            rules.update(batch_size=R.integer(2, hi=buffer, example=64), n_epochs=R.integer(1, example=10),
                         clip_range=R.positive(0.2))
        if algo in OFF_POLICY:
            rules.update(batch_size=R.integer(1, example=256), tau=R.unit(0.005))
        return rules

    return staticmethod(hparam_rules)


def _make_class(key: str) -> type:
    spec = ALGOS[key]
    return type(f"SB3{key}", (SB3Member,), {
        "algo": key, "DEFAULTS": {**COMMON, **spec["defaults"]}, "mutable_hparams": frozenset(spec["mutable"]),
        "hparam_rules": _rules_for(key),
        "__module__": __name__, "__qualname__": f"SB3{key}",
        "__doc__": f"stable-baselines3 {key} as a population member (``sb3:{key}``); see :class:`SB3Member`.\n\n"
                   f"Mutable while training: {', '.join(sorted(spec['mutable']))}.",
    })


SB3PPO = _make_class("PPO")
SB3A2C = _make_class("A2C")
SB3SAC = _make_class("SAC")
SB3TD3 = _make_class("TD3")
_CLASSES: dict[str, type] = {"PPO": SB3PPO, "A2C": SB3A2C, "SAC": SB3SAC, "TD3": SB3TD3}


def adapter_class(algo: str) -> type:
    """The learner class for SB3 algorithm ``algo`` (``"PPO"``, ``"A2C"``, ``"SAC"``, ``"TD3"``; any case)."""
    key = algo.upper() if isinstance(algo, str) else algo
    if key not in _CLASSES:
        raise ValueError(f"agent.learner='sb3:{algo}': unknown stable-baselines3 algorithm {algo!r}; "
                         f"known: {', '.join('sb3:' + a for a in _CLASSES)}")
    if importlib.util.find_spec("stable_baselines3") is None:
        raise ValueError(f"agent.learner='sb3:{algo}' needs stable-baselines3: pip install 'rlpop[sb3]'")
    return _CLASSES[key]

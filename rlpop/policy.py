"""A trained member as a policy: numpy observation(s) in, action(s) out.

The deterministic policy of rlpop's own learners (PPO, V-MPO; batched or not: their states share one format) is
one small torch module, :class:`rlpop.policy_module.PolicyModule`, that ``rlpop export`` writes to a file and that
``Run.policy()`` runs in-process -- the same arithmetic in both places:

1. the observation normaliser (when the member trained with ``norm_obs``): ``(obs - mean) / sqrt(var + 1e-8)``
   in float64, clipped to [-10, 10], then float32 -- as the learners compute it
   (:func:`rlpop.agents.normalize.normalize_obs`);
2. the policy network (``ActorCritic.actor`` of the learner state's ``net``: the online network; V-MPO's
   actors act with a target network that lags it by at most ``target_period`` updates);
3. the deterministic action: ``argmax`` of the logits (Discrete; int64), or the Gaussian's mean clipped to the
   action space's bounds (Box; float32) -- the learners clip their actions to the bounds before ``env.step``
   too, so the env sees what it saw in training.

Input: float32 observations ``[B, obs_dim]``; output: actions ``[B]`` (Discrete) or ``[B, *action_shape]``.
:class:`Policy` wraps a module (or a loaded file) with the run's spaces and env, takes one observation or a
batch, and with ``deterministic=False`` samples from the member's distribution (in-process only: a file holds
the deterministic policy).
"""
from __future__ import annotations

import json
import math
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

if TYPE_CHECKING:
    import gymnasium as gym
    import torch

    from rlpop.runs import Best, Run

#: the learners whose states this module turns into a policy module (others need an ``export`` hook)
NATIVE = ("ppo", "vmpo")
#: what ``--format`` can write, and the file extension of each
FORMATS = {"pt2": ".pt2", "torchscript": ".ts", "onnx": ".onnx"}


class PolicyError(ValueError):
    """Bad input for a policy, an export or an evaluation: one line naming the problem and the fix."""


# --------------------------------------------------------------------------- spaces
def space_to_dict(space: gym.spaces.Space) -> dict[str, Any]:
    from gymnasium import spaces

    if isinstance(space, spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, spaces.Box):
        return {"type": "Box", "shape": list(space.shape), "dtype": str(space.dtype),
                "low": np.asarray(space.low, np.float64).tolist(), "high": np.asarray(space.high, np.float64).tolist()}
    raise PolicyError(f"space {space} cannot be described (rlpop's learners take Box and Discrete spaces)")


def space_from_dict(d: dict[str, Any]) -> gym.spaces.Space:
    from gymnasium import spaces

    if d["type"] == "Discrete":
        return spaces.Discrete(int(d["n"]), start=int(d.get("start", 0)))
    dtype = np.dtype(d.get("dtype", "float32"))
    return spaces.Box(np.asarray(d["low"], dtype).reshape(d["shape"]), np.asarray(d["high"], dtype).reshape(d["shape"]),
                      dtype=dtype)


# --------------------------------------------------------------------------- the module
def net_from_state(state: dict[str, Any], observation_space, action_space):
    """The learner state's ``ActorCritic`` (``net``) at the member's own layer widths, on CPU, in eval mode."""
    import torch

    from rlpop.agents.networks import ActorCritic
    from rlpop.agents.widths import narrow_state_dict, widths

    hp = state.get("hparams") or {}
    hidden = tuple(hp.get("hidden", (64, 64)))
    ws = widths({**hp, "hidden": hidden})  # a member narrower than `hidden`: its own width (rlpop.agents.widths)
    with torch.random.fork_rng(devices=[]):
        net = ActorCritic(observation_space, action_space, hidden=ws, std=hp.get("std", "param"))
    net.load_state_dict(narrow_state_dict(state["net"], hidden, ws))
    return net.eval()


def obs_stats(state: dict[str, Any]) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, var) of the member's observation normaliser, None when it trained without ``norm_obs``."""
    if not (state.get("hparams") or {}).get("norm_obs", True) or state.get("obs_rms") is None:
        return None
    return np.asarray(state["obs_rms"]["mean"], np.float64), np.asarray(state["obs_rms"]["var"], np.float64)


def module_from_state(state: dict[str, Any], observation_space, action_space):
    """The :class:`PolicyModule` of a PPO / V-MPO learner state."""
    import copy

    from gymnasium import spaces

    net = net_from_state(state, observation_space, action_space)
    stats = obs_stats(state)
    discrete = isinstance(action_space, spaces.Discrete)
    act_dim = int(action_space.n) if discrete else int(np.prod(action_space.shape))
    shape = [] if discrete else list(action_space.shape)
    low = None if discrete else action_space.low
    high = None if discrete else action_space.high
    from rlpop.policy_module import PolicyModule

    return PolicyModule(copy.deepcopy(net.actor), discrete, act_dim, shape, stats[0] if stats else None,
               stats[1] if stats else None, low, high).eval().requires_grad_(False)


# --------------------------------------------------------------------------- the callable
class Policy:
    """A callable numpy observation(s) -> action(s). ``meta`` says where it comes from (env, member, step, Q,
    hparams: the export's sidecar fields); :meth:`make_env` builds the env it was trained on."""

    def __init__(self, forward: Callable[[np.ndarray], np.ndarray], observation_space, action_space,
                 meta: dict[str, Any], sampler: Callable[[np.ndarray, Any], np.ndarray] | None = None,
                 module: Any = None):
        self._forward = forward
        self._sampler = sampler
        self.observation_space = observation_space
        self.action_space = action_space
        self.meta = meta
        self.module = module  # the torch module (in-process policies of rlpop's learners), else None
        self._generator = None
        self.obs_dim = int(np.prod(observation_space.shape))

    def __repr__(self) -> str:
        m = self.meta
        return (f"Policy(env={m.get('env')!r}, member=w{m.get('member')}, step={m.get('step')}, "
                f"q={m.get('q')}, checkpoint={m.get('checkpoint')!r})")

    def seed(self, seed: int) -> None:
        """Seed the sampling of ``deterministic=False`` calls."""
        import torch

        self._generator = torch.Generator().manual_seed(int(seed))

    def __call__(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        x = np.asarray(obs, dtype=np.float32)
        single = x.ndim == len(self.observation_space.shape)
        x = x.reshape(-1, self.obs_dim)
        if deterministic:
            a = self._forward(x)
        else:
            if self._sampler is None:
                raise PolicyError("this policy is deterministic only (an exported file holds the deterministic "
                                  "policy); sample from the run directory instead: rlpop evaluate RUN_DIR "
                                  "--stochastic")
            if self._generator is None:
                self.seed(0)
            a = self._sampler(x, self._generator)
        return a[0] if single else a

    def make_env(self, render_mode: str | None = None) -> gym.Env:
        return make_env_from(self.meta, render_mode=render_mode)


def policy_from_module(module, observation_space, action_space, meta, net=None, stats=None) -> Policy:
    """A :class:`Policy` running ``module`` eagerly, sampling from ``net`` (ActorCritic) when stochastic."""
    import torch

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return module(torch.from_numpy(x)).numpy()

    sampler = None
    if net is not None:
        from gymnasium import spaces

        from rlpop.agents.normalize import normalize_obs
        from rlpop.agents.networks import sample_actions

        discrete = isinstance(action_space, spaces.Discrete)

        def sampler(x: np.ndarray, gen) -> np.ndarray:
            xn = normalize_obs(x, *stats) if stats is not None else x
            with torch.no_grad():
                a, b = net.policy_params(torch.from_numpy(xn))
                act, _ = sample_actions(a, b, discrete, gen)
            act = act.numpy()
            if discrete:
                return act.astype(np.int64)
            act = np.clip(act, action_space.low.reshape(-1), action_space.high.reshape(-1))
            return act.astype(np.float32).reshape(-1, *action_space.shape)

    return Policy(forward, observation_space, action_space, meta, sampler, module)


def policy_from_run(run: Run, member: Any = "best", checkpoint: str | None = None) -> Policy:
    """``run``'s member as a :class:`Policy` (rlpop's own learners; see :func:`check_native`)."""
    check_native(run, "a policy")
    best, state = run.member_state(member, checkpoint)
    meta = policy_meta(run, best, state)
    obs_space, act_space = space_from_dict(meta["observation_space"]), space_from_dict(meta["action_space"])
    module = module_from_state(state, obs_space, act_space)
    net = net_from_state(state, obs_space, act_space)
    return policy_from_module(module, obs_space, act_space, meta, net, obs_stats(state))


def check_native(run: Run, what: str) -> None:
    if run.learner not in NATIVE:
        raise PolicyError(f"{run.path}: rlpop builds {what} for {' and '.join(NATIVE)} members only, and this run's "
                          f"learner is {run.learner!r}; export the member in its library's own format "
                          f"(rlpop export {shlex.quote(str(run.path))}) and play it with that library")


# --------------------------------------------------------------------------- meta (the sidecar's fields)
def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating,)):
        return float(v)
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    return repr(v)


def policy_meta(run: Run, best: Best, state: dict[str, Any] | None) -> dict[str, Any]:
    """What a policy carries about itself: env (id, kwargs, wrappers, how to register it), spaces, member."""
    env = make_run_env(run)
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    spec = run.env_spec()
    hp = dict((state or {}).get("hparams") or {}) if state is not None else {}
    hp.update(best.hparams)
    return {
        "env": spec["env"], "env_kwargs": spec["env_kwargs"], "env_wrappers": spec["env_wrappers"],
        "env_registration": env_registration(spec["env"]),
        "experiment_dir": experiment_dir(run),
        "observation_space": space_to_dict(obs_space), "action_space": space_to_dict(act_space),
        "run_dir": str(run.path.resolve()), "learner": run.learner, "member": best.member, "subpop": best.subpop,
        "checkpoint": best.checkpoint, "round": best.round, "step": best.step,
        "q": None if not math.isfinite(best.q) else best.q, "hparams": _jsonable(hp),
    }


def experiment_dir(run: Run) -> str | None:
    f = run.config.get("experiment_file")
    return str(Path(f).resolve().parent) if f else None


def env_registration(env_id: str | None) -> dict[str, Any] | None:
    """How a custom env was registered in this process ({entry_point, max_episode_steps, kwargs}), so another
    process can register it again; None for gymnasium's own envs and ``module:Id`` ids."""
    if not env_id or ":" in env_id:
        return None
    import gymnasium as gym

    from rlpop.envs.registry import _importable

    try:
        spec = gym.spec(env_id)
    except gym.error.Error:
        return None
    ep = spec.entry_point if isinstance(spec.entry_point, str) else _importable(spec.entry_point)
    if not ep or ep.startswith(("gymnasium.", "rlpop.")):
        return None
    try:
        kwargs = json.loads(json.dumps(spec.kwargs or {}))
    except TypeError:
        kwargs = {}
    return {"entry_point": ep, "max_episode_steps": spec.max_episode_steps, "kwargs": kwargs}


# --------------------------------------------------------------------------- envs
def _check_importable(env_id: str) -> None:
    """``check_env_id`` and the import of its entry point (registering a custom env imports nothing yet)."""
    from rlpop.envs.registry import check_env_id, load_object

    spec = check_env_id(env_id)
    if isinstance(spec.entry_point, str):
        try:
            load_object(spec.entry_point)
        except (ImportError, AttributeError) as exc:
            raise ValueError(f"its entry point {spec.entry_point!r} does not import here ({type(exc).__name__}: "
                             f"{exc})") from None


def ensure_env(env_id: str, registration: dict[str, Any] | None = None, exp_dir: str | None = None,
               run_dir: str | Path | None = None) -> None:
    """Make ``env_id`` known in this process, or raise :class:`PolicyError` naming the module and the fix:
    gymnasium's and rlpop's envs are; a custom env is registered from its recorded entry point, else by
    loading the run's experiment file (its ``register_env`` lines), with the experiment's folder importable."""
    import rlpop.envs  # noqa: F401 -- rlpop's own envs, entry points, shipped registrations
    from rlpop.envs.registry import register_env

    try:
        _check_importable(env_id)
        return
    except ValueError as exc:
        why = str(exc).split(". ")[0]
    if exp_dir and os.path.isdir(exp_dir) and exp_dir not in sys.path:
        sys.path.insert(0, exp_dir)
    if registration:
        try:
            register_env(env_id, registration["entry_point"], max_episode_steps=registration.get("max_episode_steps"),
                         **(registration.get("kwargs") or {}))
            _check_importable(env_id)
            return
        except ValueError as exc:
            why = str(exc).split(". ")[0]
    elif run_dir is not None and (Path(run_dir) / "experiment.py").is_file():
        try:
            from rlpop.run import load_experiment

            load_experiment(Path(run_dir) / "experiment.py")
            _check_importable(env_id)
            return
        except Exception as exc:  # noqa: BLE001 -- a user's file: its error in one line
            why = str(exc).strip().splitlines()[0][:300] if str(exc).strip() else type(exc).__name__
    where = f"PYTHONPATH={exp_dir} " if exp_dir else "PYTHONPATH=<the folder of the module that defines it> "
    raise PolicyError(f"env {env_id!r} cannot be made in this process: {why}; make the module that defines it "
                      f"importable, e.g. {where}rlpop evaluate ...")


def make_env_from(meta: dict[str, Any], render_mode: str | None = None) -> gym.Env:
    """One env from a policy's ``meta`` (its id, kwargs and wrappers, registered first if custom)."""
    from rlpop.envs.registry import WRAPPERS_KEY, make_env

    env_id = meta["env"]
    if not env_id:
        raise PolicyError("this policy names no env (its run's learner builds none): nothing to evaluate it on")
    ensure_env(env_id, meta.get("env_registration"), meta.get("experiment_dir"), meta.get("run_dir"))
    kwargs = dict(meta.get("env_kwargs") or {})
    if meta.get("env_wrappers"):
        kwargs[WRAPPERS_KEY] = [list(w) for w in meta["env_wrappers"]]
    if render_mode is not None:
        kwargs["render_mode"] = render_mode
    return make_env(env_id, **kwargs)


def make_run_env(run: Run, **extra: Any) -> gym.Env:
    spec = run.env_spec()
    meta = {**spec, "env_registration": None, "experiment_dir": experiment_dir(run), "run_dir": str(run.path)}
    return make_env_from(meta, **extra)


# --------------------------------------------------------------------------- files
def sidecar_path(path: str | Path) -> Path:
    """``policy.pt2`` -> ``policy.json`` (the file's metadata)."""
    p = Path(path)
    return p.with_name(p.name[:-len(p.suffix)] + ".json") if p.suffix else p.with_name(p.name + ".json")


def load_policy(path: str | Path) -> Policy:
    """A policy file written by ``rlpop export`` (``.pt2``, ``.ts``, ``.onnx``) and its JSON sidecar, as a
    :class:`Policy` (deterministic only)."""
    import torch

    p = Path(path)
    side = sidecar_path(p)
    if not p.is_file():
        raise PolicyError(f"{p}: no such policy file; write one with rlpop export RUN_DIR")
    if not side.is_file():
        raise PolicyError(f"{p} has no sidecar {side.name} beside it (it names the env and spaces); export again "
                          "with rlpop export RUN_DIR --out FILE, which writes both")
    try:
        meta = json.loads(side.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise PolicyError(f"cannot read {side}: {exc}; export again with rlpop export") from None
    fmt = meta.get("format")
    if fmt not in FORMATS:
        raise PolicyError(f"{p}: its sidecar names format {fmt!r}, which rlpop evaluate cannot play (it plays "
                          f"{', '.join(FORMATS)}); load it with its own library")
    try:
        if fmt == "pt2":
            mod = torch.export.load(str(p)).module()
            run = lambda x: mod(torch.from_numpy(x)).detach().numpy()  # noqa: E731
        elif fmt == "torchscript":
            mod = torch.jit.load(str(p))
            run = lambda x: mod(torch.from_numpy(x)).detach().numpy()  # noqa: E731
        else:
            try:
                import onnxruntime as ort
            except ImportError:
                raise PolicyError(f"{p} is ONNX: playing it needs onnxruntime (pip install onnxruntime)") from None
            sess = ort.InferenceSession(str(p))
            name = sess.get_inputs()[0].name
            run = lambda x: sess.run(None, {name: x})[0]  # noqa: E731
    except PolicyError:
        raise
    except Exception as exc:  # noqa: BLE001 -- a damaged or foreign file: one line
        raise PolicyError(f"cannot load {p} as {fmt}: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}") from None

    def forward(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return run(np.ascontiguousarray(x, np.float32))

    return Policy(forward, space_from_dict(meta["observation_space"]), space_from_dict(meta["action_space"]),
                  {**meta, "source": str(p)})

"""The experiment spec: plain dataclasses, validated when built.

An experiment file is a Python module with a module-level ``experiment``::

    from rlpop.experiment import Agent, Experiment, PBT
    from rlpop.hparams import LogUniform, Uniform

    experiment = Experiment(
        name="hopper_pbt", env="Hopper-v5", agent=Agent("ppo"),
        space={"lr": LogUniform(1e-5, 1e-3), "clip": Uniform(0.1, 0.5, factors=(0.8, 1.25))},
        strategy=PBT(population=8, ready_steps=50_000),
        total_steps=1_000_000, eval_steps=10_000)

Everything that can be checked is checked here -- the env id, the learner, its
hyperparameter names, bounds, budgets -- so a mistake fails before any process
starts, with a message naming the field and the fix.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping, Sequence

from rlpop.hparams import Fixed, HParamSpace


# --------------------------------------------------------------------------- strategies
# What experiment files write. Each spec builds its strategy (rlpop.strategies: PBT builds PBTStrategy), its fields
# passed as the strategy's keyword arguments under the same names.
class _Spec:
    builds: ClassVar[str]  # "module.Class" in rlpop.strategies
    method: ClassVar[str]    # the run's method name (config.json, plots)

    def build(self, space: HParamSpace, seed: int):
        import importlib

        module, name = self.builds.rsplit(".", 1)
        impl = getattr(importlib.import_module(f"rlpop.strategies.{module}"), name)
        return impl(space, seed=seed, **self.arguments(space, seed))

    def arguments(self, space: HParamSpace, seed: int) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Single(_Spec):
    """One agent, no population (a plain training run)."""

    builds = "random_search.RandomSearchStrategy"
    method = "single"

    def arguments(self, space: HParamSpace, seed: int) -> dict[str, Any]:
        return {"population": 1}


@dataclass
class RandomSearch(_Spec):
    """Sample hyperparameters once per member, never evolve (the baseline)."""

    population: int = 8

    builds = "random_search.RandomSearchStrategy"
    method = "rs"


@dataclass
class PBT(_Spec):
    """Population Based Training: every ``ready_steps`` the bottom ``quantile``
    copies a random member of the top ``quantile`` and explores."""

    population: int = 8
    ready_steps: int = 50_000
    quantile: float = 0.25
    synchronous: bool = True

    builds = "pbt.PBTStrategy"
    method = "pbt"


@dataclass
class FIRE(_Spec):
    """FIRE PBT (Dalibard & Jaderberg 2020, section 3): ``subpops`` sub-populations
    of ``subpop_size`` members (or a list of sizes, one per sub-population) plus ``evaluators`` evaluator
    workers (None: three quarters of the parent members, the paper's rule).
    ``min_steps_before_eval``: one value per parent sub-population P2..Pn. ``synchronous=False`` (not the
    paper's setting) exploits members as they become ready; ``min_curve_points``: the evaluator curve points
    a parent needs to get a fitness."""

    subpops: int = 2
    subpop_size: int | Sequence[int] = 8
    evaluators: int | None = 6
    ready_steps: int = 50_000
    max_eval_steps: int = 500_000
    min_steps_before_eval: Sequence[int] = (0,)
    p_stat: float = 0.01
    quantile: float = 0.25
    synchronous: bool = True
    min_curve_points: int = 2

    builds = "fire.FIREStrategy"
    method = "fire"


@dataclass
class ASHA(_Spec):
    """Asynchronous successive halving (Li et al. 2018) over ``population`` slots: a trial is cut at a rung
    (``grace_period * reduction_factor**k`` actor steps) unless it is in the top ``1/reduction_factor`` of the
    trials that reached that rung, and its slot starts a new configuration drawn by ``search`` ("random",
    or Optuna's "tpe" / "gp" told every ended trial's result). A trial that is never cut ends at ``max_t``.
    Every slot trains ``total_steps`` actor steps in all, over however many trials."""

    population: int = 8
    max_t: int = 100_000
    grace_period: int = 10_000
    reduction_factor: float = 3
    search: str = "random"

    builds = "asha.ASHAStrategy"

    def arguments(self, space: HParamSpace, seed: int) -> dict[str, Any]:
        from rlpop.strategies.samplers import make_sampler

        fields = dataclasses.asdict(self)
        sampler = make_sampler(fields.pop("search"), space, seed)
        return {**fields, "sampler": sampler}

    @property
    def method(self) -> str:
        return "asha" if self.search == "random" else f"asha+{self.search}"


@dataclass
class HyperBand(ASHA):
    """Asynchronous HyperBand: ``brackets`` ASHA brackets, bracket ``s`` with its first rung at
    ``grace_period * reduction_factor**s``; a new trial joins one of them (see ``rlpop.strategies.asha``)."""

    brackets: int = 3

    @property
    def method(self) -> str:
        return "hyperband" if self.search == "random" else f"hyperband+{self.search}"


@dataclass
class PB2(PBT):
    """Population Based Bandits (Parker-Holder et al. 2020): PBT's truncation selection; the explored
    hyperparameters are picked by a GP bandit (UCB) fitted to (time, hparams) -> improvement, within bounds.
    PBT's fields, and ``kappa`` (the UCB weight of the std; None: Ray's schedule), ``candidates`` (points the
    UCB is evaluated at), ``max_data`` (the GP's last data points)."""

    kappa: float | None = None
    candidates: int = 1000
    max_data: int = 256

    builds = "pb2.PB2Strategy"
    method = "pb2"


@dataclass
class Replay(_Spec):
    """One fresh agent retrained on a fixed hyperparameter schedule (made by ``rlpop replay``): ``schedule`` as
    ``[(step, {name: value}), ...]``, ``worker`` the id it takes (the traced lineage's first worker, so it gets
    that worker's seed), ``follow`` as ``[[step, worker, epoch], ...]``: where the lineage passed into a copy's
    destination (FollowCopy)."""

    schedule: list = field(default_factory=list)
    worker: int = 0
    follow: list = field(default_factory=list)

    builds = "replay.ReplayStrategy"
    method = "replay"

    def build(self, space: HParamSpace, seed: int):
        from rlpop.strategies.replay import ReplayStrategy

        return ReplayStrategy(space, **self.arguments(space, seed))  # its seed is the worker's: no draws


STRATEGY_SPECS = (Single, RandomSearch, PBT, FIRE, ASHA, HyperBand, PB2, Replay)


# --------------------------------------------------------------------------- agent
@dataclass
class Agent:
    """A learner by name (``"ppo"``, ``"vmpo"``, ``"toy"`` or ``"module:Class"``)
    and its fixed hyperparameters (anything in ``space`` overrides them)."""

    learner: str = "ppo"
    hparams: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- experiment
@dataclass
class Experiment:
    name: str
    env: str | None
    agent: Agent = field(default_factory=Agent)
    space: Mapping[str, Any] = field(default_factory=dict)
    strategy: Any = field(default_factory=Single)
    total_steps: int = 100_000
    eval_steps: int = 10_000
    seed: int = 0
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    #: gymnasium wrappers applied to every env, in every process (inline, env processes, Ray workers), the first
    #: listed innermost: "module:Wrapper" strings, wrapper classes importable by name, or (wrapper, {kwargs})
    #: pairs -- e.g. ["gymnasium.wrappers:FlattenObservation"]. Envs with wrappers step in gymnasium (not EnvPool)
    env_wrappers: Sequence[Any] = ()
    backend: str = "inline"
    #: "auto": members of a learner with a batched implementation (PPO) share shards -- one process, one
    #: batched policy and update per shard; "member": one learner per member; "batched": insist on shards
    engine: str = "auto"
    #: members per shard on the batched engine (0: inline = one shard; ray = one per GPU, else per 2 CPUs)
    shard_size: int = 0
    q_window_episodes: int = 10
    keep_checkpoints: int = 2
    worker_timeout_s: float = 3600.0

    def __post_init__(self) -> None:
        self.validate()

    # -- validation -----------------------------------------------------------
    def validate(self) -> None:
        from rlpop.agents import learner_class, learner_defaults

        if not isinstance(self.name, str) or not self.name or any(c in self.name for c in "/\\ "):
            raise ValueError(f"name={self.name!r}: give a short name without spaces or slashes (used in runs/<name>-<time>)")
        for f in ("total_steps", "eval_steps"):
            v = getattr(self, f)
            if isinstance(v, float) and v.is_integer():
                setattr(self, f, int(v))
            if not isinstance(getattr(self, f), int) or getattr(self, f) <= 0:
                raise ValueError(f"{f}={v!r} must be a positive integer number of actor steps")
        if self.eval_steps > self.total_steps:
            raise ValueError(f"eval_steps={self.eval_steps} is larger than total_steps={self.total_steps}; "
                             "lower eval_steps or raise total_steps")
        if self.backend not in ("inline", "ray"):
            raise ValueError(f"backend={self.backend!r}: use 'inline' (one process) or 'ray'")
        from rlpop.extras import require

        if self.backend == "ray":
            require("ray", "backend='ray'")
        if not isinstance(self.shard_size, int) or self.shard_size < 0:
            raise ValueError(f"shard_size={self.shard_size!r} must be an integer >= 0 (0: the backend decides)")
        for f, lo in (("q_window_episodes", 1), ("keep_checkpoints", 1)):
            v = getattr(self, f)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise ValueError(f"{f}={v!r} must be an integer >= {lo}")
        t = self.worker_timeout_s
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not t > 0:
            raise ValueError(f"worker_timeout_s={t!r} must be a number of seconds > 0 (a worker silent that long "
                             "is rebuilt); e.g. 3600")
        if not isinstance(self.agent, Agent):
            raise ValueError("agent: give rlpop.experiment.Agent(learner, hparams)")
        if not isinstance(self.agent.hparams, Mapping):
            raise ValueError(f"agent.hparams={self.agent.hparams!r}: give a dict name -> value")
        if not isinstance(self.space, (Mapping, HParamSpace)):
            raise ValueError(f"space: give a dict name -> LogUniform/Uniform/Choice/Fixed (e.g. "
                             f"{{'lr': LogUniform(1e-4, 1e-3)}}), not a {type(self.space).__name__}")
        if not isinstance(self.env_kwargs, Mapping):
            raise ValueError(f"env_kwargs={self.env_kwargs!r}: give a dict of keyword arguments for the env")
        from rlpop.envs.registry import WRAPPERS_KEY, normalize_wrappers

        wrappers = normalize_wrappers(self.env_wrappers)
        self.env_kwargs = {k: v for k, v in self.env_kwargs.items() if k != WRAPPERS_KEY}
        cls = learner_class(self.agent.learner)
        defaults = learner_defaults(self.agent.learner)
        if self.agent.hparams.get("env_backend") == "envpool":
            if wrappers:
                raise ValueError("env_wrappers: EnvPool cannot take gymnasium wrappers; drop "
                                 "agent.hparams.env_backend='envpool' (envs with wrappers step in gymnasium)")
            require("envpool", "agent.hparams.env_backend='envpool'")
        if wrappers:
            if not getattr(cls, "needs_env", True):
                raise ValueError(f"env_wrappers: learner {self.agent.learner!r} builds no gymnasium env; drop them")
            self.env_wrappers = [tuple(w) for w in wrappers]
            self.env_kwargs[WRAPPERS_KEY] = wrappers  # reaches make_env in every process with env_kwargs
        if defaults:
            unknown = sorted(set(self.agent.hparams) - set(defaults))
            if unknown:
                raise ValueError(f"agent.hparams: unknown hyperparameter(s) {unknown} for learner "
                                 f"{self.agent.learner!r}; valid names: {sorted(defaults)}")
        from rlpop.agents import use_batched

        use_batched(self.agent.learner, self.engine)  # engine='batched' for a learner without one: the fix
        if getattr(cls, "needs_env", True):
            from rlpop.envs import check_env_id

            check_env_id(self.env)  # raises with the list of registered envs
        elif self.env is not None:
            raise ValueError(f"env={self.env!r}: learner {self.agent.learner!r} builds no env and would ignore it; "
                             "set env=None (its problem is set by env_kwargs)")
        if not isinstance(self.strategy, STRATEGY_SPECS):
            raise ValueError(f"strategy={self.strategy!r}: use one of rlpop.experiment.Single(), "
                             "RandomSearch(population), PBT(population, ready_steps), FIRE(...), "
                             "ASHA(population, max_t, grace_period, search='random'|'tpe'|'gp'), HyperBand(...) "
                             "or PB2(population, ready_steps)")
        space = HParamSpace(self._params())
        both = sorted(set(space.names) & set(self.agent.hparams))
        if both:
            raise ValueError(f"agent.hparams and space both set {both}: the space would override agent.hparams; "
                             "remove them from one of the two")
        mutable = frozenset(cls.mutable_hparams)
        evolving = {k for k, p in space.params.items() if not isinstance(p, Fixed)}
        fixed_but_searched = sorted(evolving - mutable)
        if fixed_but_searched:
            raise ValueError(f"space: hyperparameter(s) {fixed_but_searched} cannot change while learner "
                             f"{self.agent.learner!r} trains (they change network shapes or actor processes); "
                             f"put them in agent.hparams instead. Searchable: {sorted(mutable)}"
                             + (". To search layer widths, set agent.hparams.hidden to the largest widths and "
                                "search width_0, width_1, ... (each <= its layer of hidden)"
                                if "hidden" in fixed_but_searched and "width_0" in mutable else ""))
        if defaults:
            unknown = sorted(set(space.names) - set(defaults))
            if unknown:
                raise ValueError(f"space: unknown hyperparameter(s) {unknown} for learner "
                                 f"{self.agent.learner!r}; valid names: {sorted(defaults)}")
        self.hparam_space()  # the learner's value rules, on agent.hparams and the space
        from rlpop.agents import check_learner_layout

        check_learner_layout(self.agent.learner, {**defaults, **self.agent.hparams})
        s = self.strategy
        for f in ("population", "subpop_size", "evaluators", "subpops"):  # lists of sizes: checked by the strategy
            v = getattr(s, f, 1)
            if v is not None and not isinstance(v, (list, tuple)) and (not isinstance(v, int) or v < 1):
                raise ValueError(f"strategy.{f}={v!r} must be an integer >= 1")
        for f in ("ready_steps", "max_eval_steps", "max_t", "grace_period"):  # 5e4 is an integer count of steps
            if isinstance(getattr(s, f, None), float) and getattr(s, f).is_integer():
                setattr(s, f, int(getattr(s, f)))
        if isinstance(getattr(s, "min_steps_before_eval", None), (list, tuple)):
            s.min_steps_before_eval = tuple(int(v) if isinstance(v, float) and v.is_integer() else v
                                            for v in s.min_steps_before_eval)
        if isinstance(s, ASHA):
            self._check_trials(s)
        if hasattr(s, "ready_steps"):
            if not isinstance(s.ready_steps, int) or s.ready_steps < 1:
                raise ValueError(f"strategy.ready_steps={s.ready_steps!r} must be a whole number of actor steps >= 1 "
                                 f"(how often a member may copy or explore), e.g. {8 * self.eval_steps}")
            if s.ready_steps > self.total_steps:
                raise ValueError(f"strategy.ready_steps={s.ready_steps} is larger than total_steps="
                                 f"{self.total_steps}: no member would ever be ready; lower ready_steps")
            if s.ready_steps < self.eval_steps:
                raise ValueError(f"strategy.ready_steps={s.ready_steps} < eval_steps={self.eval_steps}: "
                                 "decisions need at least one Q evaluation; lower eval_steps")
        built = self.build_strategy()  # strategy constructors validate quantiles, sizes, ...
        if isinstance(s, FIRE):  # an evaluator evaluates one parent member (P2..Pn) at a time
            parents = sum(built.subpop_sizes[1:])
            if built.evaluators > parents:
                n = len(built.subpop_sizes)
                which = "P2" if n == 2 else f"P2..P{n}"
                raise ValueError(f"strategy.evaluators={built.evaluators}: an evaluator evaluates one parent member "
                                 f"at a time and {which} hold{'s' if n == 2 else ''} {parents}, so "
                                 f"{built.evaluators - parents} would never run; set evaluators <= {parents} (None: "
                                 "three quarters of the parents)")

    def _check_trials(self, s: "ASHA") -> None:
        """Trial lengths against the budget and the Q interval (the strategy checks the rest)."""
        from rlpop.strategies.samplers import check_sampler

        check_sampler(s.search, "strategy.search")
        if isinstance(s.max_t, int) and s.max_t > self.total_steps:
            raise ValueError(f"strategy.max_t={s.max_t} is larger than total_steps={self.total_steps} (each slot's "
                             "budget, over all its trials): no trial could finish; lower max_t or raise total_steps")
        if isinstance(s.grace_period, int) and s.grace_period < self.eval_steps:
            raise ValueError(f"strategy.grace_period={s.grace_period} < eval_steps={self.eval_steps}: rungs are "
                             "judged on Q points; raise grace_period or lower eval_steps")

    def _params(self) -> dict[str, Any]:
        """The search space as given (a dict or an HParamSpace), as a new dict."""
        return dict(self.space.params if isinstance(self.space, HParamSpace) else self.space)

    def _checked_space(self) -> tuple[HParamSpace, list[str]]:
        """The search space after the learner's value rules: (space, notes on bounds that were clipped)."""
        params = self._params()
        HParamSpace(params)  # types of the entries, with the fix
        from rlpop.agents import learner_defaults, learner_rules
        from rlpop.agents.hparam_rules import check_space, check_values, value_notes

        hp = {**learner_defaults(self.agent.learner), **self.agent.hparams}
        rules = learner_rules(self.agent.learner, hp)
        if not rules:
            return HParamSpace(params), []
        check_values(rules, self.agent.hparams, "agent.hparams")
        params, notes = check_space(rules, params)
        return HParamSpace(params), value_notes(rules, self.agent.hparams, "agent.hparams") + notes

    def hparam_space(self) -> HParamSpace:
        """The search space, its exploration bounds clipped into the learner's valid ranges (see ``notes``)."""
        return self._checked_space()[0]

    @property
    def notes(self) -> list[str]:
        """What validation adjusted or found suspicious (exploration bounds clipped into valid ranges, a learning
        rate above 1, FIRE evaluators that can never succeed): printed once by the CLI, kept in config.json."""
        out = self._checked_space()[1]
        if isinstance(self.strategy, FIRE):
            out += [n for n in [fire_unreachable(self.strategy, self.eval_steps)] if n]
        out += [n for n in [self._envpool_note()] if n]
        return out

    def _envpool_note(self) -> str | None:
        """On Linux, a batched MuJoCo population EnvPool would step but EnvPool is not installed: say so, once."""
        import sys

        from rlpop.agents import BATCHED
        from rlpop.extras import installed

        if (not sys.platform.startswith("linux") or self.env is None or self.engine == "member"
                or self.agent.learner not in BATCHED or self.env_kwargs
                or self.agent.hparams.get("env_backend", "auto") != "auto" or installed("envpool")):
            return None
        from rlpop.agents.envbank import ENVPOOL_IDS

        if self.env not in ENVPOOL_IDS:
            return None
        return (f"env={self.env!r} steps in gymnasium vector envs: EnvPool, which steps it in C++ threads (Hopper-v5 "
                "on the 2-core development machine: 10,760 steps/s against 2,989/s for one gymnasium env), is not "
                "installed; pip install 'rlpop[envpool]'")

    @property
    def user_env_kwargs(self) -> dict[str, Any]:
        """``env_kwargs`` as the user gave them (without the wrappers they carry to every process)."""
        from rlpop.envs.registry import WRAPPERS_KEY

        return {k: v for k, v in self.env_kwargs.items() if k != WRAPPERS_KEY}

    def build_strategy(self):
        return self.strategy.build(self.hparam_space(), self.seed)

    @property
    def method(self) -> str:
        return self.strategy.method

    @property
    def checkpoint_steps(self) -> int:
        """Checkpoints every ready interval (or every ~5% of the budget without one)."""
        ready = getattr(self.strategy, "ready_steps", None)
        if ready:
            return int(ready)
        return max(self.eval_steps, (self.total_steps // 20) // self.eval_steps * self.eval_steps)

    # -- overrides and serialisation ----------------------------------------------
    def with_overrides(self, overrides: Mapping[str, str]) -> "Experiment":
        """A copy with ``--set key=value`` overrides applied (dotted keys), re-validated."""
        exp = dataclasses.replace(self, agent=dataclasses.replace(self.agent, hparams=dict(self.agent.hparams)),
                                  strategy=dataclasses.replace(self.strategy),
                                  space=self._params(),
                                  env_kwargs=dict(self.env_kwargs))
        # replace() re-ran validation on the copy; now apply the overrides then validate again
        for key, raw in overrides.items():
            _set_path(exp, key, raw)
        exp.validate()
        return exp

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "env": self.env, "env_kwargs": self.user_env_kwargs,
            "env_wrappers": [list(w) for w in self.env_wrappers],
            "agent": {"learner": self.agent.learner, "hparams": self.agent.hparams},
            "space": {k: repr(p) for k, p in self.hparam_space().params.items()},
            "strategy": {"type": type(self.strategy).__name__, **dataclasses.asdict(self.strategy)},
            "method": self.method, "total_steps": self.total_steps, "eval_steps": self.eval_steps,
            "seed": self.seed, "backend": self.backend, "engine": self.engine, "shard_size": self.shard_size,
            "q_window_episodes": self.q_window_episodes,
        }


def fire_unreachable(s: "FIRE", eval_steps: int) -> str | None:
    """Why FIRE's evaluators can never succeed with these settings, or None.

    An evaluator succeeds only with ``k`` Q points where 0.5**k < p_stat (the one-sided binomial test with every
    point above), and stops after ``max_eval_steps`` (one more point at most)."""
    import math

    need = math.floor(math.log(1.0 / s.p_stat, 2)) + 1
    can = s.max_eval_steps // eval_steps + 1
    if need <= can:
        return None
    return (f"strategy.max_eval_steps={s.max_eval_steps}: evaluators measure Q every eval_steps={eval_steps}, so "
            f"at most {can} points before they stop, but the binomial test needs {need} to reach p < p_stat="
            f"{s.p_stat:g}: no evaluator can ever succeed; raise max_eval_steps to >= {(need - 1) * eval_steps} "
            "or lower eval_steps")


def parse_value(raw: str, current: Any, key: str) -> Any:
    """Parse a ``--set`` value to the type of the current value."""
    try:
        if isinstance(current, bool):
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError
        if isinstance(current, int):
            f = float(raw)
            if not f.is_integer():
                raise ValueError
            return int(f)
        if isinstance(current, float):
            return float(raw)
        if current is None or isinstance(current, (list, tuple, dict)):
            import ast

            try:
                return ast.literal_eval(raw)
            except (ValueError, SyntaxError):
                return raw
        return raw
    except ValueError:
        raise ValueError(f"--set {key}={raw}: expected a value of type {type(current).__name__} "
                         f"(current value {current!r})") from None


def _set_path(exp: Experiment, key: str, raw: str) -> None:
    """Set a dotted path; frozen parts (e.g. ``space.lr.hi``) are rebuilt with ``dataclasses.replace``."""
    parts = key.split(".")
    chain: list[Any] = [exp]
    for i, part in enumerate(parts):
        obj, where = chain[-1], ".".join(parts[:i]) or "experiment"
        last = i == len(parts) - 1
        if isinstance(obj, dict):
            if part not in obj and not (last and where in ("agent.hparams", "env_kwargs")):
                raise ValueError(f"--set {key}: {where} has no key {part!r}; keys: {sorted(obj)}")
            chain.append(obj.get(part))
        elif dataclasses.is_dataclass(obj):
            names = [f.name for f in dataclasses.fields(obj) if f.init]
            if part not in names:
                raise ValueError(f"--set {key}: {where} has no field {part!r}; fields: {names}")
            chain.append(getattr(obj, part))
        else:
            raise ValueError(f"--set {key}: cannot set inside {where} ({type(obj).__name__})")
    value = parse_value(raw, chain[-1], key)
    for i in reversed(range(len(parts))):
        parent = chain[i]
        if isinstance(parent, dict):
            parent[parts[i]] = value
            return
        if getattr(parent, "__dataclass_params__").frozen:
            value = dataclasses.replace(parent, **{parts[i]: value})
            continue
        setattr(parent, parts[i], value)
        return

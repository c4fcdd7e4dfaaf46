"""The issue-26 study's settings: derived from the budget by the paper's ratios, frozen once, checked before every run.

:func:`derive` turns (env, learner, workers, actor steps per worker, rollout) into every interval the study uses
(Dalibard & Jaderberg 2020, section 4.2: ready and evaluator checks every 1/100 of the budget, max_eval_steps
1/10, P2's min_steps_before_eval 1/6 -- each rounded up to whole rollouts, a member being ready only between
updates) and FIRE's layout (2 sub-populations, evaluators as close to 3/4 of the parent sub-population as the
worker count allows: :func:`fire_layout`). :func:`freeze` writes them, with the resolved experiment of every method
and a hash of each experiment file, into ``benchmarks/results/study_<env>.json`` before any comparison run;
:func:`check_unchanged` refuses a run when a file or a resolved experiment differs from what was frozen.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
EXPERIMENTS = ROOT / "experiments"
#: run order within a seed: a study cut short keeps FIRE and PBT of the seeds it reached
METHODS = ("fire", "pbt", "rs")
LEARNERS = ("ppo", "vmpo")
#: env steps per learner update, by learner (the study files' rollout_steps): intervals are whole rollouts
ROLLOUT = {"ppo": 2048, "vmpo": 624}
#: files every study experiment file imports (hashed with them when frozen)
SHARED_FILES = ("study_space.py",)
PAPER_RATIOS = {"ready": 1 / 100, "max_eval_steps": 1 / 10, "min_steps_before_eval": 1 / 6}


def ceil_to(x: float, unit: int) -> int:
    return int(math.ceil(x / unit - 1e-9) * unit)


def env_key(env: str) -> str:
    """``Walker2d-v5`` -> ``walker2d``: the name of the study's files and folders."""
    key = re.sub(r"-v\d+$", "", env.split(":")[-1]).lower()
    key = re.sub(r"[^a-z0-9]+", "_", key).strip("_")
    if not key:
        raise ValueError(f"--env {env!r}: not an env id; give e.g. Walker2d-v5")
    return key


def fire_layout(workers: int) -> tuple[int, int]:
    """(sub-population size, evaluators) for 2 sub-populations in ``workers``: evaluators as close to 3/4 of a
    sub-population as whole workers allow (the paper: 18 + 18 + 14), the larger sub-population on a tie."""
    if workers < 5:
        raise ValueError(f"--workers {workers}: FIRE needs 2 sub-populations of >= 2 and an evaluator; give >= 5")
    best = None
    for size in range(2, workers // 2 + 1):
        ev = workers - 2 * size
        if ev < 1:
            continue
        key = (abs(ev / size - 0.75), -size)
        if best is None or key < best[0]:
            best = (key, size, ev)
    assert best is not None
    return best[1], best[2]


def derive(env: str, learner: str, workers: int, steps_per_worker: int, rollout: int | None = None,
           p_stat: float = 0.01, threshold: float | None = None) -> dict[str, Any]:
    """Every setting of the study (see the module docstring); ValueError naming the field on bad input."""
    if learner not in LEARNERS:
        raise ValueError(f"--learner {learner!r}: give one of {', '.join(LEARNERS)}")
    rollout = int(rollout or ROLLOUT[learner])
    b = int(steps_per_worker)
    if rollout < 1:
        raise ValueError(f"--rollout {rollout}: give a positive number of env steps per update")
    if b < 10 * rollout:
        raise ValueError(f"--steps-per-worker {b}: less than 10 rollouts of {rollout}; give >= {10 * rollout}")
    if not 0 < p_stat < 1:
        raise ValueError(f"--p-stat {p_stat}: give a probability in (0, 1), e.g. 0.01")
    subpop, evaluators = fire_layout(int(workers))
    ready = max(rollout, ceil_to(b / 100, rollout))
    max_eval = ceil_to(b / 10, rollout)
    min_before = ceil_to(b / 6, rollout)
    need = math.floor(math.log2(1 / p_stat)) + 1  # Q points all above the child for p < p_stat
    if max_eval // ready + 1 < need:  # an evaluator measures Q once per ready interval
        max_eval = (need - 1) * ready
    return {
        "env": env, "env_key": env_key(env), "learner": learner, "workers": int(workers),
        "steps_per_worker": b, "rollout_steps": rollout, "ready_steps": ready, "eval_steps": ready,
        "max_eval_steps": max_eval, "min_steps_before_eval": min_before, "p_stat": p_stat,
        "threshold": threshold,
        "members": {"rs": int(workers), "pbt": int(workers)},
        "fire": {"subpops": 2, "subpop_size": subpop, "evaluators": evaluators,
                 "evaluators_per_parent_member": round(evaluators / subpop, 3)},
        "ratios_to_budget": {"ready": ready / b, "max_eval_steps": max_eval / b,
                             "min_steps_before_eval": min_before / b},
        "paper_ratios": PAPER_RATIOS,
    }


def experiment_file(learner: str, method: str) -> Path:
    return EXPERIMENTS / f"study_{learner}_{method}.py"


def overrides(s: dict[str, Any], method: str, seed: int, name: str | None = None) -> list[str]:
    """The ``--set`` arguments of one run (``rlpop run experiments/study_<learner>_<method>.py ...``)."""
    sets = [f"env={s['env']}", f"name={name or 'study_' + s['env_key'] + '_' + method}", f"seed={seed}",
            f"total_steps={s['steps_per_worker']}", f"eval_steps={s['eval_steps']}", "backend=inline",
            f"agent.hparams.rollout_steps={s['rollout_steps']}"]
    if method in ("rs", "pbt"):
        sets.append(f"strategy.population={s['members'][method]}")
    if method == "pbt":
        sets.append(f"strategy.ready_steps={s['ready_steps']}")
    if method == "fire":
        f = s["fire"]
        sets += [f"strategy.subpop_size={f['subpop_size']}", f"strategy.evaluators={f['evaluators']}",
                 f"strategy.ready_steps={s['ready_steps']}", f"strategy.max_eval_steps={s['max_eval_steps']}",
                 f"strategy.min_steps_before_eval=({s['min_steps_before_eval']},)", f"strategy.p_stat={s['p_stat']}"]
    out: list[str] = []
    for x in sets:
        out += ["--set", x]
    return out


def resolved(s: dict[str, Any], method: str) -> dict[str, Any]:
    """The experiment a run of ``method`` trains (config.json's fields that must not change; seed-free)."""
    from rlpop.run import load_experiment, parse_sets

    sets = overrides(s, method, 0)[1::2]
    exp = load_experiment(experiment_file(s["learner"], method)).with_overrides(parse_sets(sets))
    d = exp.to_dict()
    return {k: d[k] for k in ("env", "agent", "space", "strategy", "method", "total_steps", "eval_steps")}


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def frozen_path(results_dir: Path, env: str) -> Path:
    return Path(results_dir) / f"study_{env_key(env)}.json"


def freeze(s: dict[str, Any], path: Path, methods=METHODS, note: str = "", pilot: dict[str, Any] | None = None
           ) -> dict[str, Any]:
    """Write the study's JSON with ``settings`` (and ``runs: []``); refuses an existing one (settings never change)."""
    if path.exists():
        raise ValueError(f"{path} exists: the study's settings were frozen on "
                         f"{json.loads(path.read_text()).get('frozen_at', '?')} and never change; a new study needs "
                         "another --results-dir (or delete the file by hand if no comparison run has started)")
    files = {m: experiment_file(s["learner"], m) for m in methods}
    files.update({name: EXPERIMENTS / name for name in SHARED_FILES})
    res = {m: resolved(s, m) for m in methods}
    for key in ("env", "agent", "space", "total_steps", "eval_steps"):
        if len({json.dumps(r[key], sort_keys=True) for r in res.values()}) > 1:
            raise ValueError(f"{key}: the study's experiment files ({', '.join(f.name for f in files.values())}) "
                             "differ in it; every method must share env, learner, space and budget")
    s = {**s, "methods": list(methods), "seeds": s.get("seeds", [0, 1, 2]),
         "experiment_files": {m: str(p.relative_to(ROOT)) for m, p in files.items()},
         "experiment_sha256": {m: file_hash(p) for m, p in files.items()},
         "resolved": res}
    doc = {"env": s["env"], "workers": s["workers"], "steps_per_worker": s["steps_per_worker"], "settings": s,
           "frozen_at": time.strftime("%Y-%m-%d %H:%M:%S"), "note": note, "pilot": pilot or {}, "runs": []}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return doc


def load_frozen(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ValueError(f"{path}: no frozen settings for this env; run the pilot, then `python benchmarks/study.py "
                         "freeze --env ENV ...` before any comparison run")
    doc = json.loads(path.read_text())
    if "settings" not in doc or "resolved" not in doc["settings"]:
        raise ValueError(f"{path}: no 'settings' frozen by `benchmarks/study.py freeze`; freeze before running")
    return doc


def check_unchanged(s: dict[str, Any]) -> None:
    """ValueError (one line) when an experiment file or a resolved experiment differs from the frozen ones."""
    for m in s["experiment_files"]:
        p = ROOT / s["experiment_files"][m]
        if not p.is_file() or file_hash(p) != s["experiment_sha256"][m]:
            raise ValueError(f"{p.relative_to(ROOT)} changed since the study's settings were frozen; restore it "
                             "(git log -- that file) -- a frozen study never changes its settings")
    for m in s["methods"]:
        now = json.loads(json.dumps(resolved(s, m)))
        if now != s["resolved"][m]:
            diff = sorted(k for k in now if now[k] != s["resolved"][m].get(k))
            raise ValueError(f"{m}: the resolved experiment differs from the frozen one in {', '.join(diff)} "
                             "(rlpop's defaults changed?); a frozen study never changes its settings")

"""The study's pilot: short random-search probes of each candidate (env, learner), recorded before any setting is
frozen, and the time estimates the study's --dry-run prints.

A probe is one run of ``experiments/study_<learner>_rs.py`` (the study's learner and search space, no evolution)
at ``--pilot-workers`` members and ``--pilot-steps`` actor steps each, intervals derived as the study's
(:func:`study_settings.derive`). Its record (``<results>/study_pilot.json``, keyed ``<env>/<learner>``) is the
run's record (:func:`study_results.run_record`) plus each member's final Q and the spread between the members --
whether the learner learns within the pilot's budget, and how much the hyperparameters drawn from the study's
initial distributions matter -- and the aggregate actor steps per second, which :func:`pilot_hours` scales to
a comparison run.
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import study_results  # noqa: E402
import study_runs  # noqa: E402
import study_settings  # noqa: E402

CANDIDATES = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5")


def probe_settings(env: str, learner: str, workers: int, steps: int, rollout: int | None) -> dict[str, Any]:
    try:
        return study_settings.derive(env, learner, max(workers, 5), steps, rollout)
    except ValueError as exc:
        raise ValueError(str(exc).replace("--steps-per-worker", "--pilot-steps")) from None


def probe_key(env: str, learner: str) -> str:
    return f"{env}/{learner}"


def probe_command(s: dict[str, Any], workers: int, folder: Path) -> list[str]:
    s = {**s, "members": {"rs": workers, "pbt": workers}}
    sets = study_settings.overrides(s, "rs", 0, name=f"pilot_{s['env_key']}_{s['learner']}")
    exp = study_settings.experiment_file(s["learner"], "rs").relative_to(study_settings.ROOT)
    return study_runs.new_command(exp, sets, folder)


def probe_record(run_dir: Path, env: str, learner: str, sittings: list[dict[str, Any]]) -> dict[str, Any]:
    from rlpop.runs import load_run
    from rlpop.summary import members

    rec = study_results.run_record(run_dir, "rs", 0, None, sittings)
    rec.pop("steps_to_threshold"), rec.pop("threshold")
    m = members(load_run(run_dir).curves).sort_values(["worker", "step"]).groupby("worker").tail(1)
    finals = sorted(round(float(q), 2) for q in m["q"].dropna())
    rec.update(env=env, learner=learner, member_final_q=finals,
               final_q_spread=round(finals[-1] - finals[0], 2) if finals else None,
               final_q_median=round(float(m["q"].median()), 2) if finals else None,
               top_return_start=rec["top_return_curve"][0][1] if rec["top_return_curve"] else None,
               env_steps_per_s=round(rec["env_steps"] / rec["wall_s"], 1) if rec["wall_s"] else None)
    return rec


def read_pilot(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.is_file() else {"probes": {}}


def write_probe(path: Path, rec: dict[str, Any], settings: dict[str, Any]) -> None:
    doc = read_pilot(path)
    doc.setdefault("probes", {})[probe_key(rec["env"], rec["learner"])] = {**rec, "settings": settings}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def measured_rate(cmd: list[str]) -> tuple[float | None, str]:
    """rlpop's own --dry-run estimate for ``cmd``: (actor steps/s it measured, its estimate lines)."""
    p = subprocess.run([*cmd, "--dry-run"], cwd=study_settings.ROOT, capture_output=True, text=True)
    lines = [ln.strip() for ln in p.stdout.splitlines() if ln.strip().startswith(("measured:", "estimate:"))]
    m = re.search(r"measured: ([\d,.]+) actor steps/s", p.stdout)
    if m is None:
        tail = (p.stderr or p.stdout).strip().splitlines()[-1:] or ["no output"]
        return None, f"rlpop run --dry-run gave no estimate (rc={p.returncode}): {tail[0]}"
    return float(m.group(1).replace(",", "")), "; ".join(lines)


def pilot_hours(probe: dict[str, Any] | None, workers: int, steps: int) -> float | None:
    """Hours of one run of ``workers`` x ``steps`` at the pilot's measured aggregate rate (None without one)."""
    rate = (probe or {}).get("env_steps_per_s")
    return workers * steps / rate / 3600 if rate else None

"""Live status: a rich table on a terminal, a plain line per round elsewhere."""
from __future__ import annotations

import math
import sys
import time
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

if TYPE_CHECKING:
    from rlpop.controller import Controller


def _fmt(v) -> str:
    if isinstance(v, float):
        return "nan" if math.isnan(v) else f"{v:.3g}"
    return str(v)


def duration(seconds: float) -> str:
    """A duration for people: 45s, 12.5min, 3.2h, 4.1d, 2.8y."""
    if seconds is None or not math.isfinite(seconds):
        return "?"
    for unit, size in (("y", 365 * 86400), ("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= 2 * size if unit != "min" else seconds >= 120:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"


def totals(c: "Controller") -> dict[str, float]:
    members = [r for r in c.records.values() if r.role == "member" and r.alive]
    steps = sum(r.steps for r in c.records.values())
    wall = max(c.wall(), 1e-9)
    frac = min((min(r.steps for r in members) / c.exp.total_steps) if members else 1.0, 1.0)
    best = max((r.q for r in members if not math.isnan(r.q)), default=math.nan)
    return {"steps": steps, "sps": steps / wall, "wall": wall, "frac": frac, "best_q": best,
            "eta": wall * (1 - frac) / frac if frac > 0 else math.nan}


def summary_line(c: "Controller") -> str:
    t = totals(c)
    return (f"round {c.round:>5} | {100 * t['frac']:5.1f}% | steps {t['steps']:>10,} | SPS {t['sps']:8.0f} | "
            f"best Q {_fmt(t['best_q']):>8} | exploits {c.counts['exploit']} successes {c.counts['success']} | "
            f"elapsed {t['wall']:6.0f}s ETA {_fmt(t['eta'])}s")


def end_summary(c: "Controller") -> str:
    """What a finished (or stopped) run leaves the user with: the best member, its Q and hparams, what the
    strategy did, where the run directory is and what to run next."""
    from rlpop.hparams import format_value

    t = totals(c)
    run = c.run_dir.path
    members = [r for r in c.records.values() if r.role == "member" and r.alive and not math.isnan(r.q)]
    lines = [f"finished: {c.round} rounds, {t['steps']:,} env steps in {duration(t['wall'])} "
             f"({t['sps']:,.0f} steps/s)"]
    if members:
        best = max(members, key=lambda r: r.q)
        where = f"P{best.subpop} " if best.subpop is not None and c.exp.method == "fire" else ""
        hp = ", ".join(f"{k}={format_value(v)}" for k, v in best.hparams.items()) or "(no searched hparams)"
        lines.append(f"best member: w{best.id} ({where}member) Q={_fmt(best.q)} at step {best.steps:,}; {hp}")
    else:
        lines.append("best member: none (no member has a Q)")
    n = c.counts
    dead = sum(1 for r in c.records.values() if not r.alive)
    lines.append(f"decisions: {n['exploit']} exploits, {n['assign']} evaluator assignments, {n['success']} "
                 f"successes, {n['stop']} evaluator stops; {n['failure']} failures"
                 + (f" ({dead} workers dropped)" if dead else ""))
    lines.append(f"run directory: {run}")
    lines.append(f"next: python -m rlpop.plot {run}   (figures: top return, hparam schedules, population)")
    lines.append(f"      python -m rlpop.lineage {run}   (the best member's hparam schedule); "
                 f"python -m rlpop.replay {run}; tensorboard --logdir {run / 'tb'}")
    return "\n".join(lines)


def round_progress_line(c: "Controller", live: dict) -> str:
    """``live``: {"steps": env steps of the running round so far, "target": the round's, "t0": its start}."""
    elapsed = max(time.time() - float(live.get("t0", time.time())), 1e-9)
    done, target = int(live.get("steps", 0)), int(live.get("target", 0))
    sps = done / elapsed
    left = (target - done) / sps if sps > 0 and target > done else math.nan
    t = totals(c)
    run_left = math.nan
    if sps > 0:  # the members' remaining budget at this round's rate
        members = [r for r in c.records.values() if r.role == "member" and r.alive]
        remaining = sum(max(0, c.exp.total_steps - r.steps) for r in members) - done
        run_left = max(0.0, remaining) / sps
    return (f"round {c.round + 1:>5} running | env steps {done:,} / {target:,} | SPS {sps:8.0f} | "
            f"round left ~{duration(left)} | run: {100 * t['frac']:5.1f}% done, ETA ~{duration(run_left)}")


def table(c: "Controller", max_rows: int = 24) -> Table:
    hp_names = c.space_names[:3]
    tb = Table(title=f"rlpop · {c.exp.name} · {c.exp.method} · {c.exp.env or c.exp.agent.learner}", expand=False)
    for col in ["worker", "role", "steps", "Q", *hp_names, "copies"]:
        tb.add_column(col, justify="right")
    rows = sorted(c.records.values(), key=lambda r: (r.role != "member", r.subpop or 0, -(r.q if not math.isnan(r.q) else -1e300)))
    for r in rows[:max_rows]:
        role = f"P{r.subpop}" if r.role == "member" else ("eval*" if r.assigned else "eval")
        tb.add_row(f"w{r.id}", role if r.alive else "dead", f"{r.steps:,}", _fmt(r.q),
                   *[_fmt(r.hparams.get(n, "")) for n in hp_names], str(r.copies))
    if len(rows) > max_rows:
        tb.caption = f"... {len(rows) - max_rows} more workers"
    return tb


class Progress:
    """Call ``update(controller)`` after each round; ``close()`` at the end."""

    def __init__(self, enabled: bool = True, min_interval_s: float = 2.0):
        self.console = Console(file=sys.stdout)
        self.enabled = enabled
        self.live: Live | None = None
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._last_beat = time.monotonic()

    def update(self, c: "Controller") -> None:
        if not self.enabled:
            return
        if self.console.is_terminal:
            renderable = Group(table(c), summary_line(c))
            if self.live is None:
                self.live = Live(renderable, console=self.console, refresh_per_second=2)
                self.live.start()
            else:
                self.live.update(renderable)
            return
        now = time.monotonic()
        if now - self._last >= self.min_interval_s or c.done():
            self._last = now
            print(summary_line(c), flush=True)

    def heartbeat(self, c: "Controller", live: dict, every_s: float = 30.0) -> None:
        """A line while a round is running (rounds can be hours long): env steps of this round so far,
        their rate, and when the round will end; at most one every ``every_s`` seconds."""
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last_beat < every_s:
            return
        self._last_beat = now
        print(round_progress_line(c, live), flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

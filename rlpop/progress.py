"""Live status: a rich table on a terminal, a plain line per round elsewhere."""
from __future__ import annotations

import math
import shlex
import sys
import time
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

from rlpop.events import Event, RoundFinished, RunStarted


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


def totals(ev: RoundFinished) -> dict[str, float]:
    wall = max(ev.wall_s, 1e-9)
    frac = ev.fraction_done
    steps = ev.env_steps
    return {"steps": steps, "sps": steps / wall, "wall": wall, "frac": frac, "best_q": ev.best_q,
            "eta": wall * (1 - frac) / frac if frac > 0 else math.nan}


def summary_line(ev: RoundFinished) -> str:
    t = totals(ev)
    return (f"round {ev.round:>5} | {100 * t['frac']:5.1f}% | steps {t['steps']:>10,} | SPS {t['sps']:8.0f} | "
            f"best Q {_fmt(t['best_q']):>8} | exploits {ev.counts['exploit']} successes {ev.counts['success']} | "
            f"elapsed {t['wall']:6.0f}s ETA {_fmt(t['eta'])}s")


def end_summary(ev: RoundFinished) -> str:
    """What a finished (or stopped) run leaves the user with: the best member, its Q and hparams, what the
    strategy did, where the run directory is and what to run next."""
    from rlpop.hparams import format_value

    t = totals(ev)
    run = Path(ev.info.run_dir)
    members = [w for w in ev.members if w.alive and not math.isnan(w.q)]
    lines = [f"finished: {ev.round} rounds, {t['steps']:,} env steps in {duration(t['wall'])} "
             f"({t['sps']:,.0f} steps/s)"]
    if members:
        best = max(members, key=lambda w: w.q)
        where = f"P{best.subpop} " if best.subpop is not None and ev.info.method == "fire" else ""
        hp = ", ".join(f"{k}={format_value(v)}" for k, v in best.hparams.items()) or "(no searched hparams)"
        lines.append(f"best member: w{best.id} ({where}member) Q={_fmt(best.q)} at step {best.steps:,}; {hp}")
    else:
        lines.append("best member: none (no member has a Q)")
    n = ev.counts
    dead = sum(1 for w in ev.workers if not w.alive)
    lines.append(f"decisions: {n['exploit']} exploits, {n['assign']} evaluator assignments, {n['success']} "
                 f"successes, {n['stop']} evaluator stops; {n['failure']} failures"
                 + (f" ({dead} workers dropped)" if dead else ""))
    lines.append(f"run directory: {run}")
    if not members:  # nothing to evaluate, export or replay
        return "\n".join(lines)
    q, tb = shlex.quote(str(run)), shlex.quote(str(run / "tb"))  # commands to paste: a path with spaces stays one
    lines.append(f"next: rlpop evaluate {q}   (play the best agent on fresh episodes; --video DIR records them)")
    lines.append(f"      rlpop export {q}   (the best agent as a policy file that runs with torch alone)")
    lines.append(f"      rlpop plot {q}   (figures: top return, hparam schedules, population)")
    lines.append(f"      rlpop lineage {q}   (the best member's hparam schedule); "
                 f"rlpop replay {q} (retrains it); tensorboard --logdir {tb}")
    return "\n".join(lines)


def round_progress_line(ev: RoundFinished, live: dict) -> str:
    """``ev``: the last finished round; ``live``: {"steps": env steps of the running round so far, "target":
    the round's, "t0": its start}."""
    elapsed = max(time.time() - float(live.get("t0", time.time())), 1e-9)
    done, target = int(live.get("steps", 0)), int(live.get("target", 0))
    sps = done / elapsed
    left = (target - done) / sps if sps > 0 and target > done else math.nan
    t = totals(ev)
    run_left = math.nan
    if sps > 0:  # the members' remaining budget at this round's rate
        remaining = sum(max(0, ev.info.total_steps - w.used) for w in ev.members if w.alive and not w.stopped) - done
        run_left = max(0.0, remaining) / sps
    return (f"round {ev.round + 1:>5} running | env steps {done:,} / {target:,} | SPS {sps:8.0f} | "
            f"round left ~{duration(left)} | run: {100 * t['frac']:5.1f}% done, ETA ~{duration(run_left)}")


def table(ev: RoundFinished, max_rows: int = 24) -> Table:
    info = ev.info
    hp_names = info.hparam_names[:3]
    tb = Table(title=f"rlpop · {info.name} · {info.method} · {info.env or info.learner}", expand=False)
    for col in ["worker", "role", "steps", "Q", *hp_names, "copies"]:
        tb.add_column(col, justify="right")
    rows = sorted(ev.workers, key=lambda w: (w.role != "member", w.subpop or 0,
                                             -(w.q if not math.isnan(w.q) else -1e300)))
    for w in rows[:max_rows]:
        role = f"P{w.subpop}" if w.role == "member" else ("eval*" if w.assigned else "eval")
        tb.add_row(f"w{w.id}", role if w.alive else "dead", f"{w.steps:,}", _fmt(w.q),
                   *[_fmt(w.hparams.get(n, "")) for n in hp_names], str(w.copies))
    if len(rows) > max_rows:
        tb.caption = f"... {len(rows) - max_rows} more workers"
    return tb


class Progress:
    """A listener of the controller's events (``controller.subscribe(progress)``): a table or a line per
    round; ``heartbeat(live)`` while a long round runs; ``close()`` at the end."""

    def __init__(self, enabled: bool = True, min_interval_s: float = 2.0):
        self.console = Console(file=sys.stdout)
        self.enabled = enabled
        self.live: Live | None = None
        self.min_interval_s = min_interval_s
        self._last = 0.0
        self._last_beat = time.monotonic()
        #: the last round's record (what the heartbeat and the end summary read)
        self.last: RoundFinished | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, RoundFinished):
            self.update(event)
        elif isinstance(event, RunStarted):
            self.last = event.status  # the first round's heartbeat has a population to tell about

    def update(self, ev: RoundFinished) -> None:
        self.last = ev
        if not self.enabled:
            return
        if self.console.is_terminal:
            renderable = Group(table(ev), summary_line(ev))
            if self.live is None:
                self.live = Live(renderable, console=self.console, refresh_per_second=2)
                self.live.start()
            else:
                self.live.update(renderable)
            return
        now = time.monotonic()
        if now - self._last >= self.min_interval_s or ev.done:
            self._last = now
            print(summary_line(ev), flush=True)

    def heartbeat(self, live: dict, every_s: float = 30.0) -> None:
        """A line while a round is running (rounds can be hours long): env steps of this round so far,
        their rate, and when the round will end; at most one every ``every_s`` seconds."""
        if not self.enabled or self.last is None:
            return
        now = time.monotonic()
        if now - self._last_beat < every_s:
            return
        self._last_beat = now
        print(round_progress_line(self.last, live), flush=True)

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None

"""``rlpop evaluate RUN_DIR|POLICY_FILE [--member best|ID] [--checkpoint best|latest] [--episodes N] [--seed S]
[--stochastic] [--video DIR] [--out FILE]`` -- play a trained member on fresh episodes.

The policy is a run's member (``RUN_DIR``: :meth:`rlpop.runs.Run.policy`; ``--member``/``--checkpoint`` as in
``rlpop export``) or a file ``rlpop export`` wrote (``POLICY_FILE``, with its JSON sidecar). The envs are fresh
ones of the run's env id, kwargs and wrappers (a custom env is registered from the sidecar's entry point or the
run's experiment file; when its module does not import here, one line says which folder to put on
PYTHONPATH). Episode i is reset with seed ``S + i``: the same seed gives the same episodes. Actions are
deterministic (argmax / the Gaussian's mean, clipped to the bounds) unless ``--stochastic`` (sampled from the
member's distribution with a generator seeded with ``S``; run directories only -- a file holds the
deterministic policy).

Prints the mean ± std of the episode returns and lengths and writes them as JSON (``--out``; default
``RUN_DIR/evaluations/w<ID>-<checkpoint>-seed<S>.json``, or ``POLICY.eval-seed<S>.json`` beside a file).
``--video DIR`` records every episode to ``DIR`` as mp4 (gymnasium's RecordVideo; needs moviepy: ``pip install
'rlpop[video]'``). MuJoCo renders headless: EGL first, then OSMesa (``MUJOCO_GL``, unless already set); when
neither works, one line says what to install. Nothing is written before the evaluation has finished.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from rlpop.policy import FORMATS, Policy, PolicyError
from rlpop.store import RunDirError

#: a cap on an episode's length for envs without a time limit
MAX_EPISODE_STEPS = 100_000


# --------------------------------------------------------------------------- rendering
def _is_mujoco(env_id: str) -> bool:
    import gymnasium as gym

    try:
        ep = gym.spec(env_id.split(":", 1)[-1]).entry_point
    except gym.error.Error:
        return False
    return "mujoco" in (ep if isinstance(ep, str) else getattr(ep, "__module__", "")).lower()


def _gl_works(backend: str) -> bool:
    """Whether MuJoCo can open an offscreen GL context with ``MUJOCO_GL=backend`` (checked in a subprocess: the
    choice is fixed once OpenGL is imported)."""
    code = "import mujoco; c = mujoco.GLContext(64, 64); c.make_current(); c.free()"
    env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
    try:
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def choose_mujoco_gl() -> str:
    """``MUJOCO_GL`` as set, else the first of egl, osmesa that renders here (set in this process); raises
    :class:`PolicyError` naming what to install when neither does."""
    if os.environ.get("MUJOCO_GL"):
        return os.environ["MUJOCO_GL"]
    for backend in ("egl", "osmesa"):
        if _gl_works(backend):
            os.environ["MUJOCO_GL"] = backend
            os.environ.setdefault("PYOPENGL_PLATFORM", backend)
            return backend
    raise PolicyError("--video: MuJoCo cannot render headless here (neither EGL nor OSMesa opens a context): install "
                      "EGL (apt-get install libegl1 libgl1) or OSMesa (apt-get install libosmesa6), or set MUJOCO_GL "
                      "to a backend that works (glfw with a display), or drop --video")


def check_video(policy: Policy) -> None:
    """Everything --video needs, before any episode: moviepy, a GL backend for MuJoCo, an env that renders
    ``rgb_array`` frames. Raises :class:`PolicyError` (one line) otherwise."""
    try:
        import moviepy  # noqa: F401 -- gymnasium's RecordVideo writes mp4 with it
    except ImportError:
        raise PolicyError("--video needs moviepy (gymnasium's RecordVideo writes mp4 with it): pip install "
                          "'rlpop[video]', or drop --video") from None
    env_id = policy.meta["env"]
    if env_id and _is_mujoco(env_id):
        choose_mujoco_gl()
    try:
        env = policy.make_env(render_mode="rgb_array")
    except PolicyError:
        raise
    except Exception as exc:  # noqa: BLE001 -- gym.make refusing the render mode, a GL error
        raise PolicyError(f"--video: env {env_id!r} cannot be made with render_mode='rgb_array' "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]}); drop --video") from None
    try:
        env.reset(seed=0)
        frame = env.render()
    except Exception as exc:  # noqa: BLE001
        raise PolicyError(f"--video: env {env_id!r} cannot render a frame here ({type(exc).__name__}: "
                          f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); drop --video") from None
    finally:
        env.close()
    if not isinstance(frame, np.ndarray):
        modes = (getattr(env, "metadata", None) or {}).get("render_modes", [])
        raise PolicyError(f"--video: env {env_id!r} renders no rgb_array frames (its render_modes: {modes}); drop "
                          "--video, or give the env an rgb_array render mode")


# --------------------------------------------------------------------------- evaluation
def evaluate_policy(policy: Policy, episodes: int = 10, seed: int = 0, stochastic: bool = False,
                    video: str | Path | None = None, name_prefix: str = "episode") -> dict[str, Any]:
    """Play ``policy`` for ``episodes`` fresh episodes (episode i reset with seed ``seed + i``); with ``video``,
    record them as mp4 into that folder (moved there once every episode has finished)."""
    if int(episodes) < 1:
        raise PolicyError(f"--episodes {episodes}: give at least 1")
    if stochastic and policy._sampler is None:
        raise PolicyError("--stochastic needs the run directory (an exported file holds the deterministic policy): "
                          f"rlpop evaluate {shlex.quote(str(policy.meta.get('run_dir', 'RUN_DIR')))} --stochastic")
    if video is not None:
        check_video(policy)
    stage = None
    env = policy.make_env(render_mode="rgb_array" if video is not None else None)
    files: list[str] = []
    try:
        if video is not None:
            from gymnasium.wrappers import RecordVideo

            Path(video).mkdir(parents=True, exist_ok=True)
            stage = Path(tempfile.mkdtemp(prefix=".video-", dir=video))
            env = RecordVideo(env, video_folder=str(stage / "mp4"), episode_trigger=lambda i: True, name_prefix=name_prefix,
                              disable_logger=True)
        if stochastic:
            policy.seed(seed)
        limit = getattr(getattr(env, "spec", None), "max_episode_steps", None) or MAX_EPISODE_STEPS
        returns, lengths = [], []
        for i in range(int(episodes)):
            obs, _ = env.reset(seed=int(seed) + i)
            total, n, done = 0.0, 0, False
            while not done and n < limit:
                action = policy(obs, deterministic=not stochastic)
                obs, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                n += 1
                done = bool(terminated or truncated)
            returns.append(total)
            lengths.append(n)
        env.close()
        if stage is not None:
            for f in sorted((stage / "mp4").glob("*.mp4")):
                dst = Path(video) / f.name
                f.replace(dst)
                files.append(str(dst))
    finally:
        with contextlib.suppress(Exception):
            env.close()
        if stage is not None:
            shutil.rmtree(stage, ignore_errors=True)
    m = policy.meta
    return {
        "source": m.get("source") or m.get("run_dir"), "env": m.get("env"), "env_kwargs": m.get("env_kwargs"),
        "member": m.get("member"), "checkpoint": m.get("checkpoint"), "step": m.get("step"), "q": m.get("q"),
        "episodes": int(episodes), "seed": int(seed), "deterministic": not stochastic,
        "seeds": [int(seed) + i for i in range(int(episodes))],
        "returns": returns, "lengths": lengths,
        "mean_return": float(np.mean(returns)), "std_return": float(np.std(returns)),
        "mean_length": float(np.mean(lengths)), "std_length": float(np.std(lengths)),
        "videos": files,
    }


def open_policy(target: str | Path, member: Any = "best", checkpoint: str | None = None) -> Policy:
    """A run directory's member or an exported policy file, as a :class:`Policy`."""
    from rlpop.policy import load_policy
    from rlpop.runs import load_run

    p = Path(target)
    if p.suffix in FORMATS.values() and not p.exists():
        raise PolicyError(f"{p}: no such policy file; write one with rlpop export RUN_DIR --out {p}")
    if p.is_file():
        if p.suffix not in FORMATS.values():
            raise PolicyError(f"{p} is not a policy file rlpop evaluate plays ({', '.join(FORMATS.values())}); give "
                              "a run directory or a file written by rlpop export")
        return load_policy(p)
    return load_run(p).policy(member, checkpoint)


def default_out(target: Path, result: dict[str, Any]) -> Path:
    if target.is_file():
        return target.with_name(f"{target.stem}.eval-seed{result['seed']}.json")
    return target / "evaluations" / f"w{result['member']}-{result['checkpoint']}-seed{result['seed']}.json"


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rlpop evaluate", description="play a trained member (a run directory or an "
                                "exported policy file) on fresh episodes; deterministic and seeded")
    p.add_argument("target", metavar="RUN_DIR|POLICY_FILE")
    p.add_argument("--member", default="best", help="(run directory) 'best' (default) or a worker id")
    p.add_argument("--checkpoint", choices=["best", "latest"], default=None,
                   help="(run directory) 'best': the kept state at the member's best Q (default when kept); "
                        "'latest': the newest checkpoint")
    p.add_argument("--episodes", type=int, default=10, help="episodes to play (default 10)")
    p.add_argument("--seed", type=int, default=0, help="episode i is reset with seed SEED + i (default 0)")
    p.add_argument("--stochastic", action="store_true", help="sample actions (run directories only)")
    p.add_argument("--video", metavar="DIR", help="record every episode as mp4 into DIR")
    p.add_argument("--out", help="the JSON result (default: RUN_DIR/evaluations/... or POLICY.eval-seedS.json)")
    args = p.parse_args(argv)
    try:
        target = Path(args.target)
        if target.is_file() and (args.member != "best" or args.checkpoint):
            raise PolicyError("--member/--checkpoint pick a member of a run directory; a policy file is one member")
        policy = open_policy(target, args.member, args.checkpoint)
        result = evaluate_policy(policy, args.episodes, args.seed, args.stochastic, args.video,
                                 name_prefix=f"w{policy.meta.get('member')}-seed{args.seed}")
        out = Path(args.out) if args.out else default_out(target, result)
        _write_json(out, result)
    except (PolicyError, RunDirError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    q = result["q"]
    print(f"w{result['member']} ({result['checkpoint']} checkpoint, step {result['step']:,}, training Q="
          f"{'?' if q is None else format(q, '.4g')}) on {result['env']}: {result['episodes']} episodes, seed "
          f"{result['seed']}, {'deterministic' if result['deterministic'] else 'stochastic'}")
    print(f"  return {result['mean_return']:.4g} ± {result['std_return']:.3g}   length {result['mean_length']:.1f} "
          f"± {result['std_length']:.3g}")
    for f in result["videos"]:
        print(f"  video: {f}")
    print(f"  wrote {out}")
    return 0


def _write_json(path: Path, data: dict[str, Any]) -> None:
    from rlpop.store.files import replace_with

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        replace_with(path, path.with_name(path.name + ".tmp"), (json.dumps(data, indent=1) + "\n").encode())
    except OSError as exc:
        raise PolicyError(f"cannot write {path}: {exc.strerror or exc}; give another --out") from None


if __name__ == "__main__":
    raise SystemExit(main())

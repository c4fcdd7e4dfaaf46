"""``rlpop export RUN_DIR [--member best|ID] [--checkpoint best|latest] [--out FILE] [--format pt2|torchscript|onnx]``

Writes a member of a run as a standalone policy file and a JSON sidecar beside it (``FILE.json``: env id,
kwargs, wrappers and how a custom env is registered, observation and action spaces, member, sub-population,
round, step, Q, hparams, the learner, and how to load the file).

rlpop's own learners (PPO, V-MPO) export :class:`rlpop.policy.PolicyModule`: the observation normaliser, the
policy network and the deterministic action (argmax for Discrete; the Gaussian's mean clipped to the action
bounds for Box) in one file that runs with torch alone, taking float32 observations ``[B, obs_dim]``:

- ``--format pt2`` (default): ``torch.export`` -- ``torch.export.load(FILE).module()(obs)``;
- ``--format torchscript``: ``torch.jit.load(FILE)(obs)``;
- ``--format onnx``: ONNX (needs ``onnx`` and ``onnxscript``: ``pip install 'rlpop[onnx]'``); input ``obs``,
  output ``action``.

Other learners export through a hook of the learner protocol, ``learner.export(path) -> list of paths``
(:class:`rlpop.agents.base.Learner`): stable-baselines3 members write SB3's own ``.zip`` (``PPO.load(FILE)``;
with ``normalize=True`` its VecNormalize statistics beside it), RLlib members an RLlib checkpoint directory
(``Algorithm.from_checkpoint(DIR)``). A learner without the hook is refused in one line.

Which weights: ``--checkpoint best`` (the default when the run kept one) is the state a sub-population's best
member had at the round of its best Q; ``latest`` the newest checkpoint; ``--member best`` the best of them
(see :mod:`rlpop.runs`). Default ``--out``: ``RUN_DIR/exports/w<ID>-<checkpoint>.<ext>``. Files are written
beside their destination and renamed into place, so a failure leaves nothing half-written.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import shlex
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from rlpop.policy import FORMATS, NATIVE, PolicyError, sidecar_path
from rlpop.store import RunDirError

_LOAD = {
    "pt2": "import torch; policy = torch.export.load(FILE).module(); action = policy(torch.as_tensor(obs, "
           "dtype=torch.float32))",
    "torchscript": "import torch; policy = torch.jit.load(FILE); action = policy(torch.as_tensor(obs, "
                   "dtype=torch.float32))",
    "onnx": "import onnxruntime; s = onnxruntime.InferenceSession(FILE); action = s.run(None, {'obs': "
            "obs.astype('float32')})[0]",
    "sb3": "from stable_baselines3 import ALGO; model = ALGO.load(FILE); action, _ = model.predict(obs, "
           "deterministic=True)  (normalise obs with the VecNormalize file first, if any)",
    "rllib": "from ray.rllib.algorithms.algorithm import Algorithm; algo = Algorithm.from_checkpoint(DIR)",
}


def export(run_dir: str | Path, member: Any = "best", checkpoint: str | None = None, out: str | Path | None = None,
           fmt: str | None = None) -> tuple[Path, Path]:
    """Export a member of ``run_dir``; returns (the policy file or directory, its JSON sidecar)."""
    from rlpop.policy import module_from_state, policy_meta, space_from_dict
    from rlpop.runs import load_run, parse_member

    run = load_run(run_dir)
    member = parse_member(member)
    if fmt is not None and fmt not in FORMATS:
        raise PolicyError(f"--format {fmt!r}: give one of {', '.join(FORMATS)}")
    native = run.learner in NATIVE
    if not native and fmt is not None:
        raise PolicyError(f"--format {fmt}: learner {run.learner!r} exports in its own format (drop --format)")
    fmt = fmt or ("pt2" if native else None)
    if fmt == "onnx":
        _require_onnx()
    best, state = run.member_state(member, checkpoint)
    cls = None if native else _export_class(run)
    meta = policy_meta(run, best, state) if run.config.get("env") else _meta_without_env(run, best, state)
    ext = FORMATS[fmt] if native else getattr(cls, "export_suffix", "")
    out = Path(out) if out else run.path / "exports" / f"w{best.member}-{best.checkpoint}{ext}"
    side = sidecar_path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PolicyError(f"cannot write {out}: {exc.strerror or exc}; give another --out") from None
    with _staging(out.parent) as tmp:
        if native:
            module = module_from_state(state, space_from_dict(meta["observation_space"]),
                                       space_from_dict(meta["action_space"]))
            try:
                _write_module(module, _obs_dim(meta), fmt, tmp / out.name)
            except Exception as exc:  # noqa: BLE001 -- torch's exporters: one line, nothing left behind
                raise PolicyError(f"cannot write the policy as {fmt} ({type(exc).__name__}: "
                                  f"{str(exc).strip().splitlines()[0][:300]}); try another --format") from None
            files = [out.name]
            meta.update(format=fmt, load=_LOAD[fmt].replace("FILE", repr(out.name)),
                        input={"name": "obs", "dtype": "float32", "shape": ["B", _obs_dim(meta)]},
                        output={"name": "action", **_output(meta)},
                        action=("argmax of the policy logits" if meta["action_space"]["type"] == "Discrete"
                                else "the Gaussian's mean, clipped to the action space's bounds"),
                        obs_normalization=("inside the file: (obs - mean) / sqrt(var + 1e-8), clipped to [-10, 10]"
                                           if (state.get("hparams") or {}).get("norm_obs", True) else "none"))
        else:
            written = _call_hook(run, cls, best, state, tmp / out.name)
            files = [Path(w).name for w in written]
            kind = run.learner.partition(":")[0]
            meta.update(format=kind, files=files,
                        load=_LOAD.get(kind, f"see {run.learner}'s export hook").replace(
                            "ALGO", run.learner.partition(":")[2] or "ALGO").replace("FILE", repr(out.name))
                        .replace("DIR", repr(out.name)))
        meta["file"] = out.name
        from rlpop.cli import version

        import torch

        meta.update(rlpop_version=version(), torch_version=torch.__version__)
        (tmp / side.name).write_text(json.dumps(meta, indent=1, default=str) + "\n")
        for name in [*files, side.name]:  # all written: move them into place
            dst = out.parent / name
            if dst.is_dir():
                shutil.rmtree(dst)
            (tmp / name).replace(dst)
    return out, side


def _obs_dim(meta: dict[str, Any]) -> int:
    n = 1
    for s in meta["observation_space"]["shape"]:
        n *= int(s)
    return n


def _output(meta: dict[str, Any]) -> dict[str, Any]:
    a = meta["action_space"]
    if a["type"] == "Discrete":
        return {"dtype": "int64", "shape": ["B"]}
    return {"dtype": "float32", "shape": ["B", *a["shape"]]}


@contextlib.contextmanager
def _staging(folder: Path):
    """A temporary folder beside the destination (same file system: the final moves are renames), removed after."""
    try:
        tmp = Path(tempfile.mkdtemp(prefix=".export-", dir=folder))
    except OSError as exc:
        raise PolicyError(f"cannot write in {folder}: {exc.strerror or exc}; give another --out") from None
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_module(module, obs_dim: int, fmt: str, path: Path) -> None:
    import torch

    example = torch.zeros(2, obs_dim, dtype=torch.float32)
    if fmt == "pt2":
        batch = torch.export.Dim("batch")
        prog = torch.export.export(module, (example,), dynamic_shapes={"obs": {0: batch}})
        torch.export.save(prog, str(path))
    elif fmt == "torchscript":
        torch.jit.script(module).save(str(path))
    else:
        batch = torch.export.Dim("batch")
        with contextlib.redirect_stdout(io.StringIO()):
            torch.onnx.export(module, (example,), str(path), input_names=["obs"], output_names=["action"],
                              dynamic_shapes={"obs": {0: batch}}, dynamo=True, verbose=False,
                              external_data=False)


def _require_onnx() -> None:
    missing = []
    for mod in ("onnx", "onnxscript"):
        try:
            __import__(mod)
        except ImportError:
            missing.append(mod)
    if missing:
        raise PolicyError(f"--format onnx needs {' and '.join(missing)} (not installed): pip install 'rlpop[onnx]', "
                          "or use --format pt2")


def _export_class(run):
    """The run's learner class, if it has an ``export`` hook; a learner without one is refused in one line."""
    from rlpop.agents import learner_class

    try:
        cls = learner_class(run.learner)
    except ValueError as exc:
        raise PolicyError(f"cannot export: {exc}") from None
    if not callable(getattr(cls, "export", None)):
        raise PolicyError(f"learner {run.learner!r} ({cls.__module__}.{cls.__qualname__}) has no export hook: give it "
                          "a method export(self, path) -> [written paths] (rlpop.agents.base.Learner), or read its "
                          "state from the run's checkpoints yourself (rlpop.load_run(RUN_DIR).member_state())")
    return cls


def _call_hook(run, cls, best, state, path: Path) -> list[Path]:
    """Build the run's learner with the member's hparams and state, and call its ``export`` hook."""
    from rlpop.agents import make_learner
    from rlpop.envs.registry import WRAPPERS_KEY
    from rlpop.policy import ensure_env, experiment_dir

    spec = run.env_spec()
    env_kwargs = dict(spec["env_kwargs"])
    if spec["env_wrappers"]:
        env_kwargs[WRAPPERS_KEY] = spec["env_wrappers"]
    if spec["env"]:
        ensure_env(spec["env"], None, experiment_dir(run), run.path)
    hp = {**(run.config.get("agent") or {}).get("hparams", {}), **best.hparams}
    learner = make_learner(run.learner, spec["env"], hp, int(run.config.get("seed", 0)), env_kwargs)
    try:
        learner.set_state(state)
        return [Path(p) for p in learner.export(str(path))]
    finally:
        with contextlib.suppress(Exception):
            learner.close()


def _meta_without_env(run, best, state) -> dict[str, Any]:
    return {"env": None, "run_dir": str(run.path.resolve()), "learner": run.learner, "member": best.member,
            "subpop": best.subpop, "checkpoint": best.checkpoint, "round": best.round, "step": best.step,
            "q": best.q, "hparams": best.hparams}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="rlpop export",
                                description="write a run's member (default: the best) as a standalone policy file "
                                            "(observation normaliser + network + deterministic action) and a JSON "
                                            "sidecar (env, spaces, member, step, Q, hparams)",
                                epilog="The policy runs with torch alone; the sidecar FILE.json says how to load it.")
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("--member", default="best", help="'best' (default) or a worker id")
    p.add_argument("--checkpoint", choices=["best", "latest"], default=None,
                   help="'best': the kept state at the member's best Q (default when kept); 'latest': the newest "
                        "checkpoint")
    p.add_argument("--out", help="the policy file (default RUN_DIR/exports/w<ID>-<checkpoint>.<ext>); FILE.json "
                                 "is written beside it")
    p.add_argument("--format", choices=list(FORMATS), default=None,
                   help="pt2 (torch.export, default), torchscript, onnx (rlpop's own learners)")
    args = p.parse_args(argv)
    try:
        out, side = export(args.run_dir, args.member, args.checkpoint, args.out, args.format)
    except (PolicyError, RunDirError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    meta = json.loads(side.read_text())
    q = meta.get("q")
    print(f"exported w{meta['member']} ({meta['checkpoint']} checkpoint, round {meta['round']}, step "
          f"{meta['step']:,}, Q={q if q is None else format(q, '.4g')}) of {args.run_dir}")
    print(f"  {out}  ({meta['format']})\n  {side}  (env, spaces, member, hparams)")
    print(f"  load: {meta['load']}")
    if meta.get("env"):
        print(f"  next: rlpop evaluate {shlex.quote(str(out))} --episodes 10")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

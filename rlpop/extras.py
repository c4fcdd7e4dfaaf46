"""Optional dependencies: which extra of ``pip install 'rlpop[...]'`` a feature needs, checked at spec time.

rlpop's core (torch, gymnasium, numpy, scipy, pandas, scikit-learn, matplotlib, tensorboard, rich) runs every
strategy on the inline backend with rlpop's own learners. A feature whose library is an extra fails before the run
directory exists, in one line naming the extra::

    ValueError: backend='ray' needs Ray, which is not installed: pip install 'rlpop[ray]'
"""
from __future__ import annotations

import importlib.util
import sys

#: extra -> (module to import, what the user knows it as, lowest version or None)
EXTRAS: dict[str, tuple[str, str, str | None]] = {
    "ray": ("ray", "Ray", None),
    "rllib": ("ray.rllib", "RLlib (ray[rllib])", None),
    "sb3": ("stable_baselines3", "stable-baselines3", "2.7"),
    "optuna": ("optuna", "Optuna", None),
    "envpool": ("envpool", "EnvPool", None),
    "wandb": ("wandb", "Weights & Biases (wandb)", None),
    "mlflow": ("mlflow", "MLflow", None),
}

#: the distribution whose version :func:`require` compares with the lowest version
_DISTRIBUTIONS = {"stable_baselines3": "stable-baselines3"}


def installed(module: str) -> bool:
    """Whether ``module`` can be imported, without importing it (a parent package may be imported to look)."""
    parts = module.split(".")
    for i in range(1, len(parts) + 1):  # a package set to None in sys.modules counts as missing
        name = ".".join(parts[:i])
        if name in sys.modules and sys.modules[name] is None:
            return False
    if sys.modules.get(module) is not None:
        return True
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _version_below(module: str, lowest: str) -> str | None:
    """The installed version of ``module``'s distribution when it is below ``lowest`` (else None)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        have = version(_DISTRIBUTIONS.get(module, module))
    except PackageNotFoundError:
        return None

    def key(v: str) -> tuple[int, ...]:
        out = []
        for p in v.split(".")[:3]:
            digits = "".join(c for c in p if c.isdigit()) or "0"
            out.append(int(digits))
        return tuple(out)

    return have if key(have) < key(lowest) else None


def require(extra: str, feature: str) -> None:
    """Raise ``ValueError`` in one line when the library of ``extra`` is missing (or too old) for ``feature``
    (how the user asked for it, e.g. ``"backend='ray'"``)."""
    module, what, lowest = EXTRAS[extra]
    if not installed(module):
        raise ValueError(f"{feature} needs {what}, which is not installed: pip install 'rlpop[{extra}]'")
    if lowest is not None:
        old = _version_below(module, lowest)
        if old:
            raise ValueError(f"{feature} needs {what} >= {lowest} (installed: {old}): pip install -U 'rlpop[{extra}]'")

"""rlpop: population-based training for RL. ``rlpop.load_run(path)`` reads a run directory from Python
(:mod:`rlpop.runs`); the command line is ``rlpop COMMAND`` (:mod:`rlpop.cli`)."""


def load_run(path):
    """Open a run directory: ``.curves``, ``.metrics``, ``.decisions``, ``.config``, ``.best()``, ``.lineage()``,
    ``.policy()``, ``.evaluate()`` (see :mod:`rlpop.runs`)."""
    from rlpop.runs import load_run as _load_run

    return _load_run(path)


__all__ = ["load_run"]

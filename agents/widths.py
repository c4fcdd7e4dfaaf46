"""Layer width as a hyperparameter: each member's hidden layers use the first ``width_i`` of ``hidden[i]`` units.

The batched learners stack every member at the declared maximum, ``hidden``; a member whose ``width_i`` is
smaller has its other units *off*: their incoming weights, biases and outgoing weights are zero, and so are
their Adam moments. An off unit outputs ``tanh(0) = 0`` through zero outgoing weights, so it adds exactly
nothing to the forward pass, and every gradient reaching its weights is exactly zero (``0 * x`` in, ``w = 0``
out); the learner also multiplies each update's gradients by the member's parameter mask
(:func:`param_mask`), so an off unit takes no Adam step and adds nothing to a gradient norm whatever the
arithmetic. The member's network is therefore exactly the narrower ``ActorCritic`` (:func:`narrow_state_dict`
cuts it out, for export).

Changing a width (PBT's explore, or a FIRE evaluator taking a child's width on its parent's weights):

* **growing** is a network morphism (Wei et al. 2016; Chen et al.'s Net2Net): the new units get fresh
  incoming weights (orthogonal rows with gain sqrt(2), as a new layer's, from the member's own stream), zero
  biases, zero outgoing weights and zero Adam moments, so the member computes the same function before and
  after, and learns to use them from its next update;
* **shrinking** drops the last units (all their parameters and moments set to zero): the function changes,
  and the run's decision log says so (:func:`width_notes`).

The active units are always a prefix ``[0, width_i)`` of the layer. Both the policy and the value network
use the same widths (they share ``hidden``). Pure functions over :class:`rlpop.agents.stacked.StackedActorCritic`'s
``[K, P]`` rows; no learner state here.
"""
from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import torch

#: ``width_0`` .. ``width_3``: one per hidden layer (None: the layer's full ``hidden[i]``)
MAX_LAYERS = 4
NAMES: tuple[str, ...] = tuple(f"width_{i}" for i in range(MAX_LAYERS))
DEFAULTS: dict[str, Any] = {n: None for n in NAMES}
#: the gain of a fresh unit's incoming weights (networks.layer_init's hidden-layer gain)
GAIN = math.sqrt(2)


def widths(hp: Mapping[str, Any]) -> tuple[int, ...]:
    """The units each hidden layer uses: ``width_i``, or ``hidden[i]`` where it is None."""
    hidden = tuple(hp["hidden"])
    return tuple(int(hidden[i]) if hp.get(NAMES[i]) is None else int(hp[NAMES[i]]) for i in range(len(hidden)))


def narrowed(hp: Mapping[str, Any]) -> bool:
    """Whether some layer uses fewer units than ``hidden`` declares."""
    return widths(hp) != tuple(int(h) for h in hp["hidden"])


def rules(hp: Mapping[str, Any]) -> dict[str, Any]:
    """Value rules of ``width_i`` (agents.hparam_rules): an integer in ``[1, hidden[i]]`` or None, for each
    layer the network has; None only for the layers it has not."""
    from rlpop.agents import hparam_rules as R

    hidden = hp.get("hidden") or ()
    ok = isinstance(hidden, (list, tuple)) and all(isinstance(h, int) and not isinstance(h, bool) for h in hidden)
    out = {}
    for i, name in enumerate(NAMES):
        if ok and i < len(hidden):
            out[name] = R.integer(1, hi=int(hidden[i]), example=max(1, int(hidden[i]) // 2), none_ok=True)
        elif ok:
            out[name] = R.Rule("none", none_ok=True, none_means=f"hidden={list(hidden)} has {len(hidden)} "
                                                              f"layer(s): only width_0..width_{len(hidden) - 1} apply")
    return out


# ---------------------------------------------------------------- positions of a unit in the [K, P] rows
def _trunks(net) -> list[tuple[str, str]]:
    """(Linear layer name, the next Linear's name) of every hidden layer, per network, in layer order."""
    n_hidden = net.n_layers - 1
    return [(f"{prefix}.{2 * i}", f"{prefix}.{2 * (i + 1)}") for prefix in ("actor", "critic") for i in range(n_hidden)]


def unit_views(net, rows: torch.Tensor, layer: int, units: slice) -> dict[str, list[torch.Tensor]]:
    """Views into ``rows`` ``[K', P]`` of hidden ``layer``'s ``units``, in both networks:
    ``"in"`` (incoming weights ``[K', in, u]``), ``"bias"`` (``[K', u]``), ``"out"`` (outgoing ``[K', u, out]``)."""
    v = net.views(rows)
    out: dict[str, list[torch.Tensor]] = {"in": [], "bias": [], "out": []}
    for this, nxt in _trunks(net):
        if int(this.split(".")[1]) != 2 * layer:
            continue
        out["in"].append(v[this + ".weight"][:, :, units])
        out["bias"].append(v[this + ".bias"][:, units])
        out["out"].append(v[nxt + ".weight"][:, units, :])
    return out


def _zero_units(net, row: torch.Tensor, layer: int, units: slice) -> None:
    """Zero every parameter of hidden ``layer``'s ``units`` (both networks) in one member's ``[1, P]`` row."""
    for views in unit_views(net, row, layer, units).values():
        for t in views:
            t.zero_()


def _zero_off_units(net, row: torch.Tensor, ws: Sequence[int]) -> None:
    """Zero the parameters of every unit beyond widths ``ws`` in one member's ``[1, P]`` row."""
    for layer, (w, h) in enumerate(zip(ws, net.kwargs["hidden"])):
        if w < h:
            _zero_units(net, row, layer, slice(w, h))


def param_mask(net, member_widths: Sequence[Sequence[int]], device=None) -> torch.Tensor:
    """``[K', P]``: 1 where member k's parameter belongs to an active unit (or to no hidden unit), 0 for the
    parameters of its off units (incoming weights, bias and outgoing weights)."""
    mask = torch.ones(len(member_widths), net.flat.shape[1], dtype=net.flat.dtype, device=device or net.device)
    for k, ws in enumerate(member_widths):
        _zero_off_units(net, mask[k:k + 1], ws)
    return mask


@torch.no_grad()
def set_width(net, k: int, layer: int, old: int, new: int, params: Sequence[torch.Tensor],
              moments: Sequence[torch.Tensor], generator: torch.Generator) -> None:
    """Member ``k``'s hidden ``layer`` goes from ``old`` to ``new`` units, in place.

    ``params``: the ``[K, P]`` weight stacks that carry the network (online weights, and V-MPO's target: both
    get the same fresh units); ``moments``: ``[K, P]`` optimiser stacks (Adam's two moments), zeroed for every
    unit that changes. Growing: fresh incoming weights (orthogonal rows, gain :data:`GAIN`, drawn on the CPU
    from ``generator``), zero bias and outgoing weights -- the function is unchanged. Shrinking: every
    parameter of the dropped units set to zero -- the function changes."""
    if new == old:
        return
    units = slice(min(old, new), max(old, new))
    n = units.stop - units.start
    fresh = []
    if new > old:
        for t in unit_views(net, params[0][k:k + 1], layer, units)["in"]:
            w = torch.empty(n, t.shape[1])  # [units, in]: a Linear(in, units)'s weight, initialised as one
            torch.nn.init.orthogonal_(w, GAIN, generator=generator)
            fresh.append(w.t().to(t.device, t.dtype))
    for rows in params:
        views = unit_views(net, rows[k:k + 1], layer, units)
        for i, t in enumerate(views["in"]):
            t[0] = fresh[i] if fresh else 0.0
        for t in views["bias"] + views["out"]:
            t.zero_()
    for rows in moments:
        _zero_units(net, rows[k:k + 1], layer, units)


@torch.no_grad()
def clear_off_units(net, k: int, hp: Mapping[str, Any], params: Sequence[torch.Tensor],
                    moments: Sequence[torch.Tensor]) -> None:
    """Zero every parameter and moment of member ``k``'s off units (a loaded state is made to keep the
    invariant; a no-op for a state this module wrote)."""
    for rows in (*params, *moments):
        _zero_off_units(net, rows[k:k + 1], widths(hp))


# ---------------------------------------------------------------- the member's own network
def _shape_at(name: str, shape: Sequence[int], sizes: Sequence[int]) -> tuple[int, ...]:
    """The shape of ActorCritic parameter ``name`` (now ``shape``) in a network whose hidden layers have
    ``sizes`` units: Linear ``i`` has ``sizes[i]`` outputs (torch's ``[out, in]``) and ``sizes[i-1]`` inputs."""
    parts, shape = name.split("."), list(shape)
    if len(parts) == 3 and parts[0] in ("actor", "critic"):
        i = int(parts[1]) // 2
        if i < len(sizes):
            shape[0] = int(sizes[i])
        if parts[2] == "weight" and i > 0:
            shape[1] = int(sizes[i - 1])
    return tuple(shape)


def narrow_state_dict(state_dict: Mapping[str, torch.Tensor], hidden: Sequence[int],
                      ws: Sequence[int]) -> dict[str, torch.Tensor]:
    """An ``ActorCritic`` state dict at width ``hidden`` cut to the first ``ws[i]`` units of each hidden layer:
    the state dict of ``ActorCritic(hidden=ws)`` computing the same function (given the off units are off)."""
    out = {}
    for name, t in state_dict.items():
        t = torch.as_tensor(t)
        out[name] = t[tuple(slice(0, n) for n in _shape_at(name, t.shape, ws))].clone().contiguous()
    return out


def pad_state_dict(state_dict: Mapping[str, torch.Tensor], hidden: Sequence[int],
                   ws: Sequence[int]) -> dict[str, torch.Tensor]:
    """The inverse of :func:`narrow_state_dict`: an ``ActorCritic(hidden=ws)`` state dict laid out at width
    ``hidden``, its missing units off (zero)."""
    out = {}
    for name, t in state_dict.items():
        t = torch.as_tensor(t)
        big = torch.zeros(_shape_at(name, t.shape, hidden), dtype=t.dtype)
        big[tuple(slice(0, n) for n in t.shape)] = t
        out[name] = big
    return out


def width_notes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """One line per layer whose width shrinks from the hparams ``old`` to ``new`` (units dropped: the policy's
    function changed); growing is a morphism and says nothing."""
    notes = []
    for name in NAMES:
        a, b = old.get(name), new.get(name)
        if a is not None and b is not None and int(b) < int(a):
            notes.append(f"{name} {int(a)} -> {int(b)}: units {int(b)}..{int(a) - 1} dropped, the network's "
                         "function changed")
    return notes

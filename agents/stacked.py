"""K members' actor-critic networks as stacked tensors, and the per-member optimiser math.

A member's network is exactly :class:`rlpop.agents.networks.ActorCritic`; here
K of them are held as one ``[K, P]`` tensor (a row of all P parameters per
member) whose per-layer views are ``weight [K, in, out]`` and ``bias [K, out]``,
evaluated for all members at once with one ``baddbmm`` per layer on inputs
shaped ``[K, B, in]``. Member ``k``'s slice converts to and
from an ``ActorCritic`` state dict (:meth:`StackedActorCritic.member_state_dict`),
so a member's checkpoint is the same whichever engine trained it.

The optimiser is Adam written out once over the ``[K, P]`` rows (:func:`adam_step`) with
a per-member learning rate, step count and an ``active`` mask (a member that
sits out an iteration is left exactly as it was), and gradient clipping by each
member's own global norm (:func:`clip_grad_norm_per_member`) -- the same
arithmetic as ``torch.optim.Adam`` and ``torch.nn.utils.clip_grad_norm_`` on
one member.
"""
from __future__ import annotations

from typing import Any, Sequence

import torch
from gymnasium import spaces

from rlpop.agents.networks import ActorCritic, log_prob_entropy, state_log_std
from rlpop.agents.widths import pad_state_dict


def _linear_names(prefix: str, n_layers: int) -> list[str]:
    # nn.Sequential(Linear, Tanh, Linear, Tanh, ..., Linear): Linear layers sit at even indices
    return [f"{prefix}.{2 * i}" for i in range(n_layers)]


def member_linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """``x [K, B, in] @ weight [K, in, out] + bias [K, out]``, each member's rows computed by the same kernel
    whatever K is.

    MKL's batched GEMM gives bitwise the same rows for any batch of two or more matrices, but a batch of ONE
    takes another kernel (measured with torch 2.13's MKL on one thread: 87 of 150 shapes differ in the last
    bits, e.g. ``[64, 64] @ [64, 1]``, the value head). A lone member is therefore computed in a batch of two
    (itself twice), so a member's arithmetic is the same in a shard of one as in a shard of many."""
    if x.shape[0] == 1:
        return torch.baddbmm(bias.unsqueeze(1).repeat(2, 1, 1), x.repeat(2, 1, 1), weight.repeat(2, 1, 1))[:1]
    return torch.baddbmm(bias.unsqueeze(1), x, weight)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """The batched engine's tanh: ``2 * sigmoid(2x) - 1``, in place on ``x`` where autograd does not need it.

    On this project's CPU (torch 2.13, AVX-512, one thread) ``torch.tanh`` of a ``[8, 64, 64]`` activation takes
    83 us and this 27 us (``benchmarks/batched_update.py`` records what it does to an update); the two agree within
    1.8e-7 (measured on [-10, 10]) and both give exactly 0 at 0 (an off unit of a narrowed layer stays off). Every
    forward of the engine -- acting, values, updates -- uses it, so the policy that acts is the one that learns;
    an exported ``ActorCritic`` computes ``torch.tanh`` (within 1.8e-7 of it)."""
    if torch.is_grad_enabled() and x.requires_grad:
        return torch.sigmoid(x * 2) * 2 - 1
    return torch.sigmoid(x.mul_(2), out=x).mul_(2).sub_(1)


def member_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a [K, m, n] @ b [K, n, p]`` with :func:`member_linear`'s rule: a lone member computed in a batch of two."""
    if a.shape[0] == 1:
        return torch.bmm(a.expand(2, -1, -1), b.expand(2, -1, -1))[:1]
    return torch.bmm(a, b)


@torch.no_grad()
def mlp_forward(x: torch.Tensor, weights: Sequence[torch.Tensor], biases: Sequence[torch.Tensor]
                ) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """K stacked tanh MLPs on ``x [K, B, in]`` (layer ``i``: ``h @ weights[i] + biases[i]``, tanh between
    layers), without autograd. Returns the output and each layer's input (what :func:`mlp_backward` needs)."""
    inputs = []
    for i, (w, b) in enumerate(zip(weights, biases)):
        inputs.append(x)
        x = member_linear(x, w, b)
        if i < len(weights) - 1:
            x = tanh(x)
    return x, inputs


@torch.no_grad()
def mlp_backward(inputs: Sequence[torch.Tensor], weights: Sequence[torch.Tensor], grad_out: torch.Tensor
                 ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The gradients of the weights and biases of :func:`mlp_forward`'s MLPs given ``d loss / d output``
    ``[K, B, out]``: what autograd computes for ``baddbmm`` and ``tanh`` (the same kernels: ``bmm`` of the
    transposes, a sum over the batch, ``tanh_backward`` on the layer's output), written out so an update's
    backward is a handful of kernels per layer instead of the autograd engine's nodes, casts and
    accumulations. Tested against autograd in tests/test_stacked_grad.py."""
    n = len(weights)
    gw: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
    gb: list[torch.Tensor] = [None] * n  # type: ignore[list-item]
    g = grad_out
    for i in range(n - 1, -1, -1):
        gw[i] = member_bmm(inputs[i].transpose(1, 2), g)
        gb[i] = g.sum(1)
        if i > 0:
            # inputs[i] = tanh(pre-activation of layer i-1): d tanh = 1 - tanh^2, from the output as autograd's
            # tanh does (exact for 2 sigmoid(2x) - 1 too: its derivative 4 s (1 - s) is 1 - (2s - 1)^2)
            g = torch.ops.aten.tanh_backward(member_bmm(g, weights[i].transpose(1, 2)), inputs[i])
    return gw, gb


class StackedActorCritic:
    """``K`` ActorCritic networks as one ``[K, P]`` parameter tensor (a plain container, not an nn.Module)."""

    def __init__(self, observation_space: spaces.Box, action_space: spaces.Space, hidden: Sequence[int],
                 init_log_std: float, init_seeds: Sequence[int], device: torch.device | str = "cpu",
                 std: str = "param", widths: Sequence[Sequence[int]] | None = None):
        self.kwargs = dict(observation_space=observation_space, action_space=action_space, hidden=tuple(hidden),
                           init_log_std=init_log_std, std=std)
        self.device = torch.device(device)
        nets = []
        with torch.random.fork_rng(devices=[]):  # the process-wide RNG other members share does not move
            for i, s in enumerate(init_seeds):  # member k starts exactly as a single learner whose init seed is s
                torch.manual_seed(int(s))
                ws = tuple(hidden) if widths is None else tuple(int(w) for w in widths[i])
                if ws == tuple(hidden):
                    nets.append(ActorCritic(**self.kwargs))
                    continue
                # a narrower member (rlpop.agents.widths): its own network, laid out at the maximum width
                narrow = ActorCritic(**{**self.kwargs, "hidden": ws})
                net = ActorCritic(**self.kwargs)
                net.load_state_dict(pad_state_dict(narrow.state_dict(), hidden, ws))
                nets.append(net)
        ref = nets[0]
        self.discrete = ref.discrete
        self.state_std = ref.state_std  # std="state": the actor's last layer outputs [mean, pre-softplus std]
        self.n_layers = len(tuple(hidden)) + 1
        #: parameter names in ActorCritic.parameters() order (the optimiser state's order too)
        self.names = [n for n, _ in ref.named_parameters()]
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.offsets: dict[str, tuple[int, int]] = {}
        rows, off = [], 0
        for name in self.names:
            stacked = torch.stack([dict(n.named_parameters())[name].detach() for n in nets])
            if name.endswith(".weight"):
                stacked = stacked.transpose(1, 2)  # [K, out, in] -> [K, in, out] for baddbmm
            self.shapes[name] = tuple(stacked.shape[1:])
            size = stacked[0].numel()
            self.offsets[name] = (off, off + size)
            off += size
            rows.append(stacked.reshape(len(nets), size))
        #: every member's parameters, one row each
        self.flat = torch.cat(rows, 1).contiguous().to(self.device)

    @property
    def k(self) -> int:
        return self.flat.shape[0]

    @property
    def params(self) -> dict[str, torch.Tensor]:
        return self.views(self.flat)

    def views(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per-layer views ``[K', *shape]`` into a ``[K', P]`` tensor (parameters, gradients or moments)."""
        kk = flat.shape[0]
        return {n: flat[:, a:b].view(kk, *self.shapes[n]) for n, (a, b) in self.offsets.items()}

    # ---------------------------------------------------------------- forward
    def _mlp(self, prefix: str, x: torch.Tensor, p: dict[str, torch.Tensor]) -> torch.Tensor:
        names = _linear_names(prefix, self.n_layers)
        for i, name in enumerate(names):
            x = member_linear(x, p[name + ".weight"], p[name + ".bias"])
            if i < len(names) - 1:
                x = tanh(x)
        return x

    def policy_params(self, obs: torch.Tensor, p: dict[str, torch.Tensor] | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """obs ``[K, B, D]`` -> (logits, None) or (mean, log_std), each ``[K, B, A]``."""
        p = self.params if p is None else p
        return self.policy_head(self._mlp("actor", obs, p), p)

    def policy_head(self, out: torch.Tensor, p: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The actor MLP's output -> (logits, None) or (mean, log_std)."""
        if self.discrete:
            return out, None
        if self.state_std:
            mean, raw = out.chunk(2, dim=-1)
            return mean, state_log_std(raw)
        return out, p["log_std"].unsqueeze(1).expand_as(out)

    def value(self, obs: torch.Tensor, p: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """obs ``[K, B, D]`` -> values ``[K, B]``."""
        return self._mlp("critic", obs, self.params if p is None else p).squeeze(-1)

    def log_prob_entropy(self, obs: torch.Tensor, actions: torch.Tensor, p: dict[str, torch.Tensor] | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = self.policy_params(obs, p)
        return log_prob_entropy(a, b, actions, self.discrete)

    def layers(self, prefix: str, p: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """The ``actor`` or ``critic`` MLP's weights ``[K, in, out]`` and biases ``[K, out]`` from views ``p``."""
        names = _linear_names(prefix, self.n_layers)
        return [p[n + ".weight"] for n in names], [p[n + ".bias"] for n in names]

    def loss_grad(self, obs: torch.Tensor, p: dict[str, torch.Tensor], loss_fn, extra: Sequence[torch.Tensor] = ()
                  ) -> tuple[torch.Tensor, list[torch.Tensor], Any]:
        """``d loss / d parameters`` as one ``[K', P]`` tensor, for ``loss_fn(policy_params, values) -> (loss,
        aux)`` on ``obs [K', B, D]``, with the gradients of the ``extra`` leaves ``loss_fn`` uses too (V-MPO's
        multipliers) and ``aux``.

        The two MLPs run forward and backward by hand (:func:`mlp_forward`, :func:`mlp_backward`); autograd only
        differentiates ``loss_fn`` with respect to the MLPs' outputs (and the free log-std): the same gradient as
        autograd through the whole network (tests/test_stacked_grad.py). The gradients come back layer by layer
        and are laid out once as ``[K', P]`` (autograd through views of ONE ``[K', P]`` leaf zero-fills a
        ``[K', P]`` gradient per layer and sums them: 14% of a PPO update of 8 Hopper members, measured)."""
        aw, ab = self.layers("actor", p)
        cw, cb = self.layers("critic", p)
        a_out, a_in = mlp_forward(obs, aw, ab)
        c_out, c_in = mlp_forward(obs, cw, cb)
        a_out.requires_grad_(True)
        c_out.requires_grad_(True)
        head = dict(p)
        free = []
        if "log_std" in p:
            head["log_std"] = p["log_std"].detach().requires_grad_(True)
            free = [head["log_std"]]
        loss, aux = loss_fn(self.policy_head(a_out, head), c_out.squeeze(-1))
        grads = torch.autograd.grad(loss, [a_out, c_out, *free, *extra], allow_unused=True, materialize_grads=True)
        gw_a, gb_a = mlp_backward(a_in, aw, grads[0])
        gw_c, gb_c = mlp_backward(c_in, cw, grads[1])
        by_name: dict[str, torch.Tensor] = {}
        for prefix, gw, gb in (("actor", gw_a, gb_a), ("critic", gw_c, gb_c)):
            for name, w, b in zip(_linear_names(prefix, self.n_layers), gw, gb):
                by_name[name + ".weight"], by_name[name + ".bias"] = w, b
        if free:
            by_name["log_std"] = grads[2]
        kk = obs.shape[0]
        flat = torch.cat([by_name[n].reshape(kk, -1) for n in self.names], 1)
        return flat, list(grads[2 + len(free):]), aux

    # ---------------------------------------------------------------- members
    def member_state_dict(self, k: int) -> dict[str, torch.Tensor]:
        """Member ``k`` as an ``ActorCritic`` state dict (CPU tensors)."""
        return to_module_layout(self, self.flat[k:k + 1])

    @torch.no_grad()
    def load_member(self, k: int, state_dict: dict[str, torch.Tensor]) -> None:
        self.flat[k] = from_module_layout(self, state_dict).to(self.device)


def to_module_layout(net: StackedActorCritic, row: torch.Tensor) -> dict[str, torch.Tensor]:
    """One member's ``[1, P]`` row (weights or Adam moments) as ActorCritic-shaped CPU tensors."""
    out = {}
    for name, t in net.views(row.detach()).items():
        t = t[0]
        out[name] = (t.t() if name.endswith(".weight") else t).cpu().clone().contiguous()
    return out


def from_module_layout(net: StackedActorCritic, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
    """ActorCritic-shaped tensors as one ``[P]`` row."""
    parts = []
    for name in net.names:
        t = torch.as_tensor(tensors[name], dtype=torch.float32)
        parts.append((t.t() if name.endswith(".weight") else t).reshape(-1))
    return torch.cat(parts)


# -------------------------------------------------------------------- optimiser math (pure functions)
def clip_grad_norm_per_member(grad: torch.Tensor, max_norm: torch.Tensor,
                              columns: Sequence[tuple[int, int]] | None = None) -> torch.Tensor:
    """Scale each member's row of ``grad`` [K, P] in place so its L2 norm is at most ``max_norm[k]``
    (``torch.nn.utils.clip_grad_norm_``'s rule for one member); with ``columns`` (``(start, end)``
    ranges), only those columns, as one group (e.g. one network's parameters). Returns the norms [K]."""
    if columns is None:
        norms = grad.norm(dim=1)
        grad.mul_((max_norm / (norms + 1e-6)).clamp(max=1.0).unsqueeze(1))
        return norms
    # the groups' squares added one after the other (a reduction over a stacked dimension sums in an order
    # that depends on K: a member's norm would depend on how many members share its batch)
    squares = [grad[:, a:b].pow(2).sum(1) for a, b in columns]
    total = squares[0]
    for sq in squares[1:]:
        total = total + sq
    norms = total.sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0).unsqueeze(1)
    for a, b in columns:
        grad[:, a:b].mul_(coef)
    return norms


@torch.no_grad()
def adam_step(param: torch.Tensor, grad: torch.Tensor, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
              step: torch.Tensor, lr: torch.Tensor, active: torch.Tensor | None = None,
              betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-5) -> None:
    """One Adam step (Kingma & Ba; torch.optim.Adam's arithmetic) on stacked members' rows [K, P], in place.

    ``step`` [K] (float64) counts each member's own steps; ``lr`` [K] (float64); members with
    ``active[k]`` False are left untouched (parameters, moments and step count); ``active=None``: all step.
    """
    b1, b2 = betas
    if active is None:
        # every member steps: the same arithmetic as below without the selection (bitwise: where(True, x, y) is x)
        step.add_(1.0)
        exp_avg.lerp_(grad, 1 - b1)
        exp_avg_sq.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        step_size = lr / (1 - torch.pow(b1, step)).clamp(min=1e-12)
    else:
        # one arithmetic whether or not some members sit out, so a member's update never depends on the others'
        step.add_(active.to(step.dtype))
        a = active.unsqueeze(1)
        exp_avg.copy_(torch.where(a, exp_avg.lerp(grad, 1 - b1), exp_avg))
        exp_avg_sq.copy_(torch.where(a, (exp_avg_sq * b2).addcmul_(grad, grad, value=1 - b2), exp_avg_sq))
        step_size = torch.where(active, lr / (1 - torch.pow(b1, step)).clamp(min=1e-12), torch.zeros_like(lr))
    bc2_sqrt = torch.sqrt(1 - torch.pow(b2, step)).clamp(min=1e-12)
    denom = (exp_avg_sq.sqrt() / bc2_sqrt.to(exp_avg_sq.dtype).unsqueeze(1)).add_(eps)
    param.addcdiv_(exp_avg * (-step_size).to(param.dtype).unsqueeze(1), denom)


def adam_member_state(net: StackedActorCritic, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                      step: torch.Tensor, k: int, lr: float, eps: float = 1e-5) -> dict[str, Any]:
    """Member ``k``'s moments as a ``torch.optim.Adam(...).state_dict()`` of one ActorCritic."""
    state = {}
    if float(step[k]) > 0:
        m = to_module_layout(net, exp_avg[k:k + 1])
        v = to_module_layout(net, exp_avg_sq[k:k + 1])
        for i, name in enumerate(net.names):
            state[i] = {"step": torch.tensor(float(step[k])), "exp_avg": m[name], "exp_avg_sq": v[name]}
    group = {"lr": float(lr), "betas": (0.9, 0.999), "eps": eps, "weight_decay": 0, "amsgrad": False,
             "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": None,
             "decoupled_weight_decay": False, "params": list(range(len(net.names)))}
    return {"state": state, "param_groups": [group]}


@torch.no_grad()
def load_adam_member(net: StackedActorCritic, exp_avg: torch.Tensor, exp_avg_sq: torch.Tensor,
                     step: torch.Tensor, k: int, opt_state: dict[str, Any]) -> None:
    """Set member ``k``'s moments from an Adam state dict (``torch.optim.Adam`` over ActorCritic's parameters)."""
    st = {int(i): s for i, s in opt_state.get("state", {}).items()}
    if not st:
        step[k] = 0.0
        exp_avg[k].zero_()
        exp_avg_sq[k].zero_()
        return
    step[k] = float(st[0]["step"])
    zeros = {n: torch.zeros(net.shapes[n]).t() if n.endswith(".weight") else torch.zeros(net.shapes[n])
             for n in net.names}
    m = {n: st[i]["exp_avg"] if i in st else zeros[n] for i, n in enumerate(net.names)}
    v = {n: st[i]["exp_avg_sq"] if i in st else zeros[n] for i, n in enumerate(net.names)}
    exp_avg[k] = from_module_layout(net, m).to(exp_avg.device)
    exp_avg_sq[k] = from_module_layout(net, v).to(exp_avg_sq.device)

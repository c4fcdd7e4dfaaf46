"""What PPO and V-MPO share in their hyperparameters: the value rules of the common ones, the envs' layout
check, and the device pick."""
from __future__ import annotations

from typing import Any

import torch


def pick_device(name: str) -> torch.device:
    """``"auto"``: CUDA when torch sees a GPU, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def shared_rules(hp: dict[str, Any]) -> dict[str, Any]:
    """Value rules of the hyperparameters PPO and V-MPO share (rollouts, env processes, networks, device)."""
    from rlpop.agents import hparam_rules as R
    from rlpop.agents.widths import rules as width_rules

    return {
        "lr": R.learning_rate(), "gamma": R.unit(0.99, lo_open=True), "max_grad_norm": R.grad_norm(0.5),
        "epochs": R.integer(1, example=10),
        "minibatch_size": R.integer(1, hi=int(hp.get("rollout_steps") or 1) if _is_int(hp.get("rollout_steps")) else None,
                                    example=64),
        "rollout_steps": R.integer(1, example=2048), "num_actors": R.integer(0, example=2),
        "envs_per_actor": R.integer(1, example=4), "hidden": R.Rule("layers"), "init_log_std": R.Rule("real"),
        "norm_obs": R.flag(), "norm_reward": R.flag(), "device": R.device_rule(), "torch_threads": R.integer(0),
        "env_backend": R.one_of("auto", "envpool", "gym"), "overlap": R.flag(), **width_rules(hp),
    }


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 1


def check_layout(hp: dict[str, Any]) -> None:
    """rollout_steps must split evenly over the envs (num_actors x envs_per_actor)."""
    n_envs = max(1, int(hp["num_actors"])) * int(hp["envs_per_actor"])
    if int(hp["rollout_steps"]) % n_envs:
        raise ValueError(f"agent.hparams.rollout_steps={hp['rollout_steps']} must be a multiple of the number of envs "
                         f"(num_actors x envs_per_actor = {n_envs}); e.g. rollout_steps="
                         f"{max(1, round(int(hp['rollout_steps']) / n_envs)) * n_envs}")

"""rlpop's env registry (imported as ``rlpop.envs``). Importing it registers
rlpop's own envs and the ``rlpop.envs`` entry points of installed packages."""
from rlpop.envs.registry import (SHIP_VAR, check_env_id, load_entry_points, make_env, register_builtin, register_env,
                                 register_with_ray, registered, replay_shipped, unshippable)

# --- rlpop's own envs: one line each -------------------------------------------------
register_builtin("Corridor-v0", "rlpop.envs.corridor:Corridor")

load_entry_points()
replay_shipped()  # envs a parent process registered at run time (an experiment file's register_env)

__all__ = ["register_env", "register_with_ray", "make_env", "check_env_id", "registered"]

"""Interpreter state a guard checks (grad mode, default dtype, environment ...): the
helper each guard calls to read it, bound once into every guard function, and the
guards every trace starts with.

Traced code that reads state (``torch.get_default_dtype()``, ``os.environ.get(k)``) is
folded to this call's value and guarded with the helper ``READERS`` names for it.
"""
from __future__ import annotations

import functools
import os

import torch

from guards.module_hooks import global_module_hook_count

# name used in guard code -> what it calls
STATE_HELPERS = {
    "__grad_enabled": torch.is_grad_enabled,
    "__default_dtype": torch.get_default_dtype,
    "__autocast_cpu": functools.partial(torch.is_autocast_enabled, "cpu"),
    "__deterministic": torch.are_deterministic_algorithms_enabled,
    "__inference_mode": torch.is_inference_mode_enabled,
    "__is_autocast_enabled": torch.is_autocast_enabled,
    "__mha_fastpath": torch.backends.mha.get_fastpath_enabled,
    "__environ": os.environ,
    "__autocast_cpu_dtype": functools.partial(torch.get_autocast_dtype, "cpu"),
    "__global_module_hooks": global_module_hook_count,
}

# torch functions that read state, folded while tracing -> the helper a guard re-reads it with
READERS = {torch.are_deterministic_algorithms_enabled: "__deterministic",
           torch.is_inference_mode_enabled: "__inference_mode",
           torch.is_autocast_enabled: "__is_autocast_enabled",
           torch.get_default_dtype: "__default_dtype",
           torch.backends.mha.get_fastpath_enabled: "__mha_fastpath"}
ENVIRON_GET = "__environ.get"  # os.environ.get(key)


def entry_state() -> list[tuple[str, str, object]]:
    """``(readable name, guard expression, value now)`` of the state every graph
    depends on, whatever the traced code reads."""
    state = [("torch.is_grad_enabled()", "__grad_enabled()", torch.is_grad_enabled()),
             ("torch.get_default_dtype()", "__default_dtype()", torch.get_default_dtype()),
             ("torch.is_autocast_enabled('cpu')", "__autocast_cpu()", torch.is_autocast_enabled("cpu")),
             ("torch.are_deterministic_algorithms_enabled()", "__deterministic()",
              torch.are_deterministic_algorithms_enabled())]
    if torch.is_autocast_enabled("cpu"):
        state.append(("torch.get_autocast_dtype('cpu')", "__autocast_cpu_dtype()", torch.get_autocast_dtype("cpu")))
    return state


GLOBAL_HOOKS = ("number of global nn.Module hooks", "__global_module_hooks()")

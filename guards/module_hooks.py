"""nn.Module's hook tables: the one place their names are spelled.

A module's ``__call__`` runs the hooks in ``HOOK_TABLES`` around ``forward``. The
``FLAG_TABLES`` only mark some of those hooks (registered ``with_kwargs=True`` or
``always_call=True``): every hook they name is also in a table of ``HOOK_TABLES``, so a
check that those are empty (or unchanged) covers them too. Hooks registered for every
module live in ``torch.nn.modules.module``'s global tables.
"""
from __future__ import annotations

import torch

FORWARD_HOOKS = "_forward_hooks"
FORWARD_PRE_HOOKS = "_forward_pre_hooks"
BACKWARD_HOOK_TABLES = ("_backward_hooks", "_backward_pre_hooks")
HOOK_TABLES = (FORWARD_HOOKS, FORWARD_PRE_HOOKS, *BACKWARD_HOOK_TABLES)
FLAG_TABLES = ("_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs", "_forward_hooks_always_called")
GLOBAL_HOOK_TABLES = ("_global_forward_hooks", "_global_forward_pre_hooks", "_global_backward_hooks",
                      "_global_backward_pre_hooks")


def hooks_present(module) -> list[str]:
    """Names of the module's non-empty hook tables."""
    return [t for t in HOOK_TABLES if getattr(module, t, None)]


def global_module_hook_count() -> int:
    """Hooks registered for every nn.Module."""
    m = torch.nn.modules.module
    return sum(len(getattr(m, t)) for t in GLOBAL_HOOK_TABLES)

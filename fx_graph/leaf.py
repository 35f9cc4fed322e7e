"""A leaf-module call in a captured graph: how the builder writes one and how passes
find it — both ends of the contract, in one file.

torch.nn modules the front end does not trace into (LSTM, BatchNorm, MultiheadAttention
...) become one ``call_function`` node. Its target is ``leaf_function(name, module)``:
``type(module).forward`` bound to the module, so calling it skips ``nn.Module.__call__``'s
hook machinery (which costs more than the layer itself on small models; the front end
guards that the module has no hooks, so the result is the same). The module is also in
``node.meta``. ``leaf_module_of(node)`` is the only way to ask which module a node calls.
"""
from __future__ import annotations

import torch
from torch import fx

_META_KEY = "leaf_module"  # node.meta entry holding the module
_TARGET_ATTR = "leaf_module"  # attribute of the target holding it (meta is lost by some graph copies)


def leaf_function(name: str, module: torch.nn.Module):
    """The call target for ``module``; ``name`` is how the graph prints it (``leaf.linear_0``)."""
    forward = type(module).forward

    def leaf(*args, **kwargs):
        return forward(module, *args, **kwargs)
    leaf.__name__ = leaf.__qualname__ = name
    leaf.__module__ = "leaf"
    setattr(leaf, _TARGET_ATTR, module)
    return leaf


def mark(node: fx.Node, module: torch.nn.Module) -> None:
    node.meta[_META_KEY] = module


def leaf_module_of(node: fx.Node):
    """The module a leaf call node calls, or None for any other node."""
    if node.op != "call_function":
        return None
    module = node.meta.get(_META_KEY)
    if module is None:
        module = getattr(node.target, _TARGET_ATTR, None)
    return module if isinstance(module, torch.nn.Module) else None

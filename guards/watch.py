"""Which guards a dict watch can stand in for, and which dicts it must watch.

A module tree is reached through dicts: ``m.__dict__`` holds ``_modules``,
``_parameters``, the hook tables and plain attributes such as ``training``. Guards
that only ask "is this the same object" or "is this immutable value equal" of
values read through such dicts hold for as long as none of those dicts changed, and
CPython tells that cheaply (``capture._C.DictWatch``). So the hit path pays one C
call for the whole tree instead of a lookup and a check per module and parameter.

A guard's ``path`` is ``(root_expr, steps)``: ``root_expr`` must itself be pinned by
an identity guard, and each step is ``("member", table, name)`` (a module's
``_modules``/``_parameters``/``_buffers`` entry) or ``("attr", name)`` (a plain
instance attribute of a module, or a global of a Python module) or ``("item", key)``
(an entry of a dict, such as a hook table, or of a tuple).
"""
from __future__ import annotations

import builtins
import inspect
import types

import torch

from guards.guard import Guard, GuardKind

_IMMUTABLE = (int, float, bool, str, bytes, complex, type(None), torch.dtype, torch.device)
_HOOK_TABLES = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")


def _immutable(value) -> bool:
    if type(value) is tuple:
        return all(_immutable(v) for v in value)
    return type(value) in _IMMUTABLE


def _plain_attribute(obj, name: str) -> bool:
    """``obj.name`` is ``obj.__dict__[name]``: no descriptor or custom lookup in between."""
    if not isinstance(obj, torch.nn.Module) or name not in getattr(obj, "__dict__", ()):
        return False
    if type(obj).__getattribute__ is not object.__getattribute__:
        return False
    attr = inspect.getattr_static(type(obj), name, None)
    return attr is None or not hasattr(type(attr), "__set__")


def pinning_dicts(guard: Guard, env: dict, pinned_roots: set) -> list[tuple[str, dict]] | None:
    """``[(expr, dict)]`` whose versions fix ``guard``'s outcome, or None if none do."""
    if guard.path is None:
        return None
    root_expr, steps = guard.path
    if root_expr not in pinned_roots or (not steps and guard.kind == GuardKind.IDENTITY):
        return None  # the root's own identity check is what the watch relies on
    try:
        obj = eval(root_expr, {"__builtins__": builtins}, env)
    except Exception:
        return None
    expr, dicts = root_expr, []
    for step in steps:
        if step[0] == "item":
            key = step[1]
            if type(obj) is tuple and type(key) is int and -len(obj) <= key < len(obj):
                pass  # immutable: pinned by whatever holds the tuple
            elif isinstance(obj, dict) and key in obj:
                dicts.append((expr, obj))
            else:
                return None
            expr, obj = f"{expr}[{key!r}]", obj[key]
        elif step[0] == "attr" and isinstance(obj, types.ModuleType) and step[1] in obj.__dict__:
            dicts.append((f"{expr}.__dict__", obj.__dict__))  # a Python module's globals
            expr, obj = f"{expr}.{step[1]}", obj.__dict__[step[1]]
        elif not isinstance(obj, torch.nn.Module):
            return None
        elif step[0] == "member":
            _, table, name = step
            members = obj.__dict__.get(table)
            if type(members) is not dict or name not in members:
                return None
            dicts += [(f"{expr}.__dict__", obj.__dict__), (f"{expr}.{table}", members)]
            expr, obj = f"{expr}.{table}[{name!r}]", members[name]
        elif step[0] == "attr" and _plain_attribute(obj, step[1]):
            dicts.append((f"{expr}.__dict__", obj.__dict__))
            expr, obj = f"{expr}.{step[1]}", obj.__dict__[step[1]]
        else:
            return None
    kind = guard.kind
    if kind == GuardKind.IDENTITY:
        return dicts
    if kind in (GuardKind.CONSTANT, GuardKind.TYPE, GuardKind.LENGTH):
        return dicts if _immutable(obj) else None
    if kind == GuardKind.DICT_KEYS and isinstance(obj, dict):
        return dicts + [(expr, obj)]
    if kind == GuardKind.NO_HOOKS and isinstance(obj, torch.nn.Module):
        tables = [(f"{expr}.{t}", obj.__dict__.get(t)) for t in _HOOK_TABLES]
        if not all(isinstance(d, dict) for _, d in tables):
            return None
        return dicts + [(f"{expr}.__dict__", obj.__dict__)] + tables
    return None

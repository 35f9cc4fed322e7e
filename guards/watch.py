"""Which guards a dict watch can stand in for, and which dicts it must watch.

A module tree is reached through dicts: ``m.__dict__`` holds ``_modules``,
``_parameters``, the hook tables and plain attributes such as ``training``. Guards
that only ask "is this the same object" or "is this immutable value equal" of
values read through such dicts hold for as long as none of those dicts changed, and
CPython tells that cheaply (``capture._C.DictWatch``). So the hit path pays one C
call for the whole tree instead of a lookup and a check per module and parameter.

A guard's ``path`` (a ``WatchPath``, made by its source) starts at ``root``, an
expression that must itself be pinned by an identity guard, and takes ``steps``: each
step knows which dicts pin the value it reaches (``follow``). What the guard itself
needs of the final value is the guard kind's business (``Guard.watched_dicts``).
"""
from __future__ import annotations

import builtins
import dataclasses
import inspect
import types

import torch

_IMMUTABLE = (int, float, bool, str, bytes, complex, type(None), torch.dtype, torch.device)


def is_immutable(value) -> bool:
    if type(value) is tuple:
        return all(is_immutable(v) for v in value)
    return type(value) in _IMMUTABLE


def _plain_attribute(obj, name: str) -> bool:
    """``obj.name`` is ``obj.__dict__[name]``: no descriptor or custom lookup in between."""
    if not isinstance(obj, torch.nn.Module) or name not in getattr(obj, "__dict__", ()):
        return False
    if type(obj).__getattribute__ is not object.__getattribute__:
        return False
    attr = inspect.getattr_static(type(obj), name, None)
    return attr is None or not hasattr(type(attr), "__set__")


# Each step's ``follow(obj, expr)`` returns ``(dicts, expr, obj)`` after the step (the
# dicts whose versions pin what it reads), or None if no dict watch can pin it.

@dataclasses.dataclass(frozen=True)
class AttrStep:
    """``.name``: a plain instance attribute of a module, or a global of a Python module."""

    name: str

    def follow(self, obj, expr: str):
        if isinstance(obj, types.ModuleType) and self.name in obj.__dict__:
            return [(f"{expr}.__dict__", obj.__dict__)], f"{expr}.{self.name}", obj.__dict__[self.name]
        if isinstance(obj, torch.nn.Module) and _plain_attribute(obj, self.name):
            return [(f"{expr}.__dict__", obj.__dict__)], f"{expr}.{self.name}", obj.__dict__[self.name]
        return None


@dataclasses.dataclass(frozen=True)
class ItemStep:
    """``[key]``: an entry of a dict (such as a hook table), or of a tuple."""

    key: object

    def follow(self, obj, expr: str):
        key = self.key
        if type(obj) is tuple and type(key) is int and -len(obj) <= key < len(obj):
            dicts = []  # immutable: pinned by whatever holds the tuple
        elif isinstance(obj, dict) and key in obj:
            dicts = [(expr, obj)]
        else:
            return None
        return dicts, f"{expr}[{key!r}]", obj[key]


@dataclasses.dataclass(frozen=True)
class MemberStep:
    """A module's ``_modules`` / ``_parameters`` / ``_buffers`` entry."""

    table: str
    name: str

    def follow(self, obj, expr: str):
        if not isinstance(obj, torch.nn.Module):
            return None
        members = obj.__dict__.get(self.table)
        if type(members) is not dict or self.name not in members:
            return None
        dicts = [(f"{expr}.__dict__", obj.__dict__), (f"{expr}.{self.table}", members)]
        return dicts, f"{expr}.{self.table}[{self.name!r}]", members[self.name]


@dataclasses.dataclass(frozen=True)
class WatchPath:
    root: str  # guard expression of an identity-guarded value
    steps: tuple = ()

    def then(self, step) -> "WatchPath":
        return WatchPath(self.root, self.steps + (step,))


def pinning_dicts(guard, env: dict, pinned_roots: set) -> list[tuple[str, dict]] | None:
    """``[(expr, dict)]`` whose versions fix ``guard``'s outcome, or None if none do."""
    path = guard.path
    if path is None or path.root not in pinned_roots:
        return None
    if not path.steps and guard.roots_the_watch:
        return None  # the root's own identity check is what the watch relies on
    try:
        obj = eval(path.root, {"__builtins__": builtins}, env)
    except Exception:
        return None
    expr, dicts = path.root, []
    for step in path.steps:
        followed = step.follow(obj, expr)
        if followed is None:
            return None
        more, expr, obj = followed
        dicts += more
    own = guard.watched_dicts(obj, expr)
    return None if own is None else dicts + own

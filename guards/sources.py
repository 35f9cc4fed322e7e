"""Sources: how to reach a value from the frame being compiled.

A source renders two ways: ``name()`` is what a person reads in reports
(``L['x'].shape``, ``G['SCALE']``); ``expr(mode)`` is the Python expression used by
generated code. Guard functions are called as ``guard(__func, *args)`` and see the
frame's globals, so locals are plain names, globals are plain names and closure cells
go through ``__func``; the rewritten frame has the original free variables, so there
a cell is read by its name.

Some expressions call helpers (``__capture_getattr`` ...): ``SOURCE_HELPERS`` binds
those names, in guard functions and in rewritten frames alike.
"""
from __future__ import annotations

import collections
import dataclasses
import sys

from guards.watch import AttrStep, ItemStep, MemberStep, WatchPath

GUARD = "guard"
RUNTIME = "runtime"


def dict_part(obj) -> dict:
    """A copy of what a dict (or dict subclass) instance holds, in its own order, read
    without calling any method the subclass overrides (``dict(obj)`` would call its
    ``keys``/``__getitem__``, which may be the very code being compiled)."""
    if isinstance(obj, collections.OrderedDict):
        return {k: dict.__getitem__(obj, k) for k in collections.OrderedDict.keys(obj)}
    return dict.copy(obj)


# The names source expressions below call, and what they are bound to.
SOURCE_HELPERS = {
    "__capture_sys_modules": sys.modules,  # GlobalSource of another module
    "__capture_getattr": object.__getattribute__,  # GenericAttrSource
    "__capture_dict": dict_part,  # DictContentSource
    "__capture_type": type,  # TypeSource
}


class Source:
    def name(self) -> str:
        raise NotImplementedError

    def expr(self, mode: str) -> str:
        raise NotImplementedError

    def base_local(self) -> str | None:
        """Name of the frame local this source starts from, if any."""
        return None

    def watch_path(self) -> WatchPath | None:
        """How guards.watch follows this source through module dicts from a local,
        global or closure cell, or None if it is not reached that way."""
        return None

    def __str__(self) -> str:
        return self.name()


@dataclasses.dataclass(frozen=True)
class LocalSource(Source):
    local_name: str

    def name(self):
        return f"L[{self.local_name!r}]"

    def expr(self, mode):
        return self.local_name

    def base_local(self):
        return self.local_name

    def watch_path(self):
        return WatchPath(self.expr(GUARD))


@dataclasses.dataclass(frozen=True)
class GlobalSource(Source):
    """A global of the compiled frame's module, or (``module`` set) of another
    module whose function was inlined; the latter is reached through sys.modules."""

    global_name: str
    module: str | None = None

    def name(self):
        if self.module is not None:
            return f"G[{self.module!r}].{self.global_name}"
        return f"G[{self.global_name!r}]"

    def expr(self, mode):
        if self.module is not None:
            return f"__capture_sys_modules[{self.module!r}].{self.global_name}"
        if mode == GUARD:
            return f"__G[{self.global_name!r}]"
        return self.global_name

    def watch_path(self):
        return WatchPath(self.expr(GUARD))


@dataclasses.dataclass(frozen=True)
class ClosureSource(Source):
    """A cell of the compiled frame's own closure."""

    var_name: str
    index: int

    def name(self):
        return f"L[{self.var_name!r}]"

    def expr(self, mode):
        if mode == GUARD:
            return f"__func.__closure__[{self.index}].cell_contents"
        return self.var_name

    def watch_path(self):
        return WatchPath(self.expr(GUARD))


@dataclasses.dataclass(frozen=True)
class AttrSource(Source):
    base: Source
    attr: str

    def name(self):
        return f"{self.base.name()}.{self.attr}"

    def expr(self, mode):
        return f"{self.base.expr(mode)}.{self.attr}"

    def base_local(self):
        return self.base.base_local()

    def watch_path(self):
        base = self.base.watch_path()
        return None if base is None else base.then(AttrStep(self.attr))


@dataclasses.dataclass(frozen=True)
class TypeSource(Source):
    """``type(base)``: the class of a value reached through a source (its methods, and
    through them their closures and defaults, become guardable)."""

    base: Source

    def name(self):
        return f"type({self.base.name()})"

    def expr(self, mode):
        return f"__capture_type({self.base.expr(mode)})"

    def base_local(self):
        return self.base.base_local()


@dataclasses.dataclass(frozen=True)
class GenericAttrSource(Source):
    """``object.__getattribute__(base, attr)``: an attribute of an object whose class has
    its own ``__getattribute__``, read the way that method reads it (and without
    re-entering it from guards or rewritten code)."""

    base: Source
    attr: str

    def name(self):
        return f"{self.base.name()}.{self.attr}"

    def expr(self, mode):
        return f"__capture_getattr({self.base.expr(mode)}, {self.attr!r})"

    def base_local(self):
        return self.base.base_local()

    def watch_path(self):
        # an instance dict read this way is identity-guarded: a root for the dict watch
        return WatchPath(self.expr(GUARD)) if self.attr == "__dict__" else None


@dataclasses.dataclass(frozen=True)
class DictContentSource(Source):
    """The dict part of an instance of a dict subclass (``dict_part``: its
    own ``keys``/``__getitem__`` bypassed), copied: for reading only."""

    base: Source

    def name(self):
        return f"dict({self.base.name()})"

    def expr(self, mode):
        return f"__capture_dict({self.base.expr(mode)})"

    def base_local(self):
        return self.base.base_local()


@dataclasses.dataclass(frozen=True)
class ItemSource(Source):
    base: Source
    key: object  # int or str constant

    def name(self):
        return f"{self.base.name()}[{self.key!r}]"

    def expr(self, mode):
        return f"{self.base.expr(mode)}[{self.key!r}]"

    def base_local(self):
        return self.base.base_local()

    def watch_path(self):
        base = self.base.watch_path()
        return None if base is None else base.then(ItemStep(self.key))


@dataclasses.dataclass(frozen=True)
class ModuleMemberSource(Source):
    """``base.<attr>`` read through the module's own dicts (``_modules`` etc.).

    Reads the same object as ``getattr`` when the attribute lives there, but skips
    ``nn.Module.__getattr__`` so guards and rewritten code stay cheap.
    """

    base: Source
    table: str  # "_modules" | "_parameters" | "_buffers"
    attr: str

    def name(self):
        return f"{self.base.name()}.{self.attr}"

    def expr(self, mode):
        return f"{self.base.expr(mode)}.{self.table}[{self.attr!r}]"

    def base_local(self):
        return self.base.base_local()

    def watch_path(self):
        base = self.base.watch_path()
        return None if base is None else base.then(MemberStep(self.table, self.attr))


@dataclasses.dataclass(frozen=True)
class ClosureCellSource(Source):
    """A cell of some function reached through a source: ``fn.__closure__[i]``."""

    base: Source
    index: int
    var_name: str

    def name(self):
        return f"{self.base.name()}.__closure__[{self.index}]  # {self.var_name}"

    def expr(self, mode):
        return f"{self.base.expr(mode)}.__closure__[{self.index}].cell_contents"

    def base_local(self):
        return self.base.base_local()


@dataclasses.dataclass(frozen=True)
class DefaultSource(Source):
    base: Source
    index_or_key: object
    kw: bool = False

    def name(self):
        table = "__kwdefaults__" if self.kw else "__defaults__"
        return f"{self.base.name()}.{table}[{self.index_or_key!r}]"

    def expr(self, mode):
        table = "__kwdefaults__" if self.kw else "__defaults__"
        return f"{self.base.expr(mode)}.{table}[{self.index_or_key!r}]"

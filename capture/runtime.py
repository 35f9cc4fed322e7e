"""Everything rewritten frames call at run time, in one module.

Generated frame code reaches this module through one name, ``__capture_rt`` (as in
``__capture_rt.build_object(cls, {...})``), and each other object it needs (the
compiled graph, a class, a parameter ...) through a ``__capture_obj_N`` name. Both
kinds of names are bound as constants of the generated code object when it is made
(``bind_constants``): nothing is stored in the user's module globals. Guard functions
bind their helpers the same way, when they are made (``guards.build.HELPERS``).
"""
from __future__ import annotations

import linecache
import types

import torch
from bytecode import Bytecode, Instr

from capture import _C

RUNTIME_NAME = "__capture_rt"


def build_object(cls, attrs: dict):
    """An instance of a user class created inside a compiled frame."""
    obj = cls.__new__(cls)
    for name, value in attrs.items():
        object.__setattr__(obj, name, value)  # instance dict or slot, past the class's __setattr__
    return obj


def build_dict_object(cls, items: dict, attrs: dict):
    """An instance of a dict subclass created inside a compiled frame: its entries set
    through its dict base (not its own __setitem__), its attributes past its __setattr__."""
    obj = cls.__new__(cls)
    base = next(k for k in cls.__mro__ if k.__module__ in ("builtins", "collections") and issubclass(k, dict))
    for key, value in items.items():
        base.__setitem__(obj, key, value)
    for name, value in attrs.items():
        object.__setattr__(obj, name, value)
    return obj


def build_with_hook_off(cls, fields: dict):
    """``cls(**fields)`` with the frame hook off (transformers' ModelOutput: its
    constructor is library bookkeeping whose effect the tracker already stands for)."""
    previous = _C.set_callback(None)
    try:
        return cls(**fields)
    finally:
        _C.set_callback(previous)


def make_function(code: types.CodeType, f_globals: dict, closure: tuple | None):
    """A bridge called with the frame's own closure cells."""
    return types.FunctionType(code, f_globals, code.co_name, None, closure)


class GradModeRestorer:
    """Stands in for a grad-mode context manager's ``__exit__`` after a graph break."""

    def __init__(self, mode: bool):
        self.mode = mode

    def __call__(self, *exc_info):
        torch._C._set_grad_enabled(self.mode)
        return None  # never swallows the exception

    def __repr__(self):
        return f"<restore grad mode {self.mode}>"


_RESTORERS = {True: GradModeRestorer(True), False: GradModeRestorer(False)}


def grad_mode_restorer(mode: bool) -> GradModeRestorer:
    return _RESTORERS[bool(mode)]


def run_without_hook(compiled):
    """``compiled`` (a backend's graph callable) run with the frame hook off: a C callable
    (``_C.HookOff``) that clears this thread's callback around the call and restores it
    (no Python frame of its own); ``.compiled`` is the graph callable."""
    return _C.HookOff(compiled)


def bind_constants(code: types.CodeType, constants: dict) -> types.CodeType:
    """``code`` with each global it reads that ``constants`` names loaded as a constant
    instead (``LOAD_GLOBAL name`` -> ``LOAD_CONST value``), nested code objects too."""
    bc = Bytecode.from_code(code)
    out = []
    for instr in bc:
        if isinstance(instr, Instr) and instr.name == "LOAD_GLOBAL" and instr.arg[1] in constants:
            push_null, name = instr.arg
            if push_null:
                out.append(Instr("PUSH_NULL", location=instr.location))
            out.append(Instr("LOAD_CONST", constants[name], location=instr.location))
        elif isinstance(instr, Instr) and instr.name == "LOAD_CONST" and isinstance(instr.arg, types.CodeType):
            out.append(Instr("LOAD_CONST", bind_constants(instr.arg, constants), location=instr.location))
        else:
            out.append(instr)
    bc[:] = out
    return bc.to_code()


_SOURCES: set = set()  # linecache entries of generated frames (capture.state.reset drops them)


def register_source(filename: str, source: str) -> None:
    """Make ``source``, exec'd as ``filename``, readable to tracebacks and debuggers."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    _SOURCES.add(filename)


def forget_source(filename: str) -> None:
    linecache.cache.pop(filename, None)
    _SOURCES.discard(filename)


def forget_sources() -> None:
    for filename in _SOURCES:
        linecache.cache.pop(filename, None)
    _SOURCES.clear()

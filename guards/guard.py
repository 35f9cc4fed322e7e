"""One guard: what value (source), which check, what it must equal.

``Guard`` is the base of one small class per kind (``guards.kinds``); each kind owns
its check as generated Python (``condition``), its text (``describe``), the explanation
of a failure (``failure``), and what a dict watch must see of it (``watched_dicts``).
The order checks run in is the order of ``GuardKind.ALL``.
"""
from __future__ import annotations

import builtins
import dataclasses
import math

import torch

from fx_graph.size_expr import StrideOf


@dataclasses.dataclass(frozen=True)
class TensorSpec:
    """Everything about a tensor that a captured graph was specialised on."""

    tensor_type: type
    dtype: torch.dtype
    device: torch.device
    shape: tuple
    stride: tuple
    requires_grad: bool

    @classmethod
    def of(cls, t: torch.Tensor, shape: tuple | None = None, stride: tuple | None = None) -> "TensorSpec":
        """``shape``/``stride`` override the tensor's for dynamic shapes: a dynamic size is
        None (its relations are size guards) and a stride that follows the sizes is a
        ``StrideOf``."""
        return cls(type(t), t.dtype, t.device, tuple(t.shape) if shape is None else tuple(shape),
                   tuple(t.stride()) if stride is None else tuple(stride), t.requires_grad)

    @property
    def is_dynamic(self) -> bool:
        return None in self.shape or any(isinstance(s, StrideOf) for s in self.stride)

    def expected_stride(self, sizes) -> tuple:
        """The strides this spec expects of a tensor with ``sizes``."""
        return tuple(s.value(sizes) if isinstance(s, StrideOf) else s for s in self.stride)

    def mismatch(self, value) -> str | None:
        """First property of ``value`` that differs, as 'what: expected X, got Y'."""
        if type(value) is not self.tensor_type:
            return f"type: expected {self.tensor_type.__name__}, got {type(value).__name__}"
        actual_shape = tuple(value.shape)
        expected_shape = self.shape
        if len(expected_shape) == len(actual_shape):  # dynamic sizes: their size guards say more
            expected_shape = tuple(a if e is None else e for e, a in zip(expected_shape, actual_shape))
        checks = (
            ("dtype", self.dtype, value.dtype),
            ("device", self.device, value.device),
            ("shape", expected_shape, actual_shape),
            ("stride", self.expected_stride(actual_shape), tuple(value.stride())),
            ("requires_grad", self.requires_grad, value.requires_grad),
        )
        for what, expected, actual in checks:
            if expected != actual:
                if what == "shape":
                    for dim, (e, a) in enumerate(zip(expected, actual)):
                        if e != a:
                            return f"shape[{dim}]: expected {e}, got {a}"
                return f"{what}: expected {fmt(expected)}, got {fmt(actual)}"
        return None


@dataclasses.dataclass(frozen=True)
class ParameterSpec:
    """What a graph relies on of a parameter it holds by identity: ``model.half()`` and
    ``p.data = ...`` keep the object but change these. requires_grad only matters
    (and is only checked) when the graph was traced with grad mode on."""

    param: torch.Tensor
    dtype: torch.dtype
    shape: tuple
    requires_grad: bool | None

    @classmethod
    def of(cls, p: torch.Tensor, grad_enabled: bool) -> "ParameterSpec":
        return cls(p, p.dtype, tuple(p.shape), p.requires_grad if grad_enabled else None)

    def mismatch(self, value) -> str | None:
        if value is not self.param:
            return "expected the same parameter object"
        checks = [("dtype", self.dtype, value.dtype), ("shape", self.shape, tuple(value.shape))]
        if self.requires_grad is not None:
            checks.append(("requires_grad", self.requires_grad, value.requires_grad))
        for what, expected, actual in checks:
            if expected != actual:
                return f"{what}: expected {fmt(expected)}, got {fmt(actual)}"
        return None


def fmt(value) -> str:
    if isinstance(value, tuple):
        items = ["*" if v is None else str(v) for v in value]
        return "(" + ", ".join(items) + ("," if len(value) == 1 else "") + ")"
    return str(value)


def short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"<{type(value).__name__} {str(value.dtype).replace('torch.', '')} shape={fmt(tuple(value.shape))}>"
    if type(value) not in _PLAIN_REPR:
        # a user object's __repr__ may run arbitrary code, or fail (a module whose
        # __init__ has not run yet): name its type instead
        return f"<{type(value).__qualname__} object at {id(value):#x}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


_PLAIN_REPR = {int, float, complex, str, bytes, bool, type(None), tuple, list, dict, set, frozenset, type,
               torch.dtype, torch.device, torch.Size, slice, range}


def const_equal(value, expected) -> bool:
    if type(value) is not type(expected):
        return False
    if isinstance(expected, float):
        if expected != expected:
            return value != value
        return value == expected and math.copysign(1.0, value) == math.copysign(1.0, expected)
    return value == expected


@dataclasses.dataclass(eq=False)
class Guard:
    """``source_expr`` is Python evaluated inside the guard function;
    ``source_name`` is how a person reads it (``L['x'].shape``)."""

    source_name: str
    source_expr: str
    expected: object = None
    user_line: str | None = None  # "file.py:LINE" of the code that read the value
    path: object = None  # guards.watch.WatchPath through module dicts, or None

    order = 0  # position in GuardKind.ALL: cheap and selective kinds first
    roots_the_watch = False  # identity guards: a dict watch relies on them, never hides them
    joined = False  # checked together in one condition, after every other kind (size relations)

    @property
    def kind(self) -> type:
        return type(self)

    @classmethod
    def hold(cls, expected, lifeline, label: str):
        """What a guard of this kind keeps of ``expected``, read through the source named
        ``label`` (identity and type guards: a ``guards.held.Held``, watched by the
        entry's ``lifeline``)."""
        return expected

    def condition(self, em) -> str:
        """The check as a Python expression, built with the emitter ``em`` (``em.bind``
        names the source's value once, ``em.const`` holds an object)."""
        raise NotImplementedError

    def describe(self) -> str:
        return f"{type(self).__name__} {self.source_name} {self.expected!r}"

    def failure(self, value) -> str | None:
        """Why ``value`` (the source's current value) fails this guard, or None."""
        return None

    def first_failure(self, env: dict, globals_dict: dict) -> str | None:
        """This guard evaluated alone on one call's ``env``: why it fails, or None."""
        try:
            value = evaluate(self.source_expr, env)
        except Exception as e:  # the value is gone: that is the failure
            return f"could not read {self.source_name}: {type(e).__name__}: {e}"
        return self.failure(value)

    def watched_dicts(self, obj, expr: str) -> list | None:
        """Dicts (``[(expr, dict)]``) besides the path's whose versions fix this guard's
        outcome on ``obj`` (its value, reached as ``expr``), or None if a watch cannot."""
        return None

    def dedupe_key(self) -> tuple:
        return (type(self), self.source_expr, _hashable(self.expected))


def evaluate(expr: str, env: dict):
    """A source expression's value on one call (``env``: see guards.build.guard_env)."""
    return eval(expr, {"__builtins__": builtins}, env)


def _hashable(value):
    try:
        hash(value)
        return (type(value), value)
    except TypeError:
        return ("id", id(value))

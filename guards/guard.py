"""One guard: what value (source), which check, what it must equal."""
from __future__ import annotations

import dataclasses
import enum
import math

import torch


class GuardKind(enum.IntEnum):
    # Values order the checks inside one generated guard: cheap and selective first.
    GLOBAL_STATE = 0
    ABSENT = 1
    IDENTITY = 2
    TYPE = 3
    CONSTANT = 4
    LENGTH = 5
    DICT_KEYS = 6
    NO_HOOKS = 7
    ALIAS = 8
    TENSOR = 9
    PARAMETER = 10  # a module's parameter, bound into the graph: identity guarded apart


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
    def of(cls, t: torch.Tensor) -> "TensorSpec":
        return cls(type(t), t.dtype, t.device, tuple(t.shape), tuple(t.stride()), t.requires_grad)

    def mismatch(self, value) -> str | None:
        """First property of ``value`` that differs, as 'what: expected X, got Y'."""
        if type(value) is not self.tensor_type:
            return f"type: expected {self.tensor_type.__name__}, got {type(value).__name__}"
        checks = (
            ("dtype", self.dtype, value.dtype),
            ("device", self.device, value.device),
            ("shape", self.shape, tuple(value.shape)),
            ("stride", self.stride, tuple(value.stride())),
            ("requires_grad", self.requires_grad, value.requires_grad),
        )
        for what, expected, actual in checks:
            if expected != actual:
                if what == "shape":
                    for dim, (e, a) in enumerate(zip(expected, actual)):
                        if e != a:
                            return f"shape[{dim}]: expected {e}, got {a}"
                return f"{what}: expected {_fmt(expected)}, got {_fmt(actual)}"
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
                return f"{what}: expected {_fmt(expected)}, got {_fmt(actual)}"
        return None


def _fmt(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(map(str, value)) + ("," if len(value) == 1 else "") + ")"
    return str(value)


@dataclasses.dataclass(eq=False)
class Guard:
    """``source_expr`` is Python evaluated inside the guard function;
    ``source_name`` is how a person reads it (``L['x'].shape``)."""

    kind: GuardKind
    source_name: str
    source_expr: str
    expected: object = None
    user_line: str | None = None  # "file.py:LINE" of the code that read the value
    path: tuple | None = None  # (root_expr, steps) through module dicts, see guards.watch

    def describe(self) -> str:
        k, e = self.kind, self.expected
        if k == GuardKind.TENSOR:
            s = e
            return (f"{self.source_name}: {s.tensor_type.__name__} {str(s.dtype).replace('torch.', '')} "
                    f"{s.device} shape={_fmt(s.shape)} stride={_fmt(s.stride)} requires_grad={s.requires_grad}")
        if k == GuardKind.PARAMETER:
            grad = "" if e.requires_grad is None else f" requires_grad={e.requires_grad}"
            return (f"{self.source_name}: the same Parameter, {str(e.dtype).replace('torch.', '')} "
                    f"shape={_fmt(e.shape)}{grad}")
        if k == GuardKind.TYPE:
            return f"type({self.source_name}) is {e.__qualname__}"
        if k == GuardKind.IDENTITY:
            return f"{self.source_name} is <{type(e).__name__} at {id(e):#x}>"
        if k == GuardKind.CONSTANT:
            return f"{self.source_name} == {e!r}"
        if k == GuardKind.LENGTH:
            return f"len({self.source_name}) == {e}"
        if k == GuardKind.DICT_KEYS:
            return f"list({self.source_name}.keys()) == {list(e)!r}"
        if k == GuardKind.ABSENT:
            return f"{self.source_name} is not defined (builtin {e!r} used)"
        if k == GuardKind.NO_HOOKS:
            return f"{self.source_name} has no forward/backward hooks"
        if k == GuardKind.ALIAS:
            other_name, _, same = e
            return f"{self.source_name} {'is' if same else 'is not'} {other_name}"
        if k == GuardKind.GLOBAL_STATE:
            return f"{self.source_name} == {e!r}"
        return f"{k.name} {self.source_name} {e!r}"

    def failure(self, value) -> str | None:
        """Why ``value`` (the source's current value) fails this guard, or None."""
        k, e = self.kind, self.expected
        if k in (GuardKind.TENSOR, GuardKind.PARAMETER):
            return e.mismatch(value)
        if k == GuardKind.TYPE:
            return None if type(value) is e else f"type: expected {e.__qualname__}, got {type(value).__qualname__}"
        if k == GuardKind.IDENTITY:
            return None if value is e else f"expected the same object {_short(e)}, got {_short(value)}"
        if k == GuardKind.CONSTANT:
            return None if _const_equal(value, e) else f"expected {e!r}, got {_short(value)}"
        if k == GuardKind.LENGTH:
            return None if len(value) == e else f"len: expected {e}, got {len(value)}"
        if k == GuardKind.DICT_KEYS:
            keys = tuple(value.keys())
            return None if keys == e else f"keys: expected {list(e)!r}, got {list(keys)!r}"
        if k == GuardKind.GLOBAL_STATE:
            return None if value == e else f"expected {e!r}, got {value!r}"
        if k == GuardKind.NO_HOOKS:
            tables = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_backward_pre_hooks")
            present = [t for t in tables if getattr(value, t, None)]
            return f"hooks were registered: {', '.join(present)}" if present else None
        return None


def _const_equal(value, expected) -> bool:
    if type(value) is not type(expected):
        return False
    if isinstance(expected, float):
        if expected != expected:
            return value != value
        return value == expected and math.copysign(1.0, value) == math.copysign(1.0, expected)
    return value == expected


def _short(value) -> str:
    if isinstance(value, torch.Tensor):
        return f"<{type(value).__name__} {str(value.dtype).replace('torch.', '')} shape={_fmt(tuple(value.shape))}>"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."

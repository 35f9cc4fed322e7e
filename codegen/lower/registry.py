"""What every lowering rule shares: the rule table type, ``Unlowerable`` and helpers.

A rule gets the ``GraphLowering`` (for reductions and realization), the FX node (its
``meta["val"]`` gives the output's shape and dtype, so broadcasting and type promotion
come from torch itself) and the lowered arguments: ``TensorValue``s for tensors, plain
Python values otherwise. It returns a ``TensorValue`` (usually ``Lazy``: nothing is
computed until a consumer realizes it) or a tuple of them, or raises ``Unlowerable``;
the node then runs through torch as an extern call.

Each family module (pointwise, rounding, views, reductions, indirect) owns a
``RuleTable`` named ``RULES``; ``codegen.lower.rules`` merges them into the one table
the lowering looks ops up in.
"""
from __future__ import annotations

import torch

from codegen.ir import indexing, sizes
from codegen.ir import Const, Expr, Lazy, Op, TensorValue, compute_dtype

aten = torch.ops.aten

SUPPORTED_DTYPES = (torch.float32, torch.float16, torch.bfloat16, torch.float64, torch.int64, torch.int32,
                    torch.int16, torch.int8, torch.uint8, torch.bool)


class Unlowerable(Exception):
    """This node runs through torch (an extern call); the message says why."""


class RuleTable:
    """Lowering rules of one family, keyed by aten op (an overload or its packet)."""

    def __init__(self, family: str):
        self.family = family
        self.rules: dict = {}

    def register(self, *ops):
        """``@RULES.register(aten.relu)``: the decorated function lowers these ops."""
        def decorate(fn):
            for op in ops:
                if op in self.rules:
                    raise ValueError(f"{self.family}: two lowering rules for {op}")
                self.rules[op] = fn
            return fn
        return decorate


def merge(tables) -> dict:
    """One dict from several families' tables; an op claimed twice is a bug."""
    merged: dict = {}
    for table in tables:
        for op, fn in table.rules.items():
            if op in merged:
                raise ValueError(f"lowering rule for {op} in {table.family} and elsewhere")
            merged[op] = fn
    return merged


# --------------------------------------------------------------------------- helpers


def out_meta(node):
    val = node.meta.get("val")
    if not isinstance(val, torch.Tensor):
        raise Unlowerable("no tensor metadata on the node")
    if val.dtype not in SUPPORTED_DTYPES:
        raise Unlowerable(f"dtype {val.dtype} is not generated")
    return tuple(sizes.of(s) for s in val.shape), val.dtype


def arg_meta(node, i):
    arg = node.args[i] if i < len(node.args) else None
    return arg.meta.get("val") if hasattr(arg, "meta") else arg


def cast(expr: Expr, dtype: torch.dtype) -> Expr:
    """``expr`` converted to ``dtype`` (rounded through half types, computed in float32)."""
    target = compute_dtype(dtype)
    if dtype != target:                     # float16/bfloat16: round, then compute in float32
        if expr.dtype == dtype:
            return expr
        if isinstance(expr, Const):         # rounded here (a literal has no .to() in Triton)
            return Const(torch.tensor(expr.value, dtype=dtype).item(), target)
        return Op("to", [Op("to", [expr], dtype, (dtype,))], target, (target,))
    if expr.dtype == target:
        return expr
    if isinstance(expr, Const):
        return Const(expr.value, target)
    return Op("to", [expr], target, (target,))


def scalar(value, dtype) -> Const:
    return Const(value, compute_dtype(dtype))


def broadcast(arg, shape, dtype):
    """A loader ``index -> Expr`` for ``arg`` broadcast to ``shape`` and cast to ``dtype``."""
    if isinstance(arg, TensorValue):
        offset = len(shape) - arg.ndim
        if offset < 0:
            raise Unlowerable("operand has more dimensions than the result")

        def load(index):
            own = [indexing.const(0) if size == 1 else index[offset + d] for d, size in enumerate(arg.shape)]
            return cast(arg.load(own), dtype)
        return load
    if isinstance(arg, (bool, int, float)):
        c = scalar(arg, dtype)
        return lambda index: c
    raise Unlowerable(f"operand of type {type(arg).__name__}")


def labeled(expr: Expr, node) -> Expr:
    if expr.label is None and isinstance(expr, Op):
        expr.label = node.name
    return expr


def pointwise(node, args, fn, compute=None):
    """A Lazy for ``fn(*loaded args)``: args broadcast to the output and cast to
    ``compute`` (default: the output's compute dtype), result cast to the output dtype."""
    shape, dtype = out_meta(node)
    compute = compute or compute_dtype(dtype)
    loaders = [broadcast(a, shape, compute) for a in args]

    def body(index):
        return labeled(cast(fn(*[load(index) for load in loaders]), dtype), node)
    return Lazy(shape, dtype, body)


def promoted(node, *positions):
    """Dtype torch computes a comparison in (type promotion of the operands)."""
    metas = [arg_meta(node, i) for i in positions]
    dtype = torch.result_type(*metas) if len(metas) == 2 else metas[0].dtype
    if dtype not in SUPPORTED_DTYPES:
        raise Unlowerable(f"dtype {dtype} is not generated")
    return compute_dtype(dtype)


def binop(name):
    return lambda a, b: Op(name, [a, b], a.dtype)


def unop(name):
    return lambda a: Op(name, [a], a.dtype)

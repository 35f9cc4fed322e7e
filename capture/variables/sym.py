"""Symbolic sizes (dynamic shapes): ``x.shape[0]``, ``x.numel()``, arithmetic and
comparisons on them, slices with symbolic bounds.

A ``SymNodeVariable`` holds a ``torch.SymInt`` (or SymBool/SymFloat) from fake
propagation: an expression over the symbols of the input sizes (see
fx_graph.symbolic). Arithmetic stays symbolic; passing one to a graph op gives the op
an FX node that computes it from the inputs' sizes; a question about it (``if n > 4``)
is answered for this call's sizes and guarded; code that needs a plain number
(``range(n)``) specializes it, which is recorded with the line that did it.
"""
from __future__ import annotations

import operator

import torch
from torch.fx.experimental.symbolic_shapes import is_concrete_bool, is_concrete_int

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.base import VariableTracker
from capture.variables.constant import ConstantVariable

SYM_TYPES = (torch.SymInt, torch.SymBool, torch.SymFloat)
_PYTHON_TYPE = {torch.SymInt: int, torch.SymBool: bool, torch.SymFloat: float}


def frame_shapes(value):
    """The fx_graph.symbolic.FrameShapes a SymInt's symbols belong to."""
    return value.node.shape_env.capture_frame_shapes


class SymNodeVariable(VariableTracker):
    def __init__(self, value):
        self.value = value

    def python_type(self):
        return _PYTHON_TYPE[type(self.value)]

    def truth(self, tx):
        return tx.output.sym_truth(tx, self.value)

    def as_number(self, tx, why: str):
        """This call's value, guarded to stay so (the size is specialized)."""
        return tx.output.shapes.specialize(self.value, tx.location(), why)

    def var_getattr(self, tx, name):
        raise Unsupported(f"attribute {name!r} of a symbolic size")

    def call_method(self, tx, name, args, kwargs):
        if name in ("__int__", "__index__") and not args and self.python_type() is int:
            return self
        raise Unsupported(f"method {name} of a symbolic size")

    def reconstruct(self, cg):
        shapes = frame_shapes(self.value)
        try:
            return "(" + shapes.python_expr(self.value, lambda source, dim: f"{cg.source_expr(source)}.size({dim})") + ")"
        except NotImplementedError as e:
            raise Unsupported(f"cannot rebuild the symbolic size {self.value} after the graph: {e}") from None

    def __repr__(self):
        return f"SymNodeVariable({self.value})"


def wrap_sym(value):
    """A SymInt/SymBool/SymFloat as a tracker: a constant if it is in fact a number."""
    if isinstance(value, torch.SymInt) and is_concrete_int(value):
        return ConstantVariable(int(value))
    if isinstance(value, torch.SymBool) and is_concrete_bool(value):
        return ConstantVariable(bool(value))
    return SymNodeVariable(value)


@builder.wraps_result(builder.Order.FIRST, lambda v: isinstance(v, SYM_TYPES))
def _sym_result(value):
    return wrap_sym(value)


_NUMBER_OPS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
               operator.pow, operator.neg, operator.pos, operator.abs, operator.lt, operator.le, operator.eq,
               operator.ne, operator.gt, operator.ge, operator.iadd, operator.isub, operator.imul,
               operator.itruediv, operator.ifloordiv, operator.imod, operator.ipow}


def sym_operator(tx, fn, args):
    """``fn`` on symbolic sizes and numbers: a new symbolic value (no guard), or
    Unsupported for an operator sizes do not support symbolically."""
    if fn not in _NUMBER_OPS:
        raise Unsupported(f"operator {fn.__name__} on a symbolic size")
    values = []
    for a in args:
        if isinstance(a, SymNodeVariable):
            values.append(a.value)
        elif a.is_python_constant() and type(a.as_python_constant()) in (int, float, bool):
            values.append(a.as_python_constant())
        else:
            raise Unsupported(f"operator {fn.__name__} between a symbolic size and {a}")
    try:
        result = fn(*values)
    except Exception as e:
        raise Unsupported(f"{fn.__name__} on symbolic sizes failed: {type(e).__name__}: {e}") from None
    tx.output.shapes.note_relations(tx.location(), fn.__name__)
    return builder.wrap_constant_result(result)


class SliceVariable(VariableTracker):
    """``a:b:c`` with a symbolic bound (slices of constants stay constants)."""

    def __init__(self, parts: list):
        self.parts = parts  # start, stop[, step] trackers

    def python_type(self):
        return slice

    def children(self):
        return tuple(self.parts)

    def reconstruct(self, cg):
        return f"slice({', '.join(cg.reconstruct(p) for p in self.parts)})"

    def __repr__(self):
        return f"SliceVariable({self.parts})"

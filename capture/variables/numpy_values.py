"""numpy in traced code, where its values are constants.

``np.finfo``/``np.iinfo``/``np.dtype``/numpy scalar types built from constants, and
numpy functions (ufuncs, ``np.prod``, ``np.clip`` ...) called on constants, run at
trace time like any folded constant expression; their results are constants (an array
result enters the graph as a constant tensor). numpy functions on arrays computed from
tensors (``Tensor.numpy()``) are capture/variables/numpy_arrays.py's.
"""
from __future__ import annotations

import numpy as np

from capture.exc import TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.base import KnownObjectMixin, VariableTracker
from capture.variables.constant import ConstantVariable, fold
from capture.variables.numpy_arrays import NdarrayVariable, call_numpy, constant_array
from guards import GuardKind

_VALUE_CLASSES = (np.finfo, np.iinfo, np.dtype)


def _numpy_value_class(cls) -> bool:
    return cls in _VALUE_CLASSES or (isinstance(cls, type) and issubclass(cls, np.generic))


def _numpy_function(value) -> bool:
    if isinstance(value, type):
        return False
    module = getattr(value, "__module__", None) or ""
    is_numpy = isinstance(value, np.ufunc) or module == "numpy" or module.startswith("numpy.")
    return is_numpy and callable(value) and not module.startswith("numpy.random")


def _all_constant(args, kwargs) -> bool:
    return all(a.is_python_constant() for a in args) and all(v.is_python_constant() for v in kwargs.values())


class NumpyFunctionVariable(KnownObjectMixin, VariableTracker):
    def __init__(self, fn, source=None):
        self.fn = fn
        self.source = source

    def call(self, tx, args, kwargs):
        if _all_constant(args, kwargs):
            try:
                result = self.fn(*[a.as_python_constant() for a in args],
                                 **{k: v.as_python_constant() for k, v in kwargs.items()})
            except Exception as e:  # noqa: BLE001 - numpy raises it on these very values: so does the traced code
                raise TracedRaise(e) from None
            if isinstance(result, np.ndarray):
                return constant_array(tx, result)
            return builder.wrap_constant_result(result)
        if any(isinstance(a, NdarrayVariable) for a in args):
            return call_numpy(tx, self.fn, args, kwargs)
        name = getattr(self.fn, "__name__", repr(self.fn))
        raise Unsupported(f"numpy.{name} on traced values (runs eagerly)")

    def reconstruct(self, cg):
        return cg.source_expr(self.source) if self.source is not None else cg.object_ref(self.fn)

    def __repr__(self):
        return f"NumpyFunctionVariable({getattr(self.fn, '__name__', self.fn)})"


@builder.wraps(builder.Order.TORCH + 1, _numpy_function)
def _wrap_numpy_function(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return NumpyFunctionVariable(value, source)


@builder.constructs(builder.Order.FIRST, _numpy_value_class)
def _construct_numpy_value(tx, cls, args, kwargs):
    if not _all_constant(args, kwargs):
        raise Unsupported(f"numpy.{cls.__name__}() of traced values")
    return fold(cls, args, kwargs)


@builder.wraps_result(builder.Order.LITERAL, lambda v: isinstance(v, (np.finfo, np.iinfo, np.dtype, np.generic)))
def _numpy_result(value):
    return ConstantVariable(value)

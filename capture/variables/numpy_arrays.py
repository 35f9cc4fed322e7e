"""numpy arrays whose values are a traced tensor: ``Tensor.numpy()`` and numpy functions,
methods and operators on the arrays it gives, traced as torch ops in the graph.

An ``NdarrayVariable`` stands for a numpy array (or numpy scalar) whose data is a graph
tensor. A numpy call on it becomes torch ops: which numpy function is which torch op is
the table ``FUNCTIONS`` (plus the ``operator`` functions); what numpy would return --
shape, dtype, array or scalar, or the exception it raises -- is asked of numpy itself on
an array of ones of the same shape and dtype (``_numpy_answer``; a broadcast view, no
data). The torch op then runs in numpy's result dtype: array inputs are cast to a floating
result dtype first, as numpy's ufunc loops do (so ``int64 / int64`` keeps float64), and the
result is cast to numpy's dtype. A torch result whose shape differs from numpy's, a
function outside the table, integer ``//``/``**`` (division by zero differs), ``%`` (the
sign of zero results differs) and bool arithmetic are graph breaks naming the reason.

Memory, as numpy and torch share it: ``Tensor.numpy()`` shares the tensor's memory, and
so do views of that array (indexing, reshape, ``.T``); arrays computed by numpy functions
are fresh (``owns``). ``torch.tensor(a)`` copies; ``torch.from_numpy(a)`` and
``torch.as_tensor(a)`` of a fresh array are its graph tensor (once: a second one would be
another tensor object over the same memory), of an array sharing a tensor's memory they
are refused (eager's tensor shares storage without being a view: not reproduced). Writes
into arrays are refused. An array that leaves the frame or lives across a graph break is
rebuilt as ``<graph output>.numpy()``.

Not reproduced (as in torch.compile): numpy's floating-point warnings (``np.errstate``:
"divide by zero encountered in log" ...) -- the graph computes with torch, which does
not warn -- and the last bits of float reductions (numpy sums pairwise).

numpy values made of constants (``np.array([1.0, 2.0])``, ``np.linspace(0, 1, 3)``) are
computed at trace time and enter the graph as a constant tensor (see
``capture.config.max_numpy_constant_elements``).
"""
from __future__ import annotations

import operator
import warnings

import numpy as np
import torch

from capture import config
from capture.exc import MissingAttribute, TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.lists import BaseListVariable, TupleVariable
from capture.variables.tensor import EXTRA_METHODS, TensorVariable

# numpy function -> the torch function computing it (same positional meaning; ``axis`` and
# ``keepdims`` become ``dim`` and ``keepdim``, see _REDUCTIONS).
FUNCTIONS = {
    np.abs: torch.abs, np.absolute: torch.abs, np.negative: torch.neg, np.sqrt: torch.sqrt,
    np.exp: torch.exp, np.log: torch.log, np.log2: torch.log2, np.log10: torch.log10, np.log1p: torch.log1p,
    np.expm1: torch.expm1, np.sin: torch.sin, np.cos: torch.cos, np.tan: torch.tan, np.tanh: torch.tanh,
    np.sinh: torch.sinh, np.cosh: torch.cosh, np.arcsin: torch.asin, np.arccos: torch.acos,
    np.arctan: torch.atan, np.floor: torch.floor, np.ceil: torch.ceil, np.trunc: torch.trunc,
    np.sign: torch.sign, np.square: torch.square, np.isnan: torch.isnan, np.isinf: torch.isinf,
    np.isfinite: torch.isfinite, np.logical_not: torch.logical_not,
    np.add: torch.add, np.subtract: torch.sub, np.multiply: torch.mul, np.divide: torch.true_divide,
    np.true_divide: torch.true_divide, np.maximum: torch.maximum, np.minimum: torch.minimum,
    np.arctan2: torch.atan2, np.hypot: torch.hypot, np.equal: torch.eq, np.not_equal: torch.ne,
    np.less: torch.lt, np.less_equal: torch.le, np.greater: torch.gt, np.greater_equal: torch.ge,
    np.logical_and: torch.logical_and, np.logical_or: torch.logical_or, np.logical_xor: torch.logical_xor,
    np.where: torch.where, np.clip: torch.clamp, np.matmul: torch.matmul, np.dot: torch.matmul,
    np.sum: torch.sum, np.mean: torch.mean, np.prod: torch.prod, np.max: torch.amax, np.amax: torch.amax,
    np.min: torch.amin, np.amin: torch.amin, np.argmax: torch.argmax, np.argmin: torch.argmin,
    np.any: torch.any, np.all: torch.all, np.transpose: torch.permute, np.reshape: torch.reshape,
    np.squeeze: torch.squeeze, np.expand_dims: torch.unsqueeze,
}
# Reductions: ``axis=None`` reduces everything (torch: no dim argument).
_REDUCTIONS = {torch.sum, torch.mean, torch.prod, torch.amax, torch.amin, torch.argmax, torch.argmin,
               torch.any, torch.all}
# Results that share the input's memory (views): not fresh.
_VIEWS = {torch.permute, torch.reshape, torch.squeeze, torch.unsqueeze}
# Integer division, remainder and power: numpy and torch differ on zero divisors and
# negative exponents.
_INT_UNSAFE = {operator.floordiv, operator.mod, operator.pow}
# ndarray methods that are the numpy function of the same name.
_METHODS = {"sum": np.sum, "mean": np.mean, "prod": np.prod, "max": np.max, "min": np.min,
            "argmax": np.argmax, "argmin": np.argmin, "any": np.any, "all": np.all, "clip": np.clip,
            "transpose": np.transpose, "reshape": np.reshape, "squeeze": np.squeeze}


def _torch_dtype(dtype) -> torch.dtype:
    try:
        return torch.from_numpy(np.empty(0, dtype=dtype)).dtype
    except TypeError:
        raise Unsupported(f"numpy dtype {dtype} has no torch equivalent") from None


def _numpy_dtype(dtype: torch.dtype) -> np.dtype:
    try:
        return torch.empty(0, dtype=dtype).numpy().dtype
    except TypeError:
        raise Unsupported(f"{dtype} has no numpy equivalent") from None


class NdarrayVariable(VariableTracker):
    """A numpy array (``scalar``: a numpy scalar) whose values are those of ``tensor``."""

    frame_object = True

    def __init__(self, tensor: TensorVariable, owns: bool, scalar: bool = False):
        self.tensor = tensor
        self.owns = owns  # fresh memory (made by numpy), not a tensor's
        self.scalar = scalar
        self.dtype = _numpy_dtype(tensor.fake.dtype)
        self.handed_out = False  # given to torch.from_numpy/as_tensor already

    def python_type(self):
        return self.dtype.type if self.scalar else np.ndarray

    def children(self):
        return (self.tensor,)

    def example(self):
        """What numpy is asked about in place of this value: ones, same shape and dtype."""
        one = np.ones((), dtype=self.dtype)
        if self.scalar:
            return one[()]
        shape = tuple(int(s) for s in self.tensor.fake.shape)
        return np.broadcast_to(one, shape)

    def truth(self, tx):
        raise Unsupported("data-dependent control flow: truth value of a numpy value computed from tensors")

    def var_getattr(self, tx, name):
        fake = self.tensor.fake
        if name == "shape":
            return TupleVariable([builder.wrap_constant_result(s) for s in fake.shape])
        if name in ("ndim", "size", "itemsize", "nbytes"):
            value = {"ndim": fake.dim, "size": fake.numel, "itemsize": fake.element_size,
                     "nbytes": lambda: fake.numel() * fake.element_size()}[name]()
            return builder.wrap_constant_result(value)
        if name == "dtype":
            return ConstantVariable(self.dtype)
        if name == "T":
            return call_numpy(tx, np.transpose, [self], {})
        if name in _METHODS or name in ("astype", "copy", "__len__", "tolist", "item"):
            return BoundMethodOf(self, name)
        if not hasattr(self.python_type(), name):
            raise MissingAttribute(f"'numpy.ndarray' object has no attribute {name!r}")
        raise Unsupported(f"numpy attribute .{name} of an array computed from tensors")

    def call_method(self, tx, name, args, kwargs):
        if name in _METHODS:
            return call_numpy(tx, _METHODS[name], [self, *args], kwargs)
        if name == "__len__":
            if self.scalar or self.tensor.fake.dim() == 0:
                raise TracedRaise(TypeError("len() of unsized object"))
            return builder.wrap_constant_result(self.tensor.fake.shape[0])
        if name in ("astype", "copy"):
            return self._converted(tx, name, args, kwargs)
        raise Unsupported(f"ndarray.{name}() of an array computed from tensors")

    def _converted(self, tx, name, args, kwargs):
        """``astype``/``copy``: a fresh array (a copy even when the dtype is the same)."""
        if kwargs or len(args) > (1 if name == "astype" else 0):
            raise Unsupported(f"ndarray.{name}() with these arguments")
        dtype = np.dtype(args[0].as_python_constant()) if args else self.dtype
        result = tx.output.call_graph(tx, "call_function", torch.clone, [self.tensor], {})
        if dtype != self.dtype:
            result = result.call_method(tx, "to", [ConstantVariable(_torch_dtype(dtype))], {})
        return NdarrayVariable(result, owns=True, scalar=self.scalar)

    def getitem(self, tx, key):
        if not key.is_python_constant():
            raise Unsupported("indexing a numpy array by a traced value")
        index = key.as_python_constant()
        answer = _numpy_answer(operator.getitem, [self.example(), index], {})
        value = tx.output.call_graph(tx, "call_function", operator.getitem, [self.tensor, key], {})
        return _as_numpy(tx, value, answer, owns=False, what="ndarray indexing")

    def setitem(self, tx, key, value):
        raise Unsupported("writing into a numpy array computed from tensors")

    def to_tensor(self, tx, fn, kwargs):
        """``torch.tensor``/``torch.from_numpy``/``torch.as_tensor`` of this value."""
        dtype = kwargs.pop("dtype", None)
        if kwargs:
            raise Unsupported(f"torch.{fn.__name__}() of a numpy value with {sorted(kwargs)}")
        if fn is torch.from_numpy and self.scalar:
            raise TracedRaise(TypeError(f"expected np.ndarray (got {self.python_type().__name__})"))
        copies = fn is torch.tensor or self.scalar or (dtype is not None and dtype.as_python_constant() not in
                                        (None, self.tensor.fake.dtype))
        if copies:
            result = tx.output.call_graph(tx, "call_function", torch.clone, [self.tensor], {})
            if dtype is not None and dtype.as_python_constant() is not None:
                result = result.call_method(tx, "to", [dtype], {})
            return result
        if not self.owns:
            raise Unsupported(f"torch.{fn.__name__}() of an array sharing a tensor's memory "
                              "(the result would share its storage without being a view)")
        if self.handed_out:
            raise Unsupported(f"torch.{fn.__name__}() of the same numpy array twice")
        self.handed_out = True
        return self.tensor

    def reconstruct(self, cg):
        return f"{cg.reconstruct(self.tensor)}.numpy()" + ("[()]" if self.scalar else "")

    def __repr__(self):
        kind = "scalar" if self.scalar else "ndarray"
        return f"NdarrayVariable({kind}, {tuple(self.tensor.fake.shape)}, {self.dtype})"


def _numpy_answer(fn, examples: list, kwargs: dict):
    """What numpy returns (or raises) for ``fn`` on the examples (warnings silenced: the
    examples are ones, not the data)."""
    try:
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            return fn(*examples, **kwargs)
    except (TypeError, ValueError, IndexError) as e:  # shapes, dtypes, axes: as on the data
        raise TracedRaise(e) from None


def _as_numpy(tx, value, answer, owns: bool, what: str):
    """The torch result ``value`` as the numpy value ``answer`` says numpy returns."""
    if not isinstance(value, TensorVariable):
        raise Unsupported(f"{what} on a numpy array gave {value}")
    if not isinstance(answer, (np.ndarray, np.generic)):
        raise Unsupported(f"{what} on a numpy array returns a {type(answer).__name__}")
    if tuple(value.fake.shape) != np.shape(answer):
        raise Unsupported(f"{what}: torch's result has shape {tuple(value.fake.shape)}, numpy's {np.shape(answer)}")
    scalar = isinstance(answer, np.generic)
    if scalar and not owns:  # a numpy scalar is a copy: later writes to the array do not reach it
        value = tx.output.call_graph(tx, "call_function", torch.clone, [value], {})
        owns = True
    dtype = _torch_dtype(answer.dtype)
    if value.fake.dtype != dtype:
        value = value.call_method(tx, "to", [ConstantVariable(dtype)], {})
    return NdarrayVariable(value, owns=owns, scalar=scalar)


def _operand(tx, vt, dtype):
    """An argument of a numpy call as a torch op argument (numeric arrays cast to ``dtype``,
    the result's floating dtype: numpy computes in it; bool masks stay bool)."""
    if isinstance(vt, NdarrayVariable):
        if dtype is not None and vt.tensor.fake.dtype not in (dtype, torch.bool):
            return vt.tensor.call_method(tx, "to", [ConstantVariable(dtype)], {})
        return vt.tensor
    if isinstance(vt, TensorVariable):
        raise Unsupported("a numpy function of a torch tensor (numpy would convert it through its data)")
    if vt.is_python_constant():
        value = vt.as_python_constant()
        if isinstance(value, (np.ndarray, np.generic)) and not isinstance(value, np.generic):
            raise Unsupported("a numpy function mixing a constant array with traced arrays")
        return vt
    if isinstance(vt, BaseListVariable) and all(i.is_python_constant() for i in vt.items):
        return vt
    raise Unsupported(f"{vt} as an argument of a numpy function on traced arrays")


def _example(vt):
    return vt.example() if isinstance(vt, NdarrayVariable) else vt.as_python_constant()


def _check_dtypes(fn, arrays: list):
    kinds = {a.dtype.kind for a in arrays}
    if fn is operator.mod:
        raise Unsupported("% of numpy arrays (the sign of zero results differs from torch's remainder)")
    if fn in _INT_UNSAFE and kinds & {"i", "u", "b"}:
        raise Unsupported(f"{getattr(fn, '__name__', fn)} of integer numpy arrays (zero divisors differ from torch)")
    if "b" in kinds and fn in (operator.add, operator.sub, operator.mul, operator.truediv, operator.neg,
                               np.add, np.subtract, np.multiply, np.divide, np.true_divide, np.negative):
        raise Unsupported("arithmetic on bool numpy arrays")
    if kinds & {"c"}:
        raise Unsupported("complex numpy arrays")


def call_numpy(tx, fn, args: list, kwargs: dict):
    """The numpy function (or operator) ``fn`` on trackers, some of them NdarrayVariables."""
    target = fn if fn in _OPERATORS else FUNCTIONS.get(fn)
    name = getattr(fn, "__name__", repr(fn))
    if target is None:
        raise Unsupported(f"numpy.{name} on an array computed from tensors")
    if not all(v.is_python_constant() for v in kwargs.values()):
        raise Unsupported(f"numpy.{name} with traced keyword arguments")
    arrays = [a for a in args if isinstance(a, NdarrayVariable)]
    _check_dtypes(fn, arrays)
    consts = {k: v.as_python_constant() for k, v in kwargs.items()}
    answer = _numpy_answer(fn, [_example(a) for a in args], consts)
    if not isinstance(answer, (np.ndarray, np.generic)):
        raise Unsupported(f"numpy.{name} returns a {type(answer).__name__}")
    compute = _torch_dtype(answer.dtype) if answer.dtype.kind in "fc" else None
    operands = [_operand(tx, a, compute) for a in args]
    value = _torch_call(tx, target, operands, consts, name)
    fresh = target not in _VIEWS
    return _as_numpy(tx, value, answer, owns=fresh, what=f"numpy.{name}")


def _torch_call(tx, target, operands: list, kwargs: dict, name: str):
    kwargs = dict(kwargs)
    if target in _REDUCTIONS or target is torch.squeeze:
        axis = kwargs.pop("axis", operands[1].as_python_constant() if len(operands) > 1 else None)
        keepdim = kwargs.pop("keepdims", False)
        operands = operands[:1]
        if axis is not None:
            operands.append(ConstantVariable(axis))
            if target is not torch.squeeze:
                kwargs["keepdim"] = keepdim
        elif keepdim:
            raise Unsupported(f"numpy.{name}(keepdims=True) over every axis")
    elif target is torch.permute:
        axes = kwargs.pop("axes", operands[1].as_python_constant() if len(operands) > 1 else None)
        ndim = operands[0].fake.dim()
        operands = [operands[0], ConstantVariable(tuple(axes) if axes is not None else tuple(range(ndim))[::-1])]
    elif target is torch.unsqueeze:
        operands = [operands[0], ConstantVariable(kwargs.pop("axis", None) or operands[1].as_python_constant())]
    elif target is torch.clamp:
        bounds = operands[1:] + [kwargs.pop(k, None) for k in ("a_min", "a_max", "min", "max")]
        bounds = [b for b in bounds if b is not None]
        if len(bounds) != 2:
            raise Unsupported(f"numpy.{name} with these bounds")
        kwargs = {"min": bounds[0], "max": bounds[1]}
        operands = operands[:1]
    if kwargs and target is not torch.clamp and set(kwargs) != {"keepdim"}:
        raise Unsupported(f"numpy.{name} with keyword arguments {sorted(kwargs)}")
    kwargs = {k: v if isinstance(v, VariableTracker) else ConstantVariable(v) for k, v in kwargs.items()}
    if target in _OPERATORS:
        return tx.output.call_graph(tx, "call_function", target, operands, {})
    return tx.output.call_graph(tx, "call_function", target, operands, kwargs)


_OPERATORS = {operator.add, operator.sub, operator.mul, operator.truediv, operator.floordiv, operator.mod,
              operator.pow, operator.matmul, operator.neg, operator.abs, operator.lt, operator.le,
              operator.eq, operator.ne, operator.gt, operator.ge, operator.and_, operator.or_, operator.xor,
              operator.invert}


def ndarray_operator(tx, fn, args):
    """An ``operator`` function with a numpy value among its operands."""
    if fn in (operator.not_, operator.truth):
        raise Unsupported("data-dependent control flow: truth value of a numpy value computed from tensors")
    if fn not in _OPERATORS:
        raise Unsupported(f"{fn.__name__} on a numpy array computed from tensors (in-place writes are not traced)")
    return call_numpy(tx, fn, args, {})


def constant_array(tx, value: np.ndarray) -> NdarrayVariable:
    """A numpy array computed from constants, entering the graph as a constant tensor."""
    if value.size > config.max_numpy_constant_elements:
        raise Unsupported(f"a numpy array of {value.size} elements computed while tracing")
    dtype = _torch_dtype(value.dtype)
    if value.dtype.kind not in "biuf":
        raise Unsupported(f"a numpy array of dtype {value.dtype} computed while tracing")
    tensor = tx.output.call_graph(tx, "call_function", torch.tensor, [ConstantVariable(value.tolist())],
                                  {"dtype": ConstantVariable(dtype)})
    return NdarrayVariable(tensor, owns=True, scalar=False)


def _tensor_numpy(tx, tensor: TensorVariable, args, kwargs):
    """``Tensor.numpy()``: an array over the tensor's memory."""
    if args or kwargs:
        raise Unsupported("Tensor.numpy() with arguments")
    fake = tensor.fake
    if fake.requires_grad:
        raise Unsupported("Tensor.numpy() of a tensor that requires grad")
    if not all(isinstance(s, int) for s in fake.shape):
        raise Unsupported("Tensor.numpy() of a tensor with symbolic sizes (numpy's answers are per shape)")
    if fake.device.type != "cpu":
        raise Unsupported(f"Tensor.numpy() of a {fake.device.type} tensor")
    return NdarrayVariable(tensor, owns=False, scalar=False)


EXTRA_METHODS["numpy"] = _tensor_numpy

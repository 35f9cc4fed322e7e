"""Lowering rules for pointwise ops, constants and casts: one small function per aten op.

Rounding-sensitive arithmetic lives in ``rounding``, views in ``views``, reductions in
``reductions``, gathers in ``indirect`` (see ``registry`` for what a rule receives).
"""
from __future__ import annotations

import math
import operator

import torch

from codegen.ir import indexing
from codegen.ir import Const, Expr, IndexValue, Lazy, Op, TensorValue, compute_dtype
from codegen.lower.registry import (SUPPORTED_DTYPES, RuleTable, Unlowerable, arg_meta, binop, broadcast, cast,
                                    labeled, out_meta, pointwise, promoted, scalar, unop)

aten = torch.ops.aten
prims = torch.ops.prims

RULES = RuleTable("pointwise")
register = RULES.register


# --------------------------------------------------------------------------- arithmetic


def _half_scalars(node, args):
    """Eager's add and sub cast a Python scalar to a float16/bfloat16 result's dtype before
    adding (mul and div keep it in float32): round it the same way."""
    dtype = out_meta(node)[1]
    if dtype not in (torch.float16, torch.bfloat16):
        return args
    return [float(torch.tensor(v, dtype=dtype)) if isinstance(v, float) else v for v in args]


@register(aten.add)
def _add(g, node, a, b, alpha=1):
    if out_meta(node)[1] is torch.bool:
        # eager's bool add is an or (True + True is True): as integers 1 + 1 is 2 (C) or 0 (Triton's int1)
        if alpha not in (1, True):
            raise Unlowerable("bool add with alpha")
        return pointwise(node, [a, b], binop("or"))
    a, b = _half_scalars(node, [a, b])
    if alpha != 1:
        return pointwise(node, [a, b], lambda x, y: Op("add", [x, Op("mul", [y, scalar(alpha, y.dtype)], y.dtype)], x.dtype))
    return pointwise(node, [a, b], binop("add"))


@register(aten.sub)
def _sub(g, node, a, b, alpha=1):
    a, b = _half_scalars(node, [a, b])
    if alpha != 1:
        return pointwise(node, [a, b], lambda x, y: Op("sub", [x, Op("mul", [y, scalar(alpha, y.dtype)], y.dtype)], x.dtype))
    return pointwise(node, [a, b], binop("sub"))


@register(aten.mul)
def _mul(g, node, a, b):
    return pointwise(node, [a, b], binop("mul"))


@register(aten.div)
def _div(g, node, a, b, rounding_mode=None):
    if rounding_mode is not None:
        raise Unlowerable(f"div with rounding_mode={rounding_mode!r}")
    if not out_meta(node)[1].is_floating_point:
        raise Unlowerable("integer division")
    return pointwise(node, [a, b], binop("truediv"))


@register(aten.reciprocal)
def _reciprocal(g, node, a):
    return pointwise(node, [a], lambda x: Op("truediv", [Const(1.0, x.dtype), x], x.dtype))


@register(aten.neg)
def _neg(g, node, a):
    return pointwise(node, [a], unop("neg"))


@register(aten.abs)
def _abs(g, node, a):
    if out_meta(node)[1] is torch.bool:
        return pointwise(node, [a], lambda x: x)
    return pointwise(node, [a], unop("abs"))


@register(aten.maximum)
def _maximum(g, node, a, b):
    return pointwise(node, [a, b], binop("maximum"))


@register(aten.minimum)
def _minimum(g, node, a, b):
    return pointwise(node, [a, b], binop("minimum"))


def _clamp_expr(x, lo, hi):
    # where() rather than maximum/minimum: a NaN input stays NaN, like torch.clamp.
    if lo is not None:
        x = Op("where", [Op("lt", [x, lo], torch.bool), lo, x], x.dtype)
    if hi is not None:
        x = Op("where", [Op("gt", [x, hi], torch.bool), hi, x], x.dtype)
    return x


@register(aten.clamp)
def _clamp(g, node, a, min=None, max=None):
    args = [a] + [v for v in (min, max) if v is not None]

    def fn(x, *bounds):
        it = iter(bounds)
        lo = next(it) if min is not None else None
        hi = next(it) if max is not None else None
        return _clamp_expr(x, lo, hi)
    return pointwise(node, args, fn)


@register(aten.clamp_min)
def _clamp_min(g, node, a, lo):
    return pointwise(node, [a, lo], lambda x, b: _clamp_expr(x, b, None))


@register(aten.clamp_max)
def _clamp_max(g, node, a, hi):
    return pointwise(node, [a, hi], lambda x, b: _clamp_expr(x, None, b))


@register(aten.relu)
def _relu(g, node, a):
    return pointwise(node, [a], lambda x: Op("where", [Op("lt", [x, Const(0, x.dtype)], torch.bool),
                                                        Const(0, x.dtype), x], x.dtype))


# --------------------------------------------------------------------------- math


# float32-accurate only: the tanh helper's series and Triton's float64 erf (an fp32
# exp2 inside on sm_90) would lose double precision.
NOT_FLOAT64 = {"tanh", "erf"}


def _float_unary(op_name):
    def rule(g, node, a):
        dtype = out_meta(node)[1]
        if not dtype.is_floating_point:
            raise Unlowerable(f"{op_name} of an integer result")
        if dtype is torch.float64 and op_name in NOT_FLOAT64:
            raise Unlowerable(f"float64 {op_name} is not generated (float32-accurate formula)")
        return pointwise(node, [a], unop(op_name))
    return rule


for _name in ("exp", "exp2", "log", "log2", "sqrt", "rsqrt", "sin", "cos", "erf", "sigmoid", "tanh",
              "log1p", "expm1"):
    register(getattr(aten, _name))(_float_unary(_name))


@register(aten.floor, aten.ceil)
def _floor_ceil(g, node, a):
    if not out_meta(node)[1].is_floating_point:
        return pointwise(node, [a], lambda x: x)
    return pointwise(node, [a], unop(node.target.overloadpacket.__name__))


@register(aten.gelu)
def _gelu(g, node, a, approximate="none"):
    def exact(x):
        # 0.5 * x * (1 + erf(x / sqrt(2)))
        inner = Op("erf", [Op("mul", [x, Const(math.sqrt(0.5), x.dtype)], x.dtype)], x.dtype)
        return _half_x_times_one_plus(x, inner)

    def tanh_form(x):
        # 0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3)))
        cube = Op("mul", [Op("mul", [x, x], x.dtype), x], x.dtype)
        inner = Op("add", [x, Op("mul", [cube, Const(0.044715, x.dtype)], x.dtype)], x.dtype)
        inner = Op("mul", [inner, Const(math.sqrt(2.0 / math.pi), x.dtype)], x.dtype)
        return _half_x_times_one_plus(x, Op("tanh", [inner], x.dtype))
    if approximate not in ("none", "tanh"):
        raise Unlowerable(f"gelu approximate={approximate!r}")
    if out_meta(node)[1] is torch.float64:
        raise Unlowerable("float64 gelu is not generated (erf/tanh are float32-accurate)")
    return pointwise(node, [a], tanh_form if approximate == "tanh" else exact)


def _half_x_times_one_plus(x, t):
    half_x = Op("mul", [x, Const(0.5, x.dtype)], x.dtype)
    return Op("mul", [half_x, Op("add", [t, Const(1.0, x.dtype)], x.dtype)], x.dtype)


@register(aten.pow)
def lower_pow(g, node, base, exponent):
    if isinstance(base, TensorValue) and isinstance(exponent, (int, float)) and not isinstance(exponent, bool):
        return pointwise(node, [base], lambda x: _pow_scalar_exponent(x, exponent))
    if isinstance(base, (int, float)) and isinstance(exponent, TensorValue) and base > 0:
        if not out_meta(node)[1].is_floating_point:
            raise Unlowerable("integer power of a scalar base")
        log2_base = math.log2(base)
        return pointwise(node, [exponent], lambda y: Op("exp2", [Op("mul", [y, Const(log2_base, y.dtype)], y.dtype)], y.dtype))
    raise Unlowerable("pow with a tensor exponent")


def _pow_scalar_exponent(x, e):
    if float(e).is_integer() and abs(e) <= 16:
        e = int(e)
        if e < 0 and not x.dtype.is_floating_point:
            raise Unlowerable("negative integer power of an integer tensor")
        result = _int_power(x, abs(e))
        return Op("truediv", [Const(1.0, x.dtype), result], x.dtype) if e < 0 else result
    if not x.dtype.is_floating_point:
        raise Unlowerable("fractional power of an integer tensor")
    if e == 0.5:
        return Op("sqrt", [x], x.dtype)
    if e == -0.5:
        return Op("rsqrt", [x], x.dtype)
    return Op("pow", [x, Const(e, x.dtype)], x.dtype)


def _int_power(x, n):
    if n == 0:
        return Const(1, x.dtype)
    result, square = None, x
    while n:
        if n & 1:
            result = square if result is None else Op("mul", [result, square], x.dtype)
        n >>= 1
        if n:
            square = Op("mul", [square, square], x.dtype)
    return result


# --------------------------------------------------------------------------- comparisons, logic


def _comparison(op_name):
    def rule(g, node, a, b):
        return pointwise(node, [a, b], lambda x, y: Op(op_name, [x, y], torch.bool), compute=promoted(node, 0, 1))
    return rule


for _name in ("eq", "ne", "lt", "le", "gt", "ge"):
    register(getattr(aten, _name))(_comparison(_name))


def _logical(op_name):
    def rule(g, node, a, b):
        return pointwise(node, [a, b], lambda x, y: Op(op_name, [x, y], torch.bool), compute=torch.bool)
    return rule


register(aten.logical_and)(_logical("and"))
register(aten.logical_or)(_logical("or"))
register(aten.logical_xor)(_logical("xor"))


@register(aten.logical_not)
def _logical_not(g, node, a):
    return pointwise(node, [a], lambda x: Op("not", [x], torch.bool), compute=torch.bool)


def _bitwise(op_name):
    def rule(g, node, a, b):
        if out_meta(node)[1].is_floating_point:
            raise Unlowerable("bitwise op on floats")
        return pointwise(node, [a, b], binop(op_name))
    return rule


register(aten.bitwise_and)(_bitwise("and"))
register(aten.bitwise_or)(_bitwise("or"))
register(aten.bitwise_xor)(_bitwise("xor"))


@register(aten.bitwise_not)
def _bitwise_not(g, node, a):
    if out_meta(node)[1] is torch.bool:
        return pointwise(node, [a], lambda x: Op("not", [x], torch.bool))
    return pointwise(node, [a], unop("invert"))


@register(aten.isnan)
def _isnan(g, node, a):
    return pointwise(node, [a], lambda x: Op("ne", [x, x], torch.bool), compute=promoted(node, 0))


@register(aten.isinf)
def _isinf(g, node, a):
    def fn(x):
        if not x.dtype.is_floating_point:
            return Const(False, torch.bool)
        return Op("eq", [Op("abs", [x], x.dtype), Const(math.inf, x.dtype)], torch.bool)
    return pointwise(node, [a], fn, compute=promoted(node, 0))


@register(aten.where)
def _where(g, node, cond, a, b):
    shape, dtype = out_meta(node)
    compute = compute_dtype(dtype)
    load_c = broadcast(cond, shape, torch.bool)
    load_a, load_b = broadcast(a, shape, compute), broadcast(b, shape, compute)

    def body(index):
        return labeled(cast(Op("where", [load_c(index), load_a(index), load_b(index)], compute), dtype), node)
    return Lazy(shape, dtype, body)


@register(aten.masked_fill)
def _masked_fill(g, node, a, mask, value):
    shape, dtype = out_meta(node)
    compute = compute_dtype(dtype)
    load_m, load_a = broadcast(mask, shape, torch.bool), broadcast(a, shape, compute)
    load_v = broadcast(value, shape, compute)

    def body(index):
        return labeled(cast(Op("where", [load_m(index), load_v(index), load_a(index)], compute), dtype), node)
    return Lazy(shape, dtype, body)


# --------------------------------------------------------------------------- copies and casts


def _same_device(node, device) -> None:
    if device is None:
        return
    src = arg_meta(node, 0)
    if isinstance(src, torch.Tensor) and torch.device(device) != src.device:
        raise Unlowerable(f"copy to another device ({device})")


@register(aten._to_copy)
def _to_copy(g, node, a, dtype=None, layout=None, device=None, pin_memory=None, non_blocking=False,
             memory_format=None):
    _same_device(node, device)
    return pointwise(node, [a], lambda x: x, compute=compute_dtype(a.dtype))


@register(prims.convert_element_type)
def _convert_element_type(g, node, a, dtype):
    return pointwise(node, [a], lambda x: x, compute=compute_dtype(a.dtype))


@register(aten.clone, aten.lift_fresh_copy, aten.contiguous)
def _clone(g, node, a, memory_format=None):
    return pointwise(node, [a], lambda x: x)


@register(prims.copy_strided)
def _copy_strided(g, node, a, stride):
    return pointwise(node, [a], lambda x: x)


@register(aten.copy)
def _copy(g, node, dst, src, non_blocking=False):
    return pointwise(node, [src], lambda x: x, compute=compute_dtype(src.dtype) if isinstance(src, TensorValue) else None)


# --------------------------------------------------------------------------- constants


def _constant(node, value):
    shape, dtype = out_meta(node)
    c = scalar(value, dtype)
    return Lazy(shape, dtype, lambda index: cast(c, dtype))


@register(aten.full)
def _full(g, node, size, fill_value, **kwargs):
    _same_device_as_graph(g, kwargs.get("device"))
    return _constant(node, fill_value)


@register(aten.scalar_tensor)
def _scalar_tensor(g, node, value, **kwargs):
    _same_device_as_graph(g, kwargs.get("device"))
    return _constant(node, value)


@register(aten.full_like)
def _full_like(g, node, a, fill_value, **kwargs):
    return _constant(node, fill_value)


@register(aten.zeros_like, aten.empty_like)
def _zeros_like(g, node, a, **kwargs):
    return _constant(node, 0)


@register(aten.ones_like)
def _ones_like(g, node, a, **kwargs):
    return _constant(node, 1)


@register(aten.empty, aten.empty_strided, aten.zeros, aten.new_zeros, aten.new_empty)
def _empty(g, node, *args, **kwargs):
    _same_device_as_graph(g, kwargs.get("device"))
    return _constant(node, 0)


@register(aten.ones, aten.new_ones)
def _ones(g, node, *args, **kwargs):
    _same_device_as_graph(g, kwargs.get("device"))
    return _constant(node, 1)


def _same_device_as_graph(g, device):
    if device is not None and g.device is not None and torch.device(device) != g.device:
        raise Unlowerable(f"tensor created on {device}, graph runs on {g.device}")


@register(aten.arange)
def _arange(g, node, *args, **kwargs):
    _same_device_as_graph(g, kwargs.get("device"))
    shape, dtype = out_meta(node)
    if node.target is aten.arange.default:
        start, step = 0, 1
    elif node.target is aten.arange.start:
        start, step = args[0], 1
    elif node.target is aten.arange.start_step:
        start, step = args[0], args[2] if len(args) > 2 else kwargs.get("step", 1)
    else:
        raise Unlowerable(f"{node.target}")
    compute = compute_dtype(dtype)

    def body(index):
        position = IndexValue(index[0], torch.int32)
        value = cast(position, compute)
        if step != 1:
            value = Op("mul", [value, scalar(step, compute)], compute)
        if start != 0:
            value = Op("add", [value, scalar(start, compute)], compute)
        return labeled(cast(value, dtype), node)
    return Lazy(shape, dtype, body)


@register(operator.getitem)
def _getitem(g, node, seq, i):
    if isinstance(seq, (tuple, list)):
        return seq[i]
    raise Unlowerable("getitem of a non-sequence")

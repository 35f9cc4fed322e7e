"""Lowering rules for division with rounding, remainders, rounding, sign and general pow.

Semantics follow torch (which follows Python), not C: floor division rounds toward
-inf, ``remainder`` has the sign of the divisor, ``round`` ties to even, integer
division truncates or floors exactly (no float detour). Each non-trivial formula is a
small ``@triton.jit`` helper in ``codegen.ops`` built from ``tl.*`` math only.
"""
from __future__ import annotations

import torch

from codegen.ir import Const, Op, TensorValue
from codegen.lower.registry import RuleTable, Unlowerable, out_meta, pointwise
from codegen.lower.pointwise import lower_pow

aten = torch.ops.aten

RULES = RuleTable("rounding")
register = RULES.register


def _integer(dtype) -> bool:
    return not dtype.is_floating_point and dtype is not torch.bool


@register(aten.div.Tensor_mode, aten.div.Scalar_mode)
def _div_mode(g, node, a, b, rounding_mode=None):
    _, dtype = out_meta(node)
    if rounding_mode is None:
        if not dtype.is_floating_point:
            raise Unlowerable("integer true division")
        return pointwise(node, [a, b], lambda x, y: Op("truediv", [x, y], x.dtype))
    if dtype is torch.bool:
        raise Unlowerable("division of bools")
    if rounding_mode == "floor":
        name = "div_floor_float" if dtype.is_floating_point else "div_floor_int"
        return pointwise(node, [a, b], lambda x, y: Op(name, [x, y], x.dtype))
    if rounding_mode == "trunc":
        if dtype.is_floating_point:
            return pointwise(node, [a, b], lambda x, y: Op("trunc", [Op("truediv", [x, y], x.dtype)], x.dtype))
        return pointwise(node, [a, b], lambda x, y: Op("div_trunc_int", [x, y], x.dtype))
    raise Unlowerable(f"div with rounding_mode={rounding_mode!r}")


@register(aten.floor_divide)
def _floor_divide(g, node, a, b):
    return _div_mode(g, node, a, b, rounding_mode="floor")


@register(aten.remainder)
def _remainder(g, node, a, b):
    _, dtype = out_meta(node)
    if dtype is torch.bool:
        raise Unlowerable("remainder of bools")
    return pointwise(node, [a, b], lambda x, y: Op("remainder", [x, y], x.dtype))


@register(aten.fmod)
def _fmod(g, node, a, b):
    if out_meta(node)[1] is torch.bool:
        raise Unlowerable("fmod of bools")
    return pointwise(node, [a, b], lambda x, y: Op("fmod", [x, y], x.dtype))


@register(aten.trunc)
def _trunc(g, node, a):
    if not out_meta(node)[1].is_floating_point:
        return pointwise(node, [a], lambda x: x)
    return pointwise(node, [a], lambda x: Op("trunc", [x], x.dtype))


@register(aten.round.default)
def _round(g, node, a):
    if not out_meta(node)[1].is_floating_point:
        return pointwise(node, [a], lambda x: x)
    return pointwise(node, [a], lambda x: Op("round", [x], x.dtype))


@register(aten.round.decimals)
def _round_decimals(g, node, a, *, decimals=0):
    """Like torch: ``round(x * 10**d) / 10**d``, or ``round(x / 10**-d) * 10**-d`` for d < 0."""
    if not out_meta(node)[1].is_floating_point:
        raise Unlowerable("round(decimals) of an integer tensor")
    scale = float(10 ** abs(decimals))

    def fn(x):
        c = Const(scale, x.dtype)
        if decimals == 0:
            return Op("round", [x], x.dtype)
        if decimals > 0:
            return Op("truediv", [Op("round", [Op("mul", [x, c], x.dtype)], x.dtype), c], x.dtype)
        return Op("mul", [Op("round", [Op("truediv", [x, c], x.dtype)], x.dtype), c], x.dtype)
    return pointwise(node, [a], fn)


@register(aten.sign, aten.sgn)
def _sign(g, node, a):
    """``(0 < x) - (x < 0)`` like torch: 0 for zeros and NaN."""
    _, dtype = out_meta(node)
    if dtype is torch.bool:
        return pointwise(node, [a], lambda x: x)

    def fn(x):
        zero = Const(0, x.dtype)
        positive = Op("to", [Op("lt", [zero, x], torch.bool)], x.dtype, (x.dtype,))
        negative = Op("to", [Op("lt", [x, zero], torch.bool)], x.dtype, (x.dtype,))
        return Op("sub", [positive, negative], x.dtype)
    if dtype.is_complex:
        raise Unlowerable("sgn of a complex tensor")
    return pointwise(node, [a], fn)


@register(aten.pow.Tensor_Tensor)
def _pow_tensor(g, node, base, exponent):
    if not out_meta(node)[1].is_floating_point:
        raise Unlowerable("integer power with a tensor exponent")
    return pointwise(node, [base, exponent], lambda x, y: Op("pow_tensor", [x, y], x.dtype))


@register(aten.pow.Scalar)
def _pow_scalar_base(g, node, base, exponent):
    if isinstance(base, (int, float)) and not isinstance(base, bool) and base > 0:
        return lower_pow(g, node, base, exponent)
    if not out_meta(node)[1].is_floating_point or not isinstance(exponent, TensorValue):
        raise Unlowerable("integer power of a scalar base")
    return pointwise(node, [base, exponent], lambda x, y: Op("pow_tensor", [x, y], x.dtype))

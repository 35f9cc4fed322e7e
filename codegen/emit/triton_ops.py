"""Scalar operations of the loop IR and their Triton spelling.

Every op is ``tl.*`` math or plain arithmetic (libdevice calls do not run under the
interpreter). Functions Triton lacks (tanh, log1p, expm1, general pow) and the
NaN-propagating reduction combiners are small ``@triton.jit`` helpers emitted into the
kernel's module when a kernel uses them.
"""
from __future__ import annotations

import math
import struct

import torch

from codegen.ir import sizes

TL_DTYPES = {
    torch.float32: "tl.float32", torch.float16: "tl.float16", torch.bfloat16: "tl.bfloat16",
    torch.float64: "tl.float64", torch.int64: "tl.int64", torch.int32: "tl.int32",
    torch.int16: "tl.int16", torch.int8: "tl.int8", torch.uint8: "tl.uint8", torch.bool: "tl.int1",
}

# Signature types for ahead-of-time compilation (triton.compiler.ASTSource).
SIGNATURE_DTYPES = {
    torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16", torch.float64: "fp64",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8",
    torch.uint8: "u8", torch.bool: "i1",
}


def _binary(symbol):
    return lambda a, b, attrs, dtype: f"{a} {symbol} {b}"


def _call(fn):
    return lambda *args_attrs_dtype: f"{fn}({', '.join(args_attrs_dtype[:-2])})"


def _maximum(a, b, attrs, dtype):
    return f"tl.maximum({a}, {b}, tl.PropagateNan.ALL)" if dtype.is_floating_point else f"tl.maximum({a}, {b})"


def _minimum(a, b, attrs, dtype):
    return f"tl.minimum({a}, {b}, tl.PropagateNan.ALL)" if dtype.is_floating_point else f"tl.minimum({a}, {b})"


def _sqrt(a, attrs, dtype):
    # tl.sqrt_rn (correctly rounded) takes float32 only; tl.sqrt of a float64 is sqrt.rn.f64.
    return f"tl.sqrt({a})" if dtype is torch.float64 else f"tl.sqrt_rn({a})"


def _rsqrt(a, attrs, dtype):
    # tl.rsqrt of a float64 is rsqrt.approx.f64 on sm_90: divide a rounded sqrt instead.
    return f"1.0 / tl.sqrt({a})" if dtype is torch.float64 else f"tl.rsqrt({a})"


def _to(a, attrs, dtype):
    target, = attrs
    if target is torch.bool:
        return f"{a} != 0"
    if target is torch.bfloat16:
        return f"_to_bfloat16({a})"
    return f"{a}.to({TL_DTYPES[target]})"


def convert(value: str, target: torch.dtype) -> str:
    """Source converting ``value`` to ``target`` (bfloat16 rounds to nearest even)."""
    return _to(value, (target,), target)


def scalar_bool(test: str, varies) -> str:
    """A bool value that depends on no loop variable (not ``varies``) is a scalar
    comparison, which Triton's interpreter (3.9) types int64, not int1: a load or store
    mask made with it fails ("mask has unsupported dtype"). tl.where gives int1 there; a
    GPU compile folds it away."""
    return test if varies else f"tl.where({test}, True, False)"


# name -> (emitter(*arg_sources, attrs, dtype) -> source, helpers used: a tuple or attrs -> tuple)
OPS = {
    "add": (_binary("+"), ()),
    "sub": (_binary("-"), ()),
    "mul": (_binary("*"), ()),
    "truediv": (_binary("/"), ()),
    "eq": (_binary("=="), ()),
    "ne": (_binary("!="), ()),
    "lt": (_binary("<"), ()),
    "le": (_binary("<="), ()),
    "gt": (_binary(">"), ()),
    "ge": (_binary(">="), ()),
    "and": (_binary("&"), ()),
    "or": (_binary("|"), ()),
    "xor": (_binary("^"), ()),
    "maximum": (_maximum, ()),
    "minimum": (_minimum, ()),
    "neg": (lambda a, attrs, dtype: f"-{a}", ()),
    "invert": (lambda a, attrs, dtype: f"~{a}", ()),
    "not": (lambda a, attrs, dtype: f"{a} == 0", ()),
    "abs": (_call("tl.abs"), ()),
    "exp": (_call("tl.exp"), ()),
    "exp2": (_call("tl.exp2"), ()),
    "log": (_call("tl.log"), ()),
    "log2": (_call("tl.log2"), ()),
    "sqrt": (_sqrt, ()),
    "rsqrt": (_rsqrt, ()),
    "sin": (_call("tl.sin"), ()),
    "cos": (_call("tl.cos"), ()),
    "erf": (_call("tl.erf"), ()),
    "floor": (_call("tl.floor"), ()),
    "ceil": (_call("tl.ceil"), ()),
    "sigmoid": (_call("tl.sigmoid"), ()),
    "tanh": (_call("_tanh"), ("_tanh",)),
    "log1p": (_call("_log1p"), ("_log1p",)),
    "expm1": (_call("_expm1"), ("_expm1",)),
    "pow": (_call("_pow"), ("_pow",)),
    "where": (lambda c, a, b, attrs, dtype: f"tl.where({c}, {a}, {b})", ()),
    "in_range": (lambda i, attrs, dtype: f"({i} >= 0) & ({i} < {sizes.source(attrs[0])})", ()),   # a gathered index, attrs: (size,)
    "div_floor_float": (_call("_div_floor_float"), ("_div_floor_float",)),
    "div_floor_int": (_call("_div_floor_int"), ("_div_floor_int",)),
    "div_trunc_int": (_binary("//"), ()),            # Triton's // on integers truncates, like C
    "trunc": (_call("_trunc"), ("_trunc",)),
    "remainder": (_call("_remainder"), ("_remainder",)),
    "fmod": (_binary("%"), ()),                      # C fmod / %: the sign of the dividend
    "round": (_call("_round_half_even"), ("_round_half_even",)),
    "pow_tensor": (_call("_pow_tensor"), ("_pow_tensor",)),
    "to": (_to, lambda attrs: ("_to_bfloat16",) if attrs[0] is torch.bfloat16 else ()),
}


HELPERS = {
    "_dot_bf16": '''
import os

_INTERPRETED = tl.constexpr(os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"))


@triton.jit
def _dot_bf16(a, b):
    # Triton's interpreter multiplies bfloat16 blocks as their raw uint16 bits; there the
    # products (exact in float32) are taken in float32. Compiled, this is a bf16 tl.dot.
    if _INTERPRETED:
        return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")
    else:
        return tl.dot(a, b)
''',
    "_to_bfloat16": '''
@triton.jit
def _to_bfloat16(x):
    # float32 -> bfloat16 rounding to nearest even, as torch does; the interpreter's own
    # conversion truncates. On the GPU this is a few integer ops on a memory-bound kernel.
    x = x.to(tl.float32)
    bits = x.to(tl.uint32, bitcast=True)
    rounded = bits + 0x7FFF + ((bits >> 16) & 1)
    return tl.where(x != x, x.to(tl.bfloat16), (rounded >> 16).to(tl.uint16).to(tl.bfloat16, bitcast=True))
''',
    "_tanh": '''
@triton.jit
def _tanh(x):
    # Triton has no tanh; 1 - 2/(e^2x + 1) is exact at +-inf, the odd series is
    # accurate near 0 where that form cancels.
    x2 = x * x
    series = x * (1.0 - x2 * (0.3333333333333333 - x2 * 0.13333333333333333))
    return tl.where(tl.abs(x) < 0.0625, series, 1.0 - 2.0 / (tl.exp(2.0 * x) + 1.0))
''',
    "_log1p": '''
@triton.jit
def _log1p(x):
    # log(1 + x) without losing x when it is tiny (Goldberg's correction).
    u = 1.0 + x
    d = tl.where(u == 1.0, 1.0, u - 1.0)
    return tl.where(u == 1.0, x, tl.where(u == float("inf"), u, tl.log(u) * (x / d)))
''',
    "_expm1": '''
@triton.jit
def _expm1(x):
    # exp(x) - 1 without cancellation for small x (Kahan's correction).
    u = tl.exp(x)
    um1 = u - 1.0
    lu = tl.where((u == 1.0) | (u == 0.0), 1.0, tl.log(u))
    r = tl.where(um1 == -1.0, -1.0, um1 * x / lu)
    return tl.where(u == 1.0, x, tl.where(u == float("inf"), u, r))
''',
    "_pow": '''
@triton.jit
def _pow(x, y):
    # x ** y for a non-integer exponent: NaN for x < 0, like torch.
    return tl.exp2(y * tl.log2(x))
''',
    "_div_floor_float": '''
@triton.jit
def _div_floor_float(a, b):
    # torch's floor division of floats: from fmod (exact), so the result is the floor of
    # the exact quotient, not of the rounded a / b; division by zero gives a / b.
    mod = a % b
    div = (a - mod) / b
    div = tl.where((mod != 0) & ((b < 0) != (mod < 0)), div - 1.0, div)
    floored = tl.floor(div)
    floored = tl.where(div - floored > 0.5, floored + 1.0, floored)
    quotient = a / b
    floored = tl.where(div == 0, quotient * 0.0, floored)      # a zero keeps the sign of a / b
    return tl.where(b == 0, quotient, floored)
''',
    "_div_floor_int": '''
@triton.jit
def _div_floor_int(a, b):
    # Python/torch floor division; Triton's // truncates toward zero like C.
    quotient = a // b
    remainder = a % b
    return tl.where((remainder != 0) & ((remainder < 0) != (b < 0)), quotient - 1, quotient)
''',
    "_trunc": '''
@triton.jit
def _trunc(x):
    return tl.where(x < 0, tl.ceil(x), tl.floor(x))
''',
    "_remainder": '''
@triton.jit
def _remainder(a, b):
    # Python/torch remainder has the sign of the divisor; Triton's % (C's %, fmod for
    # floats) has the sign of the dividend.
    mod = a % b
    return tl.where((mod != 0) & ((b < 0) != (mod < 0)), mod + b, mod)
''',
    "_round_half_even": '''
@triton.jit
def _round_half_even(x):
    # torch.round: nearest integer, ties to even (nearbyint); built from floor so it runs
    # in the interpreter too. A zero result keeps the sign of x (round(-0.3) is -0.0).
    down = tl.floor(x)
    frac = x - down
    half = down * 0.5
    odd = tl.floor(half) != half
    rounded = tl.where((frac > 0.5) | ((frac == 0.5) & odd), down + 1.0, down)
    return tl.where(rounded == 0, x * 0.0, rounded)
''',
    "_pow_tensor": '''
@triton.jit
def _pow_tensor(x, y):
    # x ** y elementwise with C pow's special cases: a negative base needs an integer
    # exponent (odd flips the sign, else NaN), x ** 0 == 1 ** y == (-1) ** inf == 1.
    magnitude = tl.exp2(y * tl.log2(tl.abs(x)))
    integral = tl.floor(y) == y
    half = y * 0.5
    odd = integral & (tl.floor(half) != half)
    negative = (x < 0) | ((x == 0) & (1.0 / x < 0))         # sign bit, -0.0 included
    result = tl.where(negative & odd, -magnitude, magnitude)
    result = tl.where((x < 0) & ~integral, float("nan"), result)
    one = (y == 0) | (x == 1) | ((x == -1) & (tl.abs(y) == float("inf")))
    return tl.where(one, 1.0, result)
''',
    "_maximum": '''
@triton.jit
def _maximum(a, b):
    # torch.amax propagates NaN; tl.max alone would drop it on the GPU.
    return tl.maximum(a, b, tl.PropagateNan.ALL)
''',
    "_minimum": '''
@triton.jit
def _minimum(a, b):
    return tl.minimum(a, b, tl.PropagateNan.ALL)
''',
    "_argmax": '''
@triton.jit
def _argmax(a, a_index, b, b_index):
    # Larger value wins, NaN counts as largest (like torch); ties keep the lower index.
    a_nan = a != a
    b_nan = b != b
    a_wins = (a > b) | (a_nan & ~b_nan) | (((a == b) | (a_nan & b_nan)) & (a_index < b_index))
    return tl.where(a_wins, a, b), tl.where(a_wins, a_index, b_index)
''',
    "_argmin": '''
@triton.jit
def _argmin(a, a_index, b, b_index):
    # Smaller value wins, NaN counts as smallest (like torch); ties keep the lower index.
    a_nan = a != a
    b_nan = b != b
    a_wins = (a < b) | (a_nan & ~b_nan) | (((a == b) | (a_nan & b_nan)) & (a_index < b_index))
    return tl.where(a_wins, a, b), tl.where(a_wins, a_index, b_index)
''',
    "_product": '''
@triton.jit
def _product(a, b):
    return a * b
''',
}


def reduction_identity(reduction: str, dtype: torch.dtype):
    if reduction in ("argmax", "argmin"):
        reduction = "max" if reduction == "argmax" else "min"
    if reduction == "sum":
        return 0
    if reduction == "prod":
        return 1
    if dtype is torch.bool:
        return reduction == "min"
    if dtype.is_floating_point:
        return -math.inf if reduction == "max" else math.inf
    info = torch.iinfo(dtype)
    return info.min if reduction == "max" else info.max


def reduction_combine(reduction: str, dtype: torch.dtype):
    """(elementwise combine for looped accumulators, whole-axis reduce, helpers used)."""
    floating = dtype.is_floating_point
    if reduction == "sum":
        return (lambda acc, v: f"{acc} + {v}", lambda v: f"tl.sum({v}, 1)", ())
    if reduction == "prod":
        return (lambda acc, v: f"{acc} * {v}", lambda v: f"tl.reduce({v}, 1, _product)", ("_product",))
    helper = "_maximum" if reduction == "max" else "_minimum"
    if floating:
        return (lambda acc, v: f"{helper}({acc}, {v})", lambda v: f"tl.reduce({v}, 1, {helper})", (helper,))
    fn = "tl.max" if reduction == "max" else "tl.min"
    elementwise = "tl.maximum" if reduction == "max" else "tl.minimum"
    return (lambda acc, v: f"{elementwise}({acc}, {v})", lambda v: f"{fn}({v}, 1)", ())


def _float32(value: float) -> float:
    return struct.unpack("f", struct.pack("f", value))[0] if abs(value) < 3.4e38 else math.nan


def literal(value, dtype: torch.dtype, block: bool = True) -> str:
    """A Python/Triton literal for a constant of ``dtype`` (``block``: it may be used as
    a tensor operand, not only as the value argument of ``tl.full``)."""
    if dtype is torch.bool:
        return "True" if value else "False"
    if dtype.is_floating_point:
        value = float(value)
        if math.isnan(value):
            return 'float("nan")'
        if math.isinf(value):
            return 'float("inf")' if value > 0 else 'float("-inf")'
        if dtype is torch.float64 and block and _float32(value) != value:
            # Triton makes a float literal float32 where it becomes a tensor (tl.where):
            # a float64 constant that float32 cannot hold exactly is spelled out.
            return f"tl.full([], {value!r}, tl.float64)"
        return repr(value)
    return str(int(value))

"""Scalar operations of the loop IR and their C spelling (the CPU emitter's ``codegen.ops``).

Generated kernels are C11 (GNU dialect) compiled without fast-math: every op rounds like
eager's (``-ffp-contract=off``: no fused multiply-add, since eager rounds after every op;
``-fwrapv``: integer overflow wraps, as torch's does). float32 exp, tanh and erf (and
sigmoid, through exp) are our own inline functions (``cpp_math``: they vectorize, with
their ulp bounds documented there). The other math functions are libm's, and where
glibc has vector variants (``libmvec``: log, sin, cos, pow, ...) they are declared
``omp declare simd`` so that the vectorizer calls the 8-lane AVX2 versions. Those are
within 4 ulp of eager's (Sleef, 1 ulp); tests compare with that tolerance (rtol 1.3e-6
on float32).

Values of the half types are computed in float32 (``codegen.ir.compute_dtype``): a value
of dtype float16/bfloat16 in an expression is a float holding a value rounded to that
type, and only loads and stores see the storage format.
"""
from __future__ import annotations

import math
import struct

import torch

from codegen.emit import cpp_math
from codegen.emit.cpp_math import FLOAT_FUNCTIONS
from codegen.ir import sizes

# The C type of a *computed* value of each dtype. Booleans are ints (0 or 1), what C's
# comparisons give: the vectorizer then keeps a select's mask the width of its operands
# (a chain of 1-byte bools between float compares and selects kept max-pool windows scalar).
C_TYPES = {
    torch.float32: "float", torch.float64: "double", torch.float16: "float", torch.bfloat16: "float",
    torch.int64: "int64_t", torch.int32: "int32_t", torch.int16: "int16_t", torch.int8: "int8_t",
    torch.uint8: "uint8_t", torch.bool: "int",
}

# The C type of an element in memory.
STORAGE_TYPES = {**C_TYPES, torch.float16: "_Float16", torch.bfloat16: "uint16_t", torch.bool: "bool"}

# Math functions with glibc vector variants (float and double), called through libm names.
LIBM = {"exp": "exp", "exp2": "exp2", "log": "log", "log2": "log2", "sin": "sin", "cos": "cos",
        "erf": "erf", "tanh": "tanh", "log1p": "log1p", "expm1": "expm1"}
VECTOR_MATH = sorted(set(LIBM.values()) | {"pow"})


def _fn(name: str, dtype: torch.dtype) -> str:
    """The libm name of ``name`` for values of ``dtype`` (``expf`` for float, ``exp`` for double)."""
    return name if dtype is torch.float64 else name + "f"


def _binary(symbol):
    return lambda a, b, attrs, dtype: f"{a} {symbol} {b}"


def _one(dtype) -> str:
    return "1.0" if dtype is torch.float64 else "1.0f"


def _integer_or_float(int_helper, float_helper):
    def emit(a, b, attrs, dtype):
        if dtype.is_floating_point:
            return f"{float_helper}{'_f64' if dtype is torch.float64 else ''}({a}, {b})"
        return f"{int_helper}({a}, {b}, &err)"
    return emit


def _to(a, attrs, dtype):
    target, = attrs
    if target is torch.bool:
        return f"({a} != 0)"
    if target is torch.bfloat16:
        return f"capture_round_bf16((float)({a}))"
    if target is torch.float16:
        return f"(float)(_Float16)(float)({a})"
    if target is torch.uint8:
        return f"(uint8_t)(int64_t)({a})"          # like c10's convert: through int64
    return f"({C_TYPES[target]})({a})"


def convert(value: str, target: torch.dtype) -> str:
    return _to(value, (target,), target)


def _abs(a, attrs, dtype):
    if dtype.is_floating_point:
        return f"{_fn('fabs', dtype)}({a})"
    return f"({a} < 0 ? -{a} : {a})"


def _math(name):
    def emit(a, attrs, dtype):
        if dtype is not torch.float64 and name in FLOAT_FUNCTIONS:
            return f"{FLOAT_FUNCTIONS[name]}({a})"           # inline, vectorizes (cpp_math)
        return f"{_fn(LIBM[name], dtype)}({a})"
    return emit


def _exp(a, attrs, dtype):
    return _math("exp")(a, attrs, dtype)


def _sigmoid(a, attrs, dtype):
    if dtype is not torch.float64:
        return f"{FLOAT_FUNCTIONS['sigmoid']}({a})"          # 1 / (1 + e^-x), cpp_math
    return f"1.0 / (1.0 + {_exp(f'-{a}', attrs, dtype)})"


def _round(a, attrs, dtype):
    return f"{_fn('rint', dtype)}({a})"          # ties to even in the default rounding mode


# name -> emitter(*arg_sources, attrs, dtype) -> C expression. ``err`` is the kernel's
# error word (integer division by zero sets it, as eager raises).
OPS = {
    "add": _binary("+"),
    "sub": _binary("-"),
    "mul": _binary("*"),
    "truediv": _binary("/"),
    "eq": _binary("=="),
    "ne": _binary("!="),
    "lt": _binary("<"),
    "le": _binary("<="),
    "gt": _binary(">"),
    "ge": _binary(">="),
    "and": _binary("&"),
    "or": _binary("|"),
    "xor": _binary("^"),
    "maximum": lambda a, b, attrs, dtype: (f"capture_max({a}, {b})" if dtype.is_floating_point
                                           else f"({a} > {b} ? {a} : {b})"),
    "minimum": lambda a, b, attrs, dtype: (f"capture_min({a}, {b})" if dtype.is_floating_point
                                           else f"({a} < {b} ? {a} : {b})"),
    "neg": lambda a, attrs, dtype: f"-{a}",
    "invert": lambda a, attrs, dtype: f"~{a}",
    "not": lambda a, attrs, dtype: f"({a} == 0)",
    "abs": _abs,
    "sqrt": lambda a, attrs, dtype: f"{_fn('sqrt', dtype)}({a})",
    "rsqrt": lambda a, attrs, dtype: f"{_one(dtype)} / {_fn('sqrt', dtype)}({a})",
    "floor": lambda a, attrs, dtype: f"{_fn('floor', dtype)}({a})",
    "ceil": lambda a, attrs, dtype: f"{_fn('ceil', dtype)}({a})",
    "trunc": lambda a, attrs, dtype: f"{_fn('trunc', dtype)}({a})",
    "round": _round,
    "sigmoid": _sigmoid,
    "pow": lambda a, b, attrs, dtype: f"{_fn('pow', dtype)}({a}, {b})",
    "pow_tensor": lambda a, b, attrs, dtype: f"{_fn('pow', dtype)}({a}, {b})",
    "where": lambda c, a, b, attrs, dtype: f"({c} ? {a} : {b})",
    "in_range": lambda i, attrs, dtype: f"(({i} >= 0) & ({i} < {sizes.source(attrs[0], 'c')}))",
    "div_floor_float": lambda a, b, attrs, dtype: f"capture_div_floor{'_f64' if dtype is torch.float64 else ''}({a}, {b})",
    "div_floor_int": lambda a, b, attrs, dtype: f"capture_div_floor_int({a}, {b}, &err)",
    "div_trunc_int": lambda a, b, attrs, dtype: f"capture_div_trunc_int({a}, {b}, &err)",
    "remainder": _integer_or_float("capture_remainder_int", "capture_remainder"),
    "fmod": _integer_or_float("capture_fmod_int", "capture_fmod"),
    "to": _to,
}
for _name in LIBM:
    OPS[_name] = _math(_name)


def _declare_vector_math() -> str:
    lines = []
    for name in VECTOR_MATH:
        args = "float, float" if name == "pow" else "float"
        dargs = "double, double" if name == "pow" else "double"
        lines += ["#pragma omp declare simd notinbranch", f"extern float {name}f({args});",
                  "#pragma omp declare simd notinbranch", f"extern double {name}({dargs});"]
    return "\n".join(lines)


# Included once at the top of every generated translation unit.
PRELUDE = r'''/* Generated by capture's CPU code generator. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if CAPTURE_VECTOR_MATH
/* glibc's libmvec has vector variants of these; declaring them lets loops vectorize. */
''' + _declare_vector_math() + r'''
#endif

/* Error bits a kernel returns (the wrapper raises like eager). */
#define CAPTURE_INDEX_ERROR 1
#define CAPTURE_ZERO_DIVISION 2
#define CAPTURE_NO_MEMORY 4

/* A run's temporary buffer (codegen.emit.cpp_wrapper), 64-byte aligned like torch's. */
static inline void* capture_alloc(int64_t nbytes) { return aligned_alloc(64, (size_t)((nbytes + 63) / 64 * 64)); }

static inline float capture_bf16_to_float(uint16_t bits) {
    uint32_t wide = (uint32_t)bits << 16;
    float value;
    memcpy(&value, &wide, 4);
    return value;
}

/* float32 -> bfloat16 bits, rounding to nearest even like torch (NaN stays NaN). */
static inline uint16_t capture_float_to_bf16(float value) {
    uint32_t bits;
    memcpy(&bits, &value, 4);
    if (value != value) return (uint16_t)((bits >> 16) | 0x40);
    bits += 0x7FFF + ((bits >> 16) & 1);
    return (uint16_t)(bits >> 16);
}

static inline float capture_round_bf16(float value) {
    return capture_bf16_to_float(capture_float_to_bf16(value));
}

''' + cpp_math.SOURCE + r'''
/* torch.maximum/minimum: NaN wins. */
static inline float capture_max(float a, float b) { return (a > b || a != a) ? a : b; }
static inline float capture_min(float a, float b) { return (a < b || a != a) ? a : b; }

/* Python/torch floor division of floats, from fmod (exact): the floor of the exact quotient. */
#define CAPTURE_DIV_FLOOR(NAME, T, FMOD, FLOOR)                                    \
static inline T NAME(T a, T b) {                                                   \
    if (b == 0) return a / b;                                                      \
    T mod = FMOD(a, b);                                                            \
    T div = (a - mod) / b;                                                         \
    if (mod != 0 && ((b < 0) != (mod < 0))) div -= 1;                              \
    if (div == 0) return (a / b) * 0;                                              \
    T floored = FLOOR(div);                                                        \
    return div - floored > (T)0.5 ? floored + 1 : floored;                         \
}
CAPTURE_DIV_FLOOR(capture_div_floor, float, fmodf, floorf)
CAPTURE_DIV_FLOOR(capture_div_floor_f64, double, fmod, floor)

/* Python/torch remainder has the sign of the divisor; C's fmod that of the dividend. */
static inline float capture_remainder(float a, float b) {
    float mod = fmodf(a, b);
    return (mod != 0 && ((b < 0) != (mod < 0))) ? mod + b : mod;
}
static inline double capture_remainder_f64(double a, double b) {
    double mod = fmod(a, b);
    return (mod != 0 && ((b < 0) != (mod < 0))) ? mod + b : mod;
}
static inline float capture_fmod(float a, float b) { return fmodf(a, b); }
static inline double capture_fmod_f64(double a, double b) { return fmod(a, b); }

/* Integer division: by zero sets the error (eager raises ZeroDivisionError); MIN / -1
   wraps like torch instead of trapping. */
static inline int64_t capture_div_trunc_int(int64_t a, int64_t b, int64_t *err) {
    if (b == 0) { *err |= CAPTURE_ZERO_DIVISION; return 0; }
    if (b == -1) return (int64_t)(0 - (uint64_t)a);
    return a / b;
}
static inline int64_t capture_div_floor_int(int64_t a, int64_t b, int64_t *err) {
    int64_t q = capture_div_trunc_int(a, b, err);
    return (b != 0 && b != -1 && a % b != 0 && ((a % b < 0) != (b < 0))) ? q - 1 : q;
}
static inline int64_t capture_fmod_int(int64_t a, int64_t b, int64_t *err) {
    if (b == 0) { *err |= CAPTURE_ZERO_DIVISION; return 0; }
    return b == -1 ? 0 : a % b;
}
static inline int64_t capture_remainder_int(int64_t a, int64_t b, int64_t *err) {
    int64_t mod = capture_fmod_int(a, b, err);
    return (mod != 0 && ((b < 0) != (mod < 0))) ? mod + b : mod;
}
'''


def _shortest_float32(value: float) -> str:
    """The shortest decimal that parses back to the same float32."""
    target = struct.unpack("f", struct.pack("f", value))[0]
    for digits in range(1, 10):
        text = f"{target:.{digits}g}"
        if struct.unpack("f", struct.pack("f", float(text)))[0] == target:
            break
    if "e" not in text and "." not in text and "inf" not in text:
        text += ".0"
    return text


def literal(value, dtype: torch.dtype) -> str:
    """A C literal for a constant of (compute) dtype ``dtype``. Float32 constants are the
    float32 nearest the Python float, as eager converts a Python scalar."""
    if dtype is torch.bool:
        return "1" if value else "0"
    if dtype.is_floating_point:
        value = float(value)
        if math.isnan(value):
            return "NAN" if dtype is torch.float64 else "(float)NAN"
        if math.isinf(value):
            text = "INFINITY" if dtype is torch.float64 else "(float)INFINITY"
            return text if value > 0 else f"(-{text})"
        if abs(value) >= 3.4028235677973366e38 and dtype is not torch.float64:   # +-inf in float32
            return "(float)INFINITY" if value > 0 else "(-(float)INFINITY)"
        text = repr(value) if dtype is torch.float64 else _shortest_float32(value) + "f"
    else:
        value = int(value)
        if value == -(2 ** 63):
            return "INT64_MIN"
        text = f"INT64_C({value})" if abs(value) > 2 ** 31 - 1 else str(value)
    return f"({text})" if text.startswith("-") else text

"""Lowering rules for reductions: sum, mean, amax, amin, prod, var, var_mean, any, all.

Each reduction becomes one ``Computation`` (realized at once: a reduction is never
recomputed) through ``GraphLowering.reduce`` — except a sum over a few elements, which is
unrolled into a pointwise value (``config.unroll_reduction``); what follows it (mean's division, var's
normalisation) is a ``Lazy`` per-row value that the scheduler fuses into the same
kernel. ``var`` is two passes (mean, then squared deviations) — exact where a
one-pass sum of squares would cancel.
"""
from __future__ import annotations

import itertools

import torch

import sympy

from codegen import config
from codegen.ir import indexing
from codegen.ir import Const, Lazy, Op, compute_dtype, reduction_output_index, size_value, sizes
from codegen.lower.registry import RuleTable, Unlowerable, cast, labeled, out_meta

aten = torch.ops.aten

RULES = RuleTable("reductions")
register = RULES.register


def reduced_dims(a, dims) -> tuple:
    """Normalised reduction dims; ``None`` or ``[]`` means every dimension (as in aten)."""
    if dims is None or (isinstance(dims, (list, tuple)) and len(dims) == 0):
        return tuple(range(a.ndim))
    if isinstance(dims, int):
        dims = [dims]
    ndim = max(a.ndim, 1)
    return tuple(sorted({d + ndim if d < 0 else d for d in dims} & set(range(a.ndim))))


def _count(a, dims) -> int:
    n = 1
    for d in dims:
        n *= a.shape[d]
    return n


def _corrected(n, correction):
    """``max(n - correction, 0)``: a variance's divisor."""
    if sizes.is_static(n):
        return max(n - correction, 0)
    if not sizes.provable(sympy.Ge(n, correction)):
        raise sizes.SymbolicSizeError(f"a variance's divisor {n} - {correction} may be negative")
    return n - correction


def _accumulator(dtype: torch.dtype) -> torch.dtype:
    if dtype.is_floating_point:
        return compute_dtype(dtype)
    return dtype


def _simple(g, node, a, dims, keepdim, reduction):
    shape, dtype = out_meta(node)
    if reduction in ("max", "min") and dtype is torch.bool:
        raise Unlowerable(f"{reduction} of a bool tensor")
    dims = reduced_dims(a, dims)
    acc = _accumulator(dtype)
    count = _count(a, dims)
    if reduction == "sum" and dims and a.ndim - 1 not in dims and sizes.is_static(count) \
            and config.unroll_reduction(count):
        return _unrolled_sum(node, a, dims, keepdim, shape, dtype, acc)
    return g.reduce(node, a, dims, reduction, keepdim, acc, dtype, name=node.name)


def _unrolled_sum(node, a, dims, keepdim, shape, dtype, acc):
    """A sum over a few elements (``config.unroll_reduction``) as a pointwise Lazy: one
    load per reduced position, added in order — fused into its consumers like any
    pointwise value (grouped-query attention's backward sums over the query groups)."""
    positions = list(itertools.product(*[range(a.shape[d]) for d in dims]))

    def body(index):
        kept = iter(index)
        outer = [None] * a.ndim
        for d in range(a.ndim):
            if d in dims:
                if keepdim:
                    next(kept)
            else:
                outer[d] = next(kept)
        total = None
        for position in positions:
            full = list(outer)
            for d, p in zip(dims, position):
                full[d] = indexing.const(p)
            value = cast(a.load(full), acc)
            total = value if total is None else Op("add", [total, value], acc)
        return labeled(cast(total, dtype), node)
    return Lazy(shape, dtype, body)


@register(aten.sum)
def _sum(g, node, a, dim=None, keepdim=False, dtype=None):
    return _simple(g, node, a, dim, keepdim, "sum")


@register(aten.prod)
def _prod(g, node, a, dim=None, keepdim=False, dtype=None):
    return _simple(g, node, a, dim, keepdim, "prod")


@register(aten.amax)
def _amax(g, node, a, dim=(), keepdim=False):
    return _simple(g, node, a, dim, keepdim, "max")


@register(aten.amin)
def _amin(g, node, a, dim=(), keepdim=False):
    return _simple(g, node, a, dim, keepdim, "min")


@register(aten.max.default)
def _max_all(g, node, a):
    return _simple(g, node, a, None, False, "max")


@register(aten.min.default)
def _min_all(g, node, a):
    return _simple(g, node, a, None, False, "min")


def _arg(g, node, a, dim, reduction, name, meta):
    """argmax/argmin: the flat position over the reduced dims (torch's index along one
    dim; for ``dim=None`` the index into the flattened input)."""
    if a.dtype is torch.bool:
        raise Unlowerable(f"{reduction} of a bool tensor")
    dims = reduced_dims(a, dim)
    keepdim = meta.dim() == a.ndim and a.ndim > 0 and bool(dims)
    return g.reduce(node, a, dims, reduction, keepdim, compute_dtype(a.dtype), torch.int64, name=name)


@register(aten.argmax)
def _argmax(g, node, a, dim=None, keepdim=False):
    return _arg(g, node, a, dim, "argmax", node.name, node.meta["val"])


@register(aten.argmin)
def _argmin(g, node, a, dim=None, keepdim=False):
    return _arg(g, node, a, dim, "argmin", node.name, node.meta["val"])


def _value_and_index(g, node, a, dim, keepdim, reduction):
    if a.dtype is torch.bool:
        raise Unlowerable(f"{reduction} of a bool tensor")
    values = g.reduce(node, a, reduced_dims(a, dim), reduction, keepdim, compute_dtype(a.dtype), a.dtype,
                      name=f"{node.name}_values")
    return values, _arg(g, node, a, dim, f"arg{reduction}", f"{node.name}_indices", node.meta["val"][1])


@register(aten.max.dim)
def _max_dim(g, node, a, dim, keepdim=False):
    return _value_and_index(g, node, a, dim, keepdim, "max")


@register(aten.min.dim)
def _min_dim(g, node, a, dim, keepdim=False):
    return _value_and_index(g, node, a, dim, keepdim, "min")


def _logical(g, node, a, dims, keepdim, reduction):
    """any = max and all = min of ``x != 0``, accumulated as int32 (the emitter converts
    the row result back to bool)."""
    _, dtype = out_meta(node)
    if dtype not in (torch.bool, torch.uint8):
        raise Unlowerable(f"{node.target} with a {dtype} result")
    dims = reduced_dims(a, dims)
    if any(a.shape[d] == 0 for d in dims):
        raise Unlowerable(f"{node.target} over an empty dimension")
    truth = Lazy(a.shape, torch.bool, lambda index: cast(a.load(index), torch.bool))
    return g.reduce(node, truth, dims, reduction, keepdim, torch.int32, dtype, name=node.name)


@register(aten.any)
def _any(g, node, a, dim=None, keepdim=False):
    return _logical(g, node, a, dim, keepdim, "max")


@register(aten.all)
def _all(g, node, a, dim=None, keepdim=False):
    return _logical(g, node, a, dim, keepdim, "min")


def _nonzero(n, what: str):
    """``n``, a divisor; a static 0 (a mean over an empty dimension, a variance over one
    element) divides by zero: eager's nan or inf, not written by our kernels."""
    if sizes.is_static(n) and n == 0:
        raise Unlowerable(f"{what} divides by a count of 0")
    return n


def _divided(node, total, n, shape, dtype):
    """Lazy ``total / n`` with the output's shape and dtype."""
    compute = compute_dtype(dtype)
    n = _nonzero(n, "a mean")

    def body(index):
        value = Op("truediv", [cast(total.load(index), compute), size_value(n, compute)], compute)
        return labeled(cast(value, dtype), node)
    return Lazy(shape, dtype, body)


@register(aten.mean)
def _mean(g, node, a, dim=None, keepdim=False, dtype=None):
    shape, out_dtype = out_meta(node)
    if not out_dtype.is_floating_point:
        raise Unlowerable("mean of an integer tensor")
    dims = reduced_dims(a, dim)
    acc = compute_dtype(out_dtype)
    total = g.reduce(node, a, dims, "sum", keepdim, acc, acc, name=f"{node.name}_sum")
    return _divided(node, total, _count(a, dims), shape, out_dtype)


def _variance(g, node, a, dim, correction, keepdim, shape, dtype):
    """(variance, mean) Lazies, two-pass."""
    if not dtype.is_floating_point:
        raise Unlowerable("variance of an integer tensor")
    dims = reduced_dims(a, dim)
    n = _count(a, dims)
    acc = compute_dtype(dtype)
    total = g.reduce(node, a, dims, "sum", keepdim, acc, acc, name=f"{node.name}_sum")

    def mean_at(index):          # index over the reduced output
        return Op("truediv", [total.load(index), size_value(n, acc)], acc, label=f"{node.name}_mean")

    def squared_deviation(full):  # index over the input
        out = reduction_output_index(full, dims, keepdim)
        deviation = Op("sub", [cast(a.load(full), acc), mean_at(out)], acc, label=f"{node.name}_deviation")
        return Op("mul", [deviation, deviation], acc)
    squares = Lazy(a.shape, acc, squared_deviation)
    ssd = g.reduce(node, squares, dims, "sum", keepdim, acc, acc, name=f"{node.name}_ssd")
    divisor = _nonzero(_corrected(n, 1 if correction is None else correction), "a variance")

    def var_body(index):
        value = Op("truediv", [ssd.load(index), size_value(divisor, acc)], acc, label=f"{node.name}_var")
        return cast(value, dtype)

    def mean_body(index):
        return cast(mean_at(index), dtype)
    return Lazy(shape, dtype, var_body), Lazy(shape, dtype, mean_body)


@register(aten.var.correction)
def _var(g, node, a, dim=None, *, correction=None, keepdim=False):
    shape, dtype = out_meta(node)
    var, _ = _variance(g, node, a, dim, correction, keepdim, shape, dtype)
    return _named(var, node)


@register(aten.var_mean.correction)
def _var_mean(g, node, a, dim=None, *, correction=None, keepdim=False):
    val = node.meta.get("val")
    if not isinstance(val, (tuple, list)) or len(val) != 2:
        raise Unlowerable("var_mean without tuple metadata")
    shape, dtype = tuple(val[0].shape), val[0].dtype
    return _variance(g, node, a, dim, correction, keepdim, shape, dtype)


def _named(value: Lazy, node) -> Lazy:
    return Lazy(value.shape, value.dtype, lambda index: labeled(value.load(index), node))

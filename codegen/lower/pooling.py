"""Lowering rules for pooling: ``max_pool2d_with_indices`` as an unrolled window.

Each output element is the max over its window, written out position by position in
torch's order (rows, then columns) with torch's update rule
``if (v > best || isnan(v)) { best = v; index = position; }``: NaN wins, ties keep the
first position, and the index starts at the first position inside the input (so a
window of ``-inf`` points there). Positions that padding or ``ceil_mode`` put outside
the input are never read (their loads are predicated) and never win.

The values and the indices are two ``Lazy`` results; eval-mode graphs read only the
values, so the indices are never computed, and the window is a pointwise function of
the input: a ReLU or batch norm before the pool (and a mean after it) fuse into the same
kernel. Windows larger than ``config.MAX_POOL_WINDOW`` stay extern calls.
"""
from __future__ import annotations

import math

import torch

from codegen import config
from codegen.ir import Const, IndexValue, Lazy, Op, compute_dtype, guarded, sizes
from codegen.lower.registry import RuleTable, Unlowerable, cast, labeled

aten = torch.ops.aten
RULES = RuleTable("pooling")


def _pair(value, default=None):
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        value = default
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    return (value[0], value[0]) if len(value) == 1 else (value[0], value[1])


def _positions(out_index, in_size, kernel, stride, pad, dilation):
    """[(input position Index, in-range check Expr or None)] along one spatial dim."""
    found = []
    for k in range(kernel):
        position = out_index * stride + (k * dilation - pad)
        lo, hi = position.bounds()
        check = None
        if lo < 0 or hi >= in_size:
            value = IndexValue(position, torch.int64, guarded=True)
            check = Op("and", [Op("ge", [value, Const(0, torch.int64)], torch.bool),
                               Op("lt", [value, Const(in_size, torch.int64)], torch.bool)], torch.bool)
        found.append((position, check))
    return found


def _both(a, b):
    if a is None or b is None:
        return a if b is None else b
    return Op("and", [a, b], torch.bool)


@RULES.register(aten.max_pool2d_with_indices)
def _max_pool2d(g, node, a, kernel_size, stride=(), padding=0, dilation=1, ceil_mode=False):
    val = node.meta.get("val")
    if not isinstance(val, (tuple, list)) or len(val) != 2:
        raise Unlowerable("max_pool2d_with_indices without tuple metadata")
    shape, dtype = tuple(sizes.of(s) for s in val[0].shape), val[0].dtype
    if not dtype.is_floating_point or a.ndim not in (3, 4):
        raise Unlowerable(f"max_pool2d of a {a.ndim}-d {dtype} tensor")
    (kh, kw), (sh, sw) = _pair(kernel_size), _pair(stride, kernel_size)
    (ph, pw), (dh, dw) = _pair(padding, 0), _pair(dilation, 1)
    if kh * kw > config.MAX_POOL_WINDOW:
        raise Unlowerable(f"max_pool2d window of {kh}x{kw} (unrolled up to {config.MAX_POOL_WINDOW} elements)")
    height, width = a.shape[-2:]
    compute = compute_dtype(dtype)

    def window(index):
        """(value, flat input position) Exprs of the max over the window at ``index``."""
        lead, oh, ow = list(index[:-2]), index[-2], index[-1]
        candidates = []
        for h, h_ok in _positions(oh, height, kh, sh, ph, dh):
            for w, w_ok in _positions(ow, width, kw, sw, pw, dw):
                inside = _both(h_ok, w_ok)
                value = cast(a.load(lead + [h, w]), compute)
                at = IndexValue(h * width + w, torch.int64, guarded=inside is not None)
                candidates.append((inside, value if inside is None else guarded(value, inside), at))
        best_at = candidates[-1][2]
        for inside, _, at in reversed(candidates[:-1]):     # the first position inside the input
            best_at = at if inside is None else Op("where", [inside, at, best_at], torch.int64)
        best = Const(-math.inf, compute)
        for inside, value, at in candidates:
            # v > best, then isnan(v): two selects rather than one on (v > best) | (v != v),
            # which keeps GCC from vectorizing a C kernel (same result either way)
            for wins in (Op("gt", [value, best], torch.bool), Op("ne", [value, value], torch.bool)):
                wins = _both(inside, wins)
                best = Op("where", [wins, value, best], compute)
                best_at = Op("where", [wins, at, best_at], torch.int64)
        return best, best_at

    values = Lazy(shape, dtype, lambda index: labeled(cast(window(index)[0], dtype), node))
    indices = Lazy(shape, torch.int64, lambda index: window(index)[1])
    return values, indices

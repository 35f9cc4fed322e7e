"""Lowering rules for views: every view is index arithmetic on its base.

A view returns a ``Lazy`` whose loader maps the view's index to the base's index
(permute reorders, expand pins broadcast dimensions to 0, slice scales and shifts,
reshape flattens and unflattens). Reading a view of a buffer therefore reads the
buffer directly; ``ir.as_buffer_view`` recognises the affine cases so an extern call
or a graph output gets a zero-copy ``as_strided`` alias instead of a copy.
"""
from __future__ import annotations

import sympy
import torch

from codegen.ir import indexing, sizes
from codegen.ir import BufferValue, Lazy, TensorValue
from codegen.lower.registry import RuleTable, Unlowerable, out_meta

aten = torch.ops.aten

RULES = RuleTable("views")
register = RULES.register


def _view(base: TensorValue, shape, to_base):
    """A Lazy of ``shape`` reading ``base`` at ``to_base(index)``."""
    return Lazy(shape, base.dtype, lambda index: base.load(to_base(list(index))))


def reshape(base: TensorValue, shape) -> TensorValue:
    """``base`` viewed as ``shape``. A strided buffer that torch could view gets new
    strides; otherwise only the dims that do not line up are flattened and unflattened
    (``[B, T, C] -> [B*T, C]`` touches B and T, never C)."""
    shape = tuple(sizes.of(s) for s in shape)
    if shape == tuple(base.shape):
        return base
    if isinstance(base, BufferValue):
        strides = _view_strides(base, shape)
        if strides is not None:
            return BufferValue(base.buffer, shape, strides, base.offset)
    if 0 in shape or 0 in base.shape:
        return _view(base, shape, lambda index: [indexing.const(0)] * base.ndim)
    groups = _aligned_groups(list(base.shape), list(shape))

    def to_base(index):
        old = [indexing.const(0)] * base.ndim
        for old_dims, new_dims in groups:
            linear = indexing.flatten([index[d] for d in new_dims], [shape[d] for d in new_dims])
            for d, part in zip(old_dims, indexing.unflatten(linear, [base.shape[d] for d in old_dims])):
                old[d] = part
        return old
    return _view(base, shape, to_base)


def _view_strides(base: BufferValue, shape):
    """The strides torch's ``view`` would give, or None if it would need a copy (or, with
    symbolic sizes, unless the buffer is contiguous: then the view is too)."""
    if sizes.symbols(list(base.shape) + list(base.stride) + list(shape)):
        if tuple(base.stride) == tuple(indexing.contiguous_strides(base.shape)):
            return tuple(indexing.contiguous_strides(shape))
        return None
    try:
        return tuple(torch.empty_strided(base.shape, base.stride, device="meta").view(shape).stride())
    except RuntimeError:
        return None


def _aligned_groups(old: list, new: list) -> list:
    """Consecutive (old dims, new dims) runs with equal element counts."""
    groups, i, j = [], 0, 0
    while i < len(old) or j < len(new):
        old_dims, new_dims, p_old, p_new = [], [], 1, 1
        if i < len(old):
            old_dims.append(i)
            p_old *= old[i]
            i += 1
        if j < len(new):
            new_dims.append(j)
            p_new *= new[j]
            j += 1
        while p_old != p_new:
            if i >= len(old) and j >= len(new):
                raise sizes.SymbolicSizeError(f"no common dims of {old} and {new}")
            if j >= len(new) or (i < len(old) and sizes.hint(p_old) < sizes.hint(p_new)):
                old_dims.append(i)
                p_old *= old[i]
                i += 1
            else:
                new_dims.append(j)
                p_new *= new[j]
                j += 1
        groups.append((old_dims, new_dims))
    return groups


def _dim(d, ndim):
    ndim = max(ndim, 1)
    return d + ndim if d < 0 else d


@register(aten.view, aten._unsafe_view, aten.reshape)
def _reshape(g, node, a, size):
    if node.target is aten.view.dtype:
        raise Unlowerable("a view as another dtype reinterprets bits")     # extern: torch's own view
    shape, _ = out_meta(node)
    return reshape(a, shape)


@register(aten.alias, aten.detach)
def _alias(g, node, a):
    return a


@register(aten.permute)
def _permute(g, node, a, dims):
    dims = [_dim(d, a.ndim) for d in dims]
    shape = tuple(a.shape[d] for d in dims)

    def to_base(index):
        base = [None] * a.ndim
        for out_pos, d in enumerate(dims):
            base[d] = index[out_pos]
        return base
    return _view(a, shape, to_base)


@register(aten.transpose)
def _transpose(g, node, a, d0, d1):
    d0, d1 = _dim(d0, a.ndim), _dim(d1, a.ndim)
    order = list(range(a.ndim))
    order[d0], order[d1] = order[d1], order[d0]
    return _permute(g, node, a, order)


@register(aten.t)
def _t(g, node, a):
    return a if a.ndim < 2 else _permute(g, node, a, [1, 0])


@register(aten.expand)
def _expand(g, node, a, size, implicit=False):
    shape, _ = out_meta(node)
    lead = len(shape) - a.ndim

    def to_base(index):
        return [indexing.const(0) if a.shape[d] == 1 else index[lead + d] for d in range(a.ndim)]
    return _view(a, shape, to_base)


@register(aten.slice)
def _slice(g, node, a, dim=0, start=None, end=None, step=1):
    shape, _ = out_meta(node)
    dim = _dim(dim, a.ndim)
    start = _slice_start(a.shape[dim], 0 if start is None else start)
    if step <= 0:
        raise Unlowerable("slice with a non-positive step")

    def to_base(index):
        index[dim] = index[dim] * step + start
        return index
    return _view(a, shape, to_base)


def _slice_start(size, start):
    """Where a slice starts, clamped like torch (``start`` and ``size`` may be symbolic: the
    output's shape, from torch's own slice, already says how many elements it has; past
    the end there are none, so the start needs no clamp there)."""
    if sizes.is_static(size) and sizes.is_static(start):
        return max(0, min(size, start + size if start < 0 else start))
    if sizes.is_static(start):
        if start >= 0:
            return start
        return start + size if sizes.decide(sympy.Ge(start + size, 0)) else 0
    if sizes.provable(sympy.Ge(start, 0)):
        return start
    raise sizes.SymbolicSizeError(f"slice start {start} may be negative")


def _position(position, size):
    """A select's position, counted from the end where negative (either may be symbolic)."""
    if sizes.is_static(position):
        return position + size if position < 0 else position
    if sizes.provable(sympy.Ge(position, 0)):
        return position
    raise sizes.SymbolicSizeError(f"select position {position} may be negative")


@register(aten.select)
def _select(g, node, a, dim, position):
    shape, _ = out_meta(node)
    dim = _dim(dim, a.ndim)
    position = _position(position, a.shape[dim])

    def to_base(index):
        return index[:dim] + [indexing.const(position)] + index[dim:]
    return _view(a, shape, to_base)


@register(aten.unsqueeze)
def _unsqueeze(g, node, a, dim):
    shape, _ = out_meta(node)
    dim = _dim(dim, a.ndim + 1)

    def to_base(index):
        return index[:dim] + index[dim + 1:]
    return _view(a, shape, to_base)


@register(aten.squeeze)
def _squeeze(g, node, a, dims=None):
    shape, _ = out_meta(node)
    if dims is None:
        dims = [d for d, s in enumerate(a.shape) if s == 1]
    elif isinstance(dims, int):
        dims = [dims]
    dims = {_dim(d, a.ndim) for d in dims if a.shape[_dim(d, a.ndim)] == 1}

    def to_base(index):
        it = iter(index)
        return [indexing.const(0) if d in dims else next(it) for d in range(a.ndim)]
    return _view(a, shape, to_base)


@register(aten.flip)
def _flip(g, node, a, dims):
    flipped = {_dim(d, a.ndim) for d in dims}

    def to_base(index):
        return [indexing.const(a.shape[d] - 1) - index[d] if d in flipped else index[d] for d in range(a.ndim)]
    return _view(a, a.shape, to_base)


def _pieces(node, a, dim, sizes):
    dim = _dim(dim, a.ndim)
    pieces, start = [], 0
    for size in sizes:
        shape = list(a.shape)
        shape[dim] = size

        def to_base(index, start=start):
            index[dim] = index[dim] + start
            return index
        pieces.append(_view(a, tuple(shape), to_base))
        start += size
    return tuple(pieces)


@register(aten.split)
def _split(g, node, a, split_size, dim=0):
    dim_n = _dim(dim, a.ndim)
    total = a.shape[dim_n]
    if isinstance(split_size, (list, tuple)):
        return _pieces(node, a, dim, split_size)
    sizes = [min(split_size, total - s) for s in range(0, total, split_size)] if split_size else [total]
    return _pieces(node, a, dim, sizes or [0])


@register(aten.split_with_sizes)
def _split_with_sizes(g, node, a, sizes, dim=0):
    return _pieces(node, a, dim, sizes)


@register(aten.unbind)
def _unbind(g, node, a, dim=0):
    dim = _dim(dim, a.ndim)
    shape = tuple(s for d, s in enumerate(a.shape) if d != dim)

    def piece(i):
        return _view(a, shape, lambda index: index[:dim] + [indexing.const(i)] + index[dim:])
    return tuple(piece(i) for i in range(a.shape[dim]))

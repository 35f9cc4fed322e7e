"""Lowering rules for indirect loads and concatenation.

Indirect loads — ``gather``, ``index_select``, ``embedding`` and advanced indexing
(``index.Tensor``) — read an index tensor, wrap negative indices like torch
(``i + size`` when ``i < 0``) and use the result as an index atom
(``indexing.Gathered``) of the table's address. The table and the index are ordinary
``TensorValue``s, so pointwise producers of either (``(w * 2)[idx + 1]``) and consumers
of the result fuse into the same kernel.

Out-of-range indices raise, as in eager. The result is wrapped in an ``IndexCheck``:
the kernel computing it stores 1 into an error flag in every lane where an index is out
of range (``0 <= i < size``, after wrapping negatives for advanced indexing, which is
torch's ``-size <= i < size``), and the wrapper raises after the kernel
(``codegen.emit.wrapper._check_indices``: at once on CPU, an asynchronous device-side assert
on CUDA, so no host sync). The check sits on the op's result rather than on the load,
so it holds whatever the table is (a broadcast, an ``arange``, a constant). Loads are
still masked to the range, so a bad index never reads outside the table.

``cat`` is pointwise over its output: each input is read, under a predicate, only in
its own range along the cat dimension, and ``tl.where`` picks the right one.
(``stack`` decomposes to ``cat`` + ``view``.) ``slice_scatter`` (the backward of a
slice, e.g. RoPE's ``rotate_half``) is the same with two inputs: the source inside the
slice, the base outside.
"""
from __future__ import annotations

import torch

from codegen import config
from codegen.ir import indexing
from codegen.ir import (Const, IndexCheck, IndexValue, Lazy, Load, Op, TensorValue, compute_dtype, gathered, guarded,
                        in_range, size_value, sizes)
from codegen.lower.registry import RuleTable, Unlowerable, cast, labeled, out_meta

aten = torch.ops.aten

RULES = RuleTable("indirect")
register = RULES.register


def _dim(d, ndim):
    return d + max(ndim, 1) if d < 0 else d


def table_index(position, size: int, node, wrap: bool = False) -> indexing.Index:
    """The index atom for ``position`` (an integer Expr) into a dimension of ``size``.
    ``wrap``: negative positions count from the end (advanced indexing); gather,
    index_select and embedding reject them, so there they stay negative (out of range)."""
    if position.dtype.is_floating_point or position.dtype is torch.bool:
        raise Unlowerable(f"index of dtype {position.dtype}")
    if size == 0:
        raise Unlowerable("indexing into an empty dimension")
    if isinstance(position, Const):
        value = position.value + size if position.value < 0 and wrap else position.value
        if not 0 <= value < size:
            raise Unlowerable(f"constant index {position.value} out of range for size {size}")
        return indexing.const(value)
    if not wrap:
        return gathered(position, size)
    zero = Const(0, position.dtype)
    wrapped = Op("where", [Op("lt", [position, zero], torch.bool),
                           Op("add", [position, size_value(size, position.dtype)], position.dtype), position],
                 position.dtype, label=node.name)
    return gathered(wrapped, size)


def _tensor(value, what):
    if not isinstance(value, TensorValue):
        raise Unlowerable(f"{what} is not a tensor")
    return value


def _table_value(node, table: TensorValue, to_table, what: str):
    """A Lazy of the node's output reading ``table`` at ``to_table(out_index)``, checked
    to read through in-range indices only (``what`` names the op in the error)."""
    shape, dtype = out_meta(node)
    if table.dtype != dtype:
        raise Unlowerable("indexing result dtype differs from the table's")

    def body(index):
        positions = to_table(list(index))
        value = table.load(positions)
        if isinstance(value, Load) and value.label is None:
            value.label = node.name          # the kernel names the gathered value after the node
        value = labeled(value, node)
        atoms = []
        for position in positions:
            atoms += [g for g in position.gathered() if g not in atoms]
        return IndexCheck(value, in_range(atoms), what) if atoms else value
    return Lazy(shape, dtype, body)


@register(aten.gather)
def _gather(g, node, a, dim, index, sparse_grad=False):
    a, index = _tensor(a, "gather input"), _tensor(index, "gather index")
    if a.ndim == 0 or index.ndim != a.ndim:
        raise Unlowerable("gather of a 0-d tensor")
    dim = _dim(dim, a.ndim)

    def to_table(out):
        src = list(out)
        src[dim] = table_index(index.load(out), a.shape[dim], node)
        return src
    return _table_value(node, a, to_table, "gather")


@register(aten.index_select)
def _index_select(g, node, a, dim, index):
    a, index = _tensor(a, "index_select input"), _tensor(index, "index_select index")
    if a.ndim == 0 or index.ndim > 1:
        raise Unlowerable("index_select of a 0-d tensor")
    dim = _dim(dim, a.ndim)

    def to_table(out):
        src = list(out)
        position = index.load([out[dim]] if index.ndim == 1 else [])
        src[dim] = table_index(position, a.shape[dim], node)
        return src
    return _table_value(node, a, to_table, "index_select")


@register(aten.embedding)
def _embedding(g, node, weight, indices, padding_idx=-1, scale_grad_by_freq=False, sparse=False):
    weight, indices = _tensor(weight, "embedding weight"), _tensor(indices, "embedding indices")
    if weight.ndim != 2:
        raise Unlowerable("embedding weight is not 2-d")

    def to_table(out):
        return [table_index(indices.load(out[:-1]), weight.shape[0], node), out[-1]]
    return _table_value(node, weight, to_table, "embedding")


@register(aten.index.Tensor)
def _index(g, node, a, indices):
    """``a[i0, i1, ...]`` with index tensors (None for a full slice): the index tensors
    broadcast to one shape B; B replaces the indexed dims where they are adjacent, else
    comes first (NumPy's rule)."""
    a = _tensor(a, "indexed tensor")
    indices = list(indices) + [None] * (a.ndim - len(indices))
    positions = [d for d, t in enumerate(indices) if t is not None]
    if not positions or len(indices) > a.ndim:
        raise Unlowerable("index without index tensors")
    for d in positions:
        meta = arg_meta_list(node, d)
        if not isinstance(indices[d], TensorValue) or meta is None or meta.dtype in (torch.bool, torch.uint8):
            raise Unlowerable("boolean mask index (data-dependent shape)")
    b_shape = _broadcast_shapes([indices[d].shape for d in positions])
    adjacent = positions == list(range(positions[0], positions[-1] + 1))
    rest = [d for d in range(a.ndim) if d not in positions]
    lead = positions[0] if adjacent else 0            # output dims before B
    shape, _ = out_meta(node)
    expected = [a.shape[d] for d in rest[:lead]] + list(b_shape) + [a.shape[d] for d in rest[lead:]]
    if tuple(expected) != shape:
        raise Unlowerable(f"advanced indexing shape {expected} != {list(shape)}")

    def to_table(out):
        b_index = out[lead:lead + len(b_shape)]
        others = iter(out[:lead] + out[lead + len(b_shape):])
        src = []
        for d in range(a.ndim):
            if indices[d] is None:
                src.append(next(others))
                continue
            t = indices[d]
            offset = len(b_shape) - t.ndim
            own = [indexing.const(0) if s == 1 else b_index[offset + k] for k, s in enumerate(t.shape)]
            src.append(table_index(t.load(own), a.shape[d], node, wrap=True))
        return src
    return _table_value(node, a, to_table, "advanced indexing")


def _broadcast_shapes(shapes) -> tuple:
    """torch's broadcast of ``shapes`` (sizes may be symbolic: equal expressions broadcast)."""
    ndim = max(len(s) for s in shapes)
    out = [1] * ndim
    for shape in shapes:
        for k, size in enumerate(shape, ndim - len(shape)):
            if size != 1 and out[k] != 1 and size != out[k]:
                raise Unlowerable(f"index shapes {[list(s) for s in shapes]} do not broadcast")
            out[k] = size if size != 1 else out[k]
    return tuple(out)


def arg_meta_list(node, position):
    """The fake tensor of the ``position``-th entry of ``index``'s list argument."""
    items = node.args[1]
    item = items[position] if position < len(items) else None
    return item.meta.get("val") if hasattr(item, "meta") else None


# --------------------------------------------------------------------------- cat


@register(aten.cat)
def _cat(g, node, tensors, dim=0):
    shape, dtype = out_meta(node)
    dim = _dim(dim, len(shape))
    compute = compute_dtype(dtype)
    if not all(isinstance(t, TensorValue) for t in tensors):
        raise Unlowerable("cat of a non-tensor")
    # torch skips legacy empty 1-d inputs; inputs with no extent along dim add nothing.
    parts = [t for t in tensors if t.ndim == len(shape) and t.shape[dim] > 0]
    if any(0 not in t.shape for t in tensors if not any(t is p for p in parts)):
        raise Unlowerable("cat input of another rank")
    if not parts:
        return Lazy(shape, dtype, lambda index: cast(Const(0, compute), dtype))
    bounds, start = [], 0
    for t in parts:
        bounds.append((start, start + t.shape[dim]))
        start += t.shape[dim]
    if start != shape[dim]:
        raise Unlowerable("cat sizes do not add up")
    index_dtype = torch.int32 if sizes.is_static(shape[dim]) and shape[dim] <= config.INT32_LIMIT else torch.int64

    def body(index):
        k = index[dim]
        position = IndexValue(k, index_dtype)

        def below(limit):
            return Op("lt", [position, size_value(limit, index_dtype)], torch.bool)
        values = []
        for i, (t, (lo, hi)) in enumerate(zip(parts, bounds)):
            own = list(index)
            own[dim] = k - lo
            value = cast(t.load(own), compute)
            conditions = ([] if i == 0 else [Op("ge", [position, size_value(lo, index_dtype)], torch.bool)]) + \
                         ([] if i == len(parts) - 1 else [below(hi)])
            if conditions:
                predicate = conditions[0] if len(conditions) == 1 else Op("and", conditions, torch.bool)
                value = guarded(value, predicate)
            values.append(value)
        result = values[-1]
        for value, (_, hi) in zip(reversed(values[:-1]), reversed(bounds[:-1])):
            result = Op("where", [below(hi), value, result], compute)
        return labeled(cast(result, dtype), node)
    return Lazy(shape, dtype, body)


# --------------------------------------------------------------------------- slice_scatter


@register(aten.slice_scatter)
def _slice_scatter(g, node, base, src, dim=0, start=None, end=None, step=1):
    """``base`` with ``src`` written over ``base[..., start:end:step, ...]`` along ``dim``,
    pointwise over the output: inside the slice ``src`` is read (under the predicate,
    so its load never leaves its range), elsewhere ``base``."""
    shape, dtype = out_meta(node)
    dim = _dim(dim, len(shape))
    size = shape[dim]
    if step != 1 or not all(sizes.is_static(v) for v in (size, start or 0, end or 0)):
        raise Unlowerable("slice_scatter with a step or symbolic bounds")
    start = 0 if start is None else min(max(start + size if start < 0 else start, 0), size)
    end = size if end is None else min(max(end + size if end < 0 else end, start), size)
    compute = compute_dtype(dtype)
    index_dtype = torch.int32 if size <= config.INT32_LIMIT else torch.int64

    def body(index):
        k = index[dim]
        position = IndexValue(k, index_dtype)
        conditions = ([Op("ge", [position, size_value(start, index_dtype)], torch.bool)] if start > 0 else []) + \
                     ([Op("lt", [position, size_value(end, index_dtype)], torch.bool)] if end < size else [])
        own = list(index)
        own[dim] = k - start
        inside = cast(src.load(own), compute)
        if not conditions:
            return labeled(cast(inside, dtype), node)
        predicate = conditions[0] if len(conditions) == 1 else Op("and", conditions, torch.bool)
        result = Op("where", [predicate, guarded(inside, predicate), cast(base.load(index), compute)], compute)
        return labeled(cast(result, dtype), node)
    return Lazy(shape, dtype, body)

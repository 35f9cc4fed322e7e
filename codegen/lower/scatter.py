"""Lowering rule for ``index_put`` with ``accumulate``: an atomic scatter-add.

An embedding's backward decomposes to ``index_put(zeros, [clamp(idx)], where(valid,
grad, 0), accumulate=True)``. With an emitter that has atomic scatters (Triton): the
base is written into a fresh buffer by an ordinary kernel (zeros: the ``full``), then a
``ScatterAdd`` computation over the values adds each into its row
(``codegen.emit.triton_scatter``), with the index and the values computed inside it
(the clamp and the ``where`` are not kernels of their own). One index tensor, indexing
the first dimension, values of exactly ``idx.shape + base.shape[1:]``, float32; an index
out of range raises as in eager (``IndexCheck``). Anything else, the C emitter, and a
process asking torch for deterministic algorithms (atomic float adds are summed in
whatever order the GPU runs them) keep the library call.
"""
from __future__ import annotations

import torch

from codegen.ir import Computation, IndexCheck, ScatterAdd, TensorValue, in_range, indexing
from codegen.lower.indirect import table_index
from codegen.lower.registry import RuleTable, Unlowerable, cast, out_meta

aten = torch.ops.aten

RULES = RuleTable("scatter")
register = RULES.register


def _refusal(g, base, indices, values, accumulate, dtype) -> str | None:
    if not accumulate:
        return "index_put without accumulate"
    if "scatter" not in g.templates:
        return "library kernel: this emitter has no atomic scatter"
    if torch.are_deterministic_algorithms_enabled():
        return "library kernel: deterministic algorithms asked for (atomic adds are not)"
    if dtype is not torch.float32:
        return f"atomic scatter of {dtype}"
    if len(indices) != 1 or not isinstance(indices[0], TensorValue) or not isinstance(values, TensorValue) \
            or not isinstance(base, TensorValue) or base.ndim == 0:
        return "index_put other than one index tensor into the first dimension"
    if indices[0].dtype not in (torch.int64, torch.int32):
        return f"index of dtype {indices[0].dtype}"
    if tuple(values.shape) != tuple(indices[0].shape) + tuple(base.shape[1:]):
        return "index_put with broadcast values"
    return None


@register(aten.index_put)
def _index_put(g, node, base, indices, values, accumulate=False):
    shape, dtype = out_meta(node)
    reason = _refusal(g, base, indices, values, accumulate, dtype)
    if reason is not None:
        raise Unlowerable(reason)
    index = indices[0]
    target = g.realize(base, node.name, [node.name], node, copy=True)
    k = index.ndim

    def at(position):
        row = table_index(index.load(list(position[:k])), shape[0], node, wrap=True)
        return indexing.strided_offset([row] + list(position[k:]), target.stride, target.offset)

    def body(position):
        atoms = at(position).gathered()
        value = cast(values.load(list(position)), dtype)
        return IndexCheck(value, in_range(atoms), "index_put") if atoms else value
    added = g.new_buffer(f"{node.name}_added", values.shape, dtype)     # iterated over, never written
    g.nodes.append(Computation(added, body, [node.name], scatter=ScatterAdd(target.buffer, at)))
    return target

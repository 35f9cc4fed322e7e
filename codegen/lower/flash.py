"""Lowering rules for the training pair ``capture::flash_attention`` / ``_backward``.

The compiled path keeps a differentiated ``scaled_dot_product_attention`` as one op
(``fx_graph.attention_op``) when the emitter has attention templates. The forward
becomes the flash-attention template (``AttentionTemplate``, the score being
``qk * scale`` plus the additive mask or the causal ``where``), which also writes the
per-row logsumexp (its ``lse`` buffer) that the forward graph saves. The backward
becomes two ``AttentionBackwardTemplate`` computations: one over key blocks writing dk
and dv, one over query blocks writing dq (``codegen.emit.triton_attention_bw``); each
recomputes the probabilities from q, k and the logsumexp. Without templates (the C
emitter), or where ``config.use_attention_template`` refuses, the op is an extern call
running the op's eager implementation.
"""
from __future__ import annotations

import torch

import fx_graph.attention_op  # noqa: F401  (registers the ops this module lowers)
from codegen import config
from codegen.ir import (AttentionBackwardTemplate, AttentionTemplate, Buffer, BufferValue, Computation, Const,
                        IndexValue, Lazy, Load, Op, indexing, sizes)
from codegen.lower.registry import RuleTable, Unlowerable, cast

RULES = RuleTable("flash")
register = RULES.register
capture_ops = torch.ops.capture


def _extents(g, q, k, v):
    """(B, H, M, N, D, Dv) when the templates compute this attention, else Unlowerable."""
    if "attention" not in g.templates:
        raise Unlowerable("library kernel: this emitter has no attention template")
    if not all(sizes.is_static(s) for t in (q, k, v) for s in t.shape):
        raise Unlowerable("the attention templates of training graphs take static sizes")
    batch, heads, rows, depth = q.shape
    cols, v_dim = k.shape[2], v.shape[3]
    reason = config.use_attention_template(batch * heads, rows, cols, depth, v_dim, q.dtype)
    if reason is not None:
        raise Unlowerable(f"library kernel: {reason}")
    return batch, heads, rows, cols, depth, v_dim


def _split(b, batch, heads) -> list:
    """(batch, head) indices of a flattened batch * heads index."""
    return indexing.unflatten(b, [batch, heads])


def _as_3d(value, batch, heads, transpose: bool = False) -> Lazy:
    """A (B, H, X, Y) value as (B * H, X, Y), or (B * H, Y, X) with ``transpose``."""
    _, _, x, y = value.shape
    shape = (batch * heads, y, x) if transpose else (batch * heads, x, y)

    def load(index):
        b, i, j = index
        return value.load(_split(b, batch, heads) + ([j, i] if transpose else [i, j]))
    return Lazy(shape, value.dtype, load)


def _score(marker: Buffer, mask, is_causal: bool, scale: float, batch: int, heads: int):
    """``index (b, i, j) -> Expr`` of the scores: the tile times ``scale``, then the
    additive mask or the causal mask (key j seen by query i iff j <= i)."""
    f32 = torch.float32

    def score(index):
        b, i, j = index
        s = Op("mul", [Load(marker, indexing.strided_offset(index, marker.stride)), Const(scale, f32)], f32)
        if mask is not None:
            s = Op("add", [s, cast(mask.load(_split(b, batch, heads) + [i, j]), f32)], f32)
        if is_causal:
            seen = Op("le", [IndexValue(j, torch.int32), IndexValue(i, torch.int32)], torch.bool)
            s = Op("where", [seen, s, Const(float("-inf"), f32)], f32)
        return s
    return score


@register(capture_ops.flash_attention.default)
def _flash_attention(g, node, q, k, v, mask, is_causal, scale):
    batch, heads, rows, cols, depth, v_dim = _extents(g, q, k, v)
    bh, dtype = batch * heads, q.dtype
    marker = Buffer(g.unique(f"{node.name}_tile"), (bh, rows, cols),
                    tuple(indexing.contiguous_strides((bh, rows, cols))), torch.float32, "template")
    lse = g.new_buffer(f"{node.name}_lse", (bh, rows), torch.float32)
    template = AttentionTemplate(_as_3d(q, batch, heads), _as_3d(k, batch, heads, transpose=True),
                                 _as_3d(v, batch, heads), (bh, rows, v_dim, cols), depth, dtype,
                                 _score(marker, mask, is_causal, scale, batch, heads), marker, True, lse,
                                 causal=bool(is_causal))
    kd = indexing.var("kd", depth)

    def body(index):
        b, i, j = index
        return template.describe_loads(b, i, j, kd, indexing.var("kv", cols))
    out = g.template(node, (bh, rows, v_dim), dtype, body, template)
    return (BufferValue(out.buffer, (batch, heads, rows, v_dim), tuple(indexing.contiguous_strides(
        (batch, heads, rows, v_dim)))), BufferValue(lse, (batch, heads, rows), (heads * rows, rows, 1)))


@register(capture_ops.flash_attention_backward.default)
def _flash_attention_backward(g, node, grad_out, q, k, v, out, lse, mask, is_causal, scale):
    batch, heads, rows, cols, depth, v_dim = _extents(g, q, k, v)
    if max(depth, v_dim) > config.ATTENTION_BACKWARD_MAX_HEAD_DIM:
        raise Unlowerable(f"library kernel: heads wider than {config.ATTENTION_BACKWARD_MAX_HEAD_DIM} "
                          "(the backward template's tiles would spill)")
    bh, dtype = batch * heads, q.dtype
    values = {"q": q, "k": k, "v": v, "do": grad_out, "out": out, "lse": lse, "mask": mask}
    operands = {name: g.realize(value, f"{node.name}_{name}", [node.name])
                for name, value in values.items() if value is not None}
    dq = g.new_buffer(f"{node.name}_dq", (bh, rows, depth), dtype)
    dk = g.new_buffer(f"{node.name}_dk", (bh, cols, depth), dtype)
    dv = g.new_buffer(f"{node.name}_dv", (bh, cols, v_dim), dtype)
    # rowsum(do * out): the dq kernel computes and stores it, the dkv kernel reads it (not out)
    delta = g.new_buffer(f"{node.name}_delta", (bh, rows), torch.float32)
    with_delta = {name: bv for name, bv in operands.items() if name != "out"}
    with_delta["delta"] = BufferValue(delta, (batch, heads, rows), (heads * rows, rows, 1))
    common = dict(heads=heads, is_causal=bool(is_causal), scale=float(scale))
    for buffer, template in ((dq, AttentionBackwardTemplate("dq", operands, sizes=(bh, rows, depth, cols),
                                                            extra_outputs=(delta,), **common)),
                             (dk, AttentionBackwardTemplate("dkv", with_delta, sizes=(bh, cols, depth, rows),
                                                            extra_outputs=(dv,), **common))):
        g.nodes.append(Computation(buffer, lambda index, t=template: t.describe_loads(), [node.name],
                                   template=template))

    def view(buffer, width):
        shape = (batch, heads, buffer.shape[1], width)
        return BufferValue(buffer, shape, tuple(indexing.contiguous_strides(shape)))
    return view(dq, depth), view(dk, depth), view(dv, v_dim)

"""Attention as one differentiable op for training graphs: ``capture::flash_attention``.

A training step's graph differentiates ``scaled_dot_product_attention`` through AOT
autograd. Run as its math composite (``lifting.attention_above_autograd``), the forward
saves the probabilities and the backward is matmuls and a softmax backward; a code
generator with a flash-attention template wants the pair a flash kernel has instead:

    out, lse = flash_attention(q, k, v, mask, is_causal, scale)
    dq, dk, dv = flash_attention_backward(grad_out, q, k, v, out, lse, mask, is_causal, scale)

``q`` (B, H, M, D), ``k`` (B, H, N, D), ``v`` (B, H, N, Dv); ``mask`` an additive float
mask broadcastable to (B, H, M, N), or None; ``is_causal`` top-left aligned (key ``j``
seen by query ``i`` iff ``j <= i``, as SDPA). ``out`` (B, H, M, Dv) contiguous in q's
dtype, ``lse`` (B, H, M) float32 the per-row logsumexp of the scores (-inf for a row
that sees no key: its output and gradients are 0, SDPA's safe softmax). The backward
recomputes the probabilities from ``lse``: the forward saves q, k, v, out and lse, not
the (B, H, M, N) probabilities. The mask gets no gradient: ``use_fused`` refuses one
that requires grad, and dropout (the math composite keeps eager's random draws).

The eager implementations below (float32 math, like the kernels) run where no template
computes the op: a graph that runs as captured, or an emitter without the template.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

Tensor = torch.Tensor
# Types the fused op takes; anything else keeps the math composite (exact in its own type).
FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


def use_fused(query, key, value, attn_mask, dropout_p, enable_gqa=False) -> bool:
    """Whether the fused op can stand for this ``scaled_dot_product_attention`` call:
    4-d and not empty, one batch/head layout (grouped-query heads are expanded), a float
    type, no dropout, and a mask (if any) of at most 4 dims that autograd does not
    differentiate."""
    if dropout_p != 0 or not all(isinstance(t, Tensor) and t.dim() == 4 for t in (query, key, value)):
        return False
    if query.dtype not in FUSED_DTYPES or key.dtype != query.dtype or value.dtype != query.dtype:
        return False
    if 0 in (*query.shape, *key.shape, *value.shape):
        return False
    heads, kv_heads = query.shape[1], key.shape[1]
    if heads != kv_heads and not (enable_gqa and kv_heads and heads % kv_heads == 0):
        return False
    if key.shape[0] != query.shape[0] or value.shape[:3] != key.shape[:3] or key.shape[3] != query.shape[3]:
        return False
    return attn_mask is None or (attn_mask.dim() <= 4 and not attn_mask.requires_grad)


def _scores(q, k, mask, is_causal: bool, scale: float) -> Tensor:
    """Float32 scores with the mask applied (the kernels' numerics)."""
    s = torch.matmul(q.float(), k.float().transpose(-2, -1)) * scale
    if mask is not None:
        s = s + mask.float()
    if is_causal:
        m, n = s.shape[-2:]
        keep = torch.ones(m, n, dtype=torch.bool, device=s.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    return s


def _probabilities(s: Tensor, lse: Tensor) -> Tensor:
    """exp(s - lse) with rows that see no key (lse = -inf) all 0."""
    dead = torch.isneginf(lse).unsqueeze(-1)
    return torch.where(dead, 0.0, torch.exp(s - torch.where(dead, 0.0, lse.unsqueeze(-1))))


@torch.library.custom_op("capture::flash_attention", mutates_args=())
def flash_attention(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], is_causal: bool,
                    scale: float) -> tuple[Tensor, Tensor]:
    s = _scores(q, k, mask, is_causal, scale)
    lse = torch.logsumexp(s, dim=-1)
    out = torch.matmul(_probabilities(s, lse), v.float())
    return out.to(q.dtype).contiguous(), lse.contiguous()


@flash_attention.register_fake
def _(q, k, v, mask, is_causal, scale):
    b, h, m, _ = q.shape
    return q.new_empty((b, h, m, v.shape[-1])), q.new_empty((b, h, m), dtype=torch.float32)


@torch.library.custom_op("capture::flash_attention_backward", mutates_args=())
def flash_attention_backward(grad_out: Tensor, q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor,
                             mask: Optional[Tensor], is_causal: bool,
                             scale: float) -> tuple[Tensor, Tensor, Tensor]:
    p = _probabilities(_scores(q, k, mask, is_causal, scale), lse)
    do = grad_out.float()
    dv = torch.matmul(p.transpose(-2, -1), do)
    dp = torch.matmul(do, v.float().transpose(-2, -1))
    delta = (do * out.float()).sum(-1, keepdim=True)
    ds = p * (dp - delta)
    dq = torch.matmul(ds, k.float()) * scale
    dk = torch.matmul(ds.transpose(-2, -1), q.float()) * scale
    return dq.to(q.dtype), dk.to(k.dtype), dv.to(v.dtype)


@flash_attention_backward.register_fake
def _(grad_out, q, k, v, out, lse, mask, is_causal, scale):
    return torch.empty_like(q, memory_format=torch.contiguous_format), \
        torch.empty_like(k, memory_format=torch.contiguous_format), \
        torch.empty_like(v, memory_format=torch.contiguous_format)


def _setup_context(ctx, inputs, output):
    q, k, v, mask, is_causal, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, mask)
    ctx.is_causal, ctx.scale = is_causal, scale


def _backward(ctx, grad_out, grad_lse):
    q, k, v, out, lse, mask = ctx.saved_tensors
    dq, dk, dv = flash_attention_backward(grad_out, q, k, v, out, lse, mask, ctx.is_causal, ctx.scale)
    return dq, dk, dv, None, None, None


flash_attention.register_autograd(_backward, setup_context=_setup_context)


def fused_attention(query, key, value, attn_mask=None, is_causal=False, scale=None, enable_gqa=False):
    """SDPA's output through ``flash_attention`` (the caller checked ``use_fused``):
    grouped-query heads expanded (autograd sums their gradients back)."""
    # Contiguous operands: the forward saves them for the backward, and a saved view of a
    # fused projection (q, k, v split from one matmul) must keep eager's strides, gaps
    # included, which a kernel writing them separately cannot give without a copy each.
    query, key, value = query.contiguous(), key.contiguous(), value.contiguous()
    if enable_gqa and key.shape[1] != query.shape[1]:
        groups = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(groups, dim=1), value.repeat_interleave(groups, dim=1)
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1])
    if attn_mask is not None:
        attn_mask = attn_mask.expand(query.shape[0], query.shape[1], query.shape[2], key.shape[2])
    return flash_attention(query, key, value, attn_mask, bool(is_causal), float(scale))[0]

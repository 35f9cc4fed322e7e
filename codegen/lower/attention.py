"""Fused attention: ``softmax(score(q @ kᵀ)) @ v`` as one flash-attention template.

``scaled_dot_product_attention`` decomposes (math path) to the same aten pattern a
hand-written attention has::

    s = bmm(q, k)                       # (batch*heads, m, n); q, k scaled in the prologue
    t = score(s)                        # views and pointwise: scale, + mask, masked_fill
    p = exp(t - amax(t)) / sum(...)     # softmax over the last dim (amax, sub, exp, sum, div)
    p = where(all -inf row, 0, p)       # optional: SDPA's "safe" softmax
    o = bmm(p, v)

``match(gm)`` finds it by structure (the intermediate nodes have no other users);
``lower(g, match)`` builds an ``AttentionTemplate`` whose ``score`` is the pointwise
chain lowered with ``s`` standing for the tile of scores (a marker buffer the emitter
replaces by the ``tl.dot`` result), so masks made from ``arange``/``where`` and additive
masks are computed in the kernel. The emitter runs an online softmax over key blocks
(``codegen.emit.triton_attention``). Anything else lowers op by op as before.
"""
from __future__ import annotations

import dataclasses
import math

import torch
from torch import fx

from codegen import config
from codegen.ir import AttentionTemplate, Buffer, BufferValue, Lazy, Load, indexing, sizes
from codegen.lower.registry import Unlowerable
from codegen.lower.rules import lookup

aten = torch.ops.aten

_RESHAPES = {aten.view.default, aten.reshape.default, aten._unsafe_view.default, aten.clone.default,
             aten.expand.default, aten.alias.default}


@dataclasses.dataclass
class Match:
    out: fx.Node              # bmm(p, v)
    scores: fx.Node           # bmm(q, k)
    t: fx.Node                # the softmax input
    chain: list               # nodes from scores (excluded) to t (included), graph order
    internal: set             # every node the fused kernel replaces
    safe: bool                # fully masked rows give 0 (SDPA) instead of NaN


def _packet(node):
    return getattr(node.target, "overloadpacket", None) if node.op == "call_function" else None


def _shape(node):
    val = node.meta.get("val")
    return tuple(val.shape) if isinstance(val, torch.Tensor) else None


# reads of a tensor's metadata: the lowering takes them from the fake tensors, not the data
_SIZE_READS = {aten.sym_size.int, aten.sym_stride.int, aten.sym_numel.default, aten.sym_storage_offset.default}


def _data_inputs(node) -> list:
    """The tensors ``node`` reads (not the sizes: a symbolic graph's ``sym_size`` reads of
    other tensors are no data path)."""
    return [a for a in node.all_input_nodes if isinstance(a.meta.get("val"), torch.Tensor)]


def _through_reshapes(node, internal: set):
    """The node a chain of order-preserving reshapes starts from."""
    while node.op == "call_function" and node.target in _RESHAPES and len(node.users) == 1:
        if node.target is aten.expand.default and _shape(node) != _shape(node.args[0]):
            return node
        internal.add(node)
        node = node.args[0]
    return node


def _is(node, packet, *args) -> bool:
    return isinstance(node, fx.Node) and _packet(node) is packet and list(node.args[:len(args)]) == list(args)


def _last_dim(node, position: int) -> bool:
    dims = node.args[position] if len(node.args) > position else None
    dims = [dims] if isinstance(dims, int) else list(dims or [])
    rank = len(_shape(node.args[0]))
    return [d % rank for d in dims] == [rank - 1]


def _softmax_input(p, internal: set):
    """(t, safe) if ``p`` is softmax(t) over the last dim (optionally the safe form)."""
    safe = False
    if _packet(p) is aten.where and len(p.args) == 3:
        cond, zeros, div = p.args
        if not (_is(zeros, aten.full_like, div) and _packet(cond) is aten.logical_not):
            return None
        anything = cond.args[0]
        if _packet(anything) is not aten.any or _packet(anything.args[0]) is not aten.logical_not:
            return None
        eq = anything.args[0].args[0]
        if _packet(eq) is not aten.eq or eq.args[1] != float("-inf"):
            return None
        internal.update({p, cond, zeros, anything, anything.args[0], eq})
        p, safe = div, True
    if _packet(p) is not aten.div or len(p.args) != 2:
        return None
    exp, total = p.args
    if _packet(exp) is not aten.exp or not _is(total, aten.sum, exp) or not _last_dim(total, 1):
        return None
    sub = exp.args[0]
    if _packet(sub) is not aten.sub or not _is(sub.args[1], aten.amax, sub.args[0]) or not _last_dim(sub.args[1], 1):
        return None
    t = sub.args[0]
    if safe and eq.args[0] is not t:
        return None
    internal.update({p, exp, total, sub, sub.args[1]})
    return t, safe


def _chain(scores, t) -> list | None:
    """Nodes on the paths from ``scores`` to ``t`` (graph order), or None."""
    order = {n: i for i, n in enumerate(scores.graph.nodes)}
    found, stack = set(), [t]
    while stack:
        node = stack.pop()
        if node is scores or node in found:
            continue
        if order.get(node, -1) < order[scores]:
            continue                           # an outside input (a mask)
        if node.op != "call_function":
            return None
        found.add(node)
        stack += _data_inputs(node)
    reached = {a for n in found for a in _data_inputs(n)}
    if scores not in reached and t is not scores:
        return None
    return sorted(found, key=order.get)


def match(gm: fx.GraphModule) -> dict:
    """{bmm(p, v) node: Match} for every attention pattern in ``gm``."""
    found = {}
    for out in gm.graph.nodes:
        if _packet(out) is not aten.bmm:
            continue
        internal = set()
        p = _through_reshapes(out.args[0], internal)
        if _packet(p) is aten._to_copy and set(p.kwargs) == {"dtype"} and len(p.users) == 1 \
                and p.kwargs["dtype"] == out.meta["val"].dtype:
            internal.add(p)                  # probabilities rounded to v's type: the kernel does that
            p = p.args[0]
        softmax = _softmax_input(p, internal)
        if softmax is None:
            continue
        t, safe = softmax
        if _shape(t) != _shape(p):
            continue
        chain = _chain_from(t, internal)
        if chain is None:
            continue
        scores, chain = chain
        internal |= set(chain) | {scores}
        users_ok = all(u in internal or u is out or u.target in _SIZE_READS for n in internal for u in n.users)
        if users_ok:
            found[out] = Match(out, scores, t, chain, internal, safe)
    return found


def _chain_from(t, internal):
    """(bmm(q, k) node, score chain) feeding ``t``: the nearest bmm ``t`` depends on."""
    stack, seen = [t], set()
    while stack:
        node = stack.pop()
        if node in seen or node.op != "call_function":
            continue
        seen.add(node)
        if _packet(node) is aten.bmm and node is not t:
            chain = _chain(node, t)
            return None if chain is None else (node, chain)
        stack += _data_inputs(node)
    return None


# --------------------------------------------------------------------------- lowering


def lower(g, m: Match):
    """The fused attention output (a BufferValue), or None when it cannot be fused."""
    q, k, v = g.env[m.scores.args[0]], g.env[m.scores.args[1]], g.env[m.out.args[1]]
    shape, dtype = _shape(m.out), m.out.meta["val"].dtype
    batch, rows, depth = q.shape
    cols, dv = k.shape[2], v.shape[2]
    if not (sizes.is_static(depth) and sizes.is_static(dv)):
        return None               # a head is one block (BLOCK_D, BLOCK_N): its sizes must be known
    # batch, rows and keys may be symbolic: runtime arguments, any value (this call's for heuristics)
    reason = config.use_attention_template(sizes.hint(batch), sizes.hint(rows), sizes.hint(cols), depth, dv, dtype)
    if reason is not None or any(getattr(x, "dtype", None) != dtype for x in (q, k, v)):
        return None
    marker = Buffer(g.unique(f"{m.scores.name}_tile"), (batch, rows, cols),
                    tuple(indexing.contiguous_strides((batch, rows, cols))), m.scores.meta["val"].dtype, "template")
    score = _score_function(g, m, marker, (batch, rows, cols))
    if score is None:
        return None
    template = AttentionTemplate(q, k, v, (batch, rows, dv, cols), depth, dtype, score, marker, m.safe)
    kd = indexing.var("kd", depth)

    def body(index):
        b, i, j = index
        kv = indexing.var("kv", cols)
        return template.describe_loads(b, i, j, kd, kv)
    return g.template(m.out, shape, dtype, body, template)


def _score_function(g, m: Match, marker: Buffer, shape):
    """``index (b, m, n) -> Expr`` of ``t`` with the scores read from ``marker``, or None."""
    saved = {n: g.env.get(n) for n in m.chain + [m.scores]}
    g.env[m.scores] = Lazy(shape, m.scores.meta["val"].dtype, lambda index: Load(marker, indexing.strided_offset(
        index, marker.stride)))
    mark = len(g.nodes)
    try:
        for node in m.chain:
            rule = lookup(node.target)
            if rule is None:
                return None
            value = rule(g, node, *g._lowered(node.args), **g._lowered(node.kwargs))
            if not isinstance(value, Lazy) and not isinstance(value, BufferValue) or len(g.nodes) != mark:
                return None
            g.env[node] = value
        t = g.env[m.t]
    except Unlowerable:
        return None
    finally:
        del g.nodes[mark:]
        for n, value in saved.items():
            if value is None:
                g.env.pop(n, None)
            else:
                g.env[n] = value
    if t.shape == shape:
        return t.load
    if len(t.shape) < 1 or not sizes.equal(math.prod(t.shape), math.prod(shape)):
        return None

    def load(index):              # t is a reshape of the scores: same row-major order
        linear = indexing.strided_offset(index, indexing.contiguous_strides(shape))
        return t.load(indexing.unflatten(linear, list(t.shape)))
    return load

"""Lowering rules for matrix products: mm, bmm, addmm, baddbmm as a ``tl.dot`` template.

A product becomes a ``Computation`` carrying a ``MatmulTemplate`` (its operands read
through views and cheap pointwise producers, i.e. prologue fusion) when the emitter has
templates (``GraphLowering.templates``: both emitters have one) and
``config.use_matmul_template`` says the template wins for that emitter (the C one only
for small float32 products); otherwise the
rule raises ``Unlowerable`` and the node is an extern call to torch's GEMM. ``addmm``'s
bias and scaling are a ``Lazy`` over the product, which the scheduler fuses into the
template's epilogue together with whatever pointwise work follows (activation,
residual add, dtype cast).
"""
from __future__ import annotations

import torch

from codegen import config
from codegen.ir import BufferValue, Lazy, Load, MatmulTemplate, Op, fresh_index, indexing, sizes, walk
from codegen.lower.registry import RuleTable, Unlowerable, broadcast, cast, labeled, out_meta, scalar

aten = torch.ops.aten

RULES = RuleTable("matmul")
register = RULES.register


class _Batched:
    """A 2-D operand seen as (1, rows, cols): the template always indexes (b, i, j)."""

    def __init__(self, value):
        self.value, self.shape, self.dtype = value, (1,) + tuple(value.shape), value.dtype

    def load(self, index):
        return self.value.load(index[1:])


def _operand(g, node, value, name):
    """``value`` read inside the template, or realized first when recomputing it for
    every tile of the other operand would cost more than reading a buffer."""
    expr = value.load(fresh_index(value.shape))
    ops = sum(1 for e in walk(expr) if isinstance(e, Op))
    if isinstance(value, BufferValue) or ops <= config.MATMUL_PROLOGUE_MAX_OPS:
        return value
    return g.realize(value, f"{node.name}_{name}", [node.name])


def _contiguous_along_k(b, extents) -> bool:
    """Does operand ``b`` (batch, k, n) read memory with stride 1 along k (its first load)?"""
    batch, _, n, k = extents
    if k == 1:
        return True
    index = [indexing.var("b", batch) if batch > 1 else indexing.const(0), indexing.var("k", k), indexing.var("n", n)]
    for node in walk(b.load(index)):
        if isinstance(node, Load):
            coefs = {atom.name: c for atom, c in node.index.terms.items() if isinstance(atom, indexing.Var)}
            return coefs.get("k") == 1 and coefs.get("n") != 1
    return False


def _template(g, node, a, b, batched: bool, exact_product: bool = False):
    """The product as a template computation. ``exact_product``: keep it in float32 for a
    bias added before rounding to a half type (eager's addmm rounds once)."""
    shape, dtype = out_meta(node)
    if not g.templates or "matmul" not in g.templates:
        raise Unlowerable("library kernel: this emitter has no matmul template")
    if not batched:
        a, b = _Batched(a), _Batched(b)
    extents = (a.shape[0], a.shape[1], b.shape[2], a.shape[2])
    if g.emitter == "cpp":           # static sizes only (the C template prints them as literals)
        choice = config.use_cpp_matmul_template(*extents, dtype)
        if choice is None and not _contiguous_along_k(b, extents):
            choice = "the C template reads b along k (a linear layer's weight); this b is not"
    else:
        # a heuristic (the template is correct at any size): symbolic extents at the smallest
        # size the entry serves, whichever call compiled it (config, beside MATMUL_MIN_DIM)
        choice = config.use_matmul_template(*[sizes.least(e) for e in extents], dtype)
    if choice is not None:
        raise Unlowerable(f"library kernel: {choice}")
    a = _operand(g, node, a.value if isinstance(a, _Batched) else a, "a")
    b = _operand(g, node, b.value if isinstance(b, _Batched) else b, "b")
    if not batched:
        a, b = _Batched(a), _Batched(b)
    template = MatmulTemplate(a, b, extents, dtype)
    k = indexing.var("k", extents[3])

    def body(index):
        bi, m, n = ([indexing.const(0)] + list(index)) if not batched else index
        left, right = template.operand_loads(bi, m, n, k)
        return Op("dot", [left, right], torch.float32, label=node.name)
    stored = torch.float32 if exact_product and dtype in (torch.float16, torch.bfloat16) else dtype
    return g.template(node, shape, stored, body, template)


@register(aten.mm)
def _mm(g, node, a, b):
    return _template(g, node, a, b, batched=False)


@register(aten.bmm)
def _bmm(g, node, a, b):
    return _template(g, node, a, b, batched=True)


def _scaled_sum(node, bias, product, beta, alpha):
    """``beta * bias + alpha * product`` as a Lazy over the product's buffer."""
    shape, dtype = out_meta(node)
    compute = torch.float32 if dtype.is_floating_point else dtype
    load_bias = broadcast(bias, shape, compute)

    def body(index):
        value = cast(product.load(index), compute)
        if alpha != 1:
            value = Op("mul", [value, scalar(alpha, compute)], compute)
        term = load_bias(index)
        if beta != 1:
            term = Op("mul", [term, scalar(beta, compute)], compute) if beta != 0 else None
        out = value if term is None else Op("add", [term, value], compute)
        return labeled(cast(out, dtype), node)
    return Lazy(shape, dtype, body)


@register(aten.addmm)
def _addmm(g, node, bias, a, b, beta=1, alpha=1):
    return _scaled_sum(node, bias, _template(g, node, a, b, batched=False, exact_product=True), beta, alpha)


@register(aten.baddbmm)
def _baddbmm(g, node, bias, a, b, beta=1, alpha=1):
    return _scaled_sum(node, bias, _template(g, node, a, b, batched=True, exact_product=True), beta, alpha)


"""Emit the fused attention kernel (flash-attention style, online softmax).

One program owns ``BLOCK_M`` query rows of one (batch, head) and the whole head::

    q = <q at (rm, rqd)>                                   # scaled in the prologue
    for kv_start in range(0, KV, BLOCK_KV):
        qk = tl.dot(q, <k at (rkd, rkvc)>)                 # BLOCK_M x BLOCK_KV scores
        t = <score(qk) at (rm, rkvc)>                      # scale, causal/additive masks
        m_new = max(m_i, rowmax(t)); alpha = exp(m_i - m_new); p = exp(t - m_new)
        l_i = l_i * alpha + rowsum(p)
        acc = acc * alpha + tl.dot(p, <v at (rkvr, rn)>)
        m_i = m_new
    out = acc / l_i                                        # then the epilogue members

Rows that have seen only -inf subtract 0 instead of their max (``m_safe``), so ``p`` and
``alpha`` are exp(-inf) = 0, never exp(-inf + inf) = NaN; a row whose
scores are all -inf ends with ``l_i = 0``: 0 for SDPA's safe softmax, 0 / 0 = NaN for a
plain softmax, as eager. Index variables: ``m`` query rows, ``n`` columns of the output
(v's width), ``qd``/``kd`` the head dimension as q's columns / k's rows, ``kvc``/``kvr``
the keys as the scores' columns / v's rows.
"""
from __future__ import annotations

import torch

from codegen import config
from codegen.emit.triton_ops import TL_DTYPES, convert
from codegen.emit.triton_templates import MatmulEmitter
from codegen.ir import Load, indexing, sizes

_BLOCKS = {"b": ("bid", None), "m": ("rm", "m_mask"), "n": ("rn", "n_mask"), "qd": ("rqd", "qd_mask"),
           "kd": ("rkd", "kd_mask"), "kvc": ("rkvc", "kvc_mask"), "kvr": ("rkvr", "kvr_mask")}
_SHAPES = {frozenset({"m"}): "rm", frozenset({"n"}): "rn", frozenset({"qd"}): "rqd", frozenset({"kd"}): "rkd",
           frozenset({"kvc"}): "rkvc", frozenset({"kvr"}): "rkvr", frozenset({"m", "n"}): "tile_mn",
           frozenset({"m", "qd"}): "tile_mq", frozenset({"kd", "kvc"}): "tile_kk",
           frozenset({"m", "kvc"}): "tile_ms", frozenset({"kvr", "n"}): "tile_vn"}
ATTENTION_NAMES = {"rqd", "rkd", "rkvc", "rkvr", "qd_mask", "kd_mask", "kvc_mask", "kvr_mask", "kv_start",
                   "tile_mq", "tile_kk", "tile_ms", "tile_vn", "qk", "m_i", "l_i", "m_new", "m_safe", "alpha",
                   "p", "q", "KV", "D", "BLOCK_KV", "BLOCK_D", "scores"}


class AttentionEmitter(MatmulEmitter):
    blocks = _BLOCKS
    shapes = _SHAPES
    loop_variables = ("kd", "kvc", "kvr")

    def __init__(self, kernel, placed, name, fx_order):
        self.template = next(p for p in placed.values() if p.role == "template").comp.template
        self.head_dim = self.template.head_dim
        super().__init__(kernel, placed, name, fx_order)
        self.keys = self.k
        self.var_sizes = {"b": self.batch, "m": self.m, "n": self.n, "qd": self.head_dim, "kd": self.head_dim,
                          "kvc": self.keys, "kvr": self.keys}
        self.taken |= ATTENTION_NAMES

    def configs(self) -> list:
        # symbolic rows/keys: blocks for this call's sizes (a speed choice, no guard)
        return config.attention_configs(sizes.hint(self.m), sizes.hint(self.k), self.template.head_dim, self.n,
                                        self.fma)

    def _shape_vars(self, names) -> frozenset:
        names = frozenset(names) - {"b"}
        return names or frozenset({"m"})

    def emit(self, expr) -> str:
        if isinstance(expr, Load) and expr.buffer is self.template.marker:
            return "qk"                        # the tile of scores of this step
        return super().emit(expr)

    def _level(self, expr) -> str:
        if isinstance(expr, Load) and expr.buffer is self.template.marker:
            return "r"
        return super()._level(expr)

    def emit_body(self) -> None:
        t = self.template
        b, m, n = self.kernel.space.matmul_variables()
        qd, kd = indexing.var("qd", self.head_dim), indexing.var("kd", self.head_dim)
        kvc, kvr = indexing.var("kvc", self.keys), indexing.var("kvr", self.keys)
        self.lines += ["pid = tl.program_id(0)", "bid = tl.program_id(1) + tl.zeros([1, 1], dtype=tl.int32)",
                       "rm = pid * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]", "m_mask = rm < M",
                       "rn = tl.arange(0, BLOCK_N)[None, :]", "n_mask = rn < N",
                       "rqd = tl.arange(0, BLOCK_D)[None, :]", "qd_mask = rqd < D",
                       "rkd = tl.arange(0, BLOCK_D)[:, None]", "kd_mask = rkd < D",
                       "tile_mn = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)",
                       "tile_mq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.int32)",
                       "tile_kk = tl.zeros([BLOCK_D, BLOCK_KV], dtype=tl.int32)",
                       "tile_ms = tl.zeros([BLOCK_M, BLOCK_KV], dtype=tl.int32)",
                       "tile_vn = tl.zeros([BLOCK_KV, BLOCK_N], dtype=tl.int32)"]
        self.lines.append(f"q = {self._operand(t.q.load([b, m, qd]), 'qd_mask', '(BLOCK_M, BLOCK_D)')}")
        self.lines += ['m_i = tl.full([BLOCK_M, 1], float("-inf"), tl.float32)',
                       "l_i = tl.zeros([BLOCK_M, 1], dtype=tl.float32)",
                       "acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)"]

        def body():
            k = self._operand(t.k.load([b, kd, kvc]), "kd_mask", "(BLOCK_D, BLOCK_KV)")
            self.lines.append(f"qk = {self.dot('q', k)}")
            if t.marker.dtype != torch.float32:            # the scores as eager's product stores them
                self.lines.append(f"qk = {convert(self._rounded('qk', t.marker.dtype), torch.float32)}")
            score = self.emit(t.score([b, m, kvc]))
            self.lines += [f'scores = tl.where(kvc_mask, tl.broadcast_to({score}, (BLOCK_M, BLOCK_KV)), '
                           f'float("-inf"))',
                           "m_new = tl.maximum(m_i, tl.max(scores, 1)[:, None])",
                           'm_safe = tl.where(m_new == float("-inf"), 0.0, m_new)',
                           "alpha = tl.exp(m_i - m_safe)",
                           "p = tl.exp(scores - m_safe)",
                           "l_i = l_i * alpha + tl.sum(p, 1)[:, None]"]
            v = self._operand(t.v.load([b, kvr, n]), "kvr_mask", "(BLOCK_KV, BLOCK_N)")
            p = "p" if t.operand_dtype is torch.float32 else self._rounded("p", t.operand_dtype)
            self.lines += [f"acc = acc * alpha + {self.dot(p, v)}", "m_i = m_new"]
        end = "tl.minimum(KV, (pid + 1) * BLOCK_M)" if t.causal else "KV"    # causal: no block past the diagonal
        self.template_loop(f"for kv_start in range(0, {end}, BLOCK_KV):",
                           ["rkvc = kv_start + tl.arange(0, BLOCK_KV)[None, :]", "kvc_mask = rkvc < KV",
                            "rkvr = kv_start + tl.arange(0, BLOCK_KV)[:, None]", "kvr_mask = rkvr < KV"], body)
        if t.lse is not None:     # the logsumexp a training step saves: -inf where a row saw no key
            self.stores.setdefault(t.lse.name, t.lse)
            self.lines.append(f'tl.store({t.lse.name}_ptr + bid * M + rm, tl.where(l_i == 0.0, float("-inf"), '
                              f'm_i + tl.log(tl.where(l_i == 0.0, 1.0, l_i))), m_mask)')
        out = self.fresh(self.template_member.comp.name + "_out")
        if t.safe:        # SDPA: a fully masked row gives 0
            self.lines.append(f"{out} = tl.where(l_i == 0.0, 0.0, acc / tl.where(l_i == 0.0, 1.0, l_i))")
        else:
            self.lines.append(f"{out} = acc / l_i")
        self.epilogue(out)

    def _rounded(self, name: str, dtype) -> str:
        if dtype is torch.bfloat16:
            self.helpers.add("_to_bfloat16")
        return convert(name, dtype)

    def sizes(self) -> list:
        return [("M", self.m), ("N", self.n), ("KV", self.keys), ("D", self.head_dim)]

    def grid(self) -> tuple:
        """Programs over query-row blocks and (batch, head); source for the wrapper where symbolic."""
        batch = self.batch if sizes.is_static(self.batch) else sizes.source(self.batch)
        return (sizes.blocks(self.m, self.cfg["BLOCK_M"]), batch)

    def description(self) -> str:
        return (f"# attention template: {self.batch} x softmax(({self.m} x {self.head_dim}) @ ({self.head_dim} x "
                f"{self.keys})) @ ({self.keys} x {self.n}), online softmax over {self.keys} keys, "
                f"{TL_DTYPES[self.template.operand_dtype]} operands")

"""Emit flash attention's backward: two kernels per ``capture::flash_attention_backward``.

Both recompute the probabilities from q, k and the forward's logsumexp instead of
reading them (``AttentionBackwardTemplate``; B*H programs along axis 1)::

    # "dq": a program owns BLOCK_M query rows
    delta = rowsum(do * out)                      # stored: the dkv kernel reads it
    for n_start in range(0, N, BLOCK_N):          # causal: only up to the diagonal
        s = q @ kᵀ * scale (+ mask)               # BLOCK_M x BLOCK_N, float32
        p = exp(s - lse)                          # 0 where masked / out of range / row saw no key
        ds = p * (do @ vᵀ - delta)
        dq += ds @ k
    dq *= scale

    # "dkv": a program owns BLOCK_N keys
    for m_start in range(0, M, BLOCK_M):          # causal: only from the diagonal
        p, ds as above (delta loaded)
        dv += pᵀ @ do
        dk += dsᵀ @ q
    dk *= scale

No atomics: each output element is summed by one program in a fixed order
(deterministic). Operands are strided windows of buffers (views of a fused qkv
projection read in place); the offsets are literals. Dots take q's type (tensor cores
for half types; exact float32 unless TF32 is allowed, as the matmul template), the
probabilities and ``ds`` are rounded to it for the dots, accumulation is float32.
Modeled bytes count every operand once (as the forward template's model: the re-reads
of q/do per key block are the ones a flash kernel makes).
"""
from __future__ import annotations

import dataclasses

import torch

from codegen import config
from codegen.emit.triton import KernelSource, _sizes
from codegen.emit.triton_ops import HELPERS, TL_DTYPES, convert


@dataclasses.dataclass
class AttentionBackwardSource(KernelSource):
    """A backward kernel's source: programs over ``over`` ("M" query rows or "N" keys)."""
    over: str = "M"

    @property
    def kind(self) -> str:
        return "attention_backward"

    def autotune_configs(self) -> list:
        extents = dict(self.int_args)
        return config.attention_backward_configs(extents["M"], extents["N"], extents["D"], extents["DV"], self.fma)

    def autotuned_grid(self) -> str:
        block = "BLOCK_M" if self.over == "M" else "BLOCK_N"
        return f"lambda meta: (_cdiv({dict(self.int_args)[self.over]}, meta[{block!r}]), {self.grid[1]})"


class AttentionBackwardEmitter:
    """The Triton source of one ``AttentionBackwardTemplate`` kernel (no epilogue)."""

    def __init__(self, kernel, placed, name, fx_order):
        self.comp = kernel.members[0]
        self.t = self.comp.template
        self.name, self.fx_order = name, fx_order
        self.ops = self.t.operands
        self.dtype = self.ops["q"].dtype
        batch, rows, _, cols = self.t.sizes if self.t.part == "dq" else self._swap(self.t.sizes)
        self.batch, self.m, self.n = batch, rows, cols
        self.d, self.dv = self.ops["q"].shape[3], self.ops["v"].shape[3]
        self.fma = self.dtype is torch.float32 and not torch.backends.cuda.matmul.allow_tf32
        self.cfg = config.attention_backward_configs(self.m, self.n, self.d, self.dv, self.fma)[0]
        self.helpers: set = set()
        self.lines: list = []

    @staticmethod
    def _swap(extents):
        batch, cols, depth, rows = extents
        return batch, rows, depth, cols

    # ---------------------------------------------------------------- source pieces
    def ptr(self, name: str, rows: str | None = None, cols: str | None = None) -> str:
        """``<buffer>_ptr + offset`` of operand ``name`` at (b0, b1, rows, cols)."""
        bv = self.ops[name] if isinstance(name, str) else name
        terms = [str(bv.offset)] if bv.offset else []
        for var, stride in zip(("b0", "b1", rows, cols), bv.stride):
            if var is not None and stride != 0:
                terms.append(var if stride == 1 else f"{var} * {stride}")
        return f"{bv.buffer.name}_ptr + " + (" + ".join(terms) if terms else "0")

    def load(self, name: str, rows: str, cols: str, mask: str) -> str:
        return f"tl.load({self.ptr(name, rows, cols)}, mask={mask}, other=0.0)"

    def rounded(self, value: str) -> str:
        """A float32 block as a dot operand (q's type)."""
        if self.dtype is torch.float32:
            return value
        if self.dtype is torch.bfloat16:
            self.helpers.add("_to_bfloat16")
        return convert(value, self.dtype)

    def dot(self, a: str, b: str) -> str:
        if self.dtype is torch.bfloat16:
            self.helpers.add("_dot_bf16")
            return f"_dot_bf16({a}, {b})"
        precision = ', input_precision="ieee"' if self.fma else ""
        return f"tl.dot({a}, {b}{precision})"

    def probabilities(self) -> list:
        """Lines computing ``p`` and ``ds`` of the (rm, rn) tile from q, k, v, do, lse, delta."""
        t = self.t
        lines = [f"s = {self.dot('q', 'tl.trans(k)')} * {t.scale!r}",
                 "valid = m_mask[:, None] & n_mask[None, :]"]
        if "mask" in self.ops:
            lines.append(f"s = s + {self.load('mask', 'rm[:, None]', 'rn[None, :]', 'valid')}.to(tl.float32)")
        if t.is_causal:
            lines.append("valid = valid & (rn[None, :] <= rm[:, None])")
        lines += ['s = tl.where(valid, s, float("-inf"))',
                  'live = lse != float("-inf")',
                  "p = tl.where(live[:, None], tl.exp(s - tl.where(live, lse, 0.0)[:, None]), 0.0)",
                  f"dp = {self.dot('do', 'tl.trans(v)')}",
                  "ds = p * (dp - delta[:, None])"]
        return lines

    def _rows_setup(self, rm_start: str) -> list:
        return [f"rm = {rm_start} + tl.arange(0, BLOCK_M)", "m_mask = rm < M",
                f"q = {self.load('q', 'rm[:, None]', 'rd[None, :]', 'm_mask[:, None] & d_mask[None, :]')}",
                f"do = {self.load('do', 'rm[:, None]', 're[None, :]', 'm_mask[:, None] & e_mask[None, :]')}",
                f"lse = tl.load({self.ptr('lse', 'rm')}, mask=m_mask, other=0.0)"]

    def _keys_setup(self, rn_start: str) -> list:
        return [f"rn = {rn_start} + tl.arange(0, BLOCK_N)", "n_mask = rn < N",
                f"k = {self.load('k', 'rn[:, None]', 'rd[None, :]', 'n_mask[:, None] & d_mask[None, :]')}",
                f"v = {self.load('v', 'rn[:, None]', 're[None, :]', 'n_mask[:, None] & e_mask[None, :]')}"]

    def window(self, buffer) -> "_Window":
        """A (B*H, ...) output buffer seen as (B, H, ...), for ``ptr``."""
        heads = self.t.heads
        return _Window(buffer, (buffer.stride[0] * heads, buffer.stride[0]) + tuple(buffer.stride[1:]))

    def store(self, buffer, value: str, rows: str, width: str) -> str:
        """Store a (rows, width) tile: rows ``rm``/``rn``, width ``rd``/``re`` (masks named alike)."""
        mask = f"{rows[1]}_mask[:, None] & {width[1]}_mask[None, :]"
        if buffer.dtype is torch.bfloat16:
            self.helpers.add("_to_bfloat16")
        return (f"tl.store({self.ptr(self.window(buffer), f'{rows}[:, None]', f'{width}[None, :]')}, "
                f"{convert(f'({value})', buffer.dtype)}, {mask})")

    # ---------------------------------------------------------------- kernels
    def dq_lines(self) -> list:
        delta = self.t.extra_outputs[0]
        lines = ["rd = tl.arange(0, BLOCK_D)", "d_mask = rd < D", "re = tl.arange(0, BLOCK_DV)", "e_mask = re < DV"]
        lines += self._rows_setup("pid * BLOCK_M")
        lines += [f"out = {self.load('out', 'rm[:, None]', 're[None, :]', 'm_mask[:, None] & e_mask[None, :]')}",
                  "delta = tl.sum(do.to(tl.float32) * out.to(tl.float32), 1)",
                  f"tl.store({self.ptr(self.window(delta), 'rm')}, delta, m_mask)",
                  "dq = tl.zeros([BLOCK_M, BLOCK_D], dtype=tl.float32)"]
        end = "tl.minimum(N, (pid + 1) * BLOCK_M)" if self.t.is_causal else "N"
        body = self._keys_setup("n_start") + self.probabilities() + [f"dq += {self.dot(self.rounded('ds'), 'k')}"]
        lines += [f"for n_start in range(0, {end}, BLOCK_N):"] + ["    " + line for line in body]
        lines.append(self.store(self.comp.buffer, f"dq * {self.t.scale!r}", "rm", "rd"))
        return lines

    def dkv_lines(self) -> list:
        dv = self.t.extra_outputs[0]
        lines = ["rd = tl.arange(0, BLOCK_D)", "d_mask = rd < D", "re = tl.arange(0, BLOCK_DV)", "e_mask = re < DV"]
        lines += self._keys_setup("pid * BLOCK_N")
        lines += ["dk = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)",
                  "dv = tl.zeros([BLOCK_N, BLOCK_DV], dtype=tl.float32)"]
        start = "(pid * BLOCK_N // BLOCK_M) * BLOCK_M" if self.t.is_causal else "0"
        body = self._rows_setup("m_start") + [f"delta = tl.load({self.ptr('delta', 'rm')}, mask=m_mask, other=0.0)"]
        body += self.probabilities()
        p, ds = self.rounded("p"), self.rounded("ds")
        body += [f"dv += {self.dot(f'tl.trans({p})', 'do')}", f"dk += {self.dot(f'tl.trans({ds})', 'q')}"]
        lines += [f"for m_start in range({start}, M, BLOCK_M):"] + ["    " + line for line in body]
        lines.append(self.store(self.comp.buffer, f"dk * {self.t.scale!r}", "rn", "rd"))
        lines.append(self.store(dv, "dv", "rn", "re"))
        return lines

    def build(self) -> KernelSource:
        t = self.t
        heads = t.heads
        prologue = ["pid = tl.program_id(0)", "bid = tl.program_id(1)", f"b0 = bid // {heads}", f"b1 = bid % {heads}"]
        body = self.dq_lines() if t.part == "dq" else self.dkv_lines()
        outputs = [self.comp.buffer, *t.extra_outputs]
        inputs = list({bv.buffer.name: bv.buffer for bv in self.ops.values()}.values())
        pointers = inputs + outputs
        ints = [("M", self.m), ("N", self.n), ("D", self.d), ("DV", self.dv)]
        constexprs = {k: v for k, v in self.cfg.items() if k.startswith("BLOCK")}
        reads = {b.name: 0 for b in inputs}
        for bv in self.ops.values():           # each window once, at most its whole buffer
            reads[bv.buffer.name] = min(bv.buffer.nbytes, reads[bv.buffer.name] + _numel(bv.shape) * bv.dtype.itemsize)
        writes = {b.name: b.nbytes for b in outputs}
        params = [f"{b.name}_ptr" for b in pointers] + [f"{n}: tl.constexpr" for n, _ in ints] + \
            [f"{n}: tl.constexpr" for n in constexprs]
        over, block = ("M", "BLOCK_M") if t.part == "dq" else ("N", "BLOCK_N")
        header = [f"# fx nodes: {', '.join(self.comp.fx_nodes)}", f"# reads {_sizes(reads)}; writes {_sizes(writes)}",
                  f"# attention backward template ({t.part}): {self.batch} x softmax(({self.m} x {self.d}) @ "
                  f"({self.d} x {self.n})) @ ({self.n} x {self.dv}), probabilities recomputed from the logsumexp, "
                  f"{TL_DTYPES[self.dtype]} operands" + (", causal" if t.is_causal else "")]
        kernel = ["@triton.jit", f"def {self.name}({', '.join(params)}):"]
        kernel += ["    " + line for line in header + prologue + body]
        helpers = [HELPERS[h].strip() for h in sorted(self.helpers)]
        source = "\n\n\n".join(['"""Generated by capture\'s Triton code generator."""\nimport triton\n'
                                "import triton.language as tl"] + helpers + ["\n".join(kernel)]) + "\n"
        grid = (-(-(self.m if over == "M" else self.n) // self.cfg[block]), self.batch)
        return AttentionBackwardSource(self.name, source, pointers, ints, constexprs, grid, self.cfg["num_warps"],
                                       list(self.comp.fx_nodes), reads, writes, num_stages=self.cfg["num_stages"],
                                       fma=self.fma, over=over)


def _numel(shape) -> int:
    n = 1
    for s in shape:
        n *= s
    return n


@dataclasses.dataclass
class _Window:
    """A strided window of an output buffer (batch, head, ...), for ``ptr``."""
    buffer: object
    stride: tuple
    offset: int = 0

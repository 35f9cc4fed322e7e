"""Emit template kernels: a ``tl.dot`` matmul tile loop with its fused epilogue.

A matmul kernel computes one ``BLOCK_M x BLOCK_N`` tile of the product per program
(``program_id(1)`` is the batch)::

    rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]      # rows of the tile
    rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]      # columns
    acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)
    for k_start in range(0, K, BLOCK_K):
        rka = k_start + tl.arange(0, BLOCK_K)[None, :]         # depth, as a's columns
        rkb = k_start + tl.arange(0, BLOCK_K)[:, None]         # depth, as b's rows
        a = <the left operand at (rm, rka)>                    # views / scaling fused here
        b = <the right operand at (rkb, rn)>
        acc += tl.dot(a, b)
    <epilogue members at (rm, rn), reading acc>               # bias, GELU, residual, cast

Operands and epilogue are the loop IR's expressions emitted by ``KernelEmitter``'s
machinery with the template's index variables (``b``, ``m``, ``n``, ``ka``, ``kb``)
mapped to those blocks (the batch ``bid`` is a 1 x 1 block, so values computed from it
broadcast like the others); masks are per variable (``m_mask`` ...), and the operands are
zeroed outside ``K`` explicitly (a fused prologue may turn a masked 0 into something
else). Accumulation is float32; half operands go to ``tl.dot`` as half (tensor cores),
float32 ones with ``input_precision="ieee"`` unless TF32 is allowed for matmuls
(``torch.backends.cuda.matmul.allow_tf32``, read at compile time), as eager does.
"""
from __future__ import annotations

import torch

from codegen import config
from codegen.emit.triton_attention_bw import AttentionBackwardEmitter
from codegen.emit.triton_scatter import ScatterEmitter
from codegen.emit.triton import INDEX_ERROR_FLAG, RESERVED, KernelEmitter, KernelSource, _Scope, _sizes, refusal_lines
from codegen.emit.triton_ops import HELPERS, TL_DTYPES, convert
from codegen.ir import IndexValue, Load, indexing, sizes

# attention: also the training pair (codegen.lower.flash); scatter: atomic adds (codegen.lower.scatter)
TEMPLATES = ("matmul", "attention", "scatter")   # the template kinds this emitter has (``GraphLowering.templates``)
TEMPLATE_NAMES = {"bid", "pid_m", "pid_n", "grid_n", "rm", "rn", "rka", "rkb", "m_mask", "n_mask", "ka_mask",
                  "kb_mask", "k_start", "acc", "tile_mn", "tile_mk", "tile_kn", "M", "N", "K",
                  "BLOCK_M", "BLOCK_N", "BLOCK_K"}
# loop variable -> block name, mask name
_BLOCKS = {"b": ("bid", None), "m": ("rm", "m_mask"), "n": ("rn", "n_mask"), "ka": ("rka", "ka_mask"),
           "kb": ("rkb", "kb_mask")}
# a block shaped like these variables (for tl.zeros_like)
_SHAPES = {frozenset({"m"}): "rm", frozenset({"n"}): "rn", frozenset({"ka"}): "rka", frozenset({"kb"}): "rkb",
           frozenset({"m", "n"}): "tile_mn", frozenset({"m", "ka"}): "tile_mk", frozenset({"kb", "n"}): "tile_kn"}


def emitter_for(kernel, placed, name, fx_order, persistent: bool = False):
    """The emitter for ``kernel``: a template's or the pointwise/rows one (``persistent``:
    a symbolic row kernel's persistent variant, see ``KernelEmitter``)."""
    from codegen.emit.triton_attention import AttentionEmitter     # it builds on this module
    if persistent:
        return KernelEmitter(kernel, placed, name, fx_order, persistent=True)
    if any(comp.scatter is not None for comp in kernel.members):
        return ScatterEmitter(kernel, placed, name, fx_order)
    cls = {"matmul": MatmulEmitter, "attention": AttentionEmitter,
           "attention_backward": AttentionBackwardEmitter}.get(kernel.space.template, KernelEmitter)
    return cls(kernel, placed, name, fx_order)


class MatmulEmitter(KernelEmitter):
    blocks = _BLOCKS
    shapes = _SHAPES
    loop_variables = ("ka", "kb")

    def __init__(self, kernel, placed, name, fx_order):
        super().__init__(kernel, placed, name, fx_order)
        self.template_member = next(p for p in placed.values() if p.role == "template")
        self.batch, self.m, self.n, self.k = kernel.space.matmul
        self.fma = self._precision() != ""
        self.cfg = self.configs()[0]
        self.rows, self.persistent = False, True
        self.var_names = {v: block for v, (block, _) in self.blocks.items()}
        self.var_sizes = {"b": self.batch, "m": self.m, "n": self.n, "ka": self.k, "kb": self.k}
        self.taken |= TEMPLATE_NAMES

    def configs(self) -> list:
        return config.matmul_configs(sizes.hint(self.m), sizes.hint(self.n), sizes.hint(self.k), self.fma)

    # ---------------------------------------------------------------- blocks and masks
    def _shape_vars(self, names) -> frozenset:
        names = frozenset(names) - {"b"}
        return names or frozenset({"m"})      # a scalar read becomes a column (masked by rows)

    def block_like(self, names) -> str:
        return self.shapes.get(self._shape_vars(names), "tile_mn")

    def mask_for(self, index, names_in=None) -> str:
        names = {v.name for v in index.variables()} if names_in is None else set(names_in)
        return " & ".join(self.blocks[v][1] for v in sorted(self._shape_vars(names)))

    def pointer(self, buffer, index, names=None, shape_vars=None) -> str:
        own = frozenset(v.name for v in index.variables()) - {"b"}
        want = self._shape_vars(own if shape_vars is None else shape_vars)
        offset = sizes.source(index.const) if index.is_constant() else self.index_source(index, names,
                                                                                          check=shape_vars is None)
        text = f"{buffer.name}_ptr + {offset}"
        return text if own == want else f"{text} + tl.zeros_like({self.block_like(want)})"

    # ---------------------------------------------------------------- expressions
    def _level(self, expr) -> str:
        if isinstance(expr, Load) and expr.buffer.name in self.placed:
            return "x"
        if isinstance(expr, (Load, IndexValue)) and any(v.name in self.loop_variables for v in expr.index.variables()):
            return "r"
        return "r" if any(self.level(a) == "r" for a in expr.children()) else "x"

    def _member(self, load) -> str:
        member = self.placed[load.buffer.name]
        if member is self.template_member:
            return self.reduced[member.comp.name]
        return self.emit(member.value())

    def store(self, member, value_expr) -> None:
        buffer = member.comp.buffer
        value = self.emit(value_expr)
        if value_expr.dtype != buffer.dtype:
            value = convert(value, buffer.dtype)
            if buffer.dtype is torch.bfloat16:
                self.helpers.add("_to_bfloat16")
        self.stores.setdefault(buffer.name, buffer)
        value = f"tl.broadcast_to({value}, (BLOCK_M, BLOCK_N))"
        self.lines.append(f"tl.store({self.pointer(buffer, member.store_index, shape_vars={'m', 'n'})}, {value}, "
                          f"m_mask & n_mask)")

    # ---------------------------------------------------------------- the kernel
    def _operand(self, expr, mask: str, shape: str) -> str:
        value = self.emit(expr)
        dtype = self.template_member.comp.template.operand_dtype
        if expr.dtype != dtype:
            value = convert(value, dtype)
            if dtype is torch.bfloat16:
                self.helpers.add("_to_bfloat16")
        return f"tl.broadcast_to(tl.where({mask}, {value}, 0.0), {shape})"

    def _precision(self) -> str:
        dtype = self.template_member.comp.template.operand_dtype
        if dtype is torch.float32 and not torch.backends.cuda.matmul.allow_tf32:
            return ', input_precision="ieee"'
        return ""

    def dot(self, a: str, b: str) -> str:
        """``tl.dot`` of two operand blocks (bf16 through ``_dot_bf16``, see triton_ops)."""
        if self.template_member.comp.template.operand_dtype is torch.bfloat16:
            self.helpers.add("_dot_bf16")
            return f"_dot_bf16({a}, {b})"
        return f"tl.dot({a}, {b}{self._precision()})"

    def template_loop(self, header: str, setup: list, body) -> None:
        """``header`` (a ``for``) around ``setup`` lines and ``body()``'s; values that do
        not change along the loop are hoisted before it."""
        outer_lines, loop_lines, pending = self.lines, list(setup), []
        self.inner, self.pending = _Scope(loop_lines), pending
        self.lines = loop_lines
        body()
        self.lines, self.inner, self.pending = outer_lines, None, None
        self.lines += pending + [header] + ["    " + line for line in loop_lines]

    def epilogue(self, result: str) -> None:
        """Readers of the template's value see ``result`` rounded as stored; members
        written to memory are stored."""
        comp = self.template_member.comp
        if comp.buffer.dtype != torch.float32:
            rounded = self.fresh(comp.name)
            self.lines.append(f"{rounded} = {convert(convert(result, comp.buffer.dtype), torch.float32)}")
            if comp.buffer.dtype is torch.bfloat16:
                self.helpers.add("_to_bfloat16")
            result = rounded
        self.reduced[comp.name] = result
        for member in self.placed.values():
            if member.comp.name in self.kernel.stored:
                value = member.value() if member is not self.template_member else Load(comp.buffer, member.store_index)
                self.store(member, value)

    def emit_body(self) -> None:
        template = self.template_member.comp.template
        b, m, n = self.kernel.space.matmul_variables()
        left = template.operand_loads(b, m, n, indexing.var("ka", self.k))[0]
        right = template.operand_loads(b, m, n, indexing.var("kb", self.k))[1]
        self.lines += ["pid = tl.program_id(0)", "bid = tl.program_id(1) + tl.zeros([1, 1], dtype=tl.int32)",
                       "grid_n = tl.cdiv(N, BLOCK_N)", "pid_m = pid // grid_n", "pid_n = pid % grid_n",
                       "rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)[:, None]",
                       "rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)[None, :]",
                       "m_mask = rm < M", "n_mask = rn < N",
                       "tile_mn = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.int32)",
                       "tile_mk = tl.zeros([BLOCK_M, BLOCK_K], dtype=tl.int32)",
                       "tile_kn = tl.zeros([BLOCK_K, BLOCK_N], dtype=tl.int32)",
                       "acc = tl.zeros([BLOCK_M, BLOCK_N], dtype=tl.float32)"]

        def body():
            a = self._operand(left, "ka_mask", "(BLOCK_M, BLOCK_K)")
            bb = self._operand(right, "kb_mask", "(BLOCK_K, BLOCK_N)")
            self.lines.append(f"acc += {self.dot(a, bb)}")
        self.template_loop("for k_start in range(0, K, BLOCK_K):",
                           ["rka = k_start + tl.arange(0, BLOCK_K)[None, :]", "ka_mask = rka < K",
                            "rkb = k_start + tl.arange(0, BLOCK_K)[:, None]", "kb_mask = rkb < K"], body)
        self.epilogue("acc")

    def sizes(self) -> list:
        return [("M", self.m), ("N", self.n), ("K", self.k)]

    def grid(self) -> tuple:
        """Programs over (m, n) tiles and the batch; source for the wrapper where symbolic."""
        if sizes.is_static(self.m) and sizes.is_static(self.n):
            tiles = -(-self.m // self.cfg["BLOCK_M"]) * -(-self.n // self.cfg["BLOCK_N"])
        else:
            tiles = f"{sizes.blocks(self.m, self.cfg['BLOCK_M'])} * {sizes.blocks(self.n, self.cfg['BLOCK_N'])}"
        return (tiles, self.batch if sizes.is_static(self.batch) else sizes.source(self.batch))

    def description(self) -> str:
        return (f"# matmul template: {self.batch} x ({self.m} x {self.k}) @ ({self.k} x {self.n}), "
                f"{TL_DTYPES[self.template_member.comp.template.operand_dtype]} operands, float32 accumulator")

    def build(self) -> KernelSource:
        self.emit_body()
        pointers = list(self.params.values()) + list(self.stores.values())
        ints = self.sizes()
        constexprs = {k: v for k, v in self.cfg.items() if k.startswith("BLOCK")}
        reads, writes = self.traffic()
        fx_nodes = sorted((n for n in self.covered if n in self.fx_order), key=self.fx_order.get)
        body = "\n".join(self.lines)
        used = sizes.symbols_read(body)           # symbolic sizes: runtime ints (see codegen.emit.triton)
        params = [f"{b.name}_ptr" for b in pointers] + ([INDEX_ERROR_FLAG] if self.index_checks else []) + \
            [n if not sizes.is_static(v) else f"{n}: tl.constexpr" for n, v in ints] + [str(s) for s in used] + \
            [f"{n}: tl.constexpr" for n in constexprs]
        header = [f"# fx nodes: {', '.join(fx_nodes)}", f"# reads {_sizes(reads)}; writes {_sizes(writes)}"] + \
            refusal_lines(self.kernel) + [self.description()]
        lines = [line for line in self.lines                 # tiles and the batch only where used
                 if not (line.startswith(("tile_", "bid ")) and body.count(line.split(" ")[0]) == 1)]
        kernel = ["@triton.jit", f"def {self.name}({', '.join(params)}):"]
        kernel += ["    " + line for line in header + lines]
        helpers = [HELPERS[h].strip() for h in sorted(self.helpers)]
        source = "\n\n\n".join(['"""Generated by capture\'s Triton code generator."""\nimport triton\n'
                                "import triton.language as tl"] + helpers + ["\n".join(kernel)]) + "\n"
        return KernelSource(self.name, source, pointers, ints, constexprs, self.grid(), self.cfg["num_warps"],
                            fx_nodes, reads, writes, tuple(self.index_checks), num_stages=self.cfg["num_stages"],
                            fma=self.fma, size_symbols=tuple(used))


assert not TEMPLATE_NAMES & RESERVED

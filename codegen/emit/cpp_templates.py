"""The C emitter's matrix-product template: a small ``mm``/``bmm``/``addmm`` computed in
the kernel, with the pointwise work on its output fused after it (bias, activation,
residual add) — one C call instead of a library GEMM call plus a kernel.

Only small float32 products get here (``config.use_cpp_matmul_template``): there a
library call costs more than the arithmetic, and only with ``b`` contiguous along k
(``x @ w.t()`` of a linear layer; the lowering checks it). Per row of ``a`` (computed
once into a row array, prologue included), dot products along k, a few outputs at a
time with vector accumulators, fill a row of results. The epilogue runs over the finished row, vectorized along n::

    for (int64_t m = 0; m < 4; m++) {
        float l_x_row[64];
        ... l_x_row[k] = l_x_ptr[k + 64*m];
        float acc[64];
        for (int64_t nb = 0; nb < 16; nb++) {
            float dot = 0.0f, dot_1 = 0.0f, dot_2 = 0.0f, dot_3 = 0.0f;
            #pragma omp simd reduction(+:dot,dot_1,dot_2,dot_3)
            for (int64_t k = 0; k < 64; k++) {
                dot = CAPTURE_MULADD(l_x_row[k], w_ptr[k + 256*nb], dot);
                ...
            acc[4*nb] = dot; ...
        }
        #pragma omp simd
        for (int64_t n = 0; n < 64; n++) {
            const float mm = acc[n];
            ... bias, relu ...
            relu_ptr[64*m + n] = relu;

Numerics: float32 products summed in float32 like the library's sgemm, each step a
fused multiply-add where the target has one (``CAPTURE_MULADD``, one rounding, as MKL's
kernels do); the summation order (k in order, or in vector lanes) differs from the
library's blocked one, so results agree within float32 matmul tolerances (a few ulp
times sqrt(k) relative to sum |a b|), as any two GEMMs do. The pointwise epilogue and
prologue are not contracted (``-ffp-contract=off``): they round like eager.
"""
from __future__ import annotations

from codegen import config
from codegen.emit.cpp import CppKernelEmitter, Loop, index_c
from codegen.emit.cpp_lanes import CppLanesEmitter
from codegen.emit.cpp_outer import CppOuterReductionEmitter
from codegen.emit.cpp_pointwise import CppPointwiseEmitter
from codegen.ir import Load, indexing


TEMPLATES = ("matmul",)     # the template kinds this emitter has (``GraphLowering.templates``)


def emitter_for(kernel, placed, name: str, fx_order: dict) -> CppKernelEmitter:
    """The emitter for ``kernel``: the template's, the outer-reduction one (column sums),
    the rows one (with lanes of partial sums where they apply) or the pointwise one."""
    if kernel.space.template == "matmul":
        return CppMatmulEmitter(kernel, placed, name, fx_order)
    if kernel.space.is_rows:
        outer = CppOuterReductionEmitter(kernel, placed, name, fx_order)
        if outer.chunks:
            return outer
        return CppLanesEmitter(kernel, placed, name, fx_order)
    return CppPointwiseEmitter(kernel, placed, name, fx_order)


class CppMatmulEmitter(CppKernelEmitter):
    def __init__(self, kernel, placed, name, fx_order):
        super().__init__(kernel, placed, name, fx_order)
        self.taken |= {"nb", "nr"}                  # the dot form's block loops

    def loop_nest(self) -> None:
        self.batch, self.m, self.n, self.k = self.space.matmul
        self.template_member = next(p for p in self.original.values() if p.role == "template")
        self.x_loops = ([Loop("b", self.batch)] if self.batch > 1 else []) + [Loop("m", self.m), Loop("n", self.n)]
        self.r_loops = [Loop("k", self.k)]
        self.placed = dict(self.original)          # the scheduler's placement over b, m, n
        self.result = None                          # the accumulator element, in the epilogue

    def _deps_of(self, expr) -> frozenset:
        if isinstance(expr, Load) and expr.buffer.name == self.template_member.comp.buffer.name:
            return frozenset(loop.name for loop in self.x_loops)
        return super()._deps_of(expr)

    def emit(self, expr) -> str:
        if isinstance(expr, Load) and expr.buffer.name == self.template_member.comp.buffer.name:
            return self.result
        return super().emit(expr)

    def emit_body(self) -> None:
        template = self.template_member.comp.template
        b, m, n = self.space.matmul_variables()
        k = indexing.var("k", self.k)
        left = template.operand_loads(b, m, n, k)[0]
        outer = self.x_loops[:-1]
        for loop in outer:
            self.open_loop(loop)
        self._dot_rows(left, lambda column: template.operand_loads(b, m, column, k)[1])
        self._close(len(outer))

    def _dot_rows(self, left, right_at) -> None:
        """The row of ``a`` computed once
        (its prologue too), then dot products along k, ``config.CPP_MATMUL_DOT_BLOCK``
        outputs at a time (independent vector accumulators: an ``omp simd`` reduction),
        into a row of results; then the epilogue vectorized along n."""
        row = self.fresh(f"{left.label or 'a'}_row")
        self.stack[-1].lines.append(f"float {row}[{self.k}];")
        self.open_loop(self.r_loops[0], "#pragma omp simd")
        self.stack[-1].lines.append(f"{row}[k] = {self.emit(left)};")
        self._close(1)
        acc = self.fresh("acc")
        self.stack[-1].lines.append(f"float {acc}[{self.n}];")
        width = config.CPP_MATMUL_DOT_BLOCK
        blocks, rest = divmod(self.n, width)
        if blocks:
            block = indexing.var("nb", blocks)
            self._dots(row, acc, Loop("nb", blocks), [block * width + j for j in range(width)], right_at)
        if rest:
            tail = indexing.var("nr", rest)
            self._dots(row, acc, Loop("nr", rest), [tail + blocks * width], right_at)
        self._epilogue_loop(acc)

    def _dots(self, row: str, acc: str, loop: Loop, columns: list, right_at) -> None:
        """``acc[column] = sum over k of row[k] * b[k, column]`` for each of ``columns``
        (indices over ``loop``'s variable)."""
        self.open_loop(loop)
        sums = [self.fresh("dot") for _ in columns]
        self.stack[-1].lines.append(f"float {' = 0.0f, '.join(sums)} = 0.0f;")
        self.open_loop(self.r_loops[0], "#pragma omp simd")
        self.stack[-1].reductions.append(f"reduction(+:{','.join(sums)})")
        for total, column in zip(sums, columns):
            self.stack[-1].lines.append(f"{total} = CAPTURE_MULADD({row}[k], {self.emit(right_at(column))}, {total});")
        self._close(1)
        for total, column in zip(sums, columns):
            self.stack[-1].lines.append(f"{acc}[{index_c(column, {})}] = {total};")
        self._close(1)

    def _epilogue_loop(self, acc: str) -> None:
        self.open_loop(self.x_loops[-1], "#pragma omp simd")
        self.epilogue(f"{acc}[n]")
        self._close(1)

    def epilogue(self, element: str) -> None:
        """Readers of the product see ``element``; the members to keep are stored."""
        self.result = self.fresh(self.template_member.comp.name)
        self.stack[-1].lines.append(f"const float {self.result} = {element};")
        for member in self.placed.values():
            if member.comp.name in self.kernel.stored:
                value = member.value() if member is not self.template_member else \
                    Load(member.comp.buffer, member.store_index)
                self.store(member, value)

    def describe_loops(self) -> str:
        return (f"matmul template: {self.batch} x ({self.m} x {self.k}) @ ({self.k} x {self.n}), "
                f"float32 accumulator")


"""Row reductions along a contiguous row with several vector accumulators, in C.

An ``omp simd reduction(+:acc)`` keeps one vector accumulator: every step waits for the
previous add (3-4 cycles here), while loads could feed one vector per cycle. So a layer
norm's two sums over a 768-element row ran at a third of the speed of its store pass.
Here the innermost reduced loop is cut into ``(size / LANES) x LANES`` and each of the
LANES positions keeps its own partial (``config.CPP_SUM_LANES``: 32 float32 = 4 AVX2
vectors, four independent chains); the partials are combined once per row::

    float var_mean_sum_lanes[32] = {0};
    for (int64_t r0 = 0; r0 < 24; r0++) {
        #pragma omp simd
        for (int64_t r1 = 0; r1 < 32; r1++) {
            const float l_input = l_input_ptr[32*r0 + r1 + 768*x0];
            var_mean_sum_lanes[r1] += l_input;
        }
    }
    float var_mean_sum = 0.0f;
    #pragma omp simd reduction(+:var_mean_sum)
    for (int64_t l = 0; l < 32; l++) var_mean_sum += var_mean_sum_lanes[l];

Floating-point sums and max/min (NaN flags per lane too) take this form when every
reduction of the kernel is one of them, the innermost reduced loop is contiguous and a
multiple of LANES (``lane_count``); other kernels keep ``cpp.py``'s row form. The
summation order is another fixed one (lane by lane, then a fixed tree): results are
deterministic and within float32 summation tolerance of eager's.
"""
from __future__ import annotations

from codegen import config
from codegen.emit.cpp import CppKernelEmitter, Loop, _nest, index_c
from codegen.emit.cpp_ops import C_TYPES, literal
from codegen.emit.triton_ops import reduction_identity
from codegen.ir import compute_dtype, indexing, sizes

LANE_REDUCTIONS = ("sum", "max", "min")


class CppLanesEmitter(CppKernelEmitter):
    """A row kernel whose sums and max/min keep LANES partials (module docstring)."""

    def loop_nest(self) -> None:
        super().loop_nest()
        self.lanes = lane_count(self)
        if self.lanes:
            inner = self.r_loops[-1]
            self.r_loops[-1:] = [Loop(inner.name + "o", inner.size // self.lanes), Loop(inner.name + "l", self.lanes)]
            self._rename_loops()
            self.placed = self._place()

    def reduce(self, member) -> None:
        value = member.value()
        dtype, reduction = value.dtype, member.comp.reduction
        if not self.lanes or compute_dtype(member.comp.buffer.dtype) != dtype:
            return super().reduce(member)
        ctype, row = C_TYPES[dtype], self.stack[-1]
        lanes, nan_lanes = self.fresh(f"{member.comp.name}_lanes"), None
        identity = literal(reduction_identity(reduction, dtype), dtype)
        l = self.fresh("l")
        row.lines.append(f"{ctype} {lanes}[{self.lanes}];")
        row.lines.append(f"for (int64_t {l} = 0; {l} < {self.lanes}; {l}++) {lanes}[{l}] = {identity};")
        if reduction != "sum":
            nan_lanes = self.fresh(f"{member.comp.name}_nan_lanes")
            row.lines.append(f"int {nan_lanes}[{self.lanes}] = {{0}};")
        array = self._row_array(value, row)
        self._open_r_loops("")
        v, lane = self.emit(value), self.r_loops[-1].name
        body = self.stack[-1].lines
        if reduction == "sum":
            body.append(f"{lanes}[{lane}] += {v};")
        else:
            op = ">" if reduction == "max" else "<"
            body.append(f"{lanes}[{lane}] = {v} {op} {lanes}[{lane}] ? {v} : {lanes}[{lane}]; "
                        f"{nan_lanes}[{lane}] |= {v} != {v};")
        if array is not None:
            position = index_c(_nest(self.r_loops), {})
            body.append(f"{array}[{position}] = {v};")
            self.row_values[value] = (array, position)
        self._close(len(self.r_loops))
        self.reduced[member.comp.name] = self._combine(member, lanes, nan_lanes, identity, row)

    def _combine(self, member, lanes: str, nan_lanes, identity: str, row) -> str:
        """The lanes folded into one value (a fixed order: the compiler's vector tree)."""
        reduction, dtype = member.comp.reduction, member.value().dtype
        acc, l = self.fresh(member.comp.name), self.fresh("l")
        row.lines.append(f"{C_TYPES[dtype]} {acc} = {identity};")
        if reduction == "sum":
            row.lines += [f"#pragma omp simd reduction(+:{acc})",
                          f"for (int64_t {l} = 0; {l} < {self.lanes}; {l}++) {acc} += {lanes}[{l}];"]
            return acc
        nan = self.fresh(f"{acc}_nan")
        op = ">" if reduction == "max" else "<"
        row.lines += [f"int {nan} = 0;",
                      f"#pragma omp simd reduction({reduction}:{acc}) reduction(|:{nan})",
                      f"for (int64_t {l} = 0; {l} < {self.lanes}; {l}++) {{ "
                      f"{acc} = {lanes}[{l}] {op} {acc} ? {lanes}[{l}] : {acc}; {nan} |= {nan_lanes}[{l}]; }}",
                      f"if ({nan}) {acc} = {literal(float('nan'), dtype)};"]
        return acc


def lane_count(emitter: CppKernelEmitter) -> int:
    """LANES where the kernel's reductions take the lanes form, else 0."""
    if not emitter.rows or not emitter.r_loops:
        return 0
    lanes, inner = config.CPP_SUM_LANES, emitter.r_loops[-1]
    if not sizes.is_static(inner.size) or inner.size % lanes or inner.size < 2 * lanes:
        return 0
    reductions = [m for m in emitter.placed.values() if m.comp.is_reduction]
    if not reductions or any(m.comp.reduction not in LANE_REDUCTIONS or not m.value().dtype.is_floating_point
                             for m in reductions):
        return 0
    contiguous = any(coef == 1 and isinstance(atom, indexing.Var) and atom.name == inner.name
                     for index in emitter._indices() for atom, coef in index.terms.items())
    return lanes if contiguous else 0

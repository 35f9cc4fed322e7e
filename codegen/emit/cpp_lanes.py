"""Row reductions along a contiguous row with several vector accumulators, in C.

An ``omp simd reduction(+:acc)`` keeps one vector accumulator: every step waits for the
previous add (3-4 cycles here), while loads could feed one vector per cycle. So a layer
norm's two sums over a 768-element row ran at a third of the speed of its store pass.
Here the innermost reduced loop is cut into ``(size / LANES) x LANES`` and each of the
LANES positions keeps its own partial (the first of ``config.CPP_SUM_LANES`` that divides
the row: 32 float32 = 4 AVX2 vectors, four independent chains; 40 for a row of 1000);
the partials are combined once per row::

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

Every row kernel (lanes or not) also takes shortcuts where softmax's shape shows: a
division by a row's sum of ``exp(v - max(v))`` (at least 1, or NaN) is a multiplication
by its reciprocal computed once per row, as eager's softmax kernel does (the division's
throughput was a tenth of softmax's time here; the result is within 1.5 ulp of the
quotient); that float ``exp(v - max(v))`` (at most 0) is ``capture_expf_nonpositive``,
with no overflow to select (same bits); and a reduction's summands are kept only when a
later pass reads them (log_softmax sums its exps and never reads them again), in the
kernel's output where it can hold them (softmax: ``exp(v - max)`` written there while it
is summed, then scaled in place), else in a row array on the stack.
"""
from __future__ import annotations

import torch

from codegen import config
from codegen.emit.cpp import CppKernelEmitter, Loop, index_c
from codegen.emit.cpp_ops import C_TYPES, literal
from codegen.emit.triton_ops import reduction_identity
from codegen.ir import Load, Op, compute_dtype, indexing, sizes, walk

LANE_REDUCTIONS = ("sum", "max", "min")


class CppLanesEmitter(CppKernelEmitter):
    """A row kernel whose sums and max/min keep LANES partials (module docstring)."""

    def __init__(self, kernel, placed: dict, name: str, fx_order: dict):
        super().__init__(kernel, placed, name, fx_order)
        self.inverses: dict = {}          # a row's sum of exps -> its reciprocal's name

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
        kept = self._row_array(value, row)
        operand = self._output_operand(value) if kept is None else None
        self._open_r_loops("")
        v, lane = self.emit(value), self.r_loops[-1].name
        body = self.stack[-1].lines
        if reduction == "sum":
            body.append(f"{lanes}[{lane}] += {v};")
        else:
            op = ">" if reduction == "max" else "<"
            body.append(f"{lanes}[{lane}] = {v} {op} {lanes}[{lane}] ? {v} : {lanes}[{lane}]; "
                        f"{nan_lanes}[{lane}] |= {v} != {v};")
        if kept is not None:
            array, position = kept
            body.append(f"{array}[{position}] = {v};")
            self.row_values[value] = (array, position)
        if operand is not None:
            expr, (array, position) = operand
            body.append(f"{array}[{position}] = {self.emit(expr)};")
            self.row_values[expr] = (array, position)
        self._close(len(self.r_loops))
        self.reduced[member.comp.name] = self._combine(member, lanes, nan_lanes, identity, row)

    def _text(self, expr, scope):
        if isinstance(expr, Op) and expr.name == "truediv" and self._exp_sum(expr.args[1]):
            inverse = self.inverses.get(expr.args[1])
            if inverse is None:
                total = self.emit(expr.args[1])
                inverse = self.fresh(f"{total}_inverse")
                one = literal(1.0, expr.dtype)
                self.scope_for(self.deps(expr.args[1])).lines.append(f"const {C_TYPES[expr.dtype]} {inverse} = {one} / {total};")
                self.inverses[expr.args[1]] = inverse
            if expr.label:
                self.covered.add(expr.label)
            return f"{self.emit(expr.args[0])} * {inverse}", expr.label
        if isinstance(expr, Op) and expr.name == "exp" and expr.dtype is not torch.float64 and \
                self._below_max(expr.args[0]):
            if expr.label:
                self.covered.add(expr.label)
            return f"capture_expf_nonpositive({self.emit(expr.args[0])})", expr.label   # cpp_math
        return super()._text(expr, scope)

    def _exp_sum(self, expr) -> bool:
        """Is ``expr`` a row's sum of ``exp(v - max(v))`` (the max's own term is 1)?"""
        total = self._member(expr)
        if total is None or total.comp.reduction != "sum" or not expr.dtype.is_floating_point:
            return False
        summand = self._through(total.value())
        return isinstance(summand, Op) and summand.name == "exp" and self._below_max(summand.args[0])

    def _below_max(self, expr) -> bool:
        """Is ``expr`` ``v - max(v)`` over the row (at most 0, or NaN)?"""
        difference = self._through(expr)
        if not (isinstance(difference, Op) and difference.name == "sub"):
            return False
        top = self._member(difference.args[1])
        return top is not None and top.comp.reduction == "max" and \
            self._through(top.value()) == self._through(difference.args[0])

    def _member(self, expr):
        """The placed reduction member ``expr`` loads, if it is one."""
        member = self.placed.get(expr.buffer.name) if isinstance(expr, Load) else None
        return member if member is not None and member.comp.is_reduction else None

    def _through(self, expr):
        """``expr``, through loads of the kernel's own pointwise members."""
        while isinstance(expr, Load) and expr.buffer.name in self.placed and \
                not self.placed[expr.buffer.name].comp.is_reduction:
            expr = self.placed[expr.buffer.name].value()
        return expr

    def _row_array(self, value, row):
        """A row array only for summands a later pass reads (``cpp.py``'s ``_row_array``);
        the output itself where it can hold them (``_output_row``)."""
        later = [m for m in self.placed.values() if not m.comp.is_reduction and m.comp.name in self.kernel.stored]
        if not any(self._reads(m.value(), value, set()) for m in later):
            return None
        output = self._output_row(value, later)
        if output is not None and self._costly(value):
            return output
        return super()._row_array(value, row)

    def _output_operand(self, value):
        """``(expr, (pointer, position))``: a value of the kernel's one output's own pass
        (a fused pointwise member) that the summand ``value`` computes too, kept in that
        output while a costly summand is summed. log_softmax writes ``v - max`` there while
        it sums ``exp(v - max)``, then subtracts ``log(sum)`` in place: the last pass reads
        L1 instead of the input, and the output's stores overlap the exp's arithmetic."""
        later = [m for m in self.placed.values() if not m.comp.is_reduction and m.comp.name in self.kernel.stored]
        if len(later) != 1 or not self._costly(value):
            return None
        for node in walk(later[0].value()):
            member = self.placed.get(node.buffer.name) if isinstance(node, Load) else None
            if member is None or member.comp.is_reduction or member.role != "full" or member is later[0] \
                    or not self._reads(value, member.value(), set()):
                continue
            output = self._output_row(member.value(), later)
            return None if output is None else (member.value(), output)
        return None

    def _output_row(self, value, later):
        """``(pointer, position)`` of the kernel's one stored output when the summands can
        wait there for the pass that reads them: softmax writes ``exp(v - max)`` into its
        output while it sums, then scales it in place. The stores overlap the exp's
        arithmetic (a stack array is written back to the output only in the last pass) and
        the last pass reads lines still in L1. Needs the output alone in the row (no other
        output stored), of the summands' dtype, written once per position of the row
        (``_covers_row``); pointers are ``restrict``, so no input shares its memory."""
        if len(later) != 1 or later[0].role != "full" or later[0].comp.buffer.dtype is not value.dtype:
            return None
        member = later[0]
        if not self._covers_row(member.store_index):
            return None
        self.stores.setdefault(member.comp.buffer.name, member.comp.buffer)
        return f"{member.comp.buffer.name}_ptr", index_c(member.store_index, {})

    def _covers_row(self, index) -> bool:
        """Does ``index`` give every position of the row (the r loops) its own element?"""
        terms = index.affine_coefficients()
        if terms is None:
            return False
        loops = {loop.name: loop.size for loop in self.r_loops}
        strides = sorted((coef, loops[atom.name]) for atom, coef in terms.items() if atom.name in loops)
        if len(strides) != len(loops):
            return False
        span = 1
        for coef, size in strides:
            if not (sizes.is_static(coef) and sizes.is_static(size)) or coef < span:
                return False
            span = coef * size
        return True

    def _reads(self, expr, target, seen: set) -> bool:
        """Does ``expr`` compute ``target`` (through the kernel's pointwise members)?"""
        for node in walk(expr):
            if node == target:
                return True
            member = self.placed.get(node.buffer.name) if isinstance(node, Load) else None
            if member is not None and not member.comp.is_reduction and member.comp.name not in seen:
                seen.add(member.comp.name)
                if self._reads(member.value(), target, seen):
                    return True
        return False

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
    inner = emitter.r_loops[-1]
    if not sizes.is_static(inner.size):
        return 0
    lanes = next((n for n in config.CPP_SUM_LANES if inner.size % n == 0 and inner.size >= 2 * n), 0)
    if not lanes:
        return 0
    reductions = [m for m in emitter.placed.values() if m.comp.is_reduction]
    if not reductions or any(m.comp.reduction not in LANE_REDUCTIONS or not m.value().dtype.is_floating_point
                             for m in reductions):
        return 0
    contiguous = any(coef == 1 and isinstance(atom, indexing.Var) and atom.name == inner.name
                     for index in emitter._indices() for atom, coef in index.terms.items())
    return lanes if contiguous else 0

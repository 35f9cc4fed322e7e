"""Pointwise C kernels whose innermost loop runs several vectors side by side.

A fused pointwise body with transcendentals (sigmoid, tanh, erf, exp) is one long
chain of dependent operations per element: polynomial steps at 4 cycles of FMA latency,
divisions at ~11. The vectorized loop is 8 elements of that chain, and the out-of-order
window holds about two iterations of ~130 instructions: the core waits on latency while
its pipes idle (pointwise_chain ran at 3.1 ns/element while its functions alone, at full
throughput, cost 1.7).

So the innermost loop is cut into blocks of ``COPIES x WIDTH`` elements
(``config.CPP_INTERLEAVE_COPIES`` x ``config.CPP_INTERLEAVE_WIDTH``); a block's vector
loop of WIDTH lanes computes COPIES elements per lane, each statement written once per
copy before the next statement (statement-major), so COPIES independent chains sit next
to each other in program order and fill the pipes::

    for (int64_t x1b = 0; x1b < 512; x1b += 32) {
        #pragma omp simd
        for (int64_t l = 0; l < 8; l++) {
            const int64_t x1_c0 = x1b + 0 + l;
            ...
            const int64_t x1_c3 = x1b + 24 + l;
            const float add_c0 = l_x_ptr[512*x0 + x1_c0] + ...;
            ...
            const float add_c3 = l_x_ptr[512*x0 + x1_c3] + ...;
            const float tanh_c0 = capture_tanhf(add_c0);
            ...
    #pragma omp simd
    for (int64_t x1 = 512; x1 < 512; x1++) {      (the tail: today's loop body)

Every element is computed by the same operations as in the plain loop: results are
bit-identical (``tests/test_codegen_cpu_pointwise.py`` compares both forms; only which
NaN a two-NaN operation returns may differ, as the compiler orders a commutative op's
operands as it likes in either form). Only
kernels whose body calls a costly function take this form (``CppKernelEmitter._costly``:
plain arithmetic is bound by memory, not latency, and the copies cost compile time).
Measured (one thread, shared machine): pointwise_chain 3.10 -> 2.15 ns/element,
gelu(x + bias) 1.19 -> 1.03.
"""
from __future__ import annotations

import re

from codegen import config
from codegen.emit.cpp import CppKernelEmitter
from codegen.ir import sizes

# The lines of a loop body this form copies: declarations, stores and error updates.
_DECLARATION = re.compile(r"^const [A-Za-z0-9_]+ ([A-Za-z_][A-Za-z0-9_]*) = ")
_STORE_OR_ERROR = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*\[.*\] = |err \|= ).*;$")


class CppPointwiseEmitter(CppKernelEmitter):
    """A pointwise kernel whose innermost loop runs in interleaved blocks (module docstring)."""

    def emit_pointwise(self) -> None:
        self.interleaved = None
        stored = [m.value() for m in self.placed.values() if m.comp.name in self.kernel.stored]
        if self.x_loops and config.CPP_INTERLEAVE_COPIES > 1 and any(self._costly(v) for v in stored):
            self.interleaved = self.x_loops[-1]
        super().emit_pointwise()

    def close_loop(self) -> None:
        scope = self.stack[-1]
        copies = self._copies(scope) if scope.loop is self.interleaved else None
        if copies is None:
            return super().close_loop()
        self.stack.pop()
        block, lane, body = copies
        clauses = list(scope.reductions) + (["reduction(|:err)"] if scope.uses_err else [])
        simd = " ".join(["#pragma omp simd"] + clauses)
        outer = [" ".join(["#pragma omp parallel for"] + clauses)] if "parallel" in scope.pragma else []
        n, bounds, lines = scope.loop.name, [0, *scope.loop.cuts, scope.loop.size], []
        for lo, hi in zip(bounds, bounds[1:]):
            blocks, tail = _blocks(lo, hi)
            if blocks != "0":
                lines += outer + [f"for (int64_t {block} = 0; {block} < {blocks}; {block}++) {{",
                                  "    " + simd, f"    for (int64_t {lane} = 0; {lane} < {config.CPP_INTERLEAVE_WIDTH}; {lane}++) {{"]
                lines += ["        " + line.replace("@start@", f"{lo} + " if lo else "") for line in body]
                lines += ["    }", "}"]
            if tail != sizes.source(hi, "c"):
                lines += [simd, f"for (int64_t {n} = {tail}; {n} < {sizes.source(hi, 'c')}; {n}++) {{"]
                lines += ["    " + line for line in scope.lines] + ["}"]
        self.stack[-1].lines += lines

    def _copies(self, scope):
        """(block variable, lane variable, the body's lines statement-major over the
        copies; ``@start@`` stands for the segment's start), or None where the body has
        lines this form does not copy."""
        names, n = [], scope.loop.name
        for line in scope.lines:
            match = _DECLARATION.match(line)
            if match:
                names.append(match.group(1))
            elif not _STORE_OR_ERROR.match(line):
                return None
        block, lane = self.fresh(f"{n}b"), self.fresh("l")
        width, span = config.CPP_INTERLEAVE_WIDTH, config.CPP_INTERLEAVE_COPIES * config.CPP_INTERLEAVE_WIDTH
        pattern = re.compile(r"\b(" + "|".join(map(re.escape, names + [n])) + r")\b")
        renamed, lines = [], []
        for j in range(config.CPP_INTERLEAVE_COPIES):
            table = {name: self.fresh(f"{name}_c{j}") for name in names + [n]}
            lines.append(f"const int64_t {table[n]} = @start@{span}*{block} + {f'{j * width} + ' if j else ''}{lane};")
            renamed.append([pattern.sub(lambda m: table[m.group(1)], line) for line in scope.lines])
        for statement in zip(*renamed):
            lines += statement
        return block, lane, lines


def _blocks(lo: int, hi):
    """C source of the number of whole blocks in ``[lo, hi)`` and of where the tail starts.
    (Blocks are counted, not stepped over: from ``32*x1b + 24 + l`` with ``x1b < 16`` the
    compiler knows the index stays below 512, and folds a cat seam's comparison.)"""
    span = config.CPP_INTERLEAVE_COPIES * config.CPP_INTERLEAVE_WIDTH
    if sizes.is_static(hi):
        count = (hi - lo) // span
        return str(count), str(lo + count * span)
    extent = f"({sizes.source(hi, 'c')} - {lo})" if lo else f"({sizes.source(hi, 'c')})"
    return f"{extent} / {span}", f"{f'{lo} + ' if lo else ''}{extent} / {span} * {span}"

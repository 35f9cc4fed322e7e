"""Row kernels whose reductions run along an outer dimension (column sums), in C.

A bias gradient sums a ``rows x cols`` tensor over its rows: each column's summands lie
one row (``cols`` elements) apart. The row form of ``cpp.py`` puts the columns outside
and walks each column down the rows, a strided walk per output. Here the rows go
outside and the columns inside, contiguous and vectorized, each column adding into its
own partial sum::

    float sum_3_part[8][512];                 (8 chunks of rows x 512 columns)
    #pragma omp parallel for
    for (int64_t r0 = 0; r0 < 8; r0++) {      (chunk r0: rows 32*r0 .. 32*r0 + 31)
        for (i ...) sum_3_part[r0][i] = 0.0f;
        for (int64_t r1 = 0; r1 < 32; r1++) {
            #pragma omp simd
            for (int64_t x0 = 0; x0 < 512; x0++) {
                ... mul_16 = mm * add_9 ...
                sum_3_part[r0][x0] += mul_16;
                view_21_ptr[512*r1 + 16384*r0 + x0] = mul_16;      (full-size stores: same pass)
    #pragma omp simd
    for (int64_t x0 = 0; x0 < 512; x0++) {    (the chunks combined, in chunk order)
        float sum_3 = sum_3_part[0][x0];
        for (int64_t c = 1; c < 8; c++) sum_3 += sum_3_part[c][x0];
        sum_3_ptr[x0] = sum_3;

The first reduced loop is cut into a fixed number of chunks (``config.CPP_OUTER_CHUNKS``,
a divisor of its size): the chunks are OpenMP's unit of work, and the partial sums are
combined in chunk order, so the result depends on the shapes only, never on the
thread count or on which thread ran which chunk. Full-size values that read a finished
reduction are stored by a third pass (rows outside again).

Used for sum reductions (any dtype) with static sizes, when no reduction reads another,
the partial sums fit ``config.CPP_OUTER_PARTIALS_MAX_BYTES`` of stack, and more of the
kernel's accesses are contiguous along the columns than along the reduced rows
(``outer_chunks``).
"""
from __future__ import annotations

from codegen import config
from codegen.emit.cpp import CppKernelEmitter, Loop, _nest, index_c
from codegen.emit.cpp_ops import C_TYPES, convert
from codegen.ir import Load, compute_dtype, indexing, sizes, walk


class CppOuterReductionEmitter(CppKernelEmitter):
    """The row kernel's members emitted with the reduced loops outside (module docstring)."""

    def __init__(self, kernel, placed, name, fx_order):
        super().__init__(kernel, placed, name, fx_order)
        self.chunks = outer_chunks(self)
        if self.chunks:
            self._cut_chunks()

    def _cut_chunks(self) -> None:
        """The first reduced loop as (chunk, row in chunk); the placement rebuilt over them."""
        first = self.r_loops[0]
        if first.size == self.chunks:
            return                                   # one row per chunk: the loop as it is
        self.r_loops[0:1] = [Loop(first.name + "c", self.chunks), Loop(first.name + "w", first.size // self.chunks)]
        self._rename_loops()
        self.taken |= {loop.name for loop in self.r_loops}
        self.placed = self._place()

    def describe_loops(self) -> str:
        columns = " x ".join(str(loop.size) for loop in self.x_loops) or "1"
        rows = " x ".join(str(loop.size) for loop in self.r_loops)
        return f"loops: reduced {rows} outside ({self.chunks} chunks of partial sums), columns {columns} inside"

    # ---------------------------------------------------------------- the passes
    def emit_body(self) -> None:
        reductions = [m for m in self.placed.values() if m.comp.is_reduction]
        stored = [m for m in self.placed.values() if m.comp.name in self.kernel.stored and not m.comp.is_reduction]
        late = [m for m in stored if m.role == "full" and self._reads_reduction(m.value())]
        early = [m for m in stored if m.role == "full" and m not in late]
        column = index_c(_nest(self.x_loops), {})
        partials = {m.comp.name: self._declare_partials(m) for m in reductions}
        work = self.space.xnumel * self.space.rnumel
        self.parallel = self.chunks > 1 and work >= config.CPP_PARALLEL_MIN_ELEMENTS
        self._open_nest(self.r_loops[:1], parallel=self.parallel)
        chunk = self.r_loops[0].name
        for m in reductions:
            self._zero_row(partials[m.comp.name], chunk)
        self._open_nest(self.r_loops[1:] + self.x_loops, parallel=False)
        for m in reductions:
            value = self.emit(m.value())
            self.stack[-1].lines.append(f"{partials[m.comp.name]}[{chunk}][{column}] += {value};")
        for m in early:
            self.store(m, m.value())
        self._close(len(self.r_loops) + len(self.x_loops))
        self._combine(reductions, partials, column, stored, keep=bool(late))
        if late:
            self._open_nest(self.r_loops, parallel=self.parallel)
            self._open_nest(self.x_loops, parallel=False)
            for m in late:
                self.store(m, m.value())
            self._close(len(self.r_loops) + len(self.x_loops))

    def _declare_partials(self, member) -> str:
        array = self.fresh(f"{member.comp.name}_part")
        self.stack[0].lines.append(f"{C_TYPES[member.value().dtype]} {array}[{self.chunks}][{self.space.xnumel}];")
        return array

    def _zero_row(self, array: str, chunk: str) -> None:
        i = self.fresh("i")
        self.stack[-1].lines.append(f"for (int64_t {i} = 0; {i} < {self.space.xnumel}; {i}++) {array}[{chunk}][{i}] = 0;")

    def _open_nest(self, loops: list, parallel: bool) -> None:
        """Open ``loops``: the first an OpenMP loop if ``parallel``, the innermost x loop ``omp simd``."""
        for k, loop in enumerate(loops):
            pragma = ""
            if k == 0 and parallel:
                pragma = "#pragma omp parallel for"
            elif loop is self.x_loops[-1]:
                pragma = "#pragma omp simd"
            self.open_loop(loop, pragma)

    def _combine(self, reductions, partials, column: str, stored, keep: bool) -> None:
        """Per column: the chunks' partial sums added in chunk order; the reductions and
        the per-column members stored. ``keep``: the sum is written back to chunk 0's row
        for the pass that reads it."""
        self._open_nest(self.x_loops, parallel=False)
        scope = self.stack[-1]
        for m in reductions:
            array, dtype = partials[m.comp.name], m.value().dtype
            acc, c = self.fresh(m.comp.name), self.fresh("c")
            scope.lines.append(f"{C_TYPES[dtype]} {acc} = {array}[0][{column}];")
            if self.chunks > 1:
                scope.lines.append(f"for (int64_t {c} = 1; {c} < {self.chunks}; {c}++) {acc} += {array}[{c}][{column}];")
            if keep:
                scope.lines.append(f"{array}[0][{column}] = {acc};")
            target = compute_dtype(m.comp.buffer.dtype)
            if dtype != target:
                converted = self.fresh(f"{acc}_value")
                scope.lines.append(f"const {C_TYPES[target]} {converted} = {convert(acc, target)};")
                acc = converted
            self.reduced[m.comp.name] = acc
            if m.comp.name in self.kernel.stored:
                self.store(m, Load(m.comp.buffer, m.store_index))
        for m in stored:
            if m.role == "row":
                self.store(m, m.value())
        self._close(len(self.x_loops))
        for m in reductions:                     # the third pass reads chunk 0's row
            target = compute_dtype(m.comp.buffer.dtype)
            self.reduced[m.comp.name] = convert(f"{partials[m.comp.name]}[0][{column}]", target) \
                if m.value().dtype != target else f"{partials[m.comp.name]}[0][{column}]"

    def _reads_reduction(self, expr, seen=None) -> bool:
        """Does ``expr`` (through the fused members it reads) read a reduction of this kernel?"""
        seen = set() if seen is None else seen
        for node in walk(expr):
            member = self.placed.get(node.buffer.name) if isinstance(node, Load) else None
            if member is None or member.comp.name in seen:
                continue
            if member.comp.is_reduction:
                return True
            seen.add(member.comp.name)
            if self._reads_reduction(member.value(), seen):
                return True
        return False


def outer_chunks(emitter: CppKernelEmitter) -> int:
    """How many chunks the outer form cuts the rows into, or 0 where the row form stays."""
    if not emitter.rows or not emitter.x_loops or not emitter.r_loops:
        return 0
    loops = emitter.x_loops + emitter.r_loops
    if not all(sizes.is_static(loop.size) for loop in loops):
        return 0
    reductions = [m for m in emitter.placed.values() if m.comp.is_reduction]
    if not reductions or any(m.comp.reduction != "sum" or emitter._reads_reduction(m.value()) for m in reductions):
        return 0
    if not _columns_contiguous(emitter):
        return 0
    row_bytes = sum(emitter.space.xnumel * m.value().dtype.itemsize for m in reductions)
    first = emitter.r_loops[0].size
    for chunks in range(min(config.CPP_OUTER_CHUNKS, first), 0, -1):
        if first % chunks == 0 and chunks * row_bytes <= config.CPP_OUTER_PARTIALS_MAX_BYTES:
            return chunks
    return 0


def _columns_contiguous(emitter) -> bool:
    """Of the accesses that walk the reduced loops, more step by one element along the
    innermost column loop than along the innermost reduced loop."""
    x, r = emitter.x_loops[-1].name, emitter.r_loops[-1].name
    reduced = {loop.name for loop in emitter.r_loops}
    along_x = along_r = 0
    for index in emitter._indices():
        if not reduced & {v.name for v in index.variables()}:
            continue
        coefs = {atom.name: coef for atom, coef in index.terms.items() if isinstance(atom, indexing.Var)}
        along_x += coefs.get(x) == 1
        along_r += coefs.get(r) == 1
    return along_x > along_r

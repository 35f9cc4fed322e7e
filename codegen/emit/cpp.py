"""Emit the C source of one kernel for CPU tensors, from the same placement as Triton's.

A kernel's iteration space (``scheduler.Space``: a flat ``x``, and ``r`` for row
kernels) becomes a nest of C loops. ``x`` is split into one loop per dimension of the
first stored member's memory order (``r`` into the reduced dims), the members' indices
are rebuilt over those loop variables, and the index simplifier turns the flat
``x // 1024 % 16`` into plain ``x1``. Adjacent loops that every access walks as one
(``coef(outer) == coef(inner) * size(inner)``) merge back, so an elementwise op on
contiguous tensors is one loop and a bias add is ``rows x cols``::

    #pragma omp parallel for            (only past config.CPP_PARALLEL_MIN_ELEMENTS)
    for (int64_t x0 = 0; x0 < 256; x0++) {
        #pragma omp simd
        for (int64_t x1 = 0; x1 < 512; x1++) {
            const float addmm = addmm_ptr[512*x0 + x1];
            const float bias = bias_ptr[x1];
            ...
            out_ptr[512*x0 + x1] = gelu;

Every value is emitted once, in the outermost loop where all the loop variables it
depends on are bound (a per-channel batch-norm scale is computed once per channel, not
per pixel). Row kernels run one row per outer iteration: one inner loop per reduction
(an ``omp simd reduction`` — vector accumulators), then one loop storing the full-size
values, recomputing pointwise values rather than keeping a row buffer. The innermost
loops are ``#pragma omp simd`` (``cpp_pointwise`` runs several vectors side by side).

A row lives in L1/L2 while its thread works on it, so each reduction is simply its own
pass over the row (where Triton's looped rows use an online softmax to save a pass over
device memory, the extra pass here reads cache); var/var_mean are two-pass in the IR.

A kernel is a function ``int64_t name(pointers...)`` returning an error word: indices
out of range and integer division by zero set bits, and the wrapper raises like eager.
Static sizes and strides are literals: ``Loop.size`` and the index coefficients are the
only places they enter the source. A symbolic size (dynamic shapes, ``codegen.ir.sizes``)
is printed as its expression over size symbols, each an ``int64_t`` parameter after the
pointers (``for (int64_t x0 = 0; x0 < 768*s0; x0++)``); the wrapper passes the values it
read from the inputs' sizes.
"""
from __future__ import annotations

import dataclasses

import torch

from codegen import config
from codegen.emit.cpp_ops import C_TYPES, OPS, STORAGE_TYPES, convert, literal
from codegen.emit.triton_ops import reduction_identity
from codegen.ir import Const, IndexCheck, IndexValue, Load, Op, compute_dtype, in_range, indexing, sizes, unique_name, walk
from codegen.schedule.scheduler import Placed, member_index, varies
from codegen.stats import format_bytes

_LIBM_NAMES = {"exp", "exp2", "log", "log2", "sin", "cos", "erf", "tanh", "log1p", "expm1", "pow", "sqrt", "fabs",
               "floor", "ceil", "trunc", "rint", "fmod", "memcpy"}
RESERVED = _LIBM_NAMES | {n + "f" for n in _LIBM_NAMES} | {"err", "int64_t", "int32_t", "float", "double", "bool", "const", "restrict", "return", "for", "if",
            "else", "int", "char", "long", "short", "unsigned", "signed", "void", "static", "inline", "NAN",
            "INFINITY", "_Float16", "uint16_t", "uint8_t", "int8_t", "int16_t"}
ERROR_OPS = {"div_floor_int", "div_trunc_int"}       # integer helpers taking &err
# A reduction's summands computed with these are kept in a row array for later passes.
ROW_VALUE_OPS = {"exp", "exp2", "log", "log2", "tanh", "erf", "sigmoid", "pow", "pow_tensor", "sin", "cos",
                 "log1p", "expm1"}


@dataclasses.dataclass
class Loop:
    name: str
    size: int
    cuts: tuple = ()            # run as one loop per segment between these (``_cut_points``)


@dataclasses.dataclass
class CppKernelSource:
    name: str
    source: str                 # the C function (the graph's translation unit adds the prelude)
    pointer_args: list          # Buffers, in parameter order
    fx_nodes: list
    reads: dict                 # buffer name -> modeled bytes
    writes: dict
    index_checks: tuple = ()    # ops whose indices the kernel checks
    elements: int = 0           # iterations of the whole space (0: nothing to run)
    may_fail: bool = False      # returns a non-zero error word on bad indices or division by zero
    size_symbols: tuple = ()    # size symbols passed after the pointers (int64_t), see the module docstring

    @property
    def bytes_moved(self) -> int:
        return sum(self.reads.values()) + sum(self.writes.values())


class _Scope:
    def __init__(self, bound: frozenset, loop: Loop | None = None, pragma: str = ""):
        self.bound, self.loop, self.pragma = bound, loop, pragma
        self.lines: list = []
        self.cache: dict = {}
        self.uses_err = False
        self.reductions: list = []          # extra "reduction(op:var)" clauses of this loop's pragma


def index_c(index: indexing.Index, names: dict) -> str:
    """C source of an index (``names`` maps Gathered atoms to the temporaries holding them).
    Emitted ``/`` and ``%`` only see non-negative operands (checked where it matters)."""
    parts = []
    for atom, coef in index.terms.items():
        text = _atom_c(atom, names)
        parts.append(text if coef == 1 else f"-{text}" if coef == -1 else f"{_factor_c(coef)}*{text}")
    if index.const != 0 or not parts:
        parts.append(sizes.source(index.const, "c"))
    return " + ".join(parts).replace("+ -", "- ")


def _atom_c(atom, names) -> str:
    if isinstance(atom, indexing.Var):
        return atom.name
    if isinstance(atom, indexing.Gathered):
        return f"(int64_t){names[atom]}"
    inner = index_c(atom.expr, names)
    op = "/" if isinstance(atom, indexing.FloorDiv) else "%"
    return f"(({inner}) {op} {_factor_c(atom.divisor)})"


def _factor_c(size) -> str:
    text = sizes.source(size, "c")
    return text if sizes.is_static(size) else f"({text})"


def _nest(loops: list) -> indexing.Index:
    """The flat position of a loop nest (the outer loop varies slowest)."""
    total, stride = indexing.const(0), 1
    for loop in reversed(loops):
        total = total + indexing.var(loop.name, loop.size) * stride
        stride *= loop.size
    return total


class CppKernelEmitter:
    def __init__(self, kernel, placed: dict, name: str, fx_order: dict):
        self.kernel, self.name, self.fx_order = kernel, name, fx_order
        self.space = kernel.space
        self.rows = self.space.is_rows
        self.original = placed
        self.loop_nest()
        self.row_vars = frozenset(loop.name for loop in self.x_loops)
        self.stack = [_Scope(frozenset())]
        self.taken = set(RESERVED) | {f"{m.name}_ptr" for m in kernel.members} | {str(s) for s in sizes.known_symbols()}
        self.taken |= {loop.name for loop in self.x_loops + self.r_loops}
        self.params: dict = {}
        self.stores: dict = {}
        self.loads_seen: dict = {}
        self.covered: set = set(kernel.fx_nodes)
        self.reduced: dict = {}
        self.row_values: dict = {}        # Expr -> (row array, position): summands kept for later passes
        self.index_checks: list = []
        self.may_fail = False
        self._deps: dict = {}

    # ---------------------------------------------------------------- the loop nest
    def loop_nest(self) -> None:
        """``x_loops``, ``r_loops`` and the members ``placed`` over them."""
        x_sizes, r_sizes = self._factors()
        self.x_loops = [Loop(f"x{i}", s) for i, s in enumerate(x_sizes)]
        self.r_loops = [Loop(f"r{i}", s) for i, s in enumerate(r_sizes)]
        self.placed = self._place()
        self._split_loops()
        self._merge_loops()

    def _factors(self):
        """Loop sizes for x (and r): the first stored member's dims in memory order."""
        if self.rows:
            return list(self.space.x_dims), list(self.space.r_dims)
        members = [p for p in self.original.values() if p.comp.name in self.kernel.stored] or \
            list(self.original.values())
        buffer = members[0].comp.buffer
        order = sorted(range(len(buffer.shape)), key=lambda d: -sizes.hint(buffer.stride[d]))
        return [buffer.shape[d] for d in order if buffer.shape[d] != 1], []

    def _place(self) -> dict:
        """The members placed over the loop variables instead of the flat x and r."""
        mapping = {}
        if varies(self.space.xnumel):
            mapping[indexing.Var("x", self.space.xnumel)] = _nest(self.x_loops)
        if self.rows and varies(self.space.rnumel):
            mapping[indexing.Var("r", self.space.rnumel)] = _nest(self.r_loops)
        placed = {}
        for name, p in self.original.items():
            role, index = member_index(p.comp, self.space)
            index = [i.substitute(mapping) for i in index]
            placed[name] = Placed(p.comp, role, index, p.comp.store_index(index))
        return placed

    def _indices(self) -> list:
        found = []
        for p in self.placed.values():
            found.append(p.store_index)
            for node in walk(p.value()):
                if isinstance(node, (Load, IndexValue)):
                    found.append(node.index)
        return found

    def _split_loops(self) -> None:
        """Split a loop wherever an access divides it (``x // 64``, ``x % 64`` of a loop of
        256: a reshape of a permuted view) into an outer and an inner loop, so every
        access is affine in the loops again; then rebuild the placement."""
        for _ in range(config.CPP_MAX_LOOP_SPLITS):
            divisors = {}
            for index in self._indices():
                for atom in _division_atoms(index):
                    inner = atom.expr
                    if len(inner.terms) == 1 and not inner.const:
                        (var, coef), = inner.terms.items()
                        if isinstance(var, indexing.Var) and coef == 1 and _splits(var.size, atom.divisor):
                            divisors.setdefault(var.name, atom.divisor)
            if not divisors:
                return
            for loops in (self.x_loops, self.r_loops):
                for k in reversed(range(len(loops))):
                    d = divisors.get(loops[k].name)
                    if d:
                        loops[k:k + 1] = [Loop(loops[k].name + "o", sizes.quotient(loops[k].size, d)),
                                          Loop(loops[k].name + "i", d)]
            self._rename_loops()
            self.placed = self._place()

    def _rename_loops(self) -> None:
        for group, prefix in ((self.x_loops, "x"), (self.r_loops, "r")):
            for k, loop in enumerate(group):
                loop.name = f"{prefix}{k}"

    def _merge_loops(self) -> None:
        """Merge adjacent loops every access walks as one (then rebuild the placement)."""
        table = []
        for index in self._indices():
            nested = set()
            for atom in index.terms:
                if not isinstance(atom, indexing.Var):
                    nested |= {v.name for v in Index_variables(atom)}
            table.append(({a.name: c for a, c in index.terms.items() if isinstance(a, indexing.Var)}, nested))
        changed = False
        for loops in (self.x_loops, self.r_loops):
            i = len(loops) - 2
            while i >= 0:
                outer, inner = loops[i], loops[i + 1]
                if all(outer.name not in nested and inner.name not in nested and
                       coefs.get(outer.name, 0) == coefs.get(inner.name, 0) * inner.size
                       for coefs, nested in table):
                    for coefs, _ in table:
                        coefs.pop(outer.name, None)
                    loops[i:i + 2] = [Loop(inner.name, outer.size * inner.size)]
                    changed = True
                i -= 1
        if changed:
            self._rename_loops()
            self.placed = self._place()

    # ---------------------------------------------------------------- scopes
    def open_loop(self, loop: Loop, pragma: str = "") -> None:
        parent = self.stack[-1]
        self.stack.append(_Scope(parent.bound | {loop.name}, loop, pragma))

    def close_loop(self) -> None:
        scope = self.stack.pop()
        pragma = scope.pragma
        clauses = list(scope.reductions) + (["reduction(|:err)"] if scope.uses_err and pragma else [])
        n, bounds, lines = scope.loop.name, [0, *scope.loop.cuts, scope.loop.size], []
        for lo, hi in zip(bounds, bounds[1:]):
            lines += [f"{pragma} {' '.join(clauses)}".rstrip()] if pragma else []
            lines.append(f"for (int64_t {n} = {lo}; {n} < {sizes.source(hi, 'c')}; {n}++) {{")
            lines += ["    " + line for line in scope.lines]
            lines.append("}")
        self.stack[-1].lines += lines

    def scope_for(self, deps) -> _Scope:
        for scope in self.stack:
            if deps <= scope.bound:
                return scope
        raise AssertionError(f"value needs loop variables {sorted(deps)} outside the open loops")

    def mark_err(self, scope) -> None:
        self.may_fail = True
        for s in self.stack[:self.stack.index(scope) + 1]:      # the loops around the update
            s.uses_err = True

    def fresh(self, hint) -> str:
        return unique_name(hint if hint and hint.isidentifier() else "tmp", self.taken)

    # ---------------------------------------------------------------- expressions
    def deps(self, expr) -> frozenset:
        found = self._deps.get(expr)
        if found is None:
            found = self._deps[expr] = self._deps_of(expr)
        return found

    def _deps_of(self, expr) -> frozenset:
        if isinstance(expr, Load) and expr.buffer.name in self.placed:
            member = self.placed[expr.buffer.name]
            return self.row_vars if member.comp.is_reduction else self.deps(member.value())
        own = set()
        if isinstance(expr, (Load, IndexValue)):
            own = {v.name for v in expr.index.variables()}
        for child in expr.children():
            own |= self.deps(child)
        return frozenset(own)

    def emit(self, expr) -> str:
        if isinstance(expr, Const):
            return literal(expr.value, expr.dtype)
        scope = self.scope_for(self.deps(expr))
        cached = scope.cache.get(expr)
        if cached is not None:
            return cached
        if expr in self.row_values and {loop.name for loop in self.r_loops} <= scope.bound:
            array, position = self.row_values[expr]          # kept by an earlier pass over this row
            name = self.fresh(f"{array}_value")
            scope.lines.append(f"const {C_TYPES[expr.dtype]} {name} = {array}[{position}];")
        elif isinstance(expr, Load) and expr.buffer.name in self.placed:
            member = self.placed[expr.buffer.name]
            name = self.reduced[member.comp.name] if member.comp.is_reduction else self.emit(member.value())
        elif isinstance(expr, IndexCheck):
            name = self._index_check(expr, scope)
        else:
            text, hint = self._text(expr, scope)
            name = self.fresh(hint)
            scope.lines.append(f"const {C_TYPES[expr.dtype]} {name} = {text};")
        scope.cache[expr] = name
        return name

    def _text(self, expr, scope):
        if isinstance(expr, Load):
            return self._load(expr), expr.label or expr.buffer.name
        if isinstance(expr, IndexValue):
            names = {g: self.emit(g.value) for g in expr.index.gathered()}
            return f"({C_TYPES[expr.dtype]})({index_c(expr.index, names)})", None
        if expr.label:
            self.covered.add(expr.label)
        if expr.name in ERROR_OPS or (expr.name in ("remainder", "fmod") and not expr.dtype.is_floating_point):
            self.mark_err(scope)
        args = [self.emit(a) for a in expr.args]
        hint = f"{args[0]}_in_range" if expr.name == "in_range" else expr.label
        return OPS[expr.name](*args, expr.attrs, expr.dtype), hint

    def _load(self, expr) -> str:
        buffer = expr.buffer
        self.params.setdefault(buffer.name, buffer)
        self.loads_seen.setdefault(buffer.name, set()).add(expr.index)
        if expr.label:
            self.covered.add(expr.label)
        names = {g: self.emit(g.value) for g in expr.index.gathered()}
        element = self._read(buffer, index_c(expr.index, names))
        if expr.is_direct():
            return element
        conditions = [self.emit(test) for test in in_range(expr.index.gathered())]
        if expr.predicate is not None:
            conditions.append(self.emit(expr.predicate))
        return f"({' && '.join(conditions)}) ? {element} : 0"

    @staticmethod
    def _read(buffer, offset: str) -> str:
        element = f"{buffer.name}_ptr[{offset}]"
        if buffer.dtype is torch.bfloat16:
            return f"capture_bf16_to_float({element})"
        if buffer.dtype is torch.float16:
            return f"(float){element}"
        return element

    def _index_check(self, check, scope) -> str:
        """Flag an index out of range (where the predicate holds) in the outermost loop knowing the tests."""
        value = self.emit(check.value)
        tests, conditions = " && ".join(self.emit(t) for t in check.tests), list(check.tests)
        bad = f"!({tests})"
        if check.predicate is not None:
            bad, conditions = f"{self.emit(check.predicate)} && {bad}", conditions + [check.predicate]
        scope = self.scope_for(frozenset().union(*(self.deps(c) for c in conditions)))
        scope.lines.append(f"err |= ({bad}) ? CAPTURE_INDEX_ERROR : 0;")
        self.mark_err(scope)
        if check.what not in self.index_checks:
            self.index_checks.append(check.what)
        return value

    # ---------------------------------------------------------------- stores
    def store(self, member, value_expr) -> None:
        buffer = member.comp.buffer
        value = self.emit(value_expr)
        self.stores.setdefault(buffer.name, buffer)
        if buffer.dtype is torch.bfloat16:
            value = f"capture_float_to_bf16({value})"
        elif buffer.dtype is torch.float16:
            value = f"(_Float16)({value})"
        elif value_expr.dtype != buffer.dtype:
            value = convert(value, buffer.dtype)
        index = member.store_index
        deps = self.deps(value_expr) | {v.name for v in index.variables()}
        self.scope_for(frozenset(deps)).lines.append(f"{buffer.name}_ptr[{index_c(index, {})}] = {value};")

    # ---------------------------------------------------------------- kernel bodies
    def _open_x_loops(self, innermost_simd: bool) -> None:
        work = sizes.hint(self.space.xnumel * self.space.rnumel)        # this call's size: a heuristic
        parallel = work >= config.CPP_PARALLEL_MIN_ELEMENTS
        for k, loop in enumerate(self.x_loops):
            last = k == len(self.x_loops) - 1
            pragma = ""
            if k == 0 and parallel and varies(loop.size):
                pragma = "#pragma omp parallel for" + (" simd" if last and innermost_simd else "")
            elif last and innermost_simd:
                pragma = "#pragma omp simd"
            self.open_loop(loop, pragma)

    def _close(self, n: int) -> None:
        for _ in range(n):
            self.close_loop()

    def emit_pointwise(self) -> None:
        if self.x_loops:
            self.x_loops[-1].cuts = _cut_points([m.value() for m in self.placed.values()], self.x_loops[-1])
        self._open_x_loops(innermost_simd=True)
        for member in self.placed.values():
            if member.comp.name in self.kernel.stored:
                self.store(member, member.value())
        self._close(len(self.x_loops))

    def emit_rows(self) -> None:
        self._open_x_loops(innermost_simd=False)
        for member in self.placed.values():
            if member.comp.is_reduction:
                self.reduce(member)
                if member.comp.name in self.kernel.stored:
                    self.store(member, Load(member.comp.buffer, member.store_index))
        full = [m for m in self.placed.values() if m.role == "full" and not m.comp.is_reduction
                and m.comp.name in self.kernel.stored]
        if full:
            self._open_r_loops("")
            for m in full:
                self.store(m, m.value())
            self._close(len(self.r_loops))
        for member in self.placed.values():
            if member.role == "row" and member.comp.name in self.kernel.stored:
                self.store(member, member.value())
        self._close(len(self.x_loops))

    def _open_r_loops(self, reduction_clause: str | None) -> None:
        """Open the r loops; the innermost is ``omp simd`` (with ``reduction_clause``) unless None."""
        for k, loop in enumerate(self.r_loops):
            simd = k == len(self.r_loops) - 1 and reduction_clause is not None
            self.open_loop(loop, "#pragma omp simd" if simd else "")
            if simd and reduction_clause:
                self.stack[-1].reductions.append(reduction_clause)

    def reduce(self, member) -> None:
        value = member.value()
        dtype, reduction = value.dtype, member.comp.reduction
        ctype = C_TYPES[dtype]
        acc = self.fresh(member.comp.name)
        row = self.stack[-1]
        row.lines.append(f"{ctype} {acc} = {literal(reduction_identity(reduction, dtype), dtype)};")
        finish = []
        if reduction in ("argmax", "argmin"):
            index = self.fresh(f"{acc}_index")
            row.lines.append(f"int64_t {index} = 0;")
            self._open_r_loops(None)
            v = self.emit(value)
            better = ">" if reduction == "argmax" else "<"
            position = index_c(_nest(self.r_loops), {}) if self.r_loops else "0"
            nan = f" || ({v} != {v} && {acc} == {acc})" if dtype.is_floating_point else ""
            self.stack[-1].lines.append(f"if ({v} {better} {acc}{nan}) {{ {acc} = {v}; {index} = {position}; }}")
            self._close(len(self.r_loops))
            self.reduced[member.comp.name] = index
            return
        nan_flag = None
        if reduction == "sum":
            clause, update = f"reduction(+:{acc})", f"{acc} += {{v}};"
        elif reduction == "prod":
            clause, update = f"reduction(*:{acc})", f"{acc} *= {{v}};"
        else:
            op = ">" if reduction == "max" else "<"
            clause, update = f"reduction({reduction}:{acc})", f"{acc} = {{v}} {op} {acc} ? {{v}} : {acc};"
            if dtype.is_floating_point:
                nan_flag = self.fresh(f"{acc}_nan")
                row.lines.append(f"int {nan_flag} = 0;")
                clause += f" reduction(|:{nan_flag})"
                update += f" {nan_flag} |= {{v}} != {{v}};"
                finish.append(f"if ({nan_flag}) {acc} = {literal(float('nan'), dtype)};")
        kept = self._row_array(value, row)
        self._open_r_loops(clause)
        v = self.emit(value)
        self.stack[-1].lines.append(update.format(v=v))
        if kept is not None:
            array, position = kept
            self.stack[-1].lines.append(f"{array}[{position}] = {v};")
            self.row_values[value] = (array, position)
        self._close(len(self.r_loops))
        row.lines += finish
        target = compute_dtype(member.comp.buffer.dtype)
        if dtype != target:                          # any/all count in int32
            converted = self.fresh(f"{acc}_value")
            row.lines.append(f"const {C_TYPES[target]} {converted} = {convert(acc, target)};")
            acc = converted
        self.reduced[member.comp.name] = acc

    def _row_array(self, value, row):
        """``(array, position)``: a row-long array keeping a reduction's summands when they are worth
        keeping: ``exp(v - max)`` is summed, then divided by the sum — read back, not recomputed."""
        if not self._costly(value) or not self.r_loops or not sizes.is_static(self.space.rnumel) \
                or self.space.rnumel > config.CPP_ROW_VALUES_MAX:
            return None
        array = self.fresh(f"{value.label or 'row'}_row")
        row.lines.append(f"{C_TYPES[value.dtype]} {array}[{self.space.rnumel}];")
        return array, index_c(_nest(self.r_loops), {})

    def _costly(self, expr, seen=None) -> bool:
        """Does ``expr`` (through the fused members it reads) call a costly function?"""
        seen = set() if seen is None else seen
        for node in walk(expr):
            if isinstance(node, Op) and node.name in ROW_VALUE_OPS:
                return True
            member = self.placed.get(node.buffer.name) if isinstance(node, Load) else None
            if member is not None and not member.comp.is_reduction and member.comp.name not in seen:
                seen.add(member.comp.name)
                if self._costly(member.value(), seen):
                    return True
        return False

    # ---------------------------------------------------------------- assembly
    def emit_body(self) -> None:
        self.emit_rows() if self.rows else self.emit_pointwise()

    def describe_loops(self) -> str:
        shape = " x ".join(str(loop.size) for loop in self.x_loops) or "1"
        if self.rows:
            shape = f"rows {shape}, reduced {' x '.join(str(loop.size) for loop in self.r_loops) or '1'}"
        return f"loops: {shape}"

    def build(self) -> CppKernelSource:
        self.emit_body()
        root = self.stack[0]
        pointers = list(self.params.values()) + [b for n, b in self.stores.items() if n not in self.params]
        params = [f"const {STORAGE_TYPES[b.dtype]}* restrict {b.name}_ptr" for b in self.params.values()]
        params += [f"{STORAGE_TYPES[b.dtype]}* restrict {b.name}_ptr" for b in pointers[len(self.params):]]
        used = sizes.symbols_read("\n".join(root.lines))
        params += [f"const int64_t {s}" for s in used]
        reads, writes = self.traffic()
        fx_nodes = sorted((n for n in self.covered if n in self.fx_order), key=self.fx_order.get)
        header = [f"/* fx nodes: {', '.join(fx_nodes)}",
                  f"   reads {_sizes(reads)}; writes {_sizes(writes)}",
                  f"   {self.describe_loops()} */"]
        body = ["int64_t err = 0;"] + root.lines + ["return err;"]
        text = "\n".join(header + [f"int64_t {self.name}({', '.join(params) or 'void'}) {{"]
                         + ["    " + line for line in body] + ["}"]) + "\n"
        return CppKernelSource(self.name, text, pointers, fx_nodes, reads, writes, tuple(self.index_checks),
                               self.space.xnumel * self.space.rnumel, self.may_fail, tuple(used))

    def traffic(self):
        """Modeled bytes read and written (at this call's sizes where they are symbolic)."""
        extents = {loop.name: loop.size for loop in self.x_loops + self.r_loops}
        reads = {}
        for name, indices in self.loads_seen.items():
            buffer = self.params[name]
            touched = 0
            for index in indices:
                n = 1
                for v in index.variables():
                    n *= sizes.hint(extents.get(v.name, v.size))
                touched += n
            reads[name] = min(touched, max(sizes.hint(buffer.extent), 1)) * buffer.dtype.itemsize
        writes = {name: sizes.hint(buffer.nbytes) for name, buffer in self.stores.items()}
        return reads, writes


def _cut_points(values, loop: Loop) -> tuple:
    """Where ``values`` compare ``loop``'s variable with a constant (a ``cat``'s seams): per
    segment, the compiler knows each comparison and drops the other inputs' loads."""
    var = indexing.Index.of(indexing.Var(loop.name, loop.size))
    cuts = {e.args[1].value for value in values for e in walk(value)
            if isinstance(e, Op) and e.name in ("lt", "ge") and isinstance(e.args[0], IndexValue)
            and e.args[0].index == var and isinstance(e.args[1], Const) and sizes.is_static(loop.size)
            and 0 < e.args[1].value < loop.size}
    return tuple(sorted(cuts)) if len(cuts) < config.CPP_MAX_LOOP_CUTS else ()


def _splits(size, divisor) -> bool:
    """Whether a loop of ``size`` splits into ``size / divisor`` outer and ``divisor`` inner loops."""
    if sizes.is_static(size) and sizes.is_static(divisor):
        return size % divisor == 0 and 1 < divisor < size
    return divisor != 1 and divisor != size and sizes.divides(divisor, size)


def _division_atoms(index):
    """Every ``FloorDiv``/``Mod`` atom of an index, nested ones included."""
    for atom in index.terms:
        if isinstance(atom, (indexing.FloorDiv, indexing.Mod)):
            yield atom
            yield from _division_atoms(atom.expr)


def Index_variables(atom) -> set:
    """Loop variables inside a non-variable index atom."""
    if isinstance(atom, indexing.Gathered):
        return set(atom.deps)
    return atom.expr.variables()


def _sizes(table: dict) -> str:
    if not table:
        return "nothing"
    return f"{format_bytes(sum(table.values()))} ({', '.join(table)})"

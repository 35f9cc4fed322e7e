"""Emit the Triton source of one kernel.

Pointwise kernels read like the Triton tutorials::

    pid = tl.program_id(0)
    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    mask = offsets < n_elements
    l_x = tl.load(l_x_ptr + offsets, mask, other=0)

Row kernels put ``ROWS`` rows of a reduction in one program (``rows`` is a column
vector, ``cols`` a row vector). Persistent ones hold whole rows in registers; looped
ones run one ``for col_start`` loop per reduction and one for the stores, recomputing
pointwise values instead of spilling them. Temporaries are named after the FX node
they compute; each load and store is masked; a header comment lists the FX nodes the
kernel fuses and the bytes it moves.

Alignment. Shapes are static (guarded by the front end), so the sizes ``n_elements``,
``n_rows`` and ``n_cols`` are ``tl.constexpr`` like the strides already written into
the offsets. Triton's alignment analysis then knows every power-of-two factor of a size,
not only the "divisible by 16" the JIT detects for an int argument; a mask like
``cols < 3000`` is known constant over groups of 8 lanes, so loads and stores become
128-bit vector accesses (softmax over 4 x 3000 on sm_90: 20 ``ld.global.v4`` instead
of 48 scalar loads). No ``tl.multiple_of``/``tl.max_contiguous`` is emitted: offsets are
built from ``tl.arange`` and literal strides, which the analysis already reads exactly,
and a hint is only safe where it holds. Pointer alignment is left to the JIT, which
specializes pointers whose address is a multiple of 16 at launch (``codegen.emit.sm90`` can
compile the same way: ``check_kernels(..., aligned=True)``).

Symbolic sizes (dynamic shapes, ``codegen.ir.sizes``). A size that is a sympy expression
is a runtime argument instead: ``n_elements``/``n_rows``/``n_cols`` take the expression's
value at launch, and every size symbol the kernel's index arithmetic reads (``s0`` in
``768*s0``) is an ``int`` parameter of its own; the wrapper reads the symbols from the
inputs' sizes. The launch grid is computed at run time. A row kernel over a symbolic
row length also has a persistent variant (``wrapper.launch_bucketed`` picks). The JIT still
specializes int arguments divisible by 16 (one variant each way), like pointers.
"""
from __future__ import annotations

import dataclasses

import sympy
import torch

from codegen import config
from codegen.ir import indexing, sizes
from codegen.ir import Const, IndexCheck, IndexValue, Load, Op, compute_dtype, in_range, loop_variables, unique_name, walk
from codegen.stats import format_bytes
from codegen.emit.triton_ops import HELPERS, OPS, SIGNATURE_DTYPES, TL_DTYPES, convert, literal, reduction_combine, reduction_identity, scalar_bool

# The int32 a kernel sets to 1 where an index is out of range (``codegen.lower.indirect``); not
# ``*_ptr``, so it can never be a buffer's parameter.
INDEX_ERROR_FLAG = "index_error_flag"
RESERVED = {"pid", "offsets", "mask", "rows", "cols", "row_mask", "col_mask", "col_start", "tl", "triton",
            "n_elements", "n_rows", "n_cols", "BLOCK_SIZE", "ROWS", "COLS", "other", INDEX_ERROR_FLAG} | set(HELPERS)


@dataclasses.dataclass
class KernelSource:
    name: str
    source: str                 # the whole module: imports, helpers, the kernel
    pointer_args: list          # Buffers, in parameter order
    int_args: list              # (size parameter name, value): constexpr if static, see the module docstring
    constexprs: dict
    grid: tuple                 # per axis: an int, or source computing it at run time (symbolic sizes)
    num_warps: int
    fx_nodes: list
    reads: dict                 # buffer name -> modeled bytes
    writes: dict
    index_checks: tuple = ()    # ops whose indices the kernel checks (then it takes INDEX_ERROR_FLAG)
    num_stages: int | None = None   # software pipelining depth (templates; Triton's default otherwise)
    fma: bool = False               # a template multiplying exact float32 (config.*_FMA_CONFIGS)
    size_symbols: tuple = ()        # size symbols read by the index arithmetic (runtime int parameters)
    # A row kernel over a symbolic row length: (its persistent variant's KernelSource, its
    # jit function); the wrapper picks one of the two at each call (``buckets``).
    persistent_variant: tuple | None = None

    @property
    def bytes_moved(self) -> int:
        return sum(self.reads.values()) + sum(self.writes.values())

    def signature(self) -> dict:
        sig = {f"{b.name}_ptr": "*" + SIGNATURE_DTYPES[b.dtype] for b in self.pointer_args}
        if self.index_checks:
            sig[INDEX_ERROR_FLAG] = "*i32"
        sig.update({name: "constexpr" if sizes.is_static(v) else "i32" for name, v in self.int_args})
        sig.update({str(s): "i32" for s in self.size_symbols})
        sig.update({name: "constexpr" for name in self.constexprs})
        return sig

    def grid_source(self) -> str:
        return "(" + ", ".join(str(g) for g in self.grid) + ("," if len(self.grid) == 1 else "") + ")"

    @property
    def kind(self) -> str:
        if "BLOCK_KV" in self.constexprs:
            return "attention"
        return "matmul" if "BLOCK_K" in self.constexprs else "rows" if "ROWS" in self.constexprs else "pointwise"

    def autotune_configs(self, bucket: dict | None = None) -> list:
        """The configs a GPU launch autotunes over, heuristic first (``bucket``: symbolic extents' values)."""
        extents = {n: (bucket or {}).get(n) or sizes.hint(v) for n, v in self.int_args}
        if self.kind == "matmul":
            return config.matmul_configs(extents["M"], extents["N"], extents["K"], self.fma)
        if self.kind == "attention":
            return config.attention_configs(extents["M"], extents["KV"], extents["D"], extents["N"], self.fma)
        if self.kind == "pointwise":
            return config.autotune_configs("pointwise", extents["n_elements"])
        if not sizes.is_static(dict(self.int_args)["n_cols"]):   # its own config (no autotune per size bucket yet)
            return [dict(self.constexprs, num_warps=self.num_warps)]
        return config.autotune_configs("rows", extents["n_rows"], extents["n_cols"])

    def autotuned_grid(self) -> str:
        """Source of the launch grid as a function of the chosen config (``meta``)."""
        extents = dict(self.int_args)
        if self.kind == "matmul":
            return (f"lambda meta: (_cdiv({sizes.source(extents['M'])}, meta['BLOCK_M']) * "
                    f"_cdiv({sizes.source(extents['N'])}, meta['BLOCK_N']), {self.grid[1]})")
        if self.kind == "attention":
            return f"lambda meta: (_cdiv({sizes.source(extents['M'])}, meta['BLOCK_M']), {self.grid[1]})"
        block = "BLOCK_SIZE" if self.kind == "pointwise" else "ROWS"
        return f"lambda meta: (_cdiv({sizes.source(self.int_args[0][1])}, meta[{block!r}]),)"

    def buckets(self) -> list:
        """The persistent variant at the largest block of each column bucket its launches
        can pick (many rows: the most live values per thread; fewer rows only shrink ROWS)
        for the sm_90 checks."""
        if self.persistent_variant is None:
            return []
        variant = self.persistent_variant[0]
        blocks = {tuple(config.persistent_bucket(config.ROW_BLOCK_ELEMENTS, 2 ** k).items())
                  for k in range(config.PERSISTENT_MAX_COLS.bit_length())}
        return [dataclasses.replace(variant, constexprs={"ROWS": b["ROWS"], "COLS": b["COLS"]},
                                    num_warps=b["num_warps"]) for b in map(dict, sorted(blocks))]

    def launch_options(self) -> dict:
        """``num_warps`` (and ``num_stages`` where set) for a launch without autotuning."""
        return {"num_warps": self.num_warps, **({"num_stages": self.num_stages} if self.num_stages else {})}

    def compile_constants(self) -> dict:
        """Every ``tl.constexpr`` parameter: the static sizes, then the block shape."""
        return {**{n: v for n, v in self.int_args if sizes.is_static(v)}, **self.constexprs}


class _Scope:
    def __init__(self, lines):
        self.lines = lines
        self.cache = {}


class KernelEmitter:
    def __init__(self, kernel, placed: dict, name: str, fx_order: dict, persistent: bool = False):
        """``persistent``: a symbolic-length row kernel's persistent variant (``wrapper.launch_bucketed``)."""
        self.kernel, self.placed, self.name, self.fx_order = kernel, placed, name, fx_order
        self.space = kernel.space
        self.rows = self.space.is_rows
        x_hint, r_hint = sizes.hint(self.space.xnumel), sizes.hint(self.space.rnumel)
        if not self.rows:
            self.cfg = config.pointwise_config(x_hint)
        elif sizes.is_static(self.space.rnumel):
            self.cfg = config.rows_config(x_hint, r_hint)
        elif persistent:
            self.cfg = {"persistent": True, **config.persistent_bucket(x_hint, min(r_hint, config.PERSISTENT_MAX_COLS))}
        else:
            self.cfg = config.dynamic_rows_config(x_hint, r_hint)
        self.persistent = not self.rows or self.cfg["persistent"]
        self.var_names = {"x": "rows", "r": "cols"} if self.rows else {"x": "offsets"}
        self.var_sizes = {"x": self.space.xnumel, "r": self.space.rnumel}
        self.lines: list = []
        self.outer = _Scope(self.lines)
        self.inner = None                 # the loop scope while emitting a loop body
        self.pending = None               # outer-scope lines produced inside a loop body
        self.params: dict = {}            # buffer name -> Buffer loaded (pointer parameters)
        self.stores: dict = {}            # buffer name -> Buffer stored
        self.helpers: set = set()
        self.taken = set(RESERVED) | {f"{n}_ptr" for n in self._buffer_names()} | {s.name for s in sizes.known_symbols()}
        self.covered: set = set(kernel.fx_nodes)
        self.reduced: dict = {}           # reduction member name -> variable
        self.loads_seen: dict = {}        # buffer name -> {index}
        self.index_checks: list = []      # IndexCheck.what, in order
        self._levels: dict = {}

    def _buffer_names(self):
        return {m.name for m in self.kernel.members}

    # ---------------------------------------------------------------- names
    def fresh(self, hint: str | None) -> str:
        return unique_name(hint if hint and hint.isidentifier() else "tmp", self.taken)

    def index_source(self, index, names=None, check=True) -> str:
        text = indexing.to_source(index, {**self.var_names, **(names or {})}, check)
        return text if index.is_constant() or len(index.terms) + bool(index.const) == 1 else f"({text})"

    def pointer(self, buffer, index, names=None, shape_vars=None) -> str:
        """``ptr + offset`` as a block shaped like the loop variables ``shape_vars``
        (default: the index's own); a constant offset is still a block (masks are blocks).
        Direct loads and stores insist that ``//`` and ``%`` see non-negative operands;
        an indirect load may divide a negative value only in lanes its mask turns off."""
        own = {v.name for v in index.variables()}
        want = own if shape_vars is None else shape_vars
        offset = sizes.source(index.const) if index.is_constant() else self.index_source(index, names,
                                                                                          check=shape_vars is None)
        text = f"{buffer.name}_ptr + {offset}"
        if not self.rows:
            return text + (" + tl.zeros_like(offsets)" if index.is_constant() else "")
        if own >= want and own:
            return text
        return f"{text} + tl.zeros_like({self.block_like(want)})"

    def block_like(self, names) -> str:
        """A block variable shaped like the loop variables ``names`` (for ``tl.zeros_like``)."""
        if not self.rows:
            return "offsets"
        return {frozenset(): "rows", frozenset({"x"}): "rows", frozenset({"r"}): "cols"}.get(frozenset(names), "mask")

    def mask_for(self, index, names_in=None) -> str:
        if not self.rows:
            return "mask"
        names = {v.name for v in index.variables()} if names_in is None else names_in
        if "r" in names:
            return "mask" if "x" in names else "col_mask"
        return "row_mask"

    # ---------------------------------------------------------------- expressions
    def level(self, expr) -> str:
        """"r" if the value changes along a row (must live in a loop body), else "x"."""
        level = self._levels.get(expr)          # keyed by structure (expressions are hash-consed)
        if level is None:
            level = self._levels[expr] = self._level(expr)
        return level

    def _level(self, expr) -> str:
        if isinstance(expr, Load):
            member = self.placed.get(expr.buffer.name)
            if member is not None:
                return "x" if member.comp.is_reduction else self.level(member.value())
        if isinstance(expr, (Load, IndexValue)) and any(v.name == "r" for v in expr.index.variables()):
            return "r"
        return "r" if any(self.level(a) == "r" for a in expr.children()) else "x"

    def scope(self, expr) -> _Scope:
        if self.inner is not None and self.level(expr) == "r":
            return self.inner
        return self.outer

    def emit(self, expr) -> str:
        if isinstance(expr, Const):
            return literal(expr.value, expr.dtype)
        scope = self.scope(expr)
        cached = scope.cache.get(expr) or (self.outer.cache.get(expr) if scope is not self.outer else None)
        if cached is not None:
            return cached
        if isinstance(expr, Load) and expr.buffer.name in self.placed:
            name = self._member(expr)
        elif isinstance(expr, IndexCheck):
            name = self._index_check(expr, scope)
        else:
            text, hint = self._text(expr)
            name = self.fresh(hint)
            self._lines(scope).append(f"{name} = {text}")
        scope.cache[expr] = name
        return name

    def _lines(self, scope) -> list:
        """Where a statement of ``scope`` goes: an outer-scope value first needed inside a
        loop body is emitted before the loop."""
        return self.pending if (scope is self.outer and self.pending is not None) else scope.lines

    def _member(self, load) -> str:
        member = self.placed[load.buffer.name]
        if member.comp.is_reduction:
            return self.reduced[member.comp.name]
        return self.emit(member.value())

    def _text(self, expr):
        if isinstance(expr, Load):
            buffer = expr.buffer
            self.params.setdefault(buffer.name, buffer)
            self.taken.add(f"{buffer.name}_ptr")
            self.loads_seen.setdefault(buffer.name, set()).add(expr.index)
            if expr.is_direct():
                text = f"tl.load({self.pointer(buffer, expr.index)}, {self.mask_for(expr.index)}, other=0)"
            else:
                text = self._indirect_load(expr)
            if compute_dtype(buffer.dtype) != buffer.dtype:
                text += f".to({TL_DTYPES[compute_dtype(buffer.dtype)]})"
            if expr.label:
                self.covered.add(expr.label)
            return text, expr.label or buffer.name
        if isinstance(expr, IndexValue):
            names = {g: self.emit(g.value) for g in expr.index.gathered()}
            # a guarded index (a cat input's) may be negative where it is not used
            text = indexing.to_source(expr.index, {**self.var_names, **names}, check=not expr.guarded)
            if expr.index.is_constant():
                text = f"tl.full([], {text}, tl.int32)"
            return text, None
        emitter, helpers = OPS[expr.name]
        self.helpers.update(helpers(expr.attrs) if callable(helpers) else helpers)
        if expr.label:
            self.covered.add(expr.label)
        args = [self.emit(a) for a in expr.args]
        hint = f"{args[0]}_in_range" if expr.name == "in_range" else expr.label
        return scalar_bool(emitter(*args, expr.attrs, expr.dtype), expr.dtype is not torch.bool or loop_variables(expr)), hint

    def _indirect_load(self, expr) -> str:
        """A load through gathered indices and/or under a predicate. A gathered index is
        used only where it is in range (``0 <= i < size`` after wrapping negatives), so a
        bad index never reads outside the buffer; the op's ``IndexCheck`` reports it."""
        names = {g: self.emit(g.value) for g in expr.index.gathered()}
        conditions = [self.emit(test) for test in in_range(expr.index.gathered())]
        if expr.predicate is not None:
            conditions.append(self.emit(expr.predicate))
        shape_vars = {v.name for v in expr.index.variables()}
        for child in expr.children():
            shape_vars |= {v.name for v in loop_variables(child)}
        mask = " & ".join([self.mask_for(expr.index, shape_vars)] + conditions)
        return f"tl.load({self.pointer(expr.buffer, expr.index, names, shape_vars)}, {mask}, other=0)"

    def _index_check(self, check, scope) -> str:
        """The checked value's name; first, set the error flag in every lane that computes
        it (its mask and predicate) through an index out of range."""
        value = self.emit(check.value)
        tests = [self.emit(t) for t in check.tests]
        conditions = list(check.tests) + ([check.predicate] if check.predicate is not None else [])
        shape_vars = {v.name for c in conditions for v in loop_variables(c)}
        lanes = [self.mask_for(None, shape_vars)] + ([self.emit(check.predicate)] if check.predicate is not None else [])
        bad = tests[0] if len(tests) == 1 else f"({' & '.join(tests)})"
        self._lines(scope).append(f"tl.store({INDEX_ERROR_FLAG} + tl.zeros_like({self.block_like(shape_vars)}), 1, "
                                  f"{' & '.join(lanes)} & ~{bad})")
        if check.what not in self.index_checks:
            self.index_checks.append(check.what)
        return value

    # ---------------------------------------------------------------- stores
    def store(self, member, value_expr) -> None:
        buffer = member.comp.buffer
        value = self.emit(value_expr)
        self.stores.setdefault(buffer.name, buffer)
        if isinstance(value_expr, Const):
            shape = self.block_shape(member)
            value = f"tl.full({shape}, {literal(value_expr.value, value_expr.dtype, block=False)}, {TL_DTYPES[buffer.dtype]})"
        elif value_expr.dtype != buffer.dtype:
            value = convert(value, buffer.dtype)
            if buffer.dtype is torch.bfloat16:
                self.helpers.add("_to_bfloat16")
        index = member.store_index
        self.lines.append(f"tl.store({self.pointer(buffer, index)}, {value}, {self.mask_for(index)})")

    def block_shape(self, member) -> str:
        if not self.rows:
            return "[BLOCK_SIZE]"
        return "[ROWS, COLS]" if member.role == "full" and not member.comp.is_reduction else "[ROWS, 1]"

    # ---------------------------------------------------------------- kernel bodies
    def emit_pointwise(self) -> None:
        self.lines += ["pid = tl.program_id(0)",
                       f"offsets = {self._pid()} * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)",
                       "mask = offsets < n_elements"]
        for member in self.placed.values():
            if member.comp.name in self.kernel.stored:
                self.store(member, member.value())

    def _pid(self) -> str:
        """int64 offsets past the int32 range; a symbolic extent within it is guarded to stay so."""
        extents = [self.space.xnumel * self.space.rnumel] + [b.extent for b in self._all_buffers()]
        fits = all(sizes.decide(sympy.Le(e, config.INT32_LIMIT)) if not sizes.is_static(e) else e <= config.INT32_LIMIT
                   for e in extents)
        return "pid" if fits else "pid.to(tl.int64)"

    def _all_buffers(self):
        return [m.comp.buffer for m in self.placed.values()]

    def emit_rows(self) -> None:
        self.lines += ["pid = tl.program_id(0)",
                       f"rows = {self._pid()} * ROWS + tl.arange(0, ROWS)[:, None]",
                       "row_mask = rows < n_rows"]
        if self.persistent:
            self.lines += ["cols = tl.arange(0, COLS)[None, :]", "col_mask = cols < n_cols",
                           "mask = row_mask & col_mask"]
            for member in self.placed.values():
                if member.comp.is_reduction:
                    self.reduce_persistent(member)
                if member.comp.name in self.kernel.stored:
                    self.store(member, self._stored_value(member))
            return
        pairs = online_softmax_pairs(self.placed)
        for member in self.placed.values():
            if not member.comp.is_reduction or member.comp.name in pairs.values():
                continue
            partner = self.placed.get(pairs.get(member.comp.name))
            done = [member] if partner is None else [member, partner]
            self.reduce_looped(member) if partner is None else self.reduce_online(member, partner)
            for m in done:
                if m.comp.name in self.kernel.stored:
                    self.store(m, self._stored_value(m))
        full = [m for m in self.placed.values() if m.role == "full" and not m.comp.is_reduction
                and m.comp.name in self.kernel.stored]
        if full:
            self.loop(lambda: [self.store(m, m.value()) for m in full])
        for member in self.placed.values():
            if member.role == "row" and member.comp.name in self.kernel.stored:
                self.store(member, member.value())

    def _stored_value(self, member):
        if member.comp.is_reduction:
            return Load(member.comp.buffer, member.store_index)
        return member.value()

    def _reduction_parts(self, member):
        value = member.value()
        acc_dtype = value.dtype
        if member.comp.reduction in ("argmax", "argmin"):
            self.helpers.add(f"_{member.comp.reduction}")
            identity = literal(reduction_identity(member.comp.reduction, acc_dtype), acc_dtype)
            return value, acc_dtype, identity, None, None
        identity = literal(reduction_identity(member.comp.reduction, acc_dtype), acc_dtype)
        combine, reduce, helpers = reduction_combine(member.comp.reduction, acc_dtype)
        self.helpers.update(helpers)
        return value, acc_dtype, identity, combine, reduce

    def _convert_reduced(self, member, name) -> None:
        """Record a row result; one accumulated in another dtype (any/all count in int32)
        becomes the buffer's compute dtype, so readers see the dtype the IR promises."""
        self.reduced[member.comp.name] = name
        target = compute_dtype(member.comp.buffer.dtype)
        if member.comp.reduction not in ("argmax", "argmin") and member.value().dtype != target:
            self.lines.append(f"{name} = {convert(name, target)}")

    def reduce_persistent(self, member) -> None:
        value, _, identity, _, reduce = self._reduction_parts(member)
        v = self.emit(value)
        name = self.fresh(member.comp.name)
        self.taken.add(f"{name}_value")
        masked = f"tl.where(mask, {v}, {identity})"
        if member.comp.reduction in ("argmax", "argmin"):
            helper = f"_{member.comp.reduction}"
            self.lines.append(f"{name}_value, {name} = tl.reduce(({masked}, tl.broadcast_to(cols, [ROWS, COLS])), "
                              f"1, {helper})")
            self.lines.append(f"{name} = {name}[:, None].to(tl.int64)")
        else:
            self.lines.append(f"{name} = {reduce(masked)}[:, None]")
        self._convert_reduced(member, name)

    def reduce_looped(self, member) -> None:
        value, acc_dtype, identity, combine, reduce = self._reduction_parts(member)
        name = self.fresh(member.comp.name)
        acc = self.fresh(f"{name}_acc")
        self.lines.append(f"{acc} = tl.full([ROWS, COLS], {identity}, {TL_DTYPES[acc_dtype]})")
        arg = member.comp.reduction in ("argmax", "argmin")
        if arg:
            self.taken.add(f"{acc}_index")
            self.lines.append(f"{acc}_index = tl.full([ROWS, COLS], 0, tl.int32)")

        def body():
            v = self.emit(value)
            masked = f"tl.where(mask, {v}, {identity})"
            if arg:
                self.lines.append(f"{acc}, {acc}_index = _{member.comp.reduction}({acc}, {acc}_index, {masked}, "
                                  f"tl.broadcast_to(cols, [ROWS, COLS]))")
            else:
                self.lines.append(f"{acc} = {combine(acc, masked)}")
        self.loop(body)
        if arg:
            self.taken.add(f"{name}_value")
            self.lines.append(f"{name}_value, {name} = tl.reduce(({acc}, {acc}_index), 1, _{member.comp.reduction})")
            self.lines.append(f"{name} = {name}[:, None].to(tl.int64)")
        else:
            self.lines.append(f"{name} = {reduce(acc)}[:, None]")
        self._convert_reduced(member, name)

    def reduce_online(self, max_member, sum_member) -> None:
        """Row max ``m`` and ``sum(exp(v - m))`` in one pass over the row (online softmax):
        each lane keeps its own running max and rescales its running sum when the max
        grows; lanes are combined at the end. Lanes that have seen only -inf add 0 (not
        exp(-inf - -inf) = NaN), so -inf fills (masked attention) behave as in two passes."""
        m, s = self.fresh(max_member.comp.name), self.fresh(sum_member.comp.name)
        m_acc, s_acc, m_new = self.fresh(f"{m}_acc"), self.fresh(f"{s}_acc"), self.fresh(f"{m}_new")
        self.helpers.add("_maximum")
        dtype = TL_DTYPES[max_member.value().dtype]
        self.lines += [f'{m_acc} = tl.full([ROWS, COLS], float("-inf"), {dtype})',
                       f"{s_acc} = tl.full([ROWS, COLS], 0.0, {dtype})"]

        def body():
            v = self.emit(max_member.value())
            seen = f'({m_new} != float("-inf"))'
            rescaled = f"{s_acc} * tl.where({seen}, tl.exp({m_acc} - {m_new}), 0.0)"
            self.lines += [f'{m_new} = _maximum({m_acc}, tl.where(mask, {v}, float("-inf")))',
                           f"{s_acc} = {rescaled} + tl.where(mask & {seen}, tl.exp({v} - {m_new}), 0.0)",
                           f"{m_acc} = {m_new}"]
        self.loop(body)
        self.lines += [f"{m} = tl.reduce({m_acc}, 1, _maximum)[:, None]",
                       f"{s} = tl.sum({s_acc} * tl.exp({m_acc} - {m}), 1)[:, None]"]
        self._convert_reduced(max_member, m)
        self._convert_reduced(sum_member, s)
        self.covered.update(e.label for e in walk(sum_member.value()) if getattr(e, "label", None))

    def loop(self, body) -> None:
        """Emit ``body`` inside a ``for col_start`` loop; hoist row-invariant values."""
        outer_lines, loop_lines, pending = self.lines, [], []
        self.inner, self.pending = _Scope(loop_lines), pending
        self.lines = loop_lines
        loop_lines += ["cols = col_start + tl.arange(0, COLS)[None, :]", "col_mask = cols < n_cols",
                       "mask = row_mask & col_mask"]
        body()
        self.lines, self.inner, self.pending = outer_lines, None, None
        self.lines += pending
        self.lines.append("for col_start in range(0, n_cols, COLS):")
        self.lines += ["    " + line for line in loop_lines]

    # ---------------------------------------------------------------- assembly
    def build(self) -> KernelSource:
        self.emit_rows() if self.rows else self.emit_pointwise()
        pointers = list(self.params.values()) + list(self.stores.values())
        if self.rows:
            ints = [("n_rows", self.space.xnumel), ("n_cols", self.space.rnumel)]
            constexprs = {"ROWS": self.cfg["ROWS"], "COLS": self.cfg["COLS"]}
        else:
            ints = [("n_elements", self.space.xnumel)]
            constexprs = {"BLOCK_SIZE": self.cfg["BLOCK_SIZE"]}
        grid = (sizes.blocks(self.space.xnumel, self.cfg["ROWS" if self.rows else "BLOCK_SIZE"]),)
        reads, writes = self.traffic()
        fx_nodes = sorted((n for n in self.covered if n in self.fx_order), key=self.fx_order.get)
        used = sizes.symbols_read("\n".join(self.lines))
        params = [f"{b.name}_ptr" for b in pointers] + ([INDEX_ERROR_FLAG] if self.index_checks else []) + \
            [n if not sizes.is_static(v) else f"{n}: tl.constexpr" for n, v in ints] + \
            [str(s) for s in used] + [f"{n}: tl.constexpr" for n in constexprs]
        header = [f"# fx nodes: {', '.join(fx_nodes)}",
                  f"# reads {_sizes(reads)}; writes {_sizes(writes)}"] + refusal_lines(self.kernel)
        if self.rows:
            header.append(f"# {self.space.xnumel} rows x {self.space.rnumel} cols, "
                          f"{'persistent (whole rows in registers)' if self.persistent else 'looped over columns'}")
        kernel = ["@triton.jit", f"def {self.name}({', '.join(params)}):"]
        kernel += ["    " + line for line in header + self.lines]
        helpers = [HELPERS[h].strip() for h in sorted(self.helpers)]
        source = "\n\n\n".join(['"""Generated by capture\'s Triton code generator."""\nimport triton\n'
                                "import triton.language as tl"] + helpers + ["\n".join(kernel)]) + "\n"
        return KernelSource(self.name, source, pointers, ints, constexprs, grid, self.cfg["num_warps"],
                            fx_nodes, reads, writes, tuple(self.index_checks), size_symbols=tuple(used))

    def traffic(self):
        """Modeled bytes read and written (at this call's sizes where they are symbolic)."""
        extents = self.var_sizes
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


MAX_REFUSALS_IN_HEADER = 4      # a kernel header stays short; codegen.stats() lists them all


def refusal_lines(kernel) -> list:
    """Header comments for the fusions the scheduler refused for this kernel's members."""
    lines = [f"# not fused: {d.where}: {d.reason}" for d in kernel.refusals[:MAX_REFUSALS_IN_HEADER]]
    if len(kernel.refusals) > MAX_REFUSALS_IN_HEADER:
        lines.append(f"# ... and {len(kernel.refusals) - MAX_REFUSALS_IN_HEADER} more refusals (codegen.stats())")
    return lines


def online_softmax_pairs(placed: dict) -> dict:
    """{max member: sum member} for ``sum(exp(v - max(v)))`` over the same rows, with ``v``
    the very expression the max reduces (softmax, log_softmax, logsumexp)."""
    def inline(expr):               # a fused member's value instead of its (register) load
        while isinstance(expr, Load) and expr.buffer.name in placed:
            member = placed[expr.buffer.name]
            if member.comp.is_reduction or not expr.is_direct() or expr.index != member.store_index:
                break
            expr = member.value()
        return expr
    pairs = {}
    maxima = {name: p for name, p in placed.items() if p.comp.reduction == "max" and p.value().dtype.is_floating_point}
    for name, p in placed.items():
        if p.comp.reduction != "sum":
            continue
        value = inline(p.value())
        if not (isinstance(value, Op) and value.name == "exp"):
            continue
        difference = inline(value.args[0])
        if not (isinstance(difference, Op) and difference.name == "sub"):
            continue
        v, m = difference.args
        peak = maxima.get(m.buffer.name) if isinstance(m, Load) and m.is_direct() else None
        if peak is not None and peak.comp.name not in pairs and inline(peak.value()) == inline(v) \
                and m.index == peak.store_index and peak.comp.reduced_dims == p.comp.reduced_dims:
            pairs[peak.comp.name] = name
    return pairs


def _sizes(table: dict) -> str:
    if not table:
        return "nothing"
    total = sum(table.values())
    return f"{format_bytes(total)} ({', '.join(table)})"

"""Symbolic sizes of one traced frame (dynamic shapes).

One ``FrameShapes`` per trace owns torch's ``ShapeEnv`` (torch.fx.experimental
.symbolic_shapes) and the fake-tensor mode built on it. An input tensor whose
dimension is dynamic gets a symbol for that size instead of a number; fake
propagation then carries expressions over the symbols (``4*s0``, ``s0//2``) through
every op, and whenever the traced code or an op's shape logic asks a question about
them (``s0 > 4``? ``s0 % 2 == 0``?) the ShapeEnv answers from this call's sizes and
records the relation. ``size_relations`` turns the recorded relations into what the
guards must check (only relations the trace relied on), each symbol read from the
input dimension it came from.

Sizes 0 and 1 are never symbolic (broadcasting and empty tensors behave differently):
such a dimension stays static, as in torch.compile. Every dynamic dimension gets its
own symbol, even where two sizes happen to be equal (no "duck sizing"): two sizes are
guarded equal only where an op relied on it (``x + y``), so a batch size that happens to
equal the sequence length once does not tie them together.
"""
from __future__ import annotations

import dataclasses
import logging
import threading

import sympy
import torch
import torch._guards
from torch._dispatch.python import enable_python_dispatcher
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx.experimental.symbolic_shapes import DimDynamic, ShapeEnv
from torch.utils._sympy import functions as F

from fx_graph.size_expr import SizeRead, SizeRelation, StrideOf, render


def with_python_dispatcher_fallback(fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` on fake tensors; where it fails while symbolic sizes are in
    play, once more under the Python dispatcher (as make_fx runs ops). Some C++ composite
    kernels take concrete sizes only (baddbmm, addbmm, lerp, addcmul with a grad-requiring
    input; bilinear) and have Python meta functions that take symbolic ones. Only as a
    fallback: under the dispatcher other composite ops decompose differently (SDPA's
    fake output becomes a view of its math form where eager's is a tensor of its own),
    which would change which outputs are views."""
    try:
        _quiet.depth += 1
        return fn(*args, **kwargs)
    except Exception as first:
        mode = torch._guards.detect_fake_mode()
        if mode is None or mode.shape_env is None or not mode.shape_env.backed_var_to_val:
            raise
        try:
            with enable_python_dispatcher():
                return fn(*args, **kwargs)
        except Exception:
            raise first from None   # the op's own error, not the fallback's
    finally:
        _quiet.depth -= 1


class _QuietMetaFailures(threading.local, logging.Filter):
    """Drops the fake-tensor mode's "failed while attempting to run meta" error log (with a
    traceback) while ``with_python_dispatcher_fallback`` runs an op: its failure is handled
    there (the fallback, or the op's error raised to the caller); users saw a traceback
    for every new size of a model using ``baddbmm``."""
    depth = 0

    def filter(self, record) -> bool:
        return not (self.depth and record.getMessage().startswith("failed while attempting to run meta"))


_quiet = _QuietMetaFailures()
logging.getLogger("torch._subclasses.fake_tensor").addFilter(_quiet)


@dataclasses.dataclass(frozen=True)
class _SymbolSource(torch._guards.Source):
    """What the ShapeEnv calls a symbol's source: only its name is used (logs, errors)."""

    text: str

    @property
    def _name_template(self):
        return self.text

    @property
    def guard_source(self):
        return torch._guards.GuardSource.LOCAL


@dataclasses.dataclass
class Specialization:
    """A symbolic size the trace turned into a number (``int(n)``, ``range(n)`` ...)."""

    size: str  # L['x'].size()[0]
    value: int
    where: str | None
    why: str

    def __str__(self):
        at = f" at {self.where}" if self.where else ""
        return f"{self.size} specialized to {self.value}{at} ({self.why})"


@dataclasses.dataclass
class DynamicInput:
    """How one input tensor was made symbolic: its fake tensor and what guards check."""

    fake: torch.Tensor
    shape: tuple  # int for static sizes, None for symbolic ones
    stride: tuple  # int, or StrideOf for a stride that follows symbolic sizes
    symbols: dict  # dim -> sympy.Symbol


class FrameShapes:
    def __init__(self):
        # no unbacked sizes: ops whose output size depends on data (nonzero, item) still
        # break the graph, as with static shapes
        self.shape_env = ShapeEnv(allow_scalar_outputs=False, allow_dynamic_output_shape_ops=False)
        self.fake_mode = FakeTensorMode(shape_env=self.shape_env)
        self.reads: dict = {}  # symbol -> [SizeRead, ...] (first one: where it is read back)
        self.symints: dict = {}  # symbol -> torch.SymInt made for it
        self.source_of: dict = {}  # SizeRead -> the source of its tensor
        self.specializations: list[Specialization] = []
        self._tagged = 0  # shape_env.guards[:_tagged] have a user line
        self.shape_env.capture_frame_shapes = self  # how a SymInt finds its frame (capture.variables.sym)
        self.guard_lines: list = []  # user line of each recorded relation, in order

    @property
    def has_symbols(self) -> bool:
        return bool(self.reads)

    # ---- inputs ----
    def fake_input(self, value: torch.Tensor, name: str, expr: str, source, dynamic_dims) -> DynamicInput:
        """A fake tensor for ``value`` with a symbol for each size in ``dynamic_dims``
        (0/1 sizes stay static); strides that follow the sizes become expressions.
        ``name``/``expr``: how a person / a guard reads the tensor; ``source`` is handed
        back to ``python_expr``'s callback."""
        sizes, shape, symbols = [], [], {}
        for dim, size in enumerate(value.shape):
            if dim in dynamic_dims and size >= 2:
                read = SizeRead(name, expr, dim)
                symbol = self.shape_env.create_symbol(size, _SymbolSource(read.name), dynamic_dim=DimDynamic.DYNAMIC)
                symint = self.symints.get(symbol)
                if symint is None:
                    symint = self.symints[symbol] = self.shape_env.create_symintnode(symbol, hint=size)
                self.reads.setdefault(symbol, []).append(read)
                self.source_of[read] = source
                symbols[dim] = symbol
                sizes.append(symint)
                shape.append(None)
            else:
                sizes.append(size)
                shape.append(size)
        stride = _stride_spec(value, symbols)
        sym_stride = [s.value(sizes) if isinstance(s, StrideOf) else s for s in stride]
        with self.fake_mode:
            fake = torch.empty_strided(sizes, sym_stride, dtype=value.dtype, device=value.device,
                                       requires_grad=value.requires_grad)
            fake = non_leaf_like(value, fake)
        return DynamicInput(fake, tuple(shape), tuple(stride), symbols)

    def static_fake(self, value: torch.Tensor) -> torch.Tensor:
        return self.fake_mode.from_tensor(value, static_shapes=True)

    # ---- while tracing ----
    def note_relations(self, where: str | None, what: str = "an operation"):
        """Relations recorded since the last call were asked for at ``where`` by
        ``what``; one that pins a size to a number is a specialization."""
        guards = self.shape_env.guards
        while self._tagged < len(guards):
            expr = guards[self._tagged].expr
            self.guard_lines.append(where)
            self._tagged += 1
            if isinstance(expr, sympy.Eq) and expr.lhs.is_number != expr.rhs.is_number:
                sizes, number = (expr.lhs, expr.rhs) if expr.rhs.is_number else (expr.rhs, expr.lhs)
                names = [self.read_name(s) for s in sorted(sizes.free_symbols, key=str) if s in self.reads]
                if number.is_Integer and names and not isinstance(sizes, (sympy.Mod, F.Mod, F.PythonMod)):
                    text = ", ".join(names) if sizes.is_Symbol else f"{render(sizes, self._names())} (of {', '.join(names)})"
                    self.specializations.append(Specialization(text, int(number), where, f"{what} needs a fixed size"))

    def specialize(self, value, where: str | None, why: str) -> int:
        """``value`` (a SymInt) as a number: the trace goes on with this call's size and
        the guards pin it."""
        before = len(self.specializations)
        number = int(value)  # records Eq(expr, number) in the ShapeEnv
        self.note_relations(where, why)
        for spec in self.specializations[before:]:
            spec.why = why
        if len(self.specializations) == before:  # an expression of sizes (s0*4 == 32)
            names = ", ".join(self.read_name(s) for s in sorted(value.node.expr.free_symbols, key=str))
            self.specializations.append(Specialization(names or str(value), number, where, why))
        return number

    def _names(self) -> dict:
        return {s: reads[0].name for s, reads in self.reads.items()}

    def read_name(self, symbol) -> str:
        reads = self.reads.get(symbol)
        return reads[0].name if reads else str(symbol)

    def python_expr(self, value, read_size) -> str:
        """A SymInt as Python over the input sizes; ``read_size(source, dim)`` says how
        one size is read."""
        expr = self.shape_env.simplify(value.node.expr)
        reads = {s: self.reads[s][0] for s in expr.free_symbols}
        return render(expr, {s: read_size(self.source_of[r], r.dim) for s, r in reads.items()})

    # ---- finishing ----
    def size_relations(self) -> list:
        """``[(SizeRelation, user line)]``: what guards must check for the trace to hold."""
        env = self.shape_env
        out = []
        for symbol, reads in self.reads.items():
            first = _rel_reads(self, symbol)
            value = env.simplify(symbol)
            if value != symbol:  # replaced: specialized to a number, or equal to another size
                out.append((self._relation(sympy.Eq(symbol, value)), None))
            else:
                rng = env.var_to_range.get(symbol)
                lower = int(rng.lower) if rng is not None and rng.lower.is_Integer else 2
                out.append((SizeRelation(sympy.Ge(symbol, max(lower, 2)), first), None))
                if rng is not None and rng.upper.is_Integer:
                    out.append((SizeRelation(sympy.Le(symbol, int(rng.upper)), first), None))
        for guard, where in zip(env.guards, self.guard_lines + [None] * len(env.guards)):
            expr = env.simplify(guard.expr)
            if expr is sympy.true or env._maybe_evaluate_static(expr, axioms=()) is not None:
                continue  # implied by the ranges and replacements above
            out.append((self._relation(expr), where))
        return out

    def _relation(self, expr) -> SizeRelation:
        reads = tuple(pair for s in sorted(expr.free_symbols, key=str) for pair in _rel_reads(self, s))
        return SizeRelation(expr, reads)


def _rel_reads(shapes: FrameShapes, symbol) -> tuple:
    return ((symbol, shapes.reads[symbol][0]),)


def _stride_spec(value: torch.Tensor, symbols: dict) -> list:
    """Each stride as a number, or as ``StrideOf`` where it is the product of the sizes
    inside it (innermost first) and one of those sizes is symbolic."""
    stride = list(value.stride())
    spec = list(stride)
    expected, factor, dims = 1, 1, []
    for d in sorted(range(value.dim()), key=lambda d: (stride[d], -d)):
        size = value.shape[d]
        if size == 1:  # any stride will do here: it follows the sizes only if it already does
            if stride[d] == expected and dims:
                spec[d] = StrideOf(factor, tuple(sorted(dims)))
            continue
        if stride[d] != expected:
            break  # not dense from here: the rest stay numbers (guarded as they are)
        if dims:
            spec[d] = StrideOf(factor, tuple(sorted(dims)))
        expected *= size
        if d in symbols:
            dims.append(d)
        else:
            factor *= size
    return spec


def non_leaf_like(value: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``fake`` (a new leaf) as a non-leaf where ``value`` is one that requires grad:
    in-place ops on it are legal, as on ``value`` (on a leaf that requires grad they
    raise: the trace broke the graph there). As torch's own fakes of such tensors, its
    history refuses a backward through it."""
    if not (value.requires_grad and not value.is_leaf and fake.is_leaf):
        return fake
    with torch.enable_grad():
        return torch._C._functions.DelayedError("backward through a traced example input", 1)(fake)


def has_symbolic_sizes(gm) -> bool:
    """Whether a captured graph's inputs have symbolic sizes (a dynamic-shape entry)."""
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            val = node.meta.get("val")
            if isinstance(val, torch.Tensor) and any(isinstance(s, torch.SymInt) for s in val.shape):
                return True
    return False

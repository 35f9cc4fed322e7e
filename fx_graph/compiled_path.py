"""The compiled path: a captured graph with eager's semantics, around a code generator.

A captured graph has eager semantics (views, in-place ops, grad mode, leaf modules);
a code generator wants pure dataflow over aten ops. ``compile_captured(gm,
example_inputs, compile_fn)`` sits between them:

1. ``fx_graph.lifting.FlatGraph``: the graph as a flat function of tensors, leaf
   modules' parameters and buffers lifted to inputs (a BatchNorm running-stat update
   becomes an input mutation applied to the real buffer, its weight gets a gradient);
2. ``fx_graph.output_aliases``: outputs that are inputs or views (of inputs, of
   intermediates) are taken out of the traced function and rebuilt after the call as
   eager has them (identity, storage, sizes, strides, offset, ``_base``);
3. ``fx_graph.aot_bridge``: functorch's AOT autograd functionalizes and decomposes it
   (random ops are kept: they draw eager's numbers), builds a joint forward+backward
   graph when an output requires grad, partitions it (``partition``) and restores
   eager's semantics at the boundary (aliased outputs as views of the caller's
   tensors, input mutations applied once, grad mode);
4. every functional graph goes to ``compile_fn(functional_gm, example_inputs) ->
   callable(*inputs) -> sequence`` — our code generator, or any emitter — tagged with
   its role in ``gm.meta[GRAPH_ROLE]`` ("forward", "backward", "inference");
   ``fx_graph.layout`` holds each compiled graph to the layouts its graph promised.

What this module adds on top: inputs must alias each other as they did when the graph
was traced if the graph mutates an input or returns a view of inputs that shared
storage (checked per call; another aliasing pattern compiles another variant), and every reason not to take the path is a
``CompiledPathError`` whose text the caller shows (it then runs the graph as captured).
"""
from __future__ import annotations

import dataclasses
import logging
import warnings

import torch
from torch import fx

from fx_graph import aot_bridge, grad_presence, input_bases, layout, partition
from fx_graph.decompose import autograd_decomposition_table, trace_inputs
from fx_graph.input_bases import InputBaseError, InputBases, plan_bases
from fx_graph.lifting import FlatGraph, restore_output_kind
from fx_graph.overlap import InPlaceRefusal
from fx_graph.symbolic import has_symbolic_sizes, non_leaf_like
from fx_graph.output_aliases import OutputAliases, OutputAliasError, plan_outputs

log = logging.getLogger("capture.output_code")

GRAPH_ROLE = "compiled_path_role"      # gm.meta key of a graph handed to compile_fn
INTERNAL_ERRORS: list = []             # the last internal errors (tests check it is empty)
# Distinct input-aliasing patterns compiled for one graph before the rest run as
# captured: each is a full retrace; programs see one or two (f(x, x) and f(x, y)).
MAX_ALIAS_VARIANTS = 4
# Read and set on every call of the fast path: bound once, not looked up through torch._C.
_grad_enabled, _set_grad_enabled = torch.is_grad_enabled, torch._C._set_grad_enabled


class CompiledPathError(RuntimeError):
    """The graph cannot take the compiled path; the message says why."""


class InternalErrorWarning(RuntimeWarning):
    """A compiler of ours failed on a graph it should handle (a bug of ours); the graph
    runs as captured. The test suite turns this warning into an error."""


def _expected_failures() -> tuple:
    """What a graph the compiled path does not take raises (anything else is a bug of ours)."""
    from torch._subclasses.fake_tensor import (DataDependentOutputException, DynamicOutputShapeException,
                                               UnsupportedOperatorException)
    from torch.fx.experimental.symbolic_shapes import GuardOnDataDependentSymNode
    return (DataDependentOutputException, DynamicOutputShapeException, UnsupportedOperatorException,
            GuardOnDataDependentSymNode, OutputAliasError, InPlaceRefusal, InputBaseError, aot_bridge.AotRefusal)


def compile_captured(gm: fx.GraphModule, example_inputs: list, compile_fn,
                     fused_attention: bool = False) -> "CompiledCapture":
    """A callable behaving like ``gm`` whose functional graphs ``compile_fn`` compiled;
    raises ``CompiledPathError`` when the graph cannot take this path. ``fused_attention``:
    differentiated attention becomes ``capture::flash_attention`` (``lifting``)."""
    others = sorted({type(x).__name__ for x in example_inputs if not isinstance(x, torch.Tensor)})
    if others:
        raise CompiledPathError(f"graph inputs that are not tensors: {', '.join(others)}")
    return CompiledCapture(gm, list(example_inputs), compile_fn, fused_attention)


def records_autograd(tensors) -> bool:
    """Grad mode is on and one of ``tensors`` requires grad: a call records autograd."""
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


def needs_autograd(gm: fx.GraphModule, example_inputs: list) -> bool:
    """Whether calling ``gm`` now records autograd (its inputs or the tensors of its leaf
    modules, which the compiled path lifts to inputs)."""
    return records_autograd(list(example_inputs) + FlatGraph(gm, len(example_inputs)).lifted_values())


def _symbolic_copies(fakes: list, mode) -> tuple:
    """(fresh fakes with the graph's symbolic sizes, their fake mode) to plan with."""
    with mode:
        copies = [non_leaf_like(x, torch.empty_strided(x.shape, x.stride(), dtype=x.dtype, device=x.device,
                                                       requires_grad=x.requires_grad)) for x in fakes]
    return copies, mode


class CompiledCapture:
    """Callable like the captured graph. ``graphs``: (role, compiled graph) for every
    functional graph handed to ``compile_fn`` (a backward one only after the first
    ``backward()``)."""

    def __init__(self, gm: fx.GraphModule, example_inputs: list, compile_fn, fused_attention: bool = False):
        self.gm = gm
        self.compile_fn = compile_fn
        self.flat = FlatGraph(gm, len(example_inputs), fused_attention)
        self.n_user = len(example_inputs)
        # symbolic sizes (dynamic shapes): AOT autograd traces the graph's own symbolic fakes
        self.symbolic = has_symbolic_sizes(gm)
        self.graphs: list = []
        # Called after each graph compiles (a backward one at the first backward()):
        # CAPTURE_DEBUG_DIR rewrites the entry's kernels.py with it.
        self.on_graph = None
        self.layout_fixups = layout.FixupCounter()
        flat_inputs = example_inputs + self.flat.lifted_values()
        first = self._compile(flat_inputs)
        self.needs_autograd = first.needs_autograd
        self._output_kind = self.flat.output_kind
        # How inputs share storage matters to a graph that writes an input, and to one
        # returning a view of an input when inputs shared storage as it was traced.
        shared = bool(shared_storage(flat_inputs))
        self._check_aliasing = bool(first.plan.written) or (first.plan.views_inputs() and shared) \
            or bool(first.bases and first.bases.duplicates)
        self._variants = {variant_key(flat_inputs) if self._check_aliasing else None: first}
        self._default = first
        # The fast path: nothing to put back at the boundary, no autograd (see __call__).
        self._direct = None if self._check_aliasing else first.direct
        self._direct_call = None if self._direct is None else \
            _direct_call(self._direct, self.flat.lifted_values if self.flat.lifted else None, self._output_kind)

    def __call__(self, *args):
        if self._direct_call is not None:
            return self._direct_call(*args)
        flat = [*args, *self.flat.lifted_values()]
        variant = self._default
        if self._check_aliasing:
            key = variant_key(flat)
            variant = self._variants.get(key, False)
            if variant is False:
                variant = self._variant(key, flat)
            if variant is None:
                return self.gm(*args)
        if any(flat[j].storage_offset() for j in variant.plan.metadata_written):
            # AOT autograd re-applies a metadata mutation (x.t_()) at the compiled result's
            # storage offset, 0: only right for an input that starts its storage.
            return self.gm(*args)
        outs = variant.compiled(variant.bases.inputs(flat) if variant.bases else list(flat))
        if variant.needs_autograd:
            grad_presence.track(outs)
        if variant.plan:
            outs = variant.plan.rebuild(flat, outs)
        return restore_output_kind(outs, self._output_kind)

    # ------------------------------------------------------------------ compiling
    def _compile(self, flat_inputs: list) -> "_Variant":
        metadata_mutation = False
        try:
            # a graph with symbolic sizes is traced from its placeholders' fakes (made once per compile)
            fakes, _, mode = trace_inputs(self.gm, flat_inputs, self.n_user) if self.symbolic else (None, None, None)
            plan = plan_outputs(self.flat.fn, flat_inputs, _symbolic_copies(fakes, mode) if self.symbolic else None)
            metadata_mutation = bool(plan.metadata_written)
            bases = plan_bases(flat_inputs, plan.written, plan.metadata_written)
            _refuse_with_autograd(flat_inputs, plan, bases)
            traced = plan.wrap(self.flat.fn) if plan else self.flat.fn
            aot_inputs = flat_inputs
            if bases:
                traced, aot_inputs = bases.wrap(traced), bases.inputs(flat_inputs)
            names = self.flat.placeholder_names()
            if bases:
                names = [names[i] for i in bases.kept] + [f"{names[p]}_base" for p in bases.bases]
            compilers = aot_bridge.Compilers(forward=self._compiler("forward", names),
                                             backward=self._compiler("backward", names),
                                             inference=self._compiler("inference", names),
                                             partition=partition.partitioner(shared_storage(aot_inputs)))
            if self.symbolic:
                aot_inputs = self._symbolic_inputs(fakes, plan, bases)
            self._inference = None
            # Tracing runs the graph's own grad-mode switches: the caller gets its mode back.
            with torch.set_grad_enabled(torch.is_grad_enabled()):
                result = aot_bridge.aot_compile(traced, aot_inputs, compilers, autograd_decomposition_table())
        except CompiledPathError:
            raise
        except _expected_failures() as e:
            raise CompiledPathError(_describe(e)) from e
        except Exception as e:  # noqa: BLE001 - a bug of ours: warned, and the graph still runs
            if _saved_value_overwritten(e):
                # The program writes a value its backward needs (``a = x * y; x.add_(1)``):
                # eager raises in ``backward()``, the joint trace raises now.
                raise CompiledPathError(f"the program's backward reads a value it overwrites: {_describe(e)}") from e
            if metadata_mutation:
                # AOT autograd replays an input's metadata change (x.t_()) only alone: with a
                # data change of that input it copies across shapes. A documented limit.
                raise CompiledPathError(f"metadata mutation of an input AOT autograd cannot replay here "
                                        f"(with other changes of it): {_describe(e)}") from e
            reason = f"internal error: {_describe(e)}"
            INTERNAL_ERRORS.append(reason)
            del INTERNAL_ERRORS[:-20]
            warnings.warn(f"capture compiled path: {reason}; running the graph as captured", InternalErrorWarning,
                          stacklevel=2)
            log.warning("compiled path: %s; running the graph as captured", reason, exc_info=True)
            raise CompiledPathError(reason) from e
        direct = self._inference if result.plain and not plan and not bases else None
        return _Variant(result.compiled, plan, bases, result.needs_autograd, direct)

    def _symbolic_inputs(self, fakes: list, plan, bases) -> list:
        """What AOT autograd traces a graph with symbolic sizes with: its placeholders'
        symbolic fakes (the trace's ShapeEnv, so the relations AOT autograd and the code
        generator rely on are guarded with the trace's) and the lifted tensors faked
        statically. Traced from real inputs its sizes would be static."""
        if plan or plan.metadata_written:
            raise CompiledPathError("symbolic sizes (dynamic shapes) with outputs aliasing inputs or "
                                    "intermediates, a grad-mode change or an input's metadata changed "
                                    "are not compiled yet")
        if plan.written:      # BatchNorm's running statistics: AOT autograd's float-size pass fails on them
            raise CompiledPathError("symbolic sizes (dynamic shapes) with written inputs (e.g. BatchNorm's "
                                    "running statistics) are not compiled yet")
        return bases.inputs(fakes) if bases else fakes      # a tensor passed twice (tied weights): once

    def _compiler(self, role: str, input_names: list):
        def compile_graph(gm: fx.GraphModule, example_inputs: list):
            gm.meta[GRAPH_ROLE] = role
            _name_inputs(gm, input_names)
            compiled = self.compile_fn(gm, list(example_inputs))
            self.graphs.append((role, compiled))
            if self.on_graph is not None:
                self.on_graph()
            held = layout.held_to_layouts(compiled, gm, example_inputs, self.layout_fixups)
            if role == "inference":
                self._inference = held
            dependencies = gm.meta.get("grad_dependencies")
            return held if dependencies is None else grad_presence.without_unused_gradients(held, dependencies)
        return compile_graph

    def _variant(self, key, flat: list):
        """The graph compiled for inputs aliasing each other as ``flat``'s do (None: run
        as captured, with the reason in the log)."""
        reason = None
        if len(self._variants) >= MAX_ALIAS_VARIANTS:
            reason = f"more than {MAX_ALIAS_VARIANTS} patterns of aliased inputs"
        elif self.symbolic:        # a trace now would add relations after the entry's guards were taken
            reason = "symbolic sizes (dynamic shapes): another pattern of aliased inputs after the first call"
        else:
            try:
                self._variants[key] = self._compile(list(flat))
                return self._variants[key]
            except CompiledPathError as e:
                reason = str(e)
        self._variants[key] = None
        log.warning("compiled path: running a graph as captured for inputs aliased as %s: %s", key, reason)
        return None

    @property
    def fast_path(self) -> bool:
        """Calls go straight to the compiled inference graph (nothing to put back)."""
        return self._direct is not None

    @property
    def entry(self):
        """A callable that does exactly what calling this object does, with less in between
        per call: on the fast path the fast path's function itself (no method call first).
        What a rewritten frame calls."""
        return self._direct_call if self._direct_call is not None else self

    def source(self) -> str:
        """The generated code of every functional graph compiled so far, by role (for
        CAPTURE_DEBUG_DIR; a graph whose compiler offers no ``source()`` is named only)."""
        parts = []
        for role, compiled in self.graphs:
            generated = getattr(compiled, "source", None)
            text = generated() if callable(generated) else f"# {type(compiled).__name__}: no generated source\n"
            parts.append(f"# ---- {role} graph ----\n{text}")
        return "\n".join(parts)

    def kernels_by_role(self) -> dict:
        """{role: [compiled graph, ...]} of the graphs compiled so far."""
        out: dict = {}
        for role, compiled in self.graphs:
            out.setdefault(role, []).append(compiled)
        return out


@dataclasses.dataclass
class _Variant:
    compiled: object              # AOT autograd's boxed callable
    plan: OutputAliases           # outputs to put back as eager has them; which inputs the graph writes
    bases: InputBases             # written inputs sharing storage, handed over as their base
    needs_autograd: bool
    direct: object = None         # the compiled inference graph, when AOT's wrapper has nothing to do


def _direct_call(direct, lifted_values, output_kind: str):
    """The fast path of ``CompiledCapture.__call__``: an inference graph with no input
    mutation and no aliased output. AOT autograd's wrapper would only turn grad mode off
    around it (outputs must not require grad when an input does); layouts are still held.
    ``direct`` is the ``layout.held_to_layouts`` callable, whose ``direct`` makes all of
    that one generated function (a graph with symbolic sizes has none: this closure does
    it). ``lifted_values``: None when the graph lifted no parameter or buffer."""
    if direct.direct is not None:
        return direct.direct(lifted_values, output_kind)

    def direct_call(*args):
        flat = [*args, *lifted_values()] if lifted_values is not None else [*args]
        if not _grad_enabled():
            return restore_output_kind(direct(flat), output_kind)
        _set_grad_enabled(False)
        try:
            outs = direct(flat)
        finally:
            _set_grad_enabled(True)
        return restore_output_kind(outs, output_kind)
    return direct_call


def variant_key(flat: list) -> tuple:
    """What a compiled variant depends on: which inputs share storage, and where in it."""
    return alias_pattern(flat), input_bases.key(flat)


def alias_pattern(flat: list) -> tuple:
    """For each input, the position of the first input sharing its storage."""
    first: dict = {}
    pattern = []
    for i, x in enumerate(flat):
        if isinstance(x, torch.Tensor) and x.numel() > 0:
            key = x.untyped_storage().data_ptr()
            pattern.append(first.setdefault(key, i))
        else:
            pattern.append(i)
    return tuple(pattern)


def _refuse_with_autograd(flat_inputs: list, plan: OutputAliases, bases) -> None:
    """What AOT autograd's joint graph gets wrong (found by the differential programs):
    an input requiring grad whose metadata the graph changes (``x.t_()``), and written
    inputs sharing storage (handed over as their base) when any input requires grad."""
    grad = [i for i, x in enumerate(flat_inputs) if isinstance(x, torch.Tensor) and x.requires_grad]
    if any(i in plan.metadata_written for i in grad):
        raise CompiledPathError("metadata mutation (t_(), resize_ ...) of an input that requires grad")
    if bases.members and grad:
        raise CompiledPathError("written inputs sharing storage while inputs require grad")


def _name_inputs(gm: fx.GraphModule, names: list) -> None:
    """Placeholders standing for the traced function's inputs named after the captured
    graph's (``l_x``, ``linear_0_weight``) instead of ``primals_1`` / ``arg0_1``, so the
    generated code reads like the program."""
    taken = {n.name for n in gm.graph.nodes}
    for node in gm.graph.nodes:
        position = aot_bridge.input_position(node.meta.get("desc")) if node.op == "placeholder" else None
        if position is not None and position < len(names):
            name = names[position]
            if name.isidentifier() and name not in taken:
                taken.discard(node.name)
                node._rename(name)
                node.target = node.name
                taken.add(node.name)
    gm.recompile()


def shared_storage(flat: list) -> frozenset:
    """Positions of the inputs sharing storage with another input."""
    pattern = alias_pattern(flat)
    shared = {p for i, p in enumerate(pattern) if p != i}
    return frozenset(i for i, p in enumerate(pattern) if p in shared)


def _saved_value_overwritten(e: BaseException) -> bool:
    """Autograd's error for a tensor saved for the backward and then changed in place."""
    return isinstance(e, RuntimeError) and "modified by an inplace operation" in str(e)


def _describe(e: BaseException) -> str:
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"

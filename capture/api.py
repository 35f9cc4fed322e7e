"""capture.compile / explain / reset: the public entry points."""
from __future__ import annotations

import dataclasses
import functools
import types

import torch

from capture import _C, sharing, state
from capture._C import call_with_callback
from capture.backends import compiled_path_refusal, eager_backend, lookup_backend
from capture.convert_frame import FrameCompiler
from capture.dynamic import check_mode
from capture.records import Recorder
from capture.skip_policy import force


def _forced_codes(fn) -> tuple:
    """Code objects traced even if they live in a skipped file (the user asked for them)."""
    target = getattr(fn, "__func__", fn)
    code = getattr(target, "__code__", None)
    if code is None:
        return ()
    force(code)
    return (code,)


OPTIONS = ("cache_limit", "suppress_errors")  # keys of capture.compile(options=...)


def compile(fn_or_module=None, *, backend="codegen", fullgraph=False, dynamic=None, options=None):
    """Compile a function or nn.Module; usable as ``@compile`` or ``@compile(...)``."""
    if fn_or_module is None:
        return functools.partial(compile, backend=backend, fullgraph=fullgraph, dynamic=dynamic, options=options)
    backend_fn = lookup_backend(backend)
    check_mode(dynamic)
    if options is not None and not isinstance(options, dict):
        raise TypeError(f"capture.compile: options must be a dict, got {type(options).__name__}")
    unknown = set(options or {}) - set(OPTIONS)
    if unknown:
        raise ValueError(f"capture.compile: unknown option(s) {sorted(unknown)}; known: {sorted(OPTIONS)}")
    if isinstance(fn_or_module, torch.nn.Module):
        sharing.note_compiled(fn_or_module)
        forward = type(fn_or_module).forward
        compiler = FrameCompiler(backend_fn, fullgraph, options, force_codes=_forced_codes(forward), dynamic=dynamic)
        return CompiledModule(fn_or_module, compiler)
    if not callable(fn_or_module):
        raise TypeError(f"capture.compile expects a function or nn.Module, got {type(fn_or_module).__name__}")
    compiler = FrameCompiler(backend_fn, fullgraph, options, force_codes=_forced_codes(fn_or_module), dynamic=dynamic)
    return _wrap_function(fn_or_module, compiler)


def _wrap_function(fn, compiler):
    @functools.wraps(fn)
    def compiled_function(*args, **kwargs):
        # fn runs with the compiler as this thread's callback (set and restored in C)
        return call_with_callback(compiler, fn, args, kwargs)

    compiled_function._capture_original = fn
    compiled_function._capture_compiler = compiler
    return compiled_function


class CompiledModule(torch.nn.Module):
    """Behaves like the wrapped module (attributes, state_dict, train/eval, hooks);
    calls run its forward compiled."""

    def __init__(self, module: torch.nn.Module, compiler: FrameCompiler):
        object.__setattr__(self, "_capture_orig_mod", module)
        object.__setattr__(self, "_capture_compiler", compiler)

    @property
    def _orig_mod(self):
        return self._capture_orig_mod

    def __call__(self, *args, **kwargs):
        return call_with_callback(self._capture_compiler, self._capture_orig_mod, args, kwargs)

    def forward(self, *args, **kwargs):
        return call_with_callback(self._capture_compiler, self._capture_orig_mod.forward, args, kwargs)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_capture_orig_mod"), name)

    def __setattr__(self, name, value):
        setattr(self._capture_orig_mod, name, value)

    def __delattr__(self, name):
        delattr(self._capture_orig_mod, name)

    def __dir__(self):
        return dir(self._capture_orig_mod)

    def __repr__(self):
        return f"CompiledModule({self._capture_orig_mod!r})"

    def __len__(self):
        return len(self._capture_orig_mod)

    def __iter__(self):
        return iter(self._capture_orig_mod)

    def __getitem__(self, key):
        return self._capture_orig_mod[key]


def _delegate(name):
    def method(self, *args, **kwargs):
        result = getattr(self._capture_orig_mod, name)(*args, **kwargs)
        return self if result is self._capture_orig_mod else result
    method.__name__ = name
    method.__doc__ = f"Delegates to the wrapped module's {name}()."
    return method


for _name, _value in vars(torch.nn.Module).items():
    if isinstance(_value, types.FunctionType) and not _name.startswith("__") and _name not in ("forward",):
        setattr(CompiledModule, _name, _delegate(_name))


# ---------------- explain ----------------

@dataclasses.dataclass
class ExplainOutput:
    """What one run captured.

    ``break_reasons``: each graph break that ended a captured graph, with the user's
    file:line (as torch.compile lists them). ``eager_breaks``: breaks with nothing
    captured before them in their frame (a frame that ran eagerly, a print before any
    tensor op). ``graph_break_count`` follows torch.compile's definition,
    ``graph_count - 1``, so the two explains compare like for like."""

    graphs: list
    graph_count: int
    graph_break_count: int
    break_reasons: list  # list[BreakReason]
    op_count: int
    ops_per_graph: list
    guards: list
    out: object = None
    eager_breaks: list = dataclasses.field(default_factory=list)
    specializations: list = dataclasses.field(default_factory=list)  # symbolic sizes made numbers, with the line
    example_inputs: list = dataclasses.field(default_factory=list, repr=False)  # per graph

    @property
    def all_breaks(self) -> list:
        return list(self.break_reasons) + list(self.eager_breaks)

    def compiled_path_fallbacks(self) -> list:
        """(graph index, reason) for each graph the compiled path (the code generator
        backends) would run as captured instead of compiled. It traces every graph to
        aten, so it is computed on demand, not by ``explain`` itself."""
        found = []
        for i, (gm, inputs) in enumerate(zip(self.graphs, self.example_inputs)):
            reason = compiled_path_refusal(gm, inputs)
            if reason is not None:
                found.append((i, reason))
        return found

    def __str__(self):
        lines = [f"Graph count: {self.graph_count}", f"Graph break count: {self.graph_break_count}",
                 f"Op count: {self.op_count}"]
        if self.break_reasons:
            lines.append("Break reasons:")
            lines += [f"  {i + 1}. {r.reason}\n     at {r.where}" for i, r in enumerate(self.break_reasons)]
        if self.eager_breaks:
            lines.append("Breaks with nothing captured before them:")
            lines += [f"  {i + 1}. {r.reason}\n     at {r.where}" for i, r in enumerate(self.eager_breaks)]
        for i, ops in enumerate(self.ops_per_graph):
            lines.append(f"Ops in graph {i}: {', '.join(ops)}")
        if self.specializations:
            lines.append("Specialized sizes:")
            lines += [f"  {s}" for s in self.specializations]
        if self.guards:
            lines.append("Guards:")
            lines += [f"  {g}" for g in self.guards]
        return "\n".join(lines)


def _op_names(gm) -> list:
    names = []
    for node in gm.graph.nodes:
        if node.op == "call_function":
            names.append(getattr(node.target, "__name__", str(node.target)))
        elif node.op in ("call_method", "call_module"):
            names.append(str(node.target))
    return [n for n in names if n != "getitem"]


def explain(fn, *explain_args, **explain_kwargs):
    """``capture.explain(fn)(*args)`` runs fn once under capture and reports what it captured."""
    if explain_args or explain_kwargs:
        return explain(fn)(*explain_args, **explain_kwargs)

    def run(*args, **kwargs):
        reset()
        recorder = Recorder()
        target = fn._capture_orig_mod if isinstance(fn, CompiledModule) else getattr(fn, "_capture_original", fn)
        forced = _forced_codes(type(target).forward if isinstance(target, torch.nn.Module) else target)
        examples = []

        def recording_backend(gm, example_inputs):
            examples.append(list(example_inputs))
            return eager_backend(gm, example_inputs)
        compiler = FrameCompiler(recording_backend, False, None, force_codes=forced, recorder=recorder)
        out = call_with_callback(compiler, target, args, kwargs)
        reset()
        ops = [_op_names(g) for g in recorder.graphs]
        return ExplainOutput(graphs=recorder.graphs, graph_count=len(recorder.graphs),
                             graph_break_count=len(recorder.graphs) - 1, break_reasons=recorder.break_reasons,
                             op_count=sum(len(o) for o in ops), ops_per_graph=ops, guards=recorder.guards, out=out,
                             eager_breaks=recorder.eager_breaks, specializations=recorder.specializations,
                             example_inputs=examples)
    return run


def reset():
    """Drop every cache entry, skip mark, record and generated code (capture.state);
    later calls recompile from scratch."""
    state.reset()

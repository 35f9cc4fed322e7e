"""Backends: what turns a captured FX graph into something callable.

* ``"codegen"`` (the default): our code generator, by device — Triton kernels for CUDA
  tensors, C kernels for CPU tensors;
* ``"triton"`` / ``"cpu"``: force one emitter (``"triton"`` on CPU tensors needs
  ``TRITON_INTERPRET=1``, the way the tests run Triton kernels without a GPU);
* ``"eager"``: run the captured graph as is.

The code generator backends go through the compiled path (``compiled_path``: eager's
aliasing, mutations, grad mode and random numbers at the boundary, a compiled backward),
each emitter compiling the functional graphs it hands over; a graph the path cannot
take runs as captured, with the reason in the log and ``capture.explain``.

Built-in backends are named (``BACKENDS``); any other callable is a user backend,
wrapped in ``UserBackend`` so that its failures reach the user as named errors
(``capture.exc.BackendCompilerFailed`` and its kinds) instead of looking like ours.
"""
from __future__ import annotations

import functools
import logging
import os
import warnings

import torch

import codegen
import fx_graph
from capture.exc import BackendCompilerFailed, BackendOutputMismatch, BackendReturnedNonCallable

_warned: set = set()
_log = logging.getLogger("capture.output_code")


def eager_backend(gm: torch.fx.GraphModule, example_inputs: list):
    return gm.forward


def _on_cuda(example_inputs) -> bool:
    tensors = [x for x in example_inputs if isinstance(x, torch.Tensor)]
    return bool(tensors) and all(x.is_cuda for x in tensors)


def compiled_path(gm: torch.fx.GraphModule, example_inputs: list, compile_fn, fused_attention: bool = False):
    """``gm`` through the compiled path (``fx_graph.compile_captured``), every functional
    graph (forward, backward, inference) compiled by an emitter's
    ``compile_fn(functional_gm, example_inputs) -> callable``. A graph the path cannot
    take runs as captured; the reason goes to the log (``capture.explain`` lists it too:
    ``compiled_path_fallbacks()``)."""
    try:
        return fx_graph.compile_captured(gm, example_inputs, compile_fn, fused_attention)
    except fx_graph.CompiledPathError as e:
        _log.info("compiled path: running a graph as captured: %s", e)
        return gm.forward


def compiled_path_refusal(gm: torch.fx.GraphModule, example_inputs: list) -> str | None:
    """Why the compiled path would run ``gm`` as captured (None: it compiles it, or the
    graph does not take it). The functional graphs are not handed to an emitter: no
    kernels are built."""
    if not _takes_compiled_path(gm, example_inputs):
        return None
    try:
        fx_graph.compile_captured(gm, example_inputs, lambda functional_gm, inputs: functional_gm)
    except fx_graph.CompiledPathError as e:
        return str(e)
    return None


def _generate(gm: torch.fx.GraphModule, example_inputs: list, emitter: str):
    """``gm`` through the compiled path with ``emitter``; an inference graph with symbolic
    sizes (dynamic shapes) goes to ``codegen.compile_graph``, which retraces it from its
    own symbolic fakes (a training one: the compiled path traces those fakes too)."""
    if not _takes_compiled_path(gm, example_inputs):
        return codegen.compile_graph(gm, example_inputs, emitter=emitter)
    return compiled_path(gm, example_inputs, functools.partial(codegen.compile_functional, emitter=emitter),
                         fused_attention=codegen.has_template(emitter, "attention"))


def _takes_compiled_path(gm: torch.fx.GraphModule, example_inputs: list) -> bool:
    """Every static graph; one with symbolic sizes when it records autograd (training)."""
    return not fx_graph.has_symbolic_sizes(gm) or fx_graph.needs_autograd(gm, example_inputs)


def triton_backend(gm: torch.fx.GraphModule, example_inputs: list):
    """Triton kernels: only on a GPU or under TRITON_INTERPRET=1 (CPU tensors); anywhere
    else the graph runs as captured, with one warning."""
    if _on_cuda(example_inputs) or os.environ.get("TRITON_INTERPRET") == "1":
        return _generate(gm, example_inputs, "triton")
    if "triton" not in _warned:
        _warned.add("triton")
        warnings.warn("capture: Triton kernels need a CUDA device or TRITON_INTERPRET=1; "
                      "graphs run with the 'eager' backend", stacklevel=2)
        _log.info("triton backend: running graphs eagerly")
    return gm.forward


def cpu_backend(gm: torch.fx.GraphModule, example_inputs: list):
    """C kernels for CPU tensors (a graph on another device runs as captured, with a reason)."""
    return _generate(gm, example_inputs, "cpp")


def codegen_backend(gm: torch.fx.GraphModule, example_inputs: list):
    """The default: Triton for graphs on CUDA tensors, C for everything else."""
    if _on_cuda(example_inputs):
        return triton_backend(gm, example_inputs)
    return cpu_backend(gm, example_inputs)


BACKENDS = {"codegen": codegen_backend, "cpu": cpu_backend, "eager": eager_backend, "triton": triton_backend}


class UserBackend:
    """A callable ``backend(gm, example_inputs)`` given by the user (torch.compile's
    contract). Its exception is raised as ``BackendCompilerFailed`` (cause chained), a
    non-callable result as ``BackendReturnedNonCallable``; the callable it returns is
    checked on every call to give the graph's outputs (``BackendOutputMismatch``)."""

    def __init__(self, fn):
        self.fn = fn
        self.name = getattr(fn, "__name__", None) or type(fn).__name__

    def __call__(self, gm: torch.fx.GraphModule, example_inputs: list, where: str | None = None):
        """The checked callable for ``gm`` (``where``: the frame's file:line, for errors)."""
        outputs = _output_count(gm)  # before the backend, which may rewrite the graph
        try:
            compiled = self.fn(gm, example_inputs)
        except Exception as e:
            raise BackendCompilerFailed(self.name, f"{type(e).__name__}: {e}", where) from e
        if not callable(compiled):
            raise BackendReturnedNonCallable(self.name, f"returned {type(compiled).__name__}, not a callable",
                                             where)
        return _checked_outputs(compiled, outputs, self.name, where)

    def __repr__(self):
        return f"UserBackend({self.fn!r})"


def _output_count(gm: torch.fx.GraphModule) -> int:
    for node in reversed(gm.graph.nodes):
        if node.op == "output":
            return len(node.args[0])
    raise ValueError("graph without an output node")


def _checked_outputs(compiled, count: int, name: str, where: str | None):
    """``compiled`` raising BackendOutputMismatch unless it gives ``count`` tensors in a
    tuple or list (the rewritten frame indexes them: anything else would be read wrong)."""
    tensor = torch.Tensor

    def call_user_backend(*inputs):
        out = compiled(*inputs)
        if type(out) in (tuple, list) and len(out) == count:
            for item in out:
                if not isinstance(item, tensor):
                    break
            else:
                return out
        raise BackendOutputMismatch(name, _mismatch(out, count), where)
    call_user_backend.compiled = compiled
    return call_user_backend


def _mismatch(out, count: int) -> str:
    if not isinstance(out, (tuple, list)):
        return f"gave {type(out).__name__}, not a tuple or list of the graph's {count} tensor output(s)"
    if len(out) != count:
        return f"gave {len(out)} output(s); the graph has {count}"
    bad = next(i for i, item in enumerate(out) if not isinstance(item, torch.Tensor))
    return f"gave {type(out[bad]).__name__} as output {bad}; the graph gives a tensor there"


def graph_entry(compiled):
    """What a rewritten frame calls for a backend's result ``compiled``: a compiled-path
    graph's ``entry`` (the same call with less in between), anything else itself."""
    return compiled.entry if isinstance(compiled, fx_graph.CompiledCapture) else compiled


def compile_with(backend, gm: torch.fx.GraphModule, example_inputs: list, where: str):
    """``backend`` (looked up) applied to ``gm``; a user backend's failures raise
    BackendCompilerFailed naming ``where``, the frame the graph comes from."""
    if isinstance(backend, UserBackend):
        return backend(gm, example_inputs, where)
    return backend(gm, example_inputs)


def lookup_backend(backend):
    if isinstance(backend, UserBackend) or any(backend is fn for fn in BACKENDS.values()):
        return backend
    if callable(backend):
        return UserBackend(backend)
    if isinstance(backend, str):
        if backend not in BACKENDS:
            raise ValueError(f"capture.compile: unknown backend {backend!r}; "
                             f"use one of {sorted(BACKENDS)} or a callable backend(gm, example_inputs)")
        return BACKENDS[backend]
    raise TypeError(f"capture.compile: backend must be a name or a callable, got {type(backend).__name__}")

"""Backends: what turns a captured FX graph into something callable.

* ``"codegen"`` (the default): our code generator, by device — Triton kernels for CUDA
  tensors, C kernels for CPU tensors;
* ``"triton"`` / ``"cpu"``: force one emitter (``"triton"`` on CPU tensors needs
  ``TRITON_INTERPRET=1``, the way the tests run Triton kernels without a GPU);
* ``"eager"``: run the captured graph as is.

The code generator itself decides when a graph runs as captured (and says why).

Built-in backends are named (``BACKENDS``); any other callable is a user backend,
wrapped in ``UserBackend`` so that its failures reach the user as named errors
(``capture.exc.BackendCompilerFailed`` and its kinds) instead of looking like ours.
"""
from __future__ import annotations

import logging
import os
import warnings

import torch

import codegen
from capture.exc import BackendCompilerFailed, BackendOutputMismatch, BackendReturnedNonCallable

_warned: set = set()


def eager_backend(gm: torch.fx.GraphModule, example_inputs: list):
    return gm.forward


def _on_cuda(example_inputs) -> bool:
    tensors = [x for x in example_inputs if isinstance(x, torch.Tensor)]
    return bool(tensors) and all(x.is_cuda for x in tensors)


def triton_backend(gm: torch.fx.GraphModule, example_inputs: list):
    """Triton kernels: only on a GPU or under TRITON_INTERPRET=1 (CPU tensors); anywhere
    else the graph runs as captured, with one warning."""
    if _on_cuda(example_inputs) or os.environ.get("TRITON_INTERPRET") == "1":
        return codegen.compile_graph(gm, example_inputs, emitter="triton")
    if "triton" not in _warned:
        _warned.add("triton")
        warnings.warn("capture: Triton kernels need a CUDA device or TRITON_INTERPRET=1; "
                      "graphs run with the 'eager' backend", stacklevel=2)
        logging.getLogger("capture.output_code").info("triton backend: running graphs eagerly")
    return gm.forward


def cpu_backend(gm: torch.fx.GraphModule, example_inputs: list):
    """C kernels for CPU tensors (a graph on another device runs as captured, with a reason)."""
    return codegen.compile_graph(gm, example_inputs, emitter="cpp")


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

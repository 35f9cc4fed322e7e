"""Backends: what turns a captured FX graph into something callable.

* ``"codegen"`` (the default): our code generator, by device — Triton kernels for CUDA
  tensors, C kernels for CPU tensors;
* ``"triton"`` / ``"cpu"``: force one emitter (``"triton"`` on CPU tensors needs
  ``TRITON_INTERPRET=1``, the way the tests run Triton kernels without a GPU);
* ``"eager"``: run the captured graph as is.

The code generator itself decides when a graph runs as captured (and says why).
"""
from __future__ import annotations

import logging
import os
import warnings

import torch

import codegen

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


def lookup_backend(backend):
    if callable(backend):
        return backend
    if isinstance(backend, str):
        if backend not in BACKENDS:
            raise ValueError(f"capture.compile: unknown backend {backend!r}; "
                             f"use one of {sorted(BACKENDS)} or a callable backend(gm, example_inputs)")
        return BACKENDS[backend]
    raise TypeError(f"capture.compile: backend must be a name or a callable, got {type(backend).__name__}")

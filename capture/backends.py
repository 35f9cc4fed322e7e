"""Backends: what turns a captured FX graph into something callable."""
from __future__ import annotations

import logging
import os
import warnings

import torch

import codegen

_warned: set = set()


def eager_backend(gm: torch.fx.GraphModule, example_inputs: list):
    return gm.forward


def triton_backend(gm: torch.fx.GraphModule, example_inputs: list):
    """Our Triton code generator's entry point.

    Kernels only run on a GPU or under TRITON_INTERPRET=1 (CPU tensors); anywhere else
    the graph runs as captured, with one warning. The generator itself runs graphs that
    need autograd as captured too (and says so once in the log).
    """
    tensors = [x for x in example_inputs if isinstance(x, torch.Tensor)]
    on_gpu = bool(tensors) and all(x.is_cuda for x in tensors)
    if on_gpu or os.environ.get("TRITON_INTERPRET") == "1":
        return codegen.compile_graph(gm, example_inputs)
    if "triton" not in _warned:
        _warned.add("triton")
        warnings.warn("capture: Triton kernels need a CUDA device or TRITON_INTERPRET=1; "
                      "graphs run with the 'eager' backend", stacklevel=2)
        logging.getLogger("capture.output_code").info("triton backend: running graphs eagerly")
    return gm.forward


BACKENDS = {"eager": eager_backend, "triton": triton_backend}


def lookup_backend(backend):
    if callable(backend):
        return backend
    if isinstance(backend, str):
        if backend not in BACKENDS:
            raise ValueError(f"capture.compile: unknown backend {backend!r}; "
                             f"use one of {sorted(BACKENDS)} or a callable backend(gm, example_inputs)")
        return BACKENDS[backend]
    raise TypeError(f"capture.compile: backend must be a name or a callable, got {type(backend).__name__}")

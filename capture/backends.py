"""Backends: what turns a captured FX graph into something callable."""
from __future__ import annotations

import logging
import warnings

import torch

_warned: set = set()


def eager_backend(gm: torch.fx.GraphModule, example_inputs: list):
    return gm.forward


def triton_backend(gm: torch.fx.GraphModule, example_inputs: list):
    """Our Triton code generator's entry point.

    Kernels only run on a GPU or under TRITON_INTERPRET=1; the generator itself
    is not in this build yet, so every graph runs as captured, with one warning.
    """
    if "triton" not in _warned:
        _warned.add("triton")
        warnings.warn("capture: the Triton code generator is not available yet; "
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

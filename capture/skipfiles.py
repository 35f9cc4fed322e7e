"""Which files the hook leaves alone, and which library code the tracer won't inline.

Frames from the standard library, torch, triton, numpy, test infrastructure and our
own packages run as they are. Calls into them from traced code are graph breaks,
except for torch callables (graph ops) and a few pure stdlib modules worth inlining.
"""
from __future__ import annotations

import os
import sys
import sysconfig

import torch

def _skip_dirs() -> tuple:
    import bytecode as _bytecode
    import triton
    dirs = {sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"], os.path.dirname(torch.__file__),
            os.path.dirname(triton.__file__), os.path.dirname(_bytecode.__file__)}
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for pkg in ("capture", "guards", "fx_graph", "codegen"):
        dirs.add(os.path.join(here, pkg))
    for name in ("numpy", "_pytest", "pytest", "pluggy", "hypothesis", "typing_extensions"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            dirs.add(os.path.dirname(module.__file__))
    return tuple(d.rstrip(os.sep) + os.sep for d in dirs)


_SKIP_DIRS = None


def is_skipped_file(filename: str) -> bool:
    global _SKIP_DIRS
    if _SKIP_DIRS is None:
        _SKIP_DIRS = _skip_dirs()
    return filename.startswith(_SKIP_DIRS) or filename.startswith("<frozen")




# Pure-Python stdlib modules whose functions are safe and useful to inline.
_INLINABLE_STDLIB = ("typing.py", "dataclasses.py", "collections/__init__.py", "enum.py", "abc.py",
                     "numbers.py", "functools.py", "operator.py", "copy.py")


def is_inlinable_library_file(filename: str) -> bool:
    stdlib = sysconfig.get_paths()["stdlib"].rstrip(os.sep) + os.sep
    return filename.startswith(stdlib) and filename[len(stdlib):] in _INLINABLE_STDLIB


def is_user_file(filename: str) -> bool:
    """Code a break should be attributed to (not a library we skip)."""
    return not is_skipped_file(filename)

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

TORCH_DIR = os.path.dirname(torch.__file__) + os.sep


def is_torch_file(filename: str) -> bool:
    return filename.startswith(TORCH_DIR)


def _dirs(paths) -> tuple:
    return tuple(sorted({p.rstrip(os.sep) + os.sep for p in paths if p}))


def _library_dirs() -> tuple:
    """Installed packages we never trace (torch and what runs beneath us)."""
    import bytecode as _bytecode
    import triton
    dirs = [os.path.dirname(torch.__file__), os.path.dirname(triton.__file__), os.path.dirname(_bytecode.__file__)]
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    dirs += [os.path.join(here, pkg) for pkg in ("capture", "guards", "fx_graph", "codegen")]
    for name in ("numpy", "_pytest", "pytest", "pluggy", "hypothesis", "triton"):
        module = sys.modules.get(name)
        if module is not None and getattr(module, "__file__", None):
            if os.path.basename(module.__file__) == "__init__.py":  # packages only: a single-file
                dirs.append(os.path.dirname(module.__file__))    # module's dirname is site-packages
    return _dirs(dirs)


def _site_dirs() -> tuple:
    import site
    paths = [sysconfig.get_paths().get("purelib"), sysconfig.get_paths().get("platlib")]
    try:
        paths += site.getsitepackages() + [site.getusersitepackages()]
    except AttributeError:  # some virtualenvs lack these
        pass
    return _dirs(paths)


_STDLIB = _dirs([sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"]])
_LIBRARIES = None
_SITE = None


def is_skipped_file(filename: str) -> bool:
    """Standard library (site-packages excluded: third-party models are traced),
    torch, triton, numpy, test tooling and our own packages."""
    global _LIBRARIES, _SITE
    if _LIBRARIES is None:
        _LIBRARIES, _SITE = _library_dirs(), _site_dirs()
    if filename.startswith(_LIBRARIES) or filename.startswith("<frozen"):
        return True
    if filename.startswith(_SITE):
        return False
    return filename.startswith(_STDLIB)


# Pure-Python stdlib modules whose functions are safe and useful to inline.
_INLINABLE_STDLIB = ("typing.py", "dataclasses.py", "collections/__init__.py", "_collections_abc.py", "enum.py",
                     "abc.py", "numbers.py", "functools.py", "operator.py", "copy.py",
                     "contextlib.py")


_INLINABLE_FROZEN = ("<frozen _collections_abc>", "<frozen abc>")  # 3.11 freezes these modules


def is_inlinable_library_file(filename: str) -> bool:
    if filename in _INLINABLE_FROZEN:
        return True
    stdlib = sysconfig.get_paths()["stdlib"].rstrip(os.sep) + os.sep
    return filename.startswith(stdlib) and filename[len(stdlib):] in _INLINABLE_STDLIB


def is_user_file(filename: str) -> bool:
    """Code a break should be attributed to (not a library we skip)."""
    return not is_skipped_file(filename)

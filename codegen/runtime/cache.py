"""On-disk cache of generated kernel modules, keyed by the hash of their source.

Each kernel's module (imports, helpers, the ``@triton.jit`` function) is written once
to ``<cache_dir>/<hash[:2]>/k<hash>.py`` — written to a temporary file and renamed, so
concurrent compiles never see half a file — and imported from there: Triton (and its
interpreter) read a kernel's source through ``inspect``, which needs a real file.
Loaded modules are reused within the process; compiled binaries are cached by Triton
itself, under its own cache directory, keyed by the same source.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import threading

from codegen import config

_loaded: dict = {}
_lock = threading.Lock()


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()


def kernel_path(source: str):
    key = source_hash(source)
    return config.cache_dir() / key[:2] / f"k{key}.py"


def write_source(source: str):
    """The cached file for ``source`` (written if missing)."""
    path = kernel_path(source)
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".py")
    with os.fdopen(fd, "w") as f:
        f.write(source)
    os.replace(tmp, path)
    return path


def load_module(source: str):
    """The imported module of ``source`` (one per distinct source and process)."""
    key = source_hash(source)
    with _lock:
        path = write_source(source)          # also when loaded: the cache dir may have moved
        module = _loaded.get(key)
        if module is not None:
            return module
        spec = importlib.util.spec_from_file_location(f"capture_kernel_{key[:16]}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        _loaded[key] = module
        return module


def clear_loaded() -> None:
    """Forget imported modules (files stay on disk), also where Triton would keep them
    for good: its registry of @jit functions by name, and the interpreter's rewritten
    functions (TRITON_INTERPRET=1)."""
    with _lock:
        names = {module.__name__ for module in _loaded.values()}
        _loaded.clear()
    registry = _triton_table("triton.runtime.jit", "_triton_jit_function_registry")
    for key in [k for k in registry if k.split(":", 1)[0] in names]:
        registry.pop(key, None)
    interpreter = sys.modules.get("triton.runtime.interpreter")
    rewritten = getattr(getattr(interpreter, "InterpretedFunction", None), "rewritten_fn", None)
    if isinstance(rewritten, dict):
        for fn in [f for f in rewritten if getattr(f, "__module__", None) in names]:
            rewritten.pop(fn, None)


def _triton_table(module_name: str, attr: str) -> dict:
    module = sys.modules.get(module_name)  # not imported: nothing registered
    table = getattr(module, attr, None)
    return table if isinstance(table, dict) else {}

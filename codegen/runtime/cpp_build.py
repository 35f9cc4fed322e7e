"""Compile a graph's C kernels with the system compiler and load them without torch's
extension build: one shared object per graph, plain C ABI, loaded with ``ctypes`` and
called through ``codegen._C.Kernel`` (``bind``).

* The compiler and its flags are detected once per process (``toolchain()``): ``$CC`` or
  ``gcc``/``cc``, with ``-O3 -march=native`` and OpenMP if they work here, and glibc's
  vector math library (``-lmvec``) if it links. No fast-math: ``-ffp-contract=off``
  (eager rounds after every op), ``-fno-math-errno`` (lets ``sqrt`` be one instruction;
  values are the same), ``-fwrapv`` (integer overflow wraps like torch's).
* A graph's source is cached on disk by the hash of (source, compiler, flags, CPU):
  ``<CAPTURE_CACHE_DIR>/cpp_kernels/<hash[:2]>/g<hash>.so``, written to a temporary file
  and renamed, so concurrent processes never load half a file; a second process loads
  it without compiling. Loaded libraries are kept per process.
* A compile error raises ``CompileError`` with the compiler's message; the caller runs
  the graph as captured and says why.
"""
from __future__ import annotations

import ctypes
import dataclasses
import hashlib
import os
import shutil
import subprocess
import tempfile
import threading
import warnings

from codegen import config
from codegen._C import Kernel

_lock = threading.Lock()
_loaded: dict = {}
_toolchain = None


class CompileError(RuntimeError):
    """The system compiler rejected generated code (a bug of ours)."""


class NoCompiler(RuntimeError):
    """No working C compiler here: graphs run as captured."""


_warned: set = set()


def warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(f"capture: {message}; graphs on CPU tensors run as captured", stacklevel=3)


@dataclasses.dataclass(frozen=True)
class Toolchain:
    compiler: str
    version: str
    flags: tuple
    libs: tuple
    vector_math: bool

    def key(self) -> str:
        return "\n".join([self.compiler, self.version, " ".join(self.flags), " ".join(self.libs), _cpu_id()])


def _cpu_id() -> str:
    """What ``-march=native`` depends on: the CPU model and its feature flags."""
    try:
        with open("/proc/cpuinfo") as f:
            text = f.read()
    except OSError:
        return os.uname().machine
    wanted = [line for line in text.splitlines() if line.startswith(("model name", "flags"))][:2]
    return hashlib.sha256("\n".join(wanted).encode()).hexdigest()[:16]


def _try(compiler, flags, libs, source="int main(void) { return 0; }\n") -> bool:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "probe.c")
        with open(path, "w") as f:
            f.write(source)
        cmd = [compiler, *flags, "-shared", "-fPIC", path, "-o", os.path.join(tmp, "probe.so"), *libs]
        return subprocess.run(cmd, capture_output=True).returncode == 0


def toolchain() -> Toolchain:
    """The compiler and flags this machine supports (probed once)."""
    global _toolchain
    with _lock:
        if _toolchain is None:
            try:
                _toolchain = _probe()
            except NoCompiler as e:
                _toolchain = e                   # asked once per process
        if isinstance(_toolchain, NoCompiler):
            raise _toolchain
        return _toolchain


def forget_toolchain() -> None:
    """Probe again on the next build (after CC or the machine changed)."""
    global _toolchain
    with _lock:
        _toolchain = None


_VECTOR_MATH_PROBE = ("#include <math.h>\n#pragma omp declare simd notinbranch\nextern float expf(float);\n"
                      "void f(float *x) { for (int i = 0; i < 64; i++) x[i] = expf(x[i]); }\n")


def _probe() -> Toolchain:
    """Everything at once first (one compiler run on a usual Linux box); one option at a
    time only if that fails."""
    candidates = [os.environ.get("CC")] if os.environ.get("CC") else ["gcc", "cc"]
    compiler = next((shutil.which(c) for c in candidates if shutil.which(c)), None)
    if compiler is None:
        raise NoCompiler("no C compiler found (set CC, or install gcc)")
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    version = version[0] if version else ""
    base = ["-std=gnu11", "-O3", *config.CPP_EXTRA_FLAGS]
    best = base + ["-march=native", "-fopenmp"]
    if _try(compiler, best, ["-lmvec", "-lm"], _VECTOR_MATH_PROBE):
        return Toolchain(compiler, version, tuple(best), ("-lmvec", "-lm"), True)
    if not _try(compiler, base, []):
        raise NoCompiler(f"{compiler} cannot build a shared library here")
    flags = list(base)
    for extra in (["-march=native"], ["-fopenmp"]):
        if _try(compiler, flags + extra, []):
            flags += extra
    if "-fopenmp" not in flags and _try(compiler, flags + ["-fopenmp-simd"], []):
        flags.append("-fopenmp-simd")
    vector_math = _try(compiler, flags, ["-lmvec", "-lm"], _VECTOR_MATH_PROBE)
    libs = ("-lmvec", "-lm") if vector_math else ("-lm",)
    return Toolchain(compiler, version, tuple(flags), libs, vector_math)


def library_path(source: str, tools: Toolchain):
    key = hashlib.sha256((tools.key() + "\n" + source).encode()).hexdigest()
    return config.cpp_cache_dir() / key[:2] / f"g{key}.so", key


def build(source: str):
    """The loaded library (ctypes.CDLL) of ``source``, compiled unless cached on disk."""
    tools = toolchain()
    path, key = library_path(source, tools)
    with _lock:
        lib = _loaded.get(key)
        if lib is None:
            if not path.exists():
                _compile(source, path, tools)
            lib = _loaded[key] = ctypes.CDLL(str(path))
        return lib


def _compile(source: str, path, tools: Toolchain) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, c_file = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".c")
    with os.fdopen(fd, "w") as f:
        f.write(source)
    so_tmp = c_file[:-2] + ".so"
    defines = [f"-DCAPTURE_VECTOR_MATH={1 if tools.vector_math else 0}"]
    cmd = [tools.compiler, *tools.flags, *defines, "-shared", "-fPIC", c_file, "-o", so_tmp, *tools.libs]
    try:
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0:
            raise CompileError(f"{' '.join(cmd)} failed:\n{result.stderr[-4000:]}")
        os.replace(so_tmp, path)
        kept = path.with_suffix(".c")
        os.replace(c_file, kept)                       # the source beside its library, for reading
    finally:
        for leftover in (c_file, so_tmp):
            if os.path.exists(leftover):
                os.unlink(leftover)


def bind(lib, entry: str, n_args: int, name: str):
    """The run ``name`` of ``lib`` as a callable of ``n_args`` ints (its pointers, then its
    sizes), through its packed entry ``entry`` (``int64_t entry(const int64_t *args)``,
    ``cpp_wrapper.KernelRun.entry``): ``codegen._C.Kernel``, one C loop over the ints
    instead of ctypes' per-argument conversion. It keeps ``lib`` loaded."""
    address = ctypes.cast(getattr(lib, entry), ctypes.c_void_p).value
    return Kernel(address, n_args, name, lib)


def clear_loaded() -> None:
    with _lock:
        _loaded.clear()

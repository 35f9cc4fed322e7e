"""Ahead-of-time compilation of generated kernels for a GPU we do not have.

The interpreter runs kernels on CPU tensors but accepts things the real compiler
rejects (and never shows register pressure). ``check_kernels`` compiles generated
kernels for an H100 (``GPUTarget("cuda", 90, 32)``) down to cubins with Triton's own
ptxas and reads registers and spills from ``ptxas -v``, and counts the vector (64/128-bit)
loads and stores in the PTX. With ``aligned=True`` pointer arguments are marked 16-byte
aligned, as the JIT specializes them at launch for tensors torch allocated (without it
nothing vectorizes). With ``divisible=True`` the int arguments (symbolic sizes) are marked
divisible by 16 too: the JIT specializes an int argument that is a multiple of 16 at
launch (Inductor's 16-byte divisibility, one binary each way, never one per size), and
that is what lets a kernel over a symbolic row length load 128 bits at a time.

The numbers are those of the ptxas run that built the cubin, with Triton's flags
(``--regAllocOptLevel=2``, ``--fmad=false``, ...): each child compiles into an empty
Triton cache, so ptxas always runs and prints its report. Running ptxas again on the
PTX with other flags measures a different binary — at the default register allocation
level ptxas caps ``tl.cos`` over a 1031-element vector at 32 registers and spills 4
bytes, where the cubin Triton launches uses 35 and spills nothing.

Compilation runs in child processes (``python -m codegen.emit.sm90 manifest.json``) without
``TRITON_INTERPRET``: in an interpreting process ``@triton.jit`` builds interpreter
objects, and the interpreter's patches of ``triton.language`` outlive kernel runs.
Results are cached next to the kernel cache (``<cache>/aot``), keyed by kernel source,
launch configuration, target and Triton version, so only new kernels are compiled.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

H100 = ("cuda", 90, 32)
_RESULT_VERSION = 4          # bump when TargetResult or the compile options change (cache key)


@dataclasses.dataclass
class TargetResult:
    name: str
    arch: int
    ok: bool
    n_regs: int | None = None
    spill_bytes: int | None = None
    shared_bytes: int | None = None
    vector_accesses: int | None = None   # ld/st.global.v2 / .v4 instructions in the PTX
    scalar_accesses: int | None = None   # other ld/st.global instructions
    mma_instructions: int | None = None  # tensor-core instructions (wgmma / mma) in the PTX
    error: str | None = None


def have_cuda_backend() -> bool:
    try:
        import triton.backends
        return "nvidia" in triton.backends.backends
    except Exception:   # noqa: BLE001 - any import problem means "no backend"
        return False


def _entry(kernel_source, aligned: bool = False, divisible: bool = False) -> dict:
    from codegen.runtime import cache
    return {"path": str(cache.write_source(kernel_source.source)), "name": kernel_source.name, "aligned": aligned,
            "divisible": divisible,
            "source_hash": cache.source_hash(kernel_source.source),
            "signature": kernel_source.signature(), "constexprs": kernel_source.compile_constants(),
            "num_warps": kernel_source.num_warps, "num_stages": kernel_source.num_stages}


def _result_path(key: str):
    from codegen import config
    return config.cache_dir().parent / "aot" / key[:2] / f"{key}.json"


def check_kernels(kernel_sources, target=H100, jobs: int = 1, aligned: bool = False, divisible: bool = False) -> list:
    """Compile every kernel for ``target``; one TargetResult per distinct kernel
    (``aligned``: as launched on 16-byte aligned tensors; ``divisible``: with int arguments
    that are multiples of 16; see the module docstring).

    Results are cached on disk next to the kernels (keyed by source, launch config,
    target and Triton version), so only new kernels are compiled."""
    import triton
    pending, results, seen = [], [], set()
    for ks in kernel_sources:
        entry = _entry(ks, aligned, divisible)
        key = hashlib.sha256(json.dumps([entry["source_hash"], entry["signature"], entry["constexprs"], aligned]
                                        + (["divisible"] if divisible else [])   # earlier keys unchanged
                                        + [entry["num_warps"], entry["num_stages"], list(target), triton.__version__,
                                           _RESULT_VERSION],
                                        sort_keys=True).encode()).hexdigest()
        if key in seen:
            continue
        seen.add(key)
        cached = _result_path(key)
        if cached.exists():
            results.append(TargetResult(**json.loads(cached.read_text())))
        else:
            pending.append((key, entry))
    for key, result in _compile_in_children(pending, target, jobs):
        path = _result_path(key)
        if result.ok:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(dataclasses.asdict(result)))
        results.append(result)
    return results


def _compile_in_children(pending, target, jobs):
    if not pending:
        return []
    chunks = [pending[i::max(1, jobs)] for i in range(max(1, jobs))]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    procs, out = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i, chunk in enumerate(c for c in chunks if c):
            path = os.path.join(tmp, f"manifest{i}.json")
            with open(path, "w") as f:
                json.dump({"target": list(target), "kernels": [entry for _, entry in chunk]}, f)
            procs.append((chunk, subprocess.Popen([sys.executable, "-m", "codegen.emit.sm90", path], env=env,
                                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)))
        for chunk, proc in procs:
            stdout, stderr = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"AOT compile process failed:\n{stderr[-4000:]}")
            results = [TargetResult(**r) for r in json.loads(stdout.strip().splitlines()[-1])]
            out += [(key, result) for (key, _), result in zip(chunk, results)]
    return out


# --------------------------------------------------------------------------- child process


def _parse_ptxas(text: str) -> tuple:
    regs = re.search(r"Used (\d+) registers", text)
    spills = [int(m) for m in re.findall(r"(\d+) bytes spill (?:stores|loads)", text)]
    return (int(regs.group(1)) if regs else None, max(spills) if spills else None)


def _compile_one(entry: dict, target) -> dict:
    import triton
    from triton.backends.compiler import GPUTarget
    from codegen import config
    spec = importlib.util.spec_from_file_location(f"capture_aot_{entry['name']}", entry["path"])
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    fn = getattr(module, entry["name"])
    aligned = {(i,): [["tt.divisibility", 16]] for i, kind in enumerate(entry["signature"].values())
               if (kind.startswith("*") and entry.get("aligned")) or (kind == "i32" and entry.get("divisible"))}
    src = triton.compiler.ASTSource(fn, signature=entry["signature"], constexprs=entry["constexprs"], attrs=aligned)
    options = {"num_warps": entry["num_warps"], **config.TRITON_OPTIONS}
    if entry.get("num_stages"):
        options["num_stages"] = entry["num_stages"]
    log = io.StringIO()
    try:
        with contextlib.redirect_stdout(log):      # Triton prints ptxas -v output here
            compiled = triton.compile(src, target=GPUTarget(*target), options=options)
    except Exception as e:  # noqa: BLE001 - reported per kernel
        return {"name": entry["name"], "arch": target[1], "ok": False, "error": f"{type(e).__name__}: {e}"}
    regs, spills = _parse_ptxas(log.getvalue())
    if regs is None:
        return {"name": entry["name"], "arch": target[1], "ok": False,
                "error": "no ptxas report (was the Triton cache not empty?)"}
    vector, scalar = memory_accesses(compiled.asm["ptx"])
    return {"name": entry["name"], "arch": target[1], "ok": True, "n_regs": regs, "spill_bytes": spills,
            "shared_bytes": compiled.metadata.shared, "vector_accesses": vector, "scalar_accesses": scalar,
            "mma_instructions": tensor_core_instructions(compiled.asm["ptx"])}


def tensor_core_instructions(ptx: str) -> int:
    """Warp-group (sm_90 ``wgmma.mma_async``) and warp-level (``mma.sync``) matrix
    instructions in ``ptx``."""
    return len(re.findall(r"^\s*(?:wgmma\.mma_async|mma\.sync)", ptx, flags=re.MULTILINE))


def memory_accesses(ptx: str) -> tuple:
    """(vector, scalar) global loads and stores in ``ptx``."""
    accesses = re.findall(r"\b(?:ld|st)\.global[\w.]*", ptx)
    vector = sum(1 for a in accesses if re.search(r"\.v[248]\b", a))
    return vector, len(accesses) - vector


def main(argv=None) -> None:
    from triton import knobs
    knobs.nvidia.dump_ptxas_log = True
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        manifest = json.load(f)
    target = tuple(manifest["target"])
    with tempfile.TemporaryDirectory() as triton_cache:
        knobs.cache.dir = triton_cache              # no cache hits: ptxas runs and reports (see the docstring)
        results = [_compile_one(entry, target) for entry in manifest["kernels"]]
    print(json.dumps(results))


if __name__ == "__main__":
    main()

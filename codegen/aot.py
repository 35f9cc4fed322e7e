"""Ahead-of-time compilation of generated kernels for a GPU we do not have.

The interpreter runs kernels on CPU tensors but accepts things the real compiler
rejects (and never shows register pressure). ``check_kernels`` compiles generated
kernels for an H100 (``GPUTarget("cuda", 90, 32)``) down to cubins with Triton's own
ptxas and reads registers and spills from ``ptxas -v``.

Compilation runs in a child process (``python -m codegen.aot manifest.json``) without
``TRITON_INTERPRET``: in an interpreting process ``@triton.jit`` builds interpreter
objects, and the interpreter's patches of ``triton.language`` outlive kernel runs.
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import tempfile

H100 = ("cuda", 90, 32)


@dataclasses.dataclass
class TargetResult:
    name: str
    arch: int
    ok: bool
    n_regs: int | None = None
    spill_bytes: int | None = None
    shared_bytes: int | None = None
    error: str | None = None


def have_cuda_backend() -> bool:
    try:
        import triton.backends
        return "nvidia" in triton.backends.backends
    except Exception:   # noqa: BLE001 - any import problem means "no backend"
        return False


def _entry(kernel_source) -> dict:
    from codegen import cache
    return {"path": str(cache.write_source(kernel_source.source)), "name": kernel_source.name,
            "signature": kernel_source.signature(), "constexprs": kernel_source.constexprs,
            "num_warps": kernel_source.num_warps}


def check_kernels(kernel_sources, target=H100, jobs: int = 1) -> list:
    """Compile every kernel for ``target``; one TargetResult per distinct kernel."""
    entries, seen = [], set()
    for ks in kernel_sources:
        entry = _entry(ks)
        key = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
        if key not in seen:
            seen.add(key)
            entries.append(entry)
    chunks = [entries[i::jobs] for i in range(max(1, jobs))]
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    procs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, chunk in enumerate(c for c in chunks if c):
            path = os.path.join(tmp, f"manifest{i}.json")
            with open(path, "w") as f:
                json.dump({"target": list(target), "kernels": chunk}, f)
            procs.append(subprocess.Popen([sys.executable, "-m", "codegen.aot", path], env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        results = []
        for proc in procs:
            out, err = proc.communicate()
            if proc.returncode != 0:
                raise RuntimeError(f"AOT compile process failed:\n{err[-4000:]}")
            results += [TargetResult(**r) for r in json.loads(out.strip().splitlines()[-1])]
    return results


# --------------------------------------------------------------------------- child process


def ptxas_usage(ptx: str, arch: int = 90) -> tuple:
    """(registers, spill bytes) that ptxas reports for ``ptx`` (None, None if unknown)."""
    from triton.backends.nvidia.compiler import get_ptxas
    ptxas = get_ptxas(arch).path
    suffix = "a" if arch >= 90 else ""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "kernel.ptx")
        with open(path, "w") as f:
            f.write(ptx)
        run = subprocess.run([ptxas, f"-arch=sm_{arch}{suffix}", "-v", path, "-o", os.devnull],
                             capture_output=True, text=True)
    text = run.stdout + run.stderr
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
    src = triton.compiler.ASTSource(fn, signature=entry["signature"], constexprs=entry["constexprs"])
    options = {"num_warps": entry["num_warps"], "enable_fp_fusion": config.FP_FUSION == "1"}
    try:
        compiled = triton.compile(src, target=GPUTarget(*target), options=options)
    except Exception as e:  # noqa: BLE001 - reported per kernel
        return {"name": entry["name"], "arch": target[1], "ok": False, "error": f"{type(e).__name__}: {e}"}
    regs, spills = ptxas_usage(compiled.asm["ptx"], target[1])
    return {"name": entry["name"], "arch": target[1], "ok": True, "n_regs": regs, "spill_bytes": spills,
            "shared_bytes": compiled.metadata.shared}


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        manifest = json.load(f)
    target = tuple(manifest["target"])
    results = [_compile_one(entry, target) for entry in manifest["kernels"]]
    print(json.dumps(results))


if __name__ == "__main__":
    main()

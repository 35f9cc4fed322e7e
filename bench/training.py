"""Train-mode measurements for ``python -m bench --modes train``: what a training step
compiles to, and what it keeps for the backward.

- ``role_stats()``: kernels and modeled bytes of capture's compiled graphs, split into
  forward (the forward half of a joint graph, or an inference graph) and backward
  (read from ``codegen.COMPILED``: each compiled graph knows its ``role``);
- ``saved_activation_bytes(...)``: bytes of the tensors autograd keeps for the backward
  after one forward, counted through ``torch.autograd.graph.saved_tensors_hooks``
  (every ``save_for_backward``, eager's ops and a compiled ``autograd.Function`` alike),
  each storage once, leaving out parameters, buffers and inputs (they exist anyway);
  the peak memory a training step adds on top of its model;
- ``format_table(result)``: one line per model and backend (train rows only).
"""
from __future__ import annotations

import torch


def role_stats() -> dict:
    """{"fw_kernels", "bw_kernels", "fw_bytes", "bw_bytes"} over ``codegen.COMPILED``
    (None where nothing was compiled)."""
    import codegen
    out = {"fw_kernels": 0, "bw_kernels": 0, "fw_bytes": 0, "bw_bytes": 0}
    seen = False
    for graph in codegen.COMPILED:
        if graph.runs_eagerly or graph.role is None:
            continue
        seen = True
        side = "bw" if graph.role == "backward" else "fw"
        out[f"{side}_kernels"] += graph.stats.n_kernels
        out[f"{side}_bytes"] += graph.stats.compiled_bytes
    return out if seen else dict.fromkeys(out)


def saved_activation_bytes(model: torch.nn.Module, fn, inputs: tuple) -> int:
    """Bytes autograd holds for the backward after ``fn(*inputs)`` (see the module
    docstring); the forward's graph is dropped afterwards."""
    exempt = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    exempt |= {t.untyped_storage().data_ptr() for t in inputs if isinstance(t, torch.Tensor)}
    held: dict = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in exempt:
            held[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.enable_grad(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn(*inputs)
    del out
    return sum(held.values())


def _bytes(v) -> str:
    if v is None:
        return "-"
    for unit, size in (("M", 1 << 20), ("K", 1 << 10)):
        if v >= size:
            return f"{v / size:.1f}{unit}"
    return str(v)


def format_table(result: dict) -> str:
    """Forward/backward kernels and bytes, and saved activations vs eager, per train row."""
    rows = [r for r in result["rows"] if r["mode"] == "train" and r["status"] in ("ok", "mismatch")]
    if not rows:
        return ""
    lines = [f"{'model':<13} {'backend':<14} {'fw kern':>7} {'fw bytes':>8} {'bw kern':>7} {'bw bytes':>8} "
             f"{'kernels':>7} {'bytes':>7} {'saved':>7} {'eager saved':>11}"]
    for r in rows:
        def cell(key, fmt=str):
            return "-" if r.get(key) is None else fmt(r[key])
        lines.append(f"{r['model']:<13} {r['backend']:<14} {cell('fw_kernels'):>7} {cell('fw_bytes', _bytes):>8} "
                     f"{cell('bw_kernels'):>7} {cell('bw_bytes', _bytes):>8} {cell('kernels'):>7} "
                     f"{cell('bytes', _bytes):>7} {cell('saved_bytes', _bytes):>7} {cell('eager_saved_bytes', _bytes):>11}")
    lines.append("train: fw/bw kern, bytes: kernels and modeled bytes of the forward and backward graphs "
                 "(capture-cpu, capture-triton); kernels, bytes: all graphs (tc-inductor: what it generated); saved: bytes autograd "
                 "keeps for the backward after one forward (parameters, buffers and inputs not counted)")
    return "\n".join(lines)

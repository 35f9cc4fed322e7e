"""Per-graph report: kernels, extern calls, and modeled memory traffic.

Three byte counts, all modeled from shapes (no GPU needed):

* compiled — what the generated kernels read and write (each buffer a kernel loads
  counted once per kernel, up to the elements its indices can reach) plus the inputs and
  outputs of extern calls;
* eager — what eager PyTorch moves running the captured graph op by op: every op
  reads its tensor inputs (and a leaf module's parameters) and writes its outputs;
  views move nothing;
* floor — each graph input read once and each output (and mutated input) written once.
"""
from __future__ import annotations

import dataclasses

import torch
from torch import fx

from codegen.ir import sizes
from fx_graph.leaf import leaf_module_of


@dataclasses.dataclass
class GraphStats:
    kernels: list = dataclasses.field(default_factory=list)    # (name, fx nodes, bytes moved)
    externs: list = dataclasses.field(default_factory=list)    # (node, target, reason, bytes moved)
    kernel_bytes: int = 0
    extern_bytes: int = 0
    eager_bytes: int = 0
    floor_bytes: int = 0
    fusion_decisions: list = dataclasses.field(default_factory=list)
    eager_reason: str | None = None                             # set when the graph runs eagerly
    internal: bool = False                                      # ... because of a bug of ours

    @property
    def n_kernels(self) -> int:
        return len(self.kernels)

    @property
    def n_externs(self) -> int:
        return len(self.externs)

    @property
    def compiled_bytes(self) -> int:
        return self.kernel_bytes + self.extern_bytes

    def merge(self, other: "GraphStats") -> "GraphStats":
        return GraphStats(self.kernels + other.kernels, self.externs + other.externs,
                          self.kernel_bytes + other.kernel_bytes, self.extern_bytes + other.extern_bytes,
                          self.eager_bytes + other.eager_bytes, self.floor_bytes + other.floor_bytes,
                          self.fusion_decisions + other.fusion_decisions)

    def __str__(self) -> str:
        if self.eager_reason:
            return f"runs eagerly: {self.eager_reason}"
        lines = [f"{self.n_kernels} kernel(s), {self.n_externs} extern call(s)"]
        for name, nodes, moved in self.kernels:
            lines.append(f"  kernel {name}: {format_bytes(moved)}  [{', '.join(nodes)}]")
        for node, target, reason, moved in self.externs:
            lines.append(f"  extern {node} = {target}: {format_bytes(moved)}  ({reason})")
        lines.append(f"bytes moved: compiled {format_bytes(self.compiled_bytes)} "
                     f"(kernels {format_bytes(self.kernel_bytes)}, externs {format_bytes(self.extern_bytes)}), "
                     f"eager {format_bytes(self.eager_bytes)}, floor {format_bytes(self.floor_bytes)}")
        for d in self.fusion_decisions:
            lines.append(f"  fusion {d.kind}: {d.where}: {d.reason}")
        return "\n".join(lines)


def _tensor_bytes(value) -> int:
    if isinstance(value, torch.Tensor):        # symbolic sizes at this call's values (no guard)
        return sizes.hint(sizes.of(value.numel())) * value.element_size()
    if isinstance(value, (tuple, list)):
        return sum(_tensor_bytes(v) for v in value)
    return 0


def _storages(value) -> set:
    if isinstance(value, torch.Tensor):
        try:
            return {value.untyped_storage()._cdata}
        except (NotImplementedError, RuntimeError):
            return set()
    if isinstance(value, (tuple, list)):
        out = set()
        for v in value:
            out |= _storages(v)
        return out
    return set()


def eager_bytes(gm: fx.GraphModule) -> int:
    """Bytes eager moves running ``gm`` (the captured, undecomposed graph) op by op."""
    total = 0
    for node in gm.graph.nodes:
        if node.op not in ("call_function", "call_method", "call_module"):
            continue
        out = node.meta.get("val")
        inputs = [a.meta.get("val") for a in node.all_input_nodes]
        in_storages = set()
        for v in inputs:
            in_storages |= _storages(v)
        if _storages(out) and _storages(out) <= in_storages:
            continue                                  # a view: no data moves
        total += sum(_tensor_bytes(v) for v in inputs) + _tensor_bytes(out)
        module = leaf_module_of(node)
        if module is not None:
            total += sum(t.numel() * t.element_size() for t in module.parameters())
            total += sum(t.numel() * t.element_size() for t in module.buffers())
    return total


def floor_bytes(graph_lowering) -> int:
    """Every graph input that is read, read once; every output and mutation written once."""
    used = set()
    for item in graph_lowering.nodes:
        used |= _reads_of(item)
    for out in graph_lowering.outputs:
        if out.kind == "buffer":
            used.add(out.value.buffer.name)
    for _, source in graph_lowering.mutations:
        used.add(source.buffer.name)
    total = sum(sizes.hint(b.nbytes) for b in graph_lowering.inputs if b.name in used)
    total += sum(sizes.hint(b.nbytes) for b in graph_lowering.constant_buffers if b.name in used)
    for out in graph_lowering.outputs:
        if out.kind == "buffer" and out.value.buffer.kind != "input":
            total += _view_bytes(out.value)
    total += sum(sizes.hint(target.nbytes) for target, _ in graph_lowering.mutations)
    return total


def _view_bytes(bv) -> int:
    n = 1
    for s in bv.shape:
        n *= s
    return sizes.hint(n) * bv.buffer.dtype.itemsize


def _reads_of(item) -> set:
    from codegen.lower.graph import ExternCall
    from codegen.ir import fresh_index, loads
    if isinstance(item, ExternCall):
        return {bv.buffer.name for bv in item.inputs()}
    index = fresh_index(item.input_shape if item.is_reduction else item.buffer.shape)
    return {load.buffer.name for load in loads(item.body(index))}


def extern_bytes(call) -> int:
    return sum(_view_bytes(bv) for bv in call.inputs()) + sum(sizes.hint(b.nbytes) for b in call.outputs)


def format_bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"

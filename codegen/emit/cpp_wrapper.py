"""A graph's C kernels as one translation unit, and the Python wrapper that calls them.

Consecutive kernels (no library call between them) form a *run*, called as one C
function (``plan_runs``): one call per run instead of one per kernel, and the
buffers only that run's kernels touch are allocated and freed in C (``malloc``: ~50 ns,
where ``torch.empty_strided`` costs ~1 us), never becoming tensors. A run returns the
error word of the first kernel that failed with its position in the run above the error
bits, and the wrapper raises like eager::

    addmm_2 = torch.empty_strided((4, 10), (10, 1), dtype=torch.float32, device=_device)
    # cpp_run0: cpp_addmm (addmm), cpp_fused_addmm_relu (addmm, relu, addmm_1), ...; in C: addmm, addmm_1
    cpp_run0(l_x.data_ptr(), l_w1.data_ptr(), ..., addmm_2.data_ptr())
    # cpp_embedding: embedding          (a run of one kernel: the kernel itself)
    _error = cpp_embedding(l_i.data_ptr(), l_w.data_ptr(), embedding.data_ptr())
    if _error: _raise_kernel_error(_error, (('embedding', 'cpp_embedding'),))

``translation_unit`` puts every kernel and run of a graph after the prelude (one source,
so one compiler run and one shared object per graph).
"""
from __future__ import annotations

import dataclasses

import torch

from fx_graph.overlap import dense_layout
from codegen.emit.cpp_ops import PRELUDE
from codegen.emit.wrapper import IndexOutOfRangeError, WrapperCodegen
from codegen.ir import sizes
from codegen.lower.graph import ExternCall

INDEX_ERROR, ZERO_DIVISION, NO_MEMORY = 1, 2, 4          # the bits of cpp_ops.PRELUDE
ERROR_BITS = 8                                           # a run's kernel position sits above them

aten = torch.ops.aten
# Library calls through torch's public bindings: the same kernels as the aten overloads,
# without the OpOverload Python call (~1.5 us each: a third of a small addmm).
PUBLIC_BINDINGS = {aten.addmm.default: "torch.addmm", aten.mm.default: "torch.mm", aten.bmm.default: "torch.bmm",
                   aten.baddbmm.default: "torch.baddbmm", aten.convolution.default: "torch.convolution"}


def _raise_kernel_error(error: int, kernels: tuple):
    """Raise like eager for ``error`` returned by a run of ``kernels`` ((what, name) each)."""
    what, name = kernels[error >> ERROR_BITS]
    if error & INDEX_ERROR:
        raise IndexOutOfRangeError(f"index out of range in {what} (capture cpu kernel {name})")
    if error & ZERO_DIVISION:
        raise RuntimeError("ZeroDivisionError")          # eager's message for integer division by zero
    raise RuntimeError(f"capture cpu kernel {name}: not enough memory for its temporary buffers")


@dataclasses.dataclass
class KernelRun:
    """Consecutive kernels called as one C function ``name(params...)``."""
    name: str
    kernels: list            # CppKernelSource with elements, in order
    params: list             # Buffers passed from the wrapper, in parameter order
    internal: list           # Buffers only these kernels touch: allocated and freed in C
    size_symbols: tuple = () # size symbols passed after the pointers (dynamic shapes)
    function: object = None  # the loaded C function

    @property
    def may_fail(self) -> bool:
        return any(k.may_fail for k in self.kernels) or bool(self.internal)

    @property
    def is_one_kernel(self) -> bool:
        """One kernel and nothing to allocate: the wrapper calls the kernel itself."""
        return len(self.kernels) == 1 and not self.internal

    @property
    def n_args(self) -> int:
        return len(self.params) + len(self.size_symbols)

    @property
    def entry_name(self) -> str:
        return f"{self.name}_packed"

    def entry(self) -> str:
        """The run's packed entry, what the wrapper calls (``codegen._C.Kernel``, no
        ctypes): its pointers and then its sizes, from one array of int64."""
        n = len(self.params)
        args = [f"(void*)(intptr_t)args[{i}]" for i in range(n)]
        args += [f"args[{n + i}]" for i in range(len(self.size_symbols))]
        return f"int64_t {self.entry_name}(const int64_t *args) {{\n    return {self.name}({', '.join(args)});\n}}\n"

    def source(self) -> str:
        if self.is_one_kernel:
            return ""
        params = ", ".join([f"void* {b.name}_ptr" for b in self.params]
                           + [f"const int64_t {s}" for s in self.size_symbols]) or "void"
        lines = [f"/* {', '.join(k.name for k in self.kernels)} */", f"int64_t {self.name}({params}) {{",
                 "    int64_t err = 0;"]
        for b in self.internal:
            lines.append(f"    void* {b.name}_ptr = capture_alloc({sizes.source(b.extent * b.dtype.itemsize, 'c')});")
        if self.internal:
            missing = " || ".join(f"!{b.name}_ptr" for b in self.internal)
            lines.append(f"    if ({missing}) {{ err = CAPTURE_NO_MEMORY; goto done; }}")
        for position, k in enumerate(self.kernels):
            call = f"{k.name}({', '.join([f'{b.name}_ptr' for b in k.pointer_args] + [str(s) for s in k.size_symbols])})"
            if k.may_fail:
                lines.append(f"    err = {call};")
                lines.append(f"    if (err) {{ err |= (int64_t){position} << {ERROR_BITS}; goto done; }}")
            else:
                lines.append(f"    {call};")
        lines.append("done:")
        lines += [f"    free({b.name}_ptr);" for b in self.internal]
        lines += ["    return err;", "}"]
        return "\n".join(lines) + "\n"


def plan_runs(graph, items: list, sources: dict) -> dict:
    """{id(kernel item): its KernelRun}: maximal sequences of kernels between library
    calls; a run's internal buffers are those its kernels write and nothing else reads
    (no kernel or library call outside it, not an output, not written back to an input)."""
    groups, current = [], []
    for item in items:
        if isinstance(item, ExternCall):
            if current:
                groups.append(current)
            current = []
        else:
            current.append(item)
    if current:
        groups.append(current)
    kept = {out.value.buffer.name for out in graph.outputs if out.kind == "buffer"}
    kept |= {source.buffer.name for _, source in graph.mutations}
    readers: dict = {}                   # buffer name -> ids of the items reading it
    for item in items:
        names = [v.buffer.name for v in item.inputs()] if isinstance(item, ExternCall) else sources[id(item)].reads
        for name in names:
            readers.setdefault(name, set()).add(id(item))
    runs = {}
    for number, group in enumerate(groups):
        members = {id(k) for k in group}
        kernels = [sources[id(k)] for k in group if not _empty(sources[id(k)].elements)]
        buffers = {b.name: b for k in kernels for b in k.pointer_args}
        written = {name for k in kernels for name in k.writes}
        internal = [b for name, b in buffers.items() if name in written and b.kind == "computed"
                    and not _empty(b.numel) and name not in kept and readers.get(name, set()) <= members]
        params = [b for b in buffers.values() if all(b.name != i.name for i in internal)]
        symbols = sizes.symbols_read(" ".join(str(s) for k in kernels for s in k.size_symbols) + " " +
                                     " ".join(sizes.source(b.extent, "c") for b in internal))
        run = KernelRun(f"cpp_run{number}", kernels, params, internal, tuple(symbols))
        if run.is_one_kernel:
            run.name, run.params, run.size_symbols = kernels[0].name, kernels[0].pointer_args, kernels[0].size_symbols
        runs.update({id(k): run for k in group})
    return runs


def _empty(count) -> bool:
    return sizes.is_static(count) and count == 0


def translation_unit(kernel_sources: list, runs: list) -> str:
    return "\n\n".join([PRELUDE] + [k.source for k in kernel_sources] + [r.source() for r in runs if r.source()]
                       + [r.entry() for r in runs])


class CppWrapperCodegen(WrapperCodegen):
    def __init__(self, graph, items, sources, runs: dict):
        super().__init__(graph, items, sources)
        self.runs = runs
        self.launched: set = set()
        self.namespace["_raise_kernel_error"] = _raise_kernel_error

    def error_flags(self, kernels) -> None:
        """C kernels return their error word: no flag tensor."""

    def allocate(self, buffer) -> None:
        """The cheapest call that gives the buffer's exact layout (``empty_strided`` with its
        dtype and device keywords costs ~1.4 us): ``torch.empty_like(<input>)`` where an
        input has that layout (~1.1 us), else ``<input>.new_empty_strided(sizes, strides)``
        where an input has its dtype (~1.2 us; the inputs of a C graph are CPU tensors),
        else ``empty_strided``."""
        shape, stride = sizes.tuple_source(buffer.shape), sizes.tuple_source(buffer.stride)
        like = _same_layout_input(buffer, self.graph.inputs)
        if like is not None:
            self.lines.append(f"{buffer.name} = torch.empty_like({like.name})  # its layout: {shape}, {stride}, "
                              f"{buffer.dtype}")
            return
        same_dtype = next((i for i in self.graph.inputs if i.dtype == buffer.dtype), None)
        if same_dtype is not None:
            self.lines.append(f"{buffer.name} = {same_dtype.name}.new_empty_strided({shape}, {stride})"
                              f"  # {buffer.dtype}")
            return
        super().allocate(buffer)

    def target(self, fn) -> str:
        return PUBLIC_BINDINGS.get(fn) or super().target(fn)

    def strided_view(self, bv) -> str:
        """A transposed 2-d buffer (a linear layer's weight) is ``.t()``, cheaper than as_strided
        (``view`` already returned a whole buffer itself: a 1x1 buffer is its own transpose)."""
        buffer = bv.buffer
        if (len(bv.shape) == 2 and bv.offset == 0 and tuple(bv.shape) == tuple(reversed(buffer.shape))
                and buffer.stride == (buffer.shape[1], 1) and tuple(bv.stride) == (1, buffer.shape[1])):
            return f"{buffer.name}.t()"
        return super().strided_view(bv)

    def launch(self, kernel, source) -> None:
        """The first kernel of a run calls the whole run."""
        run = self.runs[id(kernel)]
        if run.name in self.launched:
            return
        self.launched.add(run.name)
        for buffer in run.params:
            if buffer.kind == "computed" and buffer.name not in self.allocated:
                self.allocated.add(buffer.name)
                self.allocate(buffer)
        self.namespace[run.name] = run.function
        parts = ", ".join(f"{k.name} ({', '.join(k.fx_nodes)})" for k in run.kernels)
        if run.is_one_kernel:
            parts = ", ".join(run.kernels[0].fx_nodes)
        in_c = f"; in C: {', '.join(b.name for b in run.internal)}" if run.internal else ""
        args = [f"{b.name}.data_ptr()" for b in run.params] + [str(s) for s in run.size_symbols]
        call = f"{run.name}({', '.join(args)})"
        if not run.kernels:
            self.lines.append(f"pass  # {call}: no elements")
            return
        self.lines.append(f"# {run.name}: {parts}{in_c}")
        if run.may_fail:
            table = tuple((" or ".join(k.index_checks) or "integer division", k.name) for k in run.kernels)
            self.lines.append(f"_error = {call}")
            self.lines.append(f"if _error: _raise_kernel_error(_error, {table!r})")
        else:
            self.lines.append(call)


def _same_layout_input(buffer, inputs):
    """An input ``torch.empty_like`` allocates ``buffer`` like, exactly: same dtype, sizes and
    strides, dense (``empty_like`` copies a dense tensor's strides as they are), no
    dimension of size 1 (whose stride an input may carry other than traced), static sizes."""
    if not all(sizes.is_static(s) and s > 1 for s in buffer.shape) or not dense_layout(buffer.shape, buffer.stride):
        return None
    return next((i for i in inputs if i.dtype == buffer.dtype and tuple(i.shape) == tuple(buffer.shape)
                 and tuple(i.stride) == tuple(buffer.stride)), None)

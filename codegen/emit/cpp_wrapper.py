"""A graph's C kernels as one translation unit, and the Python wrapper that calls them.

``translation_unit`` puts every kernel of a graph after the prelude (one source, so one
compiler run and one shared object per graph). ``CppWrapperCodegen`` is the Triton
wrapper with another launch: a kernel is a plain C call on data pointers (``ctypes``),
and a kernel that can fail returns an error word that raises like eager::

    relu = torch.empty_strided((4, 64), (64, 1), dtype=torch.float32, device=_device)
    # cpp_relu: relu
    cpp_relu(addmm.data_ptr(), relu.data_ptr())
    # cpp_embedding: embedding
    _error = cpp_embedding(l_i.data_ptr(), l_w.data_ptr(), embedding.data_ptr())
    if _error: _raise_kernel_error(_error, 'embedding', 'cpp_embedding')
"""
from __future__ import annotations

import torch

from codegen.emit.cpp_ops import PRELUDE
from codegen.emit.wrapper import IndexOutOfRangeError, WrapperCodegen

INDEX_ERROR, ZERO_DIVISION = 1, 2          # the bits of cpp_ops.PRELUDE

aten = torch.ops.aten
# Library calls through torch's public bindings: the same kernels as the aten overloads,
# without the OpOverload Python call (~1.5 us each: a third of a small addmm).
PUBLIC_BINDINGS = {aten.addmm.default: "torch.addmm", aten.mm.default: "torch.mm", aten.bmm.default: "torch.bmm",
                   aten.baddbmm.default: "torch.baddbmm", aten.convolution.default: "torch.convolution"}


def _raise_kernel_error(error: int, what: str, kernel: str):
    if error & INDEX_ERROR:
        raise IndexOutOfRangeError(f"index out of range in {what} (capture cpu kernel {kernel})")
    raise RuntimeError("ZeroDivisionError")          # eager's message for integer division by zero


def translation_unit(kernel_sources: list) -> str:
    return PRELUDE + "\n\n" + "\n\n".join(k.source for k in kernel_sources)


class CppWrapperCodegen(WrapperCodegen):
    def __init__(self, graph, items, sources):
        super().__init__(graph, items, sources)
        self.namespace["_raise_kernel_error"] = _raise_kernel_error

    def error_flags(self, kernels) -> None:
        """C kernels return their error word: no flag tensor."""

    def target(self, fn) -> str:
        return PUBLIC_BINDINGS.get(fn) or super().target(fn)

    def view(self, bv) -> str:
        """A transposed 2-d buffer (a linear layer's weight) is ``.t()``, cheaper than as_strided."""
        buffer = bv.buffer
        if (len(bv.shape) == 2 and bv.offset == 0 and tuple(bv.shape) == tuple(reversed(buffer.shape))
                and buffer.stride == (buffer.shape[1], 1) and tuple(bv.stride) == (1, buffer.shape[1])):
            return f"{buffer.name}.t()"
        return super().view(bv)

    def launch(self, kernel, source) -> None:
        for buffer in source.pointer_args:
            if buffer.kind == "computed" and buffer.name not in self.allocated:
                self.allocated.add(buffer.name)
                self.allocate(buffer)
        self.namespace[source.name] = self.sources[id(kernel)][1]
        args = [f"{b.name}.data_ptr()" for b in source.pointer_args] + [str(s) for s in source.size_symbols]
        call = f"{source.name}({', '.join(args)})"
        self.lines.append(f"# {source.name}: {', '.join(source.fx_nodes)}")
        if source.elements == 0:
            self.lines.append(f"pass  # {call}: no elements")
        elif source.may_fail:
            what = " or ".join(source.index_checks) or "integer division"
            self.lines.append(f"_error = {call}")
            self.lines.append(f"if _error: _raise_kernel_error(_error, {what!r}, {source.name!r})")
        else:
            self.lines.append(call)

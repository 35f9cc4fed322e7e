"""Emit an atomic scatter: a pointwise kernel over the values whose store adds into a base.

``index_put(base, [idx], values, accumulate=True)`` (an embedding's backward) lowers to
two kernels: the base written into a fresh buffer (zeros, for an embedding), then this
one (``ScatterAdd``)::

    offsets = pid * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
    <value and its row from idx, computed like any pointwise member: masks, where, clamp>
    tl.atomic_add(out_ptr + row * D + (offsets % D), value, mask & <row in range>)

Rows repeated in ``idx`` add concurrently, so the sums' order (and their last bits in
float32) varies from run to run on a GPU; ``codegen.lower.scatter`` keeps the library
call when torch is asked for deterministic algorithms. An index out of range sets the
kernel's error flag (the wrapper raises, as eager) and adds nothing.
"""
from __future__ import annotations

from codegen.emit.triton import KernelEmitter
from codegen.emit.triton_ops import convert
from codegen.ir import in_range, sizes


class ScatterEmitter(KernelEmitter):
    """A pointwise kernel whose one member stores by ``tl.atomic_add`` (see the module docstring)."""

    def store(self, member, value_expr) -> None:
        target = member.comp.scatter.target
        index = member.store_index
        names = {g: self.emit(g.value) for g in index.gathered()}
        value = self.emit(value_expr)
        if value_expr.dtype != target.dtype:
            value = convert(value, target.dtype)
        checks = [self.emit(test) for test in in_range(index.gathered())]
        mask = " & ".join([self.mask_for(index)] + checks)
        self.stores.setdefault(target.name, target)
        self.lines.append(f"tl.atomic_add({self.pointer(target, index, names)}, {value}, {mask})")

    def traffic(self):
        """Each value read-modify-writes one element of the target."""
        reads, writes = super().traffic()
        comp = next(iter(self.placed.values())).comp
        target = comp.scatter.target
        added = sizes.hint(comp.buffer.numel) * target.dtype.itemsize
        writes[target.name] = min(2 * added, sizes.hint(target.nbytes) + added)
        return reads, writes


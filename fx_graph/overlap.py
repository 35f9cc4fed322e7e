"""Eager's partial-overlap check and other in-place refusals, on fake tensors.

Eager refuses an in-place op whose written tensor partially overlaps one of its
inputs (``x.add_(x[0])``, ``x.copy_(x.t())``, ``y += x`` for overlapping views of one
storage): "unsupported operation: some elements of the input tensor and the
written-to tensor refer to a single memory location". A functional graph has no
memory and would compute an answer. ``InPlaceCheck`` is a dispatch mode that
raises ``InPlaceRefusal`` where eager would raise, following eager's rule
(``get_overlap_status`` in ATen's MemoryOverlap.cpp): two tensors on one storage
overlap partially when both are non-overlapping and dense, their byte ranges
intersect, and they are not the same range with the same strides. The compiled path
then runs such a graph as captured, so the user sees eager's own error.

It refuses too a ``mul_`` whose result type cannot be cast back (the fake kernel skips
eager's check), and an in-place write into a tensor with internal overlap (a broadcast
dimension: ``x[0].expand(3, 4).zero_()``, an expanded input written, ``a[[0, 1]] = 0``
on an expanded ``a``): eager refuses most such writes (``fx_graph.in_place`` breaks the
graph before them) but fills and ``index_put_`` write, and functionalization writes the
result back through the expand wrongly (it sums the broadcast copies into the base:
``x[0]`` became ``-2 * x[0]``), or an expanded input cannot be copied back into at all.
"""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves


class InPlaceRefusal(RuntimeError):
    """Eager refuses this in-place write, or a functional graph cannot reproduce it."""


# In-place ops whose fake kernel skips eager's check that the result type casts back to
# the written tensor's dtype (``bool_x.mul_(2)``); inside a custom autograd.Function's
# forward the front end's own check (``fx_graph.in_place``) does not see them.
_CAST_UNCHECKED = (torch.ops.aten.mul_.Tensor, torch.ops.aten.mul_.Scalar)


class InPlaceCheck(TorchDispatchMode):
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        schema = getattr(func, "_schema", None)
        if schema is not None and schema.is_mutable:
            _check(func, schema, args, kwargs)
        return func(*args, **kwargs)


def _check(func, schema, args, kwargs) -> None:
    if func in _CAST_UNCHECKED and not torch.can_cast(torch.result_type(args[0], args[1]), args[0].dtype):
        raise InPlaceRefusal(f"{func}: result type {torch.result_type(args[0], args[1])} can't be cast to "
                             f"the desired output type {args[0].dtype} (eager raises)")
    written, read = [], []
    for i, argument in enumerate(schema.arguments):
        value = args[i] if i < len(args) else kwargs.get(argument.name)
        tensors = [t for t in tree_leaves(value) if isinstance(t, torch.Tensor)]
        is_written = argument.alias_info is not None and argument.alias_info.is_write
        (written if is_written else read).extend(tensors)
    for out in written:
        if internal_overlap(out):
            raise InPlaceRefusal(f"{func}: the written tensor has internal overlap (a broadcast dimension): "
                                 "functionalized, the write would not reach its memory as eager's does")
        for other in read:
            if partially_overlap(out, other):
                raise InPlaceRefusal(f"{func}: the written tensor partially overlaps an input (eager raises)")


def partially_overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a is b or a.numel() == 0 or b.numel() == 0:
        return False
    if not (is_dense(a) and is_dense(b)) or a.untyped_storage()._cdata != b.untyped_storage()._cdata:
        return False
    a_begin, b_begin = a.storage_offset() * a.element_size(), b.storage_offset() * b.element_size()
    a_end, b_end = a_begin + a.numel() * a.element_size(), b_begin + b.numel() * b.element_size()
    if (a_begin, a_end) == (b_begin, b_end):
        return tuple(a.stride()) != tuple(b.stride())
    return a_begin < b_end and b_begin < a_end


def is_dense(t: torch.Tensor) -> bool:
    """Non-overlapping and dense (some order of the dimensions is contiguous): only such
    layouts can be restrided into (an expanded tensor is a view of something smaller)."""
    return dense_layout(t.shape, t.stride())


def dense_layout(shape, stride) -> bool:
    expected = 1
    for st, size in sorted((st, s) for s, st in zip(shape, stride) if s != 1):
        if st != expected:
            return False
        expected *= size
    return True


def internal_overlap(t: torch.Tensor) -> bool:
    """Eager's ``has_internal_overlap(t) == Yes``: a dimension of stride 0 over more than
    one element, and some element (a symbolic size is at least 2: sizes 0 and 1
    specialize; no guard is added)."""
    sizes, strides = t.shape, t.stride()
    if any(isinstance(s, int) and s == 0 for s in sizes):
        return False
    return any(isinstance(st, int) and st == 0 and (not isinstance(s, int) or s > 1) for s, st in zip(sizes, strides))


def broadcast_dims(shape, stride) -> list:
    """Dimensions an expand made: stride 0 over more than one element."""
    return [d for d, (s, st) in enumerate(zip(shape, stride)) if st == 0 and s != 1]

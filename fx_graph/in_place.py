"""Eager's refusals of in-place writes that fake (meta) kernels skip.

Fake propagation tells the builder what an op returns; for some in-place writes eager
raises where the fake kernel does not check, and the compiled path, which
functionalizes the write into an op and a copy back, would compute a value where eager
raises. ``refusal(...)`` returns eager's message for such a write (the builder fails
the op's trace with it: a graph break, and the op then runs natively, raising as eager
does), else None. A refusal where eager would not raise costs a graph break, never a
wrong answer.

* the result type cannot be cast back to the written tensor (``bool_x.mul_(2)``: the
  fake kernel of ``mul_`` skips the check that ``add_``/``div_``'s have);
* the written tensor has internal overlap (a dimension of stride 0 and size > 1:
  ``x[0].expand(3, 4).add_(1)``, ``torch.add(a, 1, out=expanded)``, ``expanded[0] = 1``):
  no fake kernel checks it.

``input_outs``/``layout``: an ``out=`` over a graph input's memory that the op resizes
(``torch.sum(x, 0, out=z)``) changes the graph input's fake as it is traced; the builder
breaks the graph before such an op, and before an ``out=`` of another dtype than the
op's result (``outs``/``dtypes``: a reduction computes in the out's dtype, functionalized
it would cast after).
"""
from __future__ import annotations

import operator

import torch

from fx_graph.overlap import internal_overlap

# In-place ops whose fake kernel skips the result-type check.
_CAST_UNCHECKED = ("mul_", "__imul__", operator.imul, torch.Tensor.mul_)
# Python's in-place operators (``x += 1`` traced as ``operator.iadd``).
_IN_PLACE_OPERATORS = (operator.iadd, operator.isub, operator.imul, operator.itruediv, operator.ifloordiv,
                       operator.imod, operator.ipow, operator.iand, operator.ior, operator.ixor, operator.ilshift,
                       operator.irshift)
# In-place ops eager runs on a tensor with internal overlap (fills write one value
# wherever they write; metadata changes write no element). Checked on torch 2.13's CPU
# kernels; the others raise "unsupported operation: more than one element of the
# written-to tensor refers to a single memory location".
_OVERLAP_ALLOWED = {"zero_", "fill_", "masked_fill_", "index_fill_", "index_put_", "fill_diagonal_", "tril_",
                    "triu_", "set_", "resize_", "resize_as_", "t_", "transpose_", "swapdims_", "swapaxes_",
                    "squeeze_", "unsqueeze_", "as_strided_", "detach_", "requires_grad_", "share_memory_",
                    "apply_", "map_", "rename_", "refine_names_"}
OVERLAP_MESSAGE = ("unsupported operation: more than one element of the written-to tensor refers to a single "
                   "memory location. Please clone() the tensor before performing the operation.")


def refusal(target, args: tuple, kwargs: dict, indexed) -> str | None:
    """Eager's error for the in-place write ``target(*args, **kwargs)`` (fake values), or
    None; ``indexed(tensor, index)`` is the fake ``tensor[index]`` (what
    ``operator.setitem`` writes)."""
    cast = _cast_refusal(target, args)
    if cast is not None:
        return cast
    if any(internal_overlap(t) for t in _written(target, args, kwargs, indexed)):
        return OVERLAP_MESSAGE
    return None


def _cast_refusal(target, args: tuple) -> str | None:
    if target not in _CAST_UNCHECKED or len(args) < 2 or not isinstance(args[0], torch.Tensor):
        return None
    written, other = args[0], args[1]
    if not isinstance(other, (torch.Tensor, bool, int, float, complex)):
        return None
    result = torch.result_type(written, other)
    if not torch.can_cast(result, written.dtype):
        return f"result type {result} can't be cast to the desired output type {written.dtype}"
    return None


def _written(target, args: tuple, kwargs: dict, indexed) -> list:
    """The tensors an in-place op writes: ``out=``, the indexed part of a setitem's
    tensor (basic indexing: advanced indexing is ``index_put_``), the first argument of
    an in-place method or operator."""
    out = kwargs.get("out")
    if out is not None:
        return [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor)]
    if not args or not isinstance(args[0], torch.Tensor):
        return []
    if target is operator.setitem:
        return [indexed(args[0], args[1])] if _basic_index(args[1]) else []
    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    return [args[0]] if is_in_place(target) and name not in _OVERLAP_ALLOWED else []


def is_in_place(target) -> bool:
    """An in-place method (``add_``, by name or as ``torch.Tensor.add_``), ``__iadd__``, or
    Python's in-place operator (``operator.iadd``)."""
    name = target if isinstance(target, str) else getattr(target, "__name__", "")
    dunder = name.startswith("__i") and name.endswith("__")
    return target in _IN_PLACE_OPERATORS or dunder or (name.endswith("_") and not name.startswith("_"))


def _basic_index(index) -> bool:
    items = index if isinstance(index, tuple) else (index,)
    return all(item is None or item is Ellipsis or isinstance(item, (int, slice, torch.SymInt))
               and not isinstance(item, bool) for item in items)


def outs(kwargs: dict) -> list:
    """The ``out=`` tensors of a call."""
    out = kwargs.get("out")
    return [t for t in (out if isinstance(out, (tuple, list)) else (out,)) if isinstance(t, torch.Tensor)]


def dtypes(result) -> list:
    return [t.dtype for t in (result if isinstance(result, (tuple, list)) else (result,)) if isinstance(t, torch.Tensor)]


def input_outs(kwargs: dict, inputs: list) -> list:
    """The ``out=`` tensors over a graph input's memory (fakes): an op that resizes one
    changes a graph input's metadata, which the front end cannot trace."""
    storages = {id(x.untyped_storage()) for x in inputs if isinstance(x, torch.Tensor)}
    return [t for t in outs(kwargs) if id(t.untyped_storage()) in storages]


def layout(t: torch.Tensor) -> tuple:
    return str(tuple(t.shape)), str(t.stride()), str(t.storage_offset())

"""Which input sizes are symbolic: ``dynamic=None|True|False`` and the user's marks.

* ``dynamic=False``: every size is a number; a new size is a new cache entry.
* ``dynamic=None`` (default, "automatic dynamic"): the first compile of a frame is
  static. Each frame remembers the sizes of the input tensors it was compiled for;
  when it compiles again and a dimension of the same input has another size, that
  dimension is dynamic from then on (``L['x'].shape[0]: 8 then 16 -> dynamic``), so a
  function called with 20 batch sizes compiles twice. The dimensions before it become
  dynamic too (``config.dynamic_leading_dims``: batch and sequence vary together).
  And once a frame has recompiled for a size, the batch/sequence-like dimensions of
  *every* input tensor of the frame are dynamic in the entries compiled from then on
  (``config.dynamic_size_like_dims``, ``size_like_dims``: every dimension of an integer
  or bool tensor (token ids, masks, positions, labels have no feature dimension), every
  dimension but the last of a floating tensor of rank >= 3 (``(batch, seq, features)``),
  the first of one of rank 1 or 2 (``(batch, features)``)). So a sweep over batch sizes
  and sequence lengths, in any order, costs one extra compile per frame, not one per
  dimension that turns out to vary (``L['ids'].shape[1]: dynamic with a size change of
  this frame (L['ids'].shape: (2, 5) then (4, 5)) ...``). Making a dimension symbolic
  that never varies costs no recompile: an op that needs it fixed pins it (a guard
  ``== 128``), otherwise the kernels read it at run time.
* ``dynamic=True``: every dimension of every input tensor is symbolic from the first
  call.
* ``mark_dynamic(t, dim)`` / ``mark_static(t, dim)`` on an input tensor before the
  call override the above for that dimension.

In every mode sizes 0 and 1 stay numbers (broadcasting and empty tensors behave
differently; user code branches on them too: transformers' masks test
``batch_size != position_ids.shape[0]`` and SDPA's ``q_length > 1``), and parameters and buffers of modules stay static (they do not change
size between calls). Python ints passed as arguments are not made symbolic: they are
guarded by value (a changed int recompiles; the report says to pass it as a tensor if
it varies), which keeps them usable as plain numbers in the traced code.
"""
from __future__ import annotations

import dataclasses

import torch

from capture import config
from guards.sources import ModuleMemberSource

_DYNAMIC_ATTR = "_capture_dynamic_dims"
_STATIC_ATTR = "_capture_static_dims"


def _checked_dims(t, dim, what: str) -> set:
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"capture.{what}: expected a tensor, got {type(t).__name__}")
    dims = [dim] if isinstance(dim, int) else list(dim)
    out = set()
    for d in dims:
        if not isinstance(d, int) or isinstance(d, bool):
            raise TypeError(f"capture.{what}: dim must be an int, got {type(d).__name__}")
        if not -t.dim() <= d < max(t.dim(), 1) or t.dim() == 0:
            raise IndexError(f"capture.{what}: dim {d} is out of range for a tensor with {t.dim()} "
                             f"dimension(s) (shape {tuple(t.shape)})")
        out.add(d % t.dim())
    return out


def mark_dynamic(t: torch.Tensor, dim) -> None:
    """Make dimension ``dim`` (an int or a list of ints) of input ``t`` symbolic from the
    first call it is compiled for (unless its size is 0 or 1)."""
    dims = _checked_dims(t, dim, "mark_dynamic")
    setattr(t, _DYNAMIC_ATTR, getattr(t, _DYNAMIC_ATTR, set()) | dims)
    static = getattr(t, _STATIC_ATTR, set())
    if static & dims:
        setattr(t, _STATIC_ATTR, static - dims)


def mark_static(t: torch.Tensor, dim) -> None:
    """Keep dimension ``dim`` of input ``t`` a number, whatever ``dynamic`` says."""
    dims = _checked_dims(t, dim, "mark_static")
    setattr(t, _STATIC_ATTR, getattr(t, _STATIC_ATTR, set()) | dims)
    dynamic = getattr(t, _DYNAMIC_ATTR, set())
    if dynamic & dims:
        setattr(t, _DYNAMIC_ATTR, dynamic - dims)


def check_mode(dynamic) -> None:
    if dynamic not in (None, True, False):
        raise TypeError(f"capture.compile: dynamic must be None, True or False, got {dynamic!r}")


@dataclasses.dataclass
class DynamicDims:
    """What one frame (code object) learned about its input sizes across compiles."""

    seen: dict = dataclasses.field(default_factory=dict)  # source name -> sizes at the last compile
    dims: dict = dataclasses.field(default_factory=dict)  # source name -> set of dynamic dims
    why: dict = dataclasses.field(default_factory=dict)  # "L['x'].shape[0]" -> "8 then 16 -> dynamic"
    varies: str | None = None  # the first size change that recompiled this frame ("L['x'].shape: (2, 5) then (4, 5)")


def size_like_dims(value: torch.Tensor) -> range:
    """The dimensions of an input tensor that are batch- or sequence-like (see the
    module docstring): all of an integer/bool tensor's, all but the last of a floating
    tensor of rank >= 3, the first of a floating tensor of rank 1 or 2."""
    if value.dim() == 0:
        return range(0)
    if not (value.is_floating_point() or value.is_complex()):
        return range(value.dim())
    return range(value.dim() - 1) if value.dim() >= 3 else range(1)


def _argument_tensors(name: str, value):
    """(source name, tensor) for a tensor argument and the tensors directly inside a
    tuple/list/dict argument, named as the trace's sources name them."""
    if isinstance(value, torch.Tensor):
        yield name, value
    elif isinstance(value, (tuple, list)):
        for i, item in enumerate(value):
            if isinstance(item, torch.Tensor):
                yield f"{name}[{i!r}]", item
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, (str, int)) and isinstance(item, torch.Tensor):
                yield f"{name}[{key!r}]", item


class ShapePolicy:
    """Decides, for one trace, which dimensions of each input tensor are symbolic."""

    def __init__(self, mode, learned: DynamicDims):
        self.mode = mode
        self.learned = learned

    def dynamic_dims(self, source, value: torch.Tensor) -> set:
        name = source.name()
        if isinstance(source, ModuleMemberSource) or isinstance(value, torch.nn.Parameter):
            return set()
        marked = getattr(value, _DYNAMIC_ATTR, set())
        static = getattr(value, _STATIC_ATTR, set())
        sizes = tuple(value.shape)
        if self.mode is False:
            dims = set()
        elif self.mode is True:
            dims = set(range(value.dim()))
        else:
            dims = self._learn(name, sizes) | self._size_like(name, value)
        self.learned.seen[name] = sizes
        return (dims | marked) - static

    def notice_arguments(self, names, values) -> None:
        """Before the trace: whether this compile is caused by a size change of a tensor
        argument (or of one directly inside a tuple/list/dict argument), so that inputs
        traced before the one that changed get their size-like dims too."""
        if self.mode is not None or self.learned.varies or not self.learned.seen:
            return
        for arg, value in zip(names, values):
            for name, t in _argument_tensors(f"L[{arg!r}]", value):
                self._note_change(name, self.learned.seen.get(name), tuple(t.shape))

    def _note_change(self, name: str, before, sizes: tuple) -> None:
        if self.learned.varies is None and before is not None and len(before) == len(sizes) and before != sizes:
            self.learned.varies = f"{name}.shape: {before} then {sizes}"

    def _size_like(self, name: str, value: torch.Tensor) -> set:
        """With ``config.dynamic_size_like_dims``, once the frame recompiled for a size:
        the input's batch/sequence-like dims (those of size >= 2 become symbolic)."""
        if not (config.dynamic_size_like_dims and self.learned.varies):
            return set()
        known = self.learned.dims.setdefault(name, set())
        for dim in size_like_dims(value):
            if dim not in known:
                known.add(dim)
                self.learned.why.setdefault(f"{name}.shape[{dim}]", (
                    f"dynamic with a size change of this frame ({self.learned.varies}): batch/sequence-like "
                    f"dims of every input vary together (config.dynamic_size_like_dims)"))
        return set(known)

    def _learn(self, name: str, sizes: tuple) -> set:
        known = self.learned.dims.setdefault(name, set())
        before = self.learned.seen.get(name)
        if before is None or len(before) != len(sizes):
            return set(known)
        changed = [dim for dim, (old, new) in enumerate(zip(before, sizes)) if old != new]
        self._note_change(name, before, sizes)
        for dim in changed:
            if dim not in known:
                known.add(dim)
                self.learned.why[f"{name}.shape[{dim}]"] = f"{before[dim]} then {sizes[dim]} -> dynamic"
        if changed and config.dynamic_leading_dims:
            last = max(changed)
            for dim in range(last):
                if dim not in known and sizes[dim] >= 2:
                    known.add(dim)
                    self.learned.why[f"{name}.shape[{dim}]"] = (
                        f"dynamic with shape[{last}] (leading dimensions vary together; config.dynamic_leading_dims)")
        return set(known)

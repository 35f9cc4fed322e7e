"""Which input sizes are symbolic: ``dynamic=None|True|False`` and the user's marks.

* ``dynamic=False``: every size is a number; a new size is a new cache entry.
* ``dynamic=None`` (default, "automatic dynamic"): the first compile of a frame is
  static. Each frame remembers the sizes of the input tensors it was compiled for;
  when it compiles again and a dimension of the same input has another size, that
  dimension is dynamic from then on (``L['x'].shape[0]: 8 then 16 -> dynamic``), so a
  function called with 20 batch sizes compiles twice. The dimensions before it become
  dynamic too (``config.dynamic_leading_dims``: batch and sequence vary together).
* ``dynamic=True``: every dimension of every input tensor is symbolic from the first
  call.
* ``mark_dynamic(t, dim)`` / ``mark_static(t, dim)`` on an input tensor before the
  call override the above for that dimension.

In every mode sizes 0 and 1 stay numbers (broadcasting and empty tensors behave
differently), and parameters and buffers of modules stay static (they do not change
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
            dims = self._learn(name, sizes)
        self.learned.seen[name] = sizes
        return (dims | marked) - static

    def _learn(self, name: str, sizes: tuple) -> set:
        known = self.learned.dims.setdefault(name, set())
        before = self.learned.seen.get(name)
        if before is None or len(before) != len(sizes):
            return set(known)
        changed = [dim for dim, (old, new) in enumerate(zip(before, sizes)) if old != new]
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

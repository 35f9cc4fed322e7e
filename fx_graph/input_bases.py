"""Inputs that share storage and are written: handed to AOT autograd as their base.

``f(x, y)`` called with overlapping views of one tensor (``x = t[:2]; y = t[1:3]``)
that writes ``y`` changes ``x`` too. AOT autograd handles such inputs with "synthetic
bases", but that path is wrong in places (gradients through a write made under
``no_grad`` are cut; an output view comes back at the wrong offset). So the compiled
path does it itself: every group of inputs that share a storage, when the graph writes
one of them, is replaced by the tensor they all view (their common ``_base``), and the
traced function rebuilds each member with ``as_strided`` at its size, strides and
storage offset. To AOT autograd the graph then mutates one plain input.

One tensor passed twice (``f(x, x)``) is handed over once, and the traced function
reads it at both positions: AOT autograd's own de-duplication miscounts the gradients
of mutated inputs when some mutated input needs none (a BatchNorm's running statistics
beside ``f(x, x)`` writing ``x`` raised IndexError inside it).

The storage offsets are part of the plan: ``key(flat)`` changes when they do (the
caller compiles another variant), as does the aliasing pattern and which positions
hold the same tensor.
"""
from __future__ import annotations

import dataclasses

import torch


class InputBaseError(RuntimeError):
    """Aliased inputs this module does not rebase (the graph runs as captured)."""


@dataclasses.dataclass(frozen=True)
class Member:
    position: int        # flat input position
    base: int            # which base (index into InputBases.bases)
    size: tuple
    stride: tuple
    offset: int          # absolute storage offset


class InputBases:
    def __init__(self, n_inputs: int, members: list, bases: list, duplicates: dict):
        self.n_inputs = n_inputs
        self.members = members                       # Member per rebased input
        self.bases = bases                           # flat position of a member whose base it is
        self.duplicates = duplicates                 # position -> earlier position of the same tensor
        rebased = {m.position for m in members}
        self.kept = [i for i in range(n_inputs) if i not in rebased and i not in duplicates]

    def __bool__(self) -> bool:
        return bool(self.members or self.duplicates)

    def inputs(self, flat: list) -> list:
        """What AOT autograd's function takes: the kept inputs, then one base per group."""
        return [flat[i] for i in self.kept] + [_base_of(flat[p]) for p in self.bases]

    def wrap(self, fn):
        """``fn`` over the flat inputs, as a function of ``inputs(flat)``."""
        n_kept = len(self.kept)

        def rebuilt(*args):
            flat = [None] * self.n_inputs
            for i, value in zip(self.kept, args):
                flat[i] = value
            bases = args[n_kept:]
            for m in self.members:
                flat[m.position] = bases[m.base].as_strided(m.size, m.stride, m.offset)
            for position, first in self.duplicates.items():
                flat[position] = flat[first]
            return fn(*flat)
        return rebuilt


def plan_bases(flat: list, written: set, metadata_written: set) -> InputBases:
    """Groups of inputs sharing storage with a written member, rebased (see above)."""
    groups: dict = {}
    for i, x in enumerate(flat):
        if isinstance(x, torch.Tensor) and x.numel() > 0:
            groups.setdefault(x.untyped_storage()._cdata, []).append(i)
    members, bases = [], []
    for positions in groups.values():
        distinct = {id(flat[i]) for i in positions}
        if len(distinct) < 2 or not written.intersection(positions):
            continue                 # one input (maybe passed twice: AOT dedupes it), or only read
        if metadata_written.intersection(positions):
            raise InputBaseError("an input sharing storage with another input has its sizes or strides changed")
        roots = {id(_base_of(flat[i])) for i in positions}
        if len(roots) != 1:
            raise InputBaseError("inputs share storage without being views of one tensor")
        for i in positions:
            x = flat[i]
            members.append(Member(i, len(bases), tuple(x.shape), tuple(x.stride()), x.storage_offset()))
        bases.append(positions[0])
    rebased = {m.position for m in members}
    duplicates = {i: first for i, first in enumerate(same_tensor(flat)) if first != i and i not in rebased}
    return InputBases(len(flat), members, bases, duplicates)


def same_tensor(flat: list) -> tuple:
    """For each input, the position of the first input that is the same object."""
    first: dict = {}
    return tuple(first.setdefault(id(x), i) if isinstance(x, torch.Tensor) else i for i, x in enumerate(flat))


def key(flat: list) -> tuple:
    """Storage offsets of the inputs that share storage, and which positions hold the
    same tensor (part of a variant's key)."""
    seen: dict = {}
    for i, x in enumerate(flat):
        if isinstance(x, torch.Tensor) and x.numel() > 0:
            seen.setdefault(x.untyped_storage()._cdata, []).append(i)
    offsets = tuple((i, flat[i].storage_offset()) for group in seen.values() if len(group) > 1 for i in group)
    return offsets, same_tensor(flat)


def _base_of(x: torch.Tensor) -> torch.Tensor:
    return x if x._base is None else x._base

"""Outputs that are inputs or views, rebuilt as eager has them.

AOT autograd rebuilds outputs that alias graph inputs, but not always as eager has
them: with inputs that alias each other and are mutated (its "synthetic base" path)
an output view of an input comes back at the wrong storage offset, and an output that
is a view of an *intermediate* (``y = x * 2; return y, y[0]``, ``t.flatten(1)``) comes
back as a fresh tensor unless autograd needs the aliasing — so two outputs that share
storage in eager would not, and ``out._base`` would be missing. So this module takes
every aliasing output away from AOT:

* the function AOT traces (``wrap(fn)``) returns only the outputs that are new
  tensors, then the *base* of each view of an intermediate that is not itself an output;
* after the call, ``rebuild`` puts back: an input returned as is (the caller's
  object), a view of an input (``as_strided`` on the caller's tensor, after AOT applied
  the graph's mutations to it), a view of an intermediate (``as_strided`` on its base),
  each with eager's sizes, strides and storage offset, created under the grad mode
  that gives eager's ``requires_grad`` / ``is_leaf``; a tensor of its own over an
  input's, another output's or an intermediate's memory (``x.detach()``, ``h.detach()``
  beside ``h``), without ``_base``;
* grad mode: a graph that switches it (``torch.set_grad_enabled(False)`` before a
  break) leaves it switched (AOT autograd forgets to when it deduplicates inputs).

The plan comes from one run of the flat function on fake copies of the actual inputs
(``plan_outputs``): fake tensors keep storage sharing, views and ``_base``, so it sees
what eager would return for inputs that alias each other exactly as these do.
"""
from __future__ import annotations

import dataclasses

import torch
from torch._subclasses.fake_tensor import FakeTensorMode

from fx_graph.layout import unviewed
from fx_graph.overlap import InPlaceCheck, InPlaceRefusal, internal_overlap, is_dense


class OutputAliasError(RuntimeError):
    """The outputs alias something in a way this module does not rebuild."""


@dataclasses.dataclass(frozen=True)
class Alias:
    """Output = ``source`` (an input, an earlier output or a base), viewed with this layout."""
    kind: str                  # "input" | "same" | "input_view" | "intermediate_view" | one of DETACHED
    source: int                # input position | output position | input position | base slot (DETACHED: kind's)
    size: tuple = ()
    stride: tuple = ()
    offset: int = 0            # storage offset relative to the source's
    no_grad_view: bool = False  # eager made the view under no_grad: a leaf that requires grad


# Outputs over another tensor's memory that are no view of it (``x.detach()``, ``h.data``
# beside ``h``): an input's, another output's (position), an intermediate's (base slot).
DETACHED = ("input_detached", "output_detached", "base_detached")


@dataclasses.dataclass(frozen=True)
class Base:
    """An intermediate some outputs view: an output itself, or an extra output."""
    output: int | None
    extra: int | None
    size: tuple
    stride: tuple


class OutputAliases:
    """Which outputs alias inputs, intermediates or each other; see the module docstring."""

    def __init__(self, aliases: dict, n_outputs: int, bases: list):
        self.aliases = aliases            # output position -> Alias
        self.n_outputs = n_outputs
        self.kept = [i for i in range(n_outputs) if i not in aliases]
        self.bases = bases                # base slot -> Base
        self.n_extra = sum(1 for b in bases if b.extra is not None)
        self.grad_mode_after = None       # grad mode the graph leaves set (None: the caller's)
        self.written: set = set()         # input positions the graph writes (data or metadata)
        self.metadata_written: set = set()   # ... whose sizes, strides or offset it changes
        # output position -> eager's (size, stride) of a new output written in place after it
        # was made (``a = y.to(f64); a.masked_fill_(m, 1)``): functionalized, it is the result
        # of the out-of-place op, whose layout may differ (masked_fill's is contiguous)
        self.relayout: dict = {}
        self._extra_sources = {b.extra: i for i, a in aliases.items() if a.kind == "intermediate_view"
                               for b in [bases[a.source]] if b.extra is not None}

    def __bool__(self) -> bool:
        return bool(self.aliases) or self.grad_mode_after is not None or bool(self.relayout)

    def views_inputs(self) -> bool:
        return any(a.kind in ("input_view", "input_detached") for a in self.aliases.values())

    def wrap(self, fn):
        """``fn`` returning its kept outputs, then the extra bases (what AOT traces)."""
        def returning_new_tensors(*args):
            outs = fn(*args)
            extra = []
            for k in range(self.n_extra):
                base = outs[self._extra_sources[k]]._base
                if base is None:
                    raise OutputAliasError("an output that views an intermediate is not a view while tracing to aten")
                extra.append(base)
            return tuple(outs[i] for i in self.kept) + tuple(extra)
        return returning_new_tensors

    def rebuild(self, inputs: list, flat_outs) -> list:
        """The graph's outputs from the inputs (after the call) and what the compiled
        function returned; grad mode as the graph leaves it."""
        if self.grad_mode_after is not None:
            torch._C._set_grad_enabled(self.grad_mode_after)
        outs = [None] * self.n_outputs
        for i, value in zip(self.kept, flat_outs):
            outs[i] = value
        for i, (size, stride) in self.relayout.items():
            outs[i] = _in_layout(outs[i], size, stride)
        extras = flat_outs[len(self.kept):]
        bases = []
        for base in self.bases:
            value = outs[base.output] if base.output is not None else extras[base.extra]
            value = _in_layout(value, base.size, base.stride)
            if base.output is not None:
                outs[base.output] = value
            bases.append(value)
        for i in sorted(self.aliases):
            alias = self.aliases[i]
            if alias.kind == "input":
                outs[i] = inputs[alias.source]
            elif alias.kind == "same":
                outs[i] = outs[alias.source]
            elif alias.kind in DETACHED:
                source = {"input_detached": inputs, "output_detached": outs, "base_detached": bases}[alias.kind]
                outs[i] = _detached(source[alias.source], alias)
            else:
                base = inputs[alias.source] if alias.kind == "input_view" else bases[alias.source]
                offset = base.storage_offset() + alias.offset
                # A view of the input's own base: autograd maps the view's gradient onto the
                # whole base, also where it reaches beyond the input (aliased inputs).
                base = base if base._base is None else base._base
                with torch.set_grad_enabled(not alias.no_grad_view):
                    outs[i] = base.as_strided(alias.size, alias.stride, offset)
        return outs


def plan_outputs(fn, flat_inputs: list, symbolic=None) -> OutputAliases:
    """Run ``fn`` on fakes of ``flat_inputs`` and record how its outputs alias and which
    inputs it writes (raises ``fx_graph.overlap.InPlaceRefusal`` where eager would
    refuse an in-place op). ``symbolic``: (fakes, their fake mode) of a graph with
    symbolic sizes, run instead (its graph holds symbolic sizes: static fakes would make
    the ShapeEnv specialize them)."""
    rng, grad = torch.get_rng_state(), torch.is_grad_enabled()
    if symbolic is None:
        mode = FakeTensorMode(allow_non_fake_inputs=True)
        fakes = [mode.from_tensor(x, static_shapes=True) if isinstance(x, torch.Tensor) else x for x in flat_inputs]
    else:
        fakes, mode = symbolic
    before = [_state(x) for x in fakes]
    try:
        with mode, InPlaceCheck():
            outs = fn(*fakes)
        grad_after = torch.is_grad_enabled()
    finally:
        torch.set_rng_state(rng)
        torch._C._set_grad_enabled(grad)
    _check_readable(outs)
    plan = _plan(fakes, list(outs))
    plan.grad_mode_after = grad_after if grad_after != grad else None
    if symbolic is None:
        plan.relayout = _written_after_made(plan, list(outs))
    # printed after the run, before and after alike: a size the run specialized (a guard,
    # e.g. an attention head width) prints as its number in both
    before, after = [_text(state) for state in before], [_text(_state(x)) for x in fakes]
    plan.written = {i for i, (b, a) in enumerate(zip(before, after)) if b != a}
    plan.metadata_written = {i for i, (b, a) in enumerate(zip(before, after)) if b and a and b[1:] != a[1:]}
    overlapping = sorted(i for i in plan.written if internal_overlap(flat_inputs[i]))
    if overlapping:
        raise InPlaceRefusal(f"input {overlapping[0]} is written and has internal overlap (a broadcast dimension): "
                             "the result cannot be copied back into it")
    return plan


def _written_after_made(plan: OutputAliases, outs: list) -> dict:
    """New outputs (no base of others) an in-place op wrote after they were made, laid out
    densely but not contiguously: eager's layout, which the functionalized graph may not
    keep (out-of-place ops mostly keep their input's layout or make it contiguous; a
    contiguous one keeps the plan empty: the residual ``h += x`` of models calls the
    compiled graph directly)."""
    bases = {b.output for b in plan.bases}
    return {i: (tuple(outs[i].shape), tuple(outs[i].stride())) for i in plan.kept
            if isinstance(outs[i], torch.Tensor) and i not in bases and outs[i]._version > 0
            and outs[i].numel() > 1 and is_dense(outs[i]) and not outs[i].is_contiguous()}


def _check_readable(outs) -> None:
    """Refuse outputs autograd forbids reading: a view made under no_grad whose base was
    then modified in place with grad on (eager raises only where the program reads it;
    AOT autograd would read it)."""
    for i, out in enumerate(outs):
        if isinstance(out, torch.Tensor):
            try:
                out.grad_fn  # noqa: B018 - the read autograd forbids
            except RuntimeError:
                raise OutputAliasError(f"output {i} is a view made under no_grad whose base was modified in place "
                                       "afterwards (autograd forbids reading it)") from None


def _state(x):
    """Version counter and metadata of a fake input (None for a non-tensor)."""
    if not isinstance(x, torch.Tensor):
        return None
    return x._version, tuple(x.shape), tuple(x.stride()), x.storage_offset()


def _text(state):
    """``_state`` comparable without a guard: symbolic sizes as their printed expressions."""
    return None if state is None else (state[0], *(str(v) for v in state[1:]))


def _plan(inputs: list, outputs: list) -> OutputAliases:
    input_position = {id(x): j for j, x in enumerate(inputs) if isinstance(x, torch.Tensor)}
    input_storage = {_storage(x) for x in inputs if isinstance(x, torch.Tensor)}
    input_roots = {id(t) for x in inputs if isinstance(x, torch.Tensor) for t in (x, x._base) if t is not None}
    first_output = {}
    for i, out in enumerate(outputs):
        if isinstance(out, torch.Tensor):
            first_output.setdefault(id(out), i)
    aliases, base_slots, bases = {}, {}, []
    for i, out in enumerate(outputs):
        if not isinstance(out, torch.Tensor):
            continue
        if id(out) in input_position:
            aliases[i] = Alias("input", input_position[id(out)])
        elif first_output[id(out)] != i:
            aliases[i] = Alias("same", first_output[id(out)])
        elif _storage(out) in input_storage:
            j = _containing_input(out, inputs)
            if out._base is None and out.requires_grad:
                raise OutputAliasError(f"output {i} shares an input's storage without being its view")
            if out._base is not None and id(out._base) not in input_roots:
                raise OutputAliasError(f"output {i} views a tensor of its own over an input's memory "
                                       "(a view of x.detach()): not rebuilt yet")
            aliases[i] = _view(out, "input_view" if out._base is not None else "input_detached", j, inputs[j])
        elif out._base is not None:
            base = out._base
            if id(base) not in base_slots:
                base_slots[id(base)] = len(bases)
                own = first_output.get(id(base))
                extra = None if own is not None else sum(1 for b in bases if b.extra is not None)
                bases.append(Base(own, extra, tuple(base.shape), tuple(base.stride())))
            aliases[i] = _view(out, "intermediate_view", base_slots[id(base)], base)
    base_tensors = {slot: out._base for out in outputs if isinstance(out, torch.Tensor)
                    for slot in [base_slots.get(id(out._base))] if slot is not None}
    _plan_detached(outputs, aliases, base_tensors)
    return OutputAliases(aliases, len(outputs), bases)


def _plan_detached(outputs: list, aliases: dict, base_tensors: dict) -> None:
    """Outputs left new that share memory with another output or with an intermediate
    some output views (``h.detach()`` beside ``h`` or ``h[0]``): eager's tensor of its own
    (no ``_base``) over that memory. The holder is a base, else the output autograd
    records (requires grad), else the first."""
    holders = {_storage(t): ("base_detached", slot, t) for slot, t in base_tensors.items()}
    new = [i for i, out in enumerate(outputs) if isinstance(out, torch.Tensor) and i not in aliases]
    for i in sorted(new, key=lambda i: not outputs[i].requires_grad):
        holders.setdefault(_storage(outputs[i]), ("output_detached", i, outputs[i]))
    for i in new:
        kind, source, holder = holders[_storage(outputs[i])]
        if holder is outputs[i]:
            continue
        if outputs[i].requires_grad:
            raise OutputAliasError(f"output {i} shares memory with another tensor autograd records, without being its view")
        aliases[i] = _view(outputs[i], kind, source, holder)


def _containing_input(out: torch.Tensor, inputs: list) -> int:
    """The first input whose elements include all of ``out``'s (``f(x, x[1:])`` returning
    ``x[1:].t()`` views the second input, ``f(x[1:], x)`` returning ``x[0]`` the second)."""
    low, high = _extent(out)
    for j, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and _storage(x) == _storage(out):
            x_low, x_high = _extent(x)
            if x_low <= low and high <= x_high:
                return j
    raise OutputAliasError("an output views the storage of an input beyond that input's elements")


def _extent(t: torch.Tensor) -> tuple:
    """First and last storage element ``t`` can reach."""
    if t.numel() == 0:
        return t.storage_offset(), t.storage_offset()
    reach = sum((size - 1) * stride for size, stride in zip(t.shape, t.stride()))
    return t.storage_offset(), t.storage_offset() + reach


def _view(out: torch.Tensor, kind: str, source: int, base: torch.Tensor) -> Alias:
    if out.dtype != base.dtype:
        raise OutputAliasError(f"an output views a tensor as another dtype ({base.dtype} as {out.dtype})")
    return Alias(kind, source, tuple(out.shape), tuple(out.stride()), out.storage_offset() - base.storage_offset(),
                 no_grad_view=base.requires_grad and out.is_leaf)


def _detached(source: torch.Tensor, alias: Alias) -> torch.Tensor:
    """A tensor of its own over ``source``'s memory, laid out as ``alias`` says."""
    with torch.no_grad():
        return unviewed(source.as_strided(alias.size, alias.stride, source.storage_offset() + alias.offset))


def _in_layout(base: torch.Tensor, size, stride) -> torch.Tensor:
    """``base`` with eager's strides (a copy only if the compiled graph chose others)."""
    if tuple(base.stride()) == stride or base.numel() <= 1:
        return base
    return torch.empty_strided(size, stride, dtype=base.dtype, device=base.device).copy_(base)


def _storage(value: torch.Tensor) -> int:
    return value.untyped_storage()._cdata

"""A stand-in for the hidden "real programs and third-party models" suite.

Each program is ``(name, make_callable, make_inputs, needs_break)``:

- ``make_callable()`` builds a fresh function or ``nn.Module`` (weights come from the
  global RNG; the test seeds it, and compares against a deep copy for modules);
- ``make_inputs()`` builds fresh inputs: a tuple of positional arguments, or a
  :class:`Call` when keyword arguments are needed;
- ``needs_break`` is True when the program genuinely cannot be one graph (print of a
  value, ``.item()`` in an ``if``, numpy, ...). Programs with ``needs_break=False`` count
  toward the single-graph capture rate.

Programs are plain Python written the way people write PyTorch code; they are kept in
modules by theme and gathered here into ``PROGRAMS``.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass
class Call:
    """Inputs with keyword arguments."""

    args: tuple = ()
    kwargs: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Program:
    name: str
    make_callable: object
    make_inputs: object
    needs_break: bool = False
    tags: tuple = ()

    # Unpacks as the documented 4-tuple.
    def __iter__(self):
        return iter((self.name, self.make_callable, self.make_inputs, self.needs_break))


def program(registry, name, make_inputs, needs_break=False, tags=()):
    """Decorator: register ``make_callable`` under ``name`` in ``registry``."""
    def register(make_callable):
        registry.append(Program(name, make_callable, make_inputs, needs_break, tuple(tags)))
        return make_callable
    return register


def _collect():
    from . import programs_breaks, programs_functions, programs_hf, programs_nlp, programs_utils, programs_vision
    out = []
    for module in (programs_vision, programs_nlp, programs_functions, programs_utils, programs_breaks, programs_hf):
        out.extend(module.PROGRAMS)
    names = [p.name for p in out]
    dupes = {n for n in names if names.count(n) > 1}
    assert not dupes, f"duplicate program names: {sorted(dupes)}"
    return out


PROGRAMS = _collect()

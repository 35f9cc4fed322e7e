"""torch's process-wide caches that building and compiling our graphs fills, and how to
give that memory back.

- torch.fx keeps the generated source of every GraphModule it ever compiled (a copy in
  ``torch.fx.graph_module._loader`` and a linecache entry) for the life of the process.
  ``sources_since(mark)`` names the ones made after ``sources_mark()`` — a compile's
  own — so they can be forgotten when what they belong to goes.
- ``FakeTensorMode`` keeps one dispatch cache for all fake modes, keyed by op,
  metadata and constants: it grows with every distinct graph traced.
"""
from __future__ import annotations

import linecache

from torch._subclasses.fake_tensor import FakeTensorMode
from torch.fx import graph_module as _graph_module


_KEY_PREFIX = "<eval_with_key>."


def _eval_cache() -> dict:
    return _graph_module._loader.eval_cache


def sources_mark() -> int:
    """A mark before the GraphModule sources made from now on (torch.fx numbers them)."""
    return _graph_module._loader.next_id


def sources_since(mark: int) -> tuple:
    """Names of the GraphModule sources made after ``mark`` (newest first). The numbers
    in their names only grow, so sources forgotten meanwhile do not blur the mark."""
    made = []
    for key in reversed(_eval_cache()):
        number = _number(key)
        if number is None:
            continue  # a source named by its maker, not numbered: not ours to claim
        if number < mark:
            break
        made.append(key)
    return tuple(made)


def _number(key: str) -> int | None:
    """``<eval_with_key>.12`` (or ``<eval_with_key>.12 from file:line in fn``) -> 12."""
    if not key.startswith(_KEY_PREFIX):
        return None
    digits = key[len(_KEY_PREFIX):].split(" ", 1)[0]
    return int(digits) if digits.isdigit() else None


def forget_sources(keys) -> None:
    """Drop these GraphModule sources from torch.fx's loader and from linecache."""
    cache = _eval_cache()
    for key in keys:
        cache.pop(key, None)
        linecache.cache.pop(key, None)


def clear_fake_dispatch_cache() -> None:
    FakeTensorMode.cache_clear()

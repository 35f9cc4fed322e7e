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


def _eval_cache() -> dict:
    return _graph_module._loader.eval_cache


def sources_mark():
    """The newest GraphModule source now (None if there is none)."""
    cache = _eval_cache()
    return next(reversed(cache)) if cache else None


def sources_since(mark) -> tuple:
    """Names of the GraphModule sources made after ``mark`` (newest first)."""
    made = []
    for key in reversed(_eval_cache()):
        if key == mark:
            break
        made.append(key)
    return tuple(made)


def forget_sources(keys) -> None:
    """Drop these GraphModule sources from torch.fx's loader and from linecache."""
    cache = _eval_cache()
    for key in keys:
        cache.pop(key, None)
        linecache.cache.pop(key, None)


def clear_fake_dispatch_cache() -> None:
    FakeTensorMode.cache_clear()

"""Whether eager has a kernel for an op's dtypes, for ops the front end traces.

A fake kernel answers for any dtype; eager's kernels are compiled for some dtypes only
(``bool_x.abs()``, ``int_x.frac()``, ``int_x.softmax(0)``, ``torch.lerp`` on integers
raise NotImplementedError; ``bool_x.relu()`` RuntimeError, ``float_x & 3``
NotImplementedError) while generated code computes them, or drops them as dead code, or
loses the writes eager made before raising. ``refusal(target, args, kwargs)`` runs an op
with tensor arguments once on one-element tensors of the same dtypes, ranks and device
(cached per op and argument kinds; random ops draw from a forked generator) and
returns eager's message when eager has no kernel for them, else None: the builder fails
the op's trace with it (a graph break, and the op then raises natively). Only a missing kernel counts; any other error of the
probe (sizes that do not fit one-element tensors) says nothing.
"""
from __future__ import annotations

import torch
from torch.utils._pytree import tree_flatten, tree_unflatten

_CACHE: dict = {}
# what eager says when it has no kernel for a dtype
_NO_KERNEL = ("not implemented for", "not supported for")


def refusal(target, args: tuple, kwargs: dict) -> str | None:
    if not _is_torch_op(target):
        return None
    leaves, spec = tree_flatten((args, kwargs))
    if not any(isinstance(x, torch.Tensor) for x in leaves):
        return None
    key = _key(target, leaves)
    if key is None:
        return None
    if key not in _CACHE:
        _CACHE[key] = _probe(target, leaves, spec)
    return _CACHE[key]


def _is_torch_op(target) -> bool:
    """A tensor method (by name), a torch function or method, or a Python operator: never
    user code (a custom autograd.Function's apply, a module), which the probe would run."""
    if isinstance(target, str):
        return True
    module = getattr(target, "__module__", None) or ""
    return module == "_operator" or module.startswith("torch") and not module.startswith("torch.nn.modules") \
        or getattr(target, "__objclass__", None) in (torch._C.TensorBase, torch.Tensor)


def _key(target, leaves):
    parts = []
    for x in leaves:
        if isinstance(x, torch.Tensor):
            parts.append((x.dtype, x.dim(), x.device.type))
        elif isinstance(x, (int, float, bool, str, type(None), torch.dtype, slice)) \
                and not _symbolic(x) and not (isinstance(x, slice) and any(map(_symbolic, (x.start, x.stop, x.step)))):
            parts.append(repr(x))
        else:
            return None                 # symbolic sizes and other objects: not probed
    return target, tuple(parts)


def _symbolic(x) -> bool:
    """A symbolic size: running the probe with it would make it a number (a guard)."""
    return isinstance(x, (torch.SymInt, torch.SymFloat, torch.SymBool))


def _probe(target, leaves, spec) -> str | None:
    real = [torch.ones([1] * x.dim(), dtype=x.dtype, device=x.device) if isinstance(x, torch.Tensor) else x
            for x in leaves]
    args, kwargs = tree_unflatten(real, spec)
    devices = sorted({x.device for x in real if isinstance(x, torch.Tensor) and x.device.type == "cuda"}, key=str)
    try:
        with torch.random.fork_rng(devices=devices):     # a random op must not draw from the user's generator
            if isinstance(target, str):
                getattr(args[0], target)(*args[1:], **kwargs)
            else:
                target(*args, **kwargs)
    except NotImplementedError as e:
        return f"NotImplementedError: {e}"
    except RuntimeError as e:
        if any(text in str(e) for text in _NO_KERNEL):
            return f"RuntimeError: {str(e).splitlines()[0]}"
    except Exception:  # noqa: BLE001 - sizes or values one-element tensors do not fit: no answer
        return None
    return None


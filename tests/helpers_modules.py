"""Small helpers shared by test_modules_*.py and test_guards_*.py.

Everything compares a compiled callable against eager PyTorch on *fresh* inputs
(inputs never seen while tracing), so a graph that baked in data, or a cache entry
reused when its guards should have failed, gives a wrong answer and fails the test.
"""
from __future__ import annotations

import torch

import capture
from capture.state import FRAMES


def assert_same(got, expected, rtol=1e-5, atol=1e-6, path="out"):
    """Recursive comparison of tensors / containers / Python scalars, metadata included."""
    if isinstance(expected, torch.Tensor):
        assert isinstance(got, torch.Tensor), f"{path}: expected a tensor, got {type(got).__name__}"
        assert got.shape == expected.shape, f"{path}: shape {tuple(got.shape)} != {tuple(expected.shape)}"
        assert got.dtype == expected.dtype, f"{path}: dtype {got.dtype} != {expected.dtype}"
        assert got.device == expected.device, f"{path}: device {got.device} != {expected.device}"
        assert got.requires_grad == expected.requires_grad, \
            f"{path}: requires_grad {got.requires_grad} != {expected.requires_grad}"
        if expected.dtype.is_floating_point or expected.dtype.is_complex:
            torch.testing.assert_close(got.detach(), expected.detach(), rtol=rtol, atol=atol, equal_nan=True,
                                       msg=lambda m: f"{path}: {m}")
        else:
            assert torch.equal(got, expected), f"{path}: values differ\n{got}\n{expected}"
        return
    if isinstance(expected, (tuple, list)):
        assert type(got) is type(expected), f"{path}: type {type(got).__name__} != {type(expected).__name__}"
        assert len(got) == len(expected), f"{path}: len {len(got)} != {len(expected)}"
        for i, (g, e) in enumerate(zip(got, expected)):
            assert_same(g, e, rtol, atol, f"{path}[{i}]")
        return
    if isinstance(expected, dict):
        assert type(got) is type(expected), f"{path}: type {type(got).__name__} != {type(expected).__name__}"
        assert list(got) == list(expected), f"{path}: keys {list(got)} != {list(expected)}"
        for k in expected:
            assert_same(got[k], expected[k], rtol, atol, f"{path}[{k!r}]")
        return
    assert type(got) is type(expected) and got == expected, f"{path}: {got!r} != {expected!r}"


def clone_args(args):
    """Deep copy of tensors in args (keeps requires_grad and layout/strides)."""
    if isinstance(args, torch.Tensor):
        out = torch.empty_strided(args.shape, args.stride(), dtype=args.dtype, device=args.device)
        out.copy_(args.detach())
        return out.requires_grad_(args.requires_grad) if args.is_leaf else out
    if isinstance(args, tuple):
        items = [clone_args(a) for a in args]
        return type(args)(*items) if hasattr(type(args), "_fields") else type(args)(items)
    if isinstance(args, list):
        return [clone_args(a) for a in args]
    if isinstance(args, dict):
        return {k: clone_args(v) for k, v in args.items()}
    return args


def check(compiled, eager, *args, rtol=1e-5, atol=1e-6, **kwargs):
    """Run both on (copies of) the same arguments and compare; returns compiled's output."""
    expected = eager(*clone_args(args), **clone_args(kwargs))
    got = compiled(*args, **kwargs)
    assert_same(got, expected, rtol, atol)
    return got


def check_fresh(compiled, eager, make_args, calls=3, rtol=1e-5, atol=1e-6):
    """Call ``calls`` times, each on freshly made arguments (first call compiles)."""
    for _ in range(calls):
        args = make_args()
        check(compiled, eager, *args, rtol=rtol, atol=atol)


def code_of(fn):
    """Code object captured for a function, method, nn.Module (its forward) or compiled wrapper."""
    fn = getattr(fn, "_capture_orig_mod", fn)
    fn = getattr(fn, "_capture_original", fn)
    if isinstance(fn, torch.nn.Module):
        return type(fn).forward.__code__
    fn = getattr(fn, "__func__", fn)
    return fn.__code__


def record(fn):
    return FRAMES[code_of(fn)]


def entries(fn) -> list:
    code = code_of(fn)
    return FRAMES[code].entries if code in FRAMES else []


def n_entries(fn) -> int:
    return len(entries(fn))


def reasons(fn) -> list[str]:
    """Every recompile reason recorded for fn's frame, flattened, and why entries were
    dropped (an object their guards named died)."""
    code = code_of(fn)
    if code not in FRAMES:
        return []
    return [r for _, rs in FRAMES[code].recompile_reasons for r in rs] + FRAMES[code].drops


def assert_recompiled(fn, before: int, *needles: str):
    """Compiles (entries, live or dropped) grew past ``before`` and some recompile or
    drop reason contains all needles."""
    code = code_of(fn)
    after = n_entries(fn) + (len(FRAMES[code].drops) if code in FRAMES else 0)
    assert after > before, f"expected a recompile: entries {before} -> {after}"
    rs = reasons(fn)
    assert any(all(n in r for n in needles) for r in rs), f"no recompile reason contains {needles}: {rs}"


def assert_one_graph(fn_or_module, *args):
    """capture.explain: exactly one graph and no breaks."""
    ex = capture.explain(fn_or_module)(*args)
    assert ex.graph_break_count == 0, f"breaks: {[str(r) for r in ex.break_reasons]}"
    assert ex.graph_count == 1, f"{ex.graph_count} graphs\n{ex}"
    return ex


# A global of another module, read by a function inlined into a compiled frame
# (guarded through sys.modules['helpers_modules']).
HELPER_SCALE = 2.0


def helper_scaled(x):
    return x * HELPER_SCALE

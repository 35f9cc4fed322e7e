"""Compare a function compiled with capture against the same function run eagerly.

``check(fn, *args, **kwargs)``:
  1. runs ``fn`` eagerly on a deep copy of the inputs;
  2. runs ``capture.compile(fn, backend=...)`` on another deep copy;
  3. compares the outputs (same types, nested containers, tensors with
     ``torch.testing.assert_close``, other values with ``==``), how they alias the
     inputs and each other (``out is x``, ``_base``, storage sharing, strides, storage
     offset, ``requires_grad``, ``is_leaf``), the state of the inputs afterwards
     (in-place and metadata mutations), and grad mode / autocast / default dtype after
     the call;
  4. calls both again on fresh random inputs of the same shapes/dtypes (the cache-hit
     path of the compiled function) and compares again; with ``expect_entries`` set
     it also checks how many cache entries the code object has (1 = no recompile);
  5. with ``expect_graphs`` set, runs ``capture.explain`` and asserts the number of
     graphs and that there was no graph break (``expect_breaks``).
"""
from __future__ import annotations

import copy
import dataclasses
import math
import os
import types

import torch

import capture

_MISSING = object()


# ---------------------------------------------------------------- tree helpers

def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def tree_map(fn, x):
    """Map ``fn`` over the tensors of nested tuples/lists/dicts/namedtuples/dataclasses."""
    if isinstance(x, torch.Tensor):
        return fn(x)
    if _is_namedtuple(x):
        return type(x)(*[tree_map(fn, v) for v in x])
    if isinstance(x, (tuple, list)):
        return type(x)(tree_map(fn, v) for v in x)
    if isinstance(x, dict):
        return type(x)((k, tree_map(fn, v)) for k, v in x.items())
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return dataclasses.replace(x, **{f.name: tree_map(fn, getattr(x, f.name))
                                         for f in dataclasses.fields(x) if f.init})
    return copy.deepcopy(x)


def tree_leaves(x, path="out"):
    """Yield (path, tensor) for each tensor leaf of a nested structure."""
    if isinstance(x, torch.Tensor):
        yield path, x
    elif isinstance(x, (tuple, list)):
        for i, v in enumerate(x):
            yield from tree_leaves(v, f"{path}[{i}]")
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from tree_leaves(v, f"{path}[{k!r}]")
    elif dataclasses.is_dataclass(x) and not isinstance(x, type):
        for f in dataclasses.fields(x):
            yield from tree_leaves(getattr(x, f.name), f"{path}.{f.name}")


def _fresh_tensor(t: torch.Tensor) -> torch.Tensor:
    if t.dtype == torch.bool:
        out = torch.rand(t.shape) > 0.5
    elif t.dtype.is_floating_point or t.dtype.is_complex:
        out = torch.randn(t.shape, dtype=t.dtype)
    else:
        if t.numel() == 0:
            out = torch.empty(t.shape, dtype=t.dtype)
        else:
            lo, hi = int(t.min()), int(t.max())
            out = torch.randint(lo, hi + 1, t.shape, dtype=t.dtype)
    out = out.to(t.device)
    if t.requires_grad:
        out.requires_grad_(True)
    return out


def fresh_like(x):
    """Same structure, new random tensors of the same shape/dtype/device.

    A tensor that appears twice in the inputs is replaced by one new tensor (aliasing kept)."""
    memo = {}

    def new(t):
        if id(t) not in memo:
            memo[id(t)] = (t, _fresh_tensor(t))
        return memo[id(t)][1]
    return tree_map(new, x)


def clone_inputs(args, kwargs):
    # one deepcopy keeps aliasing between inputs (the same tensor passed twice)
    return copy.deepcopy((args, kwargs))


# ---------------------------------------------------------------- comparing

def assert_same(actual, expected, path="out", tol=None):
    """Compiled ``actual`` equals eager ``expected``: same types all the way down (``tol``:
    dtype -> ``dict(rtol=, atol=)``, or a function of eager's tensor returning one, where
    assert_close's defaults are too tight)."""
    assert type(actual) is type(expected), f"{path}: type {type(actual).__name__} != {type(expected).__name__}"
    if isinstance(expected, torch.Tensor):
        assert actual.shape == expected.shape, f"{path}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
        assert actual.dtype == expected.dtype, f"{path}: dtype {actual.dtype} != {expected.dtype}"
        assert actual.device == expected.device, f"{path}: device {actual.device} != {expected.device}"
        assert actual.requires_grad == expected.requires_grad, f"{path}: requires_grad differs"
        assert actual.is_inference() == expected.is_inference(), f"{path}: is_inference differs"
        within = (tol or {}).get(expected.dtype, {})
        within = within(expected.detach()) if callable(within) else within
        torch.testing.assert_close(actual.detach(), expected.detach(), equal_nan=True, msg=lambda m: f"{path}: {m}",
                                   **within)
    elif isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]", tol)
    elif isinstance(expected, dict):
        assert list(actual.keys()) == list(expected.keys()), f"{path}: keys {list(actual)} != {list(expected)}"
        for k in expected:
            assert_same(actual[k], expected[k], f"{path}[{k!r}]", tol)
    elif dataclasses.is_dataclass(expected) and not isinstance(expected, type):
        for f in dataclasses.fields(expected):
            assert_same(getattr(actual, f.name), getattr(expected, f.name), f"{path}.{f.name}", tol)
    elif isinstance(expected, (set, frozenset)):
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"
    elif isinstance(expected, float) and math.isnan(expected):
        assert math.isnan(actual), f"{path}: {actual!r} is not nan"
    elif isinstance(expected, torch.nn.Module):
        assert_same(actual.state_dict(), expected.state_dict(), f"{path}.state_dict()", tol)
    elif isinstance(expected, (type, types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                               types.ModuleType)):
        assert actual is expected or actual == expected, f"{path}: {actual!r} != {expected!r}"
    elif hasattr(expected, "__dict__") and type(expected).__eq__ is object.__eq__:
        assert_same(vars(actual), vars(expected), f"{path}.__dict__", tol)
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def assert_same_aliasing(c_out, c_inputs, e_out, e_inputs):
    """Outputs relate to the inputs and to each other as in eager: the same objects
    (``out is x``), the same ``_base`` (an input, another output, or none), the same
    storage sharing, and each output laid out as eager's (strides, storage offset)."""
    e_in, c_in = list(tree_leaves(e_inputs, "in")), list(tree_leaves(c_inputs, "in"))
    e_leaves, c_leaves = list(tree_leaves(e_out)), list(tree_leaves(c_out))
    assert [p for p, _ in c_leaves] == [p for p, _ in e_leaves]
    e_all, c_all = e_in + e_leaves, c_in + c_leaves
    e_where = _positions(e_all)
    c_where = _positions(c_all)
    for (path, ct), (_, et) in zip(c_leaves, e_leaves):
        assert c_where[id(ct)] == e_where[id(et)], (
            f"{path}: eager returns {e_where[id(et)]}, compiled returns {c_where[id(ct)]}")
        e_base = None if et._base is None else e_where.get(id(et._base), "a tensor made inside the function")
        c_base = None if ct._base is None else c_where.get(id(ct._base), "a tensor made inside the function")
        assert_same_layout(ct, et, path)
        assert c_base == e_base, f"{path}._base: eager {e_base}, compiled {c_base}"
    e_storage, c_storage = _storage_groups(e_all), _storage_groups(c_all)
    for i in range(len(e_all)):
        for j in range(i + 1, len(e_all)):
            if i < len(e_in) and j < len(e_in):
                continue                # inputs sharing storage is the caller's business
            assert (e_storage[i] == e_storage[j]) == (c_storage[i] == c_storage[j]), (
                f"{e_all[i][0]} and {e_all[j][0]}: share storage in eager: {e_storage[i] == e_storage[j]}, "
                f"in compiled: {c_storage[i] == c_storage[j]}")


def assert_same_layout(actual, expected, path):
    """Same strides (dimensions of size 1 aside), storage offset and ``is_leaf`` as eager's tensor."""
    strides_agree = all(s <= 1 or a == e for s, a, e in zip(expected.shape, actual.stride(), expected.stride()))
    assert strides_agree, f"{path}: strides {actual.stride()} != eager's {expected.stride()}"
    assert actual.storage_offset() == expected.storage_offset(), (
        f"{path}: storage offset {actual.storage_offset()} != eager's {expected.storage_offset()}")
    assert _is_leaf(actual) == _is_leaf(expected), (
        f"{path}: is_leaf {_is_leaf(actual)} != eager's {_is_leaf(expected)}")


def _is_leaf(t):
    """``t.is_leaf``, or the error autograd raises for a view made under no_grad whose
    base changed since (reading its autograd state is refused)."""
    try:
        return t.is_leaf
    except RuntimeError as e:
        return f"refused: {str(e)[:40]}"


def _positions(leaves) -> dict:
    """id(tensor) -> the first path it appears at."""
    where = {}
    for path, t in leaves:
        where.setdefault(id(t), path)
    return where


def _storage_groups(leaves) -> list:
    """For each leaf, the index of the first leaf sharing its storage (empty tensors share none)."""
    first, groups = {}, []
    for i, (_, t) in enumerate(leaves):
        key = t.untyped_storage().data_ptr() if t.numel() else ("empty", i)
        groups.append(first.setdefault(key, i))
    return groups


def _cache_entries(fn):
    code = getattr(getattr(fn, "__func__", fn), "__code__", None)
    if code is None:
        return None
    entries = capture._C.get_cache(code)
    return 0 if entries is None else len(entries)


def run_both(fn, compiled, args, kwargs):
    """Run eager and compiled on copies of the inputs and compare everything observable:
    outputs, how they alias the inputs and each other, the inputs afterwards (mutations,
    metadata), grad mode and autocast after the call."""
    e_args, e_kwargs = clone_inputs(args, kwargs)
    c_args, c_kwargs = clone_inputs(args, kwargs)
    state = global_state()
    e_out = fn(*e_args, **e_kwargs)
    e_state = global_state()
    restore_global_state(state)
    c_out = compiled(*c_args, **c_kwargs)
    c_state = global_state()
    restore_global_state(state)
    assert c_state == e_state, f"global state after the call: compiled {c_state}, eager {e_state}"
    assert_same(c_out, e_out)
    assert_same_aliasing(c_out, (c_args, c_kwargs), e_out, (e_args, e_kwargs))
    assert_same((c_args, c_kwargs), (e_args, e_kwargs), "inputs after the call")
    for (path, ct), (_, et) in zip(tree_leaves((c_args, c_kwargs), "in"), tree_leaves((e_args, e_kwargs), "in")):
        assert_same_layout(ct, et, f"{path} after the call")
    return c_out, e_out


def global_state() -> dict:
    """Grad mode, autocast and default dtype: what a call may leave changed."""
    return {"grad": torch.is_grad_enabled(), "autocast_cpu": torch.is_autocast_enabled("cpu"),
            "autocast_cpu_dtype": torch.get_autocast_dtype("cpu"), "default_dtype": torch.get_default_dtype()}


def restore_global_state(state: dict) -> None:
    torch.set_grad_enabled(state["grad"])
    torch.set_autocast_enabled("cpu", state["autocast_cpu"])
    torch.set_autocast_dtype("cpu", state["autocast_cpu_dtype"])
    torch.set_default_dtype(state["default_dtype"])


def define(source: str, name: str, namespace: dict | None = None, filename: str = "<user code>"):
    """Define function ``name`` from ``source`` as plain Python.

    Test modules are rewritten by pytest (their ``assert`` statements become calls into
    pytest); user code with asserts is defined here so it keeps Python's own bytecode."""
    import textwrap
    ns = dict(namespace or {})
    ns.setdefault("torch", torch)
    exec(compile(textwrap.dedent(source), filename, "exec"), ns)
    return ns[name]


def check(fn, *args, backend=os.environ.get("CAPTURE_TEST_BACKEND", "eager"), expect_graphs=1, expect_breaks=0, expect_entries=1,
          fresh=True, fresh_args=None, **kwargs):
    """Compile ``fn`` with capture and compare it against eager; see the module docstring.

    ``expect_graphs=None`` skips the explain check; ``expect_entries=None`` skips the
    cache-entry count; ``fresh_args`` (a tuple) replaces the random fresh inputs.
    Returns the compiled function.
    """
    compiled = capture.compile(fn, backend=backend)
    run_both(fn, compiled, args, kwargs)
    if fresh:
        if fresh_args is not None:
            f_args, f_kwargs = fresh_args, kwargs
        else:
            f_args, f_kwargs = fresh_like(args), fresh_like(kwargs)
        run_both(fn, compiled, f_args, f_kwargs)
        if expect_entries is not None and _cache_entries(fn) is not None:
            n = _cache_entries(fn)
            assert n == expect_entries, f"{n} cache entries after a call with fresh inputs (expected {expect_entries})"
    if expect_graphs is not None:
        e_args, e_kwargs = clone_inputs(args, kwargs)
        ex = capture.explain(fn)(*e_args, **e_kwargs)
        reasons = "; ".join(str(r) for r in ex.all_breaks)
        assert len(ex.all_breaks) == expect_breaks, f"graph breaks: {len(ex.all_breaks)}: {reasons}"
        assert ex.graph_count == expect_graphs, f"graph_count {ex.graph_count} != {expect_graphs} ({reasons})"
    return compiled

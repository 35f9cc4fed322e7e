"""Property tests for the index arithmetic views lower to (codegen/ir/indexing.py).

Simplification must never change a value: every rewritten ``//`` and ``%`` is checked
against Python on every point of small ranges, and reshapes/permutes of strided
buffers are checked against the storage offsets torch itself reads.
"""
import itertools
import math
import random

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen.ir import indexing
from codegen.ir.indexing import const, floordiv, mod, to_source, var
from codegen.ir import Buffer, BufferValue, Load, as_buffer_view, fresh_index
from codegen.lower.views import reshape

SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)
MAX_POINTS = 4096  # every point of small ranges; a fixed sample of larger ones


def _points(variables):
    names = sorted({v.name: v.size for v in variables}.items())
    keys = [n for n, _ in names]
    ranges = [range(size) for _, size in names]
    if math.prod(len(r) for r in ranges) <= MAX_POINTS:
        for values in itertools.product(*ranges):
            yield dict(zip(keys, values))
        return
    rng = random.Random(0)
    corners = itertools.product(*[(0, len(r) - 1) for r in ranges])  # the bounds are where errors hide
    for values in itertools.chain(corners, ([rng.randrange(len(r)) for r in ranges] for _ in range(MAX_POINTS))):
        yield dict(zip(keys, values))


@st.composite
def affine(draw, prefix="v"):
    sizes = draw(st.lists(st.integers(1, 7), min_size=1, max_size=3))
    expr = const(draw(st.integers(0, 20)))
    for i, size in enumerate(sizes):
        expr = expr + var(f"{prefix}{i}", size) * draw(st.integers(0, 24))
    return expr


@st.composite
def nested(draw):
    """An affine expression run through a few random ``//``, ``%``, ``*`` and ``+``."""
    expr = draw(affine())
    for step in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["div", "mod", "mul", "add"]))
        k = draw(st.integers(1, 12))
        expr = {"div": lambda e: floordiv(e, k), "mod": lambda e: mod(e, k),
                "mul": lambda e: e * k, "add": lambda e: e + draw(affine(f"w{step}_"))}[op](expr)
    return expr


@SETTINGS
@given(affine(), st.integers(1, 30))
def test_division_and_modulo_of_affine_indices_agree_with_python(expr, d):
    q, r = floordiv(expr, d), mod(expr, d)
    for env in _points(expr.variables()):
        value = expr.evaluate(env)
        assert q.evaluate(env) == value // d, (expr, d, env, q)
        assert r.evaluate(env) == value % d, (expr, d, env, r)


@SETTINGS
@given(nested())
def test_nested_index_expressions_keep_their_value_and_bounds(expr):
    lo, hi = expr.bounds()
    for env in _points(expr.variables()):
        assert lo <= expr.evaluate(env) <= hi


@SETTINGS
@given(nested(), st.integers(1, 9))
def test_printed_source_evaluates_like_the_expression(expr, d):
    expr = mod(expr, d) + floordiv(expr, d)
    source = to_source(expr)
    for env in _points(expr.variables()):
        assert eval(source, {}, env) == expr.evaluate(env)


@SETTINGS
@given(st.lists(st.integers(1, 6), min_size=1, max_size=4))
def test_unflatten_of_flatten_is_the_identity(shape):
    index = fresh_index(shape)
    assert indexing.unflatten(indexing.flatten(index, shape), shape) == index


@st.composite
def reshapes(draw):
    """(shape, permutation of its dims, a new shape with the same number of elements)."""
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=4))
    perm = draw(st.permutations(range(len(shape))))
    numel = math.prod(shape)
    factors, rest = [], numel
    while rest > 1 and len(factors) < 3:
        divisors = [k for k in range(2, rest + 1) if rest % k == 0]
        k = draw(st.sampled_from(divisors))
        factors.append(k)
        rest //= k
    new_shape = factors + ([rest] if rest > 1 else []) or [1]
    return shape, perm, draw(st.permutations(new_shape))


@SETTINGS
@given(reshapes())
def test_reshape_of_a_permuted_buffer_reads_what_torch_reads(case):
    shape, perm, new_shape = case
    physical = [shape[p] for p in perm]                      # memory order of the buffer
    storage = torch.arange(math.prod(shape))
    tensor = storage.view(physical).permute(*[perm.index(d) for d in range(len(shape))])
    assert list(tensor.shape) == shape
    buffer = Buffer("x", tuple(physical), tuple(indexing.contiguous_strides(physical)), torch.int64, "input")
    value = BufferValue(buffer, tuple(shape), tuple(tensor.stride()), 0)
    viewed = reshape(value, new_shape)
    expected = tensor.reshape(new_shape)
    index = fresh_index(new_shape)
    load = viewed.load(index)
    assert isinstance(load, Load) and load.buffer is buffer
    names = [f"i{d}" for d in range(len(new_shape))]
    for position in itertools.product(*[range(s) for s in new_shape]):
        env = dict(zip(names, position))
        assert load.index.evaluate(env) == expected[position].item()
    # A reshape torch can do as a view must come out as plain strides (no // or %).
    try:
        strides = tensor.view(new_shape).stride()
    except RuntimeError:
        return
    view = as_buffer_view(viewed)
    assert view is not None
    assert all(s == 1 or a == b for s, a, b in zip(new_shape, view.stride, strides))


def test_contiguous_reshape_simplifies_to_a_linear_index():
    i0, i1 = var("i0", 6), var("i1", 8)
    index = indexing.unflatten(indexing.flatten([i0, i1], [6, 8]), [2, 3, 8])
    assert to_source(indexing.strided_offset(index, [24, 8, 1])) == "8*i0 + i1"
    x = var("x", 48)
    assert to_source(indexing.strided_offset(indexing.unflatten(x, [2, 3, 8]), [24, 8, 1])) == "x"


def test_transposed_flat_index_keeps_division_and_modulo():
    y = var("y", 24)
    t = indexing.unflatten(y, [8, 3])
    assert to_source(indexing.strided_offset([t[1], t[0]], [8, 1])) == "(y // 3) + 8*(y % 3)"


def test_shifted_division_is_normalised_to_non_negative_operands():
    assert to_source(floordiv(var("a", 4) - 3, 2)) == "((a + 1) // 2) - 2"


def test_division_of_possibly_negative_values_is_refused_in_source():
    expr = floordiv(const(0) - var("a", 4), 2)
    with pytest.raises(ValueError, match="negative"):
        to_source(expr)

"""The Python 3.11 opcodes real model code uses, each compiled against eager: building and
unpacking containers, subscripts and slices, functions defined inside, strings and
asserts, and other opcode shapes seen in models."""
import operator

import pytest
import torch

import capture
from helpers_compare import check, define


def t(*shape):
    return torch.randn(*shape)


# ------------------------------------------------------------------ build / unpack

def test_build_and_unpack_tuple():
    def f(x, y):
        a, b = x, y
        a, b = b, a
        (c, d), e = (a, b), a + b
        return c - d + e

    check(f, t(3), t(3))


def test_build_list_set_dict():
    def f(x):
        lst = [x, x + 1]
        s = {1, 2, 2, 3}
        d = {"x": x, "n": len(s)}
        return lst[1] * d["n"] + d["x"]

    check(f, t(3))


def test_build_const_key_map_and_dict_update():
    def f(x):
        d = {"a": x, "b": x * 2}
        d.update({"c": x * 3})
        d["d"] = x * 4
        return sum(d.values()), sorted(d.keys())

    check(f, t(3))


def test_starred_unpacking_assignment():
    def f(xs):
        first, *middle, last = xs
        return first + last, len(middle)

    check(f, [t(2), t(2), t(2), t(2)])


def test_starred_in_build():
    def f(x, rest):
        parts = [x, *rest, x]
        tup = (*rest, x)
        merged = {**{"a": 1}, "b": 2}
        return torch.cat(parts), len(tup), merged

    check(f, t(2), (t(2), t(2)))


def test_unpack_tensor_along_dim0():
    def f(x):
        a, b, c = x
        return a + b * c

    check(f, t(3, 4))


def test_unpack_shape():
    def f(x):
        b, c, h, w = x.shape
        return x.view(b, c * h * w), (b, c, h, w)

    check(f, t(2, 3, 4, 5))


def test_list_comprehension():
    def f(x):
        return [x * i for i in range(3)]

    check(f, t(2))


def test_list_comprehension_with_condition():
    def f(xs):
        return [x.relu() for i, x in enumerate(xs) if i != 1]

    check(f, [t(2), t(2), t(2)])


def test_dict_comprehension():
    def f(x):
        return {f"k{i}": x + i for i in range(3)}

    check(f, t(2))


def test_set_comprehension():
    def f(x):
        dims = {d % 3 for d in x.shape}
        return x * len(dims), dims

    check(f, t(2, 3, 4))


def test_generator_in_sum():
    def f(xs):
        return sum(x * x for x in xs)

    check(f, [t(3), t(3)])


def test_generator_in_any_all():
    def f(x, dims):
        if all(d > 0 for d in dims) and not any(d > 10 for d in dims):
            return x + 1
        return x

    check(f, t(3), (1, 2, 3))


def test_generator_in_tuple():
    def f(x):
        return tuple(x[i] for i in range(x.shape[0]))

    check(f, t(3, 2))


def test_nested_comprehension():
    def f(x):
        return [[x * i + j for j in range(2)] for i in range(2)]

    check(f, t(2))


# ------------------------------------------------------------------ subscripts and slices

def test_tensor_slices_basic():
    def f(x):
        return x[1:3], x[:, ::2], x[-1], x[:-1, 1:]

    check(f, t(4, 5))


def test_tensor_index_none_and_ellipsis():
    def f(x):
        return x[None], x[..., None], x[:, None, :], x[..., 0], x[0, ...]

    check(f, t(3, 4))


def test_tensor_negative_indices():
    def f(x):
        return x[-1, -2], x[-3:-1]

    check(f, t(4, 5))


def test_tensor_index_with_index_tensor():
    def f(x, idx):
        return x[idx], x[:, idx]

    check(f, t(5, 5), torch.tensor([0, 2, 4]))


def test_tensor_index_with_bool_mask():
    def f(x, mask):
        return torch.where(mask, x, torch.zeros_like(x)), x.masked_fill(mask, 0.0)

    check(f, t(6), torch.rand(6) > 0.5)


def test_tensor_setitem_slice_on_local():
    def f(x):
        y = x.clone()
        y[0] = 5.0
        y[1:, :2] = 0.0
        return y

    check(f, t(3, 4))


def test_tensor_setitem_with_tensor_value():
    def f(x, v):
        y = torch.zeros(3, 4)
        y[:, 1] = v
        return y

    check(f, t(3, 4), t(3))


def test_list_tuple_dict_subscripts_and_slices():
    def f(xs):
        pairs = xs[1:]
        rev = xs[::-1]
        d = {"first": xs[0]}
        return pairs[0] + rev[0] + d["first"], len(pairs)

    check(f, [t(2), t(2), t(2)])


def test_slice_objects_and_store_subscr_on_list():
    def f(x):
        s = slice(1, None)
        lst = [x, x, x]
        lst[0] = x * 10
        lst[1:] = [x + 1]
        return x[s], lst

    check(f, t(4))


def test_subscript_shape_and_size():
    def f(x):
        return x.new_ones(x.shape[1:]) * x.size()[0] + x.size(-1)

    check(f, t(3, 4))


# ------------------------------------------------------------------ functions defined inside

def test_nested_function_with_defaults():
    def f(x):
        def scale(v, s=2.0, *, shift=1.0):
            return v * s + shift

        return scale(x) + scale(x, 3.0, shift=0.0)

    check(f, t(3))


def test_nested_closure_over_tensor_argument():
    def f(x, y):
        def inner(z):
            return z + y

        def outer(z):
            return inner(z) * x

        return outer(x)

    check(f, t(3), t(3))


def test_lambda_in_map_and_filter():
    def f(xs):
        ys = list(map(lambda v: v * 2, xs))
        keep = list(filter(lambda i: i != 1, range(len(ys))))
        return [ys[i] for i in keep]

    check(f, [t(2), t(2), t(2)])


def test_sorted_with_lambda_key():
    def f(x):
        sizes = {"a": 3, "b": 1, "c": 2}
        order = sorted(sizes, key=lambda k: sizes[k])
        return [x * sizes[k] for k in order]

    check(f, t(2))


def test_closure_factory_inside():
    def f(x):
        def make(k):
            return lambda v: v * k

        fns = [make(k) for k in range(1, 4)]
        return [g(x) for g in fns]

    check(f, t(2))


def test_recursive_free_variable_chain():
    def f(x):
        a = 1

        def g():
            b = 2

            def h():
                return x * a + b

            return h()

        return g()

    check(f, t(2))


# ------------------------------------------------------------------ strings, asserts

def test_fstring_dict_keys():
    def f(x):
        out = {}
        for i in range(3):
            out[f"layer_{i}.weight"] = x * i
        out[f"{'bias'}:{x.shape[0]:03d}"] = x
        return out

    check(f, t(2))


def test_string_methods_for_keys():
    def f(x, name):
        key = name.upper() + "_" + "x".join(["a", "b"])
        return {key: x, "len": len(key), "prefix": key.startswith("FOO")}

    check(f, t(2), "foo", expect_graphs=0)


def test_assert_on_constants_passes():
    f = define("""
        def f(x):
            assert x.dim() == 2, "need a matrix"
            assert x.shape[1] == 4
            assert isinstance(x, torch.Tensor), f"got {type(x)}"
            return x.sum(0)
    """, "f", filename=__file__)
    check(f, t(3, 4))


def test_with_no_grad_block():
    def f(x):
        with torch.no_grad():
            y = x * 2
        return y + 1

    check(f, t(3))


# ------------------------------------------------------------------ more opcode shapes seen in models

def test_augmented_assign_on_subscript_of_local():
    def f(x, y):
        z = x.clone()
        z[:, 0] += y
        z[1] *= 2
        return z

    check(f, t(3, 4), t(3))


def test_fibonacci_style_tuple_swap_in_loop():
    def f(x):
        a, b = x, x + 1
        for _ in range(4):
            a, b = b, a + b
        return a, b

    check(f, t(2))


def test_while_loop_over_list_stack():
    def f(xs):
        stack = list(xs)
        out = 0
        while stack:
            out = out * 2 + stack.pop()
        return out

    check(f, [t(2), t(2), t(2)])


def test_for_over_tensor_rows():
    def f(x):
        out = []
        for row in x:
            out.append(row.sum())
        return torch.stack(out)

    check(f, t(3, 4))


def test_for_over_sorted_dict_items():
    def f(d):
        out = []
        for k, v in sorted(d.items()):
            out.append(v * len(k))
        return out

    check(f, {"bb": t(2), "a": t(2), "ccc": t(2)})


def test_dict_methods_get_setdefault_pop_del():
    def f(x, d):
        local = dict(d)
        a = local.get("a", x)
        b = local.get("zz", 2.0)
        local.setdefault("c", x * 3)
        popped = local.pop("b")
        del local["a"]
        return a * b + popped, local, "b" in local

    check(f, t(2), {"a": t(2), "b": t(2)})


def test_list_concat_repeat_del():
    def f(x):
        a = [x] + [x * 2]
        b = [1, 2] * 2
        c = a * 2
        del c[0]
        return len(c), b, torch.cat(c)

    check(f, t(2))


def test_string_formatting_variants():
    def f(x, name):
        keys = ["%s_%d" % (name, 1), "{}-{}".format(name, x.shape[0]), f"{name!r}", f"{3.14159:.2f}",
                "_".join(str(d) for d in x.shape)]
        return {k: x for k in keys}

    check(f, t(2, 3), "n", expect_graphs=0)


def test_fstring_of_shape_dtype_device():
    def f(x):
        return f"{x.shape}|{x.dtype}|{x.device}|{tuple(x.shape)}|{x.size(0)}", x + 1

    check(f, t(2, 3))


def test_str_and_repr_of_shape():
    def f(x):
        return str(x.shape), repr(x.shape[1:]), str(x.dtype), x * 1

    check(f, t(2, 3))


def test_call_passed_in_function_and_lambda():
    def f(x, act, post=lambda v: v + 1):
        return post(act(x))

    check(f, t(3), torch.tanh)


def test_call_function_ex_on_torch_function_kwargs():
    def f(x):
        kw = {"dim": 0, "keepdim": True}
        dims = (1, 0)
        return torch.sum(x, **kw), x.permute(*dims), torch.cat([*x.unbind(0)], **{"dim": 0})

    check(f, t(2, 3))


def test_unbound_tensor_method_calls():
    def f(x, y):
        return torch.Tensor.add(x, y), torch.Tensor.size(x), torch.Tensor.relu(x)

    check(f, t(3), t(3))


def test_conditional_expression_on_shape_and_none():
    def f(x, h=None):
        h = torch.zeros(x.shape[-1]) if h is None else h
        n = x.shape[0] if x.dim() > 1 else 1
        return x + h, n

    check(f, t(2, 3))


def test_chained_comparison_on_tensor_raises_like_eager():
    def f(x):
        if 0 < x < 1:  # ambiguous truth value of a tensor
            return x
        return -x

    with pytest.raises(RuntimeError) as eager:
        f(t(3))
    with pytest.raises(RuntimeError) as compiled:
        capture.compile(f, backend="eager")(t(3))
    assert str(compiled.value) == str(eager.value)


def test_try_except_inside_function():
    def f(x, d):
        try:
            v = d["k"]
        except KeyError:
            v = 2.0
        return x * v

    check(f, t(2), {}, expect_graphs=None)


def test_user_generator_function_consumed_by_list():
    def f(x):
        def gen(n):
            for i in range(n):
                yield x * i

        return list(gen(3)), sum(gen(2))

    check(f, t(2))


def test_recursive_helper():
    def f(x):
        def power(v, n):
            return v if n == 1 else v * power(v, n - 1)

        return power(x, 4)

    check(f, t(3))


def test_functools_wraps_decorated_helper():
    import functools

    def logged(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            return fn(*args, **kwargs)
        return wrapper

    @logged
    def helper(x, scale=1.0):
        return x * scale

    def f(x):
        return helper(x, scale=3.0) + helper(x)

    check(f, t(3))


def test_functools_reduce_with_operator():
    import functools

    def f(xs):
        return functools.reduce(operator.add, xs), functools.reduce(lambda a, b: a * b, [1, 2, 3, 4])

    check(f, [t(2), t(2), t(2)])

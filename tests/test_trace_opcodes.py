"""The Python 3.11 opcodes real model code uses, each compiled against eager: loads and
stores, calls, operators, comparisons, control flow and loops (building and unpacking
values, subscripts, nested functions and strings: test_trace_opcodes_values.py)."""
import operator

import pytest
import torch

import capture
from helpers_compare import check

SCALE = 3.0
OFFSETS = (1, 2, 3)
CONFIG = {"alpha": 0.5, "beta": 2}


class Holder:
    def __init__(self):
        self.w = torch.randn(4)
        self.k = 2


HOLDER = Holder()


def t(*shape):
    return torch.randn(*shape)


# ------------------------------------------------------------------ loads / stores

def test_load_store_fast():
    def f(x):
        a = x + 1
        b = a * 2
        a = b - x
        return a

    check(f, t(4))


def test_load_global_constant():
    def f(x):
        return x * SCALE

    check(f, t(4))


def test_load_global_tuple_and_dict():
    def f(x):
        return x * OFFSETS[1] + CONFIG["alpha"] * CONFIG["beta"]

    check(f, t(4))


def test_load_global_object_attribute():
    def f(x):
        return x * HOLDER.w + HOLDER.k

    check(f, t(4))


def test_store_global_then_read():
    global _STORED

    def f(x):
        global _STORED
        _STORED = _STORED + 5
        return x + _STORED

    _STORED = 0
    x = t(3)
    out = capture.compile(f, backend="eager")(x)
    torch.testing.assert_close(out, x + 5)
    assert _STORED == 5
    out = capture.compile(f, backend="eager")(x)  # the new global value is read
    torch.testing.assert_close(out, x + 10)
    assert _STORED == 10


def test_load_deref_closure_tensor():
    w = torch.randn(4)

    def f(x):
        return x * w

    check(f, t(4))


def test_load_deref_closure_constant():
    n = 3

    def f(x):
        return x ** n

    check(f, t(4))


def test_store_deref_in_nested_function():
    def f(x):
        acc = x

        def bump():
            nonlocal acc
            acc = acc * 2

        bump()
        bump()
        return acc

    check(f, t(4))


def test_cell_variable_read_by_lambda():
    def f(x):
        y = x + 1
        g = lambda z: z * y
        return g(x)

    check(f, t(4))


def test_load_attr_on_tensor_and_store_attr_on_local_object():
    class Box:
        pass

    def f(x):
        b = Box()
        b.v = x * 2
        b.n = x.shape[0]
        return b.v + b.n

    check(f, t(4))


def test_delete_fast():
    def f(x):
        y = x + 1
        z = y * 2
        del y
        return z

    check(f, t(3))


# ------------------------------------------------------------------ calls

def _add(a, b):
    return a + b


def _defaults(a, b=2, c=3.0):
    return a * b + c


def _kwonly(a, *, scale, shift=1.0):
    return a * scale + shift


def _varargs(*args, **kwargs):
    out = args[0]
    for a in args[1:]:
        out = out + a
    for k in sorted(kwargs):
        out = out * kwargs[k]
    return out


def test_call_user_function_positional():
    def f(x, y):
        return _add(x, y)

    check(f, t(3), t(3))


def test_call_keyword_args():
    def f(x, y):
        return _add(b=y, a=x)

    check(f, t(3), t(3))


def test_call_defaults_used():
    def f(x):
        return _defaults(x) + _defaults(x, 4) + _defaults(x, c=1.0)

    check(f, t(3))


def test_call_kwonly_args():
    def f(x):
        return _kwonly(x, scale=2.0) - _kwonly(x, shift=0.5, scale=3)

    check(f, t(3))


def test_call_function_ex_star_args():
    def f(x, y):
        args = (x, y, x)
        return _varargs(*args)

    check(f, t(3), t(3))


def test_call_function_ex_star_kwargs():
    def f(x):
        kw = {"b": 2.0, "a": 3.0}
        return _varargs(x, x, **kw)

    check(f, t(3))


def test_call_function_ex_mixed_star_and_kw():
    def f(x, y):
        rest = [y]
        return _kwonly(*[x], **{"scale": 2}) + _varargs(x, *rest, k=4)

    check(f, t(3), t(3))


def test_compiled_function_with_varargs_and_kwargs():
    def f(x, *args, scale=1.0, **kwargs):
        out = x * scale
        for a in args:
            out = out + a
        return out + kwargs["bias"]

    check(f, t(3), t(3), t(3), scale=2.0, bias=t(3))


def test_compiled_function_with_default_args():
    def f(x, y=None, alpha=2):
        if y is None:
            y = x
        return x + alpha * y

    check(f, t(3))


def test_method_call_on_tensor_with_kwargs():
    def f(x):
        return x.sum(dim=1, keepdim=True) + x.mean(1, keepdim=True)

    check(f, t(3, 4))


def test_method_call_on_list():
    def f(x):
        parts = []
        parts.append(x)
        parts.append(x * 2)
        parts.extend([x + 1, x - 1])
        last = parts.pop()
        parts.insert(0, last)
        return torch.stack(parts)

    check(f, t(3))


# ------------------------------------------------------------------ BINARY_OP

TENSOR_BINOPS = [operator.add, operator.sub, operator.mul, operator.truediv, operator.pow]


@pytest.mark.parametrize("op", TENSOR_BINOPS, ids=lambda o: o.__name__)
def test_binary_op_tensor_tensor(op):
    def f(x, y):
        return op(x, y.abs() + 0.5)

    check(f, t(3, 4), t(3, 4))


def test_binary_op_floordiv_mod_on_tensors():
    def f(x, y):
        return x // y, x % y

    check(f, torch.rand(5) * 10 + 1, torch.rand(5) * 3 + 1)


def test_binary_op_matmul():
    def f(a, b):
        return a @ b

    check(f, t(3, 4), t(4, 5))


def test_binary_op_bitwise_on_bool_tensors():
    def f(a, b):
        return a & b, a | b, a ^ b, ~a

    check(f, torch.rand(6) > 0.5, torch.rand(6) > 0.5)


def test_binary_op_shift_on_int_tensors():
    def f(a):
        return a << 2, a >> 1

    check(f, torch.randint(0, 100, (5,)))


def test_binary_op_tensor_with_python_scalars():
    def f(x):
        return 2 * x + x / 4 - 1.5 + 3 ** x.clamp(-1, 1) - (1 - x)

    check(f, t(4))


def test_unary_ops_tensor():
    def f(x):
        return -x, +x, abs(x)

    check(f, t(4))


def test_binary_op_python_numbers():
    def f(x):
        a = 7
        b = 2
        c = a // b + a % b + a ** b - a / b + (a << 1) + (a >> 1) + (a & b) + (a | b) + (a ^ b)
        return x * c

    check(f, t(3))


def test_inplace_binary_op_python_numbers():
    def f(x):
        n = 1
        n += 2
        n *= 3
        n -= 1
        n //= 2
        n **= 2
        n %= 7
        f = 1.0
        f /= 4
        return x + n + f

    check(f, t(3))


def test_inplace_binary_op_on_local_tensor():
    def f(x, y):
        z = x * 1
        z += y
        z *= 2
        z -= x
        z /= 3
        return z

    check(f, t(3), t(3))


def test_shape_arithmetic():
    def f(x):
        b, n = x.shape
        return x.reshape(b * n // 2, 2) * (n - 1)

    check(f, t(4, 6))


# ------------------------------------------------------------------ comparisons

def test_compare_python_numbers_select_branch():
    def f(x):
        n = x.shape[0]
        if n > 3 and n >= 4 and n < 10 and n <= 4 and n == 4 and n != 5:
            return x + 1
        return x - 1

    check(f, t(4))


def test_compare_tensors_produces_bool_tensors():
    def f(x, y):
        return x < y, x <= y, x > y, x >= y, x == y, x != y

    check(f, t(5), t(5))


def test_is_and_is_not_none():
    def f(x, mask=None, bias=None):
        if mask is not None:
            x = x * mask
        if bias is None:
            x = x + 1
        return x

    check(f, t(4), mask=t(4))


def test_is_on_objects():
    def f(x, y):
        same = x is y
        return x + (1 if same else 2)

    check(f, t(3), t(3))


def test_is_with_the_same_tensor_passed_twice():
    def f(x, y):
        if x is y:
            return x * 2
        return x + y

    c = capture.compile(f, backend="eager")
    a, b = t(3), t(3)
    torch.testing.assert_close(c(a, a), a * 2)
    torch.testing.assert_close(c(a, b), a + b)
    torch.testing.assert_close(c(b, b), b * 2)


def test_in_and_not_in_containers():
    def f(x):
        keys = {"a": 1, "b": 2}
        names = ["relu", "gelu"]
        out = x
        if "a" in keys:
            out = out + 1
        if "c" not in keys:
            out = out * 2
        if "gelu" in names:
            out = out - 3
        if 5 not in (1, 2, 3):
            out = out / 2
        return out

    check(f, t(3))


def test_compare_chain():
    def f(x):
        n = x.dim()
        return x * (1 if 0 < n <= 2 else 2)

    check(f, t(3, 3))


# ------------------------------------------------------------------ control flow

def test_if_else_on_constant_arg():
    def f(x, flag):
        if flag:
            return x.relu()
        else:
            return x.sigmoid()

    check(f, t(4), True)
    check(f, t(4), False)


def test_constant_arg_change_recompiles():
    def f(x, flag):
        return x.relu() if flag else x.sigmoid()

    c = capture.compile(f, backend="eager")
    x = t(4)
    torch.testing.assert_close(c(x, True), x.relu())
    torch.testing.assert_close(c(x, False), x.sigmoid())
    torch.testing.assert_close(c(x, True), x.relu())
    assert len(capture._C.get_cache(f.__code__)) == 2


def test_short_circuit_and_or():
    def f(x, a, b):
        scale = a and b
        shift = a or b
        return x * scale + shift

    check(f, t(3), 0, 5)


def test_short_circuit_or_with_none_default():
    def f(x, eps=None):
        eps = eps or 1e-5
        return x + eps

    check(f, t(3))


def test_ternary_expression():
    def f(x, training):
        y = x * 0.5 if training else x * 2
        return y

    check(f, t(3), False)


def test_not_operator_on_constants():
    def f(x, flag):
        if not flag:
            return x + 1
        return x

    check(f, t(3), False)


def test_if_on_tensor_shape():
    def f(x):
        if x.shape[-1] % 2 == 0:
            return x[..., ::2]
        return x

    check(f, t(3, 6))


def test_if_on_isinstance():
    def f(x, scale):
        if isinstance(scale, (int, float)):
            return x * scale
        return x * scale.sum()

    check(f, t(3), 2.5)


def test_nested_if_elif_else():
    def f(x, mode):
        if mode == "a":
            y = x + 1
        elif mode == "b":
            y = x + 2
        elif mode == "c":
            y = x + 3
        else:
            y = x
        return y

    check(f, t(3), "c")


# ------------------------------------------------------------------ loops

def test_for_range():
    def f(x):
        for i in range(4):
            x = x + i
        return x

    check(f, t(3))


def test_for_range_start_stop_step():
    def f(x):
        acc = x
        for i in range(10, 1, -3):
            acc = acc * 0.5 + i
        return acc

    check(f, t(3))


def test_for_over_list_of_tensors():
    def f(xs):
        out = 0
        for x in xs:
            out = out + x
        return out

    check(f, [t(3), t(3), t(3)])


def test_for_over_tuple_of_constants():
    def f(x):
        for s in (0.5, 2.0, 3.0):
            x = x * s
        return x

    check(f, t(3))


def test_for_over_dict_keys_values_items():
    def f(d):
        out = 0
        for k in d:
            out = out + d[k]
        for v in d.values():
            out = out * v
        for k, v in d.items():
            out = out - v * len(k)
        return out

    check(f, {"a": t(3), "bb": t(3)})


def test_for_enumerate():
    def f(xs):
        out = xs[0] * 0
        for i, x in enumerate(xs):
            out = out + i * x
        for i, x in enumerate(xs, start=10):
            out = out + i
        return out

    check(f, [t(2), t(2), t(2)])


def test_for_zip():
    def f(xs, ws):
        return [x * w for x, w in zip(xs, ws)]

    check(f, (t(2), t(2)), (t(2), t(2)))


def test_for_reversed_and_sorted():
    def f(x):
        out = []
        for i in reversed(range(3)):
            out.append(x + i)
        for k in sorted([3, 1, 2]):
            out.append(x * k)
        return out

    check(f, t(2))


def test_nested_loops():
    def f(x):
        for i in range(2):
            for j in range(3):
                x = x + i * j
        return x

    check(f, t(2))


def test_while_loop_python_counter():
    def f(x):
        i = 0
        while i < 5:
            x = x * 1.1
            i += 1
        return x, i

    check(f, t(3))


def test_loop_break_and_continue():
    def f(x):
        for i in range(10):
            if i % 2 == 0:
                continue
            if i > 6:
                break
            x = x + i
        return x

    check(f, t(3))


def test_while_true_with_break():
    def f(x):
        n = 0
        while True:
            n += 1
            x = x - 1
            if n == 3:
                break
        return x

    check(f, t(3))


def test_for_else():
    def f(x):
        for i in range(3):
            if i == 10:
                break
        else:
            x = x + 100
        return x

    check(f, t(3))

"""Results rebuilt exactly, and in-place effects on inputs visible to the caller."""
import collections

import pytest
import torch

import capture
from helpers_compare import check

Out = collections.namedtuple("Out", ["logits", "aux"])
GLOBAL_BUF = torch.zeros(3)


def t(*shape):
    return torch.randn(*shape)


# ------------------------------------------------------------------ results

def test_return_single_tensor():
    def f(x):
        return x.sin() + 1

    check(f, t(3))


def test_return_input_tensor_object():
    def f(x, y):
        z = x + y  # noqa: F841 (work done, result dropped)
        return x

    c = check(f, t(3), t(3))
    x, y = t(3), t(3)
    assert c(x, y) is x


def test_return_input_tensor_twice_and_in_containers():
    def f(x):
        return x, [x, x * 2], {"same": x}

    c = check(f, t(3))
    x = t(3)
    out = c(x)
    assert out[0] is x and out[1][0] is x and out[2]["same"] is x


def test_return_same_computed_tensor_twice():
    def f(x):
        y = x * 2
        return y, y, (y,)

    c = check(f, t(3))
    out = c(t(3))
    assert out[0] is out[1] and out[2][0] is out[0]


def test_return_view_of_input_is_not_input():
    def f(x):
        return x.view(-1), x[0], x.t()

    c = check(f, t(2, 3))
    x = t(2, 3)
    out = c(x)
    assert out[0] is not x
    out[0][0] = 100.0  # a real view: writes show through
    assert x[0, 0] == 100.0


def test_return_python_constants():
    def f(x):
        return 3, 2.5, "name", True, None, (1, 2), b"raw", x + 1

    check(f, t(2))


def test_return_none():
    def f(x):
        y = x * 2  # noqa: F841

    check(f, t(2), expect_graphs=None)
    assert capture.compile(f, backend="eager")(t(2)) is None


def test_return_nested_containers():
    def f(x, y):
        return {"a": [x + y, (x - y, {"deep": x * y})], "b": (), "c": [], "d": {}}

    check(f, t(2), t(2))


def test_return_dict_key_order_and_int_keys():
    def f(x):
        d = {}
        d["z"] = x
        d[1] = x + 1
        d["a"] = x + 2
        return d

    check(f, t(2))


def test_return_namedtuple_from_input():
    def f(o):
        return o

    c = check(f, Out(t(2), t(2)), expect_graphs=0)
    inp = Out(t(2), t(2))
    assert c(inp) is inp


def test_return_namedtuple_built_from_input_fields():
    def f(o):
        return Out(o.aux * 2, o.logits)

    check(f, Out(t(2), t(2)))


def test_return_torch_size_and_dtype():
    def f(x):
        return x.shape, x.size(), x.dtype, x.device, x * 1

    out = check(f, t(2, 3))(t(2, 3))
    assert type(out[0]) is torch.Size


def test_return_input_list_object():
    def f(xs):
        return xs

    c = check(f, [t(2), t(2)], expect_graphs=0)
    xs = [t(2)]
    assert c(xs) is xs


def test_return_new_list_not_input_list():
    def f(xs):
        return list(xs), xs[:]

    c = check(f, [t(2), t(2)], expect_graphs=0)
    xs = [t(2)]
    out = c(xs)
    assert out[0] is not xs and out[1] is not xs and out[0][0] is xs[0]


def test_return_scalar_tensor_and_int_dtype():
    def f(x):
        return x.sum(), (x > 0).sum(), x.argmax()

    check(f, t(5))


def test_return_requires_grad_output_and_backward():
    w = torch.randn(3, requires_grad=True)

    def f(x):
        return (x * w).sum()

    c = capture.compile(f, backend="eager")
    x = t(3)
    out = c(x)
    assert out.requires_grad
    out.backward()
    g_compiled = w.grad.clone()
    w.grad = None
    f(x).backward()
    torch.testing.assert_close(g_compiled, w.grad)


def test_return_from_no_grad_input_requires_grad():
    def f(x, y):
        return x * y + 1

    x = t(3).requires_grad_()
    check(f, x, t(3))


# ------------------------------------------------------------------ in-place on inputs

def test_inplace_add_on_input():
    def f(x):
        x.add_(1)
        return x * 2

    check(f, t(3))


def test_inplace_method_returns_input_object():
    def f(x):
        return x.mul_(3)

    c = check(f, t(3))
    x = t(3)
    assert c(x) is x


def test_setitem_on_input():
    def f(x):
        x[0] = 5
        x[:, -1] = x[:, 0]
        return x.sum()

    check(f, t(3, 4))


def test_augmented_assign_on_input_tensor():
    def f(x, y):
        x += y
        x *= 2
        return x

    c = check(f, t(3), t(3))
    x, y = t(3), t(3)
    assert c(x, y) is x


def test_inplace_through_view_of_input():
    def f(x):
        row = x[1]
        row.mul_(0)
        x.T[0].fill_(7.0)
        return x

    check(f, t(3, 3))


def test_inplace_copy_zero_on_inputs():
    def f(dst, src):
        dst.copy_(src * 2)
        src.zero_()
        return dst + 1

    check(f, t(4), t(4))


def test_inplace_on_tensor_inside_dict_and_list_inputs():
    def f(state, xs):
        state["h"].mul_(0.5).add_(xs[0])
        xs[1].sub_(1)
        return state["h"]

    check(f, {"h": t(3)}, [t(3), t(3)])


def test_inplace_on_same_tensor_passed_twice():
    def f(x, y):
        x.add_(1)
        return y * 2

    a = t(3)
    check(f, a, a)
    c = capture.compile(f, backend="eager")
    a = torch.zeros(3)
    out = c(a, a)
    torch.testing.assert_close(out, torch.full((3,), 2.0))


def test_inplace_on_global_tensor():
    def f(x):
        GLOBAL_BUF.add_(x)
        return GLOBAL_BUF * 1

    before = GLOBAL_BUF.clone()
    x = t(3)
    out = capture.compile(f, backend="eager")(x)
    torch.testing.assert_close(GLOBAL_BUF, before + x)
    torch.testing.assert_close(out, before + x)
    out = capture.compile(f, backend="eager")(x)
    torch.testing.assert_close(GLOBAL_BUF, before + 2 * x)


def test_inplace_on_module_buffer():
    class Counter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("seen", torch.zeros(3))

        def forward(self, x):
            self.seen += x
            return self.seen * 2

    m_eager, m_comp = Counter(), Counter()
    c = capture.compile(m_comp, backend="eager")
    for _ in range(3):
        x = t(3)
        torch.testing.assert_close(c(x), m_eager(x))
    torch.testing.assert_close(m_comp.seen, m_eager.seen)


def test_append_to_input_list_side_effect():
    def f(x, log):
        log.append(x * 2)
        return x + 1

    check(f, t(2), [], expect_graphs=None)


def test_setitem_on_input_dict_side_effect():
    def f(x, cache):
        cache["y"] = x * 2
        return x + 1

    check(f, t(2), {"old": 1}, expect_graphs=None)


# ------------------------------------------------------------------ no tensors in or out

def test_function_returns_no_tensors():
    def f(x):
        b, n = x.shape
        return b * n, x.dtype == torch.float32, [b, n]

    check(f, t(2, 3), expect_graphs=0)


def test_function_with_no_tensor_inputs():
    def f(n, scale):
        return torch.arange(n, dtype=torch.float32) * scale + torch.ones(n)

    check(f, 4, 0.5)


def test_function_with_no_arguments():
    def f():
        return torch.full((2, 2), 3.0).cumsum(0)

    check(f)


def test_function_of_pure_python():
    def f(a, b):
        return [a * i + b for i in range(3)], {"sum": a + b}

    check(f, 2, 3, expect_graphs=0)


def test_function_with_tensor_inputs_unused():
    def f(x, n):
        return n * 2

    check(f, t(3), 4, expect_graphs=0)


# ------------------------------------------------------------------ more results / in-place

def test_return_set_frozenset_range_slice_ellipsis():
    def f(x):
        return {1, 2}, frozenset({"a"}), range(x.shape[0]), slice(1, None, 2), ..., x * 1

    check(f, t(3))


def test_return_ordered_dict():
    def f(x):
        d = collections.OrderedDict()
        d["b"] = x
        d["a"] = x + 1
        return d

    check(f, t(2))


def test_return_input_dict_object():
    def f(d):
        return d

    c = check(f, {"a": t(2)}, expect_graphs=0)
    d = {"a": t(2)}
    assert c(d) is d


def test_return_input_module_and_dtype_objects():
    lin = torch.nn.Linear(2, 2)

    def f(x, m):
        return m, m(x), torch.float16

    c = capture.compile(f, backend="eager")
    x = t(1, 2)
    out = c(x, lin)
    assert out[0] is lin and out[2] is torch.float16
    torch.testing.assert_close(out[1], lin(x))


def test_return_closure_created_inside():
    def f(x):
        y = x * 2
        return lambda z: z + y

    x, z = t(3), t(3)
    g_eager = f(x)
    g_comp = capture.compile(f, backend="eager")(x)
    torch.testing.assert_close(g_comp(z), g_eager(z))


def test_return_float_from_shapes():
    def f(x):
        return x.shape[0] / 4, x.shape[1] // 2, -x.shape[0] // 3, x * 1

    check(f, t(5, 3))


def test_inplace_augmented_setitem_on_input():
    def f(x, y):
        x[:, 0] += y
        x[-1] -= 1
        return x

    c = check(f, t(3, 4), t(3))
    x, y = t(3, 4), t(3)
    assert c(x, y) is x


def test_setitem_with_index_tensor_on_input():
    def f(x, idx):
        x[idx] = 0.0
        return x * 2

    check(f, t(5), torch.tensor([0, 3]))


def test_inplace_masked_fill_and_functional_inplace():
    import torch.nn.functional as F

    def f(x, mask):
        x.masked_fill_(mask, 0.0)
        F.relu(x, inplace=True)
        torch.sigmoid_(x)
        return x

    check(f, t(6), torch.rand(6) > 0.5)


def test_out_kwarg_writes_into_input():
    def f(x, y, out):
        torch.add(x, y, out=out)
        return out * 2

    check(f, t(3), t(3), t(3))


def test_inplace_view_op_on_input_changes_caller_shape():
    def f(x):
        x.unsqueeze_(0)
        return x.shape, x * 2

    c = check(f, t(3))
    x = t(3)
    c(x)
    assert x.shape == (1, 3)


def test_inplace_transpose_on_input():
    def f(x):
        x.t_()
        return x + torch.arange(3.0), x.shape

    check(f, t(3, 2))


def test_mutation_through_view_of_input_then_read_base():
    def f(x):
        v = x.view(-1)
        v.add_(1)
        return x.sum(0)

    check(f, t(2, 3))


def test_inplace_on_tensor_in_dataclass_input():
    import dataclasses

    @dataclasses.dataclass
    class State:
        h: torch.Tensor
        step: int

    def f(s, x):
        s.h.add_(x)
        return s.h * s.step

    check(f, State(t(2), 3), t(2))


def test_inplace_on_leaf_requiring_grad_raises_like_eager():
    def f(x):
        x.add_(1)
        return x

    with pytest.raises(RuntimeError) as eager:
        f(t(2).requires_grad_())
    with pytest.raises(RuntimeError) as compiled:
        capture.compile(f, backend="eager")(t(2).requires_grad_())
    assert str(compiled.value) == str(eager.value)

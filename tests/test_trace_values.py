"""Tracked values: tensors, constants, containers, torch/builtin/math/operator functions,
dataclasses, namedtuples, user functions, methods and objects."""
import collections
import dataclasses
import math
import operator
import typing

import pytest
import torch
import torch.nn.functional as F

from helpers_compare import check


def t(*shape):
    return torch.randn(*shape)


# ------------------------------------------------------------------ tensor attributes

def test_tensor_shape_dtype_device_ndim():
    def f(x):
        return x.shape, x.dtype, x.device, x.ndim, x.shape[0] * x.ndim

    check(f, t(2, 3), expect_graphs=0)


def test_tensor_T_and_mT():
    def f(x):
        return x.T + 1, x.mT * 2

    check(f, t(3, 4))


def test_tensor_size_dim_numel():
    def f(x):
        return x.size(), x.size(1), x.size(-1), x.dim(), x.numel(), x.view(x.numel()) + 0

    check(f, t(2, 3))


def test_tensor_requires_grad_and_is_floating_point():
    def f(x):
        flags = (x.requires_grad, x.is_floating_point(), x.is_contiguous())
        return x + 1, flags

    check(f, t(3))


def test_tensor_view_reshape_flatten():
    def f(x):
        return x.view(6, 4), x.reshape(-1), x.view(2, -1, 4), x.flatten(1), x.unflatten(1, (3, 1))

    check(f, t(2, 3, 4))


def test_tensor_permute_transpose_contiguous():
    def f(x):
        y = x.permute(2, 0, 1).contiguous()
        z = x.transpose(0, 1).contiguous()
        return y, z, y.is_contiguous(), x.transpose(-1, -2).is_contiguous()

    check(f, t(2, 3, 4))


def test_tensor_masked_fill_and_where():
    def f(x, mask):
        return x.masked_fill(mask, float("-inf")).softmax(-1)

    check(f, t(3, 4), torch.tensor([[True, False, False, False]] * 3))


def test_tensor_type_as_to_float():
    def f(x, y):
        return x.type_as(y), x.to(torch.float64), x.float(), x.long(), x.to(y.dtype), x.half().float()

    check(f, torch.randint(0, 9, (3,)), t(3).double())


def test_tensor_new_zeros_new_ones_new_full():
    def f(x):
        return x.new_zeros(2, 3), x.new_ones((4,)), x.new_full((2,), 7.0), x.new_tensor([1.0, 2.0])

    check(f, t(3).double())


def test_tensor_reductions_with_dims():
    def f(x):
        return x.sum(), x.mean(dim=-1), x.amax(1, keepdim=True), x.std(0), x.logsumexp(dim=1), x.argmax(-1)

    check(f, t(3, 5))


def test_tensor_max_returns_namedtuple():
    def f(x):
        vals, idx = x.max(dim=0)
        res = x.min(1)
        return vals, idx, res.values, res.indices, x.topk(2, dim=-1)

    check(f, t(4, 5))


def test_tensor_chunk_split_unbind():
    def f(x):
        a, b = x.chunk(2, dim=-1)
        parts = x.split([1, 3], dim=1)
        rows = x.unbind(0)
        return a * b, parts, len(rows)

    check(f, t(3, 4))


def test_tensor_expand_repeat_squeeze():
    def f(x):
        y = x.unsqueeze(0).expand(3, -1, -1)
        return y + 0, x.repeat(2, 1), y.squeeze(0).shape, x[None].squeeze()

    check(f, t(2, 3))


def test_tensor_methods_on_int_tensors():
    def f(idx):
        return idx.max(), (idx + 1).clamp(max=5), idx.float().mean(), idx.bool().any()

    check(f, torch.randint(0, 5, (6,)))


def test_tensor_inplace_methods_on_local():
    def f(x):
        y = torch.zeros_like(x)
        y.add_(x).mul_(2).clamp_(-1, 1)
        y.fill_diagonal_(0.5)
        return y

    check(f, t(3, 3))


def test_tensor_dtype_comparisons():
    def f(x):
        if x.dtype == torch.float32 and x.dtype is not torch.float64 and x.dtype.is_floating_point:
            return x * 2
        return x

    check(f, t(3))


def test_tensor_device_type_and_str():
    def f(x):
        if x.device.type == "cpu" and str(x.device) == "cpu":
            return x + 1
        return x

    check(f, t(3))


def test_tensor_size_is_torch_size_and_comparable():
    def f(x, y):
        if x.shape == y.shape and x.size() == (2, 3):
            return x + y
        return x - y

    check(f, t(2, 3), t(2, 3))


# ------------------------------------------------------------------ torch / functional

def test_torch_functions():
    def f(x, y):
        return torch.cat([x, y], dim=0), torch.stack((x, y), 1), torch.matmul(x, y.T), torch.einsum("ij,kj->ik", x, y)

    check(f, t(2, 3), t(2, 3))


def test_torch_factories_with_dtype_and_device():
    def f(x):
        z = torch.zeros(x.shape[0], 2, dtype=x.dtype, device=x.device)
        a = torch.arange(x.shape[0], dtype=torch.float32)
        o = torch.ones_like(x)
        f = torch.full((2,), 3.5)
        return z, a, o + x, f, torch.eye(3), torch.tensor([1, 2, 3])

    check(f, t(4, 2))


def test_torch_nn_functional():
    def f(x, w, b):
        h = F.linear(x, w, b)
        h = F.gelu(h) + F.relu(h) + F.silu(h)
        h = F.layer_norm(h, (h.shape[-1],))
        return F.softmax(h, dim=-1), F.log_softmax(h, -1), F.dropout(h, p=0.5, training=False)

    check(f, t(2, 4), t(5, 4), t(5))


def test_torch_nn_functional_conv_and_pool():
    def f(x, w):
        y = F.conv2d(x, w, padding=1)
        y = F.max_pool2d(y, 2)
        return F.adaptive_avg_pool2d(y, 1).flatten(1), F.pad(x, (1, 1))

    check(f, t(1, 2, 6, 6), t(3, 2, 3, 3))


def test_torch_nn_functional_losses():
    def f(logits, target, pred):
        return F.cross_entropy(logits, target), F.mse_loss(pred, logits[:, 0]), F.one_hot(target, 5)

    check(f, t(4, 5), torch.randint(0, 5, (4,)), t(4))


def test_torch_functions_with_kwargs_and_out_of_graph_constants():
    def f(x):
        return torch.clamp(x, min=-0.5, max=0.5), torch.sum(x, dim=(0, 1)), torch.where(x > 0, x, 0.0)

    check(f, t(2, 3))


def test_torch_dtype_helpers():
    def f(x):
        info = torch.finfo(x.dtype)
        return x.clamp(min=info.min, max=info.max), torch.is_floating_point(x), torch.is_tensor(x)

    check(f, t(3))


def test_nn_module_forward_inlined():
    lin = torch.nn.Linear(4, 3)

    def f(x):
        return lin(x).relu(), lin.weight.shape, lin.out_features

    check(f, t(2, 4))


def test_sequential_module_compiled():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))

    def f(x):
        return model(x)

    check(f, t(3, 4))


# ------------------------------------------------------------------ builtins

def test_builtin_len_on_containers_and_tensor():
    def f(x, xs):
        return x * len(xs) + len(x) + len({"a": 1}) + len("abc") + len(range(4))

    check(f, t(3), [1, 2, 3])


def test_builtin_isinstance_variants():
    def f(x, n, xs):
        a = isinstance(x, torch.Tensor)
        b = isinstance(n, int)
        c = isinstance(xs, (list, tuple))
        d = isinstance(n, float)
        return x + (a + b + c + d)

    check(f, t(3), 3, (1, 2))


def test_builtin_getattr_hasattr_on_object():
    class Cfg:
        hidden = 4
        act = "relu"

    cfg = Cfg()

    def f(x):
        act = getattr(cfg, "act")
        scale = getattr(cfg, "missing", 2.0)
        bias = 1.0 if hasattr(cfg, "hidden") else 0.0
        none = hasattr(cfg, "nope")
        return getattr(torch, act)(x) * scale + bias + none

    check(f, t(3))


def test_builtin_getattr_on_tensor():
    def f(x):
        return getattr(x, "relu")(), getattr(x, "shape"), hasattr(x, "ndim")

    check(f, t(3))


def test_builtin_min_max_abs():
    def f(x):
        n = min(x.shape[0], 3)
        m = max(1, 2, x.ndim)
        k = max([3, 7, 5])
        return x[:n] * m + abs(-k) + min((4, 2)) + abs(-2.5)

    check(f, t(5))


def test_builtin_max_of_tensors():
    def f(x, y):
        return max(x.sum(), y.sum()) if False else torch.maximum(x, y), abs(x)

    check(f, t(3), t(3))


def test_builtin_sum_any_all_on_lists():
    def f(x, flags):
        return x * sum([1, 2, 3]) + sum([0.5, 0.25], 1.0), any(flags), all(flags), sum((x, x, x))

    check(f, t(2), [True, False])


def test_builtin_range_enumerate_zip_objects():
    def f(x):
        r = range(1, 8, 2)
        pairs = list(zip("abc", range(3)))
        en = list(enumerate([10, 20]))
        return x * r[2] + len(r), pairs, en, list(r[1:])

    check(f, t(2))


def test_builtin_int_float_bool_str_round():
    def f(x):
        n = int("3") + int(2.7) + round(2.5) + round(3.14159, 2)
        return x * float(n) + bool(n), str(n), divmod(7, 3), pow(2, 5)

    check(f, t(2))


def test_builtin_tuple_list_dict_set_constructors():
    def f(x, shape):
        a = tuple(shape)
        b = list(a)
        c = dict(k=1, v=2)
        d = set([1, 2, 2])
        e = dict(zip(["p", "q"], [x, x * 2]))
        return x.view(*b), a, c, d, e

    check(f, t(2, 3), [3, 2])


def test_builtin_type_and_callable():
    def f(x, n):
        if type(n) is int and callable(torch.relu) and not callable(n):
            return x * n
        return x

    check(f, t(2), 3)


def test_builtin_iter_next():
    def f(xs):
        it = iter(xs)
        first = next(it)
        second = next(it)
        return first - second, next(it, None)

    check(f, [t(2), t(2)])


# ------------------------------------------------------------------ math and operator

def test_math_module_functions():
    def f(x):
        d = x.shape[-1]
        scale = 1.0 / math.sqrt(d)
        return x * scale + math.pi + math.log(2.0) + math.ceil(d / 3) + math.floor(2.7) + math.prod([2, 3])

    check(f, t(2, 8))


def test_math_constants_inf_nan_and_isinf():
    def f(x):
        lo = -math.inf
        return x.clamp(min=lo), math.isinf(lo), math.isclose(0.1 + 0.2, 0.3), math.gcd(12, 18)

    check(f, t(3))


def test_operator_functions_on_tensors():
    def f(x, y):
        return operator.add(x, y), operator.mul(x, 2), operator.neg(x), operator.getitem(x, 0), operator.matmul(x, y.T)

    check(f, t(2, 2), t(2, 2))


def test_operator_contains_getitem_not():
    def f(x):
        d = {"a": x}
        if operator.contains(d, "a") and operator.not_(False):
            return operator.getitem(d, "a") * 2, operator.is_(None, None)
        return x, False

    check(f, t(3))


def test_operator_on_python_numbers():
    def f(x):
        return x * operator.floordiv(7, 2) + operator.index(3) + operator.truth(0)

    check(f, t(2))


# ------------------------------------------------------------------ dataclasses / namedtuples

Point = collections.namedtuple("Point", ["x", "y"])


class Pair(typing.NamedTuple):
    first: torch.Tensor
    second: torch.Tensor
    scale: float = 1.0


@dataclasses.dataclass
class Batch:
    inputs: torch.Tensor
    mask: torch.Tensor
    temperature: float = 1.0


@dataclasses.dataclass(frozen=True)
class FrozenCfg:
    dim: int
    eps: float = 1e-5


def test_namedtuple_input_fields_and_index():
    def f(p):
        return p.x + p.y * p[0], len(p), p._fields

    check(f, Point(t(3), t(3)))


def test_typed_namedtuple_input_with_default():
    def f(p):
        a, b, s = p
        return (a - b) * s + p.scale

    check(f, Pair(t(3), t(3)))


def test_namedtuple_created_and_returned():
    def f(x):
        return Point(x + 1, y=x * 2)

    check(f, t(3))


def test_namedtuple_replace_and_asdict_on_input():
    def f(p):
        q = p._replace(scale=3.0)
        d = p._asdict()
        return q.scale * q.first, d["second"] + 1, list(d)

    check(f, Pair(t(2), t(2)))


def test_dataclass_input():
    def f(batch):
        return (batch.inputs / batch.temperature).masked_fill(batch.mask, 0.0)

    check(f, Batch(t(2, 3), torch.rand(2, 3) > 0.5, 2.0))


def test_dataclass_created_and_returned():
    def f(x):
        return Batch(inputs=x * 2, mask=x > 0)

    check(f, t(2, 3))


def test_frozen_dataclass_config_global_like():
    cfg = FrozenCfg(dim=4)

    def f(x):
        return x.view(-1, cfg.dim) / (x.pow(2).mean() + cfg.eps).sqrt()

    check(f, t(2, 8))


def test_dataclass_fields_and_is_dataclass():
    def f(x):
        b = Batch(x, x > 0, 0.5)
        names = [fld.name for fld in dataclasses.fields(b)]
        return names, b.temperature * x, dataclasses.is_dataclass(b)

    check(f, t(2))


# ------------------------------------------------------------------ user functions / objects

def _helper_scale(x, s):
    return _helper_shift(x * s)


def _helper_shift(x, shift=1.0):
    return x + shift


class Scaler:
    factor = 2.0

    def __init__(self, bias):
        self.bias = bias
        self._calls = 0

    def apply(self, x):
        return self._apply(x) + self.bias

    def _apply(self, x):
        return x * self.factor

    @staticmethod
    def square(x):
        return x * x

    @classmethod
    def make_factor(cls, x):
        return x * cls.factor

    @property
    def doubled_bias(self):
        return self.bias * 2

    def __call__(self, x):
        return self.apply(x) - 1


class SubScaler(Scaler):
    factor = 3.0

    def apply(self, x):
        return super().apply(x) * 10


def test_user_functions_inlined_nested():
    def f(x):
        return _helper_scale(x, 3) + _helper_shift(x, shift=2.0)

    check(f, t(3))


def test_user_method_calls_on_input_object():
    def f(obj, x):
        return obj.apply(x), obj.bias, obj.factor

    check(f, Scaler(0.5), t(3))


def test_user_staticmethod_classmethod_property():
    s = Scaler(1.5)

    def f(x):
        return Scaler.square(x) + s.square(x), Scaler.make_factor(x), s.make_factor(x), s.doubled_bias * x

    check(f, t(3))


def test_user_object_callable_and_inheritance_super():
    s = SubScaler(0.25)

    def f(x):
        return s(x), s.apply(x), isinstance(s, Scaler), type(s).factor

    check(f, t(3))


def test_user_object_created_inside():
    def f(x):
        s = Scaler(x.sum())
        return s.apply(x), s.bias

    check(f, t(3))


def test_bound_method_as_value():
    s = Scaler(2.0)

    def f(x):
        m = s.apply
        fns = [torch.relu, m, Scaler.square]
        out = x
        for fn in fns:
            out = fn(out)
        return out

    check(f, t(3))


def test_functools_partial():
    import functools

    def f(x):
        g = functools.partial(torch.clamp, min=-0.1)
        return g(x, max=0.1)

    check(f, t(5))


def test_global_user_function_with_closure():
    def make(k):
        def g(x):
            return x + k
        return g

    add3 = make(3)

    def f(x):
        return add3(x) * make(2)(x)

    check(f, t(3))


def test_enum_constant():
    import enum

    class Mode(enum.Enum):
        A = 1
        B = 2

    def f(x, mode):
        return x * (2 if mode is Mode.A else 3) + mode.value

    check(f, t(2), Mode.B)


# ------------------------------------------------------------------ more values

def test_torch_size_arithmetic_keeps_type():
    def f(x):
        new_shape = x.shape[:-1] + (2, -1)
        return new_shape, x.view(new_shape), x.shape[1:], x.size()[-2:], x.shape.numel()

    out = check(f, t(2, 3, 4))(t(2, 3, 4))
    assert type(out[0]) is torch.Size and type(out[2]) is torch.Size


def test_tuple_and_list_of_shape():
    def f(x):
        shape = list(x.shape)
        shape[-1] = -1
        return x.reshape(shape), tuple(x.shape), len(x.shape), max(x.shape), sum(x.shape)

    check(f, t(2, 3))


def test_tensor_conversion_methods():
    def f(x, y):
        return (x.to("cpu"), x.to(device=x.device, dtype=torch.float64), x.to(y), x.type(torch.float64),
                x.int(), x.bool(), x.double(), x.detach(), x.clone())

    check(f, t(3) * 3, torch.zeros(2, dtype=torch.int32))


def test_tensor_as_and_like_methods():
    def f(x, y):
        return x.view_as(y), x.expand_as(torch.empty(3, 6)) + 0, torch.zeros_like(y), y.reshape_as(x)

    check(f, t(6), t(2, 3))


def test_tensor_element_size_and_stride():
    def f(x):
        return x.element_size(), x.stride(), x.t().stride(), x.t().is_contiguous(), x + 1

    check(f, t(2, 3))


def test_isinstance_parameter_and_module():
    lin = torch.nn.Linear(2, 2)

    def f(x):
        flags = (isinstance(lin.weight, torch.nn.Parameter), isinstance(x, torch.nn.Parameter),
                 isinstance(lin, torch.nn.Module), isinstance(lin, torch.nn.Conv2d))
        return lin(x), flags

    check(f, t(3, 2))


def test_user_class_operator_overloading():
    class Vec:
        def __init__(self, data):
            self.data = data

        def __add__(self, other):
            return Vec(self.data + other.data)

        def __mul__(self, k):
            return Vec(self.data * k)

        def __getitem__(self, i):
            return self.data[i]

        def __len__(self):
            return self.data.shape[0]

    def f(x, y):
        v = (Vec(x) + Vec(y)) * 2
        return v[0], len(v), v.data

    check(f, t(3), t(3))


def test_property_with_setter_on_local_object():
    class Temp:
        def __init__(self):
            self._scale = 1.0

        @property
        def scale(self):
            return self._scale

        @scale.setter
        def scale(self, v):
            self._scale = v * 2

    def f(x):
        o = Temp()
        o.scale = 3.0
        return x * o.scale

    check(f, t(2))


def test_return_user_object_created_inside():
    def f(x):
        s = Scaler(x + 1)
        s.extra = x * 2
        return s

    check(f, t(3))


def test_item_is_data_dependent_but_correct():
    def f(x):
        return x.sum().item() * 2, x.max().item() > 100

    check(f, t(3), expect_graphs=None)

"""Family "numpy": numpy inside traced code -- np.finfo/iinfo/dtype, numpy scalars
and constants, numpy functions on arrays derived from tensors, Tensor.numpy()."""
from __future__ import annotations

import math

import numpy as np
import torch

from bench.semantics.corpus import program

F = "numpy"


@program(F)
def np_finfo_eps(x):
    return x + np.finfo(np.float32).eps


@program(F)
def np_finfo_max_clamp(x):
    return x.clamp(max=float(np.finfo(np.float32).max))


@program(F)
def np_iinfo_max(x):
    return x * (np.iinfo(np.int8).max / 127)


@program(F)
def np_dtype_itemsize(x):
    return x * np.dtype(np.float32).itemsize


@program(F)
def np_constants(x):
    return x * np.pi + np.e + math.pi


@program(F)
def np_scalar_math_on_constants(x):
    return x * float(np.sqrt(4.0)) + float(np.log(1.0))


@program(F)
def np_prod_of_shape(x):
    return x.reshape(-1) * int(np.prod(x.shape))


@program(F)
def np_array_constant_to_tensor(x):
    return x + torch.from_numpy(np.array([1.0, 2.0, 3.0], dtype=np.float32))


@program(F)
def tensor_numpy_roundtrip(x):
    a = x.numpy()
    return torch.from_numpy(a * 2)


@program(F)
def numpy_function_on_tensor_data(x):
    a = x.detach().numpy()
    return torch.tensor(np.sum(a)) + x


@program(F)
def numpy_argmax_drives_indexing(x):
    i = int(np.argmax(x.numpy()))
    return x[i] * 2


@program(F)
def numpy_clip_and_back(x):
    return torch.as_tensor(np.clip(x.numpy(), -0.5, 0.5))


@program(F)
def np_float32_scalar_times_tensor(x):
    return x * float(np.float32(0.5))


@program(F)
def np_linspace_constant(x):
    return x + torch.from_numpy(np.linspace(0, 1, 3).astype(np.float32))


@program(F)
def np_isfinite_on_python_float(x):
    return x * bool(np.isfinite(3.0))


@program(F)
def np_shape_of_tensor_numpy(x):
    return x * x.numpy().shape[0]


# ---- held-out variants: dtypes as numpy computes them, memory shared or not, scalars ----

def _int_input():
    return (torch.arange(6).reshape(2, 3),)


@program(F, inputs=_int_input)
def numpy_int_true_division_is_float64(x):
    a = x.numpy()
    return torch.from_numpy(a / 4), torch.tensor(a.mean()), torch.from_numpy(a * 2.5)


@program(F)
def numpy_reductions_with_axis_and_keepdims(x):
    a = (x.reshape(1, 3) * torch.ones(2, 1)).numpy()
    return (torch.from_numpy(np.sum(a, axis=0)), torch.from_numpy(a.max(axis=1, keepdims=True)),
            torch.tensor(np.argmin(a)), torch.from_numpy(np.mean(a, 1)))


@program(F)
def numpy_mixed_float_widths_promote(x):
    a = x.numpy()
    b = np.linspace(0, 1, 3)  # float64 constant
    return torch.from_numpy(a + b), torch.from_numpy(a * np.float32(2)), torch.from_numpy((a > 0) & (b < 0.6))


@program(F)
def numpy_view_sees_later_inplace_write(x):
    a = x.numpy()
    first = a[0]
    x.add_(1)
    return torch.tensor(first), torch.from_numpy(a * 1), torch.tensor(a[1:].sum())


@program(F)
def numpy_where_transpose_and_astype(x):
    a = x.reshape(3, 1).expand(3, 2).numpy()
    b = np.where(a > 0, a, -a).T.astype(np.float64)
    return torch.from_numpy(b), b.shape, b.dtype == np.float64, b.ndim


@program(F)
def numpy_as_tensor_of_input_memory_refused_cleanly(x):
    t = torch.as_tensor(x.numpy())
    t.mul_(2)
    return x, t


@program(F)
def numpy_shape_mismatch_raises(x):
    try:
        x.numpy() + np.ones(4, dtype=np.float32)
    except ValueError as e:
        return x + len(str(e))
    return x


@program(F, tc_whole=False)
def numpy_array_returned_across_break(x):
    a = np.clip(x.numpy(), 0, None)
    print("between")
    return torch.from_numpy(a + 1), a.dtype

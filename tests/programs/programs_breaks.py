"""Programs that genuinely need a graph break (needs_break=True).

Compiled results must still match eager exactly, including what they print.
"""
from __future__ import annotations

import functools
import logging
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Call, program

PROGRAMS: list = []


def print_loss_value(pred, target):
    loss = F.mse_loss(pred, target)
    print(f"loss = {loss.item():.4f}")
    return loss * 2


@program(PROGRAMS, "print_item_value", lambda: (torch.randn(4, 3), torch.randn(4, 3)), needs_break=True)
def make_print_item():
    return print_loss_value


def print_tensor_mid_function(x):
    y = x.relu()
    print("activations:", y)
    return y.sum(0)


@program(PROGRAMS, "print_tensor_repr", lambda: (torch.randn(2, 3),), needs_break=True)
def make_print_tensor():
    return print_tensor_mid_function


def item_in_python_if(x, threshold: float = 0.0):
    m = x.mean()
    if m.item() > threshold:
        return x - m
    return x + m


@program(PROGRAMS, "item_in_python_if", lambda: (torch.randn(8) + 0.3,), needs_break=True)
def make_item_if():
    return item_in_python_if


class DataDependentGate(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 4)

    def forward(self, x):
        h = self.a(x)
        if h.sum() > 0:
            return self.b(h).relu()
        return -h


@program(PROGRAMS, "tensor_bool_in_if", lambda: (torch.randn(3, 4),), needs_break=True)
def make_data_dependent():
    return DataDependentGate()


def numpy_roundtrip(x):
    arr = x.detach().cpu().numpy()
    arr = np.clip(arr, -0.5, 0.5) + np.median(arr)
    return torch.from_numpy(arr) * 2 + x


@program(PROGRAMS, "numpy_call_roundtrip", lambda: (torch.randn(5),), needs_break=True)
def make_numpy():
    return numpy_roundtrip


def _chunks(x, size):
    for start in range(0, x.shape[0], size):
        yield x[start:start + size] * (start + 1)


def lazy_generator(x):
    gen = _chunks(x, 2)
    first = next(gen)
    rest = [c.sum() for c in gen]
    return first, torch.stack(rest)


# Inlining a generator is legitimate (recent Dynamo does it): one graph is fine here.
@program(PROGRAMS, "generator_consumed_lazily", lambda: (torch.randn(6, 2),), needs_break=True,
         tags=("may_capture",))
def make_generator():
    return lazy_generator


def timed_forward(x, w):
    start = time.time()
    y = torch.tanh(x @ w)
    elapsed = time.time() - start
    return y, elapsed >= 0.0


@program(PROGRAMS, "time_time_c_function", lambda: (torch.randn(3, 4), torch.randn(4, 4)), needs_break=True)
def make_timed():
    return timed_forward


def tolist_python_loop(scores):
    out = []
    for s in scores.tolist():
        out.append(round(s, 2))
    return torch.tensor(out) + scores


@program(PROGRAMS, "tolist_python_loop", lambda: (torch.randn(4),), needs_break=True)
def make_tolist():
    return tolist_python_loop


def nonzero_dynamic_shape(x):
    idx = torch.nonzero(x > 0, as_tuple=True)[0]
    selected = x[x > 0]
    return idx * 2, selected.sum(), x.masked_select(x < 0)


@program(PROGRAMS, "nonzero_boolean_mask_dynamic_shape", lambda: (torch.randn(10),), needs_break=True)
def make_nonzero():
    return nonzero_dynamic_shape


log = logging.getLogger("tests.programs")


def early_stop_check(losses, patience: int = 2):
    best = losses.min()
    last = losses[-patience:]
    if bool((last > best).all()):
        log.info("early stop: best=%s", float(best))
        return torch.ones(()), "stop"
    return losses.mean(), "continue"


@program(PROGRAMS, "bool_of_tensor_then_logging",
         lambda: (torch.tensor([1.0, 0.5, 0.6, 0.7]) + torch.rand(4) * 0.01,), needs_break=True)
def make_early_stop():
    return early_stop_check


def while_loop_data_dependent(x):
    steps = 0
    while x.norm() > 1.0 and steps < 20:
        x = x * 0.5
        steps += 1
    return x, steps


@program(PROGRAMS, "while_loop_tensor_condition", lambda: (torch.randn(5) * 4,), needs_break=True)
def make_while():
    return while_loop_data_dependent


class ScaledBase(nn.Module):
    def __init__(self):
        super().__init__()
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        return self.proj(x) + 1


class VerboseChild(ScaledBase):
    def forward(self, x):
        y = x * 2
        print("input norm", round(float(y.norm()), 3))  # graph break; the rest runs in a resume function
        return super().forward(y)  # zero-argument super() after the break


@program(PROGRAMS, "print_then_zero_arg_super_forward", lambda: (torch.randn(3, 4),), needs_break=True)
def make_verbose_child():
    return VerboseChild()


def log_shapes(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        for a in args:
            if isinstance(a, torch.Tensor):
                print("arg", tuple(a.shape))  # break inside a loop of a *args/**kwargs wrapper
        return fn(*args, **kwargs)
    return wrapper


@log_shapes
def decorated_mlp(x, w, bias=None):
    y = x @ w
    if bias is not None:
        y = y + bias
    return torch.relu(y)


@program(PROGRAMS, "varargs_decorator_print_in_loop",
         lambda: Call((torch.randn(2, 3), torch.randn(3, 4)), {"bias": torch.randn(4)}), needs_break=True)
def make_decorated():
    return decorated_mlp

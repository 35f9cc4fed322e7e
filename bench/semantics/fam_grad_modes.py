"""Family "grad_modes": no_grad / enable_grad / set_grad_enabled / inference_mode as
blocks and decorators, nested, around breaks, and the grad mode they leave behind."""
from __future__ import annotations

import torch

from bench.semantics.corpus import program

F = "grad_modes"


def _rg():
    return (torch.randn(3, requires_grad=True),)


@program(F, inputs=_rg)
def no_grad_block(x):
    with torch.no_grad():
        y = x * 2
    return y, x * 3, torch.is_grad_enabled()


@program(F, inputs=_rg)
def enable_grad_inside_no_grad(x):
    with torch.no_grad():
        a = x * 2
        with torch.enable_grad():
            b = x * 3
    return a, b


@program(F, inputs=_rg)
def set_grad_enabled_false(x):
    with torch.set_grad_enabled(False):
        y = x + 1
    return y, torch.is_grad_enabled()


@program(F, inputs=_rg)
def set_grad_enabled_from_flag(x):
    training = x.shape[0] == 3
    with torch.set_grad_enabled(training):
        y = x * 2
    return y


@program(F, inputs=_rg)
def no_grad_decorated_helper(x):
    @torch.no_grad()
    def helper(t):
        return t * 2
    return helper(x), x + 1


@program(F, inputs=_rg)
def is_grad_enabled_branches(x):
    if torch.is_grad_enabled():
        return x * 2
    return x


@program(F, inputs=_rg)
def inference_mode_block(x):
    with torch.inference_mode():
        y = x * 2
    return y * 1, torch.is_inference_mode_enabled()


@program(F, inputs=_rg)
def inference_mode_false(x):
    with torch.inference_mode(False):
        y = x * 2
    return y


@program(F, inputs=_rg)
def inference_mode_false_nested_in_no_grad(x):
    with torch.no_grad():
        with torch.inference_mode(False):
            y = x * 2
    return y, torch.is_grad_enabled()


@program(F, inputs=_rg, tc_whole=False)
def inference_mode_false_after_break(x):
    y = x * 2
    print("break")
    with torch.inference_mode(False):
        z = y + 1
    return z


@program(F, inputs=_rg, tc_whole=False)
def no_grad_around_break(x):
    with torch.no_grad():
        y = x * 2
        print("inside")
        z = y + 1
    return z, x * 2


@program(F, inputs=_rg)
def detach_and_requires_grad(x):
    d = x.detach()
    return d * 2, d.requires_grad, x.requires_grad


@program(F, inputs=_rg)
def requires_grad_set_on_new_tensor(x):
    w = torch.ones(3)
    w.requires_grad_(True)
    return x * w


@program(F, inputs=_rg)
def no_grad_result_has_no_grad_fn(x):
    with torch.no_grad():
        y = x * 2
    return y.requires_grad, y.grad_fn is None, y


@program(F)
def autocast_cpu_bf16(x):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = torch.mm(x.reshape(1, 3), x.reshape(3, 1))
    return y.float(), y.dtype


@program(F, inputs=_rg)
def grad_mode_restored_after_return_inside(x):
    def helper(t):
        with torch.no_grad():
            return t * 2
    y = helper(x)
    return y, x * 2, torch.is_grad_enabled()


@program(F, inputs=_rg)
def enable_grad_decorator(x):
    @torch.enable_grad()
    def helper(t):
        return t * 2
    with torch.no_grad():
        y = helper(x)
    return y


@program(F, inputs=_rg)
def torch_no_grad_class_used_twice(x):
    ng = torch.no_grad()
    with ng:
        a = x * 2
    with ng:
        b = x * 3
    return a, b


# ---- held-out variants: grad_fn / is_leaf answered where they are known ----

@program(F)
def grad_fn_and_is_leaf_without_grad(x):
    y = x * 2
    return y.grad_fn is None, y.is_leaf, x.is_leaf, x.grad_fn, y


@program(F, inputs=_rg)
def grad_fn_of_result_that_requires_grad(x):
    y = x * 2
    return y.grad_fn is not None, y.is_leaf, y

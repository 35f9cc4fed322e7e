"""torch functions, torch.nn.functional and unbound Tensor methods.

A call becomes one node of the FX graph whose output metadata comes from running
the function on fake tensors. A few functions answer from metadata or global state
alone (guarded) and fold to constants; a few have effects outside the graph and
are refused.
"""
from __future__ import annotations

import sys
import types

import torch

from capture.exc import NonTensorResult, Unsupported
from capture.skipfiles import is_torch_file
from capture.variables import builder
from capture.variables.base import KnownObjectMixin, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.functions import UserFunctionVariable
from capture.variables.numpy_arrays import NdarrayVariable
from capture.variables.tensor import TensorVariable
from guards import GuardKind
from guards.state import READERS


def _names(module, *names):
    return {getattr(module, n) for n in names if hasattr(module, n)}


# Functions whose effect reaches beyond their result: global state, I/O, autograd.
DENY = _names(torch, "manual_seed", "seed", "initial_seed", "set_grad_enabled", "set_default_dtype",
              "set_default_device", "set_default_tensor_type", "use_deterministic_algorithms",
              "set_printoptions", "save", "load", "compile", "set_num_threads", "set_rng_state",
              "get_rng_state", "set_float32_matmul_precision", "set_autocast_enabled", "set_anomaly_enabled",
              "set_warn_always", "cond", "vmap")
DENY |= _names(torch.random, "manual_seed", "seed", "set_rng_state", "get_rng_state", "fork_rng")
DENY |= _names(torch._C, "_set_grad_enabled")
DENY |= _names(torch.autograd, "grad", "backward")

# Pure functions of metadata, constants or guarded global state: folded at trace time.
CONSTANT_FUNCTIONS = _names(torch, "is_tensor", "is_floating_point", "is_complex", "numel",
                            "is_inference_mode_enabled", "get_default_dtype", "is_autocast_enabled",
                            "promote_types", "result_type", "can_cast", "is_storage", "are_deterministic_algorithms_enabled",
                            "is_nonzero_dtype") \
    | _names(torch.backends.mha, "get_fastpath_enabled") \
    | _names(torch.jit, "is_scripting", "is_tracing") | _names(torch._C, "_get_tracing_state") \
    | _names(torch.compiler, "is_compiling", "is_dynamo_compiling", "is_exporting") \
    | _names(torch.overrides, "has_torch_function", "has_torch_function_unary", "has_torch_function_variadic") \
    | _names(torch._C, "_has_torch_function", "_has_torch_function_unary", "_has_torch_function_variadic")
# __torch_function__ checks: fake tensors are a subclass, but the real inputs are guarded
# to be plain tensors or Parameters, for which these answer False.
TORCH_FUNCTION_CHECKS = CONSTANT_FUNCTIONS & (
    _names(torch.overrides, "has_torch_function", "has_torch_function_unary", "has_torch_function_variadic")
    | _names(torch._C, "_has_torch_function", "_has_torch_function_unary", "_has_torch_function_variadic"))


# Usage telemetry (torchvision models call it in __init__ and in some functions): it
# changes no value the program can see, so a compiled frame skips it (as torch.compile does).
TELEMETRY = _names(torch._C, "_log_api_usage_once", "_log_api_usage_metadata")

# "Is this code being compiled?": yes, while we trace it (the answer is folded).
COMPILING_CHECKS = _names(torch.compiler, "is_compiling", "is_dynamo_compiling")

# Tensors from numpy values (capture/variables/numpy_arrays.py decides copy or share).
_FROM_NUMPY = _names(torch, "tensor", "from_numpy", "as_tensor")


def is_torch_callable(value) -> bool:
    if isinstance(value, type) or not callable(value):
        return False
    wrapped = getattr(value, "__wrapped__", None)
    if wrapped is not None and not is_torch_callable(wrapped):
        return False  # a torch decorator (no_grad, ...) around user code
    module = getattr(value, "__module__", None) or ""
    if module == "torch" or module.startswith("torch."):
        return True
    if getattr(value, "__objclass__", None) in (torch._C.TensorBase, torch.Tensor):
        return True
    owner = getattr(value, "__self__", None)
    if isinstance(owner, types.ModuleType) and owner.__name__.startswith("torch"):
        return True
    code = getattr(value, "__code__", None)
    return code is not None and is_torch_file(code.co_filename)


def _named_by_its_module(fn) -> bool:
    """Whether ``fn`` is ``<its module>.<its __name__>``: how an FX graph's generated code
    refers to a call_function target (a lambda or a function local to another is not:
    torch.testing's OpInfo entries hold lambdas)."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    return getattr(module, fn.__name__, None) is fn


class TorchFunctionVariable(KnownObjectMixin, VariableTracker):
    def __init__(self, fn):
        self.fn = fn

    def var_getattr(self, tx, name):
        if name in ("__name__", "__qualname__", "__module__"):
            return ConstantVariable(getattr(self.fn, name))
        raise Unsupported(f"attribute {name} of {self.fn}")

    def call(self, tx, args, kwargs):
        fn = self.fn
        name = getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn)))
        if fn in DENY:
            raise Unsupported(f"torch.{name} changes state outside the graph")
        if fn is torch.is_grad_enabled:
            return ConstantVariable(tx.output.grad_enabled)  # the mode the traced code is in
        if fn in TELEMETRY:
            return ConstantVariable(None)
        if fn in COMPILING_CHECKS:
            return ConstantVariable(True)  # libraries skip untraceable bookkeeping when compiled
        if fn in CONSTANT_FUNCTIONS:
            return self._fold(tx, args, kwargs)
        if fn in _FROM_NUMPY and len(args) == 1 and isinstance(args[0], NdarrayVariable):
            return args[0].to_tensor(tx, fn, dict(kwargs))
        if isinstance(fn, types.FunctionType) and not _named_by_its_module(fn):
            # a lambda or local function of torch's: a graph node's target must be found
            # by its module and name when the graph's code runs, so trace through it
            return UserFunctionVariable(fn).call(tx, args, kwargs)
        try:
            return tx.output.call_graph(tx, "call_function", fn, args, kwargs)
        except NonTensorResult:
            if not isinstance(fn, types.FunctionType):
                raise
            # a Python helper of torch's computing from metadata (e.g. a sequence length):
            # trace through it instead
            return UserFunctionVariable(fn).call(tx, args, kwargs)

    def _fold(self, tx, args, kwargs):
        def value(vt):
            if isinstance(vt, TensorVariable):
                return vt.fake
            if vt.is_python_constant():
                return vt.as_python_constant()
            if hasattr(vt, "items") and isinstance(vt.items, list):
                return tuple(value(i) for i in vt.items)
            raise Unsupported(f"argument {vt} of {self.fn}")
        if self.fn in TORCH_FUNCTION_CHECKS:
            return ConstantVariable(False)
        consts = [value(a) for a in args]
        result = self.fn(*consts, **{k: value(v) for k, v in kwargs.items()})
        helper = READERS.get(self.fn)
        if helper is not None:
            if kwargs or not all(type(c) in (str, int, type(None)) for c in consts):
                raise Unsupported(f"{self.fn.__name__} with these arguments")
            tx.output.guard_state_read(tx, helper, f"torch.{self.fn.__name__}", tuple(consts), result)
        return builder.wrap_constant_result(result)

    def reconstruct(self, cg):
        return cg.object_ref(self.fn)

    def __repr__(self):
        return f"TorchFunctionVariable({getattr(self.fn, '__name__', self.fn)})"


@builder.wraps(builder.Order.TORCH, is_torch_callable)
def _wrap_torch_callable(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return TorchFunctionVariable(value)

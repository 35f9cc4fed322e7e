"""Family "context": contextlib (contextmanager, nullcontext, ExitStack, suppress),
user context managers, warnings.warn and inspect."""
from __future__ import annotations

import contextlib
import inspect
import warnings

import torch

from bench.semantics.corpus import ProgramWarning, program

F = "context"

LOG: list = []


def _log_state():
    return list(LOG)


def _log_reset():
    LOG.clear()


@contextlib.contextmanager
def tagged(tag):
    LOG.append(f"enter {tag}")
    try:
        yield tag
    finally:
        LOG.append(f"exit {tag}")


@contextlib.contextmanager
def scale_ctx(k):
    yield k * 2


@contextlib.contextmanager
def maybe_no_grad(flag):
    if flag:
        with torch.no_grad():
            yield
    else:
        yield


@contextlib.contextmanager
def swallow_value_error():
    try:
        yield
    except ValueError as e:
        LOG.append(f"swallowed {e}")


@contextlib.contextmanager
def translate_error():
    try:
        yield
    except KeyError as e:
        raise ValueError(f"translated {e}") from e


@contextlib.contextmanager
def scaled_tensor(t, k):
    LOG.append("setup")
    yield t * k
    LOG.append("teardown")


class Manual:
    def __init__(self, k):
        self.k = k

    def __enter__(self):
        return self.k

    def __exit__(self, *exc):
        return False


class Swallow:
    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        return exc_type is ValueError


@program(F)
def contextmanager_yields_value(x):
    with scale_ctx(3) as k:
        return x * k


@program(F, state=_log_state, reset=_log_reset)
def contextmanager_with_side_effects(x):
    with tagged("a") as t:
        y = x + len(t)
    return y


@program(F, state=_log_state, reset=_log_reset)
def contextmanager_exit_on_exception(x):
    try:
        with tagged("b"):
            raise ValueError("inside")
    except ValueError:
        pass
    return x * 2


@program(F)
def nullcontext_plain(x):
    with contextlib.nullcontext():
        return x + 1


@program(F)
def nullcontext_enter_result(x):
    with contextlib.nullcontext(5) as v:
        return x * v


@program(F)
def conditional_context(x):
    ctx = torch.no_grad() if x.shape[0] > 5 else contextlib.nullcontext()
    with ctx:
        return x * 2


@program(F, state=_log_state, reset=_log_reset)
def exitstack_enter_context(x):
    with contextlib.ExitStack() as stack:
        a = stack.enter_context(tagged("one"))
        b = stack.enter_context(tagged("two"))
        y = x * (len(a) + len(b))
    return y


@program(F, state=_log_state, reset=_log_reset)
def exitstack_callback(x):
    with contextlib.ExitStack() as stack:
        stack.callback(LOG.append, "callback")
        y = x + 1
    return y


@program(F, inputs=lambda: (torch.randn(3, requires_grad=True),))
def contextmanager_wrapping_no_grad(x):
    with maybe_no_grad(True):
        y = x * 2
    with maybe_no_grad(False):
        z = x * 3
    return y, z, torch.is_grad_enabled()


@program(F, state=_log_state, reset=_log_reset)
def contextmanager_swallows_exception(x):
    y = x + 1
    with swallow_value_error():
        y = y * 2
        raise ValueError("boom")
    return y


@program(F)
def contextmanager_translates_exception(x):
    with translate_error():
        return {"a": x}["b"]


@program(F, state=_log_state, reset=_log_reset)
def contextmanager_yields_tensor_in_loop(x):
    total = x * 0
    for k in (1, 2):
        with scaled_tensor(x, k) as t:
            total = total + t
    return total


@program(F, state=_log_state, reset=_log_reset)
def contextmanager_exit_runs_on_return(x):
    def helper(t):
        with tagged("ret"):
            return t * 2
    y = helper(x)
    LOG.append("after")
    return y


@program(F, state=_log_state, reset=_log_reset)
def exitstack_suppress_and_grad_mode(x):
    with contextlib.ExitStack() as stack:
        stack.enter_context(torch.no_grad())
        stack.callback(LOG.append, "cb")
        stack.enter_context(tagged("s"))
        stack.enter_context(contextlib.suppress(KeyError))
        y = x * 2
        raise KeyError("k")
    return y, torch.is_grad_enabled()


@program(F, state=_log_state, reset=_log_reset)
def exitstack_close_without_with(x):
    stack = contextlib.ExitStack()
    v = stack.enter_context(tagged("c"))
    y = x * len(v)
    stack.close()
    return y


@program(F)
def suppress_error(x):
    y = x
    with contextlib.suppress(KeyError):
        y = x * 2
        raise KeyError("gone")
    return y


@program(F)
def user_context_manager_class(x):
    with Manual(4) as k:
        y = x * k
    return y


@program(F)
def user_context_manager_swallows(x):
    with Swallow():
        raise ValueError("swallowed")
    return x + 1


@program(F)
def nested_with_statements(x):
    with Manual(2) as a, scale_ctx(1) as b:
        return x * a * b


@program(F)
def warnings_warn(x):
    warnings.warn("careful", ProgramWarning)
    return x + 1


@program(F)
def warnings_warn_in_branch(x):
    if x.shape[0] > 2:
        warnings.warn(f"size {x.shape[0]}", ProgramWarning)
    return x * 2


@program(F)
def warnings_catch_and_ignore(x):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        warnings.warn("hidden", ProgramWarning)
    return x - 1


@program(F)
def inspect_signature_parameters(x):
    def f(a, b=2, *, c=3):
        return a
    params = inspect.signature(f).parameters
    return x * len(params), list(params)


@program(F)
def inspect_signature_of_forward(x):
    names = list(inspect.signature(torch.nn.Linear.forward).parameters)
    return x * len(names)


@program(F)
def inspect_isfunction_isclass(x):
    return x + inspect.isfunction(_log_state) + inspect.isclass(Manual) + inspect.ismethod(Manual(1).__enter__)


@program(F)
def inspect_getattr_static(x):
    return x * inspect.getattr_static(Manual(3), "k", 0)


@program(F)
def with_block_returns_from_function(x):
    def helper(t):
        with Manual(3) as k:
            return t * k
    return helper(x) + 1


@program(F)
def print_inside(x):
    print("value shape", tuple(x.shape))
    return x + 1


program(F, tc_whole=False, name="print_between_ops")(lambda x: (print(x.shape), x * 2)[1])


@program(F, state=_log_state, reset=_log_reset, tc_whole=False)
def contextmanager_with_break_inside(x):
    with tagged("brk") as t:
        y = x + len(t)
        print("inside")
        y = y * 2
    return y


# ---- held-out variants: inspect on values made in and outside the frame ----

_LIN = torch.nn.Linear(3, 3)


@program(F)
def inspect_predicates_on_many_kinds(x):
    def nested():
        return 1
    kinds = [nested, lambda: 0, len, torch, Manual, x, _LIN.forward, Manual(2)]
    return x, [(inspect.isfunction(k), inspect.isclass(k), inspect.ismethod(k), inspect.ismodule(k),
                inspect.isbuiltin(k)) for k in kinds]


@program(F)
def inspect_signature_of_nested_with_defaults_and_method(x):
    def f(a, b=2, *args, c=3, **kw):
        return a
    sig = inspect.signature(f)
    forward = inspect.signature(_LIN.forward)
    return (x * sig.parameters["b"].default, list(sig.parameters), str(sig), list(forward.parameters),
            sig.parameters["c"].kind == inspect.Parameter.KEYWORD_ONLY)


class _Guarded:
    @property
    def k(self):
        return 100

    def __getattr__(self, name):
        return 7


@program(F)
def inspect_getattr_static_skips_getattr_and_defaults(x):
    m = Manual(3)
    m.extra = 4
    return x * inspect.getattr_static(m, "k") + inspect.getattr_static(m, "extra"), \
        inspect.getattr_static(m, "nope", None), inspect.getattr_static(_Guarded(), "zz", -1)

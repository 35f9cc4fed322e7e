"""Family "exceptions": raise, try/except/else/finally, exception objects, raise from,
torch's own errors, exceptions inside grad-mode blocks."""
from __future__ import annotations

import torch

from bench.semantics.corpus import program

F = "exceptions"


class MyError(Exception):
    pass


class OtherError(ValueError):
    def __init__(self, msg, code=3):
        super().__init__(msg)
        self.code = code


@program(F)
def raise_value_error(x):
    y = x + 1
    if y.shape[0] == 3:
        raise ValueError("bad size")
    return y


@program(F)
def raise_custom_error(x):
    raise MyError(f"size {x.shape[0]}")


@program(F)
def raise_class_not_instance(x):
    if x.dim() == 1:
        raise KeyError
    return x


@program(F)
def try_except_catches(x):
    try:
        raise ValueError("inner")
    except ValueError:
        x = x * 2
    return x + 1


@program(F)
def try_except_as_reads_message(x):
    try:
        raise ValueError("abc")
    except ValueError as e:
        msg = str(e)
    return x * len(msg)


@program(F)
def try_except_reads_args(x):
    try:
        raise OtherError("m", code=7)
    except OtherError as e:
        return x + e.code + len(e.args)


@program(F)
def try_except_tuple_of_types(x):
    try:
        raise KeyError("k")
    except (ValueError, KeyError) as e:
        return x - len(e.args)


@program(F)
def try_except_base_class_matches(x):
    try:
        raise OtherError("sub")
    except ValueError:
        return x * 3


@program(F)
def try_except_wrong_type_propagates(x):
    try:
        raise KeyError("k")
    except ValueError:
        return x
    return x + 1


@program(F)
def try_else_runs_without_exception(x):
    try:
        y = x + 1
    except ValueError:
        y = x - 1
    else:
        y = y * 2
    return y


@program(F)
def try_finally_runs_on_return(x):
    out = []
    try:
        return x + 1
    finally:
        out.append(1)


@program(F)
def try_finally_runs_on_exception(x):
    log = []
    try:
        try:
            raise ValueError("v")
        finally:
            log.append("finally")
    except ValueError:
        log.append("caught")
    return x * len(log)


def finally_mutates_input_list(x, log):
    try:
        x = x * 2
    finally:
        log.append(1)
    return x


program(F, inputs=lambda: (torch.randn(3), []))(finally_mutates_input_list)


@program(F)
def nested_try_reraise(x):
    try:
        try:
            raise ValueError("inner")
        except ValueError:
            raise
    except ValueError as e:
        return x + len(str(e))


@program(F)
def raise_from(x):
    try:
        try:
            raise KeyError("a")
        except KeyError as e:
            raise ValueError("b") from e
    except ValueError as e:
        return x * (e.__cause__ is not None)


@program(F)
def raise_from_none_propagates(x):
    try:
        raise KeyError("a")
    except KeyError:
        raise RuntimeError("wrapped") from None


@program(F)
def exception_object_built_not_raised(x):
    e = ValueError("not raised", 2)
    return x + len(e.args)


@program(F)
def isinstance_of_exception(x):
    e = OtherError("x")
    return x + isinstance(e, ValueError) + isinstance(e, Exception)


@program(F)
def except_catches_torch_error(x):
    try:
        y = x.view(7, 5)
    except RuntimeError:
        y = x * 0
    return y


@program(F)
def torch_error_propagates(x):
    return x.view(7, 5)


@program(F)
def except_catches_index_error_of_list(x):
    items = [x, x * 2]
    try:
        return items[5]
    except IndexError:
        return items[-1]


@program(F)
def except_catches_key_error_of_dict(x):
    d = {"a": x}
    try:
        return d["b"]
    except KeyError:
        return d["a"] + 1


@program(F)
def except_catches_attribute_error(x):
    class Box:
        pass
    b = Box()
    try:
        return b.missing
    except AttributeError:
        return x + 5


@program(F)
def except_catches_zero_division(x):
    try:
        k = 1 / 0
    except ZeroDivisionError:
        k = 2
    return x * k


@program(F)
def raise_inside_no_grad_caught(x):
    try:
        with torch.no_grad():
            y = x * 2
            raise ValueError("in no_grad")
    except ValueError:
        pass
    return y + x, torch.is_grad_enabled()


program(F, inputs=lambda: (torch.randn(3, requires_grad=True),), name="raise_inside_no_grad_requires_grad")(
    raise_inside_no_grad_caught)


@program(F)
def try_inside_no_grad_caught_inside(x):
    with torch.no_grad():
        try:
            raise KeyError("k")
        except KeyError:
            y = x * 3
        z = x + 1
    return y, z, torch.is_grad_enabled()


@program(F)
def raise_propagates_out_of_no_grad(x):
    with torch.no_grad():
        raise ValueError("leaves the with block")


@program(F)
def grad_mode_restored_after_exception(x):
    try:
        with torch.enable_grad():
            with torch.no_grad():
                raise ValueError("x")
    except ValueError:
        pass
    return x * 2, torch.is_grad_enabled()


@program(F)
def assert_true_passes(x):
    assert x.shape[0] == 3, "size"
    return x + 1


@program(F)
def assert_false_raises(x):
    assert x.shape[0] == 4, "expected 4"
    return x


@program(F)
def exception_in_helper_caught_by_caller(x):
    def helper(v):
        if v.dim() == 1:
            raise ValueError("one dim")
        return v
    try:
        return helper(x)
    except ValueError:
        return x.unsqueeze(0)


@program(F)
def loop_with_try_continue(x):
    total = x * 0
    for i in range(4):
        try:
            if i % 2:
                raise ValueError(i)
            total = total + i
        except ValueError:
            continue
    return total


@program(F)
def stop_iteration_from_next(x):
    it = iter([x])
    first = next(it)
    try:
        next(it)
    except StopIteration:
        return first * 2
    return first


@program(F)
def next_with_default(x):
    it = iter([])
    return x + next(it, 4)


@program(F)
def raise_type_error_from_call(x):
    def f(a, b):
        return a + b
    try:
        return f(x)
    except TypeError:
        return x


@program(F)
def exception_str_and_repr(x):
    e = KeyError("k")
    return x + len(repr(e)) + len(str(e))


def except_then_tensor_ops_after(x, y):
    try:
        z = x @ y
    except RuntimeError as e:
        z = x * y
        note = "mismatch" in str(e) or True
    return z.sum() + note


program(F, inputs=lambda: (torch.randn(3), torch.randn(4)), name="except_then_tensor_ops_after_shapes")(
    except_then_tensor_ops_after)

"""Turn real Python values read from the frame into trackers, guarding what we rely on.

Every value reached through a source gets the guards that make our use of it valid
on later calls: a constant's value, a container's type and length, a module's or
function's identity, a tensor's metadata.
"""
from __future__ import annotations

import collections
import enum
import functools
import os
import types

import torch

from capture.exc import Unsupported
from capture.sources import AttrSource, ItemSource
from capture.variables.constant import ConstantVariable, is_literal
from guards import GuardKind


def wrap_constant_result(value):
    """Tracker for a value computed at trace time (no source, so no guards)."""
    from capture.variables.dicts import DictVariable
    from capture.variables.lists import ListVariable, TupleVariable
    if type(value) is torch.Size:
        return TupleVariable([ConstantVariable(v) for v in value], tuple_type=torch.Size)
    if type(value) is tuple:
        return TupleVariable([wrap_constant_result(v) for v in value])
    if type(value) is list:
        return ListVariable([wrap_constant_result(v) for v in value])
    if type(value) is dict:
        return DictVariable({k: wrap_constant_result(v) for k, v in value.items()})
    if isinstance(value, tuple) and hasattr(type(value), "_fields"):
        return TupleVariable([wrap_constant_result(v) for v in value], tuple_type=type(value))
    if isinstance(value, types.CodeType) or is_literal(value) or isinstance(value, enum.Enum):
        return ConstantVariable(value)
    if isinstance(value, (torch.finfo, torch.iinfo)):
        return ConstantVariable(value)
    raise Unsupported(f"value of type {type(value).__name__} computed while tracing")


def _key_has_literal_repr(key) -> bool:
    if type(key) in (str, int, bytes, type(None)):
        return True
    if type(key) is float:
        return key == key and key not in (float("inf"), float("-inf"))
    return type(key) is tuple and all(_key_has_literal_repr(k) for k in key)


def wrap(tx, value, source):
    """Tracker for ``value`` read through ``source`` (None: no guards, e.g. builtins)."""
    from capture.variables.builtin import BuiltinVariable, is_supported_builtin
    from capture.variables.functions import UserFunctionVariable, UserMethodVariable
    from capture.variables.lists import ListVariable, TupleVariable
    from capture.variables.dicts import DictVariable
    from capture.variables.misc import PythonModuleVariable
    from capture.variables.nn_module import NNModuleVariable, unwrap_compiled_module
    from capture.variables.torch import TorchFunctionVariable, is_torch_callable
    from capture.variables.user_object import ClassVariable, UserObjectVariable

    out = tx.output

    def guard(kind, expected):
        if source is not None:
            out.add_guard(tx, kind, source, expected)

    if isinstance(value, torch.Tensor):
        if source is None:
            raise Unsupported("tensor reached without a source")
        return out.tensor_input(tx, source, value)
    if value is os.environ:
        from capture.variables.misc import EnvironVariable
        guard(GuardKind.IDENTITY, value)
        return EnvironVariable(source)
    vtype = type(value)
    if vtype in (int, float, bool, str, bytes, complex, type(None), range, slice, type(Ellipsis),
                 torch.dtype, torch.device, torch.memory_format, torch.layout, frozenset) \
            or isinstance(value, enum.Enum):
        guard(GuardKind.IDENTITY if vtype in (torch.dtype, torch.memory_format, torch.layout)
              or isinstance(value, enum.Enum) or value is Ellipsis else GuardKind.CONSTANT, value)
        return ConstantVariable(value, source)
    if vtype is set and all(is_literal(v) for v in value):
        from capture.variables.sets import SetVariable
        guard(GuardKind.CONSTANT, set(value))
        return SetVariable(value, source)
    if vtype in (torch.finfo, torch.iinfo):
        return ConstantVariable(value, source)
    if vtype in (list, dict, collections.OrderedDict) and source is not None:
        known = out.side_effects.tracked(value)
        if known is not None:
            return known  # the same object read again (or through an alias): same state
    if vtype in (tuple, list, torch.Size) or (isinstance(value, tuple) and hasattr(vtype, "_fields")):
        guard(GuardKind.TYPE, vtype)
        guard(GuardKind.LENGTH, len(value))
        items = [wrap(tx, v, ItemSource(source, i) if source is not None else None) for i, v in enumerate(value)]
        if vtype is list:
            return out.side_effects.track(value, ListVariable(items, source)) if source is not None \
                else ListVariable(items, source)
        return TupleVariable(items, source, tuple_type=None if vtype is tuple else vtype)
    if vtype in (dict, collections.OrderedDict):
        if not all(_key_has_literal_repr(k) for k in value):
            raise Unsupported("dict with keys that have no literal form (guards index it by key)")
        guard(GuardKind.TYPE, vtype)
        guard(GuardKind.DICT_KEYS, tuple(value))
        items = {k: wrap(tx, v, ItemSource(source, k) if source is not None else None) for k, v in value.items()}
        vt = DictVariable(items, source, dict_type=vtype)
        return out.side_effects.track(value, vt) if source is not None else vt
    if isinstance(value, torch.nn.Module):
        guard(GuardKind.IDENTITY, value)
        inner = unwrap_compiled_module(value)
        if inner is not value:
            return NNModuleVariable(inner, AttrSource(source, "_orig_mod") if source is not None else None)
        return NNModuleVariable(value, source)
    compiled_inner = getattr(value, "_capture_original", None)
    if compiled_inner is not None and callable(value):
        guard(GuardKind.IDENTITY, value)
        return wrap(tx, compiled_inner, AttrSource(source, "_capture_original") if source is not None else None)
    if is_supported_builtin(value):
        guard(GuardKind.IDENTITY, value)
        return BuiltinVariable(value)
    if is_torch_callable(value):
        guard(GuardKind.IDENTITY, value)
        return TorchFunctionVariable(value)
    if isinstance(value, types.FunctionType):
        guard(GuardKind.IDENTITY, value)
        return UserFunctionVariable(value, source)
    if isinstance(value, types.MethodType):
        func_source = AttrSource(source, "__func__") if source is not None else None
        self_source = AttrSource(source, "__self__") if source is not None else None
        func_vt = wrap(tx, value.__func__, func_source)
        self_vt = wrap(tx, value.__self__, self_source)
        return UserMethodVariable(func_vt, self_vt)
    if isinstance(value, types.ModuleType):
        guard(GuardKind.IDENTITY, value)
        return PythonModuleVariable(value, source)
    if isinstance(value, type):
        guard(GuardKind.IDENTITY, value)
        return ClassVariable(value, source)
    from capture.variables.ctx_manager import GradModeExit, _GradModeRestorer
    if type(value) is _GradModeRestorer:  # a grad-mode block's exit handed to a resume function
        guard(GuardKind.IDENTITY, value)
        return GradModeExit(value.mode)
    if type(value) is functools.partial:
        from capture.variables.functions import PartialVariable
        guard(GuardKind.TYPE, vtype)
        sub = (lambda attr: AttrSource(source, attr)) if source is not None else (lambda attr: None)
        func = wrap(tx, value.func, sub("func"))
        args = [wrap(tx, a, ItemSource(sub("args"), i) if source is not None else None)
                for i, a in enumerate(value.args)]
        if source is not None:
            guard_len = AttrSource(source, "args")
            out.add_guard(tx, GuardKind.LENGTH, guard_len, len(value.args))
            out.add_guard(tx, GuardKind.DICT_KEYS, AttrSource(source, "keywords"), tuple(value.keywords))
        keywords = {k: wrap(tx, v, ItemSource(sub("keywords"), k) if source is not None else None)
                    for k, v in value.keywords.items()}
        return PartialVariable(func, args, keywords, source)
    if isinstance(value, (types.GeneratorType, types.CoroutineType)):
        raise Unsupported(f"value of type {vtype.__name__}")
    if isinstance(value, (types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType,
                          types.MethodDescriptorType)):
        # Refused only when called, so the break lands on the CALL and can resume.
        from capture.variables.misc import OpaqueCallableVariable
        guard(GuardKind.IDENTITY, value)
        return OpaqueCallableVariable(value, source)
    guard(GuardKind.TYPE, vtype)
    return UserObjectVariable(value, source)

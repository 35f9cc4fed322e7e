"""nn.Module instances: attribute reads, containers, and calls.

Modules defined by torch itself (nn.Linear, nn.Conv2d, nn.LSTM, ...) are called as
single ``call_module`` nodes: their forward runs as written, reading the module's
current state, so nothing inside needs guarding. User modules have ``forward``
inlined, and each attribute they read is guarded.
"""
from __future__ import annotations

import inspect
import types

from torch import nn

from capture.exc import MissingAttribute, Unsupported
from capture.skipfiles import is_torch_file
from capture.variables import builder
from capture.variables.base import VariableTracker
from capture.variables.constant import ConstantVariable, is_literal
from capture.variables.functions import UserFunctionVariable, UserMethodVariable
from capture.variables.iterators import ListIteratorVariable
from capture.variables.lists import ListVariable, TupleVariable
from capture.variables.tensor import TensorVariable
from capture.variables.type_lookup import lookup_on_type
from capture.variables.user_object import ClassVariable, inline_property
from guards import GuardKind, TensorSpec
from guards.module_hooks import (BACKWARD_HOOK_TABLES, FLAG_TABLES, FORWARD_HOOKS, FORWARD_PRE_HOOKS, HOOK_TABLES,
                                 global_module_hook_count, hooks_present)
from guards.sources import AttrSource, ItemSource, ModuleMemberSource, TypeSource

CONTAINERS = (nn.Sequential, nn.ModuleList, nn.ModuleDict, nn.ParameterList, nn.ParameterDict)


def unwrap_compiled_module(module):
    inner = getattr(module, "_capture_orig_mod", None)
    return inner if inner is not None else module


def _defined_in_torch(fn) -> bool:
    code = getattr(fn, "__code__", None)
    return code is not None and is_torch_file(code.co_filename)


# torch.nn modules whose forward is traced like user code: their parameters become
# graph inputs held by identity and their bodies F.* nodes, so a call costs what the
# functional op costs and every attribute it reads is guarded. Other torch modules
# (LSTM, MultiheadAttention, BatchNorm, ...) stay one opaque graph op.
INLINED_TORCH_MODULES = (
    nn.Linear, nn.Bilinear, nn.Identity, nn.Flatten, nn.Unflatten,
    nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout,
    nn.ReLU, nn.ReLU6, nn.GELU, nn.SiLU, nn.Mish, nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardswish,
    nn.Hardsigmoid, nn.LeakyReLU, nn.ELU, nn.SELU, nn.CELU, nn.Softplus, nn.Softsign, nn.Tanhshrink,
    nn.Softmax, nn.LogSoftmax, nn.LayerNorm, nn.GroupNorm, nn.RMSNorm, nn.Embedding,
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
    nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
)
_INLINED_FORWARDS = frozenset(cls.forward for cls in INLINED_TORCH_MODULES)


def is_leaf_module(module) -> bool:
    if isinstance(module, CONTAINERS) or type(module).forward in _INLINED_FORWARDS:
        return False
    return _defined_in_torch(type(module).forward)


class NNModuleVariable(VariableTracker):
    def __init__(self, module: nn.Module, source=None):
        self.module = module
        self.source = source

    def python_type(self):
        return type(self.module)

    def underlying(self):
        return self.module

    def truth(self, tx):
        if isinstance(self.module, CONTAINERS):
            return self.call_method(tx, "__len__", [], {}).value > 0
        return True

    def __repr__(self):
        return f"NNModuleVariable({type(self.module).__name__})"

    # ---- members ----
    def _member(self, tx, table: str, name: str):
        value = getattr(self.module, table)[name]
        src = ModuleMemberSource(self.source, table, name) if self.source is not None else None
        return builder.wrap(tx, value, src)

    def var_getattr(self, tx, name):
        m = self.module
        d = m.__dict__
        stored = tx.output.side_effects.load_attr(m, name)
        if stored is not None:
            return stored
        cls_vt = ClassVariable(type(m), TypeSource(self.source) if self.source is not None else None)
        if name == "__class__":
            return cls_vt
        if name in d:
            return builder.wrap(tx, d[name], AttrSource(self.source, name) if self.source is not None else None)
        for table in ("_parameters", "_buffers", "_modules"):
            if name in d.get(table, ()):
                return self._member(tx, table, name)
        try:
            attr = lookup_on_type(type(m), name)
        except AttributeError:
            if type(m).__getattr__ is not nn.Module.__getattr__:
                raise Unsupported(f"custom __getattr__ on {type(m).__name__}") from None
            raise MissingAttribute(f"{type(m).__name__} has no attribute {name!r}") from None
        if isinstance(attr, staticmethod):
            return builder.wrap(tx, attr.__func__, None)
        if isinstance(attr, classmethod):
            return UserMethodVariable(UserFunctionVariable(attr.__func__), cls_vt)
        if isinstance(attr, property):
            return inline_property(tx, attr, self)
        if isinstance(attr, types.FunctionType):
            if vars(nn.Module).get(name) is attr:
                return ModuleBuiltinMethod(self, name)
            return UserMethodVariable(UserFunctionVariable(attr), self)
        if hasattr(type(attr), "__get__") and not isinstance(attr, (type, types.FunctionType)):
            raise Unsupported(f"descriptor {type(attr).__name__} for module attribute {name!r}")
        return builder.wrap(tx, attr, AttrSource(self.source, name) if self.source is not None else None)

    def store_attr(self, tx, name, value):
        m = self.module
        if isinstance(value, NNModuleVariable) or name in m._modules or name in m._parameters:
            raise Unsupported(f"assigning module or parameter {name!r} inside forward")
        if not isinstance(value, TensorVariable) and name in m._buffers and not (
                value.is_python_constant() and value.as_python_constant() is None):
            raise Unsupported(f"assigning a non-tensor to buffer {name!r}")
        if type(m).__setattr__ is not nn.Module.__setattr__:
            raise Unsupported(f"custom __setattr__ on {type(m).__name__}")
        tx.output.side_effects.store_attr(m, self, name, value)

    # ---- containers ----
    def _guard_members(self, tx, table: str):
        """Iterating, indexing or len() of a container depends on its member names."""
        if self.source is not None:
            tx.output.add_guard(tx, GuardKind.DICT_KEYS, AttrSource(self.source, table),
                                tuple(getattr(self.module, table)))

    def _children(self, tx) -> list:
        self._guard_members(tx, "_modules")
        return [self._member(tx, "_modules", k) for k in self.module._modules]

    def iter_items(self, tx):
        m = self.module
        if isinstance(m, (nn.Sequential, nn.ModuleList)):
            return self._children(tx)
        if isinstance(m, nn.ModuleDict):
            self._guard_members(tx, "_modules")
            return [ConstantVariable(k) for k in m._modules]
        if isinstance(m, nn.ParameterList):
            self._guard_members(tx, "_parameters")
            return [self._member(tx, "_parameters", k) for k in m._parameters]
        if isinstance(m, nn.ParameterDict):
            self._guard_members(tx, "_parameters")
            return [ConstantVariable(k) for k in m._parameters]
        raise Unsupported(f"iteration over {type(m).__name__}")

    def getitem(self, tx, key):
        m = self.module
        k = key.as_python_constant()
        if isinstance(m, (nn.Sequential, nn.ModuleList, nn.ParameterList)):
            table = "_parameters" if isinstance(m, nn.ParameterList) else "_modules"
            self._guard_members(tx, table)
            keys = list(getattr(m, table))
            if isinstance(k, slice):
                items = [self._member(tx, table, name) for name in keys[k]]
                if isinstance(m, (nn.Sequential, nn.ModuleList)):
                    return ContainerSlice(items, type(m))
                return ListVariable(items)
            try:
                return self._member(tx, table, keys[k])
            except IndexError:
                raise Unsupported(f"index {k} out of range for {type(m).__name__}") from None
        if isinstance(m, (nn.ModuleDict, nn.ParameterDict)):
            table = "_parameters" if isinstance(m, nn.ParameterDict) else "_modules"
            if k not in getattr(m, table):
                raise Unsupported(f"KeyError {k!r} in {type(m).__name__}")
            return self._member(tx, table, k)
        return self.call_method(tx, "__getitem__", [key], {})

    def contains(self, tx, item):
        if isinstance(self.module, (nn.ModuleDict, nn.ParameterDict)):
            self._guard_members(tx, "_parameters" if isinstance(self.module, nn.ParameterDict) else "_modules")
            return item.as_python_constant() in self.module
        raise Unsupported(f"'in' on {type(self.module).__name__}")

    def call_method(self, tx, name, args, kwargs):
        m = self.module
        if name == "__len__" and isinstance(m, CONTAINERS):
            self._guard_members(tx, "_parameters" if isinstance(m, (nn.ParameterList, nn.ParameterDict)) else "_modules")
            return ConstantVariable(len(m))
        if name == "__getitem__" and isinstance(m, CONTAINERS):
            return self.getitem(tx, args[0])
        return self.var_getattr(tx, name).call(tx, args, kwargs)

    # ---- calls ----
    def call(self, tx, args, kwargs):
        m = self.module
        if global_module_hook_count():
            raise Unsupported("global nn.Module hooks are registered")
        tx.output.guard_no_global_hooks()
        if self.source is None:
            if is_leaf_module(m) or hooks_present(m):
                raise Unsupported(f"{type(m).__name__} reached without a source cannot be guarded")
        elif hooks_present(m):
            return self._call_with_hooks(tx, args, kwargs)
        else:
            tx.output.add_guard(tx, GuardKind.NO_HOOKS, self.source, None)
        return self._call_forward(tx, args, kwargs)

    def _call_with_hooks(self, tx, args, kwargs):
        """What nn.Module.__call__ does around forward: pre-hooks may replace the
        inputs, forward hooks the output. Each hook is a user function, inlined."""
        m = self.module
        if any(getattr(m, t, None) for t in BACKWARD_HOOK_TABLES + FLAG_TABLES):
            raise Unsupported(f"{type(m).__name__} has backward or keyword hooks")
        for table in HOOK_TABLES:
            tx.output.add_guard(tx, GuardKind.DICT_KEYS, AttrSource(self.source, table), tuple(getattr(m, table)))
        args = list(args)
        for hook in self._hooks(tx, FORWARD_PRE_HOOKS):
            result = hook.call(tx, [self, TupleVariable(args)], {})
            if not (result.is_python_constant() and result.as_python_constant() is None):
                args = list(result.iter_items(tx)) if isinstance(result, TupleVariable) else [result]
        output = self._call_forward(tx, args, kwargs)
        for hook in self._hooks(tx, FORWARD_HOOKS):
            result = hook.call(tx, [self, TupleVariable(args), output], {})
            if not (result.is_python_constant() and result.as_python_constant() is None):
                output = result
        return output

    def _hooks(self, tx, table: str) -> list:
        hooks = getattr(self.module, table)
        return [builder.wrap(tx, fn, ItemSource(AttrSource(self.source, table), key)) for key, fn in hooks.items()]

    def _call_forward(self, tx, args, kwargs):
        m = self.module
        if isinstance(m, nn.Sequential) and not kwargs and len(args) == 1:
            value = args[0]
            for child in self._children(tx):
                value = child.call(tx, [value], {})
            return value
        if is_leaf_module(m):
            if self.source is not None:
                _guard_leaf_state(tx, m, self.source)
            return tx.output.call_module(tx, m, args, kwargs)
        forward = type(m).forward
        # with a source, what forward's closure and defaults hold can be guarded
        # (e.g. a decorator's closed-over modules whose id() forward reads)
        src = AttrSource(TypeSource(self.source), "forward") if self.source is not None else None
        return UserFunctionVariable(forward, src).call(tx, [self] + list(args), kwargs)


def _guard_leaf_state(tx, module: nn.Module, source):
    """A leaf's forward runs on the live module, but the graph after it was traced on
    the module's current parameters, buffers and settings (output shapes, dtypes): guard
    them all. Behind the dict watch this costs one check while nothing changes."""
    out = tx.output
    for name, value in module.__dict__.items():
        if is_literal(value):
            builder.wrap(tx, value, AttrSource(source, name))
    for name, p in module._parameters.items():
        member = ModuleMemberSource(source, "_parameters", name)
        if p is None:
            out.add_guard(tx, GuardKind.CONSTANT, member, None)
            continue
        out.guard_parameter(tx, member, p)
    for name, b in module._buffers.items():
        member = ModuleMemberSource(source, "_buffers", name)
        if b is None:
            out.add_guard(tx, GuardKind.CONSTANT, member, None)
        else:
            out.add_guard(tx, GuardKind.TENSOR, member, TensorSpec.of(b))
    out.add_guard(tx, GuardKind.DICT_KEYS, AttrSource(source, "_modules"), tuple(module._modules))
    for name, child in module._modules.items():
        member = ModuleMemberSource(source, "_modules", name)
        if child is None:
            out.add_guard(tx, GuardKind.CONSTANT, member, None)
        else:
            out.add_guard(tx, GuardKind.IDENTITY, member, child)
            _guard_leaf_state(tx, child, member)


class ModuleBuiltinMethod(VariableTracker):
    """A method nn.Module itself defines (parameters(), children(), ...)."""

    def __init__(self, module_vt: NNModuleVariable, name: str):
        self.module_vt = module_vt
        self.name = name

    def children(self):
        return (self.module_vt,)

    def reconstruct(self, cg):
        return f"{cg.reconstruct(self.module_vt)}.{self.name}"

    def call(self, tx, args, kwargs):
        mv, name = self.module_vt, self.name
        m = mv.module
        if args or any(k not in ("recurse", "prefix", "remove_duplicate") for k in kwargs):
            raise Unsupported(f"nn.Module.{name} with arguments")
        kw = {k: v.as_python_constant() for k, v in kwargs.items()}
        if name in ("parameters", "named_parameters", "buffers", "named_buffers"):
            table = "_parameters" if "param" in name else "_buffers"
            pairs = getattr(m, "named_" + name.replace("named_", ""))(**kw)
            items = [(n, self._path(tx, n, table)) for n, _ in pairs]
        elif name in ("children", "named_children"):
            items = [(n, mv._member(tx, "_modules", n)) for n, _ in m.named_children()]
        elif name in ("modules", "named_modules"):
            items = [(n, self._path(tx, n, "_modules") if n else mv) for n, _ in m.named_modules(**kw)]
        elif name == "__len__" and isinstance(m, CONTAINERS):
            return ConstantVariable(len(m))
        else:
            raise Unsupported(f"nn.Module.{name}() inside a compiled function")
        if name.startswith("named_"):
            return ListIteratorVariable([TupleVariable([ConstantVariable(n), v]) for n, v in items])
        return ListIteratorVariable([v for _, v in items])

    def _path(self, tx, dotted: str, table: str):
        module, source = self.module_vt.module, self.module_vt.source
        *parents, leaf = dotted.split(".")
        for part in parents:
            module = module._modules[part]
            source = ModuleMemberSource(source, "_modules", part) if source is not None else None
        value = getattr(module, table)[leaf]
        return builder.wrap(tx, value, ModuleMemberSource(source, table, leaf) if source is not None else None)


class ContainerSlice(VariableTracker):
    """``seq[a:b]`` of an nn.Sequential or nn.ModuleList: a container of the same type
    in eager, so iterable, indexable, and (for Sequential) callable."""

    def __init__(self, items: list, container_type: type):
        self.items = items
        self.container_type = container_type

    def python_type(self):
        return self.container_type

    def children(self):
        return tuple(self.items)

    def truth(self, tx):
        return bool(self.items)

    def iter_items(self, tx):
        return list(self.items)

    def call_method(self, tx, name, args, kwargs):
        if name == "__len__":
            return ConstantVariable(len(self.items))
        if name == "__getitem__":
            return self.getitem(tx, args[0])
        raise Unsupported(f"method {name} of a sliced {self.container_type.__name__}")

    def getitem(self, tx, key):
        k = key.as_python_constant()
        return ContainerSlice(self.items[k], self.container_type) if isinstance(k, slice) else self.items[k]

    def call(self, tx, args, kwargs):
        if self.container_type is not nn.Sequential:
            raise Unsupported("calling a ModuleList")
        if kwargs or len(args) != 1:
            raise Unsupported("calling a sliced nn.Sequential with several inputs")
        value = args[0]
        for child in self.items:
            value = child.call(tx, [value], {})
        return value


@builder.wraps(builder.Order.MODULE, lambda v: isinstance(v, nn.Module))
def _wrap_module(tx, value, source):
    local = tx.output.local_tracker(value)
    if local is not None:  # built in this trace (capture/variables/new_module.py)
        return local
    if source is not None and tx.output.module_by_structure(source, value) and not is_leaf_module(value):
        builder.guard(tx, source, GuardKind.TYPE, type(value))  # instances of the class share the entry
    else:
        builder.guard(tx, source, GuardKind.IDENTITY, value)
    inner = unwrap_compiled_module(value)
    if inner is not value:
        return NNModuleVariable(inner, AttrSource(source, "_orig_mod") if source is not None else None)
    return NNModuleVariable(value, source)

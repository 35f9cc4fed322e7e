"""Classes, instances of user classes (incl. dataclasses and namedtuples), and C
callables found on them."""
from __future__ import annotations

import collections
import functools
import inspect
import types

import torch

from capture import runtime
from capture.exc import MissingAttribute, TracedRaise, Unsupported
from capture.variables import builder
from capture.variables.autograd_function import AutogradFunctionApplyVariable, is_autograd_function
from capture.variables.base import BoundMethodOf, KnownObjectMixin, VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.dicts import DictVariable, FromKeysVariable
from capture.variables.functions import UserFunctionVariable, UserMethodVariable
from capture.variables.type_lookup import lookup_on_type
from guards import GuardKind
from guards.sources import AttrSource, DictContentSource, GenericAttrSource, TypeSource, dict_part


def inline_property(tx, prop: property, self_vt):
    if prop.fget is None:
        raise Unsupported("property without getter")
    if getattr(prop.fget, "__code__", None) is None:
        raise Unsupported(f"property implemented in C: {prop.fget}")
    return UserFunctionVariable(prop.fget).call(tx, [self_vt], {})


def class_member(tx, cls, name, self_vt, source):
    """Look ``name`` up on ``cls`` the way attribute access on an instance would."""
    attr = lookup_on_type(cls, name)
    if isinstance(attr, staticmethod):
        return builder.wrap(tx, attr.__func__, None)
    if isinstance(attr, classmethod):  # cls reached as type(self): what it reads is guarded
        cls_source = TypeSource(self_vt.source) if self_vt.source is not None else getattr(self_vt, "cls_source", None)
        return UserMethodVariable(UserFunctionVariable(attr.__func__), ClassVariable(cls, cls_source))
    if isinstance(attr, property):
        return inline_property(tx, attr, self_vt)
    if isinstance(attr, functools.cached_property) and isinstance(self_vt, (NewObjectVariable, UserObjectVariable)):
        value = UserFunctionVariable(attr.func).call(tx, [self_vt], {})
        self_vt.generic_setattr(tx, attr.attrname, value)  # computed once: the instance keeps it
        return value
    if isinstance(attr, types.FunctionType):
        return UserMethodVariable(UserFunctionVariable(attr), self_vt)
    if isinstance(attr, (types.MethodDescriptorType, types.WrapperDescriptorType, types.BuiltinFunctionType,
                         types.ClassMethodDescriptorType)) and isinstance(self_vt, UserObjectVariable):
        return OpaqueCallableVariable(getattr(self_vt.value, name), source)  # a break if called
    if hasattr(attr, "__get__") and not isinstance(attr, (int, float, str, bool, type(None), tuple)):
        raise Unsupported(f"descriptor {type(attr).__name__} for attribute {name!r}")
    return builder.wrap(tx, attr, source)


def _plain_class(cls) -> bool:
    return (type(cls) is type and cls.__new__ is object.__new__
            and not issubclass(cls, (torch.nn.Module, BaseException, torch.Tensor, dict, list, tuple, set))
            and cls.__getattribute__ is object.__getattribute__)


def _is_slot(static) -> bool:
    """A ``__slots__`` entry: storage in the instance, not a descriptor with behaviour."""
    return isinstance(static, types.MemberDescriptorType)


class ClassVariable(KnownObjectMixin, VariableTracker):
    _value_attr = "cls"

    def __init__(self, cls: type, source=None):
        self.cls = cls
        self.source = source

    def var_getattr(self, tx, name):
        stored = tx.output.side_effects.load_attr(self.cls, name)
        if stored is not None:
            return stored
        if name in ("__name__", "__qualname__", "__module__"):
            return ConstantVariable(getattr(self.cls, name))
        if name == "fromkeys" and self.cls in (collections.OrderedDict, collections.defaultdict):
            return FromKeysVariable(self.cls)
        if name == "apply" and is_autograd_function(self.cls):
            return AutogradFunctionApplyVariable(self.cls, AttrSource(self.source, name) if self.source else None)
        try:
            attr = inspect.getattr_static(self.cls, name)
        except AttributeError:
            raise MissingAttribute(f"class {self.cls.__name__} has no attribute {name!r}") from None
        if isinstance(attr, classmethod):
            return UserMethodVariable(UserFunctionVariable(attr.__func__), self)
        if isinstance(attr, staticmethod):
            return builder.wrap(tx, attr.__func__, None)
        source = AttrSource(self.source, name) if self.source is not None else None
        return builder.wrap(tx, getattr(self.cls, name), source)

    def call(self, tx, args, kwargs):
        return builder.construct(tx, self.cls, args, kwargs, cls_source=self.source)

    def store_attr(self, tx, name, value):
        """``cls.name = value``: replayed onto the class after the graph; a class made by
        this trace (private to it) is changed at once."""
        if type(type(self.cls).__setattr__) is not types.WrapperDescriptorType:
            raise Unsupported(f"setting attribute {name!r} on a class whose metaclass defines __setattr__")
        if tx.output.is_local_object(self.cls) and value.is_python_constant():
            setattr(self.cls, name, value.as_python_constant())
            return
        tx.output.side_effects.store_attr(self.cls, self, name, value)

    def reconstruct(self, cg):
        return cg.source_expr(self.source) if self.source is not None else cg.object_ref(self.cls)

    def __repr__(self):
        return f"ClassVariable({self.cls.__qualname__})"


# dict's read methods, answered for a dict subclass from a guarded copy of its dict part
# (writes through them are not supported)
DICT_READS = {"get", "__getitem__", "__contains__", "keys", "values", "items", "__len__"}


def _generic_getattribute(getattribute) -> bool:
    """object's attribute lookup (builtin containers inherit the same C function)."""
    return getattribute is object.__getattribute__ or (
        type(getattribute).__name__ == "wrapper_descriptor"
        and getattribute.__objclass__ in (dict, list, tuple, set, frozenset, int, float, str))


def _instance_dict(obj) -> dict | None:
    """The object's own ``__dict__``, not what a custom ``__getattribute__`` says it is."""
    try:
        d = object.__getattribute__(obj, "__dict__")
    except AttributeError:
        return None
    return d if isinstance(d, dict) else None


class UserObjectVariable(VariableTracker):
    """An instance of a user class that existed before the frame."""

    def __init__(self, value, source=None):
        self.value = value
        self.source = source

    def python_type(self):
        return type(self.value)

    def underlying(self):
        return self.value

    def truth(self, tx):
        cls = type(self.value)
        if hasattr(cls, "__bool__") or hasattr(cls, "__len__"):
            raise Unsupported(f"truth value of {cls.__name__} (custom __bool__/__len__)")
        return True

    def var_getattr(self, tx, name):
        cls = type(self.value)
        getattribute = lookup_on_type(cls, "__getattribute__")
        if not _generic_getattribute(getattribute):
            if isinstance(getattribute, types.FunctionType):  # e.g. configs that alias names
                return UserFunctionVariable(getattribute).call(tx, [self, ConstantVariable(name)], {})
            raise Unsupported(f"custom __getattribute__ on {cls.__name__}")
        return self.generic_getattr(tx, name)

    def dict_method(self, tx, name, attr):
        """``obj.name`` when ``attr`` (what the class chain holds for it) is one of dict's own
        read methods: answered from a guarded copy of the dict part, else None."""
        if getattr(attr, "__objclass__", None) not in (dict, collections.OrderedDict) or name not in DICT_READS:
            return None
        if not isinstance(self.value, dict) or self.source is None:
            raise Unsupported(f"dict methods of a {type(self.value).__name__} without a source")
        if name == "__getitem__" and hasattr(type(self.value), "__missing__"):
            # a missing key calls __missing__ (Counter: 0, defaultdict: a new entry), not KeyError
            raise Unsupported(f"indexing a {type(self.value).__name__} (its __missing__ decides missing keys)")
        return BoundMethodOf(builder.wrap(tx, dict_part(self.value), DictContentSource(self.source)), name)

    def generic_getattr(self, tx, name):
        """Attribute lookup as object.__getattribute__ does it."""
        cls = type(self.value)
        if name == "__class__":
            return ClassVariable(cls, TypeSource(self.source) if self.source is not None else None)
        stored = tx.output.side_effects.load_attr(self.value, name)
        if stored is not None:
            return stored
        src = None
        if self.source is not None:
            plain = _generic_getattribute(lookup_on_type(cls, "__getattribute__"))
            src = AttrSource(self.source, name) if plain else GenericAttrSource(self.source, name)
        try:
            static = lookup_on_type(cls, name)
        except AttributeError:
            static = None
        instance_dict = _instance_dict(self.value)
        if name == "__dict__" and type(static).__name__ == "getset_descriptor" and instance_dict is not None:
            if tx.output.side_effects.has_pending_attrs(self.value):
                raise Unsupported(f"reading __dict__ of a {cls.__name__} after setting its attributes")
            if src is not None:  # pins which dict the guards below read (and roots the dict watch)
                src = GenericAttrSource(self.source, "__dict__")
                tx.output.add_guard(tx, GuardKind.IDENTITY, src, instance_dict)
            return builder.wrap(tx, instance_dict, src)  # the instance dict, tracked like any dict
        is_data_descriptor = static is not None and hasattr(type(static), "__set__")
        instance_dict = instance_dict or {}
        dict_vt = tx.output.side_effects.tracked(instance_dict) if instance_dict else None
        if dict_vt is not None and not is_data_descriptor:  # __dict__ was read: it holds the state
            if dict_vt.contains_key(name):
                return dict_vt.getitem(tx, ConstantVariable(name))
        elif not is_data_descriptor and name in instance_dict:
            return builder.wrap(tx, instance_dict[name], src)
        if static is not None:
            if type(static).__name__ == "member_descriptor":
                return builder.wrap(tx, getattr(self.value, name), src)
            method = self.dict_method(tx, name, static)
            if method is not None:
                return method
            return class_member(tx, cls, name, self, src)
        if hasattr(cls, "__getattr__"):
            raise Unsupported(f"custom __getattr__ on {cls.__name__}")
        raise MissingAttribute(f"{cls.__name__!r} object has no attribute {name!r}")

    def store_attr(self, tx, name, value):
        setattr_fn = lookup_on_type(type(self.value), "__setattr__")
        if isinstance(setattr_fn, types.FunctionType):  # a Python __setattr__: follow it
            UserFunctionVariable(setattr_fn).call(tx, [self, ConstantVariable(name), value], {})
            return
        if setattr_fn is not object.__setattr__:
            raise Unsupported(f"setting attribute {name!r} on a {type(self.value).__name__} (custom __setattr__)")
        self.generic_setattr(tx, name, value)

    def generic_setattr(self, tx, name, value):
        """``object.__setattr__``: a plain store into the instance dict."""
        cls = type(self.value)
        static = lookup_on_type(cls, name, None)
        if static is not None and hasattr(type(static), "__set__"):
            raise Unsupported(f"assignment through descriptor {name!r} of an object that existed before the frame")
        instance_dict = _instance_dict(self.value)
        if instance_dict is None:
            raise Unsupported(f"setting attribute {name!r} on a {cls.__name__} (no __dict__)")
        dict_vt = tx.output.side_effects.tracked(instance_dict)
        if dict_vt is not None:  # __dict__ was read: keep one view of the state
            dict_vt.call_method(tx, "__setitem__", [ConstantVariable(name), value], {})
            return
        tx.output.side_effects.store_attr(self.value, self, name, value)

    def call(self, tx, args, kwargs):
        cls = type(self.value)
        call = lookup_on_type(cls, "__call__", None)
        if isinstance(call, types.FunctionType):
            return UserFunctionVariable(call).call(tx, [self] + list(args), kwargs)
        raise Unsupported(f"calling a {cls.__name__} object")

    def __repr__(self):
        return f"UserObjectVariable({type(self.value).__name__})"


class NewObjectVariable(VariableTracker):
    """An instance of a user class created while tracing; its attributes are trackers."""

    frame_object = True

    def __init__(self, cls: type, cls_source=None):
        self.cls = cls
        self.cls_source = cls_source  # where the class was read: class attributes are guarded through it
        self.attrs: dict = {}

    def python_type(self):
        return self.cls

    def children(self):
        return tuple(self.attrs.values())

    def truth(self, tx):
        if hasattr(self.cls, "__bool__") or hasattr(self.cls, "__len__"):
            raise Unsupported(f"truth value of {self.cls.__name__} (custom __bool__/__len__)")
        return True

    def var_getattr(self, tx, name):
        if name == "__class__":
            return ClassVariable(self.cls, self.cls_source)
        try:
            static = lookup_on_type(self.cls, name)
        except AttributeError:
            static = None
        if name in self.attrs and not (static is not None and hasattr(type(static), "__set__")
                                       and not _is_slot(static)):
            return self.attrs[name]
        if _is_slot(static):
            raise MissingAttribute(f"'{self.cls.__name__}' object has no attribute {name!r}")
        if static is not None:
            source = AttrSource(self.cls_source, name) if self.cls_source is not None else None
            return class_member(tx, self.cls, name, self, source)
        if hasattr(self.cls, "__getattr__"):
            raise Unsupported(f"custom __getattr__ on {self.cls.__name__}")
        raise MissingAttribute(f"{self.cls.__name__!r} object has no attribute {name!r}")

    def static_getattr(self, tx, name):
        """``inspect.getattr_static(obj, name)``: the instance's own attribute unless a data
        descriptor on the class shadows it (no descriptor, no ``__getattr__`` runs)."""
        marker = object()
        static = lookup_on_type(self.cls, name, marker)
        shadowed = static is not marker and hasattr(type(static), "__set__") and not _is_slot(static)
        if name in self.attrs and not shadowed:
            return self.attrs[name]
        if static is marker:
            raise MissingAttribute(f"{name!r}")
        raise Unsupported(f"inspect.getattr_static of the class attribute {self.cls.__name__}.{name}")

    def instance_dict(self):
        """``vars(obj)``: a dict tracker over the very attributes (writes through it are stores)."""
        if "__dict__" not in dir(self.cls):
            raise TracedRaise(TypeError("vars() argument must have __dict__ attribute"))
        view = DictVariable({})
        view.items = self.attrs  # shared, not copied
        return view

    def delete_attr(self, tx, name):
        static = lookup_on_type(self.cls, name, None)
        if static is not None and hasattr(type(static), "__delete__") and not _is_slot(static):
            raise Unsupported(f"deleting {name!r} through a descriptor")
        if name not in self.attrs:
            raise TracedRaise(AttributeError(name))
        del self.attrs[name]

    def store_attr(self, tx, name, value):
        static = lookup_on_type(self.cls, name, None)
        if isinstance(static, property) and static.fset is not None and hasattr(static.fset, "__code__"):
            UserFunctionVariable(static.fset).call(tx, [self, value], {})
            return
        if static is not None and hasattr(type(static), "__set__") and not _is_slot(static):
            raise Unsupported(f"assignment through descriptor {name!r}")
        setattr_fn = lookup_on_type(self.cls, "__setattr__")
        if isinstance(setattr_fn, types.FunctionType):  # a Python __setattr__ (a frozen dataclass's ...)
            UserFunctionVariable(setattr_fn).call(tx, [self, ConstantVariable(name), value], {})
            return
        if setattr_fn is not object.__setattr__:
            raise Unsupported(f"custom __setattr__ on {self.cls.__name__}")
        self.generic_setattr(tx, name, value)

    def generic_setattr(self, tx, name, value):
        """``object.__setattr__``: a plain store (into the instance dict or a slot)."""
        if not _is_slot(lookup_on_type(self.cls, name, None)) and "__dict__" not in dir(self.cls):
            raise TracedRaise(AttributeError(f"'{self.cls.__name__}' object has no attribute {name!r}"))
        self.attrs[name] = value

    def call(self, tx, args, kwargs):
        call = lookup_on_type(self.cls, "__call__", None)
        if isinstance(call, types.FunctionType):
            return UserFunctionVariable(call).call(tx, [self] + list(args), kwargs)
        raise Unsupported(f"calling a {self.cls.__name__} object")

    def reconstruct(self, cg):
        attrs = "{" + ", ".join(f"{k!r}: {cg.reconstruct(v)}" for k, v in self.attrs.items()) + "}"
        return f"{cg.runtime_ref(runtime.build_object)}({cg.object_ref(self.cls)}, {attrs})"

    def __repr__(self):
        return f"NewObjectVariable({self.cls.__name__})"


class OpaqueCallableVariable(KnownObjectMixin, VariableTracker):
    """A C function we cannot trace (time.time, sys.stdout.write, ...): fine to load,
    pass around and return; calling it is a graph break."""

    def __init__(self, fn, source=None):
        self.fn = fn
        self.source = source

    def call(self, tx, args, kwargs):
        if self.fn is object.__getattribute__ and len(args) == 2 and not kwargs \
                and isinstance(args[0], UserObjectVariable) and args[1].is_python_constant():
            return args[0].generic_getattr(tx, args[1].as_python_constant())
        raise Unsupported(f"call to C function {getattr(self.fn, '__qualname__', self.fn)}")

    def reconstruct(self, cg):
        return cg.source_expr(self.source) if self.source is not None else cg.object_ref(self.fn)


# ---- how real values become classes and objects, and what calling a class makes ----

@builder.wraps(builder.Order.CLASS, lambda v: isinstance(v, type))
def _wrap_class(tx, value, source):
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return ClassVariable(value, source)


_C_CALLABLES = (types.BuiltinFunctionType, types.MethodWrapperType, types.WrapperDescriptorType,
                types.MethodDescriptorType)


@builder.wraps(builder.Order.OBJECT, lambda v: isinstance(v, _C_CALLABLES))
def _wrap_c_callable(tx, value, source):
    # refused only when called, so the break lands on the CALL and can resume
    builder.guard(tx, source, GuardKind.IDENTITY, value)
    return OpaqueCallableVariable(value, source)


@builder.wraps(builder.Order.FALLBACK, lambda v: True)
def _wrap_object(tx, value, source):
    builder.guard(tx, source, GuardKind.TYPE, type(value))
    return UserObjectVariable(value, source)


@builder.constructs(builder.Order.FALLBACK, _plain_class, takes_source=True)
def construct_plain_object(tx, cls, args, kwargs, cls_source=None):
    obj = NewObjectVariable(cls, cls_source)
    run_init(tx, cls, obj, args, kwargs, object.__init__)
    return obj


def run_init(tx, cls, obj, args, kwargs, base_init) -> None:
    """Trace ``cls.__init__(obj, *args, **kwargs)`` on a tracked object made in the frame;
    ``base_init`` (object's or nn.Module's, already applied) takes no arguments."""
    init = lookup_on_type(cls, "__init__")
    if init is not base_init:
        if not isinstance(init, types.FunctionType):
            raise Unsupported(f"{cls.__name__}.__init__ is not a Python function")
        UserFunctionVariable(init).call(tx, [obj] + list(args), kwargs)
    elif args or kwargs:
        raise Unsupported(f"{cls.__name__}() takes no arguments")

"""nn.Module instances created inside a compiled function (``act = nn.ReLU()``,
``Block(4)`` of a user class, a module class defined in the frame).

The object is made for real as a bare module: ``object.__new__(cls)`` and
``nn.Module.__init__`` (which only sets up the module's own tables: no parameters, no
effects), private to the trace (``OutputGraph.local_objects``: it never leaves the
frame). The class's own ``__init__`` is then traced with a ``NewModuleVariable`` as
``self``: submodules built in the frame go into the real module's ``_modules`` (so
containers, ``children()`` and ``modules()`` work on it as they are; reading one back
gives its tracker), other values (tensors, settings) are kept as trackers -- its
``forward``, inlined like any user module's, reads them; the parameter and buffer
tables, which do not hold them, may not be read.
Parameters created inside the frame are refused (eager makes new ones with fresh
random values on every call).
"""
from __future__ import annotations

import types

from torch import nn

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.base import BoundMethodOf
from capture.variables.constant import ConstantVariable
from capture.variables.misc import NoOpInit
from capture.variables.nn_module import NNModuleVariable
from capture.variables.tensor import TensorVariable
from capture.variables.type_lookup import lookup_on_type
from capture.variables.user_object import run_init


_TABLES = ("_parameters", "_buffers", "__dict__")  # not kept up to date (only _modules is)
_READS_SUBMODULES = ("children", "named_children", "modules", "named_modules")
_REGISTER = ("register_buffer", "add_module", "register_module")  # stores, as __setattr__ makes them


class NewModuleVariable(NNModuleVariable):
    frame_object = True

    def __init__(self, module: nn.Module, cls_source=None):
        super().__init__(module, source=None)
        self.cls_source = cls_source
        self.attrs: dict = {}  # what the traced code stored on it (nn.Module.__setattr__)

    def children(self):
        return tuple(self.attrs.values())

    def var_getattr(self, tx, name):
        if name in self.attrs:
            return self.attrs[name]
        if name in _REGISTER:
            return BoundMethodOf(self, name)
        if name in _TABLES or (isinstance(vars(nn.Module).get(name), types.FunctionType)
                               and name not in _READS_SUBMODULES):
            # the real module's tables do not hold what the traced code stored on it
            raise Unsupported(f"{name} of a module built inside the compiled frame")
        return super().var_getattr(tx, name)

    def call_method(self, tx, name, args, kwargs):
        if name in _REGISTER and len(args) == 2 and set(kwargs) <= {"persistent"}:
            if not args[0].is_python_constant():
                raise Unsupported(f"{name} with a non-constant name")
            self.store_attr(tx, args[0].as_python_constant(), args[1])
            return ConstantVariable(None)
        return super().call_method(tx, name, args, kwargs)

    def store_attr(self, tx, name, value):
        if type(self.module).__setattr__ is not nn.Module.__setattr__:
            raise Unsupported(f"custom __setattr__ on {type(self.module).__name__}")
        if isinstance(value, TensorVariable) and issubclass(value.python_type(), nn.Parameter):
            raise Unsupported(f"a parameter {name!r} assigned to a module built inside the compiled frame")
        if isinstance(lookup_on_type(type(self.module), name, None), property):
            raise Unsupported(f"assigning {name!r} through a property of a module")
        submodules = self.module._modules
        if isinstance(value, NewModuleVariable):  # a real submodule of the (private) real module,
            submodules[name] = value.module       # so its containers and children() see it
            self.attrs.pop(name, None)
            return
        if isinstance(value, NNModuleVariable):
            raise Unsupported(f"a module that existed before the frame stored on one built inside it")
        submodules.pop(name, None)
        self.attrs[name] = value

    def delete_attr(self, tx, name):
        if name not in self.attrs:
            raise Unsupported(f"deleting {name!r} of a module built inside the compiled frame")
        del self.attrs[name]

    def base_method(self, tx, name, attr):
        if name == "__init__" and attr is nn.Module.__init__:
            return NoOpInit(takes_arguments=False)  # nn.Module.__init__ already ran on the bare module
        return None

    def __repr__(self):
        return f"NewModuleVariable({type(self.module).__name__})"


def _constructible(cls) -> bool:
    return isinstance(cls, type) and issubclass(cls, nn.Module) and cls.__new__ is object.__new__ \
        and type(cls) is type


@builder.constructs(builder.Order.MODULE, _constructible, takes_source=True)
def _construct_module(tx, cls, args, kwargs, cls_source=None):
    if lookup_on_type(cls, "__call__") is not nn.Module.__call__:
        raise Unsupported(f"{cls.__name__} overrides __call__")
    shell = object.__new__(cls)
    nn.Module.__init__(shell)
    vt = NewModuleVariable(shell, cls_source)
    tx.output.add_local_object(shell, tracker=vt)  # read back (as a submodule) as this tracker
    run_init(tx, cls, vt, args, kwargs, nn.Module.__init__)
    return vt


"""Loads and stores of locals, globals, cells and attributes."""
from __future__ import annotations

import sys

from capture.exc import Unsupported
from capture.variables.base import NullVariable
from capture.variables.builder import wrap, wrap_constant_result
from capture.variables.cells import CellBox
from capture.variables.class_builder import BuildClassVariable
from capture.variables.dicts import DictVariable
from capture.variables.constant import ConstantVariable
from guards.sources import GlobalSource


# Modules whose attributes are functions and constants that do not change at run
# time, so an import inside a compiled function can be resolved while tracing.
SAFE_IMPORTS = {"math", "operator", "torch", "functools", "itertools", "collections", "typing",
                "dataclasses", "numbers", "enum"}


class LoadStoreOps:
    def LOAD_CONST(self, inst):
        self.push(wrap_constant_result(inst.argval))

    def LOAD_FAST(self, inst):
        name = inst.argval
        if name not in self.symbolic_locals:
            raise Unsupported(f"local {name!r} read before assignment")
        self.push(self.symbolic_locals[name])

    def STORE_FAST(self, inst):
        self.symbolic_locals[inst.argval] = self.pop()

    def DELETE_FAST(self, inst):
        self.symbolic_locals.pop(inst.argval, None)

    def LOAD_GLOBAL(self, inst):
        if inst.arg & 1:
            self.push(NullVariable())
        self.push(self.load_global(inst.argval))

    def load_global(self, name: str):
        if name in self.f_globals:
            return wrap(self, self.f_globals[name], self.global_source(name))
        if name in self.f_builtins:
            # A global defined later would shadow this builtin: guard its absence.
            self.output.guard_global_absent(name, self)
            return wrap(self, self.f_builtins[name], None)
        raise Unsupported(f"name {name!r} is not defined")

    def global_source(self, name: str) -> GlobalSource:
        if self.f_globals is self.output.f_globals:
            return GlobalSource(name)
        module_name = self.f_globals.get("__name__")
        module = sys.modules.get(module_name)
        if module is None or vars(module) is not self.f_globals:
            raise Unsupported(f"global {name!r} of a function whose module is not imported")
        return GlobalSource(name, module_name)

    # ---- a class body's namespace (capture/variables/class_builder.py) ----
    def LOAD_NAME(self, inst):
        name = inst.argval
        if name in self.symbolic_locals:
            self.push(self.symbolic_locals[name])
        else:
            self.push(self.load_global(name))

    def STORE_NAME(self, inst):
        self.symbolic_locals[inst.argval] = self.pop()

    def DELETE_NAME(self, inst):
        if self.symbolic_locals.pop(inst.argval, None) is None:
            raise Unsupported(f"del of undefined name {inst.argval!r}")

    def SETUP_ANNOTATIONS(self, inst):
        if "__annotations__" not in self.symbolic_locals:
            self.symbolic_locals["__annotations__"] = DictVariable({})

    def LOAD_BUILD_CLASS(self, inst):
        self.push(BuildClassVariable())

    def STORE_GLOBAL(self, inst):
        raise Unsupported(f"assignment to global {inst.argval!r}")

    def MAKE_CELL(self, inst):
        name = inst.argval
        self.cells[name] = CellBox.new(self.symbolic_locals.pop(name, None))

    def COPY_FREE_VARS(self, inst):
        pass  # free cells were set up when this translator was made

    def LOAD_CLOSURE(self, inst):
        self.push(self.cells[inst.argval])

    def LOAD_DEREF(self, inst):
        self.push(self.cells[inst.argval].load(self))

    def LOAD_CLASSDEREF(self, inst):
        if inst.argval in self.symbolic_locals:  # a class body's own name shadows the cell
            self.push(self.symbolic_locals[inst.argval])
        else:
            self.LOAD_DEREF(inst)

    def STORE_DEREF(self, inst):
        self.cells[inst.argval].store(self, self.pop())

    def DELETE_DEREF(self, inst):
        raise Unsupported("del of a closure variable")

    def LOAD_ATTR(self, inst):
        obj = self.pop()
        if inst.argval == "__class__":  # what type(obj) is, for every kind of value
            self.push(self.call_builtin(type, obj))
            return
        self.push(obj.var_getattr(self, inst.argval))

    def LOAD_METHOD(self, inst):
        obj = self.pop()
        # Push (NULL, bound attribute): CALL treats it like any callable.
        self.push(NullVariable())
        self.push(obj.var_getattr(self, inst.argval))

    def STORE_ATTR(self, inst):
        obj = self.pop()
        value = self.pop()
        self.call_builtin(setattr, obj, ConstantVariable(inst.argval), value)

    def DELETE_ATTR(self, inst):
        obj = self.pop()
        self.call_builtin(delattr, obj, ConstantVariable(inst.argval))

    def LOAD_ASSERTION_ERROR(self, inst):
        self.push(wrap(self, AssertionError, None))

    def IMPORT_NAME(self, inst):
        fromlist = self.pop().as_python_constant()
        level = self.pop().as_python_constant()
        name = inst.argval
        if level != 0 or name.split(".")[0] not in SAFE_IMPORTS or name not in sys.modules:
            raise Unsupported(f"import of {name!r} inside a compiled function")
        module = sys.modules[name]
        if not fromlist and "." in name:
            module = sys.modules[name.split(".")[0]]
        self.push(wrap(self, module, None))

    def IMPORT_FROM(self, inst):
        module = self.peek()
        self.push(module.var_getattr(self, inst.argval))

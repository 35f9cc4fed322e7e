"""Calls and function creation."""
from __future__ import annotations

from capture.exc import Unsupported
from capture.variables.base import NullVariable
from capture.variables.functions import NestedFunctionVariable


class CallOps:
    def PRECALL(self, inst):
        pass

    def KW_NAMES(self, inst):
        self.kw_names = self.code.co_consts[inst.arg]

    def CALL(self, inst):
        n = inst.arg
        args = self.popn(n)
        self_or_fn = self.pop()
        fn_or_null = self.pop()
        if isinstance(fn_or_null, NullVariable):
            fn = self_or_fn
        else:
            fn, args = fn_or_null, [self_or_fn] + args
        kwargs = {}
        if self.kw_names:
            names = self.kw_names
            kw_values = args[len(args) - len(names):]
            args = args[:len(args) - len(names)]
            kwargs = dict(zip(names, kw_values))
        self.kw_names = None
        self.push(fn.call(self, args, kwargs))

    def CALL_FUNCTION_EX(self, inst):
        kwargs_vt = self.pop() if inst.arg & 1 else None
        args_vt = self.pop()
        fn = self.pop()
        null = self.pop()
        if not isinstance(null, NullVariable):
            raise Unsupported("CALL_FUNCTION_EX without NULL")
        args = args_vt.iter_items(self)
        kwargs = {}
        if kwargs_vt is not None:
            kwargs = {k: v for k, v in kwargs_vt.str_items(self)}
        self.push(fn.call(self, list(args), kwargs))

    def MAKE_FUNCTION(self, inst):
        flags = inst.arg
        code = self.pop().as_python_constant()
        closure = self.pop() if flags & 0x08 else None
        annotations = self.pop() if flags & 0x04 else None  # read only through __annotations__
        kwdefaults = self.pop() if flags & 0x02 else None
        defaults = self.pop() if flags & 0x01 else None
        self.push(NestedFunctionVariable(code, self.f_globals, defaults, kwdefaults, closure, annotations))

"""Stack shuffling, operators, comparisons and subscripts."""
from __future__ import annotations

import operator

from capture.exc import Unsupported
from capture.variables.base import NullVariable
from capture.variables.builtin import BuiltinVariable
from capture.variables.constant import ConstantVariable
from capture.variables.sym import SymNodeVariable

# BINARY_OP's argument indexes this table (CPython 3.11 NB_* order); in-place forms
# follow at +13.
BINARY_OPS = [operator.add, operator.and_, operator.floordiv, operator.lshift, operator.matmul,
              operator.mul, operator.mod, operator.or_, operator.pow, operator.rshift,
              operator.sub, operator.truediv, operator.xor]
INPLACE_OPS = [operator.iadd, operator.iand, operator.ifloordiv, operator.ilshift, operator.imatmul,
               operator.imul, operator.imod, operator.ior, operator.ipow, operator.irshift,
               operator.isub, operator.itruediv, operator.ixor]
COMPARE_OPS = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
               ">": operator.gt, ">=": operator.ge}


class StackOps:
    def NOP(self, inst):
        pass

    def RESUME(self, inst):
        pass

    def EXTENDED_ARG(self, inst):
        pass

    def CACHE(self, inst):
        pass

    def POP_TOP(self, inst):
        self.pop()

    def PUSH_NULL(self, inst):
        self.push(NullVariable())

    def COPY(self, inst):
        self.push(self.peek(inst.arg))

    def SWAP(self, inst):
        i = inst.arg
        self.stack[-1], self.stack[-i] = self.stack[-i], self.stack[-1]

    def BINARY_OP(self, inst):
        b = self.pop()
        a = self.pop()
        table = BINARY_OPS if inst.arg < 13 else INPLACE_OPS
        self.push(self.call_builtin(table[inst.arg % 13], a, b))

    def UNARY_NEGATIVE(self, inst):
        self.push(self.call_builtin(operator.neg, self.pop()))

    def UNARY_POSITIVE(self, inst):
        self.push(self.call_builtin(operator.pos, self.pop()))

    def UNARY_INVERT(self, inst):
        self.push(self.call_builtin(operator.invert, self.pop()))

    def UNARY_NOT(self, inst):
        self.push(ConstantVariable(not self.truth(self.pop())))

    def COMPARE_OP(self, inst):
        b = self.pop()
        a = self.pop()
        self.push(self.call_builtin(COMPARE_OPS[inst.argval], a, b))

    def IS_OP(self, inst):
        b = self.pop()
        a = self.pop()
        self.push(self.call_builtin(operator.is_not if inst.arg else operator.is_, a, b))

    def CONTAINS_OP(self, inst):
        container = self.pop()
        item = self.pop()
        found = self.call_builtin(operator.contains, container, item)
        if inst.arg:
            found = ConstantVariable(not self.truth(found))
        self.push(found)

    def BINARY_SUBSCR(self, inst):
        key = self.pop()
        obj = self.pop()
        self.push(self.call_builtin(operator.getitem, obj, key))

    def STORE_SUBSCR(self, inst):
        key = self.pop()
        obj = self.pop()
        value = self.pop()
        self.call_builtin(operator.setitem, obj, key, value)

    def DELETE_SUBSCR(self, inst):
        key = self.pop()
        obj = self.pop()
        self.call_builtin(operator.delitem, obj, key)

    def GET_LEN(self, inst):
        self.push(self.call_builtin(len, self.peek()))

    def FORMAT_VALUE(self, inst):
        flags = inst.arg
        spec = self.pop().as_python_constant() if flags & 0x04 else ""
        value = self.pop()
        if isinstance(value, SymNodeVariable):
            value = ConstantVariable(value.as_number(self, "formatting a size into a string needs its value"))
        if not value.is_python_constant():
            raise Unsupported(f"formatting {value} into a string")
        v = value.as_python_constant()
        conversion = flags & 0x03
        if conversion == 1:
            v = str(v)
        elif conversion == 2:
            v = repr(v)
        elif conversion == 3:
            v = ascii(v)
        self.push(ConstantVariable(format(v, spec)))

    # shared helpers used by several families
    def call_builtin(self, fn, *args):
        return BuiltinVariable(fn).call(self, list(args), {})

    def truth(self, value) -> bool:
        return value.truth(self)

"""Building and unpacking tuples, lists, dicts, sets, slices and strings."""
from __future__ import annotations

from capture.exc import Unsupported
from capture.variables.constant import ConstantVariable
from capture.variables.dicts import DictVariable
from capture.variables.lists import ListVariable, TupleVariable
from capture.variables.sets import SetVariable
from capture.variables.sym import SliceVariable, SymNodeVariable


class BuildOps:
    def BUILD_TUPLE(self, inst):
        self.push(TupleVariable(self.popn(inst.arg)))

    def BUILD_LIST(self, inst):
        self.push(ListVariable(self.popn(inst.arg)))

    def BUILD_SET(self, inst):
        self.push(SetVariable.from_items(self, self.popn(inst.arg)))

    def BUILD_MAP(self, inst):
        items = self.popn(2 * inst.arg)
        d = DictVariable({})
        for k, v in zip(items[::2], items[1::2]):
            d.setitem(self, k, v)
        self.push(d)

    def BUILD_CONST_KEY_MAP(self, inst):
        keys = self.pop().as_python_constant()
        values = self.popn(inst.arg)
        d = DictVariable({})
        for k, v in zip(keys, values):
            d.setitem(self, ConstantVariable(k), v)
        self.push(d)

    def BUILD_STRING(self, inst):
        parts = self.popn(inst.arg)
        self.push(ConstantVariable("".join(p.as_python_constant() for p in parts)))

    def BUILD_SLICE(self, inst):
        parts = self.popn(inst.arg)
        if all(p.is_python_constant() or isinstance(p, SymNodeVariable) for p in parts) and not all(
                p.is_python_constant() for p in parts):
            self.push(SliceVariable(parts))
            return
        if not all(p.is_python_constant() for p in parts):
            raise Unsupported("slice with non-constant bounds")
        self.push(ConstantVariable(slice(*[p.as_python_constant() for p in parts])))

    def LIST_APPEND(self, inst):
        value = self.pop()
        self.peek(inst.arg).call_method(self, "append", [value], {})

    def LIST_EXTEND(self, inst):
        value = self.pop()
        self.peek(inst.arg).call_method(self, "extend", [value], {})

    def LIST_TO_TUPLE(self, inst):
        self.push(TupleVariable(list(self.pop().iter_items(self))))

    def SET_ADD(self, inst):
        value = self.pop()
        self.peek(inst.arg).call_method(self, "add", [value], {})

    def SET_UPDATE(self, inst):
        value = self.pop()
        self.peek(inst.arg).call_method(self, "update", [value], {})

    def MAP_ADD(self, inst):
        value = self.pop()
        key = self.pop()
        self.peek(inst.arg).setitem(self, key, value)

    def DICT_UPDATE(self, inst):
        other = self.pop()
        self.peek(inst.arg).call_method(self, "update", [other], {})

    def DICT_MERGE(self, inst):
        other = self.pop()
        target = self.peek(inst.arg)
        for k, _ in other.str_items(self):
            if target.contains_key(k):
                raise Unsupported(f"duplicate keyword argument {k!r}")
        target.call_method(self, "update", [other], {})

    def UNPACK_SEQUENCE(self, inst):
        items = list(self.pop().iter_items(self))
        if len(items) != inst.arg:
            raise Unsupported(f"unpacking {len(items)} values into {inst.arg}")
        for item in reversed(items):
            self.push(item)

    def UNPACK_EX(self, inst):
        before, after = inst.arg & 0xFF, inst.arg >> 8
        items = list(self.pop().iter_items(self))
        if len(items) < before + after:
            raise Unsupported("not enough values to unpack")
        middle = ListVariable(items[before:len(items) - after])
        for item in reversed(items[len(items) - after:]):
            self.push(item)
        self.push(middle)
        for item in reversed(items[:before]):
            self.push(item)

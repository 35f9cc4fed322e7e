"""Jumps, loops (unrolled), generators and raising."""
from __future__ import annotations

from capture.exc import Unsupported
from capture.variables.constant import ConstantVariable
from capture.variables.with_exit import enter_context
from capture.variables.generators import GeneratorYield
from capture.variables.iterators import ListIteratorVariable


class ControlOps:
    def _jump_if(self, inst, jump_when: bool, pop_always: bool = True):
        value = self.pop()
        if self.truth(value) == jump_when:
            if not pop_always:
                self.push(value)
            self.jump_to(inst.argval)

    def POP_JUMP_FORWARD_IF_TRUE(self, inst):
        self._jump_if(inst, True)

    def POP_JUMP_FORWARD_IF_FALSE(self, inst):
        self._jump_if(inst, False)

    def POP_JUMP_BACKWARD_IF_TRUE(self, inst):
        self._jump_if(inst, True)

    def POP_JUMP_BACKWARD_IF_FALSE(self, inst):
        self._jump_if(inst, False)

    def JUMP_IF_TRUE_OR_POP(self, inst):
        self._jump_if(inst, True, pop_always=False)

    def JUMP_IF_FALSE_OR_POP(self, inst):
        self._jump_if(inst, False, pop_always=False)

    def _jump_if_none(self, inst, jump_when_none: bool):
        value = self.pop()
        is_none = value.is_python_constant() and value.as_python_constant() is None
        if is_none == jump_when_none:
            self.jump_to(inst.argval)

    def POP_JUMP_FORWARD_IF_NONE(self, inst):
        self._jump_if_none(inst, True)

    def POP_JUMP_FORWARD_IF_NOT_NONE(self, inst):
        self._jump_if_none(inst, False)

    def POP_JUMP_BACKWARD_IF_NONE(self, inst):
        self._jump_if_none(inst, True)

    def POP_JUMP_BACKWARD_IF_NOT_NONE(self, inst):
        self._jump_if_none(inst, False)

    def JUMP_FORWARD(self, inst):
        self.jump_to(inst.argval)

    def JUMP_BACKWARD(self, inst):
        self.jump_to(inst.argval)

    def JUMP_BACKWARD_NO_INTERRUPT(self, inst):
        self.jump_to(inst.argval)

    def GET_ITER(self, inst):
        self.push(self.call_builtin(iter, self.pop()))

    def FOR_ITER(self, inst):
        it = self.peek()
        if not isinstance(it, ListIteratorVariable):
            raise Unsupported(f"iteration over {it}")
        item = it.next_item(self)
        if item is None:
            self.pop()
            self.jump_to(inst.argval)
        else:
            self.push(item)

    def RETURN_GENERATOR(self, inst):
        if not self.generator:
            raise Unsupported("generator function")
        self.push(ConstantVariable(None))

    def YIELD_VALUE(self, inst):
        if not self.generator:
            raise Unsupported("yield")
        raise GeneratorYield(self.pop())  # run() returns; resuming pushes the value sent in

    def GET_YIELD_FROM_ITER(self, inst):
        raise Unsupported("yield from")

    def BEFORE_WITH(self, inst):
        exit_fn, entered = enter_context(self, self.pop())
        self.push(exit_fn)
        self.push(entered)

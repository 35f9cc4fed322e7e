"""raise, try/except/finally and with-block exits: the exception handling opcodes.

A traced ``raise`` (or an exception Python raises on traced constants) unwinds like
CPython's: ``raise_to_handler`` looks the raising instruction up in the code's
exception table, cuts the stack to the handler's depth, pushes the exception and
jumps; the handler's PUSH_EXC_INFO / CHECK_EXC_MATCH / POP_EXCEPT / RERAISE run here
too. With no handler in this code the exception leaves ``run()`` as ``TracedRaise``
and the caller's translator (an inlined call) handles it at its CALL instruction.
"""
from __future__ import annotations

from capture.exc import TracedRaise, Unsupported
from capture.exception_table import exception_entries
from capture.variables.constant import ConstantVariable
from capture.variables.exceptions import ExceptionVariable, as_exception
from capture.variables.user_object import ClassVariable


class ExceptionOps:
    def handler_covers(self, inst) -> bool:
        """Whether a try/with handler of this code covers ``inst``."""
        return any(start <= inst.offset < end for start, end, *_ in exception_entries(self.code))

    def raise_to_handler(self, raised: TracedRaise) -> bool:
        """Continue at the handler covering the current instruction; False if none."""
        if isinstance(raised.exc, BaseException):  # raised by Python on traced constants
            raised.exc = ExceptionVariable.from_exception(raised.exc)
        offset = self.current.offset
        for start, end, target, depth, lasti in exception_entries(self.code):
            if start <= offset < end:
                del self.stack[depth:]
                if lasti:
                    self.push(ConstantVariable(offset))
                self.push(raised.exc)
                self.jump_to(target)
                return True
        return False

    def RAISE_VARARGS(self, inst):
        if inst.arg == 0:
            if not self.exc_stack:
                raise TracedRaise(ExceptionVariable(RuntimeError, [ConstantVariable("No active exception to reraise")]))
            raise TracedRaise(self.exc_stack[-1])
        cause = self.pop() if inst.arg == 2 else None
        exc = as_exception(self, self.pop())
        if cause is not None:
            if cause.is_python_constant() and cause.as_python_constant() is None:
                exc.cause = ConstantVariable(None)
            else:
                exc.cause = as_exception(self, cause)
        raise TracedRaise(exc)

    def PUSH_EXC_INFO(self, inst):
        exc = self.pop()
        self.push(self.exc_stack[-1] if self.exc_stack else ConstantVariable(None))
        self.exc_stack.append(exc)
        self.push(exc)

    def POP_EXCEPT(self, inst):
        self.pop()  # the exception handled before this one (restored as "current")
        if self.exc_stack:
            self.exc_stack.pop()

    def CHECK_EXC_MATCH(self, inst):
        wanted = self.pop()
        exc = self.peek()
        if not wanted.is_python_constant():
            raise Unsupported(f"except clause with {wanted}")
        classes = wanted.as_python_constant()
        self.push(ConstantVariable(issubclass(exc.python_type(), classes)))

    def RERAISE(self, inst):
        exc = self.pop()
        if not isinstance(exc, ExceptionVariable):
            raise Unsupported(f"re-raising {exc}")
        raise TracedRaise(exc)

    def WITH_EXCEPT_START(self, inst):
        exit_fn = self.stack[-4]
        exc = self.peek()
        self.push(exit_fn.call(self, [ClassVariable(exc.python_type()), exc, ConstantVariable(None)], {}))

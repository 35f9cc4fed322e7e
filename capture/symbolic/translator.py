"""The core loop of the symbolic interpreter and the state it walks with.

Opcode handlers live in mixins grouped by family (``ops_*.py``); each is a method
named exactly after its opcode. A translator runs one code object: the frame being
compiled, or a function inlined into it (``parent`` set).
"""
from __future__ import annotations

import dataclasses
import dis
import types

from capture import config
from capture.exc import MissingAttribute, TracedRaise, Unsupported
from capture.skipfiles import is_user_file
from capture.symbolic.ops_build import BuildOps
from capture.symbolic.ops_call import CallOps
from capture.symbolic.ops_control import ControlOps
from capture.symbolic.ops_exceptions import ExceptionOps
from capture.symbolic.ops_load_store import LoadStoreOps
from capture.symbolic.ops_stack import StackOps
from capture.variables.base import VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.exceptions import ExceptionVariable
from capture.variables.generators import GeneratorYield, Yielded


class _Return(Exception):
    """Unwinds the loop when RETURN_VALUE runs."""

    def __init__(self, value):
        self.value = value


@dataclasses.dataclass(frozen=True)
class Stopped:
    """What ``run`` returns when the root frame reached the instruction chosen for a
    graph break (``break_at``), before running it."""

    inst: dis.Instruction


def code_location(code: types.CodeType, lineno: int | None) -> str:
    return f"{code.co_filename}:{lineno if lineno is not None else code.co_firstlineno}"


class InstructionTranslator(StackOps, LoadStoreOps, CallOps, BuildOps, ControlOps, ExceptionOps):
    def __init__(self, code: types.CodeType, f_globals: dict, output, symbolic_locals: dict,
                 cells: dict, parent: "InstructionTranslator | None" = None,
                 generator: bool = False, func_name: str | None = None):
        self.code = code
        self.f_globals = f_globals
        builtins_obj = f_globals.get("__builtins__", __builtins__)
        self.f_builtins = builtins_obj if isinstance(builtins_obj, dict) else vars(builtins_obj)
        self.output = output
        self.symbolic_locals = symbolic_locals
        self.cells = cells  # name -> CellBox (cell and free variables)
        self.parent = parent
        self.depth = 0 if parent is None else parent.depth + 1
        self.generator = generator  # a generator's body: run() returns a Yielded at each yield
        self.func_name = func_name or code.co_name
        self.stack: list = []
        self.exc_stack: list = []  # exceptions being handled (innermost last), as CPython's exc_info
        self.kw_names: tuple | None = None
        self.instructions = list(dis.get_instructions(code))
        self.index_of_offset = {inst.offset: i for i, inst in enumerate(self.instructions)}
        self.ip = 0
        self.break_at: int | None = None  # instruction index to stop at (root frame only)
        self.current: dis.Instruction | None = None
        if self.depth > config.max_inline_depth:
            raise Unsupported(f"inlining deeper than {config.max_inline_depth} calls (recursion?)")

    # ---- stack helpers ----
    def push(self, value: VariableTracker):
        assert isinstance(value, VariableTracker), value
        self.stack.append(value)

    def pop(self) -> VariableTracker:
        return self.stack.pop()

    def popn(self, n: int) -> list:
        if n == 0:
            return []
        items = self.stack[-n:]
        del self.stack[-n:]
        return items

    def peek(self, depth: int = 1) -> VariableTracker:
        return self.stack[-depth]

    # ---- where we are, for error messages and guards ----
    def lineno(self) -> int | None:
        inst = self.current
        if inst is not None and inst.positions is not None and inst.positions.lineno is not None:
            return inst.positions.lineno
        return None

    def location(self) -> str:
        return code_location(self.code, self.lineno())

    def jump_to(self, offset: int):
        self.ip = self.index_of_offset[offset]

    def inlined(self, code: types.CodeType, f_globals: dict, symbolic_locals: dict, cells: dict,
                generator: bool = False, func_name: str | None = None) -> "InstructionTranslator":
        """A translator for a function called from this one (its body is inlined)."""
        return InstructionTranslator(code, f_globals, self.output, symbolic_locals, cells, parent=self,
                                     generator=generator, func_name=func_name)

    # ---- the loop ----
    def run(self) -> VariableTracker | Stopped | Yielded:
        """Interpret until RETURN_VALUE and return what it returned, until ``break_at``, or
        (a generator's body) until a yield; run again to resume after it."""
        try:
            while True:
                index = self.ip
                inst = self.instructions[index]
                self.current = inst
                if index == self.break_at:
                    return Stopped(inst)
                self.ip += 1
                self.output.count_instruction()
                handler = getattr(self, inst.opname, None)
                try:
                    if handler is None:
                        raise Unsupported(f"opcode {inst.opname} is not supported yet")
                    self._step(handler, inst)
                except Unsupported as e:
                    if self.parent is None and e.root_index is None:
                        e.root_index = index
                    raise e.located(self.location(), is_user_file(self.code.co_filename))
        except _Return as r:
            return r.value
        except GeneratorYield as y:
            return Yielded(y.value)

    def _step(self, handler, inst):
        """Run one handler; an exception the traced code raised goes to its handler."""
        try:
            try:
                handler(inst)
            except MissingAttribute as e:  # what AttributeError means, with Python's text
                raise TracedRaise(ExceptionVariable(AttributeError, [ConstantVariable(e.reason)]),
                                  synthesized=True) from None
        except TracedRaise as raised:
            if self.raise_to_handler(raised):
                return
            if self.parent is None and raised.synthesized:
                raise Unsupported(f"{raised.exc.cls.__name__} raised by traced code, not caught in the frame "
                                  f"(Python raises its own)") from None
            raise

    def RETURN_VALUE(self, inst):
        raise _Return(self.pop())

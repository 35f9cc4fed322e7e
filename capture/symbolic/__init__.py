"""The symbolic bytecode interpreter: one handler per CPython 3.11 opcode."""
from capture.symbolic.translator import InstructionTranslator

__all__ = ["InstructionTranslator"]

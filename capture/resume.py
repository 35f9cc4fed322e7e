"""Bytecode for graph breaks: resume functions and bridges.

At a break the rewritten frame runs the graph captured so far, rebuilds the stack
and live locals, and calls a *bridge*: a small code object that runs the one
instruction we could not trace, natively, and then calls a *resume function*: the
rest of the original code from the following instruction, taking the stack and
the live locals as arguments. The hook captures resume functions like any other
frame; bridges are marked to run as they are. All of them keep the user's function
name, file and lines, so tracebacks and debuggers show the user's code; what each one
continues is in ``origin_of`` (reports and dumps name them by ``Origin.label``).

Stack slots holding the NULL that CPython 3.11 keeps under some callables cannot be
passed as arguments; such slots are listed in ``layout`` and pushed back with
PUSH_NULL.
"""
from __future__ import annotations

import dataclasses
import dis
import types
import weakref

from bytecode import Bytecode, CellVar, FreeVar, Instr, Label, TryBegin, TryEnd

from capture import _C
from capture.exception_table import exception_entries
from capture.state import ORIGINS, RESUME_CODES

VALUE, NULL = "value", "null"
_CO_VARARGS, _CO_VARKEYWORDS = 0x04, 0x08
_PROLOGUE_OPS = {"MAKE_CELL", "COPY_FREE_VARS", "RESUME", "NOP"}


@dataclasses.dataclass(frozen=True)
class Layout:
    """The stack (bottom first: VALUE or NULL per slot) and the locals handed over."""

    stack: tuple
    local_names: tuple

    def stack_args(self) -> list[str]:
        return [f"__stack{i}" for i, kind in enumerate(self.stack) if kind == VALUE]

    def arg_names(self) -> list[str]:
        # Locals first: zero-arg super() reads the frame's first local (self).
        return list(self.local_names) + self.stack_args()


@dataclasses.dataclass(frozen=True)
class Origin:
    """What a code object made for a break continues: ``kind`` is "resume", "break" (a
    bridge) or "eager_tail"; ``original`` a weak reference to the user's code."""

    kind: str
    original: weakref.ref
    offset: int

    @property
    def label(self) -> str:
        code = self.original()
        name = code.co_name.strip("<>") if code is not None else "?"
        return f"__{self.kind}_{name}_at_{self.offset}"

    def root(self) -> types.CodeType | None:
        """The user's own code this continues (through resumes of resumes)."""
        code = self.original()
        parent = ORIGINS.get(code) if code is not None else None
        return parent.root() if parent is not None else code


def origin_of(code: types.CodeType) -> Origin | None:
    return ORIGINS.get(code)


def display_name(code: types.CodeType) -> str:
    """``code``'s name for reports and dumps: the user's name, or its Origin's label."""
    origin = ORIGINS.get(code)
    return origin.label if origin is not None else code.co_name


def _made_for(code: types.CodeType, key: tuple, make) -> types.CodeType:
    """The code made by ``make()`` for ``code``'s break ``key``, made once while
    ``code`` lives (its resume functions keep their cache entries)."""
    made = RESUME_CODES.setdefault(code, {})
    if key not in made:
        new = make()
        ORIGINS[new] = Origin(key[0], weakref.ref(code), key[1])
        made[key] = new
    return made[key]


def dis_instructions(code) -> list:
    """dis instructions aligned one-to-one with ``bytecode``'s abstract Instr list."""
    return [i for i in dis.get_instructions(code) if i.opname not in ("EXTENDED_ARG", "CACHE")]


def _body_with_label(code, offset: int) -> tuple[Bytecode, list, Label, Instr]:
    bc = Bytecode.from_code(code)
    index = [i.offset for i in dis_instructions(code)].index(offset)
    label = Label()
    body, k, target = [], 0, None
    for item in bc:
        if isinstance(item, Instr):
            if k == index:
                body.append(label)
                target = item
            k += 1
        body.append(item)
    _restore_handler_depths(code, body)
    while body and isinstance(body[0], Instr) and body[0].name in _PROLOGUE_OPS:
        first = body.pop(0)
        if first.name == "RESUME":
            break
    return bc, body, label, target


def _restore_handler_depths(code, body: list):
    """Give each TryBegin the stack depth the original exception table records
    (``bytecode`` leaves it unset and would re-derive it from reachable code only)."""
    offsets = iter(i.offset for i in dis_instructions(code))
    label_offset, pending = {}, []
    for item in body:
        if isinstance(item, Label):
            pending.append(item)
        elif isinstance(item, Instr):
            offset = next(offsets)
            for label in pending:
                label_offset[id(label)] = offset
            pending = []
    depth_of = {(target, lasti): depth for _, _, target, depth, lasti in exception_entries(code)}
    for item in body:
        if isinstance(item, TryBegin):
            key = (label_offset.get(id(item.target)), item.push_lasti)
            if key in depth_of:
                item.stack_depth = depth_of[key]


def _new_bytecode(bc: Bytecode, layout: Layout) -> Bytecode:
    new = Bytecode()
    new.name = bc.name  # the user's: tracebacks and debuggers show it
    new.qualname = bc.qualname
    new.filename = bc.filename
    new.first_lineno = bc.first_lineno
    new.cellvars = list(bc.cellvars)
    new.freevars = list(bc.freevars)
    new.flags = bc.flags & ~(_CO_VARARGS | _CO_VARKEYWORDS)
    new.argnames = layout.arg_names()
    new.argcount = len(new.argnames)
    new.posonlyargcount = 0
    new.kwonlyargcount = 0
    return new


def _prologue(bc: Bytecode, layout: Layout) -> list:
    out = [Instr("MAKE_CELL", CellVar(n)) for n in bc.cellvars]
    if bc.freevars:
        out.append(Instr("COPY_FREE_VARS", len(bc.freevars)))
    out.append(Instr("RESUME", 0))
    for i, kind in enumerate(layout.stack):
        out.append(Instr("LOAD_FAST", f"__stack{i}") if kind == VALUE else Instr("PUSH_NULL"))
    return out


def resume_code(code: types.CodeType, offset: int, layout: Layout) -> types.CodeType:
    """The original code continuing at ``offset`` with ``layout``'s stack and locals."""
    def make():
        bc, body, label, _ = _body_with_label(code, offset)
        new = _new_bytecode(bc, layout)
        new.extend(_prologue(bc, layout) + [Instr("JUMP_FORWARD", label)] + body)
        # the handlers' stack depths are those of the original code: keep them (code
        # before the jump target is dead here, so they cannot be recomputed)
        # (an explicit stacksize keeps bytecode from re-deriving them through dead code)
        return new.to_code(stacksize=code.co_stacksize + 1, compute_exception_stack_depths=False)
    return _made_for(code, ("resume", offset, layout), make)


def native_tail_code(code: types.CodeType, offset: int, layout: Layout) -> types.CodeType:
    """The rest of the code from ``offset`` (the break itself included), run natively:
    used where no bridge can continue (inside loops and try/with blocks), so the
    original exception table and loop structure stay in force."""
    def make():
        bc, body, label, target = _body_with_label(code, offset)
        if target.name == "CALL":
            # enter at the KW_NAMES/PRECALL before it: CALL needs the names KW_NAMES sets
            at = body.index(label)
            preamble = _call_preamble(body, label)
            body.remove(label)
            body.insert(at - len(preamble), label)
        new = _new_bytecode(bc, layout)
        new.extend(_prologue(bc, layout) + [Instr("JUMP_FORWARD", label)] + body)
        tail = new.to_code(stacksize=code.co_stacksize + 1, compute_exception_stack_depths=False)
        _C.set_skip(tail)
        return tail
    return _made_for(code, ("eager_tail", offset, layout), make)


def _call_resume(bc: Bytecode, code, offset: int, layout: Layout) -> list:
    """Instructions that pass the current stack and locals to the resume function at
    ``offset`` and return its result."""
    target = resume_code(code, offset, layout)
    out = []
    temps = []
    for i in reversed(range(len(layout.stack))):
        if layout.stack[i] == VALUE:
            out.append(Instr("STORE_FAST", f"__post{i}"))
            temps.insert(0, f"__post{i}")
        else:
            # POP_TOP would decref the NULL; storing it into a scratch local is safe.
            out.append(Instr("STORE_FAST", "__null_sink"))
    out.append(Instr("PUSH_NULL"))
    if bc.freevars:
        out += [Instr("LOAD_CLOSURE", FreeVar(n)) for n in bc.freevars]
        out.append(Instr("BUILD_TUPLE", len(bc.freevars)))
    out.append(Instr("LOAD_CONST", target))
    out.append(Instr("MAKE_FUNCTION", 0x08 if bc.freevars else 0))
    for name in layout.local_names:
        out.append(Instr("LOAD_DEREF", CellVar(name)) if name in bc.cellvars else Instr("LOAD_FAST", name))
    out += [Instr("LOAD_FAST", t) for t in temps]
    n = len(temps) + len(layout.local_names)
    out += [Instr("PRECALL", n), Instr("CALL", n), Instr("RETURN_VALUE")]
    return out


def _locals_after(inst: dis.Instruction, names: tuple, freevars=()) -> tuple:
    if inst.opname in ("STORE_FAST", "STORE_DEREF") and inst.argval not in names \
            and inst.argval not in freevars:
        return names + (inst.argval,)
    if inst.opname in ("DELETE_FAST", "DELETE_DEREF"):
        return tuple(n for n in names if n != inst.argval)
    return names


def _stack_after(layout_stack: tuple, inst: dis.Instruction, jump: bool) -> tuple:
    """Slot kinds after ``inst`` runs (only CALL-related opcodes touch NULL slots)."""
    op, arg = inst.opname, inst.arg
    if op == "CALL":
        return layout_stack[:len(layout_stack) - (arg + 2)] + (VALUE,)
    if op == "CALL_FUNCTION_EX":
        return layout_stack[:len(layout_stack) - (3 + (arg & 1))] + (VALUE,)
    if op == "LOAD_GLOBAL":
        return layout_stack + ((NULL, VALUE) if arg & 1 else (VALUE,))
    if op == "PUSH_NULL":
        return layout_stack + (NULL,)
    effect = dis.stack_effect(inst.opcode, arg if inst.opcode >= dis.HAVE_ARGUMENT else None, jump=jump)
    if effect <= 0:
        return layout_stack[:len(layout_stack) + effect]
    return layout_stack + (VALUE,) * effect


# Opcodes whose effect on NULL slots cannot be known before they run.
NOT_BRIDGEABLE = {"LOAD_METHOD", "RETURN_VALUE", "YIELD_VALUE", "RETURN_GENERATOR", "SEND", "RERAISE",
                  "PUSH_EXC_INFO", "POP_EXCEPT", "CHECK_EXC_MATCH", "BEFORE_WITH", "SETUP_ANNOTATIONS",
                  "KW_NAMES", "PRECALL", "COPY_FREE_VARS", "MAKE_CELL", "RESUME", "LOAD_CLOSURE"}


def bridge_code(code: types.CodeType, inst: dis.Instruction, layout: Layout, next_offset: int,
                on_error=None) -> types.CodeType:
    """Code running ``inst`` natively on the handed-over stack, then the resume
    function(s) after it (both targets for a conditional jump).

    ``on_error`` (inside grad-mode with-blocks) is called if ``inst`` raises, before the
    exception propagates: it does what the blocks' ``__exit__`` would have done."""
    def make():
        bc, body, label, original = _body_with_label(code, inst.offset)
        new = _new_bytecode(bc, layout)
        locals_after = _locals_after(inst, layout.local_names, code.co_freevars)
        instrs = _prologue(bc, layout)
        if original.name == "CALL":
            instrs += _call_preamble(body, label)
        is_jump = isinstance(original.arg, Label)
        taken, handler = Label(), Label()
        if on_error is not None:
            instrs.append(TryBegin(handler, push_lasti=False))
        instrs.append(Instr(original.name, taken if is_jump else original.arg, location=original.location))
        if on_error is not None:
            instrs.append(TryEnd(instrs[-2]))
        instrs += _call_resume(bc, code, next_offset, Layout(_stack_after(layout.stack, inst, False), locals_after))
        if is_jump:
            instrs.append(taken)
            instrs += _call_resume(bc, code, inst.argval, Layout(_stack_after(layout.stack, inst, True), locals_after))
        if on_error is not None:
            instrs += [handler, Instr("PUSH_NULL"), Instr("LOAD_CONST", on_error), Instr("PRECALL", 0),
                       Instr("CALL", 0), Instr("POP_TOP"), Instr("RERAISE", 0)]
        new.extend(instrs)
        bridge = new.to_code()
        _C.set_skip(bridge)
        return bridge
    return _made_for(code, ("break", inst.offset, layout, on_error), make)


def _call_preamble(body: list, label: Label) -> list:
    """KW_NAMES and PRECALL right before a CALL: CALL needs the names they set."""
    at = body.index(label)
    preamble = []
    for item in reversed(body[:at]):
        if not isinstance(item, Instr):
            continue
        if item.name in ("PRECALL", "KW_NAMES"):
            preamble.insert(0, Instr(item.name, item.arg, location=item.location))
            if item.name == "KW_NAMES":
                break
        else:
            break
    return preamble


IN_HANDLER_REGION = "break inside a try/with block"


def covering_handlers(code, offset: int) -> int:
    """How many try/with regions (by distinct handler) cover ``offset``."""
    return len({target for start, end, target, _, _ in exception_entries(code) if start <= offset < end})


def why_not_resumable(code: types.CodeType, inst: dis.Instruction) -> str | None:
    """Reason a break at ``inst`` cannot continue in a resume function, or None."""
    if code.co_flags & 0x20 or code.co_flags & 0x80 or code.co_flags & 0x100 or code.co_flags & 0x200:
        return "break in a generator or coroutine"
    if inst.opname in NOT_BRIDGEABLE:
        return f"break at {inst.opname}"
    if covering_handlers(code, inst.offset):
        return IN_HANDLER_REGION
    instructions = dis_instructions(code)
    for other in instructions:
        if other.opname.startswith(("JUMP_BACKWARD", "POP_JUMP_BACKWARD")) and \
                other.argval <= inst.offset <= other.offset:
            return "break inside a loop"
    if code.co_cellvars:
        made_closure = any(o.opname == "MAKE_FUNCTION" and o.arg & 0x08 and o.offset < inst.offset
                           for o in instructions)
        stores_cell_later = any(o.opname in ("STORE_DEREF", "DELETE_DEREF") and o.offset > inst.offset
                                and o.argval in code.co_cellvars for o in instructions)
        if made_closure and stores_cell_later:
            return "break between a closure's creation and a later assignment to its cell"
    return None

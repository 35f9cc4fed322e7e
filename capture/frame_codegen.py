"""Write the Python code that replaces a fully captured frame.

The replacement is generated as Python source (kept for CAPTURE_DEBUG_DIR and
reports, and registered with linecache so tracebacks show it), compiled, and given
the original free variables so it runs with the original closure. Objects it needs
(the compiled graph, classes to rebuild namedtuples, ...) are named ``__capture_obj_N``
in the source, helpers of capture.runtime ``__capture_rt.<name>``; both are bound as
constants of the code object (``runtime.bind_constants``), not stored in the frame's
globals.
"""
from __future__ import annotations

import itertools
import math
import types

from bytecode import Bytecode, Instr
from bytecode.instr import InstrLocation

from capture import runtime
from capture.exc import Unsupported
from capture.variables.dicts import DictVariable
from capture.variables.lists import ListVariable
from capture.variables.sets import SetVariable
from capture.variables.tensor import TensorVariable
from capture.variables.user_object import NewObjectVariable
from guards.sources import RUNTIME, SOURCE_HELPERS, ClosureCellSource, ClosureSource

_entries = itertools.count()  # numbers the generated sources' file names
_LITERAL_REPR_TYPES = (int, str, bool, type(None), bytes)
_MUTABLE_KINDS = (ListVariable, DictVariable, SetVariable, NewObjectVariable)


class FrameCodegen:
    """Writes one replacement frame. It names the frame's globals only as ``globals()``
    at run time: a code object's cache must not hold its module's dict (the module, its
    functions and their code would keep each other alive for good)."""

    def __init__(self, local_objects: dict | None = None):
        self.filename = ""  # the generated source's name in linecache
        self.local_objects = local_objects or {}  # made by the trace: must not leave it
        self.constants: dict[str, object] = {}  # names in the generated source -> objects
        self._ref_by_id: dict[int, str] = {}
        self.output_index: dict = {}  # fx.Node -> position in the graph's output tuple
        self.prelude: list[str] = []  # statements run before the return (built containers)
        self._memo: dict[int, str] = {}
        self.counter = None  # HitCounter bumped on each run of the replacement
        self._building: set[int] = set()
        self.handing_over = False  # rebuilding the state a resume function continues from

    def object_ref(self, obj) -> str:
        if self.local_objects.get(id(obj)) is obj:
            # Python makes a new one on every call; the rewritten frame would hand out this one
            raise Unsupported(f"{getattr(obj, '__qualname__', obj)}, defined inside the compiled frame, "
                              f"escaping it")
        name = self._ref_by_id.get(id(obj))
        if name is None:
            name = f"__capture_obj_{len(self._ref_by_id)}"
            self._ref_by_id[id(obj)] = name
            self.constants[name] = obj
        return name

    def runtime_ref(self, fn) -> str:
        """Expression for ``fn``, a function of capture.runtime."""
        if getattr(runtime, fn.__name__, None) is not fn:
            raise ValueError(f"{fn} is not in capture.runtime")
        self.constants[runtime.RUNTIME_NAME] = runtime
        return f"{runtime.RUNTIME_NAME}.{fn.__name__}"

    def constant_expr(self, value) -> str:
        t = type(value)
        if t in _LITERAL_REPR_TYPES:
            return repr(value)
        if t is float:
            return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
        if t is tuple:
            return "(" + "".join(self.constant_expr(v) + ", " for v in value) + ")"
        return self.object_ref(value)

    def source_expr(self, source) -> str:
        text = source.expr(RUNTIME)
        for name, helper in SOURCE_HELPERS.items():
            if name in text:
                self.constants[name] = helper
        return text

    def cell_expr(self, source) -> str:
        """Expression for the cell object (not its contents) a closure source reads."""
        if isinstance(source, ClosureSource):
            return f"(lambda: {source.var_name}).__closure__[0]"
        if isinstance(source, ClosureCellSource):
            return f"{self.source_expr(source.base)}.__closure__[{source.index}]"
        raise Unsupported(f"cannot write the closure cell behind {source.name()}")

    def reconstruct(self, vt) -> str:
        """Expression for ``vt``; a mutable container built here is bound to a temporary
        once, so one object reached twice stays one object, as in eager."""
        key = id(vt)
        if key in self._memo:
            return self._memo[key]
        if isinstance(vt, TensorVariable):
            if vt.node.op == "placeholder" and vt.source is not None:
                expr = self.source_expr(vt.source)
                if not expr.isidentifier():
                    # read it before the side effects are replayed: `xs.pop(0)` of an input
                    # list changes what `xs[0]` reaches
                    name = f"__capture_tmp_{len(self.prelude)}"
                    self.prelude.append(f"{name} = {expr}")
                    self._memo[key] = expr = name
                return expr
            return f"__capture_out[{self.output_index[vt.node]}]"
        if key in self._building:
            raise Unsupported("returning a container that contains itself")
        self._building.add(key)
        expr = vt.reconstruct(self)
        self._building.discard(key)
        if (isinstance(vt, _MUTABLE_KINDS) or vt.frame_object) and not expr.isidentifier():
            name = f"__capture_tmp_{len(self.prelude)}"
            self.prelude.append(f"{name} = {expr}")
            expr = name
        self._memo[key] = expr
        return expr

    def generate(self, code: types.CodeType, graph_fn, input_exprs: list[str], return_vt,
                 tail=None, replay=(), raise_vt=None, raise_line=None) -> tuple[types.CodeType, str]:
        """``raise_vt``: the frame ends by raising this exception (uncaught in the frame),
        at the user's line ``raise_line``: the traceback shows that line, in the user's file."""
        nargs = code.co_argcount + code.co_kwonlyargcount + bool(code.co_flags & 0x04) + bool(code.co_flags & 0x08)
        arg_names = code.co_varnames[:nargs]
        lines = []
        if code.co_freevars:
            lines.append(f"if False: ({', '.join(code.co_freevars)},)  # keep the original free variables")
        if self.counter is not None:
            lines.append(f"{self.object_ref(self.counter)}.hits += 1")
        if graph_fn is not None:
            graph_name = self.object_ref(graph_fn)
            lines.append(f"__capture_out = {graph_name}({', '.join(input_exprs)})")
        if raise_vt is not None:
            result_expr = self.reconstruct(raise_vt)
        elif tail is None:
            result_expr = self.reconstruct(return_vt)
        else:
            result_expr = self._bridge_call(code, tail)
        lines.extend(self.prelude)
        lines.extend(replay)
        lines.append(f"{'raise' if raise_vt is not None else 'return'} {result_expr}")
        fn_name = code.co_name if code.co_name.isidentifier() else "__capture_frame"
        body = "\n".join("        " + line for line in lines)
        cells = "".join(f"    {name} = None\n" for name in code.co_freevars)
        source = (f"def __capture_make():\n{cells}"
                  f"    def {fn_name}({', '.join(arg_names)}):\n{body}\n"
                  f"    return {fn_name}\n")
        namespace: dict = {}
        filename = f"<capture: {code.co_name} from {code.co_filename}:{code.co_firstlineno} #{next(_entries)}>"
        exec(compile(source, filename, "exec"), namespace)
        runtime.register_source(filename, source)
        self.filename = filename
        new_code = runtime.bind_constants(namespace["__capture_make"]().__code__, self.constants)
        if new_code.co_freevars != code.co_freevars:
            raise Unsupported("could not reproduce the closure layout of the frame")
        new_code = new_code.replace(co_name=code.co_name, co_qualname=code.co_qualname)
        if raise_vt is not None:
            new_code = in_users_lines(new_code, code, source.count("\n") - 1, raise_line)
        return new_code, source

    def _bridge_call(self, code, tail) -> str:
        """Call the bridge that runs the unsupported instruction and resumes after it."""
        self.handing_over = True  # values go on to the rest of the frame, not back to the caller
        try:
            args = ", ".join(self.reconstruct(v) for v in tail.values)
        finally:
            self.handing_over = False
        cells = f"(lambda: ({', '.join(code.co_freevars)},)).__closure__" if tail.needs_closure else "None"
        make = self.runtime_ref(runtime.make_function)
        self.constants["__capture_globals"] = globals  # the builtin: the running frame's globals
        return f"{make}({self.object_ref(tail.bridge)}, __capture_globals(), {cells})({args})"


def in_users_lines(new_code: types.CodeType, code: types.CodeType, raise_at: int, raise_line: int | None):
    """``new_code`` (a replacement frame ending in ``raise`` at generated line ``raise_at``)
    placed in the user's file: the raise on ``raise_line``, all else on the ``def`` line,
    so a traceback through it shows the user's file, line and source."""
    bc = Bytecode.from_code(new_code)
    for instr in bc:
        if isinstance(instr, Instr) and instr.location is not None and instr.location.lineno is not None:
            line = raise_line if instr.location.lineno == raise_at and raise_line else code.co_firstlineno
            instr.location = InstrLocation(line, line, None, None)
    bc.filename = code.co_filename
    bc.first_lineno = code.co_firstlineno
    return bc.to_code()

"""What one trace produces, behind one small API the interpreter and trackers call:
the graph (built by fx_graph.GraphBuilder), its inputs, the guards (a GuardSet) and the
side effects to replay.

This façade is where tracker values meet FX: arguments become nodes and constants,
fake results become trackers. Every torch operation the interpreter meets becomes a
node; its output metadata comes from running the same operation on fake tensors, so no
real data is computed while tracing.

What trackers and opcode handlers call (``tx.output.<name>``), and nothing else:
graph ops ``call_graph``, ``call_module``, ``set_grad_enabled``, ``grad_enabled``;
inputs ``tensor_input``, ``tensor_identity``, ``input_example``; guards ``add_guard``, ``guard_state_read``,
``guard_no_global_hooks``, ``guard_global_absent``, ``guard_parameter``,
``guard_parameter_metadata``; mutations ``side_effects`` (a SideEffects); generators made
while tracing ``note_generator`` (checked when the trace finishes); classes and functions
made for real while tracing ``add_local_object``, ``is_local_object``, ``local_tracker``,
``real_cell``,
``local_cell``.
"""
from __future__ import annotations

import dataclasses
import types

import numpy as np
import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import FakeTensor

from capture import config, sharing
from capture.exc import NonTensorResult, Unsupported
from capture.symbolic.side_effects import SideEffects
from capture.variables.base import VariableTracker
from capture.variables.builder import wrap_constant_result
from capture.variables.constant import ConstantVariable
from capture.variables.dicts import DictVariable
from capture.variables.lists import BaseListVariable, ListVariable, TupleVariable
from capture.variables.sym import SliceVariable, SymNodeVariable
from capture.variables.tensor import TensorVariable
from fx_graph import in_place
from fx_graph.builder import FakeRunError, GraphBuilder
from guards import GuardKind, GuardSet, TensorSpec
from guards.sources import GUARD, ModuleMemberSource

_ALLOWED_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


@dataclasses.dataclass
class GraphInput:
    source: object
    node: fx.Node
    example: torch.Tensor
    bound: bool = False  # a module's parameter: passed as the guarded object itself


class OutputGraph:
    def __init__(self, code, f_globals: dict, policy=None):
        self.code = code
        self.f_globals = f_globals
        self.builder = GraphBuilder()
        self.shapes = self.builder.shapes  # symbolic sizes (fx_graph.symbolic.FrameShapes)
        self.policy = policy  # capture.dynamic.ShapePolicy: which input sizes are symbolic
        self.inputs: list[GraphInput] = []
        self.input_by_source: dict[str, TensorVariable] = {}
        self.guards = GuardSet()
        self.instructions = 0
        self.side_effects = SideEffects()
        self.generators: list = []  # generator objects made by the traced code
        self.local_objects: dict[int, object] = {}  # classes/functions made by the trace (never leave it)
        self._local_trackers: dict[int, object] = {}
        self._real_cells: dict[int, tuple] = {}  # id(CellBox) -> (box, real cell standing for it)
        self._boxes: dict[int, tuple] = {}  # id(real cell) -> (real cell, CellBox)
        self.structural_modules: set[str] = set()  # sources of modules guarded by structure (capture.sharing)

    @property
    def grad_enabled(self) -> bool:
        """The grad mode the traced code runs under at this point."""
        return self.builder.grad_enabled

    # ---- guards (the GuardSet's API, with where the traced code read each value) ----
    def guard_state_read(self, tx, helper: str, fn_name: str, args: tuple, value):
        """Traced code read global state (folded to ``value``): guard it stays so."""
        self.guards.state_read(helper, fn_name, args, value, tx.location())

    def guard_no_global_hooks(self):
        self.guards.no_global_hooks()

    def add_guard(self, tx, kind: type, source, expected):
        self.guards.add(kind, source, expected, tx.location() if tx is not None else None)

    def guard_global_absent(self, name: str, tx):
        if tx.f_globals is self.f_globals:
            self.guards.absent(name, tx.location())

    def set_grad_enabled(self, enabled: bool):
        """Traced code entered or left a grad-mode block: the graph switches too."""
        self.builder.set_grad_enabled(enabled)

    def note_generator(self, gen):
        self.generators.append(gen)

    # ---- objects made for real while tracing (classes defined in the frame) ----
    def add_local_object(self, obj, tracker=None):
        """``obj`` was made for real by this trace (``tracker``: what reading it gives)."""
        self.local_objects[id(obj)] = obj
        if tracker is not None:
            self._local_trackers[id(obj)] = tracker

    def is_local_object(self, obj) -> bool:
        return self.local_objects.get(id(obj)) is obj

    def local_tracker(self, obj):
        return self._local_trackers.get(id(obj)) if self.is_local_object(obj) else None

    def real_cell(self, box):
        """A real cell standing for the traced cell ``box`` in a function made for real."""
        entry = self._real_cells.get(id(box))
        if entry is None:
            cell = box.real_cell if box.real_cell is not None else types.CellType()
            entry = self._real_cells[id(box)] = (box, cell)
            self._boxes[id(cell)] = (cell, box)
        return entry[1]

    def local_cell(self, cell):
        """The traced cell a real cell of ``real_cell`` stands for, or None."""
        entry = self._boxes.get(id(cell))
        return entry[1] if entry is not None and entry[0] is cell else None

    def count_instruction(self):
        self.instructions += 1
        if self.instructions > config.max_unrolled_instructions:
            raise Unsupported(f"more than {config.max_unrolled_instructions} instructions traced (long loop?)")

    # ---- modules shared by their class's instances (capture.sharing) ----
    def module_by_structure(self, source, module) -> bool:
        """Whether ``module``, read through ``source``, is guarded by structure (its
        class is shared, or it is under such a module) rather than by identity."""
        if self.under_structure(source):
            return True
        if sharing.is_shared(type(module)) and sharing.from_frame_inputs(source):
            self.structural_modules.add(source.name())
            return True
        return False

    def under_structure(self, source) -> bool:
        while source is not None:
            if source.name() in self.structural_modules:
                return True
            source = getattr(source, "base", None)
        return False

    # ---- inputs ----
    def tensor_input(self, tx, source, value: torch.Tensor) -> TensorVariable:
        key = source.name()
        if key in self.input_by_source:
            return self.input_by_source[key]
        if type(value) not in _ALLOWED_TENSOR_TYPES:
            raise Unsupported(f"tensor subclass {type(value).__name__} at {key}")
        if value.is_sparse or value.layout != torch.strided:
            raise Unsupported(f"non-strided tensor at {key}")
        bound = _is_module_parameter(source, value) and not self.under_structure(source)
        dims = self.policy.dynamic_dims(source, value) if self.policy is not None and not bound else ()
        node = self.builder.placeholder(key, value, dims, source.expr(GUARD), source)
        fake = node.meta["val"]
        dynamic = self.builder.dynamic_inputs.get(node)
        if bound:
            self.guard_parameter(tx, source, value)
        elif dynamic is not None:
            self.add_guard(tx, GuardKind.TENSOR, source, TensorSpec.of(value, dynamic.shape, dynamic.stride))
        else:
            self.add_guard(tx, GuardKind.TENSOR, source, TensorSpec.of(value))
        vt = TensorVariable(node, fake, source, class_type=type(value))
        vt.bound_parameter = bound
        self.inputs.append(GraphInput(source, node, value, bound))
        self.input_by_source[key] = vt
        return vt

    def input_example(self, vt: TensorVariable) -> torch.Tensor:
        """The real tensor a graph input stands for on this call."""
        for i in self.inputs:
            if i.node is vt.node:
                return i.example
        raise Unsupported(f"{vt} is not a graph input")

    def guard_parameter_metadata(self, tx, vt: TensorVariable):
        """Python read a bound parameter's metadata (``w.dtype``, ``w.shape``): guard all of it."""
        vt.bound_parameter = False
        for i in self.inputs:
            if i.node is vt.node:
                self.add_guard(tx, GuardKind.TENSOR, i.source, TensorSpec.of(i.example))

    def guard_parameter(self, tx, source, param: torch.Tensor):
        """A parameter the graph relies on (bound into it, or read by a leaf module's forward)."""
        self.guards.hold_parameter(source, param, tx.location() if tx is not None else None)


    def tensor_identity(self, tx, a: TensorVariable, b: TensorVariable) -> bool:
        """``a is b`` for two graph inputs, decided on this call's values and guarded."""
        examples = {i.node: i for i in self.inputs}
        if a.node not in examples or b.node not in examples:
            raise Unsupported("'is' between tensors computed in the graph")
        ia, ib = examples[a.node], examples[b.node]
        same = ia.example is ib.example
        self.guards.alias(ia.source, ib.source, same, tx.location())
        return same

    # ---- nodes ----
    def _to_node(self, vt):
        if isinstance(vt, TensorVariable):
            return vt.node
        if isinstance(vt, BaseListVariable):
            values = [self._to_node(i) for i in vt.items]
            return values if isinstance(vt, ListVariable) else tuple(values)
        if isinstance(vt, DictVariable):
            return {k: self._to_node(v) for k, v in vt.items.items()}
        if isinstance(vt, SymNodeVariable):
            try:
                return self.builder.sym_node(vt.value)
            except FakeRunError as e:
                raise Unsupported(str(e)) from None
        if isinstance(vt, SliceVariable):
            return slice(*[self._to_node(p) for p in vt.parts])
        if vt.is_python_constant():
            value = vt.as_python_constant()
            if callable(value) and not isinstance(value, type):
                raise Unsupported(f"function {value} passed to a graph operation")
            if isinstance(value, np.generic):  # torch reads a numpy scalar as the Python number it
                return value.item()            # holds; generated FX code cannot name numpy's types
            return value
        raise Unsupported(f"{vt} passed to a graph operation")

    def call_graph(self, tx, kind: str, target, args: list, kwargs: dict) -> VariableTracker:
        """A graph op (``kind``: call_function or call_method) on trackers; its result as trackers."""
        node_args = tuple(self._to_node(a) for a in args)
        node_kwargs = {k: self._to_node(v) for k, v in kwargs.items()}
        what = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
        versions = [_version(a.fake) for a in args if isinstance(a, TensorVariable)]
        try:
            result = self.builder.propagate(kind, target, node_args, node_kwargs, what)
        except FakeRunError as e:
            raise Unsupported(str(e)) from None
        self.shapes.note_relations(tx.location() if tx is not None else None, what)
        if not _contains_tensor(result) and result is not None and type(result) is not torch.Size:
            raise NonTensorResult(f"{what} returned {type(result).__name__}, a value that needs real data")
        same = None if in_place.is_in_place(target) else _argument_returned(result, args, versions)
        if same is not None:
            return same                  # ``x.to(x.dtype)``, ``x.contiguous()``: eager returns x itself
        node = self.builder.node(kind, target, node_args, node_kwargs, result)
        return self.wrap_output(node, result, what)

    def call_module(self, tx, module: torch.nn.Module, args: list, kwargs: dict) -> VariableTracker:
        """A leaf module called as one graph op (see fx_graph.leaf)."""
        node_args = tuple(self._to_node(a) for a in args)
        node_kwargs = {k: self._to_node(v) for k, v in kwargs.items()}
        try:
            node = self.builder.call_leaf(module, node_args, node_kwargs)
        except FakeRunError as e:
            raise Unsupported(str(e)) from None
        return self.wrap_output(node, node.meta["val"], type(module).__name__)

    def wrap_output(self, node: fx.Node, value, what: str) -> VariableTracker:
        """Trackers for ``value``, the fake result of ``node``."""
        if isinstance(value, FakeTensor):
            return TensorVariable(node, value)
        if isinstance(value, torch.Tensor):
            raise Unsupported(f"{what} returned a real tensor while tracing")
        if isinstance(value, (tuple, list)) and _contains_tensor(value):
            items = []
            for i, item in enumerate(value):
                if isinstance(item, torch.Tensor) or (isinstance(item, (tuple, list)) and _contains_tensor(item)):
                    items.append(self.wrap_output(self.builder.getitem(node, i, item), item, what))
                else:
                    items.append(self._constant_output(item, what))
            t = type(value)
            if t is list:
                return ListVariable(items)
            return TupleVariable(items, tuple_type=None if t is tuple else t)
        if value is None:
            return ConstantVariable(None)  # e.g. in-place setitem; the node stays for its effect
        if type(value) is torch.Size:
            self.builder.erase(node)
            return TupleVariable([wrap_constant_result(s) for s in value], tuple_type=torch.Size)
        raise Unsupported(f"{what} returned {type(value).__name__}, a value that needs real data")

    def _constant_output(self, item, what):
        if item is None or type(item) in (int, float, bool, torch.Size, torch.SymInt):
            return wrap_constant_result(item)
        raise Unsupported(f"{what} returned {type(item).__name__} inside its result")

    # ---- symbolic sizes ----
    def sym_truth(self, tx, value) -> bool:
        """``bool(value)`` for a condition on symbolic sizes: answered for this call's
        sizes, the relation guarded."""
        try:
            result = bool(value)
        except Exception as e:
            raise Unsupported(f"condition on sizes could not be decided: {type(e).__name__}: {e}") from None
        self.shapes.note_relations(tx.location(), "a condition")
        return result

    # ---- finishing ----
    def has_ops(self) -> bool:
        return self.builder.has_ops()

    def output_nodes(self, tensors: list[TensorVariable]) -> list[fx.Node]:
        """Distinct nodes the rewritten frame needs from the graph, in first-use order."""
        seen, nodes = set(), []
        for t in tensors:
            if t.node.op == "placeholder" and t.source is not None:
                continue
            if t.node not in seen:
                seen.add(t.node)
                nodes.append(t.node)
        return nodes

    def finish(self, tensors: list[TensorVariable]) -> tuple[fx.GraphModule, list[fx.Node]]:
        for gen in self.generators:
            if gen.is_suspended_in_block():  # Python closes it (runs its finally) when it is dropped
                raise Unsupported(f"{gen} left suspended inside a try/with block")
        self.guards.finish(self.builder.grad_used())
        nodes = self.output_nodes(tensors)
        return self.builder.finish(nodes), nodes

    def finish_size_guards(self):
        """Guards on the relations between symbolic sizes, taken after the backend
        compiled the graph: what it asked the shared ShapeEnv about its placeholders'
        sizes (a kernel variant chosen for ``n <= 2048``) is guarded like what the trace
        asked, as with torch.compile backends."""
        for relation, where in self.shapes.size_relations():
            self.guards.size_relation(relation, where)


def _is_module_parameter(source, value) -> bool:
    """A parameter read from its module: the graph can hold the object itself, guarded
    by identity (cheap behind a dict watch) instead of by full tensor metadata."""
    return (type(value) is torch.nn.Parameter and isinstance(source, ModuleMemberSource)
            and source.table == "_parameters")


def _contains_tensor(value) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    if isinstance(value, (tuple, list)):
        return any(_contains_tensor(v) for v in value)
    return False


def _argument_returned(result, args: list, versions: list):
    """The tracker of the argument an op returned as itself without writing it (a no-op
    ``to``/``contiguous``/``type_as``): two such results are one object, as in eager. An
    op writing its argument stays a node of its own: in-place by name (``add_``,
    ``detach_``, which moves no version) or by its version (``F.relu(x, inplace=True)``)."""
    tensors = [a for a in args if isinstance(a, TensorVariable)]
    if not isinstance(result, FakeTensor) or None in versions or [_version(a.fake) for a in tensors] != versions:
        return None
    return next((a for a in tensors if a.fake is result), None)


def _version(t):
    """``t._version``, or None for an inference tensor (made under inference_mode), which
    has no version counter: whether the op wrote it is unknown, so it stays a node."""
    return None if t.is_inference() else t._version

"""The FX graph being built for one frame, its inputs, and its guards.

Every torch operation the interpreter meets becomes a node here; its output
metadata comes from running the same operation on fake tensors, so no real data
is computed while tracing.
"""
from __future__ import annotations

import copy
import dataclasses
import operator
import re

import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import (DataDependentOutputException, DynamicOutputShapeException,
                                           FakeTensor, FakeTensorMode)
from torch.utils._pytree import tree_map

from capture import config
from capture.exc import NonTensorResult, Unsupported
from capture.symbolic.side_effects import SideEffects
from capture.variables.base import VariableTracker
from capture.variables.builder import wrap_constant_result
from capture.variables.constant import ConstantVariable
from capture.variables.dicts import DictVariable
from capture.variables.lists import BaseListVariable, ListVariable, TupleVariable
from capture.variables.tensor import TensorVariable
from guards import GuardKind, GuardSet, TensorSpec
from guards.sources import ModuleMemberSource

_ALLOWED_TENSOR_TYPES = (torch.Tensor, torch.nn.Parameter)


@dataclasses.dataclass
class GraphInput:
    source: object
    node: fx.Node
    example: torch.Tensor
    bound: bool = False  # a module's parameter: passed as the guarded object itself


class OutputGraph:
    def __init__(self, code, f_globals: dict):
        self.code = code
        self.f_globals = f_globals
        self.graph = fx.Graph()
        self.fake_mode = FakeTensorMode()
        self.root = torch.nn.Module()
        self.inputs: list[GraphInput] = []
        self.input_by_source: dict[str, TensorVariable] = {}
        self.guards = GuardSet()
        self.leaf_module_names: dict[int, str] = {}
        self.leaf_functions: dict[str, object] = {}
        self.instructions = 0
        self._last_placeholder = None
        self.grad_enabled = torch.is_grad_enabled()  # the mode traced code runs under
        self.grad_at_entry = self.grad_enabled
        self.side_effects = SideEffects()

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
        if self.grad_enabled != enabled:
            self.graph.create_node("call_function", torch._C._set_grad_enabled, (enabled,), {})
            self.grad_enabled = enabled

    def count_instruction(self):
        self.instructions += 1
        if self.instructions > config.max_unrolled_instructions:
            raise Unsupported(f"more than {config.max_unrolled_instructions} instructions traced (long loop?)")

    # ---- inputs ----
    def tensor_input(self, tx, source, value: torch.Tensor) -> TensorVariable:
        key = source.name()
        if key in self.input_by_source:
            return self.input_by_source[key]
        if type(value) not in _ALLOWED_TENSOR_TYPES:
            raise Unsupported(f"tensor subclass {type(value).__name__} at {key}")
        if value.is_sparse or value.layout != torch.strided:
            raise Unsupported(f"non-strided tensor at {key}")
        name = re.sub(r"\W+", "_", key).strip("_") or "input"
        if self._last_placeholder is None:
            first = next(iter(self.graph.nodes), None)
            ctx = self.graph.inserting_before(first) if first is not None else self.graph.inserting_after(None)
        else:
            ctx = self.graph.inserting_after(self._last_placeholder)
        with ctx:
            node = self.graph.placeholder(name)
        self._last_placeholder = node
        fake = self.fake_mode.from_tensor(value, static_shapes=True)
        node.meta["val"] = fake
        node.meta["source"] = key
        bound = _is_module_parameter(source, value)
        if bound:
            self.guard_parameter(tx, source, value)
        else:
            self.add_guard(tx, GuardKind.TENSOR, source, TensorSpec.of(value))
        vt = TensorVariable(node, fake, source, class_type=type(value))
        vt.bound_parameter = bound
        self.inputs.append(GraphInput(source, node, value, bound))
        self.input_by_source[key] = vt
        return vt

    def guard_parameter_metadata(self, tx, vt: TensorVariable):
        """Python read a bound parameter's metadata (``w.dtype``, ``w.shape``): guard all of it."""
        vt.bound_parameter = False
        for i in self.inputs:
            if i.node is vt.node:
                self.add_guard(tx, GuardKind.TENSOR, i.source, TensorSpec.of(i.example))

    def guard_parameter(self, tx, source, param: torch.Tensor):
        """A parameter the graph relies on (bound into it, or read by a leaf module's forward)."""
        self.guards.hold_parameter(source, param, tx.location() if tx is not None else None)

    def _grad_used(self) -> bool:
        """Whether any part of the graph runs with grad mode on."""
        return self.grad_at_entry or any(n.target is torch._C._set_grad_enabled and n.args[0]
                                         for n in self.graph.nodes)

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
        if vt.is_python_constant():
            value = vt.as_python_constant()
            if callable(value) and not isinstance(value, type):
                raise Unsupported(f"function {value} passed to a graph operation")
            return value
        raise Unsupported(f"{vt} passed to a graph operation")

    def _to_fake(self, value):
        def convert(v):
            if isinstance(v, fx.Node):
                return v.meta["val"]
            return v
        return tree_map(convert, value)

    def _run_fake(self, fn, args, kwargs, what: str):
        try:
            with self.fake_mode, torch.set_grad_enabled(self.grad_enabled):
                return fn(*args, **kwargs)
        except (DataDependentOutputException, DynamicOutputShapeException) as e:
            raise Unsupported(f"{what} depends on tensor data ({type(e).__name__})") from None
        except Unsupported:
            raise
        except Exception as e:
            text = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise Unsupported(f"{what} failed while tracing: {type(e).__name__}: {text}") from None

    def call_graph(self, tx, kind: str, target, args: list, kwargs: dict) -> VariableTracker:
        node_args = tuple(self._to_node(a) for a in args)
        node_kwargs = {k: self._to_node(v) for k, v in kwargs.items()}
        fake_args, fake_kwargs = self._to_fake(node_args), self._to_fake(node_kwargs)
        what = target if isinstance(target, str) else getattr(target, "__name__", repr(target))
        if kind == "call_method":
            fn = getattr(fake_args[0], target)
            result = self._run_fake(fn, fake_args[1:], fake_kwargs, f"Tensor.{target}")
        else:
            result = self._run_fake(target, fake_args, fake_kwargs, what)
        if not _contains_tensor(result) and result is not None and type(result) is not torch.Size:
            raise NonTensorResult(f"{what} returned {type(result).__name__}, a value that needs real data")
        node = self.graph.create_node(kind, target, node_args, node_kwargs)
        return self.wrap_output(node, result, what)

    def call_module(self, tx, module: torch.nn.Module, args: list, kwargs: dict) -> VariableTracker:
        name = self.leaf_module_names.get(id(module))
        if name is None:
            base = re.sub(r"(?<!^)(?=[A-Z])", "_", type(module).__name__).lower()
            name = f"{base}_{len(self.leaf_module_names)}"
            self.root.add_module(name, module)
            self.leaf_module_names[id(module)] = name
        node_args = tuple(self._to_node(a) for a in args)
        node_kwargs = {k: self._to_node(v) for k, v in kwargs.items()}
        fake_args, fake_kwargs = self._to_fake(node_args), self._to_fake(node_kwargs)
        fake_module = self._fake_copy(module)
        result = self._run_fake(lambda *a, **kw: type(fake_module).forward(fake_module, *a, **kw),
                                fake_args, fake_kwargs, type(module).__name__)
        node = self.graph.create_node("call_function", self._leaf_forward(name, module), node_args, node_kwargs)
        node.meta["leaf_module"] = module
        return self.wrap_output(node, result, type(module).__name__)

    def _leaf_forward(self, name: str, module: torch.nn.Module):
        """``type(module).forward`` bound to the module, as a graph op.

        Calling forward directly skips nn.Module.__call__'s hook machinery, which costs
        more than the layer itself on small models; the caller guards that the module
        has no hooks, so the result is the same.
        """
        fn = self.leaf_functions.get(name)
        if fn is None:
            forward = type(module).forward

            def leaf(*args, **kwargs):
                return forward(module, *args, **kwargs)
            leaf.__name__ = leaf.__qualname__ = name
            leaf.__module__ = "leaf"
            leaf.module = module
            fn = self.leaf_functions[name] = leaf
        return fn

    def _fake_copy(self, module: torch.nn.Module) -> torch.nn.Module:
        """A shallow copy of ``module`` whose parameters and buffers are fake.

        The real module is never touched while tracing: another thread may be
        running it, and fake in-place updates (BatchNorm statistics) must not leak.
        """
        def fake(t):
            return None if t is None else self.fake_mode.from_tensor(t, static_shapes=True)
        clone = copy.copy(module)
        clone.__dict__["_parameters"] = {k: fake(v) for k, v in module._parameters.items()}
        clone.__dict__["_buffers"] = {k: fake(v) for k, v in module._buffers.items()}
        clone.__dict__["_modules"] = {k: (None if m is None else self._fake_copy(m))
                                      for k, m in module._modules.items()}
        return clone

    def wrap_output(self, node: fx.Node, value, what: str) -> VariableTracker:
        node.meta["val"] = value
        if isinstance(value, FakeTensor):
            return TensorVariable(node, value)
        if isinstance(value, torch.Tensor):
            raise Unsupported(f"{what} returned a real tensor while tracing")
        if isinstance(value, (tuple, list)) and _contains_tensor(value):
            items = []
            for i, item in enumerate(value):
                if isinstance(item, torch.Tensor) or (isinstance(item, (tuple, list)) and _contains_tensor(item)):
                    child = self.graph.call_function(operator.getitem, (node, i))
                    items.append(self.wrap_output(child, item, what))
                else:
                    items.append(self._constant_output(item, what))
            t = type(value)
            if t is list:
                return ListVariable(items)
            return TupleVariable(items, tuple_type=None if t is tuple else t)
        if value is None:
            return ConstantVariable(None)  # e.g. in-place setitem; the node stays for its effect
        if type(value) is torch.Size:
            self.graph.erase_node(node)
            return TupleVariable([ConstantVariable(s) for s in value], tuple_type=torch.Size)
        raise Unsupported(f"{what} returned {type(value).__name__}, a value that needs real data")

    def _constant_output(self, item, what):
        if item is None or type(item) in (int, float, bool, torch.Size):
            return wrap_constant_result(item)
        raise Unsupported(f"{what} returned {type(item).__name__} inside its result")

    # ---- finishing ----
    def has_ops(self) -> bool:
        return any(n.op in ("call_function", "call_method", "call_module") for n in self.graph.nodes)

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
        self.guards.finish(self._grad_used())
        nodes = self.output_nodes(tensors)
        self.graph.output(tuple(nodes))
        gm = fx.GraphModule(self.root, self.graph, class_name="CapturedGraph")
        return gm, nodes


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

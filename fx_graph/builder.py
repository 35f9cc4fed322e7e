"""Building the FX graph of one traced frame: the one builder the front end uses.

A ``GraphBuilder`` owns the graph, the fake-tensor mode, placeholders, fake
propagation (every op is run on fake tensors to learn its output's shape, dtype and
device without computing data), the grad mode the traced code runs under (switching it
is a node too), leaf-module calls (``fx_graph.leaf``) and symbolic sizes
(``fx_graph.symbolic``: inputs with symbolic dimensions, nodes computing a size). It
knows nothing of the tracer's values: arguments are FX nodes and constants, results are
fake tensors.
"""
from __future__ import annotations

import copy
import functools
import operator
import re

import torch
import torch.fx as fx
from torch._subclasses.fake_tensor import DataDependentOutputException, DynamicOutputShapeException

from fx_graph import dtype_probe, in_place, leaf
from fx_graph.symbolic import FrameShapes, with_python_dispatcher_fallback

_OPS = ("call_function", "call_method", "call_module")


class FakeRunError(Exception):
    """An op failed on fake tensors (``data_dependent``: its output depends on tensor data)."""

    def __init__(self, message: str, data_dependent: bool = False):
        super().__init__(message)
        self.data_dependent = data_dependent


class GraphBuilder:
    def __init__(self):
        self.graph = fx.Graph()
        self.shapes = FrameShapes()  # symbolic sizes (dynamic shapes): the ShapeEnv under the fake mode
        self.fake_mode = self.shapes.fake_mode
        self.dynamic_inputs: dict = {}  # placeholder -> fx_graph.symbolic.DynamicInput
        self._symbol_nodes: dict = {}  # symbol -> (placeholder, dim) it is read from
        self._sym_nodes: dict = {}  # sympy expression -> the node (or number) computing it
        self.root = torch.nn.Module()  # owns the leaf modules the graph calls
        self.grad_enabled = torch.is_grad_enabled()  # the mode traced code runs under
        self.grad_at_entry = self.grad_enabled
        self._leaf_names: dict[int, str] = {}
        self._leaf_functions: dict[str, object] = {}
        self._last_placeholder = None

    # ---- inputs ----
    def placeholder(self, readable_name: str, value: torch.Tensor, dynamic_dims=(), guard_expr: str = "",
                    source=None) -> fx.Node:
        """A graph input standing for ``value`` (placeholders stay in order, before any op).
        Sizes in ``dynamic_dims`` are symbolic: a guard reads the tensor as ``guard_expr``,
        ``source`` is the caller's handle for it; ``dynamic_inputs[node]`` says what the
        guards must check."""
        name = re.sub(r"\W+", "_", readable_name).strip("_") or "input"
        if self._last_placeholder is None:
            first = next(iter(self.graph.nodes), None)
            ctx = self.graph.inserting_before(first) if first is not None else self.graph.inserting_after(None)
        else:
            ctx = self.graph.inserting_after(self._last_placeholder)
        with ctx:
            node = self.graph.placeholder(name)
        self._last_placeholder = node
        if dynamic_dims:
            dynamic = self.dynamic_inputs[node] = self.shapes.fake_input(value, readable_name, guard_expr, source,
                                                                         dynamic_dims)
            for dim, symbol in dynamic.symbols.items():
                self._symbol_nodes.setdefault(symbol, (node, dim))
            node.meta["val"] = dynamic.fake
        else:
            node.meta["val"] = self.shapes.static_fake(value)
        node.meta["source"] = readable_name
        return node

    # ---- symbolic sizes ----
    def sym_node(self, value):
        """The node computing the SymInt ``value`` from the inputs' sizes (``aten.sym_size``
        and Python arithmetic), or the number it is."""
        expr = self.shapes.shape_env.simplify(value.node.expr)
        if expr.is_number:
            return int(expr) if expr.is_integer else float(expr)
        return self._expr_node(expr)

    def _expr_node(self, expr):
        if expr.is_Integer:
            return int(expr)
        node = self._sym_nodes.get(expr)
        if node is not None:
            return node
        if expr.is_Symbol:
            placeholder, dim = self._symbol_nodes[expr]
            node = self.node("call_function", torch.ops.aten.sym_size.int, (placeholder, dim), {},
                             self.shapes.symints[expr])
        elif type(expr).__name__ in _SYMPY_UNARY:
            fn = _SYMPY_UNARY[type(expr).__name__]
            arg = self._expr_node(expr.args[0])
            value = fn(arg.meta["val"] if isinstance(arg, fx.Node) else arg)
            node = self.node("call_function", fn, (arg,), {}, value) if isinstance(arg, fx.Node) else value
        else:
            op = _SYMPY_OPS.get(type(expr).__name__)
            if op is None:
                raise FakeRunError(f"symbolic size {expr} ({type(expr).__name__}) passed to a graph operation")
            args = [self._expr_node(a) for a in expr.args]
            if op in (operator.add, operator.mul):
                args = sorted(args, key=lambda a: not isinstance(a, fx.Node))  # nodes first, numbers last
                node = functools.reduce(lambda a, b: self._binary(op, a, b), args)
            else:
                node = self._binary(op, *args)
        self._sym_nodes[expr] = node
        return node

    def _binary(self, op, a, b):
        if not isinstance(a, fx.Node) and not isinstance(b, fx.Node):
            return op(a, b)
        value = op(*(x.meta["val"] if isinstance(x, fx.Node) else x for x in (a, b)))
        return self.node("call_function", op, (a, b), {}, value)

    # ---- ops ----
    def propagate(self, kind: str, target, args: tuple, kwargs: dict, what: str):
        """What ``target`` returns on the fake values of ``args`` (nodes and constants)."""
        fake_args, fake_kwargs = _to_fake(args), _to_fake(kwargs)
        refused = in_place.refusal(target, fake_args, fake_kwargs, self._indexed)
        if refused is not None:
            raise FakeRunError(f"{what} failed while tracing: RuntimeError: {refused}")
        no_kernel = dtype_probe.refusal(target, fake_args, fake_kwargs)
        if no_kernel is not None:
            raise FakeRunError(f"{what} failed while tracing: {no_kernel}")
        if kind == "call_method":
            return self._run_fake(getattr(fake_args[0], target), fake_args[1:], fake_kwargs, f"Tensor.{target}")
        if in_place.outs(fake_kwargs) and kind != "call_method":
            plain = self._run_fake(target, fake_args, {k: v for k, v in fake_kwargs.items() if k != "out"}, what)
            if in_place.dtypes(plain) != [t.dtype for t in in_place.outs(fake_kwargs)]:
                # a reduction computes in the out's dtype (torch.sum(float_x, 0, out=int_o) sums
                # truncated values); functionalized, the result would be cast after the op
                raise FakeRunError(f"{what} failed while tracing: an out= of another dtype than the result")
        outs = in_place.input_outs(fake_kwargs, [n.meta.get("val") for n in self.graph.nodes if n.op == "placeholder"])
        before = [in_place.layout(t) for t in outs]
        result = self._run_fake(target, fake_args, fake_kwargs, what)
        if [in_place.layout(t) for t in outs] != before:
            # the fake input is resized now: this trace ends, the next breaks before the op
            raise FakeRunError(f"{what} resizes an input given as out= (its new layout is not a graph input's)")
        return result

    def _indexed(self, tensor, index):
        return self._run_fake(operator.getitem, (tensor, index), {}, "indexing")

    def node(self, kind: str, target, args: tuple, kwargs: dict, value) -> fx.Node:
        """Append an op whose result (fake) is ``value``."""
        node = self.graph.create_node(kind, target, args, kwargs)
        node.meta["val"] = value
        return node

    def getitem(self, node: fx.Node, index: int, value) -> fx.Node:
        child = self.graph.call_function(operator.getitem, (node, index))
        child.meta["val"] = value
        return child

    def erase(self, node: fx.Node) -> None:
        self.graph.erase_node(node)

    def call_leaf(self, module: torch.nn.Module, args: tuple, kwargs: dict) -> fx.Node:
        """One node calling ``module``'s forward (see fx_graph.leaf), propagated on a fake copy."""
        name = self._leaf_names.get(id(module))
        if name is None:
            base = re.sub(r"(?<!^)(?=[A-Z])", "_", type(module).__name__).lower()
            name = f"{base}_{len(self._leaf_names)}"
            self.root.add_module(name, module)
            self._leaf_names[id(module)] = name
            self._leaf_functions[name] = leaf.leaf_function(name, module)
        fake_module = self._fake_copy(module)
        result = self._run_fake(lambda *a, **kw: type(fake_module).forward(fake_module, *a, **kw),
                                _to_fake(args), _to_fake(kwargs), type(module).__name__)
        node = self.node("call_function", self._leaf_functions[name], args, kwargs, result)
        leaf.mark(node, module)
        return node

    def set_grad_enabled(self, enabled: bool) -> None:
        """Traced code entered or left a grad-mode block: the graph switches too."""
        if self.grad_enabled != enabled:
            self.graph.create_node("call_function", torch._C._set_grad_enabled, (enabled,), {})
            self.grad_enabled = enabled

    # ---- finishing ----
    def has_ops(self) -> bool:
        return any(n.op in _OPS for n in self.graph.nodes)

    def grad_used(self) -> bool:
        """Whether any part of the graph runs with grad mode on."""
        return self.grad_at_entry or any(n.target is torch._C._set_grad_enabled and n.args[0]
                                         for n in self.graph.nodes)

    def finish(self, outputs: list) -> fx.GraphModule:
        self.graph.output(tuple(outputs))
        return fx.GraphModule(self.root, self.graph, class_name="CapturedGraph")

    # ---- fake tensors ----
    def _run_fake(self, fn, args, kwargs, what: str):
        try:
            with self.fake_mode, torch.set_grad_enabled(self.grad_enabled):
                return with_python_dispatcher_fallback(fn, *args, **kwargs)
        except (DataDependentOutputException, DynamicOutputShapeException) as e:
            raise FakeRunError(f"{what} depends on tensor data ({type(e).__name__})", data_dependent=True) from None
        except Exception as e:
            text = str(e).strip().splitlines()[0] if str(e).strip() else ""
            raise FakeRunError(f"{what} failed while tracing: {type(e).__name__}: {text}") from None

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


def _to_fake(value):
    # map_aggregate (not pytree): it also maps slices, whose bounds may be size nodes
    return fx.node.map_aggregate(value, lambda v: v.meta["val"] if isinstance(v, fx.Node) else v)


# sympy node kinds of size expressions -> the Python operator computing them
_SYMPY_OPS = {"Add": operator.add, "Mul": operator.mul, "FloorDiv": operator.floordiv, "CleanDiv": operator.floordiv,
              "Mod": operator.mod, "PythonMod": operator.mod, "FloatTrueDiv": operator.truediv,
              "IntTrueDiv": operator.truediv}
_SYMPY_UNARY = {"ToFloat": torch.sym_float}

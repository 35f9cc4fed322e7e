"""GraphLowering: walk a decomposed aten graph and lower every node.

Each node becomes a ``TensorValue``. Pointwise results stay ``Lazy`` and are inlined
into their only consumer; a result with several consumers is *realized* (a
``Computation`` writing a buffer) so it is computed once — the scheduler can still
fuse it with its consumers. Reductions are realized at once. A node without a rule,
or whose rule raises ``Unlowerable``, becomes an ``ExternCall`` running the aten op
through torch on realized inputs (matmul and convolution always do: a library kernel
wins there). The result: ``nodes`` (computations and extern calls in a valid order),
the graph's ``outputs`` and the ``mutations`` written back into inputs at the end.
"""
from __future__ import annotations

import dataclasses
import math
import operator

import sympy
import torch
from torch import fx
from torch.fx.experimental.symbolic_shapes import free_unbacked_symbols

from codegen import config
from codegen.ir import indexing, sizes
from codegen.ir import (Buffer, BufferValue, Computation, Const, Lazy, Load, Op, TensorValue, as_buffer_view,
                        compute_dtype, fresh_index, unique_name, walk)
from codegen.lower import attention
from codegen.lower.layouts import (eager_strides, eager_view_strides, empty, library_layouts, realizable_strides,
                                   same_layout, shape_of, strides_match)
from codegen.lower.registry import Unlowerable, cast
from codegen.lower.rules import lookup
from fx_graph import GRAPH_ROLE
from fx_graph.overlap import broadcast_dims

aten = torch.ops.aten

# Ops that return a view of their first argument (what an output may alias).
VIEW_OPS = {aten.view, aten.permute, aten.transpose, aten.t, aten.expand, aten.slice, aten.select,
            aten.unsqueeze, aten.squeeze, aten.alias, aten.detach, aten.split, aten.split_with_sizes,
            aten.unbind, aten.as_strided, aten.diagonal, aten.unfold}


@dataclasses.dataclass(eq=False)
class ExternCall:
    """An aten op run through torch: ``outputs = target(*args, **kwargs)``."""
    name: str
    target: object
    args: tuple
    kwargs: dict
    outputs: list            # Buffers, one per tensor in the result (flattened)
    structure: object        # "tensor", or a tuple mirroring the result with output positions
    fx_nodes: list
    reason: str

    def inputs(self) -> list:
        found = []

        def visit(x):
            if isinstance(x, BufferValue):
                found.append(x)
            elif isinstance(x, (list, tuple)):
                for item in x:
                    visit(item)
            elif isinstance(x, dict):
                for item in x.values():
                    visit(item)
        visit(self.args)
        visit(self.kwargs)
        return found


@dataclasses.dataclass
class GraphOutput:
    kind: str                # "buffer", "input" (the input tensor itself), "constant" (a size too)
    value: object            # BufferValue, input position, or the constant (int or sympy size)
    view: bool = False       # eager returns a new view object here, even over a whole buffer
    own: bool = False        # eager returns a tensor of its own here (no ``_base``), even where it is
                             # part of one of the graph's buffers (``_unsafe_view`` of a matmul's)


class GraphLowering:
    def __init__(self, gm: fx.GraphModule, example_inputs: list, templates: tuple = (), emitter: str = "triton"):
        self.gm = gm
        self.templates = tuple(templates)     # template kinds the emitter has ("matmul", ...)
        self.emitter = emitter                # "triton" or "cpp": whose template heuristics apply
        self.example_inputs = list(example_inputs)
        self.device = next((x.device for x in example_inputs if isinstance(x, torch.Tensor)), None)
        self.env: dict = {}
        self.names: set = set()
        self.inputs: list = []           # Buffers of the placeholders, in order
        self.params: list = []           # the wrapper's parameters: every placeholder's name, in order
        self.size_params: dict = {}      # symbol -> the int parameter that is exactly it
        self.constants: dict = {}        # buffer name -> tensor (get_attr)
        self.constant_buffers: list = []
        self.nodes: list = []            # Computation | ExternCall, in a valid order
        self.outputs: list = []
        self.mutations: list = []        # (input Buffer, BufferValue)
        self.fallbacks: list = []        # (fx node name, target, reason)
        self.empty_buffers: list = []    # computed buffers with no elements
        self.symbolic = fx_graph_has_symbols(gm)   # sizes are sympy expressions (codegen.ir.sizes)
        self.view_bases = _eager_view_bases(gm)     # realized at once: outputs view them

    # ---------------------------------------------------------------- names, buffers
    def unique(self, name: str) -> str:
        return unique_name(name, self.names)

    def new_buffer(self, name, shape, dtype, stride=None, kind="computed") -> Buffer:
        shape = tuple(sizes.of(s) for s in shape)
        stride = tuple(sizes.of(s) for s in stride) if stride is not None else tuple(indexing.contiguous_strides(shape))
        return Buffer(self.unique(name), shape, stride, dtype, kind)

    # ---------------------------------------------------------------- driver
    def run(self) -> "GraphLowering":
        placeholders = iter(self.example_inputs)
        fused = attention.match(self.gm) if "attention" in self.templates else {}
        deferred = {n: out for out, m in fused.items() for n in m.internal}    # lowered only if not fused
        for node in self.gm.graph.nodes:
            if node in deferred:
                continue
            if node in fused:
                value = attention.lower(self, fused[node])
                if value is not None:
                    self.env[node] = value
                    continue
                for inner in self.gm.graph.nodes:         # not fused: its nodes one by one, in order
                    if deferred.get(inner) is node:
                        self.env[inner] = self._call(inner)
            if node.op == "placeholder":
                example = next(placeholders)
                is_size = isinstance(example, (int, torch.SymInt)) and not isinstance(example, bool)
                self.env[node] = self._size_input(node, example) if is_size else self._placeholder(node, example)
            elif node.op == "get_attr":
                self.env[node] = self._constant(node)
            elif node.op == "call_function":
                self.env[node] = self._call(node)
            elif node.op == "output":
                self._outputs(node)
            else:
                raise Unlowerable(f"{node.op} nodes are not supported")
        return self

    def _placeholder(self, node, example):
        val = node.meta.get("val")         # symbolic sizes (dynamic shapes) are in the fake tensor
        if isinstance(val, torch.Tensor) and val.dim() == example.dim() and val.dtype == example.dtype:
            example = val
        buffer = Buffer(self.unique(node.name), tuple(sizes.of(s) for s in example.shape),
                        tuple(sizes.of(s) for s in example.stride()), example.dtype, "input")
        self.inputs.append(buffer)
        self.params.append(buffer.name)
        return BufferValue(buffer)

    def _size_input(self, node, example):
        """An int input (a backward graph's size the forward saved): a parameter of the
        wrapper; the IR uses its size expression, whose symbols the wrapper reads from the
        tensors' sizes or from this parameter where it is exactly one symbol."""
        name = self.unique(node.name)
        self.params.append(name)
        value = _size_value(node, node.meta.get("val", example))
        if not sizes.is_static(value) and value.is_Symbol:
            self.size_params.setdefault(value, name)
        return value

    def _constant(self, node):
        value = getattr(self.gm, node.target)
        if not isinstance(value, torch.Tensor):
            return value
        buffer = Buffer(self.unique(node.name), tuple(value.shape), tuple(value.stride()), value.dtype, "constant")
        self.constants[buffer.name] = value
        self.constant_buffers.append(buffer)
        return BufferValue(buffer)

    def _call(self, node):
        val = node.meta.get("val")
        if _data_dependent(val):
            raise Unlowerable(f"the shape of {node.name} ({node.target}) depends on data")
        if isinstance(val, (torch.SymInt, torch.SymFloat, torch.SymBool)):
            return _size_value(node, val)          # sym_size and arithmetic on sizes
        args, kwargs = self._lowered(node.args), self._lowered(node.kwargs)
        if node.target is aten.copy_.default and node.args[0].op == "placeholder":
            return self._mutation(node, args[0], args[1])
        rule = lookup(node.target)
        reason = "library kernel" if rule is None and _is_library_op(node.target) else "no lowering rule"
        if rule is not None:
            mark, empty_mark = len(self.nodes), len(self.empty_buffers)
            try:
                value = rule(self, node, *args, **kwargs)
                _validate(value)
            except Unlowerable as e:
                del self.nodes[mark:]
                reason = str(e)
            except (sizes.SymbolicSizeError, TypeError) as e:
                if not self.symbolic or not _symbolic_failure(e):
                    raise
                del self.nodes[mark:]
                reason = f"not generated for symbolic sizes yet ({e})"
            else:
                if node in self.view_bases:
                    # a new tensor in eager that outputs view: its own memory, even where the
                    # rule returned another's (``clone`` of an input lowers to the input)
                    value = self.realize(value, node.name, [node.name], node,
                                         copy=not self._made_since(value, mark, empty_mark))
                elif _needs_realize(node, value):
                    value = self.realize(value, node.name, [node.name], node)
                return value
        self.fallbacks.append((node.name, str(node.target), reason))
        return self.extern(node, args, kwargs, reason)

    def _made_since(self, value, mark: int, empty_mark: int) -> bool:
        """Is ``value`` no window onto memory that existed before ``self.nodes[mark]``?"""
        view = as_buffer_view(value) if isinstance(value, TensorValue) else None
        if view is None:
            return True
        made = [c.buffer for c in self.nodes[mark:] if isinstance(c, Computation)] + self.empty_buffers[empty_mark:]
        made += [b for c in self.nodes[mark:] if isinstance(c, ExternCall) for b in c.outputs]
        return any(view.buffer is b for b in made)

    def _lowered(self, value):
        if isinstance(value, fx.Node):
            return self.env[value]
        if isinstance(value, (list, tuple)):
            return type(value)(self._lowered(v) for v in value)
        if isinstance(value, dict):
            return {k: self._lowered(v) for k, v in value.items()}
        return value

    # ---------------------------------------------------------------- realization
    def realize(self, value, name, fx_nodes, node=None, copy=False, stride=None) -> BufferValue:
        """``value`` in memory: a view of an existing buffer when it is one, else a new
        pointwise computation (laid out as ``stride`` says, else like eager's result when
        ``node`` says how)."""
        if isinstance(value, (tuple, list)):
            return type(value)(self.realize(v, name, fx_nodes, None, copy) for v in value)
        if not isinstance(value, TensorValue):
            return value
        if not copy:
            view = as_buffer_view(value)
            if view is not None and (stride is None or strides_match(view.shape, view.stride, stride)):
                empty_stride = empty(view.shape) and (stride or eager_strides(node, view.shape))
                # no element is addressed: the index arithmetic's strides (0 where it pinned a
                # dimension) mean nothing, eager's are what the caller sees
                return BufferValue(view.buffer, view.shape, empty_stride, view.offset) if empty_stride else view
        stride = stride or eager_strides(node, value.shape)
        buffer = self.new_buffer(name, value.shape, value.dtype, stride)
        if buffer.numel == 0:
            self.empty_buffers.append(buffer)            # allocated, nothing to compute
        else:
            self.nodes.append(Computation(buffer, value.load, list(fx_nodes)))
        return BufferValue(buffer)

    def reduce(self, node, value, dims, reduction, keepdim, acc_dtype, out_dtype, name) -> TensorValue:
        out_shape = [1 if d in dims else s for d, s in enumerate(value.shape) if keepdim or d not in dims]
        if not dims:      # a 0-d input: its one element, found at position 0
            if reduction in ("argmax", "argmin"):
                return Lazy(out_shape, out_dtype, lambda index: Const(0, out_dtype))
            return Lazy(out_shape, out_dtype, lambda index: cast(value.load(index), out_dtype))
        if any(value.shape[d] == 0 for d in dims):
            if reduction not in ("sum", "prod"):
                raise Unlowerable(f"{reduction} over an empty dimension")
            identity = Const(0 if reduction == "sum" else 1, compute_dtype(out_dtype))
            return Lazy(out_shape, out_dtype, lambda index: cast(identity, out_dtype))

        def body(full, value=value):
            return cast(value.load(full), acc_dtype)
        buffer = self.new_buffer(name, out_shape, out_dtype)
        if buffer.numel == 0:
            self.empty_buffers.append(buffer)            # no rows to reduce: allocated only
            return BufferValue(buffer)
        self.nodes.append(Computation(buffer, body, [node.name], tuple(value.shape), tuple(dims), reduction, keepdim))
        return BufferValue(buffer)

    def template(self, node, shape, dtype, body, template) -> BufferValue:
        """A template computation (``codegen.lower.matmul``) writing a new buffer."""
        buffer = self.new_buffer(node.name, shape, dtype, eager_strides(node, shape))
        self.nodes.append(Computation(buffer, body, [node.name], template=template))
        return BufferValue(buffer)

    # ---------------------------------------------------------------- externs
    def extern(self, node, args, kwargs, reason) -> object:
        layouts = library_layouts(node, self.device, self.gm.meta.get(GRAPH_ROLE))
        args = tuple(self._realize_arg(a, v, node, layouts.get(i)) for i, (a, v) in enumerate(zip(node.args, args)))
        kwargs = {k: self._realize_arg(node.kwargs[k], v, node) for k, v in kwargs.items()}
        val = node.meta.get("val")
        outputs = []

        def out(v, suffix):
            if isinstance(v, torch.Tensor):
                stride = layouts.get("out") if suffix == "" else None
                buffer = self.new_buffer(node.name + suffix, v.shape, v.dtype, stride or v.stride(), kind="extern")
                outputs.append(buffer)
                return BufferValue(buffer)
            if isinstance(v, (tuple, list)):
                return tuple(out(item, f"{suffix}_out{i}") for i, item in enumerate(v))
            if v is None:
                return None
            raise Unlowerable(f"{node.target} returns {type(v).__name__}")
        value = out(val, "")
        structure = "tensor" if isinstance(val, torch.Tensor) else value
        self.nodes.append(ExternCall(node.name, node.target, tuple(args), kwargs, outputs, structure,
                                     [node.name], reason))
        return value

    def _realize_arg(self, fx_arg, value, node, layout=None):
        """An extern argument in memory, laid out as eager would hand it over (library
        kernels may need a contiguous input the graph made with ``clone``), or as
        ``layout`` says (``library_layouts``); a computed one is named after the node
        producing it."""
        if isinstance(fx_arg, (list, tuple)) and isinstance(value, (list, tuple)):
            return type(value)(self._realize_arg(a, v, node) for a, v in zip(fx_arg, value))
        if not isinstance(fx_arg, fx.Node) or not isinstance(value, TensorValue):
            return self.realize(value, f"{node.name}_arg", [node.name])
        realized = self.realize(value, fx_arg.name, [fx_arg.name], fx_arg, stride=layout)
        if layout is not None:
            if not strides_match(realized.shape, realized.stride, layout):
                realized = self.realize(value, f"{fx_arg.name}_{node.name}", [fx_arg.name], fx_arg, copy=True,
                                        stride=layout)
            return realized
        if not same_layout(realized, fx_arg.meta.get("val")):
            realized = self.realize(value, fx_arg.name, [fx_arg.name], fx_arg, copy=True)
        if not isinstance(value, BufferValue):
            self.env[fx_arg] = realized                  # computed once, whoever asks next
        return realized

    # ---------------------------------------------------------------- mutations, outputs
    def _mutation(self, node, target: BufferValue, source):
        source_view = as_buffer_view(source) if isinstance(source, TensorValue) else None
        if source_view is not None and source_view.buffer is target.buffer:
            if source_view.is_whole_buffer():
                return target                                   # x.copy_(x): nothing to do
            source = self.realize(source, f"{node.name}_src", [node.name], copy=True)
        else:
            shaped = Lazy(target.shape, target.dtype, _broadcast_cast(source, target))
            source = self.realize(shaped, f"{node.name}_src", [node.name], node)
        self.mutations.append((target.buffer, source))
        return source

    def _outputs(self, node):
        items = node.args[0]
        items = list(items) if isinstance(items, (tuple, list)) else [items]
        eager_views = self.gm.meta.get("eager_views", ())
        known = len(eager_views) == len(items)
        eager_views = eager_views if known else (False,) * len(items)
        detached = _eager_detached(self.gm, len(items))
        owners: dict = {}                       # buffer name -> the node whose memory it is
        for item, view, alone in zip(items, eager_views, detached):
            if not isinstance(item, fx.Node):
                self.outputs.append(GraphOutput("constant", item))
                continue
            value = self.env[item]
            if isinstance(value, int) or isinstance(value, sympy.Expr) and value.is_integer:
                self.outputs.append(GraphOutput("constant", value))     # a size (the forward saves it)
                continue
            if not isinstance(value, TensorValue):
                raise Unlowerable(f"graph output {item.name} is not a tensor")
            bv = self._expanded_output(value, item) or self.realize(value, item.name, [item.name], item)
            if alone:          # eager's tensor of its own over another's memory (``x.detach()``)
                self.outputs.append(GraphOutput("buffer", bv, own=True))
                continue
            if bv.buffer.kind in ("extern", "computed") and not same_layout(bv, item.meta.get("val")):
                # eager's strides, gaps included: a saved-for-backward tensor that is a view
                # in eager (a chunk of a GRU's gate product) is read by the backward graph
                # with the strides it was traced with
                stride = eager_view_strides(item.meta.get("val"))
                if stride is not None or bv.buffer.kind == "extern":
                    bv = self.realize(value, item.name, [item.name], item, copy=True, stride=stride)
            root = _view_root(item)
            if bv.buffer.kind in ("extern", "computed") and owners.setdefault(bv.buffer.name, root) is not root:
                # another output's memory, where eager makes a tensor of its own (a ``clone``
                # lowered as the same values): its own copy
                bv = self.realize(value, item.name, [item.name], item, copy=True)
            if bv.buffer.kind not in ("input", "constant") and self.gm.meta.get(GRAPH_ROLE) is None \
                    and _aliased_placeholder(item) is not None:
                # a captured graph (compile_graph) returning a view of an input the index
                # arithmetic could not keep a strided view: a copy would not share its storage
                raise Unlowerable(f"output {item.name} is a view of an input not expressed as a strided view")
            if bv.buffer.kind in ("input", "constant"):
                source = _aliased_placeholder(item)
                if source is None:                      # eager returns a fresh tensor
                    bv = self.realize(value, item.name, [item.name], item, copy=True)
                elif bv.is_whole_buffer() and bv.buffer.kind == "input" and not view:
                    self.outputs.append(GraphOutput("input", self.inputs.index(bv.buffer)))
                    continue
            # an output that is a view in eager is its own tensor object (`x.view_as(x) is not x`),
            # also when it covers a whole buffer (graphs with symbolic sizes keep such views)
            own = known and not view and bv.buffer.kind in ("extern", "computed") and not bv.is_whole_buffer()
            self.outputs.append(GraphOutput("buffer", bv, view=view, own=own))
        for out in (out for out, alone in zip(self.outputs, detached) if alone):
            buffer = out.value.buffer
            if buffer.kind != "input" and not any(o is not out and o.kind == "buffer" and o.value.buffer is buffer
                                                  for o in self.outputs):
                raise Unlowerable("an output that eager detaches from another's memory is computed apart here")

    def _expanded_output(self, value, item):
        """An output eager lays out with broadcast dimensions (stride 0: a saved ``expand``
        of a norm) as the expand of a small buffer, as eager's is: the backward graph was
        traced reading it with those strides, so a dense copy would be read wrongly.
        None where ``value`` is a view of an existing buffer already or eager's layout
        has no broadcast dimension."""
        val = item.meta.get("val")
        if not isinstance(val, torch.Tensor) or shape_of(val) != tuple(value.shape):
            return None
        stride = tuple(sizes.of(s) for s in val.stride())
        broadcast = set(broadcast_dims(value.shape, stride))
        if not broadcast or as_buffer_view(value) is not None:
            return None
        small_shape = [1 if d in broadcast else s for d, s in enumerate(value.shape)]

        def load(index, value=value):
            return value.load([indexing.const(0) if d in broadcast else i for d, i in enumerate(index)])
        small_stride = realizable_strides(small_shape, stride)
        small = self.realize(Lazy(small_shape, value.dtype, load), item.name, [item.name], stride=small_stride)
        return BufferValue(small.buffer, value.shape,
                           tuple(0 if d in broadcast else st for d, st in enumerate(small.stride)), small.offset)


def _broadcast_cast(source, target):
    """A loader for ``source`` broadcast to ``target``'s shape, cast to its dtype."""
    if not isinstance(source, TensorValue):
        constant = Const(source, compute_dtype(target.dtype))
        return lambda index: cast(constant, target.dtype)
    offset = target.ndim - source.ndim

    def load(index):
        own = [indexing.const(0) if s == 1 else index[offset + d] for d, s in enumerate(source.shape)]
        return cast(source.load(own), target.dtype)
    return load


def _size_value(node, val):
    """A size the graph computes (``aten.sym_size.int``, arithmetic on sizes) as the IR's size."""
    try:
        return sizes.of(val)
    except sizes.SymbolicSizeError as e:
        raise Unlowerable(f"{node.name}: {e}") from None


def _symbolic_failure(error) -> bool:
    """A rule that compared or converted a symbolic size it cannot decide on."""
    text = str(error)
    return isinstance(error, sizes.SymbolicSizeError) or any(
        word in text.lower() for word in ("relational", "symbol", "expression"))


def fx_graph_has_symbols(gm) -> bool:
    return any(isinstance(n.meta.get("val"), torch.Tensor) and sizes.symbols(
        [sizes.of(s) for s in n.meta["val"].shape]) for n in gm.graph.nodes if n.op == "placeholder")


def _data_dependent(val) -> bool:
    """A result whose shape depends on data (boolean-mask indexing, nonzero): no kernel."""
    if isinstance(val, torch.Tensor):
        return bool(free_unbacked_symbols(val))
    if isinstance(val, (tuple, list)):
        return any(_data_dependent(v) for v in val)
    return False


def _validate(value):
    """Build every lazy body once so a rule's Unlowerable surfaces while lowering."""
    if isinstance(value, (tuple, list)):
        for item in value:
            _validate(item)
    elif isinstance(value, Lazy):
        value.load(fresh_index(value.shape))


def _needs_realize(node, value) -> bool:
    """Several consumers: compute once into a buffer (fusion may still keep it in
    registers), unless recomputing it inside every consumer is cheaper
    (``config.recompute_in_consumers``: masks from ``arange``, position ids, casts)."""
    if isinstance(value, (tuple, list)) or not isinstance(value, Lazy) or len(node.users) <= 1:
        return False
    expr = value.load(fresh_index(value.shape))
    nodes = walk(expr)
    ops = sum(1 for e in nodes if isinstance(e, Op))
    numel = max(1, math.prod(sizes.hint(s) for s in value.shape))
    reads = {}
    for load in (e for e in nodes if isinstance(e, Load)):
        # the fraction of the output's elements this input has (a broadcast bias: ~0)
        reach = math.prod(sizes.hint(v.size) for v in load.index.variables())     # gathered: its deps too
        reads[load.buffer.name] = max(reads.get(load.buffer.name, 0), min(1.0, reach / numel))
    return not config.recompute_in_consumers(sum(reads.values()), ops)


def _aliased_placeholder(node: fx.Node):
    """The placeholder an output is a view of in eager (None if eager returns a new tensor)."""
    root = _view_root(node)
    return root if root.op == "placeholder" else None


def _view_root(node: fx.Node) -> fx.Node:
    """The node whose memory ``node`` views through a chain of view ops (itself if none)."""
    while node.op == "call_function":
        if node.target is operator.getitem:
            node = node.args[0]
            continue
        packet = getattr(node.target, "overloadpacket", None)
        if packet not in VIEW_OPS or not isinstance(node.args[0], fx.Node):
            break
        node = node.args[0]
    return node


def _eager_view_bases(gm) -> set:
    """Computed nodes that an output views in eager (``a`` in ``return a, a.t()``): they
    are realized as soon as they are lowered, so the view ops after them lower to strided
    views of that buffer and the output is a view of it, as eager's is (``_base``, shared
    storage), instead of a new dense tensor computed from the same expression."""
    items = gm.graph.output_node().args[0]
    items = list(items) if isinstance(items, (tuple, list)) else [items]
    views = gm.meta.get("eager_views", ())
    if len(views) != len(items):
        return set()
    detached = _eager_detached(gm, len(items))
    roots = (_view_root(item) for item, view, alone in zip(items, views, detached)
             if (view or alone) and isinstance(item, fx.Node))
    return {root for root in roots if root.op == "call_function"}


def _eager_detached(gm, n_outputs: int) -> tuple:
    """Per output: a tensor of its own over an input's or another output's memory in
    eager (``fx_graph.decompose``'s ``eager_detached``; all False when unknown)."""
    detached = gm.meta.get("eager_detached", ())
    return detached if len(detached) == n_outputs else (False,) * n_outputs


def _is_library_op(target) -> bool:
    packet = getattr(target, "overloadpacket", None)
    return packet in (aten.mm, aten.bmm, aten.addmm, aten.baddbmm, aten.convolution,
                      aten._scaled_dot_product_flash_attention, aten._scaled_dot_product_efficient_attention,
                      aten._scaled_dot_product_attention_math)

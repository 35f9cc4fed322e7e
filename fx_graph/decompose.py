"""Decomposition of a captured FX graph to core aten ops, functionalized.

``decompose(gm, example_inputs)`` retraces a captured graph with ``make_fx`` under
fake tensors and returns a new GraphModule whose nodes are aten ops (OpOverloads),
each carrying its fake tensor in ``node.meta["val"]``:

* a decomposition table (torch's core-aten table plus a few composite ops the code
  generator prefers to see as their parts: softmax, layer norm, batch norm ...);
* functionalization: in-place ops become out-of-place ops, and a mutated graph input
  is written back by one ``aten.copy_(input, new_value)`` at the end of the graph;
* parameters and buffers of leaf modules (``nn.BatchNorm2d`` called as one graph op by
  the front end) are lifted to extra placeholders after the graph's own inputs
  (``fx_graph.lifting``), so the trace never mixes real and fake tensors and a module
  update (optimizer step, BatchNorm running statistics) is read or written at call time;
* random ops are not decomposed (``passes.is_random``): they draw eager's numbers;
* an output eager returns as a written input or a view of it (``return x.add_(1)``,
  ``x.mul_(2); return x[0]``) is functionalized into a view of the new value: it is
  pointed back at the input's placeholder (the code generator returns inputs and their
  views as the caller's tensors, after the write-back).

``gm.meta["lifted_inputs"]`` lists those extra placeholders as ``LiftedInput``s;
``lifted_values(gm)`` fetches their current tensors for a call. The decomposed graph
always returns a tuple; ``gm.meta["output_kind"]`` ("tuple", "list", "single") says
what the captured graph returned.

A graph with symbolic sizes (dynamic shapes) is retraced from its placeholders' fake
tensors, under their fake mode (the trace's ShapeEnv), so the decomposed graph keeps the
symbols: its nodes' fake tensors have ``SymInt`` sizes and sizes the graph reads are
``aten.sym_size.int`` nodes. Lifted parameters stay static.
"""
from __future__ import annotations

import contextlib
import functools

import torch
from torch import fx
from torch.fx.experimental.proxy_tensor import make_fx

from fx_graph.lifting import FlatGraph
from fx_graph.overlap import InPlaceCheck, internal_overlap
from fx_graph.passes import common_subexpressions, dead_code, is_random
from fx_graph.symbolic import has_symbolic_sizes

aten = torch.ops.aten


class DecomposeError(RuntimeError):
    """The graph cannot be retraced to aten (the caller runs it as captured)."""


# Composite ops split into their parts so the code generator can fuse them: every
# piece is a pointwise op or a reduction it lowers (softmax -> amax, sub, exp, sum, div).
_EXTRA_DECOMPOSITIONS = (
    "_softmax", "_log_softmax", "native_layer_norm", "native_group_norm", "rms_norm",
    "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
    "_native_batch_norm_legit_functional", "native_batch_norm", "silu", "hardswish", "hardsigmoid", "mish",
    "softplus", "elu", "leaky_relu", "hardtanh", "std", "rsub", "addcmul", "addcdiv",
    "lerp", "logsumexp", "glu",
)


@functools.lru_cache(maxsize=1)
def decomposition_table() -> dict:
    from torch._decomp import core_aten_decompositions, get_decompositions
    table = dict(core_aten_decompositions())
    extra = [getattr(aten, name) for name in _EXTRA_DECOMPOSITIONS if hasattr(aten, name)]
    table.update(get_decompositions(extra))
    # Random ops stay ops: run by torch on its generator, they draw eager's numbers in
    # eager's order (a decomposition may draw differently: bernoulli -> rand < p). An op
    # random only through a dropout argument (attention) still decomposes without dropout.
    return {op: (_unless_dropout(op, fn) if is_random(op) else fn) for op, fn in table.items()
            if not is_random(op) or _dropout_position(op) is not None}


# Decompositions whose outputs are not what the op's backward reads: right without
# autograd, wrong in a joint graph (the CPU flash-attention kernel's logsumexp comes
# back as the probabilities). A graph reaching them with autograd keeps the op.
_NOT_UNDER_AUTOGRAD = ("_scaled_dot_product_flash_attention_for_cpu",)


def autograd_decomposition_table() -> dict:
    """``decomposition_table()`` for tracing joint forward+backward graphs."""
    drop = {getattr(aten, name).default for name in _NOT_UNDER_AUTOGRAD if hasattr(aten, name)}
    return {op: fn for op, fn in decomposition_table().items() if op not in drop}


def _dropout_position(op) -> int | None:
    names = [a.name for a in op._schema.arguments]
    return names.index("dropout_p") if "dropout_p" in names else None


def _unless_dropout(op, fn):
    """``fn`` where the call draws no random numbers (``dropout_p == 0``); otherwise
    NotImplemented: the tracer keeps the op itself."""
    position = _dropout_position(op)

    def decompose_without_dropout(*args, **kwargs):
        p = kwargs.get("dropout_p", args[position] if position < len(args) else 0.0)
        return fn(*args, **kwargs) if p == 0 else NotImplemented
    return decompose_without_dropout


def lifted_values(gm: fx.GraphModule) -> list:
    return [lifted.fetch() for lifted in gm.meta.get("lifted_inputs", ())]


def decompose(gm: fx.GraphModule, example_inputs: list) -> fx.GraphModule:
    """``gm`` retraced to functional core aten ops (see the module docstring)."""
    if not all(isinstance(x, torch.Tensor) for x in example_inputs):
        kinds = sorted({type(x).__name__ for x in example_inputs if not isinstance(x, torch.Tensor)})
        raise DecomposeError(f"graph inputs that are not tensors: {', '.join(kinds)}")
    flat = FlatGraph(gm, len(example_inputs))
    lifted = flat.lifted
    inputs, mode, context = trace_inputs(gm, list(example_inputs) + flat.lifted_values(), len(example_inputs))
    table = decomposition_table()
    try:
        with context:
            with InPlaceCheck():       # eager's refusals of in-place writes (fx_graph.overlap)
                traced = make_fx(flat.fn, decomposition_table=table, tracing_mode=mode)(*inputs)
            # Decompositions run below functionalization and may emit in-place ops
            # (rms_norm's add_): functionalize the decomposed graph until none is left.
            for _ in range(3):
                traced = make_fx(torch.func.functionalize(traced, remove="mutations"),
                                 decomposition_table=table, tracing_mode=mode)(*inputs)
                if not _inner_mutations(traced):
                    break
    except Exception as e:  # noqa: BLE001 - any tracing failure means "run as captured"
        text = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise DecomposeError(f"make_fx failed: {type(e).__name__}: {text}") from e
    if _inner_mutations(traced):
        raise DecomposeError("in-place ops left after functionalization: "
                             + ", ".join(sorted({str(n.target) for n in _inner_mutations(traced)})))
    _refuse_overlapping_written_inputs(traced, inputs)
    _name_placeholders(traced, flat.placeholder_names())
    _return_written_inputs(traced, gm, len(example_inputs))
    dead_code(traced)
    common_subexpressions(traced)
    traced.meta["lifted_inputs"] = tuple(lifted)
    traced.meta["n_user_inputs"] = len(example_inputs)
    traced.meta["output_kind"] = flat.output_kind
    traced.meta["eager_views"] = _eager_views(gm)
    traced.meta["eager_detached"] = _eager_detached(gm)
    _refuse_views_of_detached(gm)
    return traced


def _eager_views(gm: fx.GraphModule) -> tuple:
    """Per captured output: is it a view in eager? Decomposition rewrites ops into views
    and back (``stack`` into ``unsqueeze`` + ``cat`` + ``view``), so only the captured
    graph's own fake values tell which outputs are their own tensor objects over
    another's memory."""
    outs = gm.graph.output_node().args[0]
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    vals = [getattr(item, "meta", {}).get("val", getattr(item, "meta", {}).get("example_value")) for item in outs]
    return tuple(isinstance(v, torch.Tensor) and v._is_view() for v in vals)


def _eager_detached(gm: fx.GraphModule) -> tuple:
    """Per captured output: is it a tensor of its own over an input's or another output's
    memory (``x.detach()``, ``h.data`` beside ``h``)? Functionalization makes those plain
    aliases, which the code generator would hand out as the input or the buffer itself."""
    outs = gm.graph.output_node().args[0]
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    vals = [_val(item) for item in outs]
    others = [_val(n) for n in gm.graph.nodes if n.op == "placeholder"] + vals
    storages = [[_storage(t) for t in (v, v._base) if isinstance(t, torch.Tensor)]
                if isinstance(v, torch.Tensor) else [] for v in others]

    def detached(item, v):
        if not isinstance(v, torch.Tensor) or v._is_view() or not _is_detach(item):
            return False
        return any(_storage(v) in held for j, held in enumerate(storages) if others[j] is not v)
    return tuple(detached(item, v) for item, v in zip(outs, vals))


def _refuse_views_of_detached(gm: fx.GraphModule) -> None:
    """An output viewing a detached tensor (``x.detach().t()``) over memory an input or
    another output holds: eager's ``_base`` is that detached tensor, made inside; the code
    generator would view the input or the other output's buffer instead."""
    outs = gm.graph.output_node().args[0]
    outs = list(outs) if isinstance(outs, (tuple, list)) else [outs]
    vals = [_val(item) for item in outs]
    detached = {id(_val(n)) for n in gm.graph.nodes if _is_detach(n)}
    placeholders = [_val(n) for n in gm.graph.nodes if n.op == "placeholder"]
    for i, v in enumerate(vals):
        if not isinstance(v, torch.Tensor) or not v._is_view() or id(v._base) not in detached:
            continue
        others = placeholders + [o for o in vals if o is not v and getattr(o, "_base", None) is not v._base]
        if any(isinstance(o, torch.Tensor) and _storage(o) == _storage(v) for o in others):
            raise DecomposeError(f"output {i} views a detached tensor over another's memory: not generated yet")


def _is_detach(node) -> bool:
    if not isinstance(node, fx.Node):
        return False
    if node.op == "call_method":
        return node.target == "detach"
    return node.op == "call_function" and node.target in (torch.detach, torch.Tensor.detach, aten.detach.default,
                                                           aten.alias.default)


def _val(item):
    meta = getattr(item, "meta", {})
    return meta.get("val", meta.get("example_value"))


def _storage(t: torch.Tensor) -> int:
    return t.untyped_storage()._cdata


def trace_inputs(gm, inputs, n_user):
    """(inputs to trace with, make_fx tracing mode, context): the real tensors for a
    static graph (make_fx fakes them), else the placeholders' symbolic fakes and the
    lifted tensors faked statically, traced under the trace's own fake mode."""
    if not has_symbolic_sizes(gm):
        return inputs, "fake", contextlib.nullcontext()
    fakes = [n.meta["val"] for n in gm.graph.nodes if n.op == "placeholder"]
    fake_mode = torch._guards.detect_fake_mode(fakes)
    lifted = [fake_mode.from_tensor(t, static_shapes=True) for t in inputs[n_user:]]
    return fakes + lifted, "real", fake_mode


# --------------------------------------------------------------------------- written inputs returned


def _return_written_inputs(traced: fx.GraphModule, gm: fx.GraphModule, n_user: int) -> None:
    """Outputs the captured graph returns as a written input (or a view of one) come
    out of functionalization as views of the value copied back into that input: rebuild
    each view chain on the input's placeholder instead. Raises DecomposeError when an
    output aliases a written input in a way not rebuilt here."""
    captured_in = [n.meta.get("val") for n in gm.graph.nodes if n.op == "placeholder"][:n_user]
    captured_out = gm.graph.output_node().args[0]
    captured_out = list(captured_out) if isinstance(captured_out, (tuple, list)) else [captured_out]
    placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
    written = {n.args[0]: n.args[1] for n in traced.graph.nodes
               if n.op == "call_function" and n.target is aten.copy_.default and n.args[0].op == "placeholder"}
    output = traced.graph.output_node()
    outs = list(output.args[0])
    if not written or len(outs) != len(captured_out):
        return
    for i, item in enumerate(captured_out):
        source = _input_aliased(getattr(item, "meta", {}).get("val"), captured_in)
        if source is None or not isinstance(outs[i], fx.Node) or placeholders[source] not in written:
            continue
        chain = _view_chain(outs[i])
        target = placeholders[source]
        if chain[-1] is target:
            continue
        if chain[-1] is not written[target] or not _same_layout(chain[-1], target):
            raise DecomposeError(f"output {i} is a written input or its view, not rebuilt as one")
        rebuilt = target
        with traced.graph.inserting_before(output):
            for node in reversed(chain[:-1]):
                rebuilt = traced.graph.node_copy(node, lambda a, n=node, r=rebuilt: r if a is n.args[0] else a)
        outs[i] = rebuilt
    output.args = (tuple(outs),)


def _input_aliased(fake, inputs) -> int | None:
    """The position of the input whose storage ``fake`` (an output's fake tensor) shares."""
    if not isinstance(fake, torch.Tensor):
        return None
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and x.untyped_storage()._cdata == fake.untyped_storage()._cdata:
            return i
    return None


def _view_chain(node: fx.Node) -> list:
    """[node, its view source, ..., the first node that is not a view of its first argument]."""
    chain = [node]
    while node.op == "call_function" and isinstance(node.args[0] if node.args else None, fx.Node) and _is_view(node):
        node = node.args[0]
        chain.append(node)
    return chain


def _is_view(node: fx.Node) -> bool:
    schema = getattr(node.target, "_schema", None)
    if schema is None or node.target is aten.as_strided.default:      # absolute storage offsets
        return False
    return bool(schema.returns) and schema.returns[0].alias_info is not None and not schema.is_mutable


def _same_layout(a: fx.Node, b: fx.Node) -> bool:
    """Same sizes and strides (compared as text: comparing SymInts would add guards)."""
    va, vb = a.meta.get("val"), b.meta.get("val")
    return (isinstance(va, torch.Tensor) and isinstance(vb, torch.Tensor)
            and str(tuple(va.shape)) == str(tuple(vb.shape)) and str(va.stride()) == str(vb.stride()))


# --------------------------------------------------------------------------- cleanup


def _inner_mutations(gm: fx.GraphModule) -> list:
    """In-place ops other than the final write-back of a graph input."""
    found = []
    for node in gm.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op != "call_function" or schema is None or not schema.is_mutable:
            continue
        if node.target is aten.copy_.default and node.args[0].op == "placeholder":
            continue
        found.append(node)
    return found


def _refuse_overlapping_written_inputs(traced: fx.GraphModule, inputs: list) -> None:
    """A written input with internal overlap (an expanded tensor) cannot take the new
    value copied back (eager wrote through it element by element)."""
    placeholders = [n for n in traced.graph.nodes if n.op == "placeholder"]
    for node in traced.graph.nodes:
        if node.target is aten.copy_.default and node.args[0].op == "placeholder":
            i = placeholders.index(node.args[0])
            if internal_overlap(inputs[i]):
                raise DecomposeError(f"input {i} is written and has internal overlap (a broadcast dimension): "
                                     "the result cannot be copied back into it")


def _name_placeholders(traced: fx.GraphModule, names: list) -> None:
    """Placeholders named after the captured graph's inputs (``l_x``) and the lifted
    attributes (``linear_0_weight``) instead of make_fx's ``arg0_1``."""
    taken = {n.name for n in traced.graph.nodes if n.op != "placeholder"}
    for node, name in zip([n for n in traced.graph.nodes if n.op == "placeholder"], names):
        if name not in taken and name.isidentifier():
            node._rename(name)
            node.target = node.name
            taken.add(node.name)
    traced.graph.lint()
    traced.recompile()

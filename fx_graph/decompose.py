"""Decomposition of a captured FX graph to core aten ops, functionalized.

``decompose(gm, example_inputs)`` retraces a captured graph with ``make_fx`` under
fake tensors and returns a new GraphModule whose nodes are aten ops (OpOverloads),
each carrying its fake tensor in ``node.meta["val"]``:

* a decomposition table (torch's core-aten table plus a few composite ops the code
  generator prefers to see as their parts: softmax, layer norm, batch norm ...);
* functionalization: in-place ops become out-of-place ops, and a mutated graph input
  is written back by one ``aten.copy_(input, new_value)`` at the end of the graph;
* parameters and buffers of leaf modules (``nn.Linear`` called as one graph op by the
  front end) are lifted to extra placeholders after the graph's own inputs, so the
  trace never mixes real and fake tensors and a module update (optimizer step,
  BatchNorm running statistics) is read or written at call time.

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
import copy
import dataclasses
import functools

import torch
from torch import fx
from torch.fx.experimental.proxy_tensor import make_fx

from fx_graph.leaf import leaf_module_of
from fx_graph.passes import common_subexpressions, dead_code
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
    return table


@dataclasses.dataclass(frozen=True)
class LiftedInput:
    """A leaf module's parameter or buffer, passed to the decomposed graph as a placeholder."""
    owner: torch.nn.Module
    table: str          # "_parameters" or "_buffers"
    key: str
    qualname: str       # leaf name + attribute path, for printing

    def fetch(self) -> torch.Tensor:
        return self.owner.__dict__[self.table][self.key]


def lifted_values(gm: fx.GraphModule) -> list:
    return [lifted.fetch() for lifted in gm.meta.get("lifted_inputs", ())]


def decompose(gm: fx.GraphModule, example_inputs: list) -> fx.GraphModule:
    """``gm`` retraced to functional core aten ops (see the module docstring)."""
    if not all(isinstance(x, torch.Tensor) for x in example_inputs):
        kinds = sorted({type(x).__name__ for x in example_inputs if not isinstance(x, torch.Tensor)})
        raise DecomposeError(f"graph inputs that are not tensors: {', '.join(kinds)}")
    leaves, lifted = _leaf_modules(gm)
    n_user = len(example_inputs)
    runner = _LeafLiftingInterpreter(gm, leaves)
    output_kind = {}

    def flat_fn(*flat):
        runner.lifted_tensors = flat[n_user:]
        out = runner.run(*flat[:n_user])
        output_kind["kind"] = "tuple" if isinstance(out, tuple) else "list" if isinstance(out, list) else "single"
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    inputs, mode, context = _trace_inputs(gm, list(example_inputs) + [item.fetch() for item in lifted], n_user)
    table = decomposition_table()
    try:
        with context:
            traced = make_fx(flat_fn, decomposition_table=table, tracing_mode=mode)(*inputs)
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
    _name_placeholders(traced, gm, lifted)
    dead_code(traced)
    common_subexpressions(traced)
    traced.meta["lifted_inputs"] = tuple(lifted)
    traced.meta["n_user_inputs"] = n_user
    traced.meta["output_kind"] = output_kind.get("kind", "tuple")
    return traced


def _trace_inputs(gm, inputs, n_user):
    """(inputs to trace with, make_fx tracing mode, context): the real tensors for a
    static graph (make_fx fakes them), else the placeholders' symbolic fakes and the
    lifted tensors faked statically, traced under the trace's own fake mode."""
    if not has_symbolic_sizes(gm):
        return inputs, "fake", contextlib.nullcontext()
    fakes = [n.meta["val"] for n in gm.graph.nodes if n.op == "placeholder"]
    fake_mode = torch._guards.detect_fake_mode(fakes)
    lifted = [fake_mode.from_tensor(t, static_shapes=True) for t in inputs[n_user:]]
    return fakes + lifted, "real", fake_mode


# --------------------------------------------------------------------------- leaf modules


def _leaf_modules(gm: fx.GraphModule):
    """{leaf call target: (detached copy, [names])} and the LiftedInputs, in graph order."""
    leaves, lifted = {}, []
    for node in gm.graph.nodes:
        module = leaf_module_of(node)
        if module is None or node.target in leaves:
            continue
        slots = []
        base = getattr(node.target, "__name__", type(module).__name__)
        clone = _detached_copy(module)
        clones = dict(clone.named_modules(remove_duplicate=False))
        for prefix, owner in module.named_modules(remove_duplicate=False):
            for table in ("_parameters", "_buffers"):
                for key, value in owner.__dict__[table].items():
                    if isinstance(value, torch.Tensor):
                        name = f"{prefix}.{key}" if prefix else key
                        slots.append((clones[prefix].__dict__[table], key))
                        lifted.append(LiftedInput(owner, table, key, f"{base}.{name}"))
        leaves[node.target] = (clone, slots, len(lifted) - len(slots))
    return leaves, lifted


def _detached_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A shallow copy whose parameter/buffer/submodule tables are its own: tracing puts
    fake tensors in the copy and never touches the user's module (another thread may be
    running it)."""
    clone = copy.copy(module)
    clone.__dict__["_parameters"] = dict(module._parameters)
    clone.__dict__["_buffers"] = dict(module._buffers)
    clone.__dict__["_modules"] = {k: (None if m is None else _detached_copy(m))
                                  for k, m in module._modules.items()}
    return clone


class _LeafLiftingInterpreter(fx.Interpreter):
    """Runs the captured graph, calling each leaf module with lifted tensors."""

    def __init__(self, gm, leaves):
        super().__init__(gm, garbage_collect_values=True)
        self.leaves = leaves
        self.lifted_tensors = ()

    def call_function(self, target, args, kwargs):
        leaf = self.leaves.get(target)
        if leaf is None:
            return super().call_function(target, args, kwargs)
        module, slots, start = leaf
        for (table, key), tensor in zip(slots, self.lifted_tensors[start:start + len(slots)]):
            table[key] = tensor
        # forward itself, like the captured graph's leaf call: hooks are already in the graph.
        return type(module).forward(module, *args, **kwargs)


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


def _name_placeholders(traced: fx.GraphModule, gm: fx.GraphModule, lifted) -> None:
    """Placeholders named after the captured graph's inputs (``l_x``) and the lifted
    attributes (``linear_0_weight``) instead of make_fx's ``arg0_1``."""
    names = [n.name for n in gm.graph.nodes if n.op == "placeholder"]
    names += [item.qualname.replace(".", "_") for item in lifted]
    taken = {n.name for n in traced.graph.nodes if n.op != "placeholder"}
    for node, name in zip([n for n in traced.graph.nodes if n.op == "placeholder"], names):
        if name not in taken and name.isidentifier():
            node._rename(name)
            node.target = node.name
            taken.add(node.name)
    traced.graph.lint()
    traced.recompile()

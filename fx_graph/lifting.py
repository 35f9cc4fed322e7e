"""A captured graph as a flat function of tensors, with leaf modules' state lifted.

The front end keeps some torch modules (``nn.BatchNorm2d``, ``nn.LSTM`` ...) as one
graph op that runs the live module. Tracing that op to aten (``make_fx``, AOT autograd)
must not put fake tensors into the user's module, and a module update (optimizer
step, BatchNorm running statistics) must be read or written at call time. So every
parameter and buffer of a leaf module becomes an extra input of the flat function,
after the graph's own inputs, described by a ``LiftedInput``:

    flat = FlatGraph(gm, n_user_inputs=2)
    flat.fn(x, y, *flat.lifted_values())     # -> tuple of the graph's outputs
    flat.output_kind                        # "tuple" | "list" | "single" (after a call)

``flat.fn`` runs the captured graph node by node; each leaf module call runs the
module's ``forward`` on a detached shallow copy whose parameter and buffer tables hold
the lifted tensors, so in-place updates of a buffer (``num_batches_tracked.add_(1)``)
are updates of a flat input, which functionalization turns into input mutations.
"""
from __future__ import annotations

import copy
import dataclasses
import math

import torch
from torch import fx
from torch.fx.experimental.symbolic_shapes import guard_int

from fx_graph import attention_op
from fx_graph.leaf import leaf_module_of
from fx_graph.symbolic import with_python_dispatcher_fallback


@dataclasses.dataclass(frozen=True)
class LiftedInput:
    """A leaf module's parameter or buffer, passed to the flat function as an input."""
    owner: torch.nn.Module
    table: str          # "_parameters" or "_buffers"
    key: str
    qualname: str       # leaf name + attribute path, for printing

    def fetch(self) -> torch.Tensor:
        return self.owner.__dict__[self.table][self.key]


class FlatGraph:
    """``gm`` as ``fn(*user_inputs, *lifted_inputs) -> tuple``; see the module docstring."""

    def __init__(self, gm: fx.GraphModule, n_user_inputs: int, fused_attention: bool = False):
        self.gm = gm
        self.n_user = n_user_inputs
        leaves, self.lifted = _leaf_modules(gm)
        self._runner = _LeafLiftingInterpreter(gm, leaves, fused_attention)
        self.output_kind = "tuple"

    def lifted_values(self) -> list:
        return [item.fetch() for item in self.lifted]

    def fn(self, *flat):
        self._runner.lifted_tensors = flat[self.n_user:]
        out = self._runner.run(*flat[:self.n_user])
        self.output_kind = output_kind(out)
        return tuple(out) if isinstance(out, (tuple, list)) else (out,)

    def placeholder_names(self) -> list:
        """Names for the flat inputs: the captured graph's placeholders, then the lifted
        attributes (``linear_0_weight``)."""
        names = [n.name for n in self.gm.graph.nodes if n.op == "placeholder"]
        return names + [item.qualname.replace(".", "_") for item in self.lifted]


def output_kind(out) -> str:
    return "tuple" if isinstance(out, tuple) else "list" if isinstance(out, list) else "single"


def restore_output_kind(outs, kind: str):
    """The flat tuple of outputs in the container the captured graph returned."""
    if kind == "single":
        return outs[0]
    return list(outs) if kind == "list" else tuple(outs)


def _leaf_modules(gm: fx.GraphModule):
    """{leaf call target: (detached copy, slots, first lifted index)} and the
    LiftedInputs, in graph order."""
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

    def __init__(self, gm, leaves, fused_attention: bool = False):
        super().__init__(gm, garbage_collect_values=True)
        self.leaves = leaves
        self.lifted_tensors = ()
        self.fused_attention = fused_attention

    def run_node(self, node):
        if node.op == "call_function" and node.target is torch._C._nn.scaled_dot_product_attention:
            args, kwargs = self.fetch_args_kwargs_from_env(node)
            out = attention_above_autograd(*args, fused=self.fused_attention, **kwargs)
            if out is not None:
                return _like(out, node.meta.get("val"))
        return with_python_dispatcher_fallback(super().run_node, node)

    def call_function(self, target, args, kwargs):
        leaf = self.leaves.get(target)
        if leaf is None:
            return super().call_function(target, args, kwargs)
        module, slots, start = leaf
        for (table, key), tensor in zip(slots, self.lifted_tensors[start:start + len(slots)]):
            table[key] = tensor
        # forward itself, like the captured graph's leaf call: hooks are already in the graph.
        return type(module).forward(module, *args, **kwargs)


def attention_above_autograd(query, key, value, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None,
                             enable_gqa=False, *, fused=False):
    """``scaled_dot_product_attention`` as its math composite (matmuls and a softmax),
    differentiated op by op; None with dropout (the op keeps eager's random draws).
    On CPU, sdpa runs a fused kernel whose backward reads the forward's logsumexp; the
    decomposition table's version of that kernel returns the probabilities in its place,
    right without autograd but giving wrong gradients in a joint graph. Decomposed here,
    above autograd, the code generator sees (and fuses) the pattern in both halves.
    ``fused`` (an emitter with flash-attention templates): where autograd differentiates
    it, the op becomes ``capture::flash_attention`` instead (``fx_graph.attention_op``:
    the forward saves the logsumexp, the backward is one op the templates compute)."""
    if dropout_p != 0:
        return None
    scale = _pinned_head_sizes(query, value, scale)
    if attn_mask is not None and attn_mask.dtype == torch.bool:    # as sdpa does before its kernels
        attn_mask = torch.where(attn_mask.logical_not(), float("-inf"), 0.0).to(query.dtype)
    differentiated = torch.is_grad_enabled() and any(t.requires_grad for t in (query, key, value))
    if fused and differentiated and attention_op.use_fused(query, key, value, attn_mask, dropout_p, enable_gqa):
        return attention_op.fused_attention(query, key, value, attn_mask, is_causal, scale, enable_gqa)
    return torch.ops.aten._scaled_dot_product_attention_math.default(
        query, key, value, attn_mask, 0.0, is_causal, None, scale=scale, enable_gqa=enable_gqa)[0]


def _pinned_head_sizes(query, value, scale):
    """Head widths as numbers (a symbolic one, e.g. under ``dynamic=True``, is specialized
    to this call's value and guarded), and the scale: generated code holds a head as one
    block (the attention template's ``BLOCK_D``), and the default scale ``1/sqrt(E)`` would
    otherwise be a float computed from a size, which generated code does not carry. Head
    widths are a model's constants: pinning them costs no recompile over batch sizes and
    sequence lengths."""
    head = query.shape[-1]
    for width in (head, value.shape[-1]):
        if isinstance(width, torch.SymInt):
            _pin(width)
    if scale is None and isinstance(head, torch.SymInt):
        scale = 1.0 / math.sqrt(guard_int(head))
    return scale


def _pin(width: torch.SymInt) -> int:
    """``width`` as a number, recorded as a specialization with its reason where the
    trace's frame keeps them (the recompile advice and ``explain`` name it)."""
    shapes = getattr(width.node.shape_env, "capture_frame_shapes", None)
    if shapes is None or width.node.maybe_as_int() is not None:       # pinned already
        return guard_int(width)
    return shapes.specialize(width, None, "attention head width: generated attention holds one head as one "
                                          "block, so each head width compiles its own kernels")


def _exprs(sizes) -> tuple:
    """Sizes as expressions (a size specialized while tracing, ``_pinned_head_sizes``, is
    its number: comparing its SymInt with the tracer's would need it tracked)."""
    return tuple(s.node.expr if isinstance(s, torch.SymInt) else s for s in sizes)


def _like(out: torch.Tensor, promised) -> torch.Tensor:
    """``out`` in the layout the captured graph promised (eager's kernel's strides), and
    no view where eager's is none: the composite ends in a view of its last product
    (4-d matmul: ``bmm(...).view``), which AOT autograd would hand back as a view of that
    product (``_base`` set) where eager's fused kernel returns a tensor of its own."""
    if not isinstance(promised, torch.Tensor) or out.dim() != promised.dim():
        return out
    if _exprs(out.stride()) != _exprs(promised.stride()) and out.stride() != promised.stride():
        return torch.empty_strided(out.shape, promised.stride(), dtype=out.dtype, device=out.device).copy_(out)
    if out._is_view() and not promised._is_view():
        return torch.ops.aten._unsafe_view(out, out.shape)
    return out

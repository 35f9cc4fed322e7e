"""Split a joint forward+backward graph into the two graphs we compile.

functorch's min-cut partitioner decides what the forward saves for the backward:
it saves what is expensive to recompute (matmuls, reductions, random ops) and lets
the backward recompute cheap pointwise chains when that saves memory — so the saved
activations never exceed what eager keeps. Two rules we hold it to, checked on its
result rather than trusted:

* a random op never runs again in the backward (a dropout mask must be the one the
  forward drew: recomputing it would draw new numbers and advance the generator);
* the forward saves no more bytes than the default partition (which recomputes
  nothing and saves what eager's autograd would).

If either fails, the default partition is used. An op that reads a graph input
directly is never recomputed (the backward would then need the caller's tensor, which
the caller may change in place before ``backward()`` where eager kept its own copy).
And one thing functorch gets wrong:
a forward that saves a graph input the graph also mutates (or a view of one, or an input
sharing its storage: views of one base share a version counter) saves the caller's
tensor, which the mutation — applied after the forward — then changes before the
backward reads it (autograd raises "modified by an inplace operation", where eager,
which mutated in program order, saved it after the change); such a saved value is
cloned in the forward (``_protect_mutated_inputs``). ``saved_bytes(fw_gm)`` is the size of the
tensors a forward graph saves. The backward graph carries, in
``meta["grad_dependencies"]``, which output gradients each input gradient reads
(``fx_graph.grad_presence``).
"""
from __future__ import annotations

import logging
import operator

import torch
from torch import fx

from fx_graph import aot_bridge, grad_presence
from fx_graph.passes import is_random

log = logging.getLogger("capture.output_code")


def partitioner(shares_storage: frozenset = frozenset()):
    """The partition function for AOT autograd. ``shares_storage``: flat input positions
    that share storage with another input (see ``_protect_mutated_inputs``)."""
    def partition(joint_gm: fx.GraphModule, joint_inputs, *, num_fwd_outputs: int, **kwargs):
        _save_values_computed_from_inputs(joint_gm)
        _read_unused_multi_outputs(joint_gm)
        memories = _output_memories(joint_gm, num_fwd_outputs)      # before min-cut's CSE
        # min-cut rewrites the joint graph it is given (CSE): the default partition gets a copy
        default = aot_bridge.default_partition(_copy(joint_gm), joint_inputs, num_fwd_outputs=num_fwd_outputs,
                                               **kwargs)
        fw, bw = aot_bridge.min_cut_partition(joint_gm, joint_inputs, num_fwd_outputs=num_fwd_outputs, **kwargs)
        recomputed = [n.name for n in bw.graph.nodes if n.op == "call_function" and is_random(n.target)]
        if recomputed:
            log.debug("compiled path: default partition (the backward would run %s again)", ", ".join(recomputed))
            fw, bw = default
        elif saved_bytes(fw, num_fwd_outputs) > saved_bytes(default[0], num_fwd_outputs):
            log.debug("compiled path: default partition (min-cut saves more bytes)")
            fw, bw = default
        _protect_mutated_inputs(fw, _overwritten_placeholders(joint_gm, shares_storage), num_fwd_outputs)
        _keep_outputs_apart(fw, memories)
        bw.meta["grad_dependencies"] = grad_presence.dependencies(bw, _tangent_keys(joint_gm))
        return fw, bw
    return partition


def _read_unused_multi_outputs(joint_gm: fx.GraphModule) -> None:
    """Give an op returning several tensors that nothing reads a reader of its first.

    A random op whose results are dead stays in the graph (it advances the generator
    as eager's did: ``F.dropout(x)`` assigned and never used), and functorch's default
    partition takes an op with several results for a tensor unless every user of it is
    a ``getitem`` and it has at least one (it raised "Expected native_dropout to be a
    tensor"). The reader saves nothing and is dropped again with the dead code."""
    for node in list(joint_gm.graph.nodes):
        val = node.meta.get("val")
        if node.op == "call_function" and not node.users and isinstance(val, (tuple, list)) and val:
            with joint_gm.graph.inserting_after(node):
                first = joint_gm.graph.call_function(operator.getitem, (node, 0))
            first.meta["val"] = val[0]
            first.meta.update({k: node.meta[k] for k in ("partitioner_tag",) if k in node.meta})
    joint_gm.recompile()


def _save_values_computed_from_inputs(joint_gm: fx.GraphModule) -> None:
    """Forbid recomputing the forward ops that read a graph input directly.

    Recomputing ``a = x * 2`` in the backward means saving the caller's ``x`` instead
    of ``a``; eager saves ``a``, so if the caller changes ``x`` in place before calling
    ``backward()`` eager works and the compiled graph would raise. Ops further from
    the inputs stay free to recompute."""
    from torch.utils.checkpoint import CheckpointPolicy
    backward = set()
    for node in joint_gm.graph.nodes:
        if aot_bridge.is_tangent(node):
            backward.add(node)
        elif any(arg in backward for arg in node.all_input_nodes):
            backward.add(node)
    readers = [user for node in joint_gm.graph.nodes if node.op == "placeholder" and node not in backward
               for user in _through_views(node)]
    for node in readers:
        if node not in backward and node.op == "call_function":
            node.meta["recompute"] = CheckpointPolicy.MUST_SAVE


def _through_views(node: fx.Node) -> list:
    """The users of ``node``, looking through view ops to the ops that compute."""
    found = []
    for user in node.users:
        if user.op == "call_function" and user.target in _VIEWS:
            found += _through_views(user)
        else:
            found.append(user)
    return found


def _copy(gm: fx.GraphModule) -> fx.GraphModule:
    """A copy of ``gm`` with its own graph and nodes (node metadata shared)."""
    graph = fx.Graph()
    mapping: dict = {}
    out = graph.graph_copy(gm.graph, mapping)
    output = graph.output(out)
    output.meta = dict(next(n for n in reversed(gm.graph.nodes) if n.op == "output").meta)
    for old, new in mapping.items():
        new.meta = dict(old.meta)
    copied = fx.GraphModule(gm, graph)
    copied.meta = dict(gm.meta)
    return copied


def _tangent_keys(joint_gm: fx.GraphModule) -> dict:
    """Tangent placeholder name -> the traced output it is the gradient of, or None (see
    ``fx_graph.grad_presence``)."""
    return {node.name: aot_bridge.output_position(node.meta["desc"])
            for node in joint_gm.graph.nodes if aot_bridge.is_tangent(node)}


def _overwritten_placeholders(joint_gm: fx.GraphModule, shares_storage: frozenset) -> set:
    """Names of the joint graph's inputs whose memory (or version counter) the call
    changes after the forward: inputs it mutates, and if it mutates any, inputs sharing
    storage with another (views of one base share its version counter)."""
    output = next(n for n in reversed(joint_gm.graph.nodes) if n.op == "output")
    mutated = {getattr(d, "mutated_input", None) for d in output.meta.get("desc", ())} - {None}
    names = set()
    for node in joint_gm.graph.nodes:
        desc = node.meta.get("desc")
        if node.op != "placeholder" or aot_bridge.is_tangent(node):
            continue
        if desc in mutated or (mutated and aot_bridge.input_position(desc) in shares_storage):
            names.add(node.name)
    return names


def _protect_mutated_inputs(fw_gm: fx.GraphModule, mutated: set, num_fwd_outputs: int) -> None:
    """Save a clone of each saved value that is (a view of) an input in ``mutated``."""
    output = next(n for n in reversed(fw_gm.graph.nodes) if n.op == "output")
    values = list(output.args[0])
    changed = False
    for i in range(num_fwd_outputs, len(values)):
        node = values[i]
        if isinstance(node, fx.Node) and isinstance(node.meta.get("val"), torch.Tensor):
            root = _storage_root(node)
            if root.op == "placeholder" and root.name in mutated:
                with fw_gm.graph.inserting_before(output):
                    clone = fw_gm.graph.call_function(torch.ops.aten.clone.default, (node,))
                clone.meta["val"] = node.meta["val"]
                values[i] = clone
                changed = True
    if changed:
        output.args = (tuple(values),) + tuple(output.args[1:])
        fw_gm.recompile()


def _output_memories(gm: fx.GraphModule, count: int) -> list:
    """The memory each of the first ``count`` outputs is (``_memory``)."""
    output = next(n for n in reversed(gm.graph.nodes) if n.op == "output")
    return [_memory(n) if isinstance(n, fx.Node) else None for n in output.args[0][:count]]


def _keep_outputs_apart(fw_gm: fx.GraphModule, joint_memories: list) -> None:
    """Clone a forward output that shares memory with an earlier one only because the
    min-cut partitioner's CSE merged two equal ops returning several tensors (two
    ``x.topk(2)``: its CSE keeps nodes whose tensors alias outputs, not tuples): eager
    returns two tensors of their own, and a write to one must not change the other."""
    output = next(n for n in reversed(fw_gm.graph.nodes) if n.op == "output")
    values = list(output.args[0])
    seen: dict = {}
    for i, (node, before) in enumerate(zip(values, joint_memories)):
        if not isinstance(node, fx.Node) or before is None:
            continue
        now = _memory(node)
        first = seen.setdefault(now, i)
        if first != i and joint_memories[first] != before:
            with fw_gm.graph.inserting_before(output):
                clone = fw_gm.graph.call_function(torch.ops.aten.clone.default, (node,))
            clone.meta["val"] = node.meta["val"]
            values[i] = clone
    if values != list(output.args[0]):
        output.args = (tuple(values),) + tuple(output.args[1:])
        fw_gm.recompile()


def _memory(node: fx.Node) -> tuple:
    """Which result's memory ``node``'s tensor is: (node, None), or (op, k) for the k-th
    tensor of an op returning several, looking through view ops."""
    while node.op == "call_function" and isinstance(node.args[0] if node.args else None, fx.Node):
        if node.target is operator.getitem:
            return (node.args[0].name, node.args[1])
        schema = getattr(node.target, "_schema", None)
        alias = schema.returns[0].alias_info if schema is not None and schema.returns else None
        if alias is None or alias.is_write:
            break
        node = node.args[0]
    return (node.name, None)


def saved_bytes(fw_gm: fx.GraphModule, num_fwd_outputs: int) -> int:
    """Bytes of the tensors the forward returns beyond its first ``num_fwd_outputs``
    (those saved for the backward), not counting graph inputs (parameters, inputs:
    they exist anyway); views of one tensor count once."""
    output = next(n for n in reversed(fw_gm.graph.nodes) if n.op == "output")
    roots = {_storage_root(node) for node in output.args[0][num_fwd_outputs:] if isinstance(node, fx.Node)}
    total = 0
    for root in roots:
        val = root.meta.get("val")
        if root.op != "placeholder" and isinstance(val, torch.Tensor):
            total += val.numel() * val.element_size()
    return total


_VIEWS = {torch.ops.aten.view.default, torch.ops.aten.t.default, torch.ops.aten.permute.default,
          torch.ops.aten.transpose.int, torch.ops.aten.expand.default, torch.ops.aten.slice.Tensor,
          torch.ops.aten.select.int, torch.ops.aten.unsqueeze.default, torch.ops.aten.squeeze.dim,
          torch.ops.aten.alias.default, torch.ops.aten._unsafe_view.default, torch.ops.aten.as_strided.default}


def _storage_root(node: fx.Node) -> fx.Node:
    """The node whose result owns the storage ``node``'s result views."""
    while node.op == "call_function" and node.target in _VIEWS and isinstance(node.args[0], fx.Node):
        node = node.args[0]
    return node

"""Small graph passes on aten graphs: dead code and common subexpressions.

Both keep every op whose effect is not its result alone: in-place/out= ops (the final
``copy_`` into a mutated input) and random ops (dropping or merging one would change
what the generator produces next).
"""
from __future__ import annotations

import torch
from torch import fx
from torch.multiprocessing.reductions import StorageWeakRef


def is_impure(node: fx.Node) -> bool:
    if node.op in ("placeholder", "output"):
        return True
    if node.op != "call_function":
        return node.op != "get_attr"
    target = node.target
    schema = getattr(target, "_schema", None)
    if schema is not None:
        if schema.is_mutable:
            return True
        return is_random(target)
    return not _known_pure(target)


def is_random(op) -> bool:
    """An op drawing from torch's generator (``bernoulli``, ``rand_like``, ``native_dropout``)."""
    return torch.Tag.nondeterministic_seeded in getattr(op, "tags", ())


def _known_pure(target) -> bool:
    import operator
    return target in (operator.getitem,)


def dead_code(gm: fx.GraphModule) -> int:
    """Remove nodes whose results are unused and that have no effect; returns the count."""
    removed = 0
    for node in reversed(list(gm.graph.nodes)):
        if not node.users and not is_impure(node):
            gm.graph.erase_node(node)
            removed += 1
    if removed:
        gm.recompile()
    return removed


def _key(value):
    """Hashable form of an argument; distinguishes 1, 1.0 and True."""
    if isinstance(value, fx.Node):
        return ("node", value)
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, tuple(_key(v) for v in value))
    if isinstance(value, dict):
        return ("dict", tuple((k, _key(v)) for k, v in value.items()))
    if isinstance(value, float) and value != value:
        return ("nan", id(value))  # NaN never equals itself: never merged
    try:
        hash(value)
    except TypeError:
        return ("id", id(value))
    return (type(value).__name__, value)


def common_subexpressions(gm: fx.GraphModule) -> int:
    """Merge pure call_function nodes with the same target and arguments; returns the count.
    Two graph outputs are never merged: eager returns them as distinct tensors; nor two
    nodes whose results share memory with outputs (the ``topk`` two outputs' ``getitem``s
    come from, the bases of two output views): the outputs would share a buffer."""
    seen: dict = {}
    merged = 0
    outputs = _output_memory_nodes(gm) if gm.graph.find_nodes(op="output") else set()
    for node in list(gm.graph.nodes):
        if node.op != "call_function" or is_impure(node):
            continue
        key = (node.target, _key(node.args), _key(node.kwargs))
        twin = seen.get(key)
        if twin is None or node in outputs and twin in outputs:
            seen.setdefault(key, node)
            continue
        node.replace_all_uses_with(twin)
        gm.graph.erase_node(node)
        merged += 1
    if merged:
        gm.recompile()
    return merged


def _output_memory_nodes(gm: fx.GraphModule) -> set:
    """The outputs and every node whose result (a tensor, or one of a tuple's) shares a
    storage with an output, by the fake tensors' storages."""
    outputs = set(gm.graph.output_node().all_input_nodes)
    storages = set().union(*(_storages(n.meta.get("val")) for n in outputs))
    return outputs | {n for n in gm.graph.nodes if storages & _storages(n.meta.get("val"))}


def _storages(value) -> set:
    if isinstance(value, (tuple, list)):
        return set().union(*(_storages(v) for v in value))
    if not isinstance(value, torch.Tensor):
        return set()
    try:
        return {StorageWeakRef(value.untyped_storage())}
    except (NotImplementedError, RuntimeError):           # sparse, nested: no one storage
        return set()

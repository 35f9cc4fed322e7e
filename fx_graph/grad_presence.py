"""Gradients eager leaves as None stay None through a compiled backward.

AOT autograd wraps a whole forward graph in one ``autograd.Function``. When backward
reaches it, autograd hands it zeros for every output the loss does not depend on, and
the compiled backward returns a gradient — zeros — for every input that requires
grad. Eager computes no gradient for an input that only feeds unused outputs:
``.grad`` stays None (optimizers skip such a parameter; AdamW would otherwise decay
it), and autograd does not walk into that input's history (which may be freed).

So each call records which of its outputs receive a gradient, and the backward drops
(returns None for) the input gradients that depend only on outputs that received none:

* the partitioner notes, per backward output, which forward outputs' gradients
  ("tangents") it reads (``dependencies``: the traced function's output positions;
  None for a gradient that reads another tangent — a mutated input's new value, whose
  gradient arrives through the ``copy_`` AOT autograd applies: it always flows);
* per call, a hook on each output of the ``autograd.Function`` marks whether a
  gradient arrived. Autograd runs a node's output hooks immediately before the node,
  for every output, with None for the unused ones — so the hooks of the call whose
  backward runs next are the last ones fired, and a thread-local hands their record
  over. No hook, no record: every gradient flows, as AOT autograd computed it;
* ``without_unused_gradients`` wraps the compiled backward.
"""
from __future__ import annotations

import threading

import torch
from torch import fx

_pending = threading.local()


class CallRecord:
    """Which outputs of one call received a gradient in the current backward."""

    __slots__ = ("present", "__weakref__")

    def __init__(self):
        self.present: set = set()

    def hook(self, position: int):
        def arrived(grad):
            if grad is None:
                self.present.discard(position)
            else:
                self.present.add(position)
            _pending.record = self
        return arrived


def track(outputs) -> None:
    """Hook this call's outputs that require grad, if they are all outputs of one
    autograd node (else leave every gradient flowing)."""
    hooked = [(i, out) for i, out in enumerate(outputs) if isinstance(out, torch.Tensor) and out.grad_fn is not None]
    if not hooked or len({id(out.grad_fn) for _, out in hooked}) != 1:
        return
    record = CallRecord()
    for i, out in hooked:
        out.register_hook(record.hook(i))


def without_unused_gradients(backward, dependencies: list):
    """``backward`` (boxed) returning None for gradients that depend only on tangents of
    outputs that received no gradient in this backward."""
    def call(args: list):
        record = getattr(_pending, "record", None)
        _pending.record = None
        grads = backward(args)
        if record is None:
            return grads
        return [None if deps is not None and not (deps & record.present) else g for g, deps in zip(grads, dependencies)]
    call._boxed_call = True
    return call


def dependencies(bw_gm: fx.GraphModule, tangent_keys: dict) -> list:
    """Per output of the backward graph, the keys of the tangents it reads (None: one of
    them has no key, or the output is not a tensor)."""
    reads: dict = {}
    for node in bw_gm.graph.nodes:
        if node.op == "placeholder":
            reads[node] = {node.name} if node.name in tangent_keys else set()
        else:
            reads[node] = set().union(*(reads[a] for a in node.all_input_nodes)) if node.all_input_nodes else set()
    output = next(n for n in reversed(bw_gm.graph.nodes) if n.op == "output")
    result = []
    for value in output.args[0]:
        names = reads.get(value, set()) if isinstance(value, fx.Node) else set()
        keys = {tangent_keys[name] for name in names}      # output positions, None for other tangents
        result.append(None if not isinstance(value, fx.Node) or not keys or None in keys else frozenset(keys))
    return result

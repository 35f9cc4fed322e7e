"""Hold a compiled functional graph to the layouts its graph promised.

AOT autograd traces with fake tensors and trusts their strides: the backward graph is
traced for saved activations laid out as the forward graph's outputs say, and aliased
outputs are rebuilt from a base laid out as traced. A code generator that gives an
output other strides (a non-dense result made contiguous), or an input that arrives
with other strides, would make later kernels read the wrong elements. So every
compiled graph is called through ``held_to_layouts``: an input whose strides differ
from the example input's is copied into the expected layout, an output whose strides
differ from its ``meta["val"]`` likewise, and the count of such copies is kept
(``FixupCounter``: zero for our code generator, the tests check it); a graph with
symbolic sizes is not held (see ``_unviewing``). An output that is
a view of the generator's own buffer is handed out as a plain tensor over the same
storage (``unviewed``): which outputs are views is the compiled path's business.
"""
from __future__ import annotations

import dataclasses
import logging

import torch
from torch import fx

from fx_graph.overlap import broadcast_dims, dense_layout, is_dense

log = logging.getLogger("capture.output_code")
aten = torch.ops.aten


@dataclasses.dataclass
class FixupCounter:
    inputs: int = 0
    outputs: int = 0

    @property
    def total(self) -> int:
        return self.inputs + self.outputs


class LayoutError(RuntimeError):
    """An input the graph writes into arrived with other strides (an internal error:
    front-end guards and AOT autograd both promise the traced layout)."""


def held_to_layouts(compiled, gm: fx.GraphModule, example_inputs: list, counter: FixupCounter):
    """``compiled(*inputs)`` as a boxed callable (``fn(list_of_inputs)``, what AOT
    autograd calls) that restrides mismatching inputs and outputs.

    It runs on every compiled call, so it is generated per graph with each check
    written out (``_held_source``: one ``stride()`` per tensor when everything matches,
    the usual case; its source is the callable's ``source``); only a mismatch takes the
    per-tensor path. Its ``direct(lifted_values, output_kind)`` makes the compiled path's
    fast path of the same graph (``_direct_source``; None for a graph with symbolic sizes)."""
    values = _output_values(gm)
    views = [i for i, v in enumerate(values) if isinstance(v, torch.Tensor)]
    if _symbolic(list(example_inputs) + values):
        return _unviewing(compiled, views)
    inputs, outputs = _layouts(example_inputs), _layouts(values)
    written = _written_inputs(gm)
    role = gm.meta.get("compiled_path_role")

    def restride_inputs(args: list) -> None:
        _restride_inputs(args, inputs, written, counter)

    def restride_outputs(outs: list) -> None:
        _restride_outputs(outs, outputs, counter, role)

    def unviewed_views(outs) -> list:
        return [unviewed(o) if i in views and o._base is not None else o for i, o in enumerate(outs)]
    namespace = {"compiled": compiled, "Tensor": torch.Tensor, "unviewed": unviewed, "unviewed_views": unviewed_views,
                 "restride_inputs": restride_inputs, "restride_outputs": restride_outputs,
                 "_grad_enabled": torch.is_grad_enabled, "_set_grad_enabled": torch._C._set_grad_enabled}
    call = _generated(_held_source(inputs, outputs, views), namespace)
    call._boxed_call = True

    def direct(lifted_values, output_kind: str):
        return _generated(_direct_source(inputs, outputs, views, lifted_values is not None, output_kind),
                          {**namespace, "lifted_values": lifted_values})
    call.direct = direct
    return call


def _generated(source: str, namespace: dict):
    exec(compile(source, "<capture layout holder>", "exec"), namespace)
    function = namespace[source[4:source.index("(")]]
    function.source = source
    return function


def _held_source(inputs: list, outputs: list, views: list) -> str:
    """The holder of one graph, e.g. for one input and one output::

        def held(args):
            if args[0].stride() != (1000, 1):
                restride_inputs(args)
            outs = list(compiled(*args))
            args.clear()
            if isinstance(outs[0], Tensor) and outs[0].stride() != (1000, 1):
                restride_outputs(outs)
            if outs[0]._base is not None:
                outs[0] = unviewed(outs[0])
            return outs
    """
    lines = ["def held(args):"]
    if inputs:
        lines += _any([f"args[{i}].stride() != {stride!r}" for i, _, stride in inputs])
        lines += ["        restride_inputs(args)"]
    lines += ["    outs = list(compiled(*args))",
              "    args.clear()                      # AOT autograd hands the list over: free inputs early"]
    if outputs:
        lines += _any([f"isinstance(outs[{i}], Tensor) and outs[{i}].stride() != {stride!r}"
                       for i, _, stride in outputs]) + ["        restride_outputs(outs)"]
    for i in views:
        lines += [f"    if outs[{i}]._base is not None:", f"        outs[{i}] = unviewed(outs[{i}])"]
    return "\n".join(lines + ["    return outs"]) + "\n"


def _direct_source(inputs: list, outputs: list, views: list, lifted: bool, output_kind: str) -> str:
    """The compiled path's fast path (``compiled_path.CompiledCapture.entry``: an inference
    graph with nothing to put back) held to layouts in one function: unboxed (the
    caller's arguments, then the lifted parameters and buffers), grad mode off around
    the call (AOT autograd's wrapper would do only that: outputs must not require grad
    when an input does), the outputs in the captured graph's container, e.g.::

        def direct(*args):
            if args[0].stride() != (1000, 1):
                args = list(args)
                restride_inputs(args)
            if _grad_enabled():
                _set_grad_enabled(False)
                try:
                    outs = compiled(*args)
                finally:
                    _set_grad_enabled(True)
            else:
                outs = compiled(*args)
            if isinstance(outs[0], Tensor) and outs[0].stride() != (1000, 1):
                outs = list(outs)
                restride_outputs(outs)
            if outs[0]._base is not None:
                outs = unviewed_views(outs)
            return tuple(outs)
    """
    lines = ["def direct(*args):"] + (["    args = (*args, *lifted_values())"] if lifted else [])
    if inputs:
        lines += _any([f"args[{i}].stride() != {stride!r}" for i, _, stride in inputs])
        lines += ["        args = list(args)", "        restride_inputs(args)"]
    lines += ["    if _grad_enabled():", "        _set_grad_enabled(False)", "        try:",
              "            outs = compiled(*args)", "        finally:", "            _set_grad_enabled(True)",
              "    else:", "        outs = compiled(*args)"]
    if outputs:
        lines += _any([f"isinstance(outs[{i}], Tensor) and outs[{i}].stride() != {stride!r}"
                       for i, _, stride in outputs]) + ["        outs = list(outs)", "        restride_outputs(outs)"]
    if views:
        lines += _any([f"outs[{i}]._base is not None" for i in views]) + ["        outs = unviewed_views(outs)"]
    result = {"single": "outs[0]", "list": "list(outs)"}.get(output_kind, "tuple(outs)")
    return "\n".join(lines + [f"    return {result}"]) + "\n"


def _any(conditions: list) -> list:
    """``if a or b ...:`` as lines, one condition per line."""
    if len(conditions) == 1:
        return [f"    if {conditions[0]}:"]
    return ([f"    if ({conditions[0]}"] + [f"            or {c}" for c in conditions[1:-1]]
            + [f"            or {conditions[-1]}):"])


def _symbolic(values: list) -> bool:
    return any(isinstance(v, torch.SymInt) or isinstance(v, torch.Tensor) and any(
        isinstance(s, torch.SymInt) for s in (*v.shape, *v.stride())) for v in values)


def _unviewing(compiled, views: list):
    """A graph with symbolic sizes: its layouts are expressions over this call's sizes, not
    held per call (our code generator lays every output out as its ``meta["val"]`` says,
    and the front end guards the user inputs' strides); outputs are still unviewed."""
    def call(args: list):
        outs = list(compiled(*args))
        args.clear()
        for i in views:
            if isinstance(outs[i], torch.Tensor) and outs[i]._base is not None:
                outs[i] = unviewed(outs[i])
        return outs

    call._boxed_call = True
    call.direct = None          # no generated fast path (compiled_path._direct_call wraps this call)
    return call


def _restride_inputs(args: list, inputs: list, written: set, counter: FixupCounter) -> None:
    for i, shape, stride in inputs:
        tensor = args[i]
        if tensor.stride() != stride and not same_strides(tensor.shape, tensor.stride(), stride):
            if i in written:
                raise LayoutError(f"graph input {i} is written in place but arrived with strides "
                                  f"{tuple(tensor.stride())}, expected {stride}")
            args[i] = restrided(tensor, shape, stride)
            counter.inputs += 1


def _restride_outputs(outs: list, outputs: list, counter: FixupCounter, role) -> None:
    for i, shape, stride in outputs:
        tensor = outs[i]
        if isinstance(tensor, torch.Tensor) and tensor.stride() != stride \
                and not same_strides(tensor.shape, tensor.stride(), stride):
            outs[i] = restrided(tensor, shape, stride)
            counter.outputs += 1
            log.debug("compiled path: output %d of a %s graph restrided from %s to %s", i, role,
                      tuple(tensor.stride()), stride)


def unviewed(tensor: torch.Tensor) -> torch.Tensor:
    """The same elements of the same storage, as a tensor that is nobody's view: a code
    generator may hand out a view of a buffer of its own (``_alias(buf, ...)``) where the
    graph's op makes a new tensor, and ``out._base`` is visible to the caller."""
    return tensor.new_empty((0,)).set_(tensor.untyped_storage(), tensor.storage_offset(), tensor.shape,
                                       tensor.stride())


def same_strides(shape, actual, expected) -> bool:
    """Same layout: strides agree on every dimension longer than 1."""
    return all(s <= 1 or a == e for s, a, e in zip(shape, actual, expected))


def restrided(tensor: torch.Tensor, shape, stride) -> torch.Tensor:
    """A copy laid out as ``stride``; dimensions of stride 0 (an expand) are copied once,
    from their first element, and expanded again."""
    broadcast = broadcast_dims(shape, stride)
    for d in broadcast:
        tensor = tensor.narrow(d, 0, 1)
    out = torch.empty_strided(tensor.shape, stride, dtype=tensor.dtype, device=tensor.device)
    return out.copy_(tensor).expand(shape) if broadcast else out.copy_(tensor)


def _layouts(values) -> list:
    """The layouts to hold: dense ones, and expands of dense ones (a saved broadcast norm
    the backward reads with stride 0); other overlapping layouts cannot be copied into."""
    # strides as torch returns them (tuples of int): compared with ``stride()`` as is
    return [(i, tuple(v.shape), tuple(int(s) for s in v.stride())) for i, v in enumerate(values)
            if isinstance(v, torch.Tensor) and (is_dense(v) or _expanded_dense(v))]


def _expanded_dense(t: torch.Tensor) -> bool:
    broadcast = broadcast_dims(t.shape, t.stride())
    kept = [d for d in range(t.dim()) if d not in broadcast]
    return bool(broadcast) and dense_layout([t.shape[d] for d in kept], [t.stride(d) for d in kept])


def _output_values(gm: fx.GraphModule) -> list:
    output = next(n for n in reversed(gm.graph.nodes) if n.op == "output")
    items = output.args[0]
    items = items if isinstance(items, (tuple, list)) else (items,)
    return [item.meta.get("val") if isinstance(item, fx.Node) else item for item in items]


def _written_inputs(gm: fx.GraphModule) -> set:
    placeholders = [n for n in gm.graph.nodes if n.op == "placeholder"]
    written = set()
    for node in gm.graph.nodes:
        schema = getattr(node.target, "_schema", None)
        if node.op == "call_function" and schema is not None and schema.is_mutable:
            for arg in node.args:
                if isinstance(arg, fx.Node) and arg.op == "placeholder":
                    written.add(placeholders.index(arg))
    return written

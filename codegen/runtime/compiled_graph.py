"""CompiledGraph: what ``codegen.compile_graph`` returns — callable like the captured graph.

It calls the generated wrapper (kernels + extern calls) or, when the graph runs as
captured, the captured GraphModule itself. ``kernels``, ``wrapper_source``, ``stats``
and ``loop_ir()`` describe what was generated; ``source()`` is all of it as one text.
"""
from __future__ import annotations

import logging
import warnings

import torch

import fx_graph
from codegen.emit.wrapper import IndexOutOfRangeError
from codegen.lower.graph import ExternCall
from codegen.stats import GraphStats

log = logging.getLogger("capture.output_code")


# The code generator failing on a graph it should handle is a bug of ours: it warns with
# the project's one InternalErrorWarning of the compiled path (the test suite turns it
# into an error).
InternalErrorWarning = fx_graph.InternalErrorWarning


class CompiledGraph:
    """``functional``: a graph of the compiled path (``role`` "forward", "backward" or
    "inference"), which takes every input positionally and never runs as captured for
    autograd's sake; ``calls`` counts the calls (kernel launches = calls x kernels)."""

    def __init__(self, gm, functional: bool = False):
        self.gm = gm
        self.functional = functional
        self.role = gm.meta.get(fx_graph.GRAPH_ROLE)
        self.calls = 0
        self.decomposed = None
        self.kernels: list = []              # KernelSource
        self.wrapper_source = ""
        self.stats = GraphStats()
        self.lowering = None
        self.compile_seconds = 0.0
        self._call = None
        self._lifted = ()
        self._written = ()                   # positions of the inputs the graph writes back
        self._output_kind = "tuple"
        self._ran = False
        self._fast = None                    # the wrapper itself, once a call needs nothing around it
        self.generated_calls = 0             # calls that ran the generated code (not the captured graph)

    def install(self, call, lowering, decomposed, kernels, wrapper_source, stats) -> None:
        """Use the generated wrapper ``call`` from now on."""
        self._call, self.lowering, self.decomposed = call, lowering, decomposed
        self._fast = None
        self.kernels, self.wrapper_source, self.stats = kernels, wrapper_source, stats
        self._lifted = decomposed.meta.get("lifted_inputs", ())
        self._written = written_inputs(decomposed)
        self._output_kind = decomposed.meta.get("output_kind", "tuple")

    @property
    def runs_eagerly(self) -> bool:
        return self._call is None

    def run_eagerly(self, reason: str, internal: bool = False) -> None:
        """Run the graph as captured from now on; an ``internal`` reason is our bug and warns."""
        self._call = self._fast = None
        self.stats = GraphStats(eager_reason=reason, internal=internal)
        if internal:
            warnings.warn(f"capture codegen: {reason}; running the graph as captured", InternalErrorWarning,
                          stacklevel=3)
            log.warning("codegen: %s; running the graph as captured", reason, exc_info=True)
        else:
            log.info("codegen: running a graph as captured: %s", reason)

    def __call__(self, *args):
        self.calls += 1
        fast = self._fast
        if fast is not None:
            self.generated_calls += 1
            return fast(*args)
        if self._call is None:
            return self.gm(*args)
        lifted = [item.fetch() for item in self._lifted]
        reason = None if self.functional else runs_as_captured(list(args) + lifted, written=self._written)
        if reason is not None:
            log.debug("codegen: this call runs as captured: %s", reason)
            return self.gm(*args)
        if not self._ran:
            return self._first_call(args, lifted)
        outs = self._call(*args, *lifted)
        self.generated_calls += 1
        return self._outputs(outs)

    def _first_call(self, args, lifted):
        """Kernels compile on their first launch: if that fails, run as captured from now on."""
        try:
            outs = self._call(*args, *lifted)
        except IndexOutOfRangeError:
            raise                   # the inputs' fault, as in eager; the next call tries again
        except Exception as e:  # noqa: BLE001 - kernel compile errors surface here; reported, not hidden
            # The captured graph decides whose fault it was: if it raises too (``as_strided``
            # out of the storage's bounds), the user gets eager's exception and the next call
            # tries the generated code again; if it runs, the generated code is wrong.
            outs = self.gm(*args)
            self.run_eagerly(f"generated code failed on its first call: {type(e).__name__}: {e}", internal=True)
            return outs
        self._ran = True
        if self.functional and not self._lifted and self._output_kind == "tuple":
            self._fast = self._call         # nothing to add to the inputs or take from the outputs
        self.generated_calls += 1
        return self._outputs(outs)

    def _outputs(self, outs):
        if self._output_kind == "single":
            return outs[0]
        return list(outs) if self._output_kind == "list" else outs

    def wrapper_namespace(self) -> dict:
        """The generated wrapper's globals (its kernels and library calls by name), for tools
        that time what it calls (``python -m bench codegen``); empty while it runs as captured."""
        return self._call.__globals__ if self._call is not None else {}

    def source(self) -> str:
        """Every kernel module and the wrapper, as one readable text."""
        parts = [f"# ---- kernel {k.name}\n{k.source}" for k in self.kernels]
        parts += [f"# ---- kernel {v.name} (persistent variant of {k.name})\n{v.source}"
                  for k in self.kernels if getattr(k, "persistent_variant", None) for v in k.persistent_variant[:1]]
        parts.append(f"# ---- wrapper\n{self.wrapper_source}")
        return "\n".join(parts)

    def loop_ir(self) -> str:
        """The realized computations and extern calls, one per line."""
        if self.lowering is None:
            return ""
        lines = []
        for node in self.lowering.nodes:
            if isinstance(node, ExternCall):
                lines.append(f"{node.name} = extern {node.target}  ({node.reason})")
            else:
                lines.append(node.describe())
        return "\n".join(lines)


def runs_as_captured(tensors, emitter: str = "triton", functional: bool = False, written=()) -> str | None:
    """The one place that decides a graph (or a call) runs the captured graph instead of
    generated code: None to run generated code, else the reason. A captured graph
    compiled directly (``compile_graph``) is inference only, and its functionalized
    graph reads its inputs as distinct tensors: a call where an input it writes
    (``written``: positions) shares memory with another input runs as captured (the
    compiled path's graphs, ``functional``, rebase such inputs themselves and run under
    its autograd.Function)."""
    if not functional and fx_graph.records_autograd(tensors):
        return "a tensor requires grad while grad mode is on (compile_graph is inference only)"
    if written and _shares_written_memory(tensors, written):
        return "an input the graph writes shares memory with another input (compile_graph reads them as distinct)"
    if emitter == "cpp" and any(isinstance(t, torch.Tensor) and t.device.type != "cpu" for t in tensors):
        return "the C emitter compiles graphs of CPU tensors only"
    return None


def written_inputs(decomposed) -> tuple:
    """Positions of the placeholders a decomposed graph writes back (``aten.copy_`` into
    an input: ``fx_graph.decompose``'s functionalization)."""
    positions = {n: i for i, n in enumerate(n for n in decomposed.graph.nodes if n.op == "placeholder")}
    return tuple(sorted({positions[n.args[0]] for n in decomposed.graph.nodes
                         if n.op == "call_function" and n.target is torch.ops.aten.copy_.default
                         and n.args[0] in positions}))


def _shares_written_memory(tensors, written) -> bool:
    storages = [t.untyped_storage()._cdata if isinstance(t, torch.Tensor) and t.numel() else None for t in tensors]
    return any(storages[i] is not None and storages.count(storages[i]) > 1 for i in written)

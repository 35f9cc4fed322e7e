"""compile_graph: captured FX graph -> callable running generated Triton kernels.

Pipeline: ``fx_graph.decompose`` (functional core aten, lifted parameters) ->
``GraphLowering`` (loop IR) -> ``Scheduler`` (fusion into kernels) ->
``KernelEmitter`` (Triton source, cached on disk by hash) -> ``WrapperCodegen``
(allocations, extern calls, launches). Any failure before the first call leaves the
graph running as captured, with the reason in the log and in ``stats``; a graph whose
call needs autograd (an input requiring grad while grad mode is on) runs as captured
too, since kernels have no backward yet.
"""
from __future__ import annotations

import logging
import os
import time

import torch
from torch import fx

import fx_graph
from codegen import cache, config  # noqa: F401  (config pins TRITON_DEFAULT_FP_FUSION)
from codegen.graph import ExternCall, GraphLowering
from codegen.ir import walk
from codegen.lowering import Unlowerable
from codegen.scheduler import Kernel, Scheduler, place
from codegen.stats import GraphStats, eager_bytes, extern_bytes, floor_bytes
from codegen.triton_emit import KernelEmitter
from codegen.wrapper import IndexOutOfRangeError, WrapperCodegen, compile_wrapper

log = logging.getLogger("capture.output_code")
_logged_once: set = set()
COMPILED: list = []          # every CompiledGraph since reset(), for stats()
_GENERATED: dict = {}        # every distinct kernel generated in this process (source, dtypes, launch config)


def _log_once(key: str, message: str, *args) -> None:
    if key not in _logged_once:
        _logged_once.add(key)
        log.info(message, *args)


def needs_autograd(tensors) -> bool:
    return torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in tensors)


class CompiledGraph:
    """Callable like the captured graph; ``kernels``, ``wrapper_source`` and ``stats`` describe it."""

    def __init__(self, gm: fx.GraphModule):
        self.gm = gm
        self.decomposed = None
        self.kernels: list = []              # KernelSource
        self.wrapper_source = ""
        self.stats = GraphStats()
        self.lowering = None
        self._call = None
        self._lifted = ()
        self._output_kind = "tuple"
        self._ran = False
        self.compile_seconds = 0.0

    @property
    def runs_eagerly(self) -> bool:
        return self._call is None

    def run_eagerly(self, reason: str) -> None:
        self._call = None
        self.stats = GraphStats(eager_reason=reason)

    def __call__(self, *args):
        if self._call is None:
            return self.gm(*args)
        lifted = [item.fetch() for item in self._lifted]
        if needs_autograd(list(args) + lifted):
            _log_once("autograd-call", "triton backend: a graph call needs autograd; running it as captured")
            return self.gm(*args)
        if not self._ran:
            return self._first_call(args, lifted)
        return self._outputs(self._call(*args, *lifted))

    def _first_call(self, args, lifted):
        """Kernels compile on their first launch: if that fails, run as captured from now on."""
        try:
            outs = self._call(*args, *lifted)
        except IndexOutOfRangeError:
            raise                   # the inputs' fault, as in eager; the next call tries again
        except Exception as e:  # noqa: BLE001 - compile errors surface here on a GPU
            self.run_eagerly(f"first call failed: {type(e).__name__}: {e}")
            log.warning("triton backend: generated code failed on its first call; running the graph as "
                        "captured", exc_info=True)
            return self.gm(*args)
        self._ran = True
        return self._outputs(outs)

    def _outputs(self, outs):
        if self._output_kind == "single":
            return outs[0]
        return list(outs) if self._output_kind == "list" else outs

    def source(self) -> str:
        """Every kernel module and the wrapper, as one readable text."""
        parts = [f"# ---- kernel {k.name}\n{k.source}" for k in self.kernels]
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


def compile_graph(gm: fx.GraphModule, example_inputs: list, *, fuse: bool = True,
                  autotune: bool | None = None) -> CompiledGraph:
    """A CompiledGraph for ``gm``; falls back to running ``gm`` as captured on failure.
    ``autotune``: launch through ``triton.autotune`` (default: only on a CUDA device
    outside the interpreter, see ``config.use_autotune``)."""
    compiled = CompiledGraph(gm)
    COMPILED.append(compiled)
    del COMPILED[:-config.MAX_TRACKED_GRAPHS]
    start = time.perf_counter()
    try:
        if needs_autograd(example_inputs):
            raise _Eager("inputs require grad while grad mode is on (no compiled backward yet)")
        _build(compiled, gm, example_inputs, fuse, autotune)
    except (_Eager, fx_graph.DecomposeError, Unlowerable) as e:
        compiled.run_eagerly(str(e))
        _log_once(f"eager:{e}", "triton backend: running a graph as captured: %s", e)
    except Exception as e:  # noqa: BLE001 - a code generator bug must not break the user's program
        compiled.run_eagerly(f"internal error: {type(e).__name__}: {e}")
        log.warning("triton backend: code generation failed, running the graph as captured", exc_info=True)
    compiled.compile_seconds = time.perf_counter() - start
    return compiled


class _Eager(Exception):
    pass


def _build(compiled: CompiledGraph, gm, example_inputs, fuse, autotune) -> None:
    decomposed = fx_graph.decompose(gm, example_inputs)
    compiled.decomposed = decomposed
    lifted = decomposed.meta["lifted_inputs"]
    inputs = list(example_inputs) + [item.fetch() for item in lifted]
    if needs_autograd(inputs):
        raise _Eager("parameters require grad while grad mode is on (no compiled backward yet)")
    lowering = GraphLowering(decomposed, inputs).run()
    scheduler = Scheduler(lowering, fuse=fuse)
    items = scheduler.run()
    fx_order = {n.name: i for i, n in enumerate(decomposed.graph.nodes)}
    op_names = {n.name: _op_name(n) for n in decomposed.graph.nodes}
    sources, used_names = {}, set()
    for item in items:
        if isinstance(item, Kernel):
            placed, reason = place(item.members, item.space)
            if placed is None:
                raise Unlowerable(f"scheduler placed an unplaceable kernel: {reason}")
            name = _kernel_name(item, placed, op_names, fx_order, used_names)
            source = KernelEmitter(item, placed, name, fx_order).build()
            module = cache.load_module(source.source)
            sources[id(item)] = (source, getattr(module, name))
            compiled.kernels.append(source)
            # The signature too: the same source over other dtypes is another binary.
            _GENERATED.setdefault((source.source, repr(source.signature()), repr(source.compile_constants()),
                                   source.num_warps), source)
    if autotune is None:
        autotune = config.use_autotune(lowering.device)
    wrapper = WrapperCodegen(lowering, items, sources, autotune=autotune)
    text, namespace = wrapper.generate()
    call = compile_wrapper(text, namespace, filename=f"<capture wrapper {len(COMPILED)}>")
    compiled.lowering = lowering
    compiled.wrapper_source = text
    compiled._lifted = lifted
    compiled._output_kind = decomposed.meta.get("output_kind", "tuple")
    compiled._call = call
    compiled.stats = _stats(gm, lowering, items, compiled.kernels, scheduler)
    log.debug("generated code:\n%s", compiled.source())
    _dump(compiled)


def _op_name(node) -> str:
    target = node.target
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return packet.__name__.strip("_")
    return getattr(target, "__name__", "op")


def _kernel_name(kernel, placed, op_names, fx_order, used) -> str:
    covered = list(kernel.fx_nodes)
    for member in placed.values():
        for expr in walk(member.value()):
            label = getattr(expr, "label", None)
            if label and label not in covered:
                covered.append(label)
    covered.sort(key=lambda n: fx_order.get(n, 1 << 30))
    ops = []
    for name in covered:
        op = op_names.get(name)
        if op and op not in ops and op != "getitem":
            ops.append(op)
    if len(ops) > 6:
        ops = ops[:5] + [f"and_{len(ops) - 5}_more"]
    base = ("fused_" if len(ops) > 1 else "triton_") + "_".join(ops or ["copy"])
    name, n = base, 1
    while name in used:
        name = f"{base}_{n}"
        n += 1
    used.add(name)
    return name


def _stats(gm, lowering, items, kernels, scheduler) -> GraphStats:
    stats = GraphStats()
    for source in kernels:
        stats.kernels.append((source.name, source.fx_nodes, source.bytes_moved))
        stats.kernel_bytes += source.bytes_moved
    for item in items:
        if isinstance(item, ExternCall):
            moved = extern_bytes(item)
            stats.externs.append((item.name, str(item.target), item.reason, moved))
            stats.extern_bytes += moved
    stats.extern_bytes += sum(target.nbytes * 2 for target, _ in lowering.mutations)   # copy_ back
    stats.eager_bytes = eager_bytes(gm)
    stats.floor_bytes = floor_bytes(lowering)
    stats.fusion_decisions = list(scheduler.decisions)
    return stats


def _dump(compiled: CompiledGraph) -> None:
    directory = os.environ.get("CAPTURE_DEBUG_DIR")
    if not directory:
        return
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"graph_{len(COMPILED)}_triton.py")
    with open(path, "w") as f:
        f.write(compiled.source())


def stats(compiled: CompiledGraph | None = None) -> GraphStats:
    """The report of one compiled graph, or of every graph compiled since ``reset()``."""
    if compiled is not None:
        return compiled.stats
    total = GraphStats()
    for item in COMPILED:
        if not item.runs_eagerly:
            total = total.merge(item.stats)
    return total


def generated_kernels() -> list:
    """Every distinct kernel generated in this process (``reset`` does not clear it)."""
    return list(_GENERATED.values())


def reset() -> None:
    COMPILED.clear()
    _logged_once.clear()

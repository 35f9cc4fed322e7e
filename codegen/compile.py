"""compile_graph: captured FX graph -> callable running generated kernels.

The pipeline, one stage per folder::

    fx_graph.decompose        functional core aten, leaf-module tensors lifted to inputs
    lower.GraphLowering       aten graph -> loop IR (computations + extern calls)
    schedule.Scheduler        fusion into kernels, placed and named, in a valid order
    emit.triton               one Triton module per kernel (cached on disk by source hash)
    emit.wrapper              straight-line Python: allocate, call externs, launch
    runtime.CompiledGraph     the callable; runs the graph as captured when it must

Whether a graph runs as captured is decided in one place
(``runtime.compiled_graph.runs_as_captured``) plus the failures below: a graph the
generator does not handle (``DecomposeError``, ``Unlowerable``) runs as captured with
the reason in ``stats``; any other failure is a bug of ours and warns
(``InternalErrorWarning``).
"""
from __future__ import annotations

import time

from torch import fx

import fx_graph
from codegen import config
from codegen.emit.triton import KernelEmitter
from codegen.emit.wrapper import WrapperCodegen, compile_wrapper
from codegen.lower.graph import ExternCall, GraphLowering
from codegen.lower.registry import Unlowerable
from codegen.runtime import cache
from codegen.runtime.compiled_graph import CompiledGraph, runs_as_captured
from codegen.schedule.scheduler import Kernel, Scheduler
from codegen.stats import GraphStats, eager_bytes, extern_bytes, floor_bytes

COMPILED: list = []          # every CompiledGraph since reset(), for stats()
_GENERATED: dict = {}        # every distinct kernel generated in this process (source, dtypes, launch config)


def compile_graph(gm: fx.GraphModule, example_inputs: list, *, fuse: bool = True,
                  autotune: bool | None = None) -> CompiledGraph:
    """A CompiledGraph for ``gm``; it runs ``gm`` as captured where it must (see above).
    ``autotune``: launch through ``triton.autotune`` (default: only on a CUDA device
    outside the interpreter, see ``config.use_autotune``)."""
    compiled = CompiledGraph(gm)
    COMPILED.append(compiled)
    del COMPILED[:-config.MAX_TRACKED_GRAPHS]
    start = time.perf_counter()
    reason = runs_as_captured(example_inputs)
    try:
        if reason is None:
            _build(compiled, gm, example_inputs, fuse, autotune)
        else:
            compiled.run_eagerly(reason)
    except (fx_graph.DecomposeError, Unlowerable) as e:
        compiled.run_eagerly(str(e))
    except Exception as e:  # noqa: BLE001 - a bug of ours: warned, and the user's program still runs
        compiled.run_eagerly(f"internal error: {type(e).__name__}: {e}", internal=True)
    compiled.compile_seconds = time.perf_counter() - start
    return compiled


def _build(compiled: CompiledGraph, gm, example_inputs, fuse, autotune) -> None:
    decomposed = fx_graph.decompose(gm, example_inputs)
    lifted = decomposed.meta["lifted_inputs"]
    inputs = list(example_inputs) + [item.fetch() for item in lifted]
    reason = runs_as_captured(inputs)
    if reason is not None:
        compiled.run_eagerly(reason)
        return
    lowering = GraphLowering(decomposed, inputs).run()
    scheduler = Scheduler(lowering, fuse=fuse)
    items = scheduler.run()
    fx_order = {n.name: i for i, n in enumerate(decomposed.graph.nodes)}
    sources, kernels = {}, []
    for kernel in (item for item in items if isinstance(item, Kernel)):
        source = KernelEmitter(kernel, kernel.placed, kernel.name, fx_order).build()
        sources[id(kernel)] = (source, getattr(cache.load_module(source.source), kernel.name))
        kernels.append(source)
        # The signature too: the same source over other dtypes is another binary.
        _GENERATED.setdefault((source.source, repr(source.signature()), repr(source.compile_constants()),
                               source.num_warps), source)
    if autotune is None:
        autotune = config.use_autotune(lowering.device)
    text, namespace = WrapperCodegen(lowering, items, sources, autotune=autotune).generate()
    call = compile_wrapper(text, namespace, filename=f"<capture wrapper {len(COMPILED)}>")
    compiled.install(call, lowering, decomposed, kernels, text, _stats(gm, lowering, items, kernels, scheduler))


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
    """Forget compiled graphs (for ``stats``) and loaded kernel modules (files stay on disk)."""
    COMPILED.clear()
    cache.clear_loaded()

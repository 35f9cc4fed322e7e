"""The code generator (lower, fuse, emit, compile, launch) — see DESIGN.md and
``codegen.compile`` for the pipeline.

``compile_graph(gm, example_inputs)`` returns a callable running the captured graph as
generated kernels plus torch extern calls; ``stats()`` reports kernels, extern calls
and modeled bytes moved (compiled vs eager vs floor).
"""
from codegen.compile import COMPILED, compile_graph, generated_kernels, reset, stats
from codegen.runtime.compiled_graph import CompiledGraph, InternalErrorWarning

__all__ = ["COMPILED", "CompiledGraph", "InternalErrorWarning", "compile_graph", "generated_kernels", "reset",
           "stats"]

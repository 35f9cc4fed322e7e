"""The Triton code generator (lower, fuse, emit, compile, launch) — see DESIGN.md.

``compile_graph(gm, example_inputs)`` returns a callable running the captured graph as
generated Triton kernels plus torch extern calls; ``stats()`` reports kernels, extern
calls and modeled bytes moved (compiled vs eager vs floor).
"""
from codegen.compile import COMPILED, CompiledGraph, compile_graph, generated_kernels, reset, stats

__all__ = ["COMPILED", "CompiledGraph", "compile_graph", "generated_kernels", "reset", "stats"]

"""The code generator (lower, fuse, emit, compile, launch) — see DESIGN.md and
``codegen.compile`` for the pipeline.

``compile_functional(gm, example_inputs)`` compiles a functional aten graph (what the
compiled path, ``fx_graph.compile_captured``, hands over: forward, backward and
inference graphs) into a callable running generated kernels plus torch extern calls;
``compile_graph(gm, example_inputs)`` decomposes a captured graph itself (inference
only); ``stats()`` reports kernels, extern calls and modeled bytes moved (compiled vs
eager vs floor).
"""
from codegen.compile import COMPILED, compile_functional, compile_graph, generated_kernels, has_template, reset, stats
from codegen.runtime.compiled_graph import CompiledGraph, InternalErrorWarning

__all__ = ["COMPILED", "CompiledGraph", "InternalErrorWarning", "compile_functional", "compile_graph",
           "generated_kernels", "has_template", "reset", "stats"]

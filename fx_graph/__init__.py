"""FX graphs, from the front end to the code generator: building the graph of one
traced frame (``GraphBuilder``: graph, fake mode, placeholders, fake propagation,
grad-mode nodes, leaf-module calls), the compiled path (``compile_captured``: a captured
graph functionalized with eager's semantics at the boundary, joint forward+backward
graphs, each functional graph handed to a code generator), decomposition to functional
core aten ops with fake-tensor metadata, dead-code and common-subexpression passes,
readable printing."""
from fx_graph.builder import FakeRunError, GraphBuilder
from fx_graph.compiled_path import (GRAPH_ROLE, CompiledCapture, CompiledPathError, InternalErrorWarning,
                                    compile_captured, needs_autograd, records_autograd)
from fx_graph.decompose import DecomposeError, decompose, decomposition_table, lifted_values
from fx_graph.leaf import leaf_module_of
from fx_graph.lifting import LiftedInput
from fx_graph.passes import common_subexpressions, dead_code
from fx_graph.printing import describe_value, format_graph, short_dtype
from fx_graph.symbolic import has_symbolic_sizes

__all__ = ["GRAPH_ROLE", "CompiledCapture", "CompiledPathError", "DecomposeError", "FakeRunError", "GraphBuilder",
           "InternalErrorWarning", "LiftedInput", "common_subexpressions", "compile_captured", "dead_code", "decompose",
           "decomposition_table", "describe_value", "format_graph", "has_symbolic_sizes", "leaf_module_of",
           "lifted_values", "needs_autograd", "records_autograd", "short_dtype"]

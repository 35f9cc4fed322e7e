"""FX graph utilities shared by the front end and the code generator: decomposition
to functional core aten ops with fake-tensor metadata, dead-code and
common-subexpression passes, readable printing."""
from fx_graph.decompose import DecomposeError, LiftedInput, decompose, decomposition_table, lifted_values
from fx_graph.passes import common_subexpressions, dead_code
from fx_graph.printing import describe_value, format_graph, short_dtype

__all__ = ["DecomposeError", "LiftedInput", "common_subexpressions", "dead_code", "decompose",
           "decomposition_table", "describe_value", "format_graph", "lifted_values", "short_dtype"]

"""The loop-level IR: index arithmetic (``indexing``) and buffers, expressions, tensor
values and computations (``nodes``) — see ``codegen.ir.nodes`` for the whole picture."""
from codegen.ir import indexing
from codegen.ir.indexing import Index
from codegen.ir.nodes import (AttentionBackwardTemplate, AttentionTemplate, Buffer, BufferValue, Computation, Const, Expr, IndexCheck, IndexValue, Lazy, Load,
                              MatmulTemplate, Op, ScatterAdd, TensorValue, as_buffer_view, compute_dtype, fresh_index, gathered, guarded, in_range,
                              loads, loop_variables, reduction_output_index, size_value, unique_name, walk)

__all__ = ["AttentionBackwardTemplate", "AttentionTemplate", "Buffer", "BufferValue", "Computation", "Const", "Expr", "Index", "IndexCheck", "IndexValue", "Lazy",
           "Load", "MatmulTemplate", "Op", "ScatterAdd", "TensorValue", "as_buffer_view", "compute_dtype", "fresh_index", "gathered", "guarded",
           "in_range", "indexing", "loads", "loop_variables", "reduction_output_index", "size_value", "unique_name",
           "walk"]

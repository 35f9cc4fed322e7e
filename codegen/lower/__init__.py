"""Lowering: a decomposed aten graph -> loop IR (``graph.GraphLowering``), one rule per
op in family modules (pointwise, rounding, views, reductions, indirect) merged in ``rules``."""

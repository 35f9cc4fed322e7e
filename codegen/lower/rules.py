"""The one table of lowering rules: every family's ``RULES``, merged explicitly.

To add a lowering rule, decorate a function with ``@register(aten.op)`` in the family
module it belongs to; to add a family, add its module to ``FAMILIES``.
"""
from __future__ import annotations

from codegen.lower import flash, indirect, matmul, pointwise, pooling, reductions, rounding, scatter, views
from codegen.lower.registry import merge

FAMILIES = (pointwise, rounding, views, reductions, indirect, pooling, matmul, flash, scatter)
LOWERINGS: dict = merge(family.RULES for family in FAMILIES)


def lookup(target):
    """The rule for an OpOverload (exact overload first, then its packet), or None."""
    if target in LOWERINGS:
        return LOWERINGS[target]
    packet = getattr(target, "overloadpacket", None)
    return LOWERINGS.get(packet)

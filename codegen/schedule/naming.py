"""Kernel names that say what a kernel computes: ``fused_amax_sub_exp_sum_div``.

A name lists the aten ops (in graph order) of the FX nodes the kernel covers — its
members and the lazy expressions inlined into them — so a profile or a traceback
points at the part of the graph a kernel implements.
"""
from __future__ import annotations

from codegen.ir import walk

MAX_OPS_IN_NAME = 6          # longer chains end in "and_N_more": names stay readable


def op_name(node) -> str:
    """``add`` for ``aten.add.Tensor``; the function name otherwise."""
    target = node.target
    packet = getattr(target, "overloadpacket", None)
    if packet is not None:
        return packet.__name__.strip("_")
    return getattr(target, "__name__", "op")


def covered_nodes(kernel, placed: dict, fx_order: dict) -> list:
    """FX node names a kernel implements, in graph order."""
    covered = list(kernel.fx_nodes)
    for member in placed.values():
        for expr in walk(member.value()):
            label = getattr(expr, "label", None)
            if label and label not in covered:
                covered.append(label)
    covered.sort(key=lambda n: fx_order.get(n, 1 << 30))
    return covered


def kernel_name(covered: list, op_names: dict, taken: set) -> str:
    """A fresh name from the ops of ``covered`` (added to ``taken``)."""
    ops = []
    for name in covered:
        op = op_names.get(name)
        if op and op not in ops and op != "getitem":
            ops.append(op)
    if len(ops) > MAX_OPS_IN_NAME:
        ops = ops[:MAX_OPS_IN_NAME - 1] + [f"and_{len(ops) - MAX_OPS_IN_NAME + 1}_more"]
    base = ("fused_" if len(ops) > 1 else "triton_") + "_".join(ops or ["copy"])
    name, n = base, 1
    while name in taken:
        name = f"{base}_{n}"
        n += 1
    taken.add(name)
    return name

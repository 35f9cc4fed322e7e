"""Readable text for aten graphs: one line per node with its dtype and shape.

    %l_x: f32[4, 16] = placeholder
    %addmm: f32[4, 32] = aten.addmm(%linear_0_bias, %l_x, %permute)
    return (%relu,)
"""
from __future__ import annotations

import torch
from torch import fx

_SHORT_DTYPES = {
    torch.float32: "f32", torch.float16: "f16", torch.bfloat16: "bf16", torch.float64: "f64",
    torch.int64: "i64", torch.int32: "i32", torch.int16: "i16", torch.int8: "i8",
    torch.uint8: "u8", torch.bool: "b8",
}


def short_dtype(dtype: torch.dtype) -> str:
    return _SHORT_DTYPES.get(dtype, str(dtype).replace("torch.", ""))


def describe_value(value) -> str:
    """``f32[4, 16]`` for a tensor (strides when not contiguous), a tuple of those, or ``?``."""
    if isinstance(value, torch.Tensor):
        text = f"{short_dtype(value.dtype)}[{', '.join(str(s) for s in value.shape)}]"
        if value.dim() and not value.is_contiguous():
            text += f"(stride {tuple(value.stride())})"
        return text
    if isinstance(value, (tuple, list)):
        return "(" + ", ".join(describe_value(v) for v in value) + ")"
    return "?" if value is None else type(value).__name__


def _target_name(target) -> str:
    if isinstance(target, torch._ops.OpOverload):
        name = target.name().replace("aten::", "aten.")
        return name.removesuffix(".default")
    return getattr(target, "__name__", str(target))


def _arg_text(arg) -> str:
    if isinstance(arg, fx.Node):
        return f"%{arg.name}"
    if isinstance(arg, (list, tuple)):
        inner = ", ".join(_arg_text(a) for a in arg)
        return f"[{inner}]" if isinstance(arg, list) else f"({inner}{',' if len(arg) == 1 else ''})"
    return repr(arg)


def format_node(node: fx.Node) -> str:
    if node.op == "output":
        return f"return {_arg_text(node.args[0])}"
    head = f"%{node.name}: {describe_value(node.meta.get('val'))}"
    if node.op == "placeholder":
        return f"{head} = placeholder"
    if node.op == "get_attr":
        return f"{head} = get_attr {node.target}"
    args = [_arg_text(a) for a in node.args] + [f"{k}={_arg_text(v)}" for k, v in node.kwargs.items()]
    return f"{head} = {_target_name(node.target)}({', '.join(args)})"


def format_graph(gm: fx.GraphModule) -> str:
    return "\n".join(format_node(node) for node in gm.graph.nodes)

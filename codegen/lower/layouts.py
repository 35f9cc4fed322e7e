"""Which strides a buffer the lowering realizes gets: eager's where a buffer can be laid
out so (dense, or with gaps), a library kernel's preferred layout (channels-last
convolutions on the CPU), and the checks comparing a realized buffer with eager's tensor."""
from __future__ import annotations

import torch
from torch import fx

from codegen import config
from codegen.ir import BufferValue, sizes

aten = torch.ops.aten


def library_layouts(node, device, role=None) -> dict:
    """Layouts a library kernel is handed instead of eager's: {argument position or "out":
    strides}. On the CPU a 2-d convolution runs channels-last (oneDNN's native layout, see
    config.CHANNELS_LAST_CONV_ON_CPU): its input and weight are realized so (our kernels
    write them that way, or a copy is made) and its output is channels-last. Not in the
    compiled path's training graphs (``role`` "forward"/"backward", see
    config.CHANNELS_LAST_CONV_IN_TRAINING)."""
    if role in ("forward", "backward") and not config.CHANNELS_LAST_CONV_IN_TRAINING:
        return {}
    if not (config.CHANNELS_LAST_CONV_ON_CPU and device is not None and device.type == "cpu"
            and node.target is aten.convolution.default and not node.args[6]):
        return {}
    metas = [a.meta.get("val") if isinstance(a, fx.Node) else None for a in node.args[:2]] + [node.meta.get("val")]
    if not all(isinstance(m, torch.Tensor) and m.dim() == 4 and m.dtype.is_floating_point for m in metas):
        return {}
    return {0: _channels_last(metas[0].shape), 1: _channels_last(metas[1].shape), "out": _channels_last(metas[2].shape)}


def _channels_last(shape) -> tuple:
    n, c, h, w = (sizes.of(s) for s in shape)
    return (h * w * c, 1, w * c, c)


def strides_match(shape, stride, wanted) -> bool:
    return all(s == 1 or a == b for s, a, b in zip(shape, stride, wanted))


def same_layout(bv: BufferValue, val) -> bool:
    """Same strides as eager's tensor (dimensions of size 1 do not matter)."""
    if not isinstance(val, torch.Tensor) or shape_of(val) != tuple(bv.shape):
        return True
    return all(s == 1 or a == sizes.of(b) for s, a, b in zip(bv.shape, bv.stride, val.stride()))


def shape_of(val) -> tuple:
    return tuple(sizes.of(s) for s in val.shape)


def eager_strides(node, shape):
    """Eager's strides for a new buffer of ``shape`` when it is dense in them (any strides
    when it has no elements: eager's empty results keep ones no dense layout has)."""
    val = node.meta.get("val") if node is not None else None
    if isinstance(val, torch.Tensor) and shape_of(val) == tuple(shape):
        stride = tuple(sizes.of(s) for s in val.stride())
        if empty(shape) or dense(shape_of(val), stride):
            return stride
    return None


def empty(shape) -> bool:
    """No elements, whatever the symbols (a dimension of literal size 0: 0 specializes)."""
    return any(sizes.is_static(s) and s == 0 for s in shape)


def eager_view_strides(val):
    """``val``'s strides when a buffer can be laid out so (static, no two elements at one
    address: dense, or with gaps like a slice of a wider tensor); else None."""
    if not isinstance(val, torch.Tensor) or not all(sizes.is_static(x) for x in (*val.shape, *val.stride())):
        return None
    return realizable_strides(shape_of(val), tuple(sizes.of(s) for s in val.stride()))


def realizable_strides(shape, stride):
    """``stride`` when a buffer of ``shape`` can be laid out so, else None."""
    if not all(sizes.is_static(x) for x in (*shape, *stride)):
        return None
    extent = 1
    for st, s in sorted((st, s) for s, st in zip(shape, stride) if s != 1):
        if st < extent:
            return None
        extent = st * s
    return stride


def dense(shape, stride) -> bool:
    """Non-overlapping and dense: some permutation of the dims is contiguous."""
    dims = sorted(((st, s) for s, st in zip(shape, stride) if s != 1), key=lambda p: (sizes.hint(p[0]), sizes.hint(p[1])))
    expected = 1
    for st, s in dims:
        if st != expected:
            return False
        expected *= s
    return True

"""``torch.inference_mode(mode)`` inside a compiled frame.

Only the form that keeps the current state is traced: ``inference_mode(False)`` outside
inference mode (what code resumed after a graph break, or a library, writes to be sure)
and ``inference_mode(True)`` inside it. The state is guarded, and the block is a
grad-mode block: as torch's InferenceMode guard, it sets grad mode to ``not mode``
(``inference_mode(False)`` enables grad even inside ``no_grad``). Switching the state inside a graph
is a graph break.
"""
from __future__ import annotations

import torch

from capture.exc import Unsupported
from capture.variables import builder
from capture.variables.ctx_manager import GradModeVariable


@builder.constructs(builder.Order.OBJECT - 2, lambda cls: cls is torch.inference_mode)
def _construct_inference_mode(tx, cls, args, kwargs):
    mode_vt = args[0] if args else kwargs.get("mode")
    mode = True if mode_vt is None else mode_vt.as_python_constant()
    current = torch.is_inference_mode_enabled()
    tx.output.guard_state_read(tx, "__inference_mode", "torch.is_inference_mode_enabled", (), current)
    if bool(mode) != current:
        raise Unsupported(f"torch.inference_mode({mode}) switches inference mode inside the graph")
    # like torch's InferenceMode guard, entering sets grad mode to ``not mode``
    return GradModeVariable(not mode)

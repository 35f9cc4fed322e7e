"""Make PyPI's torchvision importable beside the CPU build of torch.

PyPI's torchvision wheel for x86_64 is built against the CUDA build of torch: its C
library (``torchvision/_C.so``) links ``libc10_cuda``/``libtorch_cuda`` and fails to
load beside our CPU torch. torchvision tolerates that (its detection ops then raise
when called) except for one thing: at import it registers fake kernels for
``torchvision::nms`` and ``torchvision::qnms`` with ``torch.library.register_fake``,
which raises ``operator torchvision::nms does not exist`` when the C library did not
define them. And ``transformers`` imports torchvision whenever it is installed, so
then even ``from transformers import LlamaConfig`` fails.

``make_importable()`` runs before torchvision is imported: when torchvision is
installed and its C library does not load, it defines the two operators' schemas
(the same schemas torchvision's C++ declares), so the import succeeds. Everything
torchvision offers without its C library (all classification models, transforms)
works as it is; its detection ops (``torchvision.ops.nms``, ``roi_align``, ...) raise
torchvision's own "Couldn't load custom C++ ops" error when called. With a torchvision whose C library loads, it does nothing.

Used by ``bench`` (its package init) and by ``tests/conftest.py``; the test extra
installs timm, which pulls torchvision (pip picks 0.28.0, the release built for
torch 2.13.0, so torch is left alone).
"""
from __future__ import annotations

import importlib.util
import os

import torch

_LIBRARY = None  # the torch.library.Library holding our definitions (kept alive)


def _c_library_path():
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = list(spec.submodule_search_locations)[0]
    for name in os.listdir(folder):
        if name.startswith("_C.") and name.endswith((".so", ".pyd")):
            return os.path.join(folder, name)
    return None


def make_importable() -> bool:
    """Define torchvision's two import-time operators when its C library cannot load.
    Returns True when it defined them (torchvision runs without its C ops)."""
    global _LIBRARY
    path = _c_library_path()
    if path is None or _LIBRARY is not None:
        return False
    try:
        torch.ops.load_library(path)
        return False  # a matching build: torchvision's own ops are there
    except (OSError, RuntimeError):
        pass
    if hasattr(torch.ops.torchvision, "nms"):
        return False
    lib = torch.library.Library("torchvision", "DEF")
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY = lib
    return True

"""Generated-code snapshots ("process replay"): a few graphs whose complete output —
Triton kernels and wrapper — is kept under tests/snapshots/codegen. A change to the
code generator that changes generated code shows up here as a diff to review; after
reviewing, ``CAPTURE_UPDATE_SNAPSHOTS=1 pytest tests/test_codegen_snapshots.py``
rewrites them."""
import difflib
import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from helpers_codegen import compile_fn

SNAPSHOTS = Path(__file__).parent / "snapshots" / "codegen"

GRAPHS = {
    "pointwise_chain": (lambda x, y: torch.sigmoid((x * 2 + y).exp() - 1).clamp(0.1, 0.9),
                        (torch.randn(8, 33), torch.randn(33))),
    "softmax": (lambda x: x.softmax(-1), (torch.randn(6, 50),)),
    "softmax_long_rows": (lambda x: x.softmax(-1), (torch.randn(4, 3000),)),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (48,), w, b), (torch.randn(2, 5, 48), torch.randn(48), torch.randn(48))),
    "linear_gelu": (lambda x, w, b: F.gelu(F.linear(x, w, b), approximate="tanh"),
                    (torch.randn(4, 16), torch.randn(32, 16), torch.randn(32))),
    "linear_gelu_template": (lambda x, w, b: F.gelu(F.linear(x, w, b), approximate="tanh"),
                             (torch.randn(2, 20, 48), torch.randn(40, 48), torch.randn(40))),
    "attention_causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True),
                         (torch.randn(1, 2, 20, 16), torch.randn(1, 2, 20, 16), torch.randn(1, 2, 20, 16))),
    "embedding_layer_norm": (lambda w, i, g: F.layer_norm(F.embedding(i, w), (48,), g),
                             (torch.randn(10, 48), torch.randint(0, 10, (2, 3)), torch.randn(48))),
    "index_cat": (lambda x, i, y: torch.cat([x[i] * 2, y.t()], 1).relu(),
                  (torch.randn(9, 7), torch.randint(-9, 9, (5,)), torch.randn(3, 5))),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
def test_generated_code_matches_snapshot(name):
    fn, args = GRAPHS[name]
    source = compile_fn(fn, *args).source()
    path = SNAPSHOTS / f"{name}.txt"
    if os.environ.get("CAPTURE_UPDATE_SNAPSHOTS") == "1" or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        if os.environ.get("CAPTURE_UPDATE_SNAPSHOTS") != "1":
            pytest.skip(f"wrote the missing snapshot {path.name}")
    expected = path.read_text()
    if source != expected:
        diff = "".join(difflib.unified_diff(expected.splitlines(True), source.splitlines(True),
                                            f"snapshot/{name}.txt", f"generated/{name}.txt"))
        pytest.fail(f"generated code for {name} changed (review, then CAPTURE_UPDATE_SNAPSHOTS=1):\n{diff}")

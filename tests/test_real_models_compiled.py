"""Real models through the default backend: the code that users actually run.

``test_real_models.py`` checks that each real model is one graph (run as captured);
this runs a subset of them through ``backend="codegen"`` — on this CPU machine the C
emitter — in eval and for one training step (forward + backward graphs), against
eager: outputs, every gradient, every buffer. Every graph must have run the generated
code (none fell back to the captured graph).

The subset covers families the synthetic model tests do not: encoder-decoders with
relative position buckets (T5) and disentangled attention (DeBERTa-v2), GeGLU/RMSNorm
variants (Gemma), and convolutional nets with batch norm in training mode. Batch norm
over a batch of two divides by tiny variances, which turns float32 rounding into
visible differences: the conv nets run in float64 so a mismatch means a real bug.
"""
from __future__ import annotations

import copy
import os
import sys

import pytest
import torch

import capture
import codegen

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from real_models import MODELS  # noqa: E402
from test_programs import assert_same  # noqa: E402
from test_real_models import _grads, _loss, _run  # noqa: E402

SUBSET = {  # name -> dtype
    "hf_t5": torch.float32,
    "hf_deberta_v2": torch.float32,
    "hf_gemma": torch.float32,
    "tv_resnet18": torch.float64,
    "timm_mobilenetv3_small_050": torch.float64,
}
SPECS = [m for m in MODELS if m.name in SUBSET]


def _cast(value, dtype):
    return value.to(dtype) if torch.is_tensor(value) and value.is_floating_point() else value


def _assert_every_graph_ran_generated_code(name, roles):
    graphs = list(codegen.COMPILED)
    assert {g.role for g in graphs} >= roles, f"{name}: compiled roles {[g.role for g in graphs]}"
    for g in graphs:
        assert not g.runs_eagerly, f"{name}: a {g.role} graph ran as captured: {g.stats.eager_reason}"
        assert g.generated_calls > 0, f"{name}: a {g.role} graph never ran its generated code"


@pytest.mark.parametrize("spec", SPECS, ids=[m.name for m in SPECS])
def test_real_model_through_the_default_backend_matches_eager(spec):
    dtype = SUBSET[spec.name]
    torch.manual_seed(0)
    model = spec.make().to(dtype)
    eager = copy.deepcopy(model)
    codegen.reset()
    compiled = capture.compile(model)  # the default backend: "codegen"
    torch.manual_seed(1)
    args, kwargs = spec.inputs()
    args = tuple(_cast(a, dtype) for a in args)
    kwargs = {k: _cast(v, dtype) for k, v in kwargs.items()}

    model.eval(), eager.eval()
    with torch.no_grad():
        expected = _run(eager, args, kwargs, seed=2)
        actual = _run(compiled, args, kwargs, seed=2)
    assert_same(expected, actual, f"{spec.name} eval output")
    _assert_every_graph_ran_generated_code(spec.name, {"inference"})

    model.train(), eager.train()
    expected = _run(eager, args, kwargs, seed=3)
    actual = _run(compiled, args, kwargs, seed=3)
    assert_same(expected, actual, f"{spec.name} train output")
    _loss(expected).backward()
    _loss(actual).backward()
    assert_same(_grads(eager), _grads(model), f"{spec.name} gradients")
    assert_same(dict(eager.named_buffers()), dict(model.named_buffers()), f"{spec.name} buffers")
    _assert_every_graph_ran_generated_code(spec.name, {"inference", "forward", "backward"})

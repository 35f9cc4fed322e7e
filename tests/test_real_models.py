"""Real-model tier: tiny models of transformers, timm and torchvision, each one graph.

For every model of ``tests/real_models.py`` (random weights, tiny configs built in
code): ``capture.compile(model, fullgraph=True)`` with a backend that records each
graph and runs it as captured, then

- eval: outputs equal eager's; exactly one graph (fullgraph=True: no break);
- a training step (train mode, same seed for dropout): outputs equal, and after a
  backward pass every parameter's gradient and every buffer (batch-norm running
  statistics) equal eager's; again one graph for the training-mode trace.

An internal error fails the test (conftest sets ``config.internal_errors = "raise"``).
"""
from __future__ import annotations

import copy
import os
import sys
import warnings

import pytest
import torch

import capture
import fx_graph

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from real_models import MODELS  # noqa: E402
from test_programs import assert_same, _tensors  # noqa: E402

RTOL, ATOL = 1e-4, 1e-5


class GraphRecorder:
    """A backend that keeps every graph it is given and runs it as captured."""

    def __init__(self):
        self.graphs = []

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return gm.forward


def _loss(out):
    floats = [t for t in _tensors(out, []) if t.is_floating_point() and t.requires_grad]
    assert floats, "the model returned no differentiable output"
    return sum((t.float() * (i + 1) * 0.1).sum() for i, t in enumerate(floats))


def _run(model, args, kwargs, seed):
    torch.manual_seed(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # the libraries' own deprecation notices
        warnings.simplefilter("error", fx_graph.InternalErrorWarning)   # never our bugs
        return model(*args, **kwargs)


def _grads(model):
    return {n: p.grad for n, p in model.named_parameters()}


@pytest.mark.parametrize("spec", MODELS, ids=[m.name for m in MODELS])
def test_real_model_is_one_graph_and_matches_eager(spec):
    torch.manual_seed(0)
    model = spec.make()
    eager = copy.deepcopy(model)
    recorder = GraphRecorder()
    compiled = capture.compile(model, backend=recorder, fullgraph=True)
    torch.manual_seed(1)
    args, kwargs = spec.inputs()

    model.eval(), eager.eval()
    with torch.no_grad():
        expected = _run(eager, args, kwargs, seed=2)
        actual = _run(compiled, args, kwargs, seed=2)
    assert_same(expected, actual, f"{spec.name} eval output")
    assert len(recorder.graphs) == 1, f"{spec.name}: eval traced {len(recorder.graphs)} graphs"

    model.train(), eager.train()
    expected = _run(eager, args, kwargs, seed=3)
    actual = _run(compiled, args, kwargs, seed=3)
    assert_same(expected, actual, f"{spec.name} train output")
    assert len(recorder.graphs) == 2, f"{spec.name}: the training step traced {len(recorder.graphs) - 1} graphs"
    _loss(expected).backward()
    _loss(actual).backward()
    assert_same(_grads(eager), _grads(model), f"{spec.name} gradients")
    assert_same(dict(eager.named_buffers()), dict(model.named_buffers()), f"{spec.name} buffers")

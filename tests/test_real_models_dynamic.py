"""Real transformers models over varying sequence lengths (automatic dynamic shapes).

The synthetic dynamic tests build their own attention; real libraries reach ops and
patterns they do not: Bloom's ALiBi attention is `alibi.baddbmm(q, k)` (its C++
composite kernel takes concrete sizes only — it broke the trace at every new length),
T5's relative position buckets, DeBERTa's disentangled attention, BART and T5 as
encoder-decoders. Each model must stay one frame with two graphs (the first call
static, then one with symbolic lengths) and match eager at every length.
"""
from __future__ import annotations

import os
import sys

import pytest
import torch

import capture
import codegen
from capture.state import FRAMES

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from real_models import MODELS, VOCAB  # noqa: E402
from test_programs import assert_same  # noqa: E402
from test_real_models import _run  # noqa: E402

# model -> backend: the front end for all; Bloom's trace broke in the compiled path too
NAMES = {"hf_bloom": "codegen", "hf_t5": "eager", "hf_deberta_v2": "eager", "hf_bart": "eager"}
SPECS = [m for m in MODELS if m.name in NAMES]
LENGTHS = (5, 7, 9)


def _at_length(value, length: int):
    """The spec's token ids / attention mask rebuilt at ``length`` (last row padded)."""
    if not (torch.is_tensor(value) and value.dtype == torch.long and value.dim() == 2):
        return value
    if value.max() > 1:
        return torch.randint(3, VOCAB, (value.shape[0], length))
    mask = torch.ones(value.shape[0], length, dtype=torch.long)
    mask[-1, -2:] = 0
    return mask


@pytest.mark.parametrize("spec", SPECS, ids=[m.name for m in SPECS])
def test_real_model_over_sequence_lengths_is_two_graphs_and_matches_eager(spec):
    torch.manual_seed(0)
    model = spec.make().eval()
    codegen.reset()
    compiled = capture.compile(model, backend=NAMES[spec.name])
    for length in LENGTHS:
        args, kwargs = spec.inputs()
        args = tuple(_at_length(a, length) for a in args)
        kwargs = {k: _at_length(v, length) for k, v in kwargs.items()}
        with torch.no_grad():
            expected = _run(model, args, kwargs, seed=2)
            actual = _run(compiled, args, kwargs, seed=2)
        assert_same(expected, actual, f"{spec.name} at length {length}")
    frames = [r for r in FRAMES.values() if r.entries]
    graphs = [e for r in frames for e in r.entries if e.kind == "graph"]
    assert len(frames) == 1 and len(graphs) == 2, f"{spec.name}: {len(frames)} frames, {len(graphs)} graphs"
    assert not any(g.runs_eagerly for g in codegen.COMPILED), [g.stats.eager_reason for g in codegen.COMPILED]

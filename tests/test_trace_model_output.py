"""transformers-style ModelOutput objects built inside a compiled frame.

transformers is not a dependency, so this file defines a stand-in with the same
contract (an OrderedDict dataclass whose non-None fields are its entries, indexable by
key or position, ``to_tuple()``; ``__setattr__``/``__setitem__`` keep both views in
step) under the module name the tracker recognizes. tests/programs/programs_hf.py
runs the real classes when transformers is installed."""
import collections
import dataclasses

import torch

import capture


class ModelOutput(collections.OrderedDict):
    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is not None:
                collections.OrderedDict.__setitem__(self, f.name, value)

    def __setattr__(self, name, value):
        if name in {f.name for f in dataclasses.fields(self)} and value is not None:
            collections.OrderedDict.__setitem__(self, name, value)
        object.__setattr__(self, name, value)

    def __setitem__(self, key, value):
        collections.OrderedDict.__setitem__(self, key, value)
        object.__setattr__(self, key, value)

    def __getitem__(self, k):
        if isinstance(k, str):
            return dict(self.items())[k]
        return self.to_tuple()[k]

    def to_tuple(self):
        return tuple(self[k] for k in self.keys())


ModelOutput.__module__ = "transformers.utils.generic"


@dataclasses.dataclass
class Output(ModelOutput):
    last_hidden_state: torch.Tensor = None
    hidden_states: tuple = None
    attentions: tuple = None


@dataclasses.dataclass
class LMOutput(ModelOutput):
    loss: torch.Tensor = None
    logits: torch.Tensor = None
    past: tuple = None


def body(x):
    h1 = x.relu()
    h2 = h1 * 2
    return Output(last_hidden_state=h2, hidden_states=(h1, h2))


def model(x, labels=None, return_dict=True):
    out = body(x)
    logits = out[0] + out.last_hidden_state.mean()
    n_hidden = len(out.hidden_states)
    loss = None if labels is None else (logits - labels).pow(2).mean()
    if not return_dict:
        return (logits,) + out[1:]
    result = LMOutput(loss=loss, logits=logits * n_hidden)
    result.past = tuple(out.values())
    return result


def compare(expected, got):
    assert type(got) is type(expected)
    assert list(got.keys()) == list(expected.keys())
    for k in expected.keys():
        torch.testing.assert_close(got[k], expected[k])
    for f in dataclasses.fields(expected):
        a, b = getattr(expected, f.name), getattr(got, f.name)
        assert (a is None) == (b is None), f.name
    torch.testing.assert_close(got.to_tuple(), expected.to_tuple())


def test_model_outputs_are_one_graph_and_rebuilt_like_eager():
    compiled = capture.compile(model, backend="eager")
    for labels in (None, torch.randn(2, 3)):
        x = torch.randn(2, 3)
        compare(model(x, labels), compiled(x, labels))
    x = torch.randn(2, 3)
    torch.testing.assert_close(compiled(x, return_dict=False), model(x, return_dict=False))
    explanation = capture.explain(model, torch.randn(2, 3))
    assert explanation.graph_count == 1 and not explanation.all_breaks, explanation.all_breaks


def test_model_output_returned_from_an_inner_compiled_call():
    compiled_body = capture.compile(body, backend="eager")
    x = torch.randn(4, 3)
    compare(body(x), compiled_body(x))
    out = compiled_body(x)
    assert out.attentions is None and "attentions" not in out and len(out) == 2


def test_model_output_passed_in_is_read_without_reentering_its_methods():
    """Reading the dict part must not call the class's own __getitem__ (which may itself
    be the frame being compiled: it once recursed forever)."""
    def use(o):
        return o["logits"].softmax(-1) + o[0] + o.logits + len(o) + len(o.to_tuple())

    compiled = capture.compile(use, backend="eager")
    for loss in (None, torch.tensor(1.5)):
        out = LMOutput(loss=loss, logits=torch.randn(2, 5))
        torch.testing.assert_close(compiled(out), use(out))
    explanation = capture.explain(use, LMOutput(logits=torch.randn(2, 5)))
    assert explanation.graph_count == 1 and not explanation.all_breaks, explanation.all_breaks

"""Training through the compiled path (``backend="triton"``, kernels in Triton's
interpreter): forward and backward graphs both generated, wired as an autograd.Function.

* models (MLP, a conv net with BatchNorm in train mode, the GPT-2 block, tiny Hugging
  Face GPT-2 / BERT / Llama) run AdamW steps (2 in CI, ``CAPTURE_TRAIN_STEPS``)
  compiled and eagerly from the same weights: loss, every gradient and every parameter (and buffer) agree at every step,
  and generated kernels run during ``backward()`` (launches counted);
* autograd's API behaves as eager's: ``torch.autograd.grad``, gradient accumulation,
  ``retain_graph``, hooks on parameters, gradients left None for unused outputs,
  double backward refused with a clear error;
* random ops: the same seed draws the same dropout mask / ``rand_like`` values as
  eager, and the backward uses the forward's mask;
* the tensors saved for backward take no more memory than eager's.

The HF models are the slowest tests here; all sizes are tiny.
"""
from __future__ import annotations

import copy
import math
import os

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import capture
import codegen
from bench import training

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")   # masked-off lanes divide by zero

# AdamW steps per model: two in CI (each step is a compiled forward and backward in
# Triton's interpreter): the first compiles, the second reuses the entry on parameters
# the optimizer changed in place; later steps repeat the second from a resynced state.
# The bar is 20: CAPTURE_TRAIN_STEPS=20 for a local run.
STEPS = int(os.environ.get("CAPTURE_TRAIN_STEPS", "2"))
RTOL, ATOL = 1e-4, 1e-5
# Parameters after an AdamW step: Adam divides each gradient by its own running size, so
# two gradients that agree to ATOL but are themselves of size ~ATOL (an embedding row
# seen once, a bias whose exact gradient is 0) can step up to lr apart. 1e-4 is 1% of lr.
PARAM_ATOL = 1e-4


# --------------------------------------------------------------------------- models

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2, self.fc3 = nn.Linear(16, 32), nn.Linear(32, 32), nn.Linear(32, 4)

    def forward(self, x):
        return self.fc3(torch.tanh(self.fc2(F.relu(self.fc1(x)))))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        # no conv bias before a BatchNorm: it cancels out (its gradient is rounding noise)
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2)
        x = F.relu(self.bn2(self.conv2(x)))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class GPT2Block(nn.Module):
    """bench.models.GPT2Block at a tiny size."""

    def __init__(self, d_model=32, n_head=4, block_size=8):
        super().__init__()
        self.n_head, self.d_model = n_head, d_model
        self.ln_1, self.ln_2 = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.c_attn, self.attn_proj = nn.Linear(d_model, 3 * d_model), nn.Linear(d_model, d_model)
        self.c_fc, self.mlp_proj = nn.Linear(d_model, 4 * d_model), nn.Linear(4 * d_model, d_model)
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def attn(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.d_model, dim=2)
        hs = C // self.n_head
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = F.softmax(att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.attn_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


def _hf(name):
    transformers = pytest.importorskip("transformers")
    if name == "gpt2":
        cfg = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=32, n_layer=1, n_head=4, resid_pdrop=0.0,
                                      embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0, use_cache=False)
        return transformers.GPT2LMHeadModel(cfg), lambda out: out.logits
    if name == "bert":
        cfg = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                                      intermediate_size=64, max_position_embeddings=16, hidden_dropout_prob=0.0,
                                      attention_probs_dropout_prob=0.0)
        # with the pooler: its parameters get no gradient (None, as in eager: AdamW skips them)
        return transformers.BertModel(cfg), lambda out: out.last_hidden_state
    cfg = transformers.LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=16,
                                   use_cache=False)
    return transformers.LlamaForCausalLM(cfg), lambda out: out.logits


def _ids():
    return (torch.randint(0, 64, (2, 8)),)


MODELS = {
    "mlp": (lambda: (MLP(), lambda out: out), lambda: (torch.randn(4, 16),)),
    "convnet_batchnorm": (lambda: (ConvNet(), lambda out: out), lambda: (torch.randn(2, 3, 8, 8),)),
    "gpt2_block": (lambda: (GPT2Block(), lambda out: out), lambda: (torch.randn(2, 8, 32),)),
    "hf_gpt2": (lambda: _hf("gpt2"), _ids),
    "hf_bert": (lambda: _hf("bert"), _ids),
    "hf_llama": (lambda: _hf("llama"), _ids),
}


# --------------------------------------------------------------------------- helpers

def backward_launches() -> int:
    """Kernel launches of every backward graph compiled since codegen.reset()."""
    return sum(g.calls * len(g.kernels) for g in codegen.COMPILED if g.role == "backward" and not g.runs_eagerly)


def loss_of(out):
    """Squared distance to a fixed random target (a model ending in a LayerNorm has
    mean(out ** 2) == 1: a loss without gradient, only rounding noise)."""
    target = torch.randn(out.shape, generator=torch.Generator().manual_seed(7))
    return (out.float() - target).pow(2).mean()


def resync(model, opt, eager, eager_opt):
    """Copy eager's parameters, buffers and AdamW moments into the compiled run (the same
    tensors, in place), so that every step is checked from the same state: fp32
    rounding differences would otherwise compound over the steps (chaotically so
    through Adam's per-parameter normalisation)."""
    with torch.no_grad():
        for p, q in zip(model.state_dict().values(), eager.state_dict().values()):
            p.copy_(q)
        for p, q in zip(model.parameters(), eager.parameters()):
            for key, value in eager_opt.state[q].items():
                if isinstance(value, torch.Tensor):
                    opt.state[p][key].copy_(value)


def assert_close(actual, expected, what, atol=ATOL):
    assert (actual is None) == (expected is None), f"{what}: {actual is None=} but {expected is None=}"
    if expected is not None:
        torch.testing.assert_close(actual, expected, rtol=RTOL, atol=atol, msg=lambda m: f"{what}: {m}")


# --------------------------------------------------------------------------- training

def _model_pair(name: str):
    """(model, output picker, eager copy, compiled model, input maker) for MODELS[name],
    built with seed 0."""
    make, make_inputs = MODELS[name]
    torch.manual_seed(0)
    model, pick = make()
    return model, pick, copy.deepcopy(model), capture.compile(model, backend="triton"), make_inputs


@pytest.mark.parametrize("name", list(MODELS))
def test_adamw_steps_match_eager(name):
    model, pick, eager, compiled, make_inputs = _model_pair(name)
    # eps above the rounding noise of gradients that are zero in exact arithmetic (a key
    # bias under softmax): AdamW divides by sqrt(v) + eps and would turn noise of 1e-9
    # into full-size steps, different in two runs that both compute the noise correctly.
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, eps=1e-6)
    eager_opt = torch.optim.AdamW(eager.parameters(), lr=1e-2, eps=1e-6)
    for step in range(STEPS):
        inputs = make_inputs()
        launches = backward_launches()
        loss = loss_of(pick(compiled(*inputs)))
        loss.backward()
        assert backward_launches() > launches, f"step {step}: no generated kernel ran during backward()"
        eager_loss = loss_of(pick(eager(*inputs)))
        eager_loss.backward()
        assert_close(loss.detach(), eager_loss.detach(), f"step {step}: loss")
        for (n, p), q in zip(model.named_parameters(), eager.parameters()):
            assert_close(p.grad, q.grad, f"step {step}: grad of {n}")
        opt.step()
        eager_opt.step()
        opt.zero_grad()
        eager_opt.zero_grad()
        for (n, p), q in zip(model.state_dict().items(), eager.state_dict().values()):
            assert_close(p, q, f"step {step}: {n} after the step", atol=PARAM_ATOL)
        resync(model, opt, eager, eager_opt)
    graphs = [g for g in codegen.COMPILED if g.role in ("forward", "backward")]
    assert graphs and not any(g.runs_eagerly for g in graphs), [g.stats.eager_reason for g in graphs]


# --------------------------------------------------------------------------- autograd's API

def _pair(fn_or_module):
    """(eager, compiled) with identical parameters."""
    eager = copy.deepcopy(fn_or_module) if isinstance(fn_or_module, nn.Module) else fn_or_module
    return eager, capture.compile(fn_or_module, backend="triton")


def test_autograd_grad_with_respect_to_inputs_and_parameters():
    torch.manual_seed(0)
    eager, compiled = _pair(MLP())
    x = torch.randn(4, 16, requires_grad=True)
    got = torch.autograd.grad(compiled(x).sin().sum(), [x, compiled.fc1.weight])
    expected = torch.autograd.grad(eager(x).sin().sum(), [x, eager.fc1.weight])
    for g, e, what in zip(got, expected, ("x", "fc1.weight")):
        assert_close(g, e, what)
    assert compiled.fc1.weight.grad is None        # autograd.grad does not accumulate


def test_gradients_accumulate_over_two_backward_calls():
    torch.manual_seed(0)
    eager, compiled = _pair(MLP())
    for model in (eager, compiled):
        for seed in (1, 2):
            model(torch.randn(4, 16, generator=torch.Generator().manual_seed(seed))).sum().backward()
    for (n, p), q in zip(compiled.named_parameters(), eager.parameters()):
        assert_close(p.grad, q.grad, n)


def test_retain_graph_allows_a_second_backward_and_frees_without_it():
    torch.manual_seed(0)
    eager, compiled = _pair(MLP())
    x = torch.randn(4, 16)
    for model in (eager, compiled):
        loss = model(x).exp().sum()
        loss.backward(retain_graph=True)
        loss.backward()
        with pytest.raises(RuntimeError, match="backward through the graph a second time"):
            loss.backward()
    for (n, p), q in zip(compiled.named_parameters(), eager.parameters()):
        assert_close(p.grad, q.grad, n)


def test_hooks_on_parameters_see_and_replace_the_gradient():
    torch.manual_seed(0)
    eager, compiled = _pair(MLP())
    seen = {"eager": {}, "compiled": {}}
    for run, model in (("eager", eager), ("compiled", compiled)):
        model.fc2.weight.register_hook(lambda g, run=run: seen[run].setdefault("fc2", g.clone()) * 0 + g * 2)
        model.fc3.bias.register_post_accumulate_grad_hook(
            lambda p, run=run: seen[run].__setitem__("fc3", p.grad.clone()))
        model(torch.ones(4, 16)).sum().backward()
    # (the order hooks of different parameters run in is not eager's: one backward node
    # hands every parameter its gradient)
    assert seen["compiled"].keys() == seen["eager"].keys() == {"fc2", "fc3"}
    for key in ("fc2", "fc3"):
        assert_close(seen["compiled"][key], seen["eager"][key], f"{key}: hooked gradient")
    assert_close(compiled.fc2.weight.grad, eager.fc2.weight.grad, "fc2.weight.grad (doubled by the hook)")


def test_outputs_the_loss_does_not_use_leave_gradients_none():
    def two_heads(x, w1, w2):
        return (x @ w1).relu(), (x @ w2).tanh()

    x = torch.randn(3, 4)
    ws = [torch.randn(4, 5, requires_grad=True) for _ in range(2)]
    ws += [w.detach().clone().requires_grad_() for w in ws]
    first, _ = two_heads(x, ws[0], ws[1])
    first.sum().backward()
    first, _ = capture.compile(two_heads, backend="triton")(x, ws[2], ws[3])
    first.sum().backward()
    assert ws[1].grad is None and ws[3].grad is None
    assert_close(ws[2].grad, ws[0].grad, "w1.grad")


def test_double_backward_is_refused_with_a_clear_error():
    def f(x):
        return (x * x).sin().sum()

    x = torch.randn(5, requires_grad=True)
    (g,) = torch.autograd.grad(capture.compile(f, backend="triton")(x), x, create_graph=True)
    assert_close(g, torch.autograd.grad(f(x), x)[0], "first derivative")
    with pytest.raises(RuntimeError, match="double backward"):
        g.sum().backward()


# --------------------------------------------------------------------------- random ops

def test_dropout_draws_eagers_mask_and_backward_uses_it():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 32), nn.Dropout(0.5), nn.Linear(32, 4)).train()
    eager, compiled = _pair(model)
    x = torch.randn(8, 16)
    for seed in (1, 2):
        torch.manual_seed(seed)
        got = compiled(x)
        got.sum().backward()
        after = torch.rand(1)             # the generator advanced as far as in eager
        torch.manual_seed(seed)
        expected = eager(x)
        expected.sum().backward()
        assert torch.equal(after, torch.rand(1))
        assert_close(got, expected, f"seed {seed}: output")
    for (n, p), q in zip(compiled.named_parameters(), eager.parameters()):
        assert_close(p.grad, q.grad, n)
    assert any(g.role == "backward" and not g.runs_eagerly for g in codegen.COMPILED)


def test_rand_like_and_bernoulli_reproduce_eagers_values():
    def f(x):
        noise = torch.rand_like(x)
        keep = torch.bernoulli(torch.full_like(x, 0.3))
        return x * noise + keep, torch.randn(3)

    x = torch.randn(4, 4)
    torch.manual_seed(5)
    expected = f(x)
    torch.manual_seed(5)
    got = capture.compile(f, backend="triton")(x)
    for g, e in zip(got, expected):
        assert torch.equal(g, e)


# --------------------------------------------------------------------------- memory

@pytest.mark.parametrize("name", ["mlp", "convnet_batchnorm", "gpt2_block"])
def test_saved_activations_take_no_more_memory_than_eagers(name):
    model, _, eager, compiled, make_inputs = _model_pair(name)
    inputs = make_inputs()
    compiled(*inputs)                                   # compile first
    saved = training.saved_activation_bytes(model, compiled, inputs)
    eager_saved = training.saved_activation_bytes(eager, eager, inputs)
    assert 0 < saved <= eager_saved, (saved, eager_saved)


def _gru_gate_step(x, h, w, b):
    """A GRU gate: the product is split in three, one slice saved for backward."""
    gates = torch.addmm(b, h, w.t()).view(1, 2, 48)
    r, z, n = gates.split([16, 16, 16], 2)
    return torch.tanh(n * torch.sigmoid(r + x)) + z


def _pointwise_split_step(x, a):
    r, z, n = (a * 3 + 1).split([16, 16, 16], 2)
    return torch.tanh(n * torch.sigmoid(r + x)) + z


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("fn, shapes", [(_gru_gate_step, [(1, 2, 16), (2, 16), (48, 16), (48,)]),
                                        (_pointwise_split_step, [(1, 2, 16), (1, 2, 48)])])
def test_saved_slice_of_a_fused_result_keeps_eagers_strides_for_backward(fn, shapes, backend):
    """The slice ``n`` is saved for backward but not stored by the fused forward kernel:
    the forward must still write it with eager's strides (a view of a 48-wide row), which
    the backward graph was traced with — a dense copy made it read the wrong elements."""
    g = torch.Generator().manual_seed(0)
    inputs = [torch.randn(*s, generator=g) for s in shapes]
    ours = [t.clone().requires_grad_() for t in inputs]
    theirs = [t.clone().requires_grad_() for t in inputs]
    capture.compile(fn, backend=backend)(*ours).sum().backward()
    fn(*theirs).sum().backward()
    for a, e in zip(ours, theirs):
        torch.testing.assert_close(a.grad, e.grad, rtol=RTOL, atol=ATOL)


def _normalize_log_softmax(x):
    return F.log_softmax(F.normalize(x, dim=-1), 0)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
@pytest.mark.parametrize("dynamic", [False, True])
def test_saved_expand_keeps_eagers_broadcast_strides_for_backward(dynamic, backend):
    """A saved ``expand`` (stride 0 along the broadcast dimension: a row's norm) is read
    by the backward graph with those strides; the forward wrote it as a dense copy, so
    every row read row 0's norm (x.grad off by ~0.1)."""
    fn = _normalize_log_softmax
    g = torch.Generator().manual_seed(0)
    compiled = capture.compile(fn, backend=backend, dynamic=dynamic)
    for shape in [(3, 7), (5, 6)]:
        x = torch.randn(*shape, generator=g)
        grad = torch.randn(*shape, generator=g)
        ours, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
        out = compiled(ours)
        out.backward(grad)
        fn(theirs).backward(grad)
        torch.testing.assert_close(out, fn(x), rtol=RTOL, atol=ATOL)
        torch.testing.assert_close(ours.grad, theirs.grad, rtol=RTOL, atol=ATOL)


"""Compiled nn.Modules against eager: headline models in one graph, containers, leaves."""
import copy
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import capture
from helpers_modules import assert_one_graph, assert_same, check, check_fresh, entries, n_entries


pytestmark = pytest.mark.usefixtures("seeded")  # capture.reset() runs around every test (conftest)


# --------------------------------------------------------------------------- models


class MLP(nn.Module):
    def __init__(self, d_in=16, hidden=32, d_out=8):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, d_out)

    def forward(self, x):
        x = F.relu(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool = nn.MaxPool2d(2)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(16)
        self.gap = nn.AdaptiveAvgPool2d((1, 1))
        self.head = nn.Linear(16, 10)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = F.relu(self.bn2(self.conv2(x)))
        x = self.gap(x)
        x = torch.flatten(x, 1)
        return self.head(x)


def _randomize_bn(model):
    """Non-trivial running stats so eval-mode BatchNorm actually does something."""
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    return model


class GPT2Block(nn.Module):
    """A GPT-2 decoder block written by hand (causal self-attention + MLP)."""

    def __init__(self, d_model=32, n_head=4, block_size=16):
        super().__init__()
        self.n_head = n_head
        self.d_model = d_model
        self.ln_1 = nn.LayerNorm(d_model)
        self.c_attn = nn.Linear(d_model, 3 * d_model)
        self.attn_proj = nn.Linear(d_model, d_model)
        self.ln_2 = nn.LayerNorm(d_model)
        self.c_fc = nn.Linear(d_model, 4 * d_model)
        self.gelu = nn.GELU(approximate="tanh")
        self.mlp_proj = nn.Linear(4 * d_model, d_model)
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def attn(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.d_model, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.attn_proj(y)

    def mlp(self, x):
        return self.mlp_proj(self.gelu(self.c_fc(x)))

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class GPT2BlockInlineMask(GPT2Block):
    """Same block but the causal mask is built in forward with torch.tril."""

    def attn(self, x):
        B, T, C = x.size()
        qkv = self.c_attn(x)
        q, k, v = qkv.split(self.d_model, dim=2)
        hs = C // self.n_head
        q, k, v = (t.view(B, T, self.n_head, hs).transpose(1, 2) for t in (q, k, v))
        mask = torch.tril(torch.ones(T, T, device=x.device)).view(1, 1, T, T)
        att = q @ k.transpose(-2, -1) / math.sqrt(hs)
        att = att.masked_fill(mask == 0, float("-inf")).softmax(dim=-1)
        y = (att @ v).transpose(1, 2).reshape(B, T, C)
        return self.attn_proj(y)


# --------------------------------------------------------------------------- headline models


def test_mlp_one_graph_and_matches():
    model = MLP()
    assert_one_graph(model, torch.randn(4, 16))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(4, 16),))
    assert n_entries(model) == 1


def test_mlp_backward_matches():
    model = MLP()
    ref = copy.deepcopy(model)
    compiled = capture.compile(model, backend="eager")
    for _ in range(2):
        x = torch.randn(5, 16)
        compiled(x).pow(2).sum().backward()
        ref(x).pow(2).sum().backward()
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, msg=lambda m: f"{n}: {m}")


def test_cnn_eval_one_graph_and_matches():
    model = _randomize_bn(CNN()).eval()
    assert_one_graph(model, torch.randn(2, 3, 16, 16))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 3, 16, 16),), atol=1e-5)
    assert n_entries(model) == 1


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_encoder_layer_eval_one_graph(batch_first):
    model = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, dropout=0.1,
                                       batch_first=batch_first).eval()
    shape = (2, 7, 32) if batch_first else (7, 2, 32)
    assert_one_graph(model, torch.randn(shape))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(shape),), atol=1e-5)


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_encoder_layer_eval_no_grad_fast_path(batch_first):
    # Under no_grad in eval, PyTorch takes its fused fast path for batch_first.
    model = nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=batch_first).eval()
    shape = (3, 5, 32) if batch_first else (5, 3, 32)
    compiled = capture.compile(model, backend="eager")
    with torch.no_grad():
        assert_one_graph(model, torch.randn(shape))
        check_fresh(compiled, model, lambda: (torch.randn(shape),), atol=1e-5)


def test_transformer_encoder_layer_with_mask_kwarg():
    model = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, batch_first=True).eval()
    mask = nn.Transformer.generate_square_subsequent_mask(6)

    def fn(x, m):
        return model(x, src_mask=m, is_causal=True)
    compiled = capture.compile(fn, backend="eager")
    check_fresh(compiled, fn, lambda: (torch.randn(2, 6, 16), mask), atol=1e-5)


def test_gpt2_block_one_graph_and_matches():
    model = GPT2Block().eval()
    assert_one_graph(model, torch.randn(2, 16, 32))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 16, 32),), atol=1e-5)
    assert n_entries(model) == 1


def test_gpt2_block_shorter_sequence_recompiles_and_matches():
    model = GPT2Block().eval()
    compiled = capture.compile(model, backend="eager")
    check(compiled, model, torch.randn(2, 16, 32), atol=1e-5)
    check(compiled, model, torch.randn(2, 9, 32), atol=1e-5)  # mask slice [:T, :T] depends on T
    check(compiled, model, torch.randn(1, 3, 32), atol=1e-5)
    assert n_entries(model) == 3


def test_gpt2_block_inline_tril_mask():
    model = GPT2BlockInlineMask().eval()
    assert_one_graph(model, torch.randn(2, 8, 32))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 8, 32),), atol=1e-5)


def test_gpt2_block_backward_matches():
    model = GPT2Block()
    ref = copy.deepcopy(model)
    compiled = capture.compile(model, backend="eager")
    x = torch.randn(2, 16, 32)
    compiled(x).sum().backward()
    ref(x).sum().backward()
    for (n, p), (_, q) in zip(model.named_parameters(), ref.named_parameters()):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-4, atol=1e-5, msg=lambda m: f"{n}: {m}")


# --------------------------------------------------------------------------- containers and structure


def test_sequential_compiled_directly():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 16), nn.Sigmoid(), nn.Linear(16, 4))
    assert_one_graph(model, torch.randn(3, 8))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(3, 8),))


def test_sequential_as_submodule_with_slicing():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(nn.Linear(6, 6), nn.ReLU(), nn.Linear(6, 6), nn.ReLU())

        def forward(self, x):
            return self.body[:2](x) + self.body(x) + self.body[-1](x)
    model = M()
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 6),))


def test_module_list_iterated():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(4)])

        def forward(self, x):
            outs = []
            for i, layer in enumerate(self.layers):
                x = layer(x) * (i + 1)
                outs.append(x.sum(-1))
            return x, torch.stack(outs, 0)
    model = M()
    assert_one_graph(model, torch.randn(2, 8))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 8),), atol=1e-5)


def test_module_list_zip_and_len():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.ModuleList([nn.Linear(4, 4) for _ in range(3)])
            self.b = nn.ModuleList([nn.LayerNorm(4) for _ in range(3)])

        def forward(self, x):
            for lin, norm in zip(self.a, self.b):
                x = norm(lin(x))
            return x * len(self.a)
    model = M()
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(3, 4),), atol=1e-5)


def test_module_dict_indexed_by_constant_string():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"cls": nn.Linear(8, 3), "reg": nn.Linear(8, 1)})

        def forward(self, x):
            return self.heads["cls"](x), self.heads["reg"](x)
    model = M()
    assert_one_graph(model, torch.randn(2, 8))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 8),))


def test_module_dict_indexed_by_string_argument():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleDict({"a": nn.Linear(8, 3), "b": nn.Linear(8, 3)})

        def forward(self, x, which):
            return self.heads[which](x)
    model = M()
    compiled = capture.compile(model, backend="eager")
    for which in ["a", "a", "b", "a", "b"]:
        check(compiled, model, torch.randn(2, 8), which)
    assert n_entries(model) == 2


def test_module_dict_items_loop():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.branches = nn.ModuleDict({"x": nn.Linear(4, 4), "y": nn.Tanh(), "z": nn.Linear(4, 4)})

        def forward(self, x):
            out = {}
            for name, mod in self.branches.items():
                out[name] = mod(x)
            return out
    model = M()
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 4),))


def test_module_calls_helper_method():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)

        def _normalize(self, x, eps=1e-5):
            return (x - x.mean(-1, keepdim=True)) / (x.std(-1, keepdim=True) + eps)

        def _block(self, x):
            return self._normalize(self.fc(x)) + x

        def forward(self, x):
            return self._block(self._block(x))
    model = M()
    assert_one_graph(model, torch.randn(3, 8))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(3, 8),), atol=1e-5)


def test_super_forward_in_subclass():
    class Base(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(5, 5)

        def forward(self, x):
            return torch.relu(self.fc(x))

    class Child(Base):
        def forward(self, x):
            return super().forward(x) * 2 + 1
    model = Child()
    assert_one_graph(model, torch.randn(2, 5))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 5),))


def test_subclass_of_torch_linear_with_super_forward():
    class ScaledLinear(nn.Linear):
        def forward(self, x):
            return super().forward(x) * 0.5
    model = ScaledLinear(4, 3)
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 4),))


def test_module_with_buffer():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.register_buffer("offset", torch.randn(4))
            self.register_buffer("scale", torch.full((4,), 0.5), persistent=False)

        def forward(self, x):
            return self.fc(x - self.offset) * self.scale
    model = M()
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(3, 4),))
    # buffer values changed in place: the graph must read them at run time
    with torch.no_grad():
        model.offset.add_(10.0)
    check(compiled, model, torch.randn(3, 4))


def test_module_buffer_updated_in_forward():
    class EMA(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("avg", torch.zeros(4))
            self.register_buffer("count", torch.zeros((), dtype=torch.long))

        def forward(self, x):
            self.avg.mul_(0.9).add_(x.mean(0) * 0.1)
            self.count += 1
            return x - self.avg
    model = EMA()
    ref = copy.deepcopy(model)
    compiled = capture.compile(model, backend="eager")
    for _ in range(3):
        x = torch.randn(5, 4)
        check(compiled, ref, x)
        assert_same(model.avg, ref.avg)
        assert_same(model.count, ref.count)


def test_module_with_plain_parameter_matmul():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 6))
            self.b = nn.Parameter(torch.zeros(6))

        def forward(self, x):
            return torch.addmm(self.b, x, self.w).relu()
    model = M()
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(3, 4),))


def test_embedding():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = nn.Embedding(50, 8, padding_idx=0)
            self.pos = nn.Embedding(16, 8)

        def forward(self, idx):
            T = idx.shape[1]
            pos = torch.arange(T, device=idx.device)
            return self.emb(idx) + self.pos(pos)
    model = M()
    assert_one_graph(model, torch.randint(0, 50, (2, 7)))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randint(0, 50, (2, 7)),))


def test_lstm_leaf():
    model = nn.LSTM(input_size=6, hidden_size=5, num_layers=2, batch_first=True)

    def fn(x, h0, c0):
        out, (h, c) = model(x, (h0, c0))
        return out.relu(), h, c
    compiled = capture.compile(fn, backend="eager")
    check_fresh(compiled, fn, lambda: (torch.randn(3, 4, 6), torch.randn(2, 3, 5), torch.randn(2, 3, 5)),
                atol=1e-5)


def test_lstm_module_compiled_directly():
    model = nn.LSTM(4, 3)
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(5, 2, 4),), atol=1e-5)


def test_gru_inside_module():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(4, 8, batch_first=True, bidirectional=True)
            self.head = nn.Linear(16, 2)

        def forward(self, x):
            out, h = self.gru(x)
            return self.head(out[:, -1]), h
    model = M()
    assert_one_graph(model, torch.randn(2, 5, 4))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 5, 4),), atol=1e-5)


def test_dropout_eval_is_identity():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(8, 8)
            self.drop = nn.Dropout(0.5)

        def forward(self, x):
            return self.drop(self.fc(x)) + F.dropout(x, 0.3, training=self.training)
    model = M().eval()
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(4, 8),))


def test_dropout_train_same_rng():
    model = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.5)).train()
    compiled = capture.compile(model, backend="eager")
    for seed in range(3):
        x = torch.randn(4, 8)
        torch.manual_seed(seed)
        expected = model(x)
        torch.manual_seed(seed)
        got = compiled(x)
        assert_same(got, expected)


def test_batchnorm_train_updates_running_stats_like_eager():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4, momentum=0.3), nn.ReLU()).train()
    ref = copy.deepcopy(model)
    compiled = capture.compile(model, backend="eager")
    for _ in range(3):
        x = torch.randn(4, 3, 8, 8)
        check(compiled, ref, x, atol=1e-5)
        bn, bn_ref = model[1], ref[1]
        assert_same(bn.running_mean, bn_ref.running_mean)
        assert_same(bn.running_var, bn_ref.running_var)
        assert_same(bn.num_batches_tracked, bn_ref.num_batches_tracked)
    assert int(model[1].num_batches_tracked) == 3


def test_batchnorm1d_train_cumulative_average():
    model = nn.BatchNorm1d(6, momentum=None).train()
    ref = copy.deepcopy(model)
    compiled = capture.compile(model, backend="eager")
    for _ in range(4):
        x = torch.randn(10, 6) * 3 + 1
        check(compiled, ref, x, atol=1e-5)
    assert_same(model.running_mean, ref.running_mean)
    assert_same(model.running_var, ref.running_var)
    assert_same(model.num_batches_tracked, ref.num_batches_tracked)


def test_functional_batch_norm_on_module_buffers_in_train():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("rm", torch.zeros(3))
            self.register_buffer("rv", torch.ones(3))

        def forward(self, x):
            return F.batch_norm(x, self.rm, self.rv, training=True, momentum=0.2)
    model = M()
    ref = copy.deepcopy(model)
    compiled = capture.compile(model, backend="eager")
    for _ in range(2):
        check(compiled, ref, torch.randn(8, 3) + 2, atol=1e-5)
        assert_same(model.rm, ref.rm)
        assert_same(model.rv, ref.rv)


def test_layernorm_groupnorm_and_activations():
    model = nn.Sequential(nn.Linear(8, 12), nn.LayerNorm(12), nn.SiLU(), nn.Unflatten(1, (3, 4)),
                          nn.GroupNorm(3, 3), nn.Flatten(), nn.GELU(), nn.Linear(12, 2), nn.LogSoftmax(-1))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(5, 8),), atol=1e-5)


def test_module_returning_dict_and_kwargs():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x, *, scale=1.0, residual=None):
            y = self.fc(x) * scale
            if residual is not None:
                y = y + residual
            return {"y": y, "norm": y.norm(dim=-1)}
    model = M()
    compiled = capture.compile(model, backend="eager")
    for _ in range(2):
        x, r = torch.randn(3, 4), torch.randn(3, 4)
        check(compiled, model, x)
        check(compiled, model, x, scale=2.0, residual=r)


def test_nested_user_modules_three_levels():
    class Leaf(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return torch.sigmoid(self.fc(x)) * x

    class Mid(nn.Module):
        def __init__(self):
            super().__init__()
            self.l1, self.l2 = Leaf(), Leaf()

        def forward(self, x):
            return self.l2(self.l1(x)) + x

    class Top(nn.Module):
        def __init__(self):
            super().__init__()
            self.mids = nn.ModuleList([Mid(), Mid()])

        def forward(self, x):
            for m in self.mids:
                x = m(x)
            return x
    model = Top()
    assert_one_graph(model, torch.randn(2, 4))
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 4),))


def test_shared_module_used_twice():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(4, 4)

        def forward(self, x):
            return self.fc(self.fc(x))
    model = M()
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 4),))
    assert entries(model)[0].kind == "graph"


@pytest.mark.parametrize("name", ["mlp", "cnn", "tel_bf", "tel", "gpt2"])
def test_headline_models_fullgraph(name):
    model, shape = {
        "mlp": (MLP(), (4, 16)),
        "cnn": (_randomize_bn(CNN()).eval(), (2, 3, 12, 12)),
        "tel_bf": (nn.TransformerEncoderLayer(32, 4, 64, batch_first=True).eval(), (2, 5, 32)),
        "tel": (nn.TransformerEncoderLayer(32, 4, 64, batch_first=False).eval(), (5, 2, 32)),
        "gpt2": (GPT2Block().eval(), (2, 16, 32)),
    }[name]
    compiled = capture.compile(model, backend="eager", fullgraph=True)
    check_fresh(compiled, model, lambda: (torch.randn(shape),), atol=1e-5)
    assert [e.kind for e in entries(model)] == ["graph"]


def test_module_list_slice_is_module_list():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(3, 3), nn.ReLU(), nn.Linear(3, 3)])

        def forward(self, x):
            rest = self.layers[1:]
            if isinstance(rest, nn.ModuleList):
                x = x * 10
            for layer in rest:
                x = layer(x)
            return x
    model = M()
    compiled = capture.compile(model, backend="eager")
    check_fresh(compiled, model, lambda: (torch.randn(2, 3),))

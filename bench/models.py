"""The benchmark model suite: each model with a deterministic builder and input factory.

Every entry is a :class:`ModelSpec`. ``make()`` builds the module with fixed seeds (so
two calls give identical weights), ``inputs()`` builds its example inputs, and
``output(out)`` picks the tensor a training step sums into its loss
(``loss = output(out).float().sum()``) — for Hugging Face models that is the
``logits`` / ``last_hidden_state`` of the returned ``ModelOutput``.

The hand-written models need only torch. ``hf_gpt2``, ``hf_bert`` and ``hf_llama`` are
built from small ``transformers`` configs with random weights when ``transformers``
imports; nothing is ever downloaded (``HF_HUB_OFFLINE`` is set before the import).
``available(spec)`` says whether a model can be built here, and why not.

Dropout is 0 everywhere, so train-mode outputs and gradients are deterministic and can
be compared against eager.
"""
from __future__ import annotations

import dataclasses
import importlib
import math
import os

import torch
import torch.nn.functional as F
from torch import nn

from bench.overhead import MLP  # the same MLP (and input) as `python -m bench overhead`


@dataclasses.dataclass
class ModelSpec:
    name: str
    description: str
    make: object  # () -> nn.Module (fixed seed: identical weights every call)
    inputs: object  # (seed=1) -> tuple of example inputs; same seed, same values
    output: object = None  # (model output) -> the tensor summed into the training loss
    quick: bool = False  # part of the --quick suite
    requires: str | None = None  # optional package this model needs

    def main_output(self, out):
        return self.output(out) if self.output is not None else out


def _seeded(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(*shape, seed: int = 1):
    return torch.randn(*shape, generator=_seeded(seed))


def _inputs(*shape):
    """An input factory: one random tensor of ``shape``; ``seed`` picks other values."""
    def make(seed: int = 1):
        return (_randn(*shape, seed=seed),)
    return make


def _built(factory):
    """Wrap a module factory so every call starts from the same seed."""
    def make():
        torch.manual_seed(0)
        return factory()
    return make


# ------------------------------------------------------------------ hand-written models

class CNN(nn.Module):
    """Two conv/batch-norm/ReLU stages with max pooling, global average pooling, a head."""

    def __init__(self, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(32)
        self.pool = nn.MaxPool2d(2)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, classes)
        with torch.no_grad():  # non-trivial running stats, so eval-mode batch norm does something
            for bn in (self.bn1, self.bn2):
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)

    def forward(self, x):
        x = self.pool(F.relu(self.bn1(self.conv1(x))))
        x = self.pool(F.relu(self.bn2(self.conv2(x))))
        return self.head(torch.flatten(self.gap(x), 1))


class LSTMClassifier(nn.Module):
    """A two-layer LSTM over a sequence, classifying from the last time step."""

    def __init__(self, d_in: int = 32, hidden: int = 64, classes: int = 10):
        super().__init__()
        self.lstm = nn.LSTM(d_in, hidden, num_layers=2, batch_first=True)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.head(out[:, -1])


class GPT2Block(nn.Module):
    """A GPT-2 decoder block written by hand: pre-norm causal self-attention + GELU MLP."""

    def __init__(self, d_model: int = 128, n_head: int = 4, block_size: int = 64):
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
        self.register_buffer("mask", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))

    def attn(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.d_model, dim=2)
        hs = C // self.n_head
        q = q.view(B, T, self.n_head, hs).transpose(1, 2)
        k = k.view(B, T, self.n_head, hs).transpose(1, 2)
        v = v.view(B, T, self.n_head, hs).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))
        att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = F.softmax(att, dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(B, T, C)
        return self.attn_proj(y)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp_proj(self.gelu(self.c_fc(self.ln_2(x))))


# ------------------------------------------------------------------ transformers models

def transformers_status() -> tuple[bool, str]:
    """(importable, version or the reason it is not)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never download anything
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        import transformers
    except Exception as e:  # noqa: BLE001 - any import failure means "skip these models"
        return False, f"`transformers` does not import here ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
    return True, transformers.__version__


def _hf_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    cfg = GPT2Config(vocab_size=1000, n_positions=128, n_embd=128, n_layer=2, n_head=4, use_cache=False,
                     bos_token_id=0, eos_token_id=0,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def _hf_bert():
    from transformers import BertConfig, BertModel
    cfg = BertConfig(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=256, max_position_embeddings=128, hidden_dropout_prob=0.0,
                     attention_probs_dropout_prob=0.0)
    return BertModel(cfg, add_pooling_layer=False)


def _hf_llama():
    from transformers import LlamaConfig, LlamaForCausalLM
    cfg = LlamaConfig(vocab_size=1000, hidden_size=128, intermediate_size=256, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128, use_cache=False,
                      attention_dropout=0.0)
    return LlamaForCausalLM(cfg)


def _token_ids(seed: int = 1, batch: int = 2, seq: int = 32, vocab: int = 1000):
    return (torch.randint(0, vocab, (batch, seq), generator=_seeded(seed)),)


def _logits(out):
    return out.logits if hasattr(out, "logits") else out[0]


def _last_hidden(out):
    return out.last_hidden_state if hasattr(out, "last_hidden_state") else out[0]


# ------------------------------------------------------------------ the suite

def suite() -> list[ModelSpec]:
    return [
        ModelSpec("mlp", "3-layer MLP, width 64, batch 4 (as in bench.overhead)", _built(MLP),
                  _inputs(4, 64), quick=True),
        ModelSpec("cnn", "conv/bn/relu/maxpool x2, global avg pool, linear; 8x3x32x32", _built(CNN),
                  _inputs(8, 3, 32, 32), quick=True),
        ModelSpec("lstm", "2-layer nn.LSTM(32->64), batch 4, 16 steps, linear head", _built(LSTMClassifier),
                  _inputs(4, 16, 32)),
        ModelSpec("encoder_layer", "nn.TransformerEncoderLayer(d=128, 4 heads, ff 256), batch 4, seq 32",
                  _built(lambda: nn.TransformerEncoderLayer(128, 4, dim_feedforward=256, dropout=0.0,
                                                            batch_first=True)),
                  _inputs(4, 32, 128)),
        ModelSpec("gpt2_block", "hand-written GPT-2 block (causal attention, d=128, 4 heads), batch 4, seq 64",
                  _built(GPT2Block), _inputs(4, 64, 128), quick=True),
        ModelSpec("hf_gpt2", "transformers GPT2LMHeadModel, 2 layers, d=128, vocab 1000, random weights; 2x32 ids",
                  _built(_hf_gpt2), _token_ids, output=_logits, requires="transformers"),
        ModelSpec("hf_bert", "transformers BertModel, 2 layers, d=128, vocab 1000, random weights; 2x32 ids",
                  _built(_hf_bert), _token_ids, output=_last_hidden, requires="transformers"),
        ModelSpec("hf_llama", "transformers LlamaForCausalLM, 2 layers, d=128, GQA 4/2 heads, random weights; 2x32 ids",
                  _built(_hf_llama), _token_ids, output=_logits, requires="transformers"),
    ]


def available(spec: ModelSpec) -> tuple[bool, str]:
    """(can this model be built here, why not)."""
    if spec.requires == "transformers":
        ok, why = transformers_status()
        return ok, ("" if ok else why)
    if spec.requires:
        try:
            importlib.import_module(spec.requires)
        except Exception as e:  # noqa: BLE001
            return False, f"`{spec.requires}` does not import here ({type(e).__name__}: {str(e).splitlines()[0][:120]})"
    return True, ""


def select(names: str | None = None, quick: bool = False) -> list[ModelSpec]:
    """Models by comma-separated names (``None``: all, or the quick set)."""
    models = suite()
    if names:
        wanted = [n.strip() for n in names.split(",") if n.strip()]
        known = {m.name: m for m in models}
        unknown = [n for n in wanted if n not in known]
        if unknown:
            raise SystemExit(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(known)}")
        return [known[n] for n in wanted]
    return [m for m in models if m.quick] if quick else models

"""The real-model tier's models: tiny configs of popular libraries, random weights.

Each ``RealModel`` builds a fresh module from a config written here (nothing is
downloaded: transformers configs are constructed in code, timm and torchvision build
their architectures with ``pretrained=False``/``weights=None``) and fresh inputs.
Libraries: transformers (decoders, encoders, encoder-decoders, vision), timm and
torchvision. ``tests/test_real_models.py`` runs them; a missing library skips its
models (the test extra installs all three).
"""
from __future__ import annotations

import dataclasses

import pytest
import torch


@dataclasses.dataclass(frozen=True)
class RealModel:
    name: str
    library: str  # transformers | timm | torchvision
    kind: str  # decoder | encoder | encoder-decoder | vision
    build: object  # (lib module) -> nn.Module
    inputs: object  # () -> (args tuple, kwargs dict)

    def make(self):
        lib = pytest.importorskip(self.library)
        return self.build(lib)


MODELS: list = []


def model(library, kind, inputs, name=None):
    def register(build):
        MODELS.append(RealModel(name or build.__name__, library, kind, build, inputs))
        return build
    return register


# ----------------------------------------------------------------- inputs

VOCAB = 128


def text(batch=2, seq=8, pad=2, labels=False):
    """Token ids and an attention mask with right padding on the last row."""
    def make():
        ids = torch.randint(3, VOCAB, (batch, seq))
        mask = torch.ones(batch, seq, dtype=torch.long)
        if pad:
            mask[-1, -pad:] = 0
        kwargs = {"attention_mask": mask}
        if labels:
            kwargs["labels"] = torch.randint(3, VOCAB, (batch, seq))
        return (ids,), kwargs
    return make


def seq2seq(batch=2, src=8, tgt=6):
    def make():
        ids = torch.randint(3, VOCAB, (batch, src))
        mask = torch.ones(batch, src, dtype=torch.long)
        mask[-1, -2:] = 0
        return (ids,), {"attention_mask": mask, "decoder_input_ids": torch.randint(3, VOCAB, (batch, tgt))}
    return make


def image(batch=2, size=32, channels=3):
    def make():
        return (torch.randn(batch, channels, size, size),), {}
    return make


def pixels(batch=2, size=32):
    def make():
        return (), {"pixel_values": torch.randn(batch, 3, size, size)}
    return make


# ------------------------------------------------------- transformers: common sizes

SMALL = dict(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
             max_position_embeddings=64)
NO_DROPOUT = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)


def _decoder(t, config_name, model_name, **extra):
    cfg = getattr(t, config_name)(**{**SMALL, **extra})
    cfg.use_cache = False
    return getattr(t, model_name)(cfg)


@model("transformers", "decoder", text(pad=0))
def hf_llama(t):
    return _decoder(t, "LlamaConfig", "LlamaForCausalLM", num_key_value_heads=2)


@model("transformers", "decoder", text(pad=0))
def hf_mistral(t):
    return _decoder(t, "MistralConfig", "MistralForCausalLM", num_key_value_heads=2, sliding_window=None)


@model("transformers", "decoder", text(pad=0))
def hf_qwen2(t):
    return _decoder(t, "Qwen2Config", "Qwen2ForCausalLM", num_key_value_heads=2)


@model("transformers", "decoder", text(pad=0))
def hf_phi3(t):
    return _decoder(t, "Phi3Config", "Phi3ForCausalLM", num_key_value_heads=2, pad_token_id=0)


@model("transformers", "decoder", text(pad=0))
def hf_gemma(t):
    return _decoder(t, "GemmaConfig", "GemmaForCausalLM", num_key_value_heads=2, head_dim=8)


@model("transformers", "decoder", text())
def hf_gpt2(t):
    cfg = t.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0,
                       embd_pdrop=0.0, attn_pdrop=0.0, use_cache=False)
    return t.GPT2LMHeadModel(cfg)


@model("transformers", "decoder", text())
def hf_gpt_neox(t):
    return _decoder(t, "GPTNeoXConfig", "GPTNeoXForCausalLM", hidden_dropout=0.0, attention_dropout=0.0)


@model("transformers", "decoder", text())
def hf_opt(t):
    cfg = t.OPTConfig(vocab_size=VOCAB, hidden_size=32, ffn_dim=64, num_hidden_layers=2, num_attention_heads=4,
                      max_position_embeddings=64, word_embed_proj_dim=32, dropout=0.0, use_cache=False)
    return t.OPTForCausalLM(cfg)


@model("transformers", "decoder", text())
def hf_bloom(t):
    cfg = t.BloomConfig(vocab_size=VOCAB, hidden_size=32, n_layer=2, n_head=4, hidden_dropout=0.0,
                        attention_dropout=0.0, use_cache=False)
    return t.BloomForCausalLM(cfg)


@model("transformers", "encoder", text())
def hf_bert(t):
    return t.BertForMaskedLM(t.BertConfig(**SMALL, **NO_DROPOUT))


@model("transformers", "encoder", text())
def hf_roberta(t):
    return t.RobertaForSequenceClassification(t.RobertaConfig(**SMALL, **NO_DROPOUT, pad_token_id=1, num_labels=3))


@model("transformers", "encoder", text())
def hf_distilbert(t):
    cfg = t.DistilBertConfig(vocab_size=VOCAB, dim=32, hidden_dim=64, n_layers=2, n_heads=4,
                             max_position_embeddings=64, dropout=0.0, attention_dropout=0.0)
    return t.DistilBertForMaskedLM(cfg)


@model("transformers", "encoder", text())
def hf_albert(t):
    return t.AlbertForMaskedLM(t.AlbertConfig(**SMALL, **NO_DROPOUT, embedding_size=16))


@model("transformers", "encoder", text())
def hf_electra(t):
    return t.ElectraForPreTraining(t.ElectraConfig(**SMALL, **NO_DROPOUT, embedding_size=16))


@model("transformers", "encoder", text())
def hf_deberta_v2(t):
    return t.DebertaV2ForMaskedLM(t.DebertaV2Config(**SMALL, **NO_DROPOUT, relative_attention=True,
                                                    position_buckets=8, max_relative_positions=16))


@model("transformers", "encoder-decoder", seq2seq())
def hf_t5(t):
    cfg = t.T5Config(vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4,
                     dropout_rate=0.0, relative_attention_num_buckets=8, use_cache=False)
    return t.T5ForConditionalGeneration(cfg)


@model("transformers", "encoder-decoder", seq2seq())
def hf_bart(t):
    cfg = t.BartConfig(vocab_size=VOCAB, d_model=32, encoder_layers=2, decoder_layers=2,
                       encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=64,
                       decoder_ffn_dim=64, max_position_embeddings=64, dropout=0.0, use_cache=False)
    return t.BartForConditionalGeneration(cfg)


@model("transformers", "vision", pixels())
def hf_vit(t):
    cfg = t.ViTConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                      image_size=32, patch_size=8, num_labels=5, **NO_DROPOUT)
    return t.ViTForImageClassification(cfg)


@model("transformers", "vision", pixels())
def hf_convnext(t):
    cfg = t.ConvNextConfig(hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], image_size=32, num_labels=5)
    return t.ConvNextForImageClassification(cfg)


@model("transformers", "vision", pixels())
def hf_resnet(t):
    cfg = t.ResNetConfig(embedding_size=8, hidden_sizes=[8, 16, 32, 64], depths=[1, 1, 1, 1], num_labels=5)
    return t.ResNetForImageClassification(cfg)


# ------------------------------------------------------------------- timm

def _timm(name, **kw):
    def build(timm):
        return timm.create_model(name, pretrained=False, num_classes=5, **kw)
    build.__name__ = "timm_" + name
    return build


# Chosen for coverage at a small trace cost: residual nets, depthwise/squeeze-excite
# blocks, transformer blocks, ConvNeXt's layer scale (shallow variants where timm
# takes a depth argument).
for _name, _kw in [("resnet10t", {}), ("mobilenetv3_small_050", {}),
                   ("convnext_atto", {"depths": (1, 1, 1, 1)}),
                   ("vit_tiny_patch16_224", {"img_size": 32, "patch_size": 8, "depth": 2}),
                   ("regnetx_002", {})]:
    model("timm", "vision", image(), name="timm_" + _name)(_timm(_name, **_kw))


# ------------------------------------------------------------- torchvision

def _tv(name, **kw):
    def build(tv):
        return getattr(tv.models, name)(weights=None, num_classes=5, **kw)
    return build


# efficientnet_b0 runs torchvision's stochastic depth and _log_api_usage_once in forward.
for _name in ("resnet18", "mobilenet_v3_small", "squeezenet1_1", "shufflenet_v2_x0_5", "efficientnet_b0"):
    model("torchvision", "vision", image(), name="tv_" + _name)(_tv(_name))

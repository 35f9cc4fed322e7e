"""Hugging Face transformers models: tiny configs, random weights, no downloads.

transformers is NOT a dependency of the project: when it is missing, these programs
skip (make_callable raises pytest's Skipped).
"""
from __future__ import annotations

import torch

from . import Call, program

PROGRAMS: list = []


def _transformers():
    import pytest
    return pytest.importorskip("transformers")


def _ids(vocab=96, batch=2, seq=8, pad_last=2):
    def make():
        ids = torch.randint(1, vocab, (batch, seq))
        mask = torch.ones(batch, seq, dtype=torch.long)
        if pad_last:
            mask[-1, -pad_last:] = 0  # right padding on the last row
        return Call((ids,), {"attention_mask": mask})
    return make


def _finish(model):
    model.eval()
    model.config.use_cache = False
    return model


@program(PROGRAMS, "hf_gpt2_lm_head", _ids(), tags=("hf",))
def make_hf_gpt2():
    t = _transformers()
    cfg = t.GPT2Config(vocab_size=96, n_positions=32, n_embd=32, n_layer=2, n_head=4, resid_pdrop=0.0,
                       embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return _finish(t.GPT2LMHeadModel(cfg))


@program(PROGRAMS, "hf_gpt2_eager_attention_no_mask", lambda: (torch.randint(0, 96, (2, 8)),), tags=("hf",))
def make_hf_gpt2_eager():
    t = _transformers()
    cfg = t.GPT2Config(vocab_size=96, n_positions=32, n_embd=32, n_layer=2, n_head=4, attn_implementation="eager",
                       bos_token_id=0, eos_token_id=0)
    return _finish(t.GPT2Model(cfg))


@program(PROGRAMS, "hf_bert_masked_lm", _ids(), tags=("hf",))
def make_hf_bert():
    t = _transformers()
    cfg = t.BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=32, hidden_dropout_prob=0.0,
                       attention_probs_dropout_prob=0.0)
    return _finish(t.BertForMaskedLM(cfg))


@program(PROGRAMS, "hf_bert_sequence_classification", _ids(pad_last=3), tags=("hf",))
def make_hf_bert_cls():
    t = _transformers()
    cfg = t.BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                       intermediate_size=64, max_position_embeddings=32, num_labels=3)
    return _finish(t.BertForSequenceClassification(cfg))


@program(PROGRAMS, "hf_llama_causal_lm", _ids(pad_last=0), tags=("hf",))
def make_hf_llama():
    t = _transformers()
    cfg = t.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return _finish(t.LlamaForCausalLM(cfg))

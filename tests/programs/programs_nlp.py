"""Sequence models: attention variants, Llama / GPT-2 style blocks, RNNs, sampling."""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import Call, program

PROGRAMS: list = []


def tokens(batch=2, seq=8, vocab=64):
    return lambda: (torch.randint(0, vocab, (batch, seq)),)


def hidden(batch=2, seq=8, dim=32):
    return lambda: (torch.randn(batch, seq, dim),)


# --------------------------------------------------------------- Llama pieces


@dataclass
class ModelArgs:
    dim: int = 32
    n_layers: int = 2
    n_heads: int = 4
    n_kv_heads: Optional[int] = 2
    vocab_size: int = 64
    multiple_of: int = 16
    ffn_dim_multiplier: Optional[float] = None
    norm_eps: float = 1e-5
    max_seq_len: int = 32
    rope_theta: float = 10000.0


class RMSNorm(torch.nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def _norm(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)

    def forward(self, x):
        output = self._norm(x.float()).type_as(x)
        return output * self.weight


def precompute_freqs_cis(dim: int, end: int, theta: float = 10000.0):
    freqs = 1.0 / (theta ** (torch.arange(0, dim, 2)[: (dim // 2)].float() / dim))
    t = torch.arange(end, device=freqs.device, dtype=torch.float32)
    freqs = torch.outer(t, freqs)
    return torch.cos(freqs), torch.sin(freqs)


def rotate_half(x):
    x1 = x[..., : x.shape[-1] // 2]
    x2 = x[..., x.shape[-1] // 2:]
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary_emb(q, k, cos, sin):
    cos = torch.cat((cos, cos), dim=-1)[None, :, None, :]
    sin = torch.cat((sin, sin), dim=-1)[None, :, None, :]
    return (q * cos) + (rotate_half(q) * sin), (k * cos) + (rotate_half(k) * sin)


def repeat_kv(x: torch.Tensor, n_rep: int) -> torch.Tensor:
    """torch.repeat_interleave(x, dim=2, repeats=n_rep)"""
    bs, slen, n_kv_heads, head_dim = x.shape
    if n_rep == 1:
        return x
    return (x[:, :, :, None, :].expand(bs, slen, n_kv_heads, n_rep, head_dim)
            .reshape(bs, slen, n_kv_heads * n_rep, head_dim))


class Attention(nn.Module):
    def __init__(self, args: ModelArgs):
        super().__init__()
        self.n_kv_heads = args.n_heads if args.n_kv_heads is None else args.n_kv_heads
        self.n_local_heads = args.n_heads
        self.n_local_kv_heads = self.n_kv_heads
        self.n_rep = self.n_local_heads // self.n_local_kv_heads
        self.head_dim = args.dim // args.n_heads
        self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)

    def forward(self, x, cos, sin, mask: Optional[torch.Tensor]):
        bsz, seqlen, _ = x.shape
        xq, xk, xv = self.wq(x), self.wk(x), self.wv(x)
        xq = xq.view(bsz, seqlen, self.n_local_heads, self.head_dim)
        xk = xk.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
        xv = xv.view(bsz, seqlen, self.n_local_kv_heads, self.head_dim)
        xq, xk = apply_rotary_emb(xq, xk, cos, sin)
        keys = repeat_kv(xk, self.n_rep)
        values = repeat_kv(xv, self.n_rep)
        xq = xq.transpose(1, 2)
        keys = keys.transpose(1, 2)
        values = values.transpose(1, 2)
        scores = torch.matmul(xq, keys.transpose(2, 3)) / math.sqrt(self.head_dim)
        if mask is not None:
            scores = scores + mask
        scores = F.softmax(scores.float(), dim=-1).type_as(xq)
        output = torch.matmul(scores, values)
        output = output.transpose(1, 2).contiguous().view(bsz, seqlen, -1)
        return self.wo(output)


class FeedForward(nn.Module):
    def __init__(self, dim: int, hidden_dim: int, multiple_of: int, ffn_dim_multiplier: Optional[float]):
        super().__init__()
        hidden_dim = int(2 * hidden_dim / 3)
        if ffn_dim_multiplier is not None:
            hidden_dim = int(ffn_dim_multiplier * hidden_dim)
        hidden_dim = multiple_of * ((hidden_dim + multiple_of - 1) // multiple_of)
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs):
        super().__init__()
        self.layer_id = layer_id
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, 4 * args.dim, args.multiple_of, args.ffn_dim_multiplier)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)

    def forward(self, x, cos, sin, mask):
        h = x + self.attention(self.attention_norm(x), cos, sin, mask)
        return h + self.feed_forward(self.ffn_norm(h))


class LlamaTransformer(nn.Module):
    def __init__(self, params: ModelArgs):
        super().__init__()
        self.params = params
        self.tok_embeddings = nn.Embedding(params.vocab_size, params.dim)
        self.layers = torch.nn.ModuleList()
        for layer_id in range(params.n_layers):
            self.layers.append(TransformerBlock(layer_id, params))
        self.norm = RMSNorm(params.dim, eps=params.norm_eps)
        self.output = nn.Linear(params.dim, params.vocab_size, bias=False)
        cos, sin = precompute_freqs_cis(params.dim // params.n_heads, params.max_seq_len * 2, params.rope_theta)
        self.register_buffer("freqs_cos", cos, persistent=False)
        self.register_buffer("freqs_sin", sin, persistent=False)

    def forward(self, tokens: torch.Tensor, start_pos: int = 0):
        _bsz, seqlen = tokens.shape
        h = self.tok_embeddings(tokens)
        cos = self.freqs_cos[start_pos: start_pos + seqlen]
        sin = self.freqs_sin[start_pos: start_pos + seqlen]
        mask = None
        if seqlen > 1:
            mask = torch.full((seqlen, seqlen), float("-inf"), device=tokens.device)
            mask = torch.triu(mask, diagonal=1)
        for layer in self.layers:
            h = layer(h, cos, sin, mask)
        h = self.norm(h)
        return self.output(h).float()


@program(PROGRAMS, "llama_tiny_gqa_rope", tokens())
def make_llama():
    return LlamaTransformer(ModelArgs()).eval()


@program(PROGRAMS, "llama_block_single", lambda: (torch.randn(2, 8, 32),) + precompute_freqs_cis(8, 8) + (None,))
def make_llama_block():
    return TransformerBlock(0, ModelArgs())


@program(PROGRAMS, "rmsnorm_bf16_input", lambda: (torch.randn(4, 16, 32).to(torch.bfloat16),))
def make_rmsnorm():
    return RMSNorm(32)


class SwiGLU(nn.Module):
    def __init__(self, dim, hidden):
        super().__init__()
        self.gate_up = nn.Linear(dim, 2 * hidden, bias=False)
        self.down = nn.Linear(hidden, dim, bias=False)

    def forward(self, x):
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(F.silu(gate) * up)


@program(PROGRAMS, "swiglu_mlp_chunk", hidden())
def make_swiglu():
    return SwiGLU(32, 48)


# ----------------------------------------------------------------------- GPT-2


@dataclass
class GPTConfig:
    block_size: int = 16
    vocab_size: int = 64
    n_layer: int = 2
    n_head: int = 4
    n_embd: int = 32
    dropout: float = 0.0
    bias: bool = True


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        assert config.n_embd % config.n_head == 0
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.n_head = config.n_head
        self.n_embd = config.n_embd
        self.dropout = config.dropout
        self.flash = hasattr(torch.nn.functional, "scaled_dot_product_attention")
        self.register_buffer("bias", torch.tril(torch.ones(config.block_size, config.block_size))
                             .view(1, 1, config.block_size, config.block_size))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        k = k.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        q = q.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        v = v.view(B, T, self.n_head, C // self.n_head).transpose(1, 2)
        if self.flash:
            y = torch.nn.functional.scaled_dot_product_attention(
                q, k, v, attn_mask=None, dropout_p=self.dropout if self.training else 0, is_causal=True)
        else:
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
            att = att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf"))
            att = F.softmax(att, dim=-1)
            att = self.attn_dropout(att)
            y = att @ v
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class NewGELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))


class GPTMLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 4 * config.n_embd, bias=config.bias)
        self.gelu = NewGELU()
        self.c_proj = nn.Linear(4 * config.n_embd, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class GPTBlock(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd, bias=config.bias)
        self.mlp = GPTMLP(config)

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        x = x + self.mlp(self.ln_2(x))
        return x


class NanoGPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict(dict(
            wte=nn.Embedding(config.vocab_size, config.n_embd),
            wpe=nn.Embedding(config.block_size, config.n_embd),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([GPTBlock(config) for _ in range(config.n_layer)]),
            ln_f=nn.LayerNorm(config.n_embd, bias=config.bias),
        ))
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.transformer.wte.weight = self.lm_head.weight  # weight tying

    def forward(self, idx, targets=None):
        device = idx.device
        b, t = idx.size()
        assert t <= self.config.block_size, f"Cannot forward sequence of length {t}"
        pos = torch.arange(0, t, dtype=torch.long, device=device)
        tok_emb = self.transformer.wte(idx)
        pos_emb = self.transformer.wpe(pos)
        x = self.transformer.drop(tok_emb + pos_emb)
        for block in self.transformer.h:
            x = block(x)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        else:
            logits = self.lm_head(x[:, [-1], :])
            loss = None
        return logits, loss


@program(PROGRAMS, "nanogpt_inference_weight_tied", tokens())
def make_nanogpt():
    return NanoGPT(GPTConfig()).eval()


@program(PROGRAMS, "nanogpt_with_targets_loss",
         lambda: Call((torch.randint(0, 64, (2, 8)),), {"targets": torch.randint(0, 64, (2, 8))}))
def make_nanogpt_loss():
    return NanoGPT(GPTConfig()).train()  # dropout 0.0, so deterministic


@program(PROGRAMS, "gpt2_block_manual_mask", hidden())
def make_gpt_block_manual():
    block = GPTBlock(GPTConfig())
    block.attn.flash = False
    return block.eval()


# ------------------------------------------------------- attention utilities


class MultiHeadSDPA(nn.Module):
    def __init__(self, dim=32, heads=4):
        super().__init__()
        self.heads = heads
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def _shape(self, t: torch.Tensor, bsz: int) -> torch.Tensor:
        return t.view(bsz, -1, self.heads, t.shape[-1] // self.heads).transpose(1, 2)

    def forward(self, query, key, value, lengths: torch.Tensor):
        bsz, tgt_len, dim = query.shape
        src_len = key.shape[1]
        # padding mask from lengths
        key_padding = torch.arange(src_len, device=key.device)[None, :] < lengths[:, None]  # (B, S) True = keep
        attn_mask = key_padding[:, None, None, :].expand(bsz, 1, tgt_len, src_len)
        q = self._shape(self.q_proj(query), bsz)
        k = self._shape(self.k_proj(key), bsz)
        v = self._shape(self.v_proj(value), bsz)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        out = out.transpose(1, 2).reshape(bsz, tgt_len, dim)
        return self.out_proj(out)


@program(PROGRAMS, "mha_sdpa_length_mask",
         lambda: (torch.randn(2, 5, 32), torch.randn(2, 7, 32), torch.randn(2, 7, 32), torch.tensor([7, 3])))
def make_mha_sdpa():
    return MultiHeadSDPA()


def masked_mean_pool(hidden_states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    max_len = hidden_states.size(1)
    mask = (torch.arange(max_len, device=hidden_states.device).expand(len(lengths), max_len)
            < lengths.unsqueeze(1)).to(hidden_states.dtype)
    summed = (hidden_states * mask.unsqueeze(-1)).sum(dim=1)
    return summed / mask.sum(dim=1, keepdim=True).clamp(min=1e-9)


@program(PROGRAMS, "masked_mean_pool_lengths", lambda: (torch.randn(3, 6, 8), torch.tensor([6, 2, 4])))
def make_masked_mean():
    return masked_mean_pool


@program(PROGRAMS, "nn_multihead_attention_key_padding",
         lambda: (torch.randn(2, 6, 16), torch.tensor([[False] * 6, [False] * 4 + [True] * 2])))
def make_nn_mha():
    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = nn.MultiheadAttention(16, 2, batch_first=True)

        def forward(self, x, key_padding_mask):
            out, weights = self.mha(x, x, x, key_padding_mask=key_padding_mask, need_weights=True)
            return out, weights
    return M().eval()


@program(PROGRAMS, "transformer_encoder_2layers_eval", lambda: (torch.randn(2, 6, 16),))
def make_transformer_encoder():
    layer = nn.TransformerEncoderLayer(d_model=16, nhead=2, dim_feedforward=32, dropout=0.1, batch_first=True)
    return nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()


class MaskedEncoder(nn.Module):
    def __init__(self, is_causal=None):
        super().__init__()
        layer = nn.TransformerEncoderLayer(16, 4, 32, dropout=0.0, batch_first=True, norm_first=True,
                                           activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.is_causal = is_causal

    def forward(self, x, pad_mask):
        T = x.size(1)
        causal = torch.triu(torch.ones(T, T, dtype=torch.bool, device=x.device), diagonal=1)
        return self.encoder(x, mask=causal, src_key_padding_mask=pad_mask, is_causal=self.is_causal)


def _encoder_inputs():
    return torch.randn(2, 6, 16), torch.tensor([[False] * 6, [False] * 3 + [True] * 3])


@program(PROGRAMS, "transformer_encoder_norm_first_causal_padding", _encoder_inputs)
def make_transformer_encoder_mask():
    return MaskedEncoder(is_causal=True).eval()


# is_causal=None: TransformerEncoder runs bool((mask == causal).all()) to detect a causal mask (data-dependent).
@program(PROGRAMS, "transformer_encoder_detects_causal_mask_from_data", _encoder_inputs, needs_break=True)
def make_transformer_encoder_detect():
    return MaskedEncoder(is_causal=None).eval()


class SinusoidalPositionalEncoding(nn.Module):
    def __init__(self, d_model: int, dropout: float = 0.1, max_len: int = 64):
        super().__init__()
        self.dropout = nn.Dropout(p=dropout)
        position = torch.arange(max_len).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, 1, d_model)
        pe[:, 0, 0::2] = torch.sin(position * div_term)
        pe[:, 0, 1::2] = torch.cos(position * div_term)
        self.register_buffer("pe", pe)

    def forward(self, x):
        """x: Tensor, shape [seq_len, batch_size, embedding_dim]"""
        x = x + self.pe[: x.size(0)]
        return self.dropout(x)


class TransformerLM(nn.Module):
    def __init__(self, ntoken=50, d_model=16, nhead=2, d_hid=32, nlayers=1):
        super().__init__()
        self.pos_encoder = SinusoidalPositionalEncoding(d_model)
        self.embedding = nn.Embedding(ntoken, d_model)
        self.d_model = d_model
        self.linear = nn.Linear(d_model, ntoken)
        self.layers = nn.ModuleList([nn.Linear(d_model, d_model) for _ in range(nlayers)])

    def forward(self, src):
        src = self.embedding(src) * math.sqrt(self.d_model)
        src = self.pos_encoder(src)
        for i, layer in enumerate(self.layers):
            src = src + torch.tanh(layer(src)) / (i + 1)
        return self.linear(src)


@program(PROGRAMS, "sinusoidal_posenc_buffer_lm", lambda: (torch.randint(0, 50, (7, 2)),))
def make_transformer_lm():
    return TransformerLM().eval()


# ------------------------------------------------------------------------ RNNs


class EncoderRNN(nn.Module):
    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.embedding = nn.Embedding(input_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)

    def forward(self, input):
        embedded = self.embedding(input)
        output, hidden = self.gru(embedded)
        return output, hidden


class DecoderRNN(nn.Module):
    def __init__(self, hidden_size, output_size, max_length=5, sos_token=0):
        super().__init__()
        self.embedding = nn.Embedding(output_size, hidden_size)
        self.gru = nn.GRU(hidden_size, hidden_size, batch_first=True)
        self.out = nn.Linear(hidden_size, output_size)
        self.max_length = max_length
        self.sos_token = sos_token

    def forward(self, encoder_outputs, encoder_hidden):
        batch_size = encoder_outputs.size(0)
        decoder_input = torch.empty(batch_size, 1, dtype=torch.long, device=encoder_outputs.device).fill_(
            self.sos_token)
        decoder_hidden = encoder_hidden
        decoder_outputs = []
        for i in range(self.max_length):
            decoder_output, decoder_hidden = self.forward_step(decoder_input, decoder_hidden)
            decoder_outputs.append(decoder_output)
            _, topi = decoder_output.topk(1)
            decoder_input = topi.squeeze(-1).detach()  # greedy: next input is own prediction
        decoder_outputs = torch.cat(decoder_outputs, dim=1)
        decoder_outputs = F.log_softmax(decoder_outputs, dim=-1)
        return decoder_outputs, decoder_hidden, None

    def forward_step(self, input, hidden):
        output = self.embedding(input)
        output = F.relu(output)
        output, hidden = self.gru(output, hidden)
        output = self.out(output)
        return output, hidden


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = EncoderRNN(20, 16)
        self.decoder = DecoderRNN(16, 20)

    def forward(self, src):
        enc_out, enc_hidden = self.encoder(src)
        return self.decoder(enc_out, enc_hidden)


@program(PROGRAMS, "gru_seq2seq_greedy", lambda: (torch.randint(0, 20, (2, 6)),))
def make_seq2seq():
    return Seq2Seq().eval()


class LSTMClassifier(nn.Module):
    def __init__(self, vocab_size=30, embedding_dim=8, hidden_dim=16, num_classes=3, bidirectional=True):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim, padding_idx=0)
        self.lstm = nn.LSTM(embedding_dim, hidden_dim, num_layers=2, bidirectional=bidirectional, batch_first=True)
        self.fc = nn.Linear(hidden_dim * 2 if bidirectional else hidden_dim, num_classes)

    def forward(self, text):
        embedded = self.embedding(text)
        output, (hidden, cell) = self.lstm(embedded)
        hidden = torch.cat((hidden[-2, :, :], hidden[-1, :, :]), dim=1)
        return self.fc(hidden)


@program(PROGRAMS, "lstm_bidirectional_classifier", lambda: (torch.randint(0, 30, (3, 7)),))
def make_lstm():
    return LSTMClassifier().eval()


class CharRNNCell(nn.Module):
    """Hand-unrolled LSTMCell over time (Python loop over seq len)."""

    def __init__(self, n_in=8, n_hidden=12):
        super().__init__()
        self.cell = nn.LSTMCell(n_in, n_hidden)
        self.head = nn.Linear(n_hidden, n_in)
        self.n_hidden = n_hidden

    def forward(self, x: torch.Tensor, state: Optional[Tuple[torch.Tensor, torch.Tensor]] = None):
        if state is None:
            h = x.new_zeros(x.size(1), self.n_hidden)
            c = x.new_zeros(x.size(1), self.n_hidden)
        else:
            h, c = state
        outs = []
        for t in range(x.size(0)):
            h, c = self.cell(x[t], (h, c))
            outs.append(self.head(h))
        return torch.stack(outs), (h, c)


@program(PROGRAMS, "lstmcell_unrolled_loop", lambda: (torch.randn(5, 2, 8),))
def make_char_rnn():
    return CharRNNCell()


# ------------------------------------------------------------------- sampling


def top_k_top_p_filtering(logits: torch.Tensor, top_k: int = 5, top_p: float = 0.9, filter_value=-float("inf")):
    top_k = min(max(top_k, 1), logits.size(-1))
    indices_to_remove = logits < torch.topk(logits, top_k)[0][..., -1, None]
    logits = logits.masked_fill(indices_to_remove, filter_value)
    sorted_logits, sorted_indices = torch.sort(logits, descending=True)
    cumulative_probs = torch.cumsum(F.softmax(sorted_logits, dim=-1), dim=-1)
    sorted_indices_to_remove = cumulative_probs > top_p
    sorted_indices_to_remove[..., 1:] = sorted_indices_to_remove[..., :-1].clone()
    sorted_indices_to_remove[..., 0] = 0
    indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
    return logits.masked_fill(indices_to_remove, filter_value)


def sample_step(logits, temperature: float = 0.8, top_k: int = 5):
    logits = logits[:, -1, :] / temperature
    filtered = top_k_top_p_filtering(logits, top_k=top_k)
    probs = F.softmax(filtered, dim=-1)
    greedy = torch.argmax(probs, dim=-1, keepdim=True)
    values, indices = torch.topk(probs, k=top_k, dim=-1)
    return {"probs": probs, "greedy": greedy, "topk": (values, indices)}


@program(PROGRAMS, "topk_top_p_sampling_dict_out", lambda: (torch.randn(3, 4, 20), 0.7, 4))
def make_sampling():
    return sample_step


# ---------------------------------------------------------------- MLP-Mixer


class MixerBlock(nn.Module):
    def __init__(self, num_patches, dim, token_dim, channel_dim):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mix = nn.Sequential(nn.Linear(num_patches, token_dim), nn.GELU(), nn.Linear(token_dim, num_patches))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mix = nn.Sequential(nn.Linear(dim, channel_dim), nn.GELU(), nn.Linear(channel_dim, dim))

    def forward(self, x):
        y = self.norm1(x).transpose(1, 2)
        x = x + self.token_mix(y).transpose(1, 2)
        return x + self.channel_mix(self.norm2(x))


@program(PROGRAMS, "mlp_mixer_block", lambda: (torch.randn(2, 16, 24),))
def make_mixer():
    return nn.Sequential(MixerBlock(16, 24, 32, 48), MixerBlock(16, 24, 32, 48), nn.LayerNorm(24))


# ------------------------------------------------------------ embeddings / KV


class KVCacheAttention(nn.Module):
    """Decoding step that takes and returns a dict cache (as HF-style code does)."""

    def __init__(self, dim=16, heads=2):
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.heads = heads

    def forward(self, x, cache: dict):
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        if "k" in cache:
            k = torch.cat([cache["k"], k], dim=2)
            v = torch.cat([cache["v"], v], dim=2)
        new_cache = {"k": k, "v": v, "len": cache.get("len", 0) + T}
        out = F.scaled_dot_product_attention(q, k, v)
        return out.transpose(1, 2).reshape(B, T, C), new_cache


@program(PROGRAMS, "kv_cache_dict_in_out",
         lambda: (torch.randn(2, 1, 16), {"k": torch.randn(2, 2, 3, 8), "v": torch.randn(2, 2, 3, 8), "len": 3}))
def make_kv_cache():
    return KVCacheAttention()


class EmbeddingBagClassifier(nn.Module):
    def __init__(self, vocab=40, dim=8, classes=4):
        super().__init__()
        self.embedding = nn.EmbeddingBag(vocab, dim, mode="mean")
        self.fc = nn.Linear(dim, classes)
        self.init_weights()

    def init_weights(self):
        initrange = 0.5
        self.embedding.weight.data.uniform_(-initrange, initrange)
        self.fc.weight.data.uniform_(-initrange, initrange)
        self.fc.bias.data.zero_()

    def forward(self, text, offsets):
        return self.fc(self.embedding(text, offsets))


@program(PROGRAMS, "embedding_bag_offsets", lambda: (torch.randint(0, 40, (10,)), torch.tensor([0, 3, 7])))
def make_embedding_bag():
    return EmbeddingBagClassifier()

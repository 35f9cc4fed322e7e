"""Op families of the dynamic-shape property tests (``test_dynamic_families.py``): what
held-out models do with sizes that the size-arithmetic grammar of
``test_dynamic_hypothesis.py`` does not reach.

A family names its arguments (each dimension a size symbol or a number; a dtype, where
``"X"`` is the dtype drawn for the program; ``"n"``-style Python ints), the pools its
size symbols are drawn from, *chain* forms (a value of the main argument's shape from one
of that shape: ``{u}``) that statements apply one after another, and *out* forms (any
shape) for the returned values. A form is tagged with the dtype kinds it is legal for;
a form starting with ``!`` is a statement (an in-place write), not an assignment.
"""
from __future__ import annotations

import dataclasses

# bfloat16 is a kind of its own: forms whose result eager rounds differently enough to
# flip a comparison (argmax of computed values) or that amplify rounding (normalizing a
# near-constant row) are float32/float64 only (``F32``).
F32, FLOAT, INT, BOOL = ("float",), ("float", "bf16"), ("int",), ("bool",)
NUM, ALL = FLOAT + INT, FLOAT + INT + BOOL
DTYPE_KIND = {"float32": "float", "float64": "float", "bfloat16": "bf16", "int64": "int", "int32": "int",
              "bool": "bool"}


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    args: tuple            # (name, dims, dtype); dims: symbols or numbers; dtype "X", a torch dtype name,
                           # "index:<symbol>" (int64 in [0, size)), or "int" (a Python int, the symbol's size)
    main: str
    sizes: dict            # symbol -> pool of sizes
    chain: tuple           # (kinds, form)
    outs: tuple            # (kinds, form)
    dtypes: tuple = ("float32",)
    trains: bool = True    # float arguments can require grad
    weight: int = 1        # how often programs are drawn from it, against the others


def _f(*forms, kinds=FLOAT):
    return tuple((kinds, form) for form in forms)


NORM = Family(
    "norm", (("x", ("B", "N"), "X"), ("w", ("N",), "X")), "x",
    {"B": (0, 1, 2, 3, 5, 8, 17), "N": (1, 2, 3, 7, 16, 33, 100, 257, 2049, 2100)},
    _f("torch.softmax({u}, -1)", "F.log_softmax({u}, -1)", "F.layer_norm({u}, ({u}.shape[-1],), w, w * {c})",
       "F.layer_norm({u}, {u}.shape[-1:])", "F.rms_norm({u}, ({u}.shape[-1],), w)",
       "{u} * torch.rsqrt({u}.pow(2).mean(-1, keepdim=True) + 1e-6) * w",
       "torch.softmax({u} * {c}, 0)", "F.normalize({u}, dim=-1) + w", "{u} - torch.logsumexp({u}, -1, keepdim=True)",
       "torch.softmax({u}.masked_fill(torch.arange({u}.shape[-1]) > {u}.shape[-1] // 2, float('-inf')), -1)",
       "torch.tanh({u}) * {c} + w", "!x.copy_(torch.softmax(x, -1))", "!w.mul_({c})")
    + _f("({u} - {u}.mean(-1, keepdim=True)) / ({u}.var(-1, keepdim=True, unbiased=False) + 1e-5).sqrt()", kinds=F32),
    _f("{u}.amax(-1)", "{u}.sum(-1, keepdim=True)", "{u}.t()", "{u}[:, -1]",
       "torch.softmax({u}, -1).sum(0)", "F.log_softmax({u}, 0)") + _f("{u}.argmax(-1)", kinds=F32),
    dtypes=("float32", "float32", "float64", "bfloat16"))

MATMUL = Family(
    "matmul", (("x", ("M", "K"), "X"), ("w", ("N", "K"), "X"), ("bias", ("N",), "X")), "x",
    {"M": (0, 1, 2, 5, 15, 16, 17, 32, 33, 48), "K": (1, 3, 8, 16, 17, 40), "N": (1, 4, 16, 20, 33)},
    _f("F.linear(F.linear({u}, w), w.t()) / ({u}.shape[-1] + w.shape[0])",
       "torch.relu({u} @ w.t() + bias) @ w / ({u}.shape[-1] + w.shape[0])",
       "torch.softmax({u} @ {u}.t() / ({u}.shape[-1] ** 0.5), -1) @ {u}",
       "({u} @ ({u}.t() @ {u})) / ({u}.shape[0] * {u}.shape[1] + 1)",
       "torch.addmm(bias, {u}, w.t()) @ w / ({u}.shape[-1] + w.shape[0])",
       "{u} * {c} + torch.mm({u}, w.t()).sum(-1, keepdim=True) / (w.shape[0] * {u}.shape[1] + 1)",
       "torch.matmul({u}.unsqueeze(0).expand(2, -1, -1), {u}.t()).sum(0) @ {u} / ({u}.shape[0] * {u}.shape[1] + 1)",
       "!x.add_(x @ (w.t() @ w) / (w.shape[0] * w.shape[1] + 1))"),
    _f("F.linear({u}, w, bias)", "{u} @ w.t()", "torch.mm(w, {u}.t())", "{u}.t() @ {u}",
       "torch.einsum('mk,nk->mn', {u}, w)", "F.linear({u}, w).relu().sum(0)",
       "torch.bmm({u}.unsqueeze(0), w.t().unsqueeze(0))"),
    dtypes=("float32", "float32", "float32", "float64"))

BMM = Family(
    "bmm", (("z", ("B", "M", "K"), "float32"), ("y", ("B", "K", "M"), "float32"), ("w", ("N", "K"), "float32")),
    "z", {"B": (1, 2, 3, 4), "M": (0, 1, 2, 5, 16, 17, 33), "K": (1, 3, 16, 17, 24), "N": (4, 16, 20)},
    _f("torch.bmm(torch.bmm({u}, y), {u}) / ({u}.shape[1] * {u}.shape[2] + 1)",
       "torch.baddbmm({u}, torch.softmax({u} @ {u}.transpose(1, 2) / ({u}.shape[-1] + 1), -1), {u})",
       "torch.matmul({u}, w.t()) @ w / ({u}.shape[-1] + w.shape[0])",
       "F.linear({u}, w).relu() @ w * {c} / ({u}.shape[-1] + w.shape[0])",
       "{u} @ (y @ {u}) / ({u}.shape[1] * {u}.shape[2] + 1)"),
    _f("torch.bmm({u}, y)", "{u} @ w.t()", "torch.einsum('bmk,bkn->bmn', {u}, y)",
       "({u} @ {u}.transpose(-1, -2)).amax(-1)"))

_ATTENTION_CHAIN = _f(
    "F.scaled_dot_product_attention({u}, k, v)", "F.scaled_dot_product_attention({u}, k, v, is_causal=True)",
    "F.scaled_dot_product_attention({u}, k, v, attn_mask=bm)", "F.scaled_dot_product_attention({u}, k, v, attn_mask=fm)",
    "F.scaled_dot_product_attention({u}, k, v, attn_mask=torch.ones({u}.shape[-2], k.shape[-2], dtype=torch.bool).tril())",
    "F.scaled_dot_product_attention({u}, k, v, scale={c})",
    "torch.softmax({u} @ k.transpose(-1, -2) * {u}.size(-1) ** -0.5, -1) @ v",
    "{u} + F.scaled_dot_product_attention({u}, k, v, attn_mask=bm[None, None])")
_ATTENTION_OUTS = _f("F.scaled_dot_product_attention({u}, k, v, is_causal=True).sum(-1)",
                     "{u}.transpose(1, 2).reshape({u}.shape[0], {u}.shape[2], {u}.shape[1] * {u}.shape[3])", "{u}.mean(1)")
_ATTENTION_SIZES = {"B": (1, 2, 3), "H": (1, 2), "S": (0, 1, 2, 5, 16, 17, 33), "L": (1, 2, 5, 16, 17, 33),
                    "D": (8, 16, 32)}
SELF_ATTENTION = Family(
    "self_attention", (("q", ("B", "H", "S", "D"), "float32"), ("k", ("B", "H", "S", "D"), "float32"),
                       ("v", ("B", "H", "S", "D"), "float32"), ("bm", ("S", "S"), "bool"), ("fm", ("S", "S"), "float32")),
    "q", _ATTENTION_SIZES, _ATTENTION_CHAIN, _ATTENTION_OUTS)
CROSS_ATTENTION = Family(
    "cross_attention", (("q", ("B", "H", "S", "D"), "float32"), ("k", ("B", "H", "L", "D"), "float32"),
                        ("v", ("B", "H", "L", "D"), "float32"), ("bm", ("S", "L"), "bool"), ("fm", ("S", "L"), "float32")),
    "q", _ATTENTION_SIZES, _ATTENTION_CHAIN, _ATTENTION_OUTS)

INDEX = Family(
    "index", (("x", ("N", "D"), "float32"), ("idx", ("J",), "index:N"), ("idx2", ("J", "D"), "index:N")), "x",
    {"N": (1, 2, 5, 9, 17), "J": (0, 1, 2, 3, 7, 16, 33), "D": (1, 3, 8, 16)},
    _f("{u}.index_add(0, idx, F.embedding(idx, {u}) * {c})", "{u}.index_fill(0, idx, {c})",
       "{u}.scatter_add(0, idx2, {u}.gather(0, idx2))", "{u} + {u}[idx].sum(0)",
       "{u} * F.one_hot(idx, {u}.shape[0]).sum(0, keepdim=True).t()",
       "{u}.index_put((idx,), {u}.index_select(0, idx) * {c}, accumulate=True)",
       "!x.index_add_(0, idx, x[idx] * {c})", "!x[idx] = {c}", "!x.scatter_(0, idx2, {c})"),
    _f("F.embedding(idx, {u})", "{u}[idx]", "{u}.index_select(0, idx)", "{u}.gather(0, idx2)",
       "torch.take_along_dim({u}, idx2, 0)", "{u}[idx, : {u}.shape[1] // 2]", "F.embedding(idx, {u}).sum(-1)",
       "{u}.index_select(0, idx).t()", "{u}[idx.flip(0)]", "idx + {u}.shape[0]"))

FACTORY = Family(
    "factory", (("x", ("B", "N"), "float32"),), "x",
    {"B": (0, 1, 2, 3, 5, 8, 16, 17), "N": (0, 1, 2, 3, 4, 7, 13, 32)},
    _f("{u} + torch.arange({u}.shape[1])", "{u} * torch.ones({u}.shape[0], 1)",
       "{u} + {u}.new_zeros({u}.shape[0], {u}.shape[1])", "{u} + torch.full(({u}.shape[-1],), {c})",
       "{u} * torch.arange({u}.shape[0]).unsqueeze(1)", "{u} + torch.arange({u}.numel()).view_as({u}) * {c}",
       "{u} + torch.eye({u}.shape[0], {u}.shape[1])", "torch.tril({u}) + torch.triu({u}, 1) * {c}",
       "{u} + torch.linspace(0, 1, {u}.shape[1])", "{u} * torch.arange(0, 2 * {u}.shape[1], 2, dtype={u}.dtype)",
       "{u} + {u}.new_ones({u}.shape) * {c}", "{u} + torch.empty({u}.shape).fill_({c})",
       "{u} + torch.arange({u}.shape[0] - 1, -1, -1).unsqueeze(-1)",
       "{u} + torch.zeros({u}.shape[0], {u}.shape[1], dtype=torch.float64)",
       "{u}.masked_fill(torch.ones({u}.shape, dtype=torch.bool).triu(1), {c})", "{u} + torch.rand({u}.shape[0], 1)"),
    _f("torch.arange({u}.shape[0])", "torch.ones({u}.shape[0], 3, dtype=torch.int64)", "{u}.new_zeros({u}.shape[1])",
       "torch.arange({u}.numel()) / max({u}.numel(), 1)", "torch.full(({u}.shape[0], 2), 7, dtype=torch.int32)",
       "{u}.new_empty({u}.shape).zero_()", "torch.arange({u}.shape[1]).expand({u}.shape[0], -1)",
       "torch.zeros_like({u}, dtype=torch.bool)"))

INT_ARGUMENT = Family(
    "int_argument", (("x", ("B", "N"), "float32"), ("n", ("n",), "int")), "x",
    {"B": (0, 1, 2, 3, 5, 8), "N": (1, 2, 3, 4, 7, 13), "n": (1, 2, 3, 5)},
    _f("{u} * n", "{u}.roll(n, 1)", "{u} + torch.arange({u}.shape[1]) % n", "torch.cat([{u}[:, n:], {u}[:, :n]], 1)",
       "F.pad({u}, (n, 0))[:, :{u}.shape[1]]", "{u}.clamp(max=n)", "{u}[:, :n].sum(-1, keepdim=True) + {u}"),
    _f("{u}[:n]", "{u}.repeat(n, 1)", "torch.arange(n) * {c}", "{u}.reshape(-1)[:n]",
       "torch.ones(n, {u}.shape[1]) @ {u}.t()", "{u}.topk(min(n, {u}.shape[1]), dim=1).values", "{u}.split(n, 1)"))

DTYPES = Family(
    "dtypes", (("x", ("B", "N"), "X"), ("y", ("B", "N"), "float32")), "x",
    {"B": (0, 1, 2, 3, 5, 8), "N": (1, 2, 3, 7, 16)},
    _f("torch.where(y > 0, {u}, {u}.flip(0))", "{u}.roll(1, 0)", "{u}[:, torch.arange({u}.shape[1] - 1, -1, -1)]",
       "torch.cat([{u}[1:], {u}[:1]])", "{u}.clone()", "torch.maximum({u}, {u}.flip(1))", "{u}.masked_fill(y > 1, 0)",
       kinds=ALL)
    + _f("{u} + {u}", "{u} * 2", "{u} - {u}.flip(0)", "torch.clamp({u}, -2, 3)", "{u}.abs()", "{u} * {u}.shape[1]",
         kinds=NUM)
    + _f("{u} // 3", "{u} % 5", "{u} & 6", "!x.add_(x.shape[0])", kinds=INT)
    + _f("torch.softmax({u}, -1)", "{u}.exp().log1p()", "F.layer_norm({u}, {u}.shape[-1:])",
         "{u}.sigmoid() * {u}.shape[0]")
    + _f("{u} & {u}.flip(1)", "~{u}", "{u} ^ (y > 0)", "{u} | (y > 0.5)", "!x.logical_not_()", kinds=BOOL),
    _f("{u}.sum(-1)", "{u}.cumsum(0)", "{u}.to(torch.float32) * y", "{u}.to(y.dtype) @ y.t()", "({u} != 0).sum()",
       "({u} == {u}.flip(0)).all(-1)", "{u}.any(-1)", "{u}.float().mean(0)", "{u}.to(torch.int64).prod(-1)", kinds=ALL)
    + _f("{u}.amax(0)", "{u}.sum(0, dtype=torch.float64)", "{u}.sort(-1).values", kinds=NUM)
    + _f("{u}.argmax(-1)", kinds=F32 + INT)
    + _f("{u}.mean(-1)", "{u}.var(0)"),
    dtypes=("float64", "bfloat16", "int64", "int32", "bool"), trains=False, weight=3)

# Outputs that are views, the same tensor twice, broadcasts (stride 0), of one or no
# element, inputs after in-place writes, and casts between dtypes: where a functional
# compiler must rebuild eager's aliasing and layout at the boundary.
ALIASING = Family(
    "aliasing", (("x", ("B", "N"), "X"), ("y", ("B", "N"), "float32")), "x",
    {"B": (0, 1, 2, 3, 5, 8), "N": (0, 1, 2, 3, 4, 7)},
    _f("{u}.t().t()", "{u}[:]", "{u}.view_as(y)", "{u}.clone()", "{u}.mT.mT.contiguous()",
       "{u}.flatten()[: {u}.numel()].view_as({u})", "{u}.sum(0, keepdim=True).expand_as({u})",
       "{u}[:1].expand({u}.shape[0], -1)", "torch.where(y > 0, {u}, {u}.flip(0))", "{u}.expand(1, -1, -1)[0]",
       "!x.t().mul_(2)", "!x[:, : x.shape[1] // 2].zero_()", "!x.copy_(x.flip(0))", kinds=ALL)
    + _f("{u} * {c}", "{u}.to(y.dtype).to({u}.dtype) + {u}", "{u} * y.sum().to({u}.dtype)", kinds=NUM)
    + _f("!x.add_(y.to(x.dtype))", "!x.mul_(x.shape[0])", kinds=NUM),
    _f("x", "y", "{u}", "{u}.t()", "{u}.mT", "{u}.diagonal()", "{u}[:1]", "{u}[:0]", "{u}[-1:]", "{u}.view(-1)",
       "{u}.reshape(-1, 1)", "{u}.unsqueeze(0)", "{u}.expand(2, -1, -1)", "{u}.sum(0, keepdim=True).expand_as({u})",
       "{u}.contiguous().as_strided(({u}.shape[1], {u}.shape[0]), (1, {u}.shape[1]))", "{u}.squeeze()", "{u}.t().contiguous()",
       "{u}.to(y.dtype) @ y.t()", "{u}.to(y.dtype).t() @ y", "{u}.to(torch.float64)", "{u}.to({u}.dtype)",
       "{u}.detach()", "{u}.flatten()", "{u}.narrow(1, 0, {u}.shape[1] // 2).t()", "{u}.sum().to(y.dtype) + y[:1]",
       "{u}[: {u}.shape[0] // 2, None]", kinds=ALL)
    + _f("{u}.amax(0, keepdim=True)", "({u} * 2).t()", "{u}.sum(1, keepdim=True).expand(-1, 3)", kinds=NUM),
    dtypes=("float32", "float32", "float64", "bfloat16", "int64", "bool"), weight=2)

FAMILIES = (NORM, MATMUL, BMM, SELF_ATTENTION, CROSS_ATTENTION, INDEX, FACTORY, INT_ARGUMENT, DTYPES, ALIASING)

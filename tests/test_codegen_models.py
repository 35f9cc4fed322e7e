"""Models through ``capture.compile(..., backend=backend())`` (each emitter: Triton in the interpreter, C):
results match eager (float32 tolerance) and the kernel counts stay what fusion promises."""
import logging
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import capture
import codegen
from helpers_codegen import backend
from helpers_modules import check_fresh
from test_modules_models import CNN, MLP, GPT2Block, GPT2BlockInlineMask, _randomize_bn

pytestmark = [pytest.mark.filterwarnings("ignore::RuntimeWarning"), pytest.mark.usefixtures("emitter")]   # masked-off lanes divide by zero


# The model suite (issue 5): every kernel these compile to is also checked for sm_90, as
# launched (tests/test_codegen_sm90.py). name -> (model factory, input shape).
MODEL_SUITE = {
    "mlp": (MLP, (4, 16)),
    "linear_gelu": (lambda: nn.Sequential(nn.Linear(24, 40), nn.GELU()), (9, 24)),
    "gpt2_block": (lambda: GPT2Block().eval(), (2, 16, 32)),
    "gpt2_block_inline_mask": (lambda: GPT2BlockInlineMask().eval(), (2, 16, 32)),
    "cnn": (lambda: _randomize_bn(CNN()).eval(), (2, 3, 16, 16)),
    "transformer_encoder_layer_batch_first": (
        lambda: nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64, batch_first=True).eval(),
        (2, 7, 32)),
    "transformer_encoder_layer": (
        lambda: nn.TransformerEncoderLayer(d_model=32, nhead=4, dim_feedforward=64).eval(), (7, 2, 32)),
}


def model_suite_kernels() -> list:
    """The kernels of every model in MODEL_SUITE, each compiled and run once (no grad)."""
    kernels = []
    for make_model, shape in MODEL_SUITE.values():
        codegen.reset()
        torch.manual_seed(0)
        # static: models sharing a forward (the two encoder layers) would make its sizes dynamic
        compiled = capture.compile(make_model(), backend=backend(), dynamic=False)
        with torch.no_grad():
            compiled(torch.randn(shape))
        assert codegen.COMPILED and not any(c.runs_eagerly for c in codegen.COMPILED)
        kernels += [kernel for graph in codegen.COMPILED for kernel in graph.kernels]
    return kernels


# Models trained one step (forward + backward graphs): their Triton kernels are checked
# for sm_90 too. name -> (model factory, input shape).
TRAINING_SUITE = {
    "mlp": (MLP, (4, 16)),
    "gpt2_block": (GPT2Block, (2, 16, 32)),
    "cnn": (CNN, (2, 3, 16, 16)),
}


def model_suite_training_kernels() -> list:
    """The forward and backward Triton kernels of every model in TRAINING_SUITE after one
    training step; asserts the backward graphs have kernels."""
    kernels = []
    for make_model, shape in TRAINING_SUITE.values():
        codegen.reset()
        torch.manual_seed(0)
        compiled = capture.compile(make_model().train(), backend="triton")
        compiled(torch.randn(shape)).sum().backward()
        roles = {g.role for g in codegen.COMPILED if not g.runs_eagerly}
        assert {"forward", "backward"} <= roles, roles
        assert [k for g in codegen.COMPILED if g.role == "backward" for k in g.kernels]
        kernels += [kernel for graph in codegen.COMPILED for kernel in graph.kernels]
    return kernels


@pytest.fixture(autouse=True)
def _fresh():
    capture.reset()
    codegen.reset()
    torch.manual_seed(0)
    yield
    capture.reset()


def _compiled_and_checked(model, make_args, atol=1e-5, rtol=1e-5):
    compiled = capture.compile(model, backend=backend())
    with torch.no_grad():
        check_fresh(compiled, model, make_args, calls=2, atol=atol, rtol=rtol)
    assert codegen.COMPILED and not any(c.runs_eagerly for c in codegen.COMPILED), \
        [c.stats.eager_reason for c in codegen.COMPILED]
    return codegen.stats()


def test_mlp_matches_eager_with_three_matmuls_and_two_kernels(emitter):
    make_model, shape = MODEL_SUITE["mlp"]
    stats = _compiled_and_checked(make_model(), lambda: (torch.randn(shape),))
    if emitter == "triton":       # 4 rows < config.MATMUL_MIN_DIM: library products
        assert stats.n_externs == 3 and all("addmm" in e[1] for e in stats.externs)
        assert stats.n_kernels == 2          # relu, tanh: each one kernel after its matmul
    else:                         # small products: C templates, bias + relu/tanh fused into the next one
        assert stats.n_externs == 0 and stats.n_kernels == 3


def test_linear_bias_gelu_module_is_one_extern_and_one_kernel(emitter):
    make_model, shape = MODEL_SUITE["linear_gelu"]
    stats = _compiled_and_checked(make_model(), lambda: (torch.randn(shape),))
    assert stats.n_externs == (1 if emitter == "triton" else 0) and stats.n_kernels <= 1


@pytest.mark.parametrize("name", ["gpt2_block", "gpt2_block_inline_mask"])
def test_gpt2_block_matches_eager(name, emitter):
    make_model, shape = MODEL_SUITE[name]
    model = make_model()        # alive: its compiled graphs live as long as it does
    stats = _compiled_and_checked(model, lambda: (torch.randn(shape),))
    if emitter == "triton":
        # qkv, attn proj, fc, mlp proj: matmul templates with the GELU and the residual adds
        # fused in; q @ k^T and att @ v (head size 8 < config.MATMUL_MIN_DIM) call the library
        assert stats.n_externs == 2 and all("bmm" in e[1] for e in stats.externs)
        assert sum(k.kind == "matmul" for c in codegen.COMPILED for k in c.kernels) == 4
    else:       # C templates for the small products read along k: q @ k^T (with the mask), attn proj
        assert sorted(e[1] for e in stats.externs) == ["aten.addmm.default"] * 3 + ["aten.bmm.default"]
    assert stats.n_kernels <= 10
    # ln_1, ln_2 (with the residual add) and the masked softmax are each one kernel.
    fused = [set(nodes) for _, nodes, _ in stats.kernels]
    assert sum(any(n.startswith("var_mean") for n in nodes) for nodes in fused) == 2
    assert sum({"amax", "exp", "sum_1"} <= nodes for nodes in fused) == 1
    assert stats.compiled_bytes < stats.eager_bytes


def test_cnn_eval_batchnorm_relu_fuse_after_each_convolution():
    make_model, shape = MODEL_SUITE["cnn"]
    stats = _compiled_and_checked(make_model(), lambda: (torch.randn(shape),), atol=1e-4)
    fused = [nodes for _, nodes, _ in stats.kernels if any(n.startswith("relu") for n in nodes)]
    products = [nodes for _, nodes, _ in stats.kernels if "addmm" in nodes]     # the C emitter's template
    copies = [nodes for _, nodes, _ in stats.kernels if nodes not in fused + products]
    assert len(fused) == 2               # bn1+relu+max pool, bn2+relu+global average pool
    # the rest: channels-last copies of the input and the conv weights (CPU convolutions)
    assert len(copies) == 3 and all(len(nodes) == 1 and nodes[0].startswith("l_") for nodes in copies)


@pytest.mark.parametrize("name", ["transformer_encoder_layer_batch_first", "transformer_encoder_layer"])
def test_transformer_encoder_layer_eval_matches_eager(name):
    make_model, shape = MODEL_SUITE[name]
    _compiled_and_checked(make_model(), lambda: (torch.randn(shape),), atol=1e-4)


def test_function_with_input_mutation_matches_eager():
    def f(x, y):
        x.mul_(2)
        return (x + y).softmax(-1)
    compiled = capture.compile(f, backend=backend())
    x, y = torch.randn(4, 9), torch.randn(9)
    x_ref = x.clone()
    expected = f(x_ref, y)
    got = compiled(x, y)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(x, x_ref)


def test_graphs_needing_autograd_compile_a_forward_and_a_backward_graph():
    model = MLP()
    reference = __import__("copy").deepcopy(model)
    compiled = capture.compile(model, backend=backend())
    x = torch.randn(4, 16)
    compiled(x).sum().backward()
    reference(x).sum().backward()
    for p, q in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(p.grad, q.grad)
    assert sorted(c.role for c in codegen.COMPILED) == ["backward", "forward"]
    assert not any(c.runs_eagerly for c in codegen.COMPILED)


@pytest.mark.emitters("triton")
def test_triton_backend_without_gpu_or_interpreter_warns_once_and_runs_eagerly(monkeypatch):
    import capture.backends
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    monkeypatch.setattr(capture.backends, "_warned", set())
    compiled = capture.compile(lambda x: x.exp() + 1, backend=backend())
    with pytest.warns(UserWarning, match="TRITON_INTERPRET"):
        out = compiled(torch.ones(3))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        capture.reset()
        compiled(torch.ones(3))
    torch.testing.assert_close(out, torch.ones(3).exp() + 1)
    assert codegen.COMPILED == []


def test_per_graph_report_counts_kernels_externs_and_bytes():
    compiled = capture.compile(lambda x, w: F.layer_norm(F.gelu(x @ w), (32,)), backend=backend())
    with torch.no_grad():
        compiled(torch.randn(8, 16), torch.randn(16, 32))
    (graph,) = codegen.COMPILED
    text = str(graph.stats)
    assert "1 kernel(s), 1 extern call(s)" in text
    assert "bytes moved: compiled" in text and "eager" in text and "floor" in text
    # gelu + layer norm in one kernel: the matmul result is read once, the output written once.
    assert graph.stats.kernel_bytes == 8 * 32 * 4 * 2
    assert graph.stats.eager_bytes > graph.stats.compiled_bytes >= graph.stats.floor_bytes


def test_batchnorm_training_updates_running_stats_like_eager():
    model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU()).train()
    reference = __import__("copy").deepcopy(model)
    compiled = capture.compile(model, backend=backend())
    with torch.no_grad():
        for _ in range(2):
            x = torch.randn(6, 8)
            torch.testing.assert_close(compiled(x), reference(x), rtol=1e-5, atol=1e-5)
    for name, buffer in reference.named_buffers():
        torch.testing.assert_close(dict(model.named_buffers())[name], buffer, rtol=1e-5, atol=1e-6)
    assert not any(c.runs_eagerly for c in codegen.COMPILED)

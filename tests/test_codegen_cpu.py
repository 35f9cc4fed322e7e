"""What only the C emitter has: the shared object per graph, its disk cache, the compiler
and its failures, backend selection by device, and the C code's own shape. (Every op,
fusion and model test also runs through the C emitter: see conftest's ``emitter``.)"""
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch.fx.experimental.proxy_tensor import make_fx

import capture
import codegen
import helpers_codegen
from codegen._C import Kernel
from codegen.lower.layouts import library_layouts
from codegen.runtime import cpp_build
from codegen.runtime.compiled_graph import InternalErrorWarning
from helpers_codegen import assert_close, check, graph_of

pytestmark = pytest.mark.usefixtures("cpp_only")


def _two_kernels(x):
    return x.softmax(-1), (x * 2).sum(0)


def test_one_shared_object_per_graph_cached_on_disk_and_reused_by_a_fresh_process(tmp_path, monkeypatch):
    monkeypatch.setenv("CAPTURE_CACHE_DIR", str(tmp_path))
    compiled = check(_two_kernels, torch.randn(6, 9))
    assert compiled.stats.n_kernels == 2
    libraries = list(tmp_path.glob("cpp_kernels/*/g*.so"))
    assert len(libraries) == 1 and libraries[0].with_suffix(".c").exists()
    assert all(k.source in libraries[0].with_suffix(".c").read_text() for k in compiled.kernels)

    cpp_build.clear_loaded()                  # what a second process sees: only the disk

    def no_compiler(*args):
        raise AssertionError("compiled again although the library is cached")
    monkeypatch.setattr(cpp_build, "_compile", no_compiler)
    check(_two_kernels, torch.randn(6, 9))


def test_kernels_are_plain_c_functions_with_vectorized_inner_loops():
    compiled = check(lambda x, b: F.gelu(x + b), torch.randn(64, 512), torch.randn(512))
    source = compiled.kernels[0].source
    assert "int64_t cpp_fused_add_gelu(const float* restrict arg0_ptr, const float* restrict arg1_ptr, " \
           "float* restrict gelu_ptr)" in source
    assert "#pragma omp simd\n" in source and "erff(" in source
    assert "const float arg1_c0 = arg1_ptr[x1_c0];" in source    # the bias: indexed by the column only (block form)
    assert "cpp_fused_add_gelu(arg0.data_ptr(), arg1.data_ptr(), gelu.data_ptr())" in compiled.wrapper_source


def test_large_kernels_run_in_parallel_small_ones_do_not():
    big = check(lambda x: x.exp(), torch.randn(512, 512)).kernels[0].source
    small = check(lambda x: x.exp(), torch.randn(16, 16)).kernels[0].source
    assert "#pragma omp parallel for" in big and "parallel" not in small


@pytest.mark.parametrize("widths", [(5, 3, 9), (16, 1)])
def test_a_loop_over_a_cat_runs_once_per_input_without_the_others_loads(widths):
    parts = [torch.randn(4, w) for w in widths]
    source = check(lambda *xs: torch.cat([x * (i + 1) for i, x in enumerate(xs)], -1).sigmoid(),
                   *parts).kernels[0].source
    seams = [0, *torch.tensor(widths).cumsum(0).tolist()]
    assert [f"for (int64_t x1 = {lo}; x1 < {hi}; x1++)" in source for lo, hi in zip(seams, seams[1:])] == \
        [True] * len(widths)
    check(lambda x, y: torch.cat([x, y], 0).exp(), torch.randn(2, 3), torch.randn(4, 3))     # not along the loop


def test_reductions_accumulate_in_vector_lanes_and_propagate_nan():
    x = torch.randn(5, 300)
    x[2, 7] = float("nan")
    compiled = check(lambda t: (t.amax(-1), t.sum(-1)), x, rtol=1e-5, atol=1e-5)
    source = compiled.kernels[0].source
    assert "reduction(max:amax) reduction(|:amax_nan)" in source and "reduction(+:sum_1)" in source


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int8])
def test_integer_division_by_zero_raises_like_eager(dtype):
    def fn(a, b):
        return a // b, torch.remainder(a, b)
    a = torch.tensor([7, -7, 5], dtype=dtype)
    compiled = helpers_codegen.compile_fn(fn, a, torch.tensor([2, 3, -4], dtype=dtype))
    assert_close(compiled(a, torch.tensor([2, 3, -4], dtype=dtype)), fn(a, torch.tensor([2, 3, -4], dtype=dtype)))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        fn(a, torch.tensor([2, 0, 1], dtype=dtype))
    with pytest.raises(RuntimeError, match="ZeroDivisionError"):
        compiled(a, torch.tensor([2, 0, 1], dtype=dtype))


def test_bfloat16_and_float16_round_like_eager():
    for dtype in (torch.bfloat16, torch.float16):
        x = torch.randn(33, 65).to(dtype)
        check(lambda t: (t * 1.7 + 0.3).exp().to(dtype), x, rtol=1e-2, atol=1e-2)
        check(lambda t: t.float().softmax(-1).to(dtype), x, rtol=1e-2, atol=1e-3)


def test_compile_error_runs_the_graph_as_captured_and_warns(monkeypatch):
    def broken(source, path, tools):
        raise cpp_build.CompileError("gcc: error: simulated")
    monkeypatch.setattr(cpp_build, "_compile", broken)
    monkeypatch.setattr(cpp_build, "_loaded", {})
    monkeypatch.setenv("CAPTURE_CACHE_DIR", "/nonexistent-capture-cache")
    x = torch.randn(4, 5)
    with pytest.warns(InternalErrorWarning, match="simulated"):
        compiled = codegen.compile_graph(graph_of(lambda t: t.exp() + 1, 1), [x], emitter="cpp")
    assert compiled.runs_eagerly and "simulated" in compiled.stats.eager_reason
    assert_close(compiled(x), x.exp() + 1)


def test_default_backend_compiles_cpu_graphs_to_c_kernels():
    codegen.reset()
    fn = capture.compile(lambda x: torch.relu(x) * 2)
    x = torch.randn(8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert_close(fn(x), torch.relu(x) * 2)
    assert [k.name for g in codegen.COMPILED for k in g.kernels] == ["cpp_fused_relu_mul"]


def test_without_a_compiler_graphs_run_as_captured_with_one_warning(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    monkeypatch.setattr(cpp_build, "_loaded", {})
    monkeypatch.setattr(cpp_build, "_warned", set())
    cpp_build.forget_toolchain()
    try:
        x = torch.randn(4, 5)
        with pytest.warns(UserWarning, match="no C compiler found") as record:
            compiled = codegen.compile_graph(graph_of(lambda t: t.exp() + 1, 1), [x], emitter="cpp")
            codegen.compile_graph(graph_of(lambda t: t.exp() * 2, 1), [x], emitter="cpp")
        assert not any(issubclass(w.category, InternalErrorWarning) for w in record)
        assert sum("no C compiler" in str(w.message) for w in record) == 1
        assert compiled.runs_eagerly and "no C compiler" in compiled.stats.eager_reason
        assert_close(compiled(x), x.exp() + 1)
    finally:
        monkeypatch.delenv("CC")
        cpp_build.forget_toolchain()


def test_consecutive_kernels_are_one_c_call_with_their_temporaries_allocated_in_c():
    """softmax, then a gather from it: one C call; the softmax buffer never becomes a
    tensor. An index out of range in the second kernel raises naming that kernel."""
    def fn(x, i):
        return F.embedding(i, x.softmax(-1)) * 2, x.sum()
    x, i = torch.randn(6, 9), torch.tensor([[0, 5], [2, 3]])
    compiled = check(fn, x, i)
    calls = [line for line in compiled.wrapper_source.splitlines() if "data_ptr()" in line]
    assert len(calls) == 1 and "; in C: " in compiled.wrapper_source, compiled.wrapper_source
    allocated = [line.split(" = ")[0].strip() for line in compiled.wrapper_source.splitlines()
                 if "empty_like(" in line or "empty_strided(" in line]
    internal = compiled.wrapper_source.split("; in C: ")[1].splitlines()[0].split(", ")
    assert internal and not set(internal) & set(allocated)
    gather = [k.name for k in compiled.kernels if k.index_checks]
    assert len(gather) == 1 and gather[0] != compiled.kernels[0].name         # not the run's first kernel
    with pytest.raises(IndexError, match=f"index out of range in embedding .*{gather[0]}"):
        compiled(x, torch.tensor([[0, 6]]))
    assert_close(compiled(x, i), fn(x, i))              # and the next call is fine


def test_convolutions_run_channels_last_in_inference_graphs_only():
    """Training graphs keep eager's NCHW for convolutions: their saved activations and the
    convolution backward are NCHW, and channels-last made the kernels write both layouts
    (config.CHANNELS_LAST_CONV_IN_TRAINING)."""
    def conv(x, w):
        return torch.ops.aten.convolution(x, w, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    gm = make_fx(conv)(torch.randn(2, 4, 9, 9), torch.randn(6, 4, 3, 3))
    node = next(n for n in gm.graph.nodes if n.target is torch.ops.aten.convolution.default)
    cpu = torch.device("cpu")
    assert library_layouts(node, cpu, "inference")[1] == (36, 1, 12, 4)
    assert library_layouts(node, cpu, None)[1] == (36, 1, 12, 4)
    assert library_layouts(node, cpu, "forward") == {} == library_layouts(node, cpu, "backward")


def test_outputs_are_allocated_by_the_cheapest_call_with_their_exact_layout():
    """``torch.empty_like(input)`` only where it gives the buffer's exact layout (same dtype,
    sizes and dense strides, no size-1 dimension), else ``input.new_empty_strided`` from an
    input of the same dtype, else ``torch.empty_strided``; results keep eager's strides."""
    x, t = torch.randn(5, 7), torch.randn(7, 5).t()
    for fn, args, call in [(lambda a: a.exp() * 2, (x,), "torch.empty_like(arg0)"),           # same layout
                           (lambda a: a.exp() * 2, (t,), "torch.empty_like(arg0)"),           # transposed, dense
                           (lambda a, b: a + b, (x, torch.randn(7)), "torch.empty_like(arg0)"),
                           (lambda a: a.exp() * 2, (torch.randn(5, 1),), "arg0.new_empty_strided((5, 1), (1, 1))"),
                           (lambda a: a[:, :4] * 2, (x,), "arg0.new_empty_strided((5, 4), (4, 1))"),
                           (lambda a: (a * 2).double(), (x,),
                            "torch.empty_strided((5, 7), (7, 1), dtype=torch.float64")]:
        compiled = check(fn, *args)
        allocations = [line.split(" = ", 1)[1] for line in compiled.wrapper_source.splitlines() if "empty" in line]
        assert len(allocations) == 1 and allocations[0].startswith(call), compiled.wrapper_source
        assert compiled(*args).stride() == fn(*args).stride()


def test_kernels_are_called_through_their_packed_entry_with_exactly_their_int_arguments():
    compiled = check(lambda a: a.exp() * 2, torch.randn(4, 3))
    (kernel,) = [v for v in compiled.wrapper_namespace().values() if isinstance(v, Kernel)]
    assert kernel.n_args == 2 and kernel.name == compiled.kernels[0].name
    x, out = torch.randn(4, 3), torch.empty(4, 3)
    assert kernel(x.data_ptr(), out.data_ptr()) == 0
    assert_close(out, x.exp() * 2)
    with pytest.raises(TypeError, match="takes 2 arguments, got 1"):
        kernel(x.data_ptr())
    with pytest.raises(TypeError, match="must be an int"):
        kernel(x.data_ptr(), 1.5)

"""Launch configuration: autotuning on a GPU (a fixed config under the interpreter),
and sizes passed as constexprs so Triton's alignment analysis sees their factors.
No GPU is needed: the config lists and the generated wrapper are checked as data/text,
and the autotuned wrapper runs in the interpreter with a single config."""
import re

import pytest
import torch

import codegen
from codegen import config
from helpers_codegen import assert_close, graph_of

torch.manual_seed(0)


def _per_program(c):
    return c.get("BLOCK_SIZE", 1) * c.get("ROWS", 1) * c.get("COLS", 1)


@pytest.mark.parametrize("kind, sizes", [("pointwise", (1031,)), ("pointwise", (1 << 22,)), ("rows", (6, 50)),
                                         ("rows", (4, 3000)), ("rows", (4096, 768)), ("rows", (1, 100000))])
def test_autotune_configs_start_with_the_heuristic_and_never_grow_the_block(kind, sizes):
    configs = config.autotune_configs(kind, *sizes)
    first = config.pointwise_config(*sizes) if kind == "pointwise" else config.rows_config(*sizes)
    assert configs[0] == {k: v for k, v in first.items() if k != "persistent"}
    assert 2 <= len(configs) <= config.AUTOTUNE_MAX_CONFIGS
    assert len({tuple(sorted(c.items())) for c in configs}) == len(configs)
    assert all(_per_program(c) <= _per_program(configs[0]) for c in configs)
    if kind == "rows" and first["persistent"]:
        assert all(c["COLS"] == first["COLS"] for c in configs)      # a persistent row stays whole


def test_tiny_tensors_get_a_single_config():
    assert config.autotune_configs("pointwise", 10) == [{"BLOCK_SIZE": 16, "num_warps": 1}]


def test_autotune_only_on_cuda_outside_the_interpreter(monkeypatch):
    assert not config.use_autotune(torch.device("cpu"))
    assert not config.use_autotune(torch.device("cuda"))            # conftest sets TRITON_INTERPRET=1
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    assert config.use_autotune(torch.device("cuda")) and not config.use_autotune(None)


def _softmax_and_scale(x, y):
    return x.softmax(-1), y * 2 + 1


def _inputs():
    return [torch.randn(6, 50), torch.randn(300)]


def test_interpreter_wrapper_launches_one_fixed_config():
    compiled = codegen.compile_graph(graph_of(_softmax_and_scale, 2), _inputs())
    assert "autotuned" not in compiled.wrapper_source
    assert re.search(r"\[\(\d+,\)\]\(.*ROWS=8, COLS=64, num_warps=2, enable_fp_fusion=False\)", compiled.wrapper_source)


def test_gpu_wrapper_autotunes_with_a_grid_from_the_chosen_block():
    compiled = codegen.compile_graph(graph_of(_softmax_and_scale, 2), _inputs(), autotune=True)
    source = compiled.wrapper_source
    assert "# fused_amax_sub_exp_sum_div: autotuned over ROWS/COLS/num_warps (8, 64, 2) (4, 64, 1) (8, 64, 4)" \
        in source, source
    assert 'fused_amax_sub_exp_sum_div[lambda meta: (_cdiv(6, meta[\'ROWS\']),)](arg0, div, 6, 50, enable_fp_fusion=False)' in source
    assert "lambda meta: (_cdiv(300, meta['BLOCK_SIZE']),)" in source
    assert "num_warps=" not in source.replace("/num_warps", "")       # chosen by the autotuner


def test_autotuned_wrapper_runs_in_the_interpreter_with_one_config(monkeypatch):
    monkeypatch.setattr(config, "AUTOTUNE_MAX_CONFIGS", 1)       # more would need a GPU to time them
    inputs = _inputs()
    compiled = codegen.compile_graph(graph_of(_softmax_and_scale, 2), inputs, autotune=True)
    assert "autotuned over" in compiled.wrapper_source
    assert_close(compiled(*inputs), _softmax_and_scale(*inputs))
    assert not compiled.runs_eagerly


def test_sizes_are_constexprs_so_masks_carry_their_factors():
    compiled = codegen.compile_graph(graph_of(lambda x: x.softmax(-1), 1), [torch.randn(4, 3000)])
    source = compiled.kernels[0].source
    assert "n_rows: tl.constexpr, n_cols: tl.constexpr" in source
    assert compiled.kernels[0].signature()["n_cols"] == "constexpr"
    assert compiled.kernels[0].compile_constants()["n_cols"] == 3000

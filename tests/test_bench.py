"""The benchmark harness (`python -m bench`): runs, writes JSON/CSV, checks correctness,
and reports what cannot run without stopping the rest."""
import csv
import dataclasses
import json

import pytest
import torch

from bench import harness, models, table
from bench.__main__ import main as bench_main

ROW_FIELDS = {"model", "mode", "backend", "status", "reason", "correct", "max_err", "first_call_s", "eager_ms",
              "eager_spread_ms", "ms", "spread_ms", "speedup", "calls", "rounds", "graphs", "breaks",
              "break_reasons", "recompiles", "guards", "kernels", "bytes", "eager_bytes", "fw_kernels", "bw_kernels",
              "fw_bytes", "bw_bytes", "saved_bytes", "eager_saved_bytes", "notes"}


def test_quick_mlp_json_and_csv(tmp_path, capsys):
    out_json, out_csv = tmp_path / "bench.json", tmp_path / "bench.csv"
    # inductor is left out: on a fresh machine its first compile alone takes ~30 s
    bench_main(["--quick", "--models", "mlp", "--backends", "capture-eager,tc-eager", "--repeats", "3",
                "--no-progress", "--json", str(out_json), "--csv", str(out_csv)])
    printed = capsys.readouterr().out
    assert "speedup" in printed and "capture-eager" in printed and "tc-eager" in printed

    data = json.loads(out_json.read_text())
    meta = data["meta"]
    assert meta["quick"] is True and meta["modes"] == ["eval", "train"]
    assert meta["backends"] == ["capture-eager", "tc-eager"]
    assert meta["torch"] == torch.__version__
    rows = data["rows"]
    assert [(r["model"], r["mode"], r["backend"]) for r in rows] == [
        ("mlp", "eval", "capture-eager"), ("mlp", "eval", "tc-eager"),
        ("mlp", "train", "capture-eager"), ("mlp", "train", "tc-eager")]
    for r in rows:
        assert set(r) == ROW_FIELDS
        assert r["status"] == "ok", r
        assert r["correct"] is True and r["max_err"] <= 1e-5
        assert r["first_call_s"] > 0 and r["ms"] > 0 and r["eager_ms"] > 0 and r["spread_ms"] >= 0
        assert r["speedup"] > 0
        assert r["rounds"] == 3 and r["calls"] >= 1
        assert r["graphs"] == 1 and r["breaks"] == 0 and r["recompiles"] == 0
        assert r["guards"] > 0
        assert r["kernels"] is None and r["bytes"] is None  # eager backends generate no kernels
        if r["mode"] == "train":                            # replaying the captured graph saves what eager saves
            assert r["saved_bytes"] == r["eager_saved_bytes"] > 0

    with open(out_csv) as f:
        csv_rows = list(csv.DictReader(f))
    assert len(csv_rows) == 4 and set(csv_rows[0]) == ROW_FIELDS


def test_unavailable_model_and_backend_reported_rest_runs(monkeypatch):
    real_suite = models.suite

    def suite():
        mlp = next(m for m in real_suite() if m.name == "mlp")
        missing = models.ModelSpec("needs_missing", "needs a package that is not installed", mlp.make, mlp.inputs,
                                   requires="no_such_package_for_bench")
        return [missing, mlp]
    monkeypatch.setattr(models, "suite", suite)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(harness, "prepare_triton", lambda settings, backends: None)  # keep the env as it is
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    result = harness.run(harness.Settings(quick=True, models="needs_missing,mlp", backends="capture-eager,capture-triton",
                                          modes="eval", repeats=3, progress=False))
    by = {(r["model"], r["backend"]): r for r in result["rows"]}
    skipped = by[("needs_missing", "capture-eager")]
    assert skipped["status"] == "skipped" and "no_such_package_for_bench" in skipped["reason"]
    assert by[("mlp", "capture-eager")]["status"] == "ok" and by[("mlp", "capture-eager")]["correct"]
    triton = by[("mlp", "capture-triton")]  # no CUDA, no interpreter: says why, the rest still ran
    assert triton["status"] == "cannot run" and "TRITON_INTERPRET" in triton["reason"]
    text = table.format_table(result)
    assert "needs_missing" in text and "cannot run" in text and "mlp" in text


def test_codegen_stats_hook(monkeypatch):
    import codegen
    monkeypatch.setattr(codegen, "stats_for", lambda compiled: {"kernels": 3, "bytes": 4096}, raising=False)
    got = harness.codegen_stats(object())
    assert (got["kernels"], got["bytes"], got["eager_bytes"]) == (3, 4096, None)
    monkeypatch.setattr(codegen, "stats_for", lambda compiled: None, raising=False)
    assert harness.codegen_stats(object())["kernels"] is None

    def broken(compiled):
        raise RuntimeError("boom")
    monkeypatch.setattr(codegen, "stats_for", broken, raising=False)
    got = harness.codegen_stats(object())
    assert got["kernels"] is None and "boom" in got["note"]


def test_modes_dispatch_to_older_scripts(capsys):
    bench_main(["guards", "--calls", "5"])
    assert "capture +µs" in capsys.readouterr().out


def _softmax_case_with_8_rows(real_cases):
    """The bench's cases, its softmax over 128 rows of 1000 at 8 rows: the same persistent
    row kernel; the interpreter runs it row block by row block (128 rows: ~15 s of CI)."""
    def cases():
        return [dataclasses.replace(c, name="softmax 8x1000", inputs=lambda: (torch.randn(8, 1000),))
                if c.name == "softmax 128x1000" else c for c in real_cases()]
    return cases


def test_codegen_mode_reports_kernels_and_bytes_against_the_floor(capsys, monkeypatch):
    from bench import codegen as bench_codegen
    monkeypatch.setattr(bench_codegen, "_cases", _softmax_case_with_8_rows(bench_codegen._cases))
    rows = bench_codegen.measure("softmax 8x,linear+GELU")
    by = {r["case"]: r for r in rows}
    softmax, linear = by["softmax 8x1000"], by["linear+GELU 64x256->512"]
    assert softmax["kernels"] == 1 and softmax["externs"] == 0 and softmax["correct"]
    assert softmax["floor_bytes"] == 2 * 8 * 1000 * 4            # read x once, write the result once
    assert softmax["within_limit"] and softmax["compiled_over_floor"] <= bench_codegen.FUSED_BLOCK_LIMIT
    assert linear["externs"] == 0 and linear["kernels"] == 1 and linear["within_limit"]   # a matmul template
    bench_codegen.print_table(rows)
    out = capsys.readouterr().out
    assert "softmax 8x1000" in out and "floor KiB" in out


def _mlp_capture_cpu_row(tmp_path, mode: str) -> dict:
    """The quick bench's one capture-cpu row for the MLP in ``mode``, checked ok and correct."""
    out_json = tmp_path / "bench.json"
    bench_main(["--quick", "--models", "mlp", "--backends", "capture-cpu", "--modes", mode, "--repeats", "2",
                "--no-progress", "--json", str(out_json)])
    row, = json.loads(out_json.read_text())["rows"]
    assert (row["backend"], row["status"], row["correct"]) == ("capture-cpu", "ok", True)
    return row


def test_capture_cpu_row_reports_c_kernels_and_bytes(tmp_path, capsys):
    row = _mlp_capture_cpu_row(tmp_path, "eval")
    assert row["kernels"] == 3 and row["bytes"] > 0          # three C matmul templates, the ReLUs fused in
    assert "capture-cpu" in capsys.readouterr().out


def test_train_mode_reports_forward_and_backward_kernels_and_saved_bytes(tmp_path, capsys):
    row = _mlp_capture_cpu_row(tmp_path, "train")
    assert row["fw_kernels"] >= 2 and row["bw_kernels"] >= 2       # ReLUs (and small GEMMs) forward, masks backward
    assert row["fw_bytes"] > 0 and row["bw_bytes"] > 0
    assert row["kernels"] == row["fw_kernels"] + row["bw_kernels"]
    assert 0 < row["saved_bytes"] <= row["eager_saved_bytes"]
    printed = capsys.readouterr().out
    assert "bw kern" in printed and "eager saved" in printed


def test_codegen_mode_times_c_kernels_against_a_streaming_copy(capsys):
    from bench import codegen as bench_codegen
    rows = [{"case": "softmax 128x1000"}, {"case": "linear+GELU 64x256->512"}]   # the C timings alone
    bandwidth, flop_rate = bench_codegen.copy_bandwidth(repeats=2), bench_codegen.gemm_rate(repeats=1)
    bench_codegen.measure_cpu(rows, "softmax 128x,linear+GELU", bandwidth, repeats=2, flop_rate=flop_rate)
    row, gemm = rows
    assert row["cpu_correct"] and row["cpu_us"] > 0 and row["cpu_bytes"] == 2 * 128 * 1000 * 4
    assert row["cpu_fraction"] == pytest.approx(row["cpu_gbs"] * 1e9 / bandwidth, rel=1e-12)  # rounded apart
    assert row["cpu_roof"] == pytest.approx(row["cpu_fraction"], rel=1e-12)     # no product: the copy's bar
    assert row["cpu_within"] == (row["cpu_roof"] >= bench_codegen.BANDWIDTH_TARGET)
    # The kernels alone: inside the call (timed apart, in other rounds), their bytes over that time.
    assert row["kernel_us"] > 0 and row["inductor_us"] is None
    assert row["kernel_fraction"] == pytest.approx(row["cpu_bytes"] / (row["kernel_us"] * 1e-6) / bandwidth)
    assert 0 < gemm["kernel_us"] and gemm["kernel_fraction"] > 0      # the GELU kernel; the GEMM is a library call
    roofline = max(gemm["flops"] / flop_rate, gemm["cpu_bytes"] / bandwidth)   # flops: 2 * 64 * 256 * 512
    assert gemm["flops"] == 2 * 64 * 256 * 512
    assert gemm["cpu_roof"] == pytest.approx(roofline / (gemm["cpu_us"] * 1e-6), rel=1e-9)
    bench_codegen.print_cpu_table(rows, bandwidth, 1, flop_rate=flop_rate)
    printed = capsys.readouterr().out
    assert "streaming copy" in printed and "GFLOP/s" in printed and "%roof" in printed and "k%copy" in printed


def test_codegen_mode_kernel_timer_times_only_the_generated_c_functions():
    """With a clock that ticks once per reading, every timed C call lasts exactly one tick:
    a round's time is the number of C functions per call (a graph of one fused kernel: 1),
    and the calls outside them (guards, wrapper, allocation) are not counted."""
    import itertools

    import capture
    import codegen
    from bench import codegen as bench_codegen
    capture.reset()
    codegen.reset()
    compiled = capture.compile(lambda x: torch.softmax(x * 2, dim=-1), backend="cpu")
    x = torch.randn(8, 100)
    expected = compiled(x)
    timer = bench_codegen.KernelTimer(list(codegen.COMPILED), compiled, clock=itertools.count().__next__)
    assert len(timer.functions) == 1
    for _ in range(bench_codegen.WARMUP + 2 * bench_codegen.CALLS):
        assert torch.equal(timer(x), expected)
    assert timer.rounds(2) == [1.0, 1.0]
    namespace, name, function = timer.functions[0]
    assert namespace[name] is function                # restored after each call


def test_codegen_mode_measures_vector_math_and_each_cases_ceiling(capsys):
    from bench import codegen as bench_codegen
    rates = bench_codegen.math_throughput(["capture_expf_nonpositive", "capture_tanhf"], repeats=1)
    assert set(rates) == {"capture_expf_nonpositive", "capture_tanhf"}
    assert all(0 < seconds < 1e-7 for seconds in rates.values())          # vectorized: well under 100 ns
    with torch.random.fork_rng():            # the cases draw weights from the global generator: leave it as found
        cases = [c for c in bench_codegen._cases() if c.math]
        for case in cases:                   # the math runs once per output element
            out = case.make()(*case.inputs())
            assert case.elements == out.numel(), case.name
    softmax = next(c for c in cases if c.name == "softmax 128x1000")
    rows = [{"case": softmax.name, "cpu_bytes": 1024000, "kernel_fraction": 0.5}]
    bench_codegen.print_math_table(rows, [softmax], rates, bandwidth=20e9)
    ceiling = 1024000 / 20e9 / (rates["capture_expf_nonpositive"] * 128000)
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("softmax 128x1000"))
    assert line.split()[-2:] == [f"{ceiling:.0%}", "50%"]


def test_dynamic_mode_counts_capture_kernels_in_a_users_process(monkeypatch):
    """``bench dynamic --kernels`` counts the distinct Triton kernels capture generated;
    generated kernels are recorded only on request (off in a user's process, where it
    would keep every kernel alive), so the bench turns it on: it printed 0 kernels."""
    from bench import dynamic
    from codegen import config
    monkeypatch.setattr(config, "RECORD_GENERATED_KERNELS", False)    # as outside the tests

    def model(x):
        return (x * 2).softmax(-1)

    row = dynamic.run_capture(model, lambda b, s: (torch.randn(b, s),), [(2, 8), (3, 8)], "triton")
    assert row["kernels"] >= 1 and row["graphs"] == 2

"""capture.report(): entries, guards, hit counts and every recompile with its reason."""
import importlib
import subprocess
import sys
import textwrap

import torch

import capture

SCALE = 2.0


def scaled(x):
    return x * SCALE + 1


def test_report_lists_batch_dtype_and_global_recompiles_with_values_and_lines():
    global SCALE
    f = capture.compile(scaled, backend="eager")
    try:
        for x in (torch.randn(4), torch.randn(4), torch.randn(8), torch.randn(8, dtype=torch.float64)):
            torch.testing.assert_close(f(x), scaled(x))
        SCALE = 3.0
        x = torch.randn(8, dtype=torch.float64)
        torch.testing.assert_close(f(x), scaled(x))
    finally:
        SCALE = 2.0
    text = str(capture.report(f))
    assert "4 cache entries, 3 recompile(s)" in text
    assert "L['x'].shape[0]: expected 4, got 8" in text
    assert "L['x'].dtype: expected torch.float32, got torch.float64" in text
    assert "G['SCALE']: expected 2.0, got 3.0" in text
    line_of_use = scaled.__code__.co_firstlineno + 1
    assert f"{__file__}:{line_of_use}" in text  # the line that read SCALE
    assert "hits: 2" in text  # the first entry served two calls


def test_report_html_is_a_self_contained_page(tmp_path):
    f = capture.compile(scaled, backend="eager")
    f(torch.randn(3))
    f(torch.randn(5))
    page = capture.report(f).to_html(str(tmp_path / "report.html"))
    saved = (tmp_path / "report.html").read_text()
    assert saved == page and saved.startswith("<!doctype html>")
    assert "shape[0]: expected 3, got 5" in saved and "<script" not in saved


def test_report_without_argument_covers_every_compiled_frame():
    def a(x):
        return x + 1

    def b(x):
        return x * 2
    capture.compile(a, backend="eager")(torch.randn(2))
    capture.compile(b, backend="eager")(torch.randn(2))
    names = {fr.name for fr in capture.report().frames}
    assert {"a", "b"} <= names
    assert {fr.name for fr in capture.report(a).frames} == {"a"}


def test_report_names_the_eager_reason_of_a_frame_that_could_not_be_captured():
    def f(x):
        for i in range(2):
            print(i)
        return x
    capture.compile(f, backend="eager")(torch.randn(2))
    text = str(capture.report(f))
    assert "runs eagerly" in text and "print" in text


def test_python_m_capture_report_runs_a_script_and_prints_the_report(tmp_path):
    script = tmp_path / "prog.py"
    script.write_text(textwrap.dedent("""
        import torch, capture
        @capture.compile(backend="eager")
        def f(x):
            return x.relu()
        f(torch.randn(2)); f(torch.randn(3))
        print("script done")
    """))
    out = subprocess.run([sys.executable, "-m", "capture.report", str(script)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "script done" in out.stdout
    assert "== f (" in out.stdout and "shape[0]: expected 2, got 3" in out.stdout
    # runpy warns when the package imports the module it is asked to run
    assert "found in sys.modules" not in out.stderr and "RuntimeWarning" not in out.stderr, out.stderr


def test_capture_report_stays_the_function_after_the_command_line_module_is_imported():
    cli = importlib.import_module("capture.report.__main__")  # what `python -m capture.report` runs
    assert callable(cli.main) and callable(capture.report)
    assert isinstance(capture.report(), capture.Report)

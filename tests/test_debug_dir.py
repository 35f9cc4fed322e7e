"""CAPTURE_DEBUG_DIR: every compiled frame leaves readable dumps behind."""
import os

import torch

import capture
from capture import config


def test_debug_dir_gets_bytecode_graph_guards_and_replacement(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "debug_dir", str(tmp_path))

    def f(x):
        y = x.relu() * 2
        print("between")
        return y + 1

    x = torch.randn(3)
    torch.testing.assert_close(capture.compile(f, backend="eager")(x), f(x))
    folders = sorted(os.listdir(tmp_path))
    assert any(name.startswith("f_") for name in folders)
    assert any(name.startswith("__resume_f") for name in folders)
    first = tmp_path / next(n for n in folders if n.startswith("f_"))
    files = set(os.listdir(first))
    assert {"original_bytecode.txt", "rewritten_bytecode.txt", "guards.py", "replacement.py", "graph.txt"} <= files
    assert "relu" in (first / "graph.txt").read_text()
    assert "L['x']" in (first / "guards.py").read_text() or "def guard" in (first / "guards.py").read_text()
    assert "__capture_out" in (first / "replacement.py").read_text()


def test_debug_dir_puts_a_frames_kernels_in_its_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(config, "debug_dir", str(tmp_path))

    def g(x):
        return (x.sin() + 1) * 2

    x = torch.randn(8)
    torch.testing.assert_close(capture.compile(g, backend="triton")(x), g(x))
    (folder,) = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith("g_")]
    assert {"graph.txt", "guards.py", "replacement.py", "kernels.py"} <= set(os.listdir(folder))
    kernels = (folder / "kernels.py").read_text()
    assert "@triton.jit" in kernels and "# ---- wrapper" in kernels
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".py")]  # nothing outside the frame's folder


def test_generated_sources_show_in_tracebacks_and_nothing_is_added_to_user_globals():
    import linecache
    import traceback

    def h(x, fail):
        y = x * 2
        if fail:
            raise_it(y)  # a graph break: the rewritten frame calls the bridge
        return y

    compiled = capture.compile(h, backend="eager")
    before = set(globals())
    compiled(torch.ones(2), False)
    entries = capture._C.get_cache(h.__code__)
    filenames = {e[1].co_filename for e in entries}
    assert all(f.startswith("<capture: h from") for f in filenames)
    assert all(linecache.getline(f, 2) for f in filenames)  # the source is readable
    try:
        compiled(torch.ones(2), True)
    except ValueError:
        text = traceback.format_exc()
    assert "<capture: h from" in text and "__capture_out[0]" in text  # the rewritten frame's line is shown
    assert set(globals()) == before
    capture.reset()
    assert not any(linecache.cache.get(f) for f in filenames)


def raise_it(value):
    # .tolist() needs real data: a graph break (a raise alone is traced into the rewritten frame)
    raise ValueError(f"bad {value.tolist()}")


def test_debug_dir_kernels_include_the_backward_graph_after_backward(tmp_path, monkeypatch):
    """The compiled path compiles a backward graph at the first backward(): its kernels
    join the entry's kernels.py then."""
    monkeypatch.setattr(config, "debug_dir", str(tmp_path))

    def h(x, w):
        return (x @ w).tanh().sum(0)

    x, w = torch.randn(8, 4), torch.randn(4, 6, requires_grad=True)
    compiled = capture.compile(h, backend="cpu")
    out = compiled(x, w)
    (folder,) = [tmp_path / n for n in os.listdir(tmp_path) if n.startswith("h_")]
    assert "backward graph" not in (folder / "kernels.py").read_text()
    out.sum().backward()
    kernels = (folder / "kernels.py").read_text()
    assert "---- forward graph ----" in kernels and "---- backward graph ----" in kernels
    expected = w.grad.clone()
    w.grad = None
    h(x, w).sum().backward()
    torch.testing.assert_close(expected, w.grad)

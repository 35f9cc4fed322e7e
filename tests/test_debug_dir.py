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

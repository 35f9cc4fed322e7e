# TRITON_INTERPRET is read once, when triton is first imported: set it before anything
# (capture, codegen, torch's own optional imports) can import triton. Kernels then run
# on CPU tensors in Triton's interpreter; tests/test_codegen_sm90.py compiles them for
# an H100 ahead of time in a separate process (without the interpreter).
import os

os.environ["TRITON_INTERPRET"] = "1"

import pytest  # noqa: E402

import torch  # noqa: E402

import capture  # noqa: E402


@pytest.fixture(autouse=True)
def _capture_reset():
    """Every test starts and ends with empty capture caches."""
    capture.reset()
    yield
    capture.reset()


@pytest.fixture
def seeded():
    """torch's generator at seed 0: module weights and inputs are the same on every run."""
    torch.manual_seed(0)

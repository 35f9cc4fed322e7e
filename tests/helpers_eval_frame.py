"""What the frame-hook tests share: a clean callback around every test, a recording
callback (tests/test_eval_frame.py, tests/test_eval_frame_calls.py)."""
import pytest

import capture._C as C


@pytest.fixture(autouse=True)
def reset_hook():
    """Every test starts and ends with no callback on this thread."""
    C.set_callback(None)
    try:
        yield
    finally:
        C.set_callback(None)
        assert C.get_callback() is None


class Recorder:
    """A callback that records (function, args) and returns `result`."""

    def __init__(self, result=None, only=None):
        self.calls = []
        self.result = result
        self.only = only  # record only functions with these names

    def __call__(self, func, args):
        if self.only is None or func.__name__ in self.only:
            self.calls.append((func.__name__, args))
        r = self.result
        return r(func, args) if callable(r) else r

    def names(self):
        return [n for n, _ in self.calls]

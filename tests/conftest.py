import pytest

import capture


@pytest.fixture(autouse=True)
def _capture_reset():
    """Every test starts and ends with empty capture caches."""
    capture.reset()
    yield
    capture.reset()

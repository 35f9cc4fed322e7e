# TRITON_INTERPRET is read once, when triton is first imported: set it before anything
# (capture, codegen, torch's own optional imports) can import triton. Kernels then run
# on CPU tensors in Triton's interpreter; tests/test_codegen_sm90.py compiles them for
# an H100 ahead of time in a separate process (without the interpreter).
import logging
import os
import warnings

os.environ["TRITON_INTERPRET"] = "1"
# codegen.generated_kernels() records every kernel of the session (test_codegen_sm90).
os.environ["CAPTURE_RECORD_KERNELS"] = "1"

import pytest  # noqa: E402

import torch  # noqa: E402

import capture  # noqa: E402
import codegen  # noqa: E402
import fx_graph  # noqa: E402
from bench.torchvision_cpu import make_importable  # noqa: E402

# An internal error of capture fails the test that hit it (users get a warning and an
# eager frame instead): no bug may pass as a silent graph break.
capture.config.internal_errors = "raise"
# The test extra installs timm, which brings PyPI's torchvision (built for CUDA torch):
# give it the two operators it registers at import when its C library cannot load.
make_importable()
# torch's structured trace log (for tlparse) emits DEBUG records while fake tensors are
# made; pytest >= 9.2 also captures loggers that do not propagate and keeps each record
# until the test ends, which test_lifecycle_memory counts as objects we keep. We never
# read that log: off in tests.
logging.getLogger("torch.__trace").disabled = True

import helpers_codegen  # noqa: E402

EMITTERS = ("triton", "cpp")


def pytest_configure(config):
    config.addinivalue_line("markers", "emitters(*names): run a codegen test only with these emitters")


def pytest_generate_tests(metafunc):
    """A test using the ``emitter`` fixture runs once per emitter (Triton in the
    interpreter, C compiled here), unless marked ``@pytest.mark.emitters(...)``."""
    if "emitter" in metafunc.fixturenames:
        only = metafunc.definition.get_closest_marker("emitters")
        metafunc.parametrize("emitter", only.args if only else EMITTERS, indirect=True)


@pytest.fixture
def emitter(request):
    """The emitter ``helpers_codegen.check``/``compile_fn``/``backend()`` use in this test."""
    previous = helpers_codegen.EMITTER
    helpers_codegen.EMITTER = request.param
    yield request.param
    helpers_codegen.EMITTER = previous


@pytest.fixture
def cpp_only():
    """The C emitter only (test modules about it: ``pytest.mark.usefixtures("cpp_only")``)."""
    previous = helpers_codegen.EMITTER
    helpers_codegen.EMITTER = "cpp"
    yield
    helpers_codegen.EMITTER = previous


@pytest.fixture
def fresh_codegen():
    """No compiled graphs recorded yet (test modules that count kernels in
    ``codegen.COMPILED``: ``pytest.mark.usefixtures("fresh_codegen")``)."""
    codegen.reset()


@pytest.fixture(autouse=True)
def _capture_reset():
    """Every test starts and ends with empty capture caches."""
    capture.reset()
    yield
    capture.reset()


@pytest.fixture(autouse=True)
def _internal_errors_fail():
    """The compiled path's and the code generator's InternalErrorWarning fails the test
    (pyproject's filter), also in modules that ignore RuntimeWarning (numpy's
    divide-by-zero in masked-off interpreter lanes): a mark's filter wins over the ini's,
    and InternalErrorWarning is a RuntimeWarning, so those modules hid our bugs. Set
    here, inside pytest's per-test warning filters, it comes first."""
    warnings.filterwarnings("error", category=fx_graph.InternalErrorWarning)
    yield


@pytest.fixture
def seeded():
    """torch's generator at seed 0: module weights and inputs are the same on every run."""
    torch.manual_seed(0)

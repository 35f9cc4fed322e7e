"""Nothing compiled keeps the user's objects alive: a dropped module and its parameters
are collected (its cache entries go with it), a dropped function takes its records and
generated sources along, and capture.reset() leaves nothing behind. RSS per 1,000 is
measured by ``python -m bench lifecycle``; here, objects are counted."""
import collections
import gc
import linecache
import weakref

import pytest
import torch
from torch import nn

import capture
import codegen
from capture import _C
from capture.state import FRAMES, RESUME_CODES
from torch.fx import graph_module


class Block(nn.Module):
    def __init__(self, width=8):
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x):
        return self.fc2(self.fc1(x).relu()) + x


STEP_SOURCE = """
def step(x):
    y = x * 3.0 + 1.0
    print("", end="")  # a graph break: resume functions and bridges too
    return y.sin()
"""


def _collect() -> None:
    """Collect until nothing more goes (finalizers and weakref callbacks that run in one
    pass can leave more garbage for the next)."""
    while gc.collect():
        pass


def _objects() -> collections.Counter:
    _collect()
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


def _objects_before() -> collections.Counter:
    """``_objects()`` once its own first run made what it makes lazily."""
    _objects()
    return _objects()


def _capture_linecache() -> list:
    return [name for name in linecache.cache if name.startswith("<capture")]


def _compile_and_drop(functions: int, modules: int, backend="eager") -> list:
    x = torch.randn(4, 8)
    for _ in range(functions):
        namespace = {"torch": torch}
        exec(STEP_SOURCE, namespace)
        torch.testing.assert_close(capture.compile(namespace["step"], backend=backend)(x), (x * 3 + 1).sin())
    refs = []
    for _ in range(modules):
        block = Block()
        refs += [weakref.ref(block), weakref.ref(block.fc1.weight)]
        torch.testing.assert_close(capture.compile(block, backend=backend)(x), block(x))
        del block
    return refs


def test_dropped_modules_and_functions_are_collected_before_reset():
    _compile_and_drop(2, 2)  # warm-up: torch's lazily made objects
    capture.reset()
    fx_sources = len(graph_module._loader.eval_cache)
    refs = _compile_and_drop(20, 8)
    _collect()
    assert not [r for r in refs if r() is not None], "a dropped module or parameter is alive"
    # dead codes took their records along; the class's forward code lives, without entries
    assert [record.name for record in FRAMES.values() if record.entries] == []
    assert [record.name for record in FRAMES.values()] in ([], ["forward"])
    assert len(list(RESUME_CODES.items())) == 0
    assert _capture_linecache() == []
    assert len(graph_module._loader.eval_cache) == fx_sources


def test_compile_and_drop_keeps_no_objects_after_reset():
    _compile_and_drop(20, 10)  # warm-up: torch makes some objects once, lazily
    capture.reset()
    before = _objects_before()
    _compile_and_drop(40, 20)
    capture.reset()
    grown = {k: v for k, v in (_objects() - before).items() if v > 5}
    assert grown == {}, grown  # no kind of object grows with the number compiled


def test_compile_and_drop_with_the_default_backend_keeps_no_graphs():
    # warm-up: torch makes some objects once, lazily; the compiled path's AOT autograd
    # fills the ABC caches of torch's higher-order-operator classes (one weak reference
    # per class) on a second round only (measured: stable from then on, 4 rounds)
    for _ in range(2):
        _compile_and_drop(6, 4, backend="codegen")
    capture.reset()
    before = _objects_before()
    refs = _compile_and_drop(6, 4, backend="codegen")
    _collect()
    assert not [r for r in refs if r() is not None]
    assert len(codegen.COMPILED) == 0
    del refs  # our own weak references are objects too
    capture.reset()
    assert not [name for name in linecache.cache if name.startswith("<capture wrapper")]
    grown = {k: v for k, v in (_objects() - before).items() if v > 5}
    # Known and open (issue 10's report): through the compiled path (AOT autograd) torch
    # keeps (class, filename, line) tuples keyed by our frames' file names, about 6 per
    # 10 compiles here (measured over 5 rounds); everything of ours is gone.
    if grown.get("tuple", 0) <= 12:
        grown.pop("tuple", None)
    assert grown == {}, grown


def test_entry_of_a_dropped_module_is_dropped_and_the_report_says_why():
    block = Block()
    compiled = capture.compile(block, backend="eager")
    compiled(torch.randn(2, 8))
    code = type(block).forward.__code__
    assert len(_C.get_cache(code)) == 1
    del block, compiled
    _collect()
    assert _C.get_cache(code) == []
    assert FRAMES[code].drops == ["L['self'] (a Block) was collected"]
    second = Block()
    x = torch.randn(2, 8)
    torch.testing.assert_close(capture.compile(second, backend="eager")(x), second(x))
    assert len(FRAMES[code].recompiles) == 0  # the dead entry was not tried, nor counted


def test_new_object_at_a_dead_objects_address_is_not_mistaken_for_it():
    class Config:
        def __init__(self, scale):
            self.scale = scale

    namespace = {"torch": torch, "CFG": Config(2.0)}
    exec("def scaled(x):\n    return x * CFG.scale\n", namespace)
    f = capture.compile(namespace["scaled"], backend="eager")
    x = torch.ones(3)
    torch.testing.assert_close(f(x), x * 2)
    for scale in (3.0, 4.0, 5.0):
        old_id = id(namespace["CFG"])
        namespace["CFG"] = None  # the old object dies first: the new one may take its address
        namespace["CFG"] = Config(scale)
        reused = id(namespace["CFG"]) == old_id
        torch.testing.assert_close(f(x), x * scale, msg=f"address reused: {reused}")


def test_replaced_parameter_and_its_stale_entry_go_with_the_module():
    """An entry holds the parameters it binds into its graph (reading them through the
    module on every call would cost each call), so a replaced parameter lives as long as
    its module does, no longer."""
    block = Block()
    compiled = capture.compile(block, backend="eager")
    x = torch.randn(2, 8)
    compiled(x)
    old = weakref.ref(block.fc1.weight)
    block.fc1.weight = nn.Parameter(torch.randn(8, 8))
    torch.testing.assert_close(compiled(x), block(x))
    new = weakref.ref(block.fc1.weight)
    del block, compiled
    _collect()
    assert old() is None and new() is None


def test_closures_of_one_code_over_dropped_modules_leave_no_entries():
    def make(module):
        def run(x):
            return module(x) * 2
        return run
    code = make(None).__code__
    refs = []
    x = torch.randn(2, 8)
    for _ in range(12):  # more than the cache limit: dead entries do not count
        block = Block()
        refs.append(weakref.ref(block))
        torch.testing.assert_close(capture.compile(make(block), backend="eager")(x), block(x) * 2)
        del block
    _collect()
    assert all(r() is None for r in refs)
    assert _C.get_cache(code) == [] and not FRAMES[code].limit_hit


def test_many_calls_of_one_compiled_function_allocate_nothing_that_stays():
    f = capture.compile(lambda x: (x * 2).relu(), backend="eager")
    x = torch.randn(8)
    for _ in range(200):
        f(x)
    before = _objects_before()
    for _ in range(10_000):
        f(x)
    grown = {k: v for k, v in (_objects() - before).items() if v > 2}
    assert grown == {}, grown


@pytest.mark.parametrize("backend", ["eager", "codegen"])
def test_reset_drops_every_cache(backend):
    namespace = {"torch": torch}
    exec(STEP_SOURCE, namespace)
    f = capture.compile(namespace["step"], backend=backend)
    f(torch.randn(4, 8))
    assert FRAMES.items() and _capture_linecache()
    capture.reset()
    assert FRAMES.items() == [] and RESUME_CODES.items() == []
    assert _C.get_cache(namespace["step"].__code__) is None
    assert _capture_linecache() == [] and len(codegen.COMPILED) == 0

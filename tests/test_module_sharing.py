"""Instances of one nn.Module class share cache entries (capture.sharing): the
compile-each-block pattern builds a graph or two, not one per block, and every block's
result (and gradient) is its own; a single compiled instance keeps the identity path."""
import copy
import warnings

import pytest
import torch
from torch import nn

import capture
from capture import _C
from capture.state import FRAMES


class Block(nn.Module):
    def __init__(self, width=16, graph_break=False):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, 2 * width)
        self.fc2 = nn.Linear(2 * width, width)
        self.graph_break = graph_break
        self.calls = 0

    def forward(self, x):
        h = self.fc1(self.norm(x)).relu()
        if self.graph_break:
            print("", end="")
        return x + self.fc2(h)


class Counting:
    """A backend that counts the graphs it is given and runs ``inner`` on them."""

    def __init__(self, inner="eager"):
        self.graphs = []
        self.inner = capture.backends.lookup_backend(inner)

    def __call__(self, gm, example_inputs):
        self.graphs.append(gm)
        return self.inner(gm, example_inputs)


def _run_blocks(blocks, x, backend, interleaved=False):
    if interleaved:
        y = x
        for block in blocks:
            y = capture.compile(block, backend=backend)(y)
        return y
    compiled = [capture.compile(block, backend=backend) for block in blocks]  # all before any call
    y = x
    for c in compiled:
        y = c(y)
    return y


def _eager(blocks, x):
    for block in blocks:
        x = block(x)
    return x


def _no_warnings():
    return warnings.catch_warnings(record=True)


@pytest.mark.parametrize("graph_break", [False, True], ids=["whole", "with a break"])
@pytest.mark.parametrize("backend", ["eager", "codegen"])
def test_twelve_blocks_of_one_class_build_at_most_three_graphs_and_train_like_eager(backend, graph_break, seeded):
    blocks = [Block(graph_break=graph_break) for _ in range(12)]
    reference = copy.deepcopy(blocks)
    x = torch.randn(4, 16, requires_grad=True)  # as an embedding's output in training
    counting = Counting(backend)
    with _no_warnings() as caught:
        warnings.simplefilter("always")
        out = _run_blocks(blocks, x, counting)
    assert not [w for w in caught if "cache limit" in str(w.message)]
    assert len(counting.graphs) <= 3 and len(counting.graphs) == (2 if graph_break else 1)
    expected = _eager(reference, x)
    torch.testing.assert_close(out, expected)
    out.sum().backward()
    expected.sum().backward()
    for block, ref in zip(blocks, reference):
        for p, q in zip(block.parameters(), ref.parameters()):
            torch.testing.assert_close(p.grad, q.grad)


def test_twelve_blocks_with_the_triton_backend_equal_eager(seeded):
    blocks = [Block(graph_break=True) for _ in range(12)]
    x = torch.randn(4, 16)
    counting = Counting("triton")
    with torch.no_grad():
        out = _run_blocks(blocks, x, counting)
        torch.testing.assert_close(out, _eager(blocks, x))
    assert len(counting.graphs) == 2


def test_blocks_compiled_and_run_one_by_one_share_from_the_second(seeded):
    """The second block misses the first's identity entry: its class is shared from then on."""
    blocks = [Block() for _ in range(12)]
    x = torch.randn(4, 16, requires_grad=True)
    counting = Counting()
    out = _run_blocks(blocks, x, counting, interleaved=True)
    torch.testing.assert_close(out, _eager(blocks, x))
    assert len(counting.graphs) == 2


def test_blocks_called_through_one_function_share_one_entry(seeded):
    blocks = [Block() for _ in range(6)]
    counting = Counting()
    run = capture.compile(lambda block, x: block(x) * 2, backend=counting)
    x = torch.randn(4, 16)
    with torch.no_grad():
        for block in blocks:
            torch.testing.assert_close(run(block, x), block(x) * 2)
    assert len(counting.graphs) == 2  # the first block's identity entry, then the shared one


def test_a_single_instance_keeps_the_identity_path(seeded):
    block = Block()
    x = torch.randn(4, 16)
    compiled = capture.compile(block, backend="eager")
    compiled(x)
    (entry,) = FRAMES[Block.forward.__code__].entries
    assert "__id(self) ==" in entry.guard.source  # one id check on the module
    assert "_parameters" not in entry.source  # parameters bound into the frame, not read


def test_shared_entry_reads_each_instances_parameters_and_settings(seeded):
    blocks = [Block() for _ in range(3)]
    compiled = [capture.compile(b, backend="eager") for b in blocks]
    x = torch.randn(4, 16)
    with torch.no_grad():
        for b, c in zip(blocks, compiled):
            torch.testing.assert_close(c(x), b(x))
        blocks[1].fc1.weight.mul_(2)  # in place: the same entry, new values
        blocks[2].fc2.weight = nn.Parameter(torch.randn(16, 32))  # replaced, same metadata
        blocks[0].norm.eps = 0.5  # a setting the graph baked in: that instance recompiles
        for b, c in zip(blocks, compiled):
            torch.testing.assert_close(c(x), b(x))
    (shared,) = [e for e in FRAMES[Block.forward.__code__].entries if "_parameters" in e.source][:1]
    assert shared.hits >= 3


def test_instances_with_other_shapes_get_their_own_entry(seeded):
    blocks = [Block(16), Block(16), Block(8)]
    compiled = [capture.compile(b, backend="eager") for b in blocks]
    with torch.no_grad():
        for b, c in zip(blocks, compiled):
            x = torch.randn(2, b.fc1.in_features)
            torch.testing.assert_close(c(x), b(x))
    assert len(FRAMES[Block.forward.__code__].entries) == 2


class WithLeaf(nn.Module):
    """A block whose graph calls a module (BatchNorm stays one graph op, held by the graph)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.bn = nn.BatchNorm1d(8)

    def forward(self, x):
        return self.bn(self.fc(x))


def test_a_module_the_graph_holds_is_never_shared_between_instances(seeded):
    blocks = [WithLeaf().eval() for _ in range(3)]
    for i, b in enumerate(blocks):
        b.bn.running_mean.fill_(float(i))
    compiled = [capture.compile(b, backend="eager") for b in blocks]
    x = torch.randn(4, 8)
    with torch.no_grad():
        for b, c in zip(blocks, compiled):
            torch.testing.assert_close(c(x), b(x))


class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.calls = 0

    def forward(self, x):
        self.calls = self.calls + 1
        return self.fc(x)


def test_attribute_stores_of_a_shared_entry_go_to_the_instance_called(seeded):
    counters = [Counter() for _ in range(4)]
    compiled = [capture.compile(c, backend="eager") for c in counters]
    x = torch.randn(2, 4)
    with torch.no_grad():
        for _ in range(3):
            for module, c in zip(counters, compiled):
                torch.testing.assert_close(c(x), module.fc(x))
    assert [c.calls for c in counters] == [3, 3, 3, 3]


def test_dropped_shared_instances_are_collected(seeded):
    import gc
    import weakref
    blocks = [Block() for _ in range(4)]
    compiled = [capture.compile(b, backend="eager") for b in blocks]
    x = torch.randn(2, 16)
    for c in compiled:
        c(x)
    refs = [weakref.ref(b) for b in blocks]
    del blocks, compiled, c
    gc.collect()
    assert all(r() is None for r in refs)
    assert len(_C.get_cache(Block.forward.__code__)) == 1  # the shared entry names no instance

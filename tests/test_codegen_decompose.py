"""fx_graph: decomposition of captured graphs to functional core aten, lifted leaf-module
parameters, dead code and common subexpressions, readable printing."""
import operator

import torch
import torch.nn.functional as F
from torch import fx, nn

import capture
import fx_graph
from helpers_codegen import graph_of

aten = torch.ops.aten


def _targets(gm):
    return [n.target for n in gm.graph.nodes if n.op == "call_function"]


def _captured(fn, *args):
    """The FX graph capture hands to a backend for ``fn(*args)``."""
    graphs = []

    def backend(gm, example_inputs):
        graphs.append((gm, example_inputs))
        return gm.forward
    capture.compile(fn, backend=backend)(*args)
    (gm, example_inputs), = graphs
    return gm, example_inputs


def test_softmax_and_layer_norm_decompose_to_reductions_and_pointwise_ops():
    gm = fx_graph.decompose(graph_of(lambda x: F.layer_norm(x, (8,)).softmax(-1), 1), [torch.randn(3, 8)])
    packets = {t.overloadpacket for t in _targets(gm) if hasattr(t, "overloadpacket")}
    assert {aten.var_mean, aten.amax, aten.exp, aten.sum, aten.div} <= packets
    assert aten._softmax not in packets and aten.native_layer_norm not in packets
    for node in gm.graph.nodes:
        if node.op != "output":
            assert "val" in node.meta, f"{node.name} has no fake tensor"


def test_in_place_ops_become_one_copy_back_into_the_input_at_the_end():
    def fn(x, y):
        x.mul_(2)
        x.add_(y)
        return x.sum()
    gm = fx_graph.decompose(graph_of(fn, 2), [torch.randn(4), torch.randn(4)])
    targets = _targets(gm)
    assert targets.count(aten.copy_.default) == 1
    assert not [t for t in targets if t is not aten.copy_.default and t._schema.is_mutable]
    copy = next(n for n in gm.graph.nodes if n.target is aten.copy_.default)
    assert copy.args[0].op == "placeholder"


def test_decomposition_inplace_ops_are_functionalized_too():
    gm = fx_graph.decompose(graph_of(lambda x: F.rms_norm(x, (8,)), 1), [torch.randn(3, 8)])
    assert not any(t._schema.is_mutable for t in _targets(gm) if hasattr(t, "_schema"))


def test_leaf_module_parameters_are_lifted_to_named_placeholders():
    model = nn.Sequential(nn.PReLU(4), nn.BatchNorm1d(4).eval())   # both stay opaque leaf ops
    gm, example_inputs = _captured(model, torch.randn(2, 4))
    decomposed = fx_graph.decompose(gm, example_inputs)
    names = [n.name for n in decomposed.graph.nodes if n.op == "placeholder"]
    assert names[len(example_inputs):] == ["p_re_l_u_0_weight", "batch_norm1d_1_weight", "batch_norm1d_1_bias",
                                           "batch_norm1d_1_running_mean", "batch_norm1d_1_running_var",
                                           "batch_norm1d_1_num_batches_tracked"]
    lifted = fx_graph.lifted_values(decomposed)
    assert lifted[0] is model[0].weight and lifted[3] is model[1].running_mean
    out, = decomposed(*example_inputs, *lifted)
    torch.testing.assert_close(out, model(example_inputs[0]))


def test_inlined_module_parameters_are_graph_inputs():
    model = nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8))         # traced through: F.linear, F.layer_norm
    gm, example_inputs = _captured(model, torch.randn(2, 4))
    assert [x is p for x, p in zip(example_inputs[1:], model.parameters())] == [True] * 4
    decomposed = fx_graph.decompose(gm, example_inputs)
    assert fx_graph.lifted_values(decomposed) == []
    out, = decomposed(*example_inputs)
    torch.testing.assert_close(out, model(example_inputs[0]))


def test_forward_hooks_are_not_run_twice():
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU())
    model[0].register_forward_hook(lambda mod, inp, out: out * 2)      # traced inline by capture
    gm, example_inputs = _captured(model, torch.randn(2, 4))
    decomposed = fx_graph.decompose(gm, example_inputs)
    out, = decomposed(*example_inputs, *fx_graph.lifted_values(decomposed))
    torch.testing.assert_close(out, model(example_inputs[0]))


def test_dead_code_keeps_copies_back_and_random_ops():
    graph = fx.Graph()
    x = graph.placeholder("x")
    graph.call_function(aten.exp.default, (x,))                           # dead
    graph.call_function(aten.rand.default, ([3],))                        # dead but random
    graph.call_function(aten.copy_.default, (x, x))                       # mutation
    graph.output(x)
    gm = fx.GraphModule(nn.Module(), graph)
    assert fx_graph.dead_code(gm) == 1
    assert _targets(gm) == [aten.rand.default, aten.copy_.default]


def test_common_subexpressions_merge_pure_ops_only():
    graph = fx.Graph()
    x = graph.placeholder("x")
    a = graph.call_function(aten.add.Tensor, (x, 1))
    b = graph.call_function(aten.add.Tensor, (x, 1))
    c = graph.call_function(aten.add.Tensor, (x, 1.0))                    # 1.0 is not 1
    s = graph.call_function(aten.mul.Tensor, (a, b))
    r1 = graph.call_function(aten.rand.default, ([3],))
    r2 = graph.call_function(aten.rand.default, ([3],))
    n1 = graph.call_function(aten.neg.default, (x,))                         # two outputs: eager's
    n2 = graph.call_function(aten.neg.default, (x,))                         # are distinct tensors
    graph.output((s, c, r1, r2, n1, n2))
    gm = fx.GraphModule(nn.Module(), graph)
    assert fx_graph.common_subexpressions(gm) == 1
    out = list(gm.graph.nodes)[-1].args[0]
    assert out[0].args[0] is out[0].args[1] and out[1] is not out[0].args[0]
    assert out[2] is not out[3] and out[4] is not out[5]


def test_graph_prints_one_line_per_node_with_dtype_and_shape():
    gm = fx_graph.decompose(graph_of(lambda x, w: F.linear(x, w).relu(), 2), [torch.randn(2, 4), torch.randn(3, 4)])
    text = fx_graph.format_graph(gm)
    assert "%arg0: f32[2, 4] = placeholder" in text
    assert "%permute: f32[4, 3](stride (1, 4)) = aten.permute(%arg1, [1, 0])" in text
    assert "%mm: f32[2, 3] = aten.mm(%arg0, %permute)" in text
    assert text.splitlines()[-1] == "return (%relu,)"


def test_non_tensor_inputs_are_refused_with_a_reason():
    graph = fx.Graph()
    x, n = graph.placeholder("x"), graph.placeholder("n")
    graph.output(graph.call_function(operator.mul, (x, n)))
    try:
        fx_graph.decompose(fx.GraphModule(nn.Module(), graph), [torch.randn(2), 3])
    except fx_graph.DecomposeError as e:
        assert "int" in str(e)
    else:
        raise AssertionError("decompose accepted a non-tensor input")

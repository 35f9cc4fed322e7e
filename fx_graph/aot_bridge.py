"""The one module that calls functorch's AOT autograd (``torch._functorch.aot_autograd``).

``aot_compile(flat_fn, flat_inputs, compilers)`` traces ``flat_fn`` (a function of a
flat list of tensors returning a tuple) under fake tensors, functionalized and
decomposed, and returns a boxed callable ``compiled(list_of_inputs) -> list``:

* no output requires grad (inference): one functional graph goes to
  ``compilers.inference``; input mutations stay in it as ``copy_`` into the input
  (``keep_inference_input_mutations``);
* otherwise a joint forward+backward graph is traced, split by ``compilers.partition``
  and each half goes to ``compilers.forward`` / ``compilers.backward`` (the backward
  lazily, on the first ``backward()``, except with symbolic sizes); the halves are wired
  as a ``torch.autograd.Function``.

Fake inputs with symbolic sizes (``fx_graph.compiled_path`` hands a dynamic-shape
graph's own fakes) are traced under their fake mode and ShapeEnv: the graphs have
symbolic sizes, and every relation the trace relies on lands in the frame's guards.

What AOT autograd's runtime wrappers guarantee around the compiled graphs (we rely on
it): outputs that are inputs come back as the input objects, outputs that alias inputs
or other outputs are regenerated as views of the caller's tensors by replaying the view
ops (eager's sizes, strides, offset, ``_base``, ``requires_grad``); input data and
metadata mutations the graph returns are applied with ``copy_`` / ``as_strided_``;
grad mode set inside the graph is set again after the call. What it does not check:
that inputs alias each other as they did when it traced (its synthetic-base and
dedupe handling is baked in) — ``fx_graph.compiled_path`` checks that itself.

The import of AOT autograd is lazy (it imports ``torch._dynamo`` and
``torch._inductor``, ~1.5 s): only the first compile pays it, and the project itself
never imports those packages.
"""
from __future__ import annotations

import contextlib
import dataclasses
import itertools

import torch

_AOT_IDS = itertools.count()

# functorch settings while we trace (restored afterwards):
# - donated_buffer: off. With donated saved tensors, ``backward(retain_graph=True)``
#   raises; eager allows it.
# - functionalize_rng_ops: off. Random ops stay ops on torch's generator (eager's values).
# - view_replay_for_aliased_outputs: on. Aliased outputs are rebuilt by replaying the
#   view ops on the caller's tensor, so ``_base`` and strides are eager's.
_FUNCTORCH_CONFIG = {"donated_buffer": False, "functionalize_rng_ops": False,
                     "view_replay_for_aliased_outputs": True}


class AotRefusal(RuntimeError):
    """A graph AOT autograd would get wrong (the message says what); it runs as captured."""


@dataclasses.dataclass
class Compilers:
    """Callbacks ``(functional_gm, example_inputs) -> boxed callable`` and the partitioner
    ``(joint_gm, joint_inputs, *, num_fwd_outputs, ...) -> (fw_gm, bw_gm)``."""
    forward: object
    backward: object
    inference: object
    partition: object


@dataclasses.dataclass
class AotResult:
    compiled: object            # boxed callable: list of flat inputs -> list of outputs
    needs_autograd: bool        # a joint graph was built (forward + backward)
    mutated_inputs: tuple       # flat input positions whose data or metadata the graph mutates
    metadata_mutations: tuple   # flat input positions whose metadata (sizes, strides) it mutates
    plain: bool = False         # AOT's runtime wrapper only calls the inference graph, grad off (see _plain)


def aot_compile(flat_fn, flat_inputs: list, compilers: Compilers, decompositions: dict) -> AotResult:
    """Trace and compile ``flat_fn`` at ``flat_inputs``; see the module docstring."""
    from torch._functorch import aot_autograd as aot
    from torch._functorch import config as functorch_config
    from torch._functorch._aot_autograd.graph_compile import aot_stage1_graph_capture, aot_stage2_compile

    symbolic = _symbolic(flat_inputs)
    # Symbolic sizes: the backward compiles now, not at the first backward(): the
    # relations its code generator decides must be in the ShapeEnv before the front end
    # takes the entry's guards (and a failure is raised, not suppressed).
    config = aot.AOTConfig(fw_compiler=None, bw_compiler=None, inference_compiler=None, partition_fn=None,
                           decompositions=decompositions, num_params_buffers=0, aot_id=next(_AOT_IDS),
                           keep_inference_input_mutations=True, dynamic_shapes=symbolic, enable_log=False,
                           force_non_lazy_backward_lowering=symbolic)
    entry_grad_mode = torch.is_grad_enabled()
    fake_mode, shape_env = aot.construct_fake_mode(flat_inputs, config)
    fake_inputs, act_indices = aot.process_inputs(flat_inputs, config, fake_mode, shape_env)
    descriptors = [aot.PlainAOTInput(i) for i in range(len(fake_inputs))]
    with functorch_config.patch(_FUNCTORCH_CONFIG), contextlib.ExitStack() as stack:
        state = aot.create_aot_state(stack, flat_fn, fake_inputs, descriptors, config, fake_mode, shape_env)
        state.fw_metadata.act_input_indices = act_indices
        info = state.fw_metadata.input_info
        mutated = tuple(i for i, x in enumerate(info) if x.mutates_data or x.mutates_metadata)
        metadata = tuple(i for i, x in enumerate(info) if x.mutates_metadata)
        needs_autograd = state.needs_autograd
        _refuse_grad_enabling_writes(state.fw_metadata, entry_grad_mode)
        capture = aot_stage1_graph_capture(state, flat_fn)
        compiled, _ = aot_stage2_compile(state, capture, compilers.partition, compilers.forward,
                                         compilers.backward, compilers.inference)
    return AotResult(compiled, needs_autograd, mutated, metadata, _plain(state, flat_inputs))


def _symbolic(flat_inputs: list) -> bool:
    """Fake inputs with symbolic sizes (a dynamic-shape graph): traced with their fake
    mode and ShapeEnv (``construct_fake_mode`` finds them), not faked again."""
    return any(isinstance(x, torch.Tensor) and any(isinstance(s, torch.SymInt) for s in x.shape)
               for x in flat_inputs)


def _refuse_grad_enabling_writes(meta, entry_grad_mode: bool) -> None:
    """AOT autograd's runtime wrapper applies input mutations (``copy_``) in the grad
    mode the graph was entered with (it sets the mode the graph leaves only after): a
    graph entered under ``no_grad`` that turns grad on and writes an input requiring
    grad (``with no_grad(): <break>`` then ``y.mul_(2)``) would have its write hidden
    from autograd (wrong gradients)."""
    if not entry_grad_mode and any(
            x.mutates_data and x.requires_grad and not x.mutations_under_no_grad_or_inference_mode
            and not x.mutations_hidden_from_autograd for x in meta.input_info):
        raise AotRefusal("the graph turns grad mode on and then writes an input that requires grad")


def _plain(state, flat_inputs: list) -> bool:
    """Whether AOT autograd's runtime wrapper, around an inference graph, does nothing
    but call it with grad mode off: no input mutated (data or metadata), every output a
    fresh tensor (no alias of an input or of another output), grad mode not set by the
    graph, no effect tokens, no tensor subclasses, no autocast while tracing (the
    wrapper would turn it off), no random ops functionalized. Then the caller may call
    the compiled inference graph itself and skip the wrapper's per-call work."""
    from torch._functorch._aot_autograd.schemas import OutputType
    meta = state.fw_metadata
    return (not state.needs_autograd
            and not any(x.mutates_data or x.mutates_metadata for x in meta.input_info)
            and all(x.output_type == OutputType.non_alias for x in meta.output_info)
            and meta.num_intermediate_bases == 0 and meta.grad_enabled_mutation is None and not meta.tokens
            and not meta.is_rng_op_functionalized and not torch._C._is_any_autocast_enabled()
            and all(type(x) in (torch.Tensor, torch.nn.Parameter) for x in flat_inputs))


def min_cut_partition(joint_gm, joint_inputs, **kwargs):
    """functorch's min-cut rematerialization partitioner: saves what is expensive to
    recompute, recomputes cheap pointwise chains in the backward."""
    from torch._functorch.partitioners import min_cut_rematerialization_partition
    return min_cut_rematerialization_partition(joint_gm, joint_inputs, **kwargs)


def default_partition(joint_gm, joint_inputs, **kwargs):
    """functorch's default partitioner: the backward recomputes nothing."""
    from torch._functorch.partitioners import default_partition as partition
    return partition(joint_gm, joint_inputs, **kwargs)



def is_tangent(node) -> bool:
    """A joint graph's placeholder for the gradient of an output (not a forward input)."""
    from torch._functorch._aot_autograd.descriptors import TangentAOTInput
    return node.op == "placeholder" and isinstance(node.meta.get("desc"), TangentAOTInput)


def input_position(desc):
    """The flat input position a joint graph placeholder stands for (None for a base
    AOT autograd synthesized for aliased inputs)."""
    from torch._functorch._aot_autograd.descriptors import PlainAOTInput
    return desc.idx if isinstance(desc, PlainAOTInput) else None


def output_position(desc):
    """The traced function's output a tangent placeholder is the gradient of (None: the
    gradient of something else, e.g. a mutated input's new value)."""
    from torch._functorch._aot_autograd.descriptors import PlainAOTOutput
    output = getattr(desc, "output", None)
    return output.idx if isinstance(output, PlainAOTOutput) else None

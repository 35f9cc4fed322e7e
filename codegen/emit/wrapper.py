"""The generated Python wrapper: allocate buffers, run extern calls, launch kernels.

One ``call(<graph inputs>)`` function per graph, straight-line code in schedule order::

    addmm = _check_layout(torch.ops.aten.addmm.default(b, l_x, _alias(w, (16, 32), (1, 16), 0)), ...)
    gelu = _empty((4, 32), (32, 1), torch.float32)
    fused_gelu[(1,)](addmm, gelu, 128, BLOCK_SIZE=128, num_warps=1)
    return (gelu,)

Static shapes are literals. With symbolic sizes (dynamic shapes) the wrapper first reads
each size symbol from an input (``s0 = l_x.shape[0]``); buffers, grids and kernels' size
arguments are then expressions of those (``torch.empty_strided((s0, 768), ...)``,
``fused_gelu[(_cdiv(768*s0, 1024),)](..., 768*s0, s0, BLOCK_SIZE=1024, ...)``).
Mutated inputs are written back with ``copy_`` after everything has read them.

A kernel that reads through gathered indices (``codegen.lower.indirect``) also takes one
int32 of ``index_errors`` (zeroed per call), sets it where an index is out of range, and
is followed by a check that raises like eager::

    index_errors = torch.zeros((1,), dtype=torch.int32, device=_device)
    triton_embedding[(1,)](l_i, l_w, embedding, index_errors[0], 144, BLOCK_SIZE=256, num_warps=4)
    _check_indices(index_errors[0], "index out of range in embedding (capture triton kernel triton_embedding)")

On a CUDA device (not under the interpreter) each kernel is wrapped in
``triton.autotune`` over ``config.autotune_configs`` and launched with a grid computed
from the chosen block::

    # fused_gelu: autotuned over BLOCK_SIZE/num_warps (128, 1) (64, 1) ...
    fused_gelu[lambda meta: (_cdiv(128, meta["BLOCK_SIZE"]),)](addmm, gelu, 128)

and a kernel over symbolic sizes once per size bucket (``BucketedAutotune``)::

    fused_gelu.at(128*s0)[lambda meta: (_cdiv(128*s0, meta["BLOCK_SIZE"]),)](addmm, gelu, 128*s0, s0)
"""
from __future__ import annotations

import linecache
import math

import sympy
import torch

from codegen import config
from fx_graph.layout import unviewed
from codegen.lower.graph import ExternCall, GraphLowering
from codegen.ir import BufferValue, sizes
from codegen.lower.registry import Unlowerable


def _alias(base, size, stride, offset):
    return base.as_strided(size, stride, base.storage_offset() + offset)


def _own(base, size, stride, offset):
    """Part of ``base`` as a tensor of its own (no ``_base``: eager's result is no view)."""
    return unviewed(_alias(base, size, stride, offset))


def _check_layout(tensor, size, stride, dtype):
    """Extern results must have the strides and dtype the kernels were generated for; copy
    if not. (Some ops return None where their meta function promises an empty tensor;
    some return another dtype than their meta function says: bfloat16 running stats from
    ``_batch_norm_with_update_functional``, float32 by its meta — the kernels read the
    dtype they were generated for, so the result is converted to it.)"""
    if tensor is None or (tensor.dtype == dtype and (tuple(tensor.stride()) == stride or tensor.numel() <= 1)):
        return tensor
    out = torch.empty_strided(size, stride, dtype=dtype, device=tensor.device)
    return out.copy_(tensor)


def _cdiv(a, b):
    return -(-a // b)


class IndexOutOfRangeError(IndexError, RuntimeError):
    """A kernel was given an index out of range. Eager raises IndexError or RuntimeError
    depending on the op; this is both, so code catching either still does."""


def _check_indices(flag, message: str) -> None:
    """Raise ``message`` if a kernel set ``flag``. On CUDA this is an asynchronous
    device-side assert (no host sync, like eager's own index checks); on the CPU (the
    interpreter) the flag is already host memory, so it raises at once."""
    if flag.device.type == "cpu":
        if flag.item():
            raise IndexOutOfRangeError(message)
    else:
        torch._assert_async(flag == 0, message)


def autotuned(kernel_fn, configs: list):
    """``kernel_fn`` wrapped in ``triton.autotune`` over ``configs`` (dicts of
    constexprs + ``num_warps``); sizes are constexprs, so no autotune key is needed."""
    import triton
    options = ("num_warps", "num_stages")
    tuned = [triton.Config({k: v for k, v in c.items() if k not in options}, num_warps=c["num_warps"],
                           num_stages=c.get("num_stages", 3)) for c in configs]
    return triton.autotune(configs=tuned, key=[])(kernel_fn)


class BucketedAutotune:
    """A kernel over symbolic sizes, autotuned per size bucket (``config.size_bucket`` of
    each symbolic extent): the first launch in a bucket tunes over the configs for the
    bucket's sizes (``KernelSource.autotune_configs``); later launches reuse its choice."""

    def __init__(self, kernel_fn, source):
        self.kernel_fn, self.source = kernel_fn, source
        self.names = [n for n, v in source.int_args if not sizes.is_static(v)]
        self.tuners: dict = {}

    def configs(self, *extents) -> list:
        return self.source.autotune_configs(dict(zip(self.names, (config.size_bucket(e) for e in extents))))

    def at(self, *extents):
        """The autotuned kernel for this launch's symbolic extents (in ``int_args`` order)."""
        key = tuple(config.size_bucket(e) for e in extents)
        tuner = self.tuners.get(key)
        if tuner is None:
            tuner = self.tuners[key] = autotuned(self.kernel_fn, self.configs(*extents))
        return tuner


class WrapperCodegen:
    def __init__(self, graph: GraphLowering, items: list, sources: dict, autotune: bool = False):
        self.graph, self.items, self.sources = graph, items, sources
        self.autotune = autotune
        self.namespace = {"torch": torch, "_alias": _alias, "_own": _own, "_check_layout": _check_layout,
                          "_device": graph.device, "_cdiv": _cdiv, "_check_indices": _check_indices}
        self.lines: list = []
        self.allocated: set = set()
        self.index_errors = None          # the name of the per-call flags, if a kernel checks indices
        self.n_flags = 0                  # flags handed out so far (one per checking kernel)

    def constant(self, value, hint="const") -> str:
        name = f"_{hint}{len(self.namespace)}"
        self.namespace[name] = value
        return name

    def arg(self, value) -> str:
        """Source for an extern-call argument."""
        if isinstance(value, BufferValue):
            return self.view(value)
        if isinstance(value, bool) or value is None:
            return repr(value)
        if isinstance(value, sympy.Expr):
            return sizes.source(value)
        if isinstance(value, int):
            return repr(value)
        if isinstance(value, float):
            return repr(value) if math.isfinite(value) else f"float({str(value)!r})"
        if isinstance(value, str):
            return repr(value)
        if isinstance(value, list):
            return "[" + ", ".join(self.arg(v) for v in value) + "]"
        if isinstance(value, tuple):
            return "(" + "".join(self.arg(v) + ", " for v in value) + ")"
        if isinstance(value, torch.dtype):
            return str(value)
        if isinstance(value, torch.device):
            return "_device" if value == self.graph.device else self.constant(value, "device")
        return self.constant(value)

    def view(self, bv: BufferValue, fresh: bool = False) -> str:
        """``fresh``: a new tensor object even over the whole buffer (eager returned a view)."""
        if bv.is_whole_buffer() and not fresh:
            return bv.buffer.name
        return self.strided_view(bv)

    def strided_view(self, bv: BufferValue) -> str:
        """A new view object over ``bv``'s window (``view`` decided the buffer itself won't do)."""
        return (f"_alias({bv.buffer.name}, {sizes.tuple_source(bv.shape)}, {sizes.tuple_source(bv.stride)}, "
                f"{sizes.source(bv.offset)})")

    def target(self, fn) -> str:
        if isinstance(fn, torch._ops.OpOverload):
            return f"torch.ops.{fn.namespace}.{fn._schema.name.split('::')[-1]}.{fn._overloadname}"
        return self.constant(fn, "fn")

    # ---------------------------------------------------------------- steps
    def extern(self, call: ExternCall) -> None:
        args = [self.arg(a) for a in call.args] + [f"{k}={self.arg(v)}" for k, v in call.kwargs.items()]
        expr = f"{self.target(call.target)}({', '.join(args)})"
        self.lines.append(f"# {call.name}: extern ({call.reason})")
        if call.structure == "tensor":
            buffer = call.outputs[0]
            self.lines.append(f"{buffer.name} = _check_layout({expr}, {_shape(buffer)}, {_stride(buffer)}, "
                              f"{buffer.dtype})")
            return
        result = self.graph.unique(f"{call.name}_result")
        self.lines.append(f"{result} = {expr}")

        def unpack(structure, path):
            if isinstance(structure, BufferValue):
                b = structure.buffer
                self.lines.append(f"{b.name} = _check_layout({result}{path}, {_shape(b)}, {_stride(b)}, {b.dtype})")
            elif isinstance(structure, tuple):
                for i, item in enumerate(structure):
                    unpack(item, f"{path}[{i}]")
        unpack(call.structure, "")

    def allocate(self, buffer) -> None:
        self.lines.append(f"{buffer.name} = torch.empty_strided({_shape(buffer)}, {_stride(buffer)}, "
                          f"dtype={buffer.dtype}, device=_device)")

    def launch(self, kernel, source) -> None:
        for buffer in source.pointer_args:
            if buffer.kind == "computed" and buffer.name not in self.allocated:
                self.allocated.add(buffer.name)
                self.allocate(buffer)
        kernel_fn = self.sources[id(kernel)][1]
        assert kernel_fn is not None
        flag = None
        if source.index_checks:
            flag = f"{self.index_errors}[{self.n_flags}]"
            self.n_flags += 1
        self.lines.append(f"# {source.name}: {', '.join(source.fx_nodes)}")
        empty = any(v == 0 for _, v in source.int_args)
        if source.persistent_variant is not None:
            self.launch_bucketed(source, kernel_fn, flag)
        else:
            launch = self.launch_line(source, kernel_fn, _kernel_args(source, flag))
            self.lines.append(launch if not empty else f"pass  # {launch}: no elements")
        if flag is not None and not empty:
            message = f"index out of range in {' or '.join(source.index_checks)} (capture triton kernel {source.name})"
            self.lines.append(f"_check_indices({flag}, {message!r})")

    def launch_line(self, source, kernel_fn, args) -> str:
        symbolic = [v for _, v in source.int_args if not sizes.is_static(v)]
        target = source.name
        if self.autotune and symbolic:
            self.namespace[source.name] = BucketedAutotune(kernel_fn, source)
            names = "/".join(n for n, v in source.int_args if not sizes.is_static(v))
            self.lines.append(f"# {source.name}: autotuned per size bucket of {names} (config.size_bucket)")
            target = f"{source.name}.at({', '.join(sizes.source(v) for v in symbolic)})"
            grid = source.autotuned_grid()
        elif self.autotune:
            configs = source.autotune_configs()
            self.namespace[source.name] = autotuned(kernel_fn, configs)
            keys = list(configs[0])
            listed = " ".join("(" + ", ".join(str(c[k]) for k in keys) + ")" for c in configs)
            self.lines.append(f"# {source.name}: autotuned over {'/'.join(keys)} {listed}")
            grid = source.autotuned_grid()
        else:
            self.namespace[source.name] = kernel_fn
            args = args + [f"{k}={v}" for k, v in {**source.constexprs, **source.launch_options()}.items()]
            grid = source.grid_source()
        args = args + [f"{k}={v!r}" for k, v in config.TRITON_OPTIONS.items()]
        return f"{target}[{grid}]({', '.join(args)})"

    def launch_bucketed(self, source, kernel_fn, flag) -> None:
        """A row kernel over a symbolic row length: its persistent variant where the row fits
        in registers (``config.PERSISTENT_MAX_COLS``), with the block ``config.rows_config``
        gives at this call's sizes (one binary per power-of-two bucket), else the looped
        kernel. A branch at run time: no guard, no recompile::

            if n_cols <= 2048:
                _block = _persistent_bucket(n_rows, n_cols)
                k_persistent[(_cdiv(n_rows, _block["ROWS"]),)](..., **_block)
            else:
                k[(_cdiv(n_rows, 4),)](..., ROWS=4, COLS=1024, num_warps=8)
        """
        variant, variant_fn = source.persistent_variant
        self.namespace[variant.name] = variant_fn
        self.namespace[source.name] = kernel_fn
        self.namespace["_persistent_bucket"] = config.persistent_bucket
        n_rows, n_cols = (sizes.source(v) for _, v in source.int_args)
        options = [f"{k}={v!r}" for k, v in config.TRITON_OPTIONS.items()]
        looped = _kernel_args(source, flag) + [f"{k}={v}" for k, v in {**source.constexprs,
                                                                         **source.launch_options()}.items()]
        block = self.graph.unique("_block")
        persistent = _kernel_args(variant, flag) + options + [f"**{block}"]
        self.lines += [f"if {n_cols} <= {config.PERSISTENT_MAX_COLS}:  # whole rows in registers",
                       f"    {block} = _persistent_bucket({n_rows}, {n_cols})",
                       f"    {variant.name}[(_cdiv({n_rows}, {block}['ROWS']),)]({', '.join(persistent)})",
                       "else:  # rows looped over column blocks",
                       f"    {source.name}[{source.grid_source()}]({', '.join(looped + options)})"]

    def error_flags(self, kernels) -> None:
        """One int32 per kernel that checks indices, zeroed per call."""
        n_checking = sum(1 for k in kernels if self.sources[id(k)][0].index_checks)
        if n_checking:
            self.index_errors = self.graph.unique("index_errors")
            self.lines.append(f"{self.index_errors} = torch.zeros(({n_checking},), dtype=torch.int32, device=_device)")

    def bind_sizes(self) -> None:
        """Read every size symbol from the first input dimension that is exactly it."""
        needed = set(sizes.known_symbols())
        for symbol, name in self.graph.size_params.items():
            if symbol in needed:
                self.lines.append(f"{symbol} = {name}")
                needed.discard(symbol)
        for buffer in self.graph.inputs:
            for dim, size in enumerate(buffer.shape):
                if size in needed:
                    self.lines.append(f"{size} = {buffer.name}.shape[{dim}]")
                    needed.discard(size)
        used = set()
        for buffer in list(self.graph.inputs) + [b for n in self.graph.nodes for b in _buffers_of(n)]:
            used |= sizes.symbols(list(buffer.shape) + list(buffer.stride))
        if used & needed:
            raise Unlowerable(f"size symbols {sorted(map(str, used & needed))} are not an input's size")

    def outputs(self) -> str:
        parts = []
        for out in self.graph.outputs:
            if out.kind == "input":
                parts.append(self.graph.inputs[out.value].name)
            elif out.kind == "constant":
                parts.append(self.arg(out.value))
            elif out.own:
                bv = out.value
                parts.append(f"_own({bv.buffer.name}, {sizes.tuple_source(bv.shape)}, "
                             f"{sizes.tuple_source(bv.stride)}, {sizes.source(bv.offset)})")
            else:
                parts.append(self.view(out.value, fresh=out.view))
        return "(" + "".join(p + ", " for p in parts) + ")"

    def generate(self, name: str = "call"):
        from codegen.schedule.scheduler import Kernel
        kernels = [item for item in self.items if isinstance(item, Kernel)]
        self.error_flags(kernels)
        self.bind_sizes()
        for buffer in self.graph.empty_buffers:
            self.allocate(buffer)
        for item in self.items:
            if isinstance(item, Kernel):
                self.launch(item, self.sources[id(item)][0])
            else:
                self.extern(item)
        for target, source in self.graph.mutations:
            self.lines.append(f"{target.name}.copy_({self.view(source)})")
        self.lines.append(f"return {self.outputs()}")
        for buffer in self.graph.constant_buffers:
            self.namespace[buffer.name] = self.graph.constants[buffer.name]
        params = ", ".join(self.graph.params)
        source = f"def {name}({params}):\n" + "\n".join("    " + line for line in self.lines) + "\n"
        return source, self.namespace


def _kernel_args(source, flag) -> list:
    """A kernel's positional arguments, in its parameters' order: pointers, the index-error
    flag, size arguments, size symbols."""
    args = [b.name for b in source.pointer_args] + ([flag] if flag is not None else [])
    return args + [sizes.source(v) for _, v in source.int_args] + [str(s) for s in source.size_symbols]


def _shape(buffer) -> str:
    return sizes.tuple_source(buffer.shape)


def _stride(buffer) -> str:
    return sizes.tuple_source(buffer.stride)


def _buffers_of(node) -> list:
    return list(node.outputs) if isinstance(node, ExternCall) else [node.buffer]


def compile_wrapper(source: str, namespace: dict, name: str = "call", filename: str = "<capture wrapper>"):
    """The wrapper function; its source is registered with linecache for tracebacks."""
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    exec(compile(source, filename, "exec"), namespace)
    return namespace[name]

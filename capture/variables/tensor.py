"""Tensors: an FX node plus a fake tensor carrying shape, dtype and device."""
from __future__ import annotations

import builtins
import operator
import warnings

import torch

from capture.exc import MissingAttribute, Unsupported
from capture.variables import builder
from capture.variables.base import VariableTracker
from capture.variables.constant import ConstantVariable
from capture.variables.lists import TupleVariable
from guards import GuardKind
from guards.sources import AttrSource

# Attributes read from metadata alone; guards on the tensor keep them valid.
METADATA_ATTRS = {"dtype", "device", "layout", "requires_grad", "is_cuda", "is_sparse", "is_quantized",
                  "is_meta", "is_mkldnn", "is_nested", "ndim", "is_cpu", "itemsize"}
# Attributes that are graph ops (views).
VIEW_ATTRS = {"T", "mT", "H", "mH", "real", "imag"}
# Methods answered from metadata alone.
METADATA_METHODS = {"size", "dim", "ndimension", "numel", "nelement", "stride", "is_contiguous",
                    "element_size", "is_floating_point", "is_complex", "get_device", "storage_offset",
                    "is_signed", "__len__", "is_inference"}
# Methods whose result depends on data, leave the graph, or touch autograd state.
UNSUPPORTED_METHODS = {"item", "tolist", "numpy", "backward", "register_hook", "retain_grad",
                       "data_ptr", "untyped_storage", "storage", "__bool__", "__index__", "__int__",
                       "__float__", "requires_grad_", "share_memory_", "record_stream", "apply_", "map_",
                       "pin_memory", "__array__", "__reduce_ex__", "__setstate__", "set_", "resize_",
                       "_backward_hooks", "register_post_accumulate_grad_hook", "detach_"}

# Methods another module implements: name -> handler(tx, tensor, args, kwargs)
# (Tensor.numpy: capture/variables/numpy_arrays.py).
EXTRA_METHODS: dict = {}


class TensorVariable(VariableTracker):
    def __init__(self, node, fake, source=None, class_type=torch.Tensor):
        self.node = node
        self.fake = fake
        self.source = source
        self.class_type = class_type
        self.bound_parameter = False  # see OutputGraph.tensor_input

    def _metadata_read(self, tx):
        if self.bound_parameter:
            tx.output.guard_parameter_metadata(tx, self)

    def python_type(self):
        return self.class_type

    def truth(self, tx):
        raise Unsupported("data-dependent control flow: truth value of a tensor")

    def iter_items(self, tx):
        if self.fake.dim() == 0:
            raise Unsupported("iteration over a 0-d tensor")
        parts = tx.output.call_graph(tx, "call_method", "unbind", [self], {})
        return parts.iter_items(tx)

    def var_getattr(self, tx, name):
        if name in METADATA_ATTRS or name == "shape":
            self._metadata_read(tx)
        if name in METADATA_ATTRS:
            return ConstantVariable(getattr(self.fake, name))
        if name == "shape":
            return TupleVariable([builder.wrap_constant_result(s) for s in self.fake.shape], tuple_type=torch.Size)
        if name in VIEW_ATTRS:
            return tx.output.call_graph(tx, "call_function", builtins.getattr, [self, ConstantVariable(name)], {})
        if name in ("grad_fn", "is_leaf") and not self.fake.requires_grad:
            self._metadata_read(tx)  # requires_grad is guarded (inputs) or known (graph values)
            return ConstantVariable(None if name == "grad_fn" else True)
        if name in ("grad", "data", "grad_fn", "_version", "is_leaf", "_base", "names"):
            raise Unsupported(f"tensor attribute .{name}")
        if callable(getattr(torch.Tensor, name, None)):
            return TensorMethodVariable(self, name)
        if not hasattr(torch.Tensor, name):
            raise MissingAttribute(f"'Tensor' object has no attribute {name!r}")
        raise Unsupported(f"tensor attribute .{name}")

    def has_attribute(self, tx, name: str) -> bool:
        """``hasattr(tensor, name)``: the class's attributes answered on the fake tensor,
        instance attributes from the real input's ``__dict__`` (its keys guarded)."""
        if hasattr(torch.Tensor, name):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # e.g. .grad of a non-leaf
                    getattr(self.fake, name)
            except AttributeError:
                return False
            except Exception as e:  # noqa: BLE001 - hasattr would raise it: not traced
                raise Unsupported(f"hasattr(tensor, {name!r}) raises {type(e).__name__}") from None
            return True
        if self.source is None:
            return False  # a tensor made in the graph has no instance attributes
        real = tx.output.input_example(self)
        tx.output.add_guard(tx, GuardKind.DICT_KEYS, AttrSource(self.source, "__dict__"), tuple(vars(real)))
        return name in vars(real)

    def call_method(self, tx, name, args, kwargs):
        if name in EXTRA_METHODS:
            return EXTRA_METHODS[name](tx, self, args, kwargs)
        if name in UNSUPPORTED_METHODS:
            raise Unsupported(f"Tensor.{name}() needs real data or autograd state")
        const_args = all(a.is_python_constant() for a in args) and all(v.is_python_constant() for v in kwargs.values())
        if name in METADATA_METHODS and const_args:
            self._metadata_read(tx)
            value = getattr(self.fake, name)(*[a.as_python_constant() for a in args],
                                             **{k: v.as_python_constant() for k, v in kwargs.items()})
            return builder.wrap_constant_result(value)
        if name == "type" and not args and not kwargs:
            self._metadata_read(tx)
            return ConstantVariable(_legacy_type_name(self.fake))
        if name == "__getitem__":
            return tx.call_builtin(operator.getitem, self, args[0])
        return tx.output.call_graph(tx, "call_method", name, [self] + list(args), kwargs)

    def __repr__(self):
        return f"TensorVariable({self.node.name}, {tuple(self.fake.shape)}, {self.fake.dtype})"


def _legacy_type_name(fake) -> str:
    names = {torch.float32: "FloatTensor", torch.float64: "DoubleTensor", torch.float16: "HalfTensor",
             torch.bfloat16: "BFloat16Tensor", torch.int64: "LongTensor", torch.int32: "IntTensor",
             torch.int16: "ShortTensor", torch.int8: "CharTensor", torch.uint8: "ByteTensor",
             torch.bool: "BoolTensor"}
    if fake.dtype not in names:
        raise Unsupported(f"Tensor.type() for {fake.dtype}")
    prefix = "torch.cuda." if fake.device.type == "cuda" else "torch."
    return prefix + names[fake.dtype]


class TensorMethodVariable(VariableTracker):
    """``x.method`` before it is called."""

    def __init__(self, tensor: TensorVariable, name: str):
        self.tensor = tensor
        self.name = name

    def children(self):
        return (self.tensor,)

    def call(self, tx, args, kwargs):
        return self.tensor.call_method(tx, self.name, args, kwargs)

    def reconstruct(self, cg):
        return f"{cg.reconstruct(self.tensor)}.{self.name}"

    def __repr__(self):
        return f"TensorMethodVariable({self.name})"


@builder.wraps(builder.Order.TENSOR, lambda v: isinstance(v, torch.Tensor))
def _wrap_tensor(tx, value, source):
    if source is None:
        raise Unsupported("tensor reached without a source")
    try:
        value.grad_fn  # noqa: B018 - raises for a tensor autograd forbids reading
    except RuntimeError:
        # A view made under no_grad whose base was changed in place with grad on: eager
        # raises only if the program uses it, so the frame runs as is.
        raise Unsupported(f"{source.name()}: a view made under no_grad whose base was modified in place "
                          "(autograd forbids reading it)") from None
    return tx.output.tensor_input(tx, source, value)

"""The loop-level IR: buffers, scalar expressions, tensor values and computations.

* ``Buffer`` — memory the generated code reads or writes: a graph input, a lifted
  parameter, a constant, a kernel's output, an extern call's output.
* ``Expr`` — the value of one element, as a tree of ``Load(buffer, index, predicate)``,
  ``Const``, ``IndexValue`` (an index used as data: arange, masks) and ``Op(name, args)``;
  ``dtype`` is the *compute* dtype (float16/bfloat16 load as float32 and are rounded
  back on store). Trees are immutable, hash-consed by structure (shared subtrees are
  emitted once) and may carry a ``label``: the FX node they implement, used to name the
  temporary in the generated kernel. A load's index may contain ``Gathered`` atoms
  (an index read from memory) and a load may carry a ``predicate``: it reads only where
  the predicate holds and gives 0 elsewhere (``cat`` reads each input only in its range).
  ``IndexCheck`` wraps the result of an indirect load with the condition that its
  indices are in range; the kernel flags where they are not (``codegen.lower.indirect``).
* ``TensorValue`` — what a lowering returns: a shape, a storage dtype and
  ``load(index) -> Expr``. ``Lazy`` values are functions of the index (pointwise ops and
  views compose without touching memory); ``BufferValue`` reads a strided buffer.
* ``Computation`` — a realized value: a pointwise or reduction loop nest writing one
  buffer. The scheduler fuses computations into kernels.
"""
from __future__ import annotations

import dataclasses
from typing import Callable, Sequence

import torch

from codegen.ir import indexing, sizes
from codegen.ir.indexing import Index


def unique_name(base: str, taken: set) -> str:
    """``base``, or ``base_1``, ``base_2``, ... whichever is free; the name is then taken."""
    name, n = base, 1
    while name in taken:
        name = f"{base}_{n}"
        n += 1
    taken.add(name)
    return name


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Half types are computed in float32, like eager's CUDA kernels do internally."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


# --------------------------------------------------------------------------- buffers


@dataclasses.dataclass(eq=False)
class Buffer:
    name: str
    shape: tuple
    stride: tuple
    dtype: torch.dtype
    kind: str                       # "input", "constant", "computed", "extern"

    @property
    def numel(self) -> int:
        n = 1
        for s in self.shape:
            n *= s
        return n

    @property
    def extent(self) -> int:
        """Elements from the first to one past the last addressed element."""
        if self.numel == 0:
            return 0
        return 1 + sum((s - 1) * st for s, st in zip(self.shape, self.stride))

    @property
    def nbytes(self) -> int:
        return self.numel * self.dtype.itemsize

    def __repr__(self):
        return f"Buffer({self.name}, {list(self.shape)}, stride={list(self.stride)}, {self.dtype})"


# --------------------------------------------------------------------------- expressions


class Expr:
    __slots__ = ("dtype", "label", "_hash")

    def _fields(self):
        raise NotImplementedError

    def __eq__(self, other):
        if self is other:
            return True
        return type(self) is type(other) and self._hash == other._hash and self._fields() == other._fields()

    def __hash__(self):
        return self._hash

    def children(self) -> tuple:
        return ()


class Load(Expr):
    """``buffer[index]``; with a ``predicate`` (a bool Expr) only where it holds, else 0."""
    __slots__ = ("buffer", "index", "predicate")

    def __init__(self, buffer: Buffer, index: Index, predicate: Expr | None = None):
        self.buffer, self.index, self.predicate = buffer, index, predicate
        self.dtype = compute_dtype(buffer.dtype)
        self.label = None
        self._hash = hash(("load", buffer.name, index, predicate))

    def _fields(self):
        return (self.buffer.name, self.index, self.predicate)

    def children(self):
        """The values the address and the predicate are computed from."""
        found = tuple(g.value for g in self.index.gathered())
        return found + ((self.predicate,) if self.predicate is not None else ())

    def is_direct(self) -> bool:
        """An address from loop indices alone, read unconditionally."""
        return self.predicate is None and not self.index.gathered()

    def __repr__(self):
        extra = f" if {self.predicate!r}" if self.predicate is not None else ""
        return f"load({self.buffer.name}, {self.index}{extra})"


class Const(Expr):
    __slots__ = ("value",)

    def __init__(self, value, dtype: torch.dtype):
        if dtype.is_floating_point:
            value = float(value)
        elif dtype is torch.bool:
            value = bool(value)
        else:
            value = int(value)
        self.value, self.dtype, self.label = value, compute_dtype(dtype), None
        self._hash = hash(("const", repr(value), self.dtype))

    def _fields(self):
        return (repr(self.value), self.dtype)

    def __repr__(self):
        return repr(self.value)


class IndexValue(Expr):
    """An index expression used as a value (``arange``, ``tril`` masks). ``guarded``: only
    used where a predicate holds (a ``cat`` input), so it may be out of range elsewhere."""
    __slots__ = ("index", "guarded")

    def __init__(self, index: Index, dtype: torch.dtype, guarded: bool = False):
        self.index, self.dtype, self.label, self.guarded = index, dtype, None, guarded
        self._hash = hash(("index", index, dtype))

    def _fields(self):
        return (self.index, self.dtype)

    def children(self):
        return tuple(g.value for g in self.index.gathered())

    def __repr__(self):
        return f"index({self.index})"


class Op(Expr):
    """``name`` is a key of ``codegen.ops.OPS``; ``attrs`` holds non-Expr parameters."""
    __slots__ = ("name", "args", "attrs")

    def __init__(self, name: str, args: Sequence[Expr], dtype: torch.dtype, attrs: tuple = (), label=None):
        self.name, self.args, self.attrs = name, tuple(args), tuple(attrs)
        self.dtype, self.label = dtype, label
        self._hash = hash((name, self.args, self.attrs, dtype))

    def _fields(self):
        return (self.name, self.args, self.attrs, self.dtype)

    def children(self):
        return self.args

    def __repr__(self):
        extra = [repr(a) for a in self.attrs]
        return f"{self.name}({', '.join([repr(a) for a in self.args] + extra)})"


class IndexCheck(Expr):
    """``value`` — an indirect load's result — computed through indices that must be in
    range: every bool Expr in ``tests`` (see ``in_range``) must hold wherever ``value`` is
    computed and ``predicate`` (a bool Expr, or None: everywhere) holds. The kernel flags
    the lanes where one does not and the wrapper raises "index out of range in ``what``"
    (``codegen.lower.indirect`` explains why)."""
    __slots__ = ("value", "tests", "predicate", "what")

    def __init__(self, value: Expr, tests: Sequence[Expr], what: str, predicate: Expr | None = None):
        self.value, self.tests, self.predicate, self.what = value, tuple(tests), predicate, what
        self.dtype, self.label = value.dtype, None
        self._hash = hash(("index_check", value, self.tests, predicate, what))

    def _fields(self):
        return (self.value, self.tests, self.predicate, self.what)

    def children(self):
        return (self.value,) + self.tests + ((self.predicate,) if self.predicate is not None else ())

    def __repr__(self):
        extra = f" if {self.predicate!r}" if self.predicate is not None else ""
        return f"check({self.value!r}, {list(self.tests)!r}{extra})"


def size_value(n, dtype: torch.dtype) -> Expr:
    """A size used as data (a mean's count): a constant if static, else the size's value
    (an ``IndexValue`` of the symbolic constant, printed as its expression) converted."""
    if sizes.is_static(n):
        return Const(n, dtype)
    return Op("to", [IndexValue(indexing.const(n), torch.int64)], dtype, (dtype,))


def in_range(atoms) -> list:
    """One bool ``in_range`` Op per ``Gathered`` atom: true where it is in ``0 .. size-1``.
    A load's mask and its op's ``IndexCheck`` share them (hash-consing)."""
    return [Op("in_range", [g.value], torch.bool, (g.size,)) for g in atoms]


def walk(expr: Expr):
    """Every node of an expression DAG once, children first."""
    seen, order, stack = set(), [], [(expr, False)]
    while stack:
        node, expanded = stack.pop()
        if id(node) in seen:
            continue
        if expanded:
            seen.add(id(node))
            order.append(node)
            continue
        stack.append((node, True))
        for child in node.children():
            if id(child) not in seen:
                stack.append((child, False))
    return order


def loads(expr: Expr) -> list:
    return [e for e in walk(expr) if isinstance(e, Load)]


def loop_variables(expr: Expr) -> set:
    """The loop variables (``indexing.Var``) an expression depends on."""
    found = set()
    for node in walk(expr):
        if isinstance(node, (Load, IndexValue)):
            found |= node.index.variables()
    return found


def gathered(value: Expr, size: int) -> Index:
    """An index read from memory: ``value`` (an integer Expr, already wrapped into
    ``0 .. size-1`` when in range) as an index atom."""
    return Index({indexing.Gathered(value, size, loop_variables(value)): 1})


def guarded(expr: Expr, predicate: Expr) -> Expr:
    """``expr`` with every load it makes (addresses included) predicated on ``predicate``:
    where it is false nothing is read (the loads give 0 and the value is garbage that the
    caller must select away)."""
    memo = {}

    def index_of(index: Index) -> Index:
        found = index.gathered()
        if not found:
            return index
        mapping = {}
        for g in found:
            value = visit(g.value)
            mapping[g] = Index({indexing.Gathered(value, g.size, loop_variables(value)): 1})
        return index.substitute(mapping)

    def visit(node):
        done = memo.get(id(node))
        if done is not None:
            return done
        if isinstance(node, Load):
            pred = predicate if node.predicate is None else Op("and", [node.predicate, predicate], torch.bool)
            out = Load(node.buffer, index_of(node.index), pred)
        elif isinstance(node, Op):
            out = Op(node.name, [visit(a) for a in node.args], node.dtype, node.attrs, node.label)
        elif isinstance(node, IndexValue):
            out = IndexValue(index_of(node.index), node.dtype, guarded=True)
        elif isinstance(node, IndexCheck):     # indices used only where the predicate holds
            pred = predicate if node.predicate is None else Op("and", [node.predicate, predicate], torch.bool)
            out = IndexCheck(visit(node.value), [visit(t) for t in node.tests], node.what, pred)
        else:
            out = node
        memo[id(node)] = out
        return out
    return visit(expr)


# --------------------------------------------------------------------------- tensor values


class TensorValue:
    shape: tuple
    dtype: torch.dtype

    def load(self, index: list) -> Expr:
        raise NotImplementedError

    @property
    def ndim(self) -> int:
        return len(self.shape)


class Lazy(TensorValue):
    """A value computed on demand from its index: ``fn(index) -> Expr``."""

    def __init__(self, shape, dtype, fn: Callable[[list], Expr]):
        self.shape, self.dtype, self.fn = tuple(sizes.of(s) for s in shape), dtype, fn
        self._memo: dict = {}

    def load(self, index):
        # Memoized: a value recomputed in several consumers is loaded once per distinct
        # index, so diamonds of recomputed values do not build the same tree repeatedly.
        key = tuple(index)
        found = self._memo.get(key)
        if found is None:
            found = self._memo[key] = self.fn(list(index))
        return found


class BufferValue(TensorValue):
    """A strided window onto a buffer (the buffer itself, or a view of it)."""

    def __init__(self, buffer: Buffer, shape=None, stride=None, offset: int = 0):
        self.buffer = buffer
        self.shape = tuple(buffer.shape if shape is None else shape)
        self.stride = tuple(buffer.stride if stride is None else stride)
        self.offset = offset
        self.dtype = buffer.dtype

    def load(self, index):
        return Load(self.buffer, indexing.strided_offset(index, self.stride, self.offset))

    def is_whole_buffer(self) -> bool:
        return self.shape == self.buffer.shape and self.stride == self.buffer.stride and self.offset == 0


def fresh_index(shape, prefix="i") -> list:
    """One variable per dimension (size-1 dimensions get the constant 0)."""
    return [indexing.const(0) if s == 1 else indexing.var(f"{prefix}{d}", s) for d, s in enumerate(shape)]


def as_buffer_view(value: TensorValue):
    """``value`` as a strided view of a buffer if it is one (views of buffers are), else None."""
    if isinstance(value, BufferValue):
        return value
    index = fresh_index(value.shape)
    expr = value.load(index)
    if not isinstance(expr, Load) or not expr.is_direct() or expr.buffer.dtype != value.dtype:
        return None
    coefs = expr.index.affine_coefficients()
    if coefs is None:
        return None
    stride = []
    for idx in index:
        if idx.is_constant():
            stride.append(0)
            continue
        v = next(iter(idx.terms))
        stride.append(coefs.pop(v, 0))
    if coefs or not sizes.le(0, expr.index.const) or any(not sizes.le(0, st) for st in stride):
        return None                                     # torch has no negative strides
    return BufferValue(expr.buffer, value.shape, tuple(stride), expr.index.const)


# --------------------------------------------------------------------------- computations


def reduction_output_index(full_index: list, reduced_dims, keepdim: bool) -> list:
    """Index into a reduction's output for an element of its input."""
    out = []
    for d, idx in enumerate(full_index):
        if d not in reduced_dims:
            out.append(idx)
        elif keepdim:
            out.append(indexing.const(0))
    return out


@dataclasses.dataclass(eq=False)
class MatmulTemplate:
    """``out[b, m, n] = sum over k of a[b, m, k] * b[b, k, n]`` (a 2-D ``mm`` has no ``b``).

    ``a`` and ``b`` are tensor values of shape (batch, m, k) and (batch, k, n): views and
    cheap pointwise producers are read through them inside the kernel (prologue fusion).
    The products accumulate in float32 from operands rounded to ``operand_dtype``
    (what ``tl.dot`` takes: tensor cores for half types). ``sizes`` is the one place the
    template's extents live (batch, m, n, k)."""
    a: TensorValue
    b: TensorValue
    sizes: tuple
    operand_dtype: torch.dtype

    extra_outputs = ()               # buffers written besides the computation's own

    def operand_loads(self, b, m, n, k) -> tuple:
        """The two operand values at (b, m, k) and (b, k, n)."""
        return self.a.load([b, m, k]), self.b.load([b, k, n])


@dataclasses.dataclass(eq=False)
class AttentionTemplate:
    """``out[b, m, n] = sum over j of softmax_j(score(q @ kᵀ)[b, m, j]) * v[b, j, n]``.

    ``q`` (batch, m, head_dim), ``k`` (batch, head_dim, keys), ``v`` (batch, keys, n)
    are read through views and cheap producers (prologue). ``score(index)`` is the
    pointwise chain between the product and the softmax (scale, masks) as an Expr in
    which ``Load(marker, ...)`` stands for the tile of scores. ``safe``: a row whose
    scores are all -inf gives 0 (SDPA) instead of NaN. ``sizes`` is (batch, m, n, keys)
    (the one place the extents live, as for ``MatmulTemplate``). ``lse``: a float32
    (batch, m) buffer the kernel also writes, each row's logsumexp of the scores (-inf
    for a row that sees no key): what a training step saves for the backward."""
    q: TensorValue
    k: TensorValue
    v: TensorValue
    sizes: tuple
    head_dim: int
    operand_dtype: torch.dtype
    score: Callable[[list], Expr]
    marker: Buffer
    safe: bool
    lse: Buffer | None = None
    causal: bool = False        # the score masks key j > query i: key blocks past the diagonal are skipped

    @property
    def extra_outputs(self) -> tuple:
        return () if self.lse is None else (self.lse,)

    def describe_loads(self, b, m, n, d, j) -> Expr:
        """Every value the template reads, as one Expr (what a scheduler asks about)."""
        return Op("attention", [self.q.load([b, m, d]), self.k.load([b, d, j]), self.v.load([b, j, n]),
                                self.score([b, m, j])], torch.float32)


@dataclasses.dataclass(eq=False)
class AttentionBackwardTemplate:
    """One of flash attention's two backward kernels (``capture::flash_attention_backward``,
    see ``fx_graph.attention_op``). ``part`` "dq": programs over query blocks write dq
    (the computation's buffer); "dkv": programs over key blocks write dk (the buffer) and
    dv (``extra_outputs``). ``operands`` maps q, k, v, do (the output's gradient), out,
    lse and optionally mask to strided 4-d (lse: 3-d) windows of buffers, read by address
    (the kernel's loads are fixed). ``sizes`` (batch * heads, rows, width, loop length)
    is the computation's space: (B*H, M, D, N) for dq, (B*H, N, D, M) for dkv."""
    part: str
    operands: dict
    heads: int
    is_causal: bool
    scale: float
    sizes: tuple
    extra_outputs: tuple = ()

    def describe_loads(self) -> Expr:
        """Every buffer the kernel reads, as one Expr (what a scheduler asks about)."""
        return Op("attention_backward", [Load(bv.buffer, indexing.const(bv.offset))
                                         for bv in self.operands.values()], torch.float32)


@dataclasses.dataclass(eq=False)
class ScatterAdd:
    """A pointwise computation's store as ``target[at(index)] += value`` (atomic add:
    ``index_put`` with ``accumulate``, an embedding's backward). The computation
    iterates over the values (its own ``buffer`` is never written); ``target`` is a buffer
    an earlier kernel wrote (the base), and the scatter must run after it."""
    target: Buffer
    at: Callable[[list], Index]


@dataclasses.dataclass(eq=False)
class Computation:
    """A realized loop nest writing ``buffer``.

    Pointwise: ``body(index over shape)``. Reduction: ``body(index over input_shape)``
    combined with ``reduction`` over ``reduced_dims``; the output keeps the other
    dimensions (and size-1 dimensions for the reduced ones when ``keepdim``).
    Template: ``template`` (a ``MatmulTemplate``) computes the value; ``body`` gives its
    operands as ``Op("dot", [a, b])`` over a summed variable ``k``, for what only asks
    which buffers a computation reads.
    """
    buffer: Buffer
    body: Callable[[list], Expr]
    fx_nodes: list
    input_shape: tuple = ()
    reduced_dims: tuple = ()
    reduction: str | None = None          # "sum", "prod", "max", "min"
    keepdim: bool = False
    template: MatmulTemplate | AttentionTemplate | AttentionBackwardTemplate | None = None
    scatter: ScatterAdd | None = None

    @property
    def name(self) -> str:
        return self.buffer.name

    @property
    def extra_outputs(self) -> tuple:
        """Buffers a template writes besides ``buffer`` (an attention's logsumexp, dv)."""
        return () if self.template is None else tuple(self.template.extra_outputs)

    @property
    def is_reduction(self) -> bool:
        return self.reduction is not None

    def output_index(self, full_index: list) -> list:
        """Index into the output buffer for an element of the reduction's input space."""
        return reduction_output_index(full_index, self.reduced_dims, self.keepdim)

    def store_index(self, index: list) -> Index:
        if self.scatter is not None:
            return self.scatter.at(index)
        if self.is_reduction:
            index = self.output_index(index)
        return indexing.strided_offset(index, self.buffer.stride)

    def describe(self) -> str:
        """The loop nest as text (the ``loop IR`` dump)."""
        if not self.is_reduction:
            index = fresh_index(self.buffer.shape)
            return f"{self.name}[{', '.join(map(str, index))}] = {self.body(index)!r}"
        index = fresh_index(self.input_shape)
        for d in self.reduced_dims:
            if self.input_shape[d] != 1:
                index[d] = indexing.var(f"r{d}", self.input_shape[d])
        out = self.output_index(index)
        reduced = ", ".join(str(index[d]) for d in self.reduced_dims)
        return (f"{self.name}[{', '.join(map(str, out))}] = {self.reduction} over {reduced or '()'} "
                f"of {self.body(index)!r}")

"""The scheduler: group computations into kernels, then order kernels and extern calls.

A kernel iterates over an *iteration space*:

* pointwise — one flat index ``x`` over ``numel`` elements; each member reads its own
  element at ``unflatten(x)`` in the memory order of its buffer;
* rows — ``x`` over the kept elements of a reduction and ``r`` over the reduced ones.
  Members are reductions over that space, *full* pointwise computations (the
  reduction's input shape: ``exp`` in softmax) and *row* pointwise computations (the
  kept shape: ``mean / n`` in layer norm);
* template — ``b``, ``m``, ``n`` over a template's output (``MatmulTemplate``,
  ``AttentionTemplate``): the template computes a tile, and pointwise computations of the output's shape that read
  it join as its *epilogue* (bias, activation, residual add, cast). A template never
  joins another kernel, and reductions do not join a template.

Computations are visited in graph order; one joins the kernel of a producer when

1. its shape maps onto the kernel's space (a pointwise kernel becomes a row kernel when
   the first reduction joins),
2. every read of another member is at exactly the index that member writes for the
   same iteration — the value is then in a register of the same program; any other
   read would need another program's result, so it is refused,
3. no path leaves the kernel and comes back (through an extern call or another kernel).

Producer kernels are tried first, then *siblings*: kernels reading the same buffers
(mean and variance of one tensor share a single read), then, for a reduction, row
kernels over exactly its space that share nothing with it (*horizontal* fusion: a
layer's bias and norm-weight gradients are column sums over the same rows, one launch).

Every refusal is recorded as a ``FusionDecision`` (kind, where, reason). A member's
buffer is stored only if something outside the kernel reads it (or it is a graph
output); otherwise it never touches memory.
"""
from __future__ import annotations

import dataclasses

from codegen import config
from codegen.ir import indexing, sizes
from codegen.lower.graph import ExternCall, GraphLowering
from codegen.lower.registry import Unlowerable
from codegen.schedule import epilogue, naming
from codegen.ir import AttentionBackwardTemplate, AttentionTemplate, Computation, loads


@dataclasses.dataclass(frozen=True)
class Space:
    xnumel: int
    rnumel: int = 1
    x_dims: tuple = ()       # merged kept sizes (row spaces)
    r_dims: tuple = ()       # merged reduced sizes
    kinds: tuple = ()        # per merged dim, "x" or "r", in input order
    sizes: tuple = ()
    matmul: tuple = ()       # (batch, m, n, k) of a template's output space
    template: str = ""       # "matmul", "attention" or "attention_backward" (with ``matmul``)

    @property
    def is_rows(self) -> bool:
        return bool(self.kinds)

    def matmul_variables(self) -> list:
        """b, m, n (b is 0 when there is one batch)."""
        batch, m, n, _ = self.matmul
        return [indexing.var("b", batch) if varies(batch) else indexing.const(0), indexing.var("m", m),
                indexing.var("n", n)]

    def variables(self):
        x = indexing.var("x", self.xnumel) if varies(self.xnumel) else indexing.const(0)
        r = indexing.var("r", self.rnumel) if varies(self.rnumel) else indexing.const(0)
        return x, r


def varies(size) -> bool:
    """A loop over ``size`` needs a variable (a symbolic size does: it is at least 2)."""
    return not sizes.is_static(size) or size > 1


@dataclasses.dataclass(frozen=True)
class FusionDecision:
    kind: str        # "refused"
    where: str       # "<node> -> kernel of <node>"
    reason: str


@dataclasses.dataclass(eq=False)
class Kernel:
    """Computations fused over one iteration space. When the scheduler returns it,
    ``placed`` maps each member to its index and role and ``name`` is final."""
    members: list
    space: Space
    stored: set = dataclasses.field(default_factory=set)
    placed: dict = dataclasses.field(default_factory=dict)
    name: str = ""
    refusals: list = dataclasses.field(default_factory=list)   # FusionDecisions of its members (kernel header)
    after: list = dataclasses.field(default_factory=list)      # items it must follow beyond its reads (a scatter's base)

    @property
    def fx_nodes(self) -> list:
        return [name for m in self.members for name in m.fx_nodes]


def _product(values) -> int:
    n = 1
    for s in values:
        n *= s
    return n


def _merged(pairs):
    """Adjacent dims of the same kind merged; size-1 dims dropped."""
    out = []
    for size, kind in pairs:
        if size == 1:
            continue
        if out and out[-1][1] == kind:
            out[-1] = (out[-1][0] * size, kind)
        else:
            out.append((size, kind))
    return out


def reduction_space(comp: Computation) -> Space:
    # A reduction over one element (every input dim 1: ``x.sum()`` of a 1-element
    # tensor) keeps one reduced dim of size 1, so its space is still a row space.
    pairs = _merged((s, "r" if d in comp.reduced_dims else "x") for d, s in enumerate(comp.input_shape)) or [(1, "r")]
    x_dims = tuple(s for s, k in pairs if k == "x")
    r_dims = tuple(s for s, k in pairs if k == "r")
    return Space(_product(x_dims), _product(r_dims), x_dims, r_dims,
                 tuple(k for _, k in pairs), tuple(s for s, _ in pairs))


def pointwise_space(comp: Computation) -> Space:
    return Space(comp.buffer.numel)


def space_of(comp: Computation) -> Space:
    """The iteration space ``comp`` has alone."""
    if comp.template is not None:
        kind = {AttentionTemplate: "attention", AttentionBackwardTemplate: "attention_backward"}.get(
            type(comp.template), "matmul")
        return Space(comp.buffer.numel, matmul=tuple(comp.template.sizes), template=kind)
    return reduction_space(comp) if comp.is_reduction else pointwise_space(comp)


def _matmul_member_index(comp: Computation, space: Space):
    variables = space.matmul_variables()
    if comp.template is not None:
        if tuple(comp.template.sizes) != space.matmul:
            return None
        return "template", (variables if len(comp.buffer.shape) == 3 else variables[1:])
    if comp.is_reduction or comp.buffer.numel != space.xnumel:
        return None
    extents = [s for s in space.matmul[:3] if s != 1]
    groups = _group(comp.buffer.shape, extents)
    if groups is None:
        return None
    return "full", _index_from_groups(comp.buffer.shape, groups, [v for v in variables if not v.is_constant()])


# --------------------------------------------------------------------------- member indexing


def _group(shape, targets):
    """Split ``shape``'s non-1 dims into consecutive runs whose products are ``targets``."""
    dims = [d for d, s in enumerate(shape) if s != 1]
    groups, pos = [], 0
    for target in targets:
        run, prod = [], 1
        while pos < len(dims) and _short_of(prod, target):
            run.append(dims[pos])
            prod *= shape[dims[pos]]
            pos += 1
        if prod != target:
            return None
        groups.append(run)
    return groups if pos == len(dims) else None


def _short_of(prod, target) -> bool:
    """Whether a run of dims must take another dim to reach ``target`` (symbolic sizes
    match only as equal expressions)."""
    if sizes.is_static(prod) and sizes.is_static(target):
        return prod < target
    return prod != target


def _components(flat, dims):
    return indexing.unflatten(flat, list(dims)) if dims else []


def _index_from_groups(shape, groups, components):
    index = [indexing.const(0)] * len(shape)
    for run, comp in zip(groups, components):
        for d, idx in zip(run, indexing.unflatten(comp, [shape[d] for d in run])):
            index[d] = idx
    return index


def member_index(comp: Computation, space: Space):
    """(role, index over the member's loop shape) in ``space``, or None if it does not map.

    role is "full" (one value per (x, r)), or "row" (one value per x), or "template"."""
    if space.matmul:
        return _matmul_member_index(comp, space)
    if comp.template is not None:
        return None
    x, r = space.variables()
    if not space.is_rows:
        if comp.is_reduction or comp.buffer.numel != space.xnumel:
            return None
        shape, stride = comp.buffer.shape, comp.buffer.stride
        order = sorted(range(len(shape)), key=lambda d: -sizes.hint(stride[d]))        # memory order
        parts = indexing.unflatten(x, [shape[d] for d in order])
        index = [None] * len(shape)
        for d, idx in zip(order, parts):
            index[d] = idx
        return "full", index
    xs, rs = _components(x, space.x_dims), _components(r, space.r_dims)
    if comp.is_reduction:
        if reduction_space(comp) != space:
            return None
        pairs = _merged((s, "r" if d in comp.reduced_dims else "x") for d, s in enumerate(comp.input_shape))
        groups = _group(comp.input_shape, [s for s, _ in pairs])
        comps, xi, ri = [], iter(xs), iter(rs)
        for _, kind in pairs:
            comps.append(next(xi) if kind == "x" else next(ri))
        return "full", _index_from_groups(comp.input_shape, groups, comps)
    shape = comp.buffer.shape
    groups = _group(shape, space.sizes)
    if groups is not None:
        xi, ri = iter(xs), iter(rs)
        comps = [next(xi) if kind == "x" else next(ri) for kind in space.kinds]
        return "full", _index_from_groups(shape, groups, comps)
    groups = _group(shape, space.x_dims)
    if groups is not None:
        return "row", _index_from_groups(shape, groups, xs)
    return None


@dataclasses.dataclass
class Placed:
    """A member placed in a kernel: its role, loop index, value and store index."""
    comp: Computation
    role: str
    index: list
    store_index: object
    _value: object = None

    def value(self):
        if self._value is None:
            self._value = self.comp.body(self.index)
        return self._value


def place(members, space):
    """{buffer name: Placed} if every member maps and reads members only in-register,
    else (None, reason)."""
    placed = {}
    for comp in members:
        mapped = member_index(comp, space)
        if mapped is None and space.matmul:
            index = epilogue.permuted_index(comp, placed, space.matmul_variables())
            mapped = None if index is None else ("full", index)
        if mapped is None:
            return None, f"{comp.name} does not map onto the kernel's iteration space"
        role, index = mapped
        for load in loads(comp.body(index)):
            producer = placed.get(load.buffer.name)
            if producer is None:
                continue
            if load.index != producer.store_index:
                return None, (f"{comp.name} reads {producer.comp.name} at [{load.index}] "
                              f"but it is written at [{producer.store_index}] (another program's value)")
        placed[comp.name] = Placed(comp, role, index, comp.store_index(index))
    return placed, None


# --------------------------------------------------------------------------- fusion


def _keeps_parallelism(placed: dict, space: Space) -> bool:
    """A row kernel with few rows runs as few programs; elementwise members there are
    only worth it while a row fits one persistent block (see config)."""
    if not space.is_rows or sizes.hint(space.xnumel) >= config.MIN_ROWS_FOR_ELEMENTWISE:
        return True
    if sizes.hint(space.rnumel) <= config.PERSISTENT_MAX_COLS:
        return True
    return not any(p.role == "full" and not p.comp.is_reduction for p in placed.values())


class Scheduler:
    def __init__(self, graph: GraphLowering, fuse: bool = True):
        self.graph = graph
        self.fuse = fuse
        self.decisions: list = []
        self.producer: dict = {}      # buffer name -> scheduler item (Kernel or ExternCall)
        self.items: list = []         # Kernels and ExternCalls, creation order
        self._reads: dict = {}

    def run(self) -> list:
        for node in self.graph.nodes:
            if isinstance(node, ExternCall):
                self.items.append(node)
                for buffer in node.outputs:
                    self.producer[buffer.name] = node
                continue
            mark = len(self.decisions)
            alone = node.template is not None or node.scatter is not None
            kernel = self._fuse_into(node) if self.fuse and not alone else None
            if kernel is None:
                kernel = Kernel([node], space_of(node))
                self.items.append(kernel)
            kernel.refusals += self.decisions[mark:]
            self.producer[node.name] = kernel
            if node.scatter is not None:     # adds into its base's buffer: after the base, before its readers
                target = node.scatter.target.name
                kernel.after = [self.producer[target]] if target in self.producer else []
                self.producer[target] = kernel
            for buffer in node.extra_outputs:        # a template's other outputs (logsumexp, dv)
                self.producer[buffer.name] = kernel
        ordered = self._topological(self.items)
        self._mark_stored(ordered)
        self._finish([item for item in ordered if isinstance(item, Kernel)])
        return ordered

    def _finish(self, kernels) -> None:
        """Place every kernel's members and name the kernel (graph order, unique names)."""
        nodes = list(self.graph.gm.graph.nodes)
        fx_order = {n.name: i for i, n in enumerate(nodes)}
        op_names = {n.name: naming.op_name(n) for n in nodes}
        taken: set = set()
        for kernel in kernels:
            placed, reason = place(kernel.members, kernel.space)
            if placed is None:
                raise Unlowerable(f"scheduler placed an unplaceable kernel: {reason}")
            kernel.placed = placed
            kernel.name = naming.kernel_name(naming.covered_nodes(kernel, placed, fx_order), op_names, taken)

    def reads(self, node) -> set:
        cached = self._reads.get(id(node))
        if cached is None:
            if isinstance(node, ExternCall):
                cached = {bv.buffer.name for bv in node.inputs()}
            else:
                cached = {load.buffer.name for load in loads(node.body(member_index(node, space_of(node))[1]))}
            self._reads[id(node)] = cached
        return cached

    def _item_deps(self, item) -> set:
        members = item.members if isinstance(item, Kernel) else [item]
        deps = set(item.after) if isinstance(item, Kernel) else set()
        for m in members:
            for name in self.reads(m):
                producer = self.producer.get(name)
                if producer is not None and producer is not item:
                    deps.add(producer)
        return deps

    def _fuse_into(self, comp: Computation):
        reads = self.reads(comp)
        producers = []
        for name in reads:
            producer = self.producer.get(name)
            if isinstance(producer, Kernel) and producer not in producers:
                producers.append(producer)
        producers.sort(key=lambda k: -self.items.index(k))
        # Siblings: kernels reading the same buffers over the same space (mean and var
        # of one tensor) — fused, the shared input is read once.
        siblings = [k for k in reversed(self.items) if isinstance(k, Kernel) and k not in producers
                    and not k.space.matmul and any(reads & self.reads(m) for m in k.members)]
        for kernel in producers + siblings + self._horizontal(comp, producers + siblings):
            space = kernel.space
            where = f"{comp.name} -> kernel of {kernel.members[0].name}"
            if space.template == "attention_backward" or any(m.scatter is not None for m in kernel.members):
                self.decisions.append(FusionDecision("refused", where, "an attention backward template or an "
                                                     "atomic scatter takes no other work"))
                continue
            if space.matmul and comp.is_reduction:
                self.decisions.append(FusionDecision("refused", where, "a reduction does not join a matmul "
                                                     "template's epilogue (it would need whole rows of the product)"))
                continue
            if comp.is_reduction and not space.is_rows:
                space = reduction_space(comp)
            placed, reason = place(kernel.members + [comp], space)
            if placed is None:
                self.decisions.append(FusionDecision("refused", where, reason))
                continue
            if not _keeps_parallelism(placed, space):
                self.decisions.append(FusionDecision("refused", where, "elementwise work in a single-program "
                                                     "reduction would lose all parallelism"))
                continue
            if self._creates_cycle(kernel, comp):
                self.decisions.append(FusionDecision("refused", where, "a dependency leaves the kernel and returns"))
                continue
            kernel.members.append(comp)
            kernel.space = space
            return kernel
        return None

    def _horizontal(self, comp, tried) -> list:
        """Row kernels over exactly ``comp``'s reduction space that share nothing with it
        (independent column sums: a layer's bias and norm-weight gradients): one launch,
        the same programs. Only for reductions, whose space is their own."""
        if not comp.is_reduction:
            return []
        space = reduction_space(comp)
        return [k for k in reversed(self.items) if isinstance(k, Kernel) and k not in tried and k.space == space]

    def _creates_cycle(self, kernel, comp) -> bool:
        """Would ``kernel`` + ``comp`` depend on itself through another item?"""
        start = set()
        for name in self.reads(comp):
            producer = self.producer.get(name)
            if producer is not None and producer is not kernel:
                start.add(producer)
        seen, stack = set(), list(start)
        while stack:
            item = stack.pop()
            if item is kernel:
                return True
            if id(item) in seen:
                continue
            seen.add(id(item))
            stack.extend(self._item_deps(item))
        return False

    def _topological(self, items) -> list:
        deps = {id(item): self._item_deps(item) for item in items}
        done, ordered = set(), []
        remaining = list(items)
        while remaining:
            for item in remaining:
                if all(id(d) in done for d in deps[id(item)]):
                    ordered.append(item)
                    done.add(id(item))
                    remaining.remove(item)
                    break
            else:
                raise RuntimeError("scheduler: cyclic dependency between kernels")
        return ordered

    def _mark_stored(self, ordered) -> None:
        needed = {bv.buffer.name for out in self.graph.outputs if out.kind == "buffer" for bv in [out.value]}
        needed |= {source.buffer.name for _, source in self.graph.mutations}
        for item in ordered:
            if isinstance(item, ExternCall):
                needed |= self.reads(item)
            else:
                for m in item.members:
                    outside = self.reads(m) - {other.name for other in item.members}
                    needed |= outside
                    if m.scatter is not None:        # its base is in memory; the scatter always writes
                        needed |= {m.scatter.target.name, m.name}
        for item in ordered:
            if isinstance(item, Kernel):
                item.stored = {m.name for m in item.members if m.name in needed}

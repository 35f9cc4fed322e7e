"""Epilogue members whose shape is a permutation of a matmul template's output.

A template kernel iterates over ``b, m, n``. A pointwise consumer of the product of
the same number of elements usually has the product's shape and maps onto ``b, m, n``
dimension by dimension (``scheduler._matmul_member_index``). Attention and its backward
also copy a product into a permuted layout: ``q = (x @ Wq + bq).view(B, S, H, D)
.permute(0, 2, 1, 3).contiguous()`` reads the ``(B*S, H*D)`` product with its loop
dims in another order. Such a member is indexed here from the load it makes of the
product: that index is a sum of *digits* of the member's loop variables
(``i``, ``i // a``, ``i % e``, ``(i // a) % e``), each times a coefficient. A digit
with coefficient ``c`` is a digit of the template variable ``v`` whose stride divides
``c`` — ``(v // (c / stride_v)) % e`` — and each loop variable is rebuilt from its
digits (``i = sum(a * digit)``). The scheduler's ``place`` then checks, as for every
member, that the load lands exactly on the index the product is written at, so a wrong
guess is refused rather than miscompiled.
"""
from __future__ import annotations

from codegen.ir import fresh_index, indexing, loads, sizes


def permuted_index(comp, placed: dict, variables: list):
    """The loop index of ``comp`` over the template variables ``variables`` (b, m, n
    as Index), or None when its load of an in-kernel product is not a permutation of
    digits."""
    if comp.is_reduction or comp.template is not None:
        return None
    shape = list(comp.buffer.shape)
    loop = fresh_index(shape, prefix="e")
    target = _product_load(comp.body(loop), placed)
    if target is None:
        return None
    load_index, store_index = target
    strides = store_index.affine_coefficients()
    if not strides or store_index.const != 0:
        return None
    by_var = {v.terms and next(iter(v.terms)): v for v in variables if not v.is_constant()}
    # largest stride first (this call's sizes order symbolic strides; place() checks the result)
    template_vars = sorted(((sv, atom) for atom, sv in strides.items() if atom in by_var),
                           key=lambda p: -sizes.hint(p[0]))
    if load_index.const != 0:
        return None
    parts: dict = {}                # loop var name -> [(radix, extent, digit over template vars)]
    for atom, coef in load_index.terms.items():
        digit = _digit(atom)
        if digit is None:
            return None
        name, radix, extent = digit
        mapped = _as_template_digit(coef, extent, template_vars, by_var)
        if mapped is None:
            return None
        parts.setdefault(name, []).append((radix, extent, mapped))
    index = []
    for d, size in enumerate(shape):
        if sizes.is_static(size) and size == 1:
            index.append(indexing.const(0))
            continue
        rebuilt = _rebuild(parts.get(f"e{d}", []), size)
        if rebuilt is None:
            return None
        index.append(rebuilt)
    return index


def _product_load(expr, placed: dict):
    """(load index, its producer's store index) of the first load of a placed member
    written at an affine index (the product itself or a same-shaped epilogue)."""
    for load in loads(expr):
        producer = placed.get(load.buffer.name)
        if producer is not None and producer.store_index.affine_coefficients() is not None:
            return load.index, producer.store_index
    return None


def _digit(atom):
    """(loop var name, radix, extent) of a digit atom of one loop variable, or None."""
    if isinstance(atom, indexing.Var):
        return atom.name, 1, atom.size
    inner, radix = atom.expr, 1
    if isinstance(atom, indexing.FloorDiv):
        if not _is_var(inner):
            return None
        (var, _), = inner.terms.items()
        if sizes.is_static(var.size) and sizes.is_static(atom.divisor):
            return var.name, atom.divisor, -(-var.size // atom.divisor)
        if not sizes.divides(atom.divisor, var.size):
            return None
        return var.name, atom.divisor, sizes.quotient(var.size, atom.divisor)
    if not isinstance(atom, indexing.Mod):
        return None
    if len(inner.terms) == 1 and inner.const == 0:
        (sub, coef), = inner.terms.items()
        if coef == 1 and isinstance(sub, indexing.FloorDiv) and _is_var(sub.expr):
            inner, radix = sub.expr, sub.divisor
    if not _is_var(inner):
        return None
    (var, _), = inner.terms.items()
    return var.name, radix, atom.divisor


def _is_var(expr) -> bool:
    if len(expr.terms) != 1 or expr.const != 0:
        return False
    (atom, coef), = expr.terms.items()
    return coef == 1 and isinstance(atom, indexing.Var)


def _as_template_digit(coef, extent, template_vars, by_var):
    """``(v // (coef / stride_v)) % extent`` for the template variable whose stride
    divides ``coef`` (the largest such stride), or None."""
    for stride, atom in template_vars:
        if sizes.le(stride, coef) and sizes.divides(stride, coef):
            step = sizes.quotient(coef, stride)
            if not sizes.le(step * extent, atom.size):
                return None
            return indexing.mod(indexing.floordiv(by_var[atom], step), extent)
    return None


def _rebuild(pieces, size):
    """``sum(radix * digit)`` when the pieces' radices tile ``[1, size)`` exactly."""
    total, expected = indexing.const(0), 1
    for radix, extent, digit in sorted(pieces, key=lambda p: sizes.hint(p[0])):
        if not sizes.equal(radix, expected):
            return None
        total = total + digit * radix
        expected = sizes.of(radix * extent)
    return total if sizes.equal(expected, size) else None

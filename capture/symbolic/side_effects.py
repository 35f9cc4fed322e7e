"""Mutations of objects that existed before the frame, replayed after the graph.

While tracing, a mutation only changes trackers (later reads in the same trace see
the new value); the rewritten frame then applies the final state to the real
objects, in the order the objects were first mutated, right after the graph runs and
before any graph-break instruction, so each mutation happens once, as in eager.
"""
from __future__ import annotations

import torch

from capture.exc import Unsupported
from capture.variables.dicts import DictVariable
from capture.variables.keys import key_expr


def _plain_setattr(obj) -> bool:
    return type(obj).__setattr__ is object.__setattr__ or isinstance(obj, (torch.nn.Module, type))


class SideEffects:
    def __init__(self):
        self._order: list = []  # ("container", vt) | ("attr", key)
        self._containers: dict[int, object] = {}
        self._attrs: dict[tuple, tuple] = {}  # (id(obj), name) -> (obj, obj_vt, value_vt)
        self._mutables: dict[int, tuple] = {}  # id(real object) -> (object, tracker)

    # ---- one tracker per real mutable object, so every alias sees the same state ----
    def tracked(self, value):
        entry = self._mutables.get(id(value))
        return entry[1] if entry is not None and entry[0] is value else None

    def track(self, value, vt):
        self._mutables[id(value)] = (value, vt)
        return vt

    # ---- recording ----
    def mutated_container(self, vt):
        if id(vt) not in self._containers:
            self._containers[id(vt)] = vt
            self._order.append(("container", vt))

    def store_attr(self, obj, obj_vt, name: str, value_vt):
        if obj_vt.source is None:
            raise Unsupported(f"setting attribute {name!r} on an object without a source")
        key = (id(obj), name)
        if key not in self._attrs:
            self._order.append(("attr", key))
        self._attrs[key] = (obj, obj_vt, value_vt)

    def store_cell(self, box, value_vt):
        key = ("cell", id(box.real_cell))
        if key not in self._attrs:
            self._order.append(("cell", key))
        self._attrs[key] = (box.real_cell, box, value_vt)

    def has_pending_attrs(self, obj) -> bool:
        return any(key[0] == id(obj) and entry[0] is obj for key, entry in self._attrs.items())

    def load_attr(self, obj, name: str):
        entry = self._attrs.get((id(obj), name))
        return entry[2] if entry is not None else None

    def values(self) -> list:
        """Trackers the replay needs (their tensors become graph outputs)."""
        out = []
        for kind, item in self._order:
            out.append(item if kind == "container" else self._attrs[item][2])  # attr or cell value
        return out

    def __bool__(self):
        return bool(self._order)

    # ---- replay ----
    def replay(self, cg) -> list[str]:
        """Statements applying the final state. Every new value is computed before
        anything is changed, since values may be read through the objects mutated."""
        compute, apply = [], []
        for i, (kind, item) in enumerate(self._order):
            temp = f"__capture_effect_{i}"
            if kind == "container":
                target = cg.source_expr(item.source)
                if isinstance(item, DictVariable):
                    body = "{" + ", ".join(f"{key_expr(cg, k)}: {cg.reconstruct(v)}"
                                           for k, v in item.items.items()) + "}"
                    compute.append(f"{temp} = {body}")
                    apply += [f"{target}.clear()", f"{target}.update({temp})"]
                else:
                    compute.append(f"{temp} = [{', '.join(cg.reconstruct(i) for i in item.items)}]")
                    apply += item.replay(target, temp)
            elif kind == "cell":
                _, box, value_vt = self._attrs[item]
                compute.append(f"{temp} = {cg.reconstruct(value_vt)}")
                apply.append(f"{cg.cell_expr(box.source)}.cell_contents = {temp}")
            else:
                obj, obj_vt, value_vt = self._attrs[item]
                compute.append(f"{temp} = {cg.reconstruct(value_vt)}")
                target = cg.source_expr(obj_vt.source)
                if _plain_setattr(obj):
                    apply.append(f"{target}.{item[1]} = {temp}")
                else:  # the traced code ran the class's __setattr__; this is the store it made
                    apply.append(f"{cg.object_ref(object.__setattr__)}({target}, {item[1]!r}, {temp})")
        return compute + apply

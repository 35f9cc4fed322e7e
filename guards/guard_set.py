"""The guards one trace collects, through one small API.

The tracer tells a ``GuardSet`` what it relied on (a value read through a source, a
piece of interpreter state, a builtin used by name, two inputs being or not being the
same tensor, a parameter held by the graph); the set makes the guards. Parameters held
by identity get their metadata guards at ``finish``, when it is known whether any of the
graph ran with grad mode on.
"""
from __future__ import annotations

from guards.guard import Guard, ParameterSpec
from guards.held import Lifeline
from guards.kinds import GuardKind
from guards.sources import GUARD
from guards.state import GLOBAL_HOOKS, entry_state


class GuardSet:
    def __init__(self):
        self.guards: list[Guard] = [GuardKind.GLOBAL_STATE(name, expr, value) for name, expr, value in entry_state()]
        self.held_parameters: list = []  # (source, parameter)
        self.lifeline = Lifeline()  # cut when an object a guard names dies: the entry goes then
        self._global_hooks_guarded = False

    def __iter__(self):
        return iter(self.guards)

    def __len__(self):
        return len(self.guards)

    def add(self, kind: type, source, expected, where: str | None = None):
        """Guard the value read through ``source`` (``kind``: one of ``GuardKind``)."""
        name = source.name()
        self.guards.append(kind(name, source.expr(GUARD), kind.hold(expected, self.lifeline, name),
                                user_line=where, path=source.watch_path()))

    def state_read(self, helper: str, fn_name: str, args: tuple, value, where: str | None = None):
        """Traced code read interpreter state (folded to ``value``): guard it stays so."""
        text = ", ".join(repr(a) for a in args)
        if any(g.kind is GuardKind.GLOBAL_STATE and g.source_name == f"{fn_name}({text})" for g in self.guards):
            return
        self.guards.append(GuardKind.GLOBAL_STATE(f"{fn_name}({text})", f"{helper}({text})", value,
                                                  user_line=where))

    def no_global_hooks(self):
        if not self._global_hooks_guarded:
            self._global_hooks_guarded = True
            self.guards.append(GuardKind.GLOBAL_STATE(*GLOBAL_HOOKS, 0))

    def absent(self, name: str, where: str | None = None):
        """A builtin was used by ``name``: no global of that name may shadow it later."""
        self.guards.append(GuardKind.ABSENT(f"G[{name!r}]", name, name, user_line=where))

    def alias(self, a, b, same: bool, where: str | None = None):
        """Sources ``a`` and ``b`` are (``same``) or are not the same object."""
        self.guards.append(GuardKind.ALIAS(a.name(), a.expr(GUARD), (b.name(), b.expr(GUARD), same),
                                           user_line=where))

    def hold_parameter(self, source, param, where: str | None = None):
        """A parameter the graph relies on (bound into it, or read by a leaf module's
        forward): guarded by identity now (cheap behind the dict watch), by metadata at
        ``finish``."""
        self.add(GuardKind.IDENTITY, source, param, where)
        self.held_parameters.append((source, param))

    def size_relation(self, relation, where: str | None = None):
        """A relation between dynamic sizes (``guards.size_expr.SizeRelation``) the trace
        relied on."""
        first = relation.reads[0][1]
        self.guards.append(GuardKind.SIZE(relation.text(), first.tensor_expr, relation, user_line=where))

    def finish(self, grad_used: bool):
        """Metadata guards of the held parameters: dtype, shape, and requires_grad if any
        part of the graph ran with grad mode on."""
        for source, param in self.held_parameters:
            self.guards.append(GuardKind.PARAMETER(source.name(), source.expr(GUARD),
                                                   ParameterSpec.of(param, grad_used)))

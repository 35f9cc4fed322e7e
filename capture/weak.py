"""Tables keyed by an object's identity that forget an entry when its key dies.

capture's process-wide tables are keyed by code objects, which must be free to die with
their functions. ``weakref.WeakKeyDictionary`` will not do: it compares keys with
``==``, and two distinct code objects compiled from the same source are equal.
"""
from __future__ import annotations

import weakref


class WeakIdDict:
    """``key -> value`` by ``key``'s identity, holding ``key`` weakly (``value`` strongly:
    it must not refer back to ``key``, or the key never dies). ``on_forget(value)`` runs
    when a key dies."""

    __slots__ = ("_data", "_on_forget")

    def __init__(self, on_forget=None):
        self._data: dict[int, tuple] = {}  # id(key) -> (weakref to key, value)
        self._on_forget = on_forget

    def __setitem__(self, key, value) -> None:
        data, key_id, on_forget = self._data, id(key), self._on_forget

        def forget(ref):
            item = data.get(key_id)
            if item is not None and item[0] is ref:
                del data[key_id]
                if on_forget is not None:
                    on_forget(item[1])
        old = data.get(key_id)
        if old is not None and old[0]() is key:
            data[key_id] = (old[0], value)
        else:
            data[key_id] = (weakref.ref(key, forget), value)

    def _item(self, key):
        item = self._data.get(id(key))
        return item if item is not None and item[0]() is key else None

    def __getitem__(self, key):
        item = self._item(key)
        if item is None:
            raise KeyError(key)
        return item[1]

    def get(self, key, default=None):
        item = self._item(key)
        return default if item is None else item[1]

    def setdefault(self, key, default):
        item = self._item(key)
        if item is None:
            self[key] = default
            return default
        return item[1]

    def pop(self, key, default=None):
        item = self._item(key)
        if item is None:
            return default
        del self._data[id(key)]
        return item[1]

    def __contains__(self, key) -> bool:
        return self._item(key) is not None

    def __delitem__(self, key) -> None:
        if self._item(key) is None:
            raise KeyError(key)
        del self._data[id(key)]

    def items(self) -> list:
        """The live ``(key, value)`` pairs, as a list (safe to change the table meanwhile)."""
        out = []
        for ref, value in list(self._data.values()):
            key = ref()
            if key is not None:
                out.append((key, value))
        return out

    def keys(self) -> list:
        return [k for k, _ in self.items()]

    def values(self) -> list:
        return [v for _, v in self.items()]

    def __iter__(self):
        return iter(self.keys())

    def __len__(self) -> int:
        return len(self.items())

    def clear(self) -> None:
        self._data.clear()


class WeakIdSet:
    """A set of objects by identity, holding them weakly."""

    __slots__ = ("_items",)

    def __init__(self):
        self._items = WeakIdDict()

    def add(self, obj) -> None:
        self._items[obj] = None

    def discard(self, obj) -> None:
        self._items.pop(obj)

    def __contains__(self, obj) -> bool:
        return obj in self._items

    def __iter__(self):
        return iter(self._items.keys())

    def __len__(self) -> int:
        return len(self._items)

    def clear(self) -> None:
        self._items.clear()

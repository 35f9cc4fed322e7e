"""Family "containers": dict views, dict.fromkeys, defaultdict, deque, OrderedDict,
Counter, and input lists/dicts mutated in place (tensors moved between slots)."""
from __future__ import annotations

import collections

import torch

from bench.semantics.corpus import program

F = "containers"


def _t():
    return (torch.randn(3),)


def _list():
    return ([torch.randn(3), torch.randn(3)],)


def _dict():
    return ({"a": torch.randn(3), "b": torch.randn(3)},)


@program(F)
def dict_keys_values_items(x):
    d = {"a": x, "b": x * 2}
    return list(d.keys()), list(d.values()), list(d.items())


@program(F)
def dict_keys_is_live_view(x):
    d = {"a": x}
    keys = d.keys()
    d["b"] = x + 1
    return len(keys), list(keys)


@program(F)
def dict_values_live_after_update(x):
    d = {"a": 1}
    vals = d.values()
    d["a"] = 5
    d.update(c=2)
    return x * sum(vals)


@program(F)
def dict_keys_set_operations(x):
    a = {"x": 1, "y": 2}
    b = {"y": 3, "z": 4}
    both = a.keys() & b.keys()
    either = a.keys() | b.keys()
    only = a.keys() - b.keys()
    return x * len(both) + len(either) * 10 + len(only) * 100, sorted(either)


@program(F)
def dict_items_set_operations(x):
    a = {"x": 1, "y": 2}
    b = {"y": 2, "z": 4}
    return x * len(a.items() & b.items())


@program(F)
def dict_keys_contains_and_iter(x):
    d = {"a": 1, "b": 2}
    return x + ("a" in d.keys()) + ("q" in d.keys()) + sum(1 for _ in d.keys())


@program(F)
def dict_fromkeys(x):
    d = dict.fromkeys(["a", "b", "c"], 2)
    return x * sum(d.values()), list(d)


@program(F)
def dict_fromkeys_default_none(x):
    d = dict.fromkeys("ab")
    return x + len(d) + (d["a"] is None)


@program(F)
def dict_setdefault_pop_popitem(x):
    d = {"a": x}
    d.setdefault("b", x * 2)
    d.setdefault("a", x * 100)
    p = d.pop("a")
    k, v = d.popitem()
    return p + v, k, len(d)


@program(F)
def dict_get_with_default(x):
    d = {"a": x}
    return d.get("a") + d.get("b", 1) + (d.get("c") is None)


@program(F)
def dict_comprehension_and_sorted(x):
    d = {k: x * i for i, k in enumerate("cab")}
    return [d[k] for k in sorted(d)]


@program(F)
def dict_merge_operators(x):
    a = {"a": 1}
    b = {"b": 2}
    c = a | b
    a |= {"z": 3}
    return x * len(c) + len(a)


@program(F)
def dict_delete_and_in(x):
    d = {"a": x, "b": x}
    del d["a"]
    return d["b"] * ("a" not in d)


@program(F)
def dict_equality(x):
    return x + ({"a": 1, "b": 2} == {"b": 2, "a": 1})


@program(F)
def defaultdict_list(x):
    d = collections.defaultdict(list)
    d["a"].append(x)
    d["a"].append(x * 2)
    d["b"].append(x + 1)
    return sum(d["a"]) + d["b"][0], len(d)


@program(F)
def defaultdict_int_counts(x):
    d = collections.defaultdict(int)
    for k in "abcab":
        d[k] += 1
    return x * d["a"] + d["c"], dict(d)


@program(F)
def defaultdict_setdefault_and_get(x):
    d = collections.defaultdict(lambda: 7)
    d.setdefault("a", 1)
    return x + d["a"] + d["new"] + d.get("zzz", 0) + len(d)


@program(F)
def defaultdict_fromkeys(x):
    d = collections.defaultdict.fromkeys(["a", "b"], 3)
    return x * sum(d.values()), type(d).__name__


@program(F)
def ordereddict_order_and_move(x):
    d = collections.OrderedDict()
    d["b"] = 1
    d["a"] = 2
    d.move_to_end("b")
    return x * d["a"], list(d.keys())


@program(F)
def ordereddict_popitem_last_false(x):
    d = collections.OrderedDict(a=1, b=2, c=3)
    k, v = d.popitem(last=False)
    return x * v, k, list(d)


@program(F)
def counter_counts(x):
    c = collections.Counter("abracadabra")
    return x * c["a"], c.most_common(2)


@program(F)
def counter_update_and_arith(x):
    c = collections.Counter(a=1)
    c.update(["a", "b"])
    d = c + collections.Counter(b=2)
    return x * d["b"] + c["a"]


@program(F)
def deque_append_popleft(x):
    q = collections.deque()
    q.append(x)
    q.append(x * 2)
    q.appendleft(x - 1)
    first = q.popleft()
    return first + q.pop(), len(q)


@program(F)
def deque_maxlen_rotate(x):
    q = collections.deque([1, 2, 3], maxlen=3)
    q.append(4)
    q.rotate(1)
    return x * q[0], list(q)


@program(F)
def deque_of_tensors_iterated(x):
    q = collections.deque([x, x + 1, x + 2])
    total = x * 0
    while q:
        total = total + q.popleft()
    return total


@program(F)
def namedtuple_made_and_used(x):
    P = collections.namedtuple("P", ["a", "b"])
    p = P(x, 2)
    q = p._replace(b=3)
    return p.a * q.b, q._asdict()["b"]


@program(F, inputs=_list)
def input_list_append_pop(xs):
    xs.append(xs[0] * 2)
    xs[0].add_(1)
    return xs.pop(0)


@program(F, inputs=_list)
def input_list_pop_insert_mutated(xs):
    t = xs.pop()
    t.mul_(3)
    xs.insert(0, t)
    return xs[0] + 1


@program(F, inputs=_list)
def input_list_reverse_then_index(xs):
    xs.reverse()
    xs[0].sub_(1)
    return xs[0], xs[-1]


@program(F, inputs=_list)
def input_list_extend_slice_assign(xs):
    xs.extend([xs[0] + 1])
    xs[0:2] = [xs[1], xs[0]]
    return len(xs), xs[0] * 1


@program(F, inputs=_list)
def input_list_remove_and_clear(xs):
    first = xs[0]
    xs.remove(first)
    n = len(xs)
    xs.clear()
    return first * n


@program(F, inputs=_dict)
def input_dict_mutated(d):
    d["c"] = d["a"] + d["b"]
    v = d.pop("a")
    v.add_(1)
    return v, sorted(d)


@program(F, inputs=_dict)
def input_dict_update_and_views(d):
    keys = d.keys()
    d.update({"z": d["a"] * 2})
    return len(keys), list(keys)


@program(F, inputs=_dict)
def input_dict_items_loop(d):
    total = 0
    for k, v in d.items():
        total = total + v * len(k)
    return total


@program(F)
def set_operations(x):
    a = {1, 2, 3}
    b = {2, 3, 4}
    return x * len(a & b) + len(a | b) + len(a - b) + len(a ^ b), sorted(a & b)


@program(F)
def set_add_discard_in(x):
    s = set()
    s.add("a")
    s.add("b")
    s.discard("a")
    s.discard("zz")
    return x + ("b" in s) + ("a" in s) + len(s)


@program(F)
def frozenset_as_key(x):
    d = {frozenset({1, 2}): x}
    return d[frozenset({2, 1})] + 1


@program(F)
def list_sort_with_key(x):
    items = [(3, "c"), (1, "a"), (2, "b")]
    items.sort(key=lambda p: p[0])
    return x * items[0][0], [p[1] for p in items]


@program(F)
def sorted_with_key_and_reverse(x):
    words = ["bb", "a", "ccc"]
    return x * len(sorted(words, key=len, reverse=True)[0]), sorted(words, key=len)


@program(F)
def tuple_unpack_star(x):
    a, *rest = [x, x + 1, x + 2]
    first, *_, last = (1, 2, 3, 4)
    return a + sum(rest) + first + last


@program(F)
def list_of_lists_comprehension(x):
    grid = [[i * j for j in range(3)] for i in range(3)]
    return x * sum(sum(r) for r in grid)


@program(F)
def min_max_with_key(x):
    pairs = [("a", 3), ("b", 1), ("c", 2)]
    return x * min(pairs, key=lambda p: p[1])[1] + max(pairs, key=lambda p: p[1])[1]


# ---- held-out variants ----

def _deque_input():
    return (collections.deque([torch.randn(3), torch.randn(3)]),)


@program(F, inputs=_deque_input)
def input_deque_rotated_and_popped(q):
    q.rotate(1)
    first = q.popleft()
    q.append(first * 2)
    return len(q), q[0] + 1


@program(F)
def deque_extendleft_maxlen_and_index(x):
    q = collections.deque(maxlen=4)
    q.extend([1, 2, 3])
    q.extendleft([10, 20])
    q.append(5)
    return x * q[0] + q.index(1), list(q), q.maxlen


@program(F)
def deque_pop_from_empty_raises(x):
    q = collections.deque([x])
    q.pop()
    try:
        q.popleft()
    except IndexError as e:
        return x + len(str(e))
    return x


@program(F)
def counter_subtract_total_and_elements(x):
    c = collections.Counter({"a": 3, "b": 1})
    c.subtract(["a", "b", "b"])
    return x * c.total() + c["zz"], sorted(c.elements()), dict(c)


@program(F)
def counter_of_tensor_values(x):
    c = collections.Counter()
    c["a"] += x
    c["b"] += x * 2
    c["a"] += 1
    return c["a"] + c["b"], list(c)


@program(F)
def counter_operators_and_most_common_ties(x):
    a = collections.Counter("aabbc")
    b = collections.Counter("abd")
    return x * len(a & b) + len(a | b), (a - b).most_common(), (a + b).most_common(2)


@program(F)
def sorted_tensors_by_shape_key(x):
    parts = [x[:1], x, x[:2]]
    ordered = sorted(parts, key=lambda t: t.shape[0], reverse=True)
    return [t.sum() for t in ordered]


@program(F)
def list_sort_stable_with_tuple_key(x):
    rows = [("b", 2, x), ("a", 2, x + 1), ("c", 1, x + 2)]
    rows.sort(key=lambda r: (r[1], r[0]))
    return [r[2] for r in rows], [r[0] for r in rows]


@program(F)
def min_max_with_key_default_and_tensors(x):
    items = [x[:2], x, x[:1]]
    longest = max(items, key=len)
    shortest = min(items, key=lambda t: t.shape[0])
    return longest * 2, shortest, min([], default=x)


@program(F)
def namedtuple_made_with_defaults(x):
    Point = collections.namedtuple("Point", "a b c", defaults=(0, 5))
    p = Point(x)
    return p.a * p.c + p.b, p._fields, len(p)


@program(F)
def dict_views_after_mutation_and_set_ops(x):
    d = {"a": x, "b": x + 1}
    keys, items = d.keys(), d.items()
    d["c"] = x * 2
    del d["a"]
    return len(keys), sorted(keys | {"z"}), sorted(keys - {"b"}), len(items), [k for k, _ in items]


@program(F)
def defaultdict_setdefault_fromkeys_and_missing(x):
    d = collections.defaultdict(list, {"a": [x]})
    d["b"].append(x + 1)
    d.setdefault("c", []).append(x * 2)
    e = collections.defaultdict.fromkeys("xy")
    return sum(len(v) for v in d.values()), sorted(d), e.default_factory, dict(e)


@program(F)
def ordereddict_equality_is_order_sensitive(x):
    a = collections.OrderedDict(a=1, b=2)
    b = collections.OrderedDict(b=2, a=1)
    return x + (a == b) + (a == dict(b)) + (dict(a) == dict(b))

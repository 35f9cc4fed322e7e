"""Family "iterators": itertools, and zip/map/filter/enumerate/reversed as lazy
iterators (consumed partly, twice, or by next())."""
from __future__ import annotations

import itertools

import torch

from bench.semantics.corpus import program

F = "iterators"


def _two():
    return (torch.randn(3), torch.randn(3))


@program(F)
def zip_lists(x):
    return [a * b for a, b in zip([x, x + 1], [2, 3])]


@program(F)
def zip_is_lazy_and_exhausts(x):
    z = zip([1, 2], [3, 4])
    first = list(z)
    second = list(z)
    return x * len(first) + len(second)


@program(F)
def zip_next_partial(x):
    z = zip(range(3), "abc")
    i, c = next(z)
    rest = list(z)
    return x + i + len(rest), c


@program(F)
def zip_strict_ok(x):
    return x * sum(a * b for a, b in zip([1, 2], [3, 4], strict=True))


@program(F)
def zip_strict_mismatch_raises(x):
    return list(zip([1, 2], [3], strict=True))


@program(F)
def map_lazy(x):
    m = map(lambda t: t * 2, [x, x + 1])
    first = next(m)
    return first + sum(m)


@program(F)
def map_two_iterables(x):
    return list(map(lambda a, b: a * b, [x, x], [1, 2]))


@program(F)
def map_builtin(x):
    return x * sum(map(len, ["ab", "c"]))


@program(F)
def filter_lazy(x):
    f = filter(lambda v: v % 2 == 0, range(6))
    return x * next(f) + sum(f)


@program(F)
def filter_none(x):
    return x * len(list(filter(None, [0, 1, "", "a", None])))


@program(F)
def enumerate_start(x):
    return [x * i for i, _ in enumerate("abc", start=1)]


@program(F)
def enumerate_next(x):
    e = enumerate([x, x + 1])
    i, v = next(e)
    j, w = next(e)
    return v * i + w * j


@program(F)
def reversed_list_and_range(x):
    return [x * i for i in reversed(range(3))] + list(reversed([x, x + 1]))


@program(F)
def reversed_is_lazy(x):
    r = reversed([1, 2, 3])
    next(r)
    return x * sum(r)


@program(F)
def iter_next_loop(x):
    it = iter([x, x * 2, x * 3])
    total = next(it)
    for v in it:
        total = total + v
    return total


@program(F)
def itertools_zip_longest(x):
    return [x * (a or 0) + (b or 0) for a, b in itertools.zip_longest([1, 2, 3], [4])]


@program(F)
def itertools_zip_longest_fillvalue(x):
    return list(itertools.zip_longest("ab", "c", fillvalue="-")), x + 1


@program(F)
def itertools_product(x):
    return x * sum(a * b for a, b in itertools.product([1, 2], [3, 4]))


@program(F)
def itertools_product_repeat(x):
    return x * len(list(itertools.product([0, 1], repeat=3)))


@program(F)
def itertools_combinations(x):
    return x * len(list(itertools.combinations(range(4), 2))), list(itertools.combinations("abc", 2))


@program(F)
def itertools_permutations(x):
    return x * len(list(itertools.permutations(range(3))))


@program(F)
def itertools_accumulate(x):
    return x * list(itertools.accumulate([1, 2, 3]))[-1], list(itertools.accumulate([1, 2, 3], lambda a, b: a * b))


@program(F)
def itertools_accumulate_tensors(x):
    return list(itertools.accumulate([x, x, x]))


@program(F)
def itertools_islice(x):
    return x * sum(itertools.islice(range(10), 2, 8, 2))


@program(F)
def itertools_count_with_zip(x):
    return [x * i for i, _ in zip(itertools.count(5), "ab")]


@program(F)
def itertools_count_next(x):
    c = itertools.count(1, 2)
    next(c)
    return x * next(c)


@program(F)
def itertools_repeat(x):
    return list(itertools.repeat(x, 3))


@program(F)
def itertools_chain(x):
    return x * sum(itertools.chain([1, 2], (3,), range(2)))


@program(F)
def itertools_chain_from_iterable(x):
    return list(itertools.chain.from_iterable([[x], [x + 1, x + 2]]))


@program(F)
def itertools_pairwise(x):
    return [b - a for a, b in itertools.pairwise([x, x * 2, x * 4])]


@program(F)
def itertools_takewhile_dropwhile(x):
    a = list(itertools.takewhile(lambda v: v < 3, [1, 2, 3, 1]))
    b = list(itertools.dropwhile(lambda v: v < 3, [1, 2, 3, 1]))
    return x * sum(a) + sum(b)


@program(F)
def itertools_starmap(x):
    return x * sum(itertools.starmap(pow, [(2, 3), (3, 2)]))


@program(F)
def itertools_groupby(x):
    groups = [(k, len(list(g))) for k, g in itertools.groupby("aabbbc")]
    return x * len(groups), groups


@program(F)
def itertools_cycle_islice(x):
    return x * sum(itertools.islice(itertools.cycle([1, 2]), 5))


@program(F)
def generator_function(x):
    def gen(n):
        for i in range(n):
            yield x * i
    return sum(gen(3))


@program(F)
def generator_expression_any_all(x):
    return x + any(v > 2 for v in [1, 3]) + all(v > 0 for v in [1, 2])


@program(F)
def generator_next_partially(x):
    def gen():
        yield x
        yield x * 2
        yield x * 3
    g = gen()
    return next(g) + next(g)


GEN_LOG: list = []


def _gen_log_state():
    return list(GEN_LOG)


def _gen_log_reset():
    GEN_LOG.clear()


def _logged_gen(x):
    GEN_LOG.append("start")
    got = yield x + 1
    GEN_LOG.append(f"got {got}")
    yield x * 2
    GEN_LOG.append("end")


@program(F, state=_gen_log_state, reset=_gen_log_reset)
def generator_interleaves_with_consumer(x):
    g = _logged_gen(x)
    a = next(g)
    GEN_LOG.append("between")
    b = g.send(5)
    rest = list(g)
    return a + b, len(rest)


@program(F)
def generator_throw_caught_inside(x):
    def gen():
        total = 0
        while True:
            try:
                v = yield total
            except ValueError:
                total = total + 100
            else:
                total = total + v
    g = gen()
    next(g)
    g.send(1)
    out = g.throw(ValueError("reset"))
    g.close()
    return x + out


@program(F, state=_gen_log_state, reset=_gen_log_reset)
def generator_return_value_and_finally(x):
    def gen():
        try:
            yield x
            yield x + 1
        finally:
            GEN_LOG.append("finally")
    return sum(gen())


@program(F)
def generator_stopiteration_value(x):
    def gen():
        yield x
        return 7
    g = gen()
    next(g)
    try:
        next(g)
    except StopIteration as e:
        return x * e.value
    return x


@program(F, inputs=_two)
def zip_tensors_rows(x, y):
    return [a + b for a, b in zip(x, y)]


@program(F, inputs=_two)
def enumerate_tensor_rows(x, y):
    total = y * 0
    for i, v in enumerate(x):
        total = total + v * i
    return total


@program(F)
def range_len_index_slice(x):
    r = range(2, 12, 3)
    return x * (len(r) + r[1] + r[-1] + sum(r[1:3]))


@program(F)
def sum_with_start(x):
    return sum([x, x], x * 0 + 1)


@program(F)
def sorted_of_map(x):
    return x * sorted(map(lambda v: -v, [1, 3, 2]))[0]


@program(F)
def zip_strict_longer_later_argument(x):
    try:
        list(zip([1, 2], [3, 4], [5], strict=True))
    except ValueError as e:
        return x * len(str(e))
    return x


@program(F)
def chain_from_iterable_of_generators(x):
    rows = ((x * i for i in range(n)) for n in (1, 2))
    return sum(itertools.chain.from_iterable(rows))

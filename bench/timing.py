"""Small timing helpers: per-call time measured in interleaved rounds.

Variants are timed round-robin (eager, then each compiled variant, repeated) so that
CPU frequency changes and thread-pool warm-up hit all of them alike.
"""
from __future__ import annotations

import statistics
import time


def interleaved_samples(variants: dict, args, calls: int = 200, repeats: int = 7,
                        warmup: int = 20, clock=time.perf_counter) -> dict:
    """{name: [seconds per call in each round]}: after ``warmup`` calls of each, ``repeats``
    rounds, each timing ``calls`` calls of every variant in turn (by ``clock``)."""
    for fn in variants.values():
        for _ in range(warmup):
            fn(*args)
    samples = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            start = clock()
            for _ in range(calls):
                fn(*args)
            samples[name].append((clock() - start) / calls)
    return samples


def per_call_interleaved(variants: dict, args, calls: int = 200, repeats: int = 7,
                         warmup: int = 20) -> dict:
    """{name: (median seconds per call, spread)} for each callable in ``variants``."""
    samples = interleaved_samples(variants, args, calls, repeats, warmup)
    return {name: (statistics.median(s), max(s) - min(s)) for name, s in samples.items()}


def first_call_seconds(make_fn, args) -> tuple[object, float]:
    fn = make_fn()
    start = time.perf_counter()
    fn(*args)
    return fn, time.perf_counter() - start

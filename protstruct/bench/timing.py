"""Timing helpers: median of repeats after a warm-up, with min and max; interleaved rounds and
paired ratios for comparisons.

On a shared 2-core VM the speed of the whole machine drifts by up to 2× within minutes, so two
blocks timed one after the other compare two machine states, not two pieces of code. Comparisons
therefore run in rounds (every contender once per round, order rotated) and are summarised as the
median of per-round ratios, which cancels drift slower than a round.
"""

from __future__ import annotations

import statistics
import time


def repeat(fn, repeats: int, warmup: int = 1) -> dict:
    """Run ``fn`` (returns the number of samples it processed) and time it."""
    for _ in range(warmup):
        fn()
    seconds, samples = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        samples = fn()
        seconds.append(time.perf_counter() - start)
    return summary(seconds, samples)


def summary(seconds: list[float], samples: int = 0) -> dict:
    med = statistics.median(seconds)
    out = {
        "median_s": med,
        "min_s": min(seconds),
        "max_s": max(seconds),
        "repeats": len(seconds),
        "seconds": list(seconds),
    }
    if samples:
        out.update(samples=samples, samples_per_s=samples / med)
    return out


def interleaved(contenders: dict, rounds: int, warmup: int = 1, before=None) -> dict:
    """Time every contender (a callable returning its sample count) once per round, rotating the
    order each round; ``before()`` runs untimed ahead of every call. Returns ``{name: summary}``
    with the per-round seconds kept in order."""
    names = list(contenders)
    before = before or (lambda: None)
    for _ in range(warmup):
        for name in names:
            before()
            contenders[name]()
    seconds = {name: [0.0] * rounds for name in names}
    samples = {}
    for r in range(rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            before()
            start = time.perf_counter()
            samples[name] = contenders[name]()
            seconds[name][r] = time.perf_counter() - start
    return {name: summary(seconds[name], samples[name]) for name in names}


def paired_ratio(numerator: dict, denominator: dict) -> dict:
    """Median (min, max) over rounds of numerator seconds ÷ denominator seconds."""
    ratios = [a / b for a, b in zip(numerator["seconds"], denominator["seconds"])]
    return {"median": statistics.median(ratios), "min": min(ratios), "max": max(ratios), "rounds": len(ratios)}

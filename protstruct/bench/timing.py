"""Timing helpers: median of repeats after a warm-up, with min and max."""
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
    out = {"median_s": med, "min_s": min(seconds), "max_s": max(seconds), "repeats": len(seconds)}
    if samples:
        out.update(samples=samples, samples_per_s=samples / med)
    return out

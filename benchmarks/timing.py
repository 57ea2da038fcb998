"""Wall-clock timing shared by the benchmarks (no framework imported: every script may use it)."""

from __future__ import annotations

import time


def seconds(fn) -> float:
    """Wall time of one call of `fn` (a first call: tracing and compilation included)."""
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def best_step_seconds(fns: dict, steps: int, warmup: int) -> dict:
    """Best wall time of `steps` calls of each function after `warmup` untimed ones (compilation, and
    PyTorch's CPU allocator, which page-faults for a few steps). Calls alternate between the
    functions so that background load on the machine hits them all alike."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(steps):
        for name, fn in fns.items():
            best[name] = min(best[name], seconds(fn))
    return best

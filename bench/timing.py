"""Small timing helpers shared by the parts."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


def per_call_seconds(fn: Callable[[], object], budget: float, rounds: int = 5) -> float:
    """CPU seconds of one call: the median over ``rounds`` of the mean, spending ``budget`` s.

    CPU time of this process, not wall time, so that other processes on the machine do not
    count; the median of several rounds resists what noise remains (caches, frequency).
    """
    fn()  # warm: imports, caches, lazy initialisation
    start = time.process_time()
    calls = 0
    while time.process_time() - start < 0.02:
        fn()
        calls += 1
    once = max((time.process_time() - start) / calls, 1e-7)
    per_round = max(1, int(budget / rounds / once))
    results = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(per_round):
            fn()
        results.append((time.process_time() - start) / per_round)
    return statistics.median(results)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0–100) by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)

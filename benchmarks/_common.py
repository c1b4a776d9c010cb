"""Helpers shared by the benchmarks: timing, RSS, and the ratio line every benchmark prints."""

from __future__ import annotations

import os
import time
from collections.abc import Callable


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    """The best (lowest) of several timings: the least disturbed by a shared, noisy machine."""
    return min(fn() for _ in range(repeats))


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def report(name: str, ksim: float, baseline: float, unit: str, baseline_name: str,
           higher_is_better: bool = True, target: str = "") -> None:
    ratio = ksim / baseline if higher_is_better else baseline / ksim
    print(f"{name}: ksim {ksim:,.1f} {unit} | {baseline_name} {baseline:,.1f} {unit} | "
          f"ratio {ratio:.2f}x" + (f" (target {target})" if target else ""))


now = time.perf_counter

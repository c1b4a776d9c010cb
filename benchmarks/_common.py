"""Helpers shared by the benchmarks: CPU timing, RSS, and the ratio line every benchmark prints.

Every figure is CPU time of this process (``time.process_time``): the machine is shared, and
wall time would charge ksim for other people's work.  Each benchmark interleaves its rounds
(baseline, ksim, baseline, ...) and keeps each side's best, so load hits both alike; the
ratios are what count.  ``report`` records each line in ``RESULTS`` for ``run.py --json``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

RESULTS: list[dict[str, object]] = []


def best_of(repeats: int, fn: Callable[[], float]) -> float:
    """The best (lowest) of several timings: the least disturbed by a shared, noisy machine."""
    return min(fn() for _ in range(repeats))


def interleaved(rounds: int, *fns: Callable[[], float]) -> list[float]:
    """Each function's best over ``rounds`` rounds, the functions taking turns in each round."""
    best = [float("inf")] * len(fns)
    for _ in range(rounds):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], fn())
    return best


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def report(name: str, ksim: float, baseline: float, unit: str, baseline_name: str,
           higher_is_better: bool = True, target: str = "",
           at_least: float | None = None, at_most: float | None = None,
           multiple: bool = False, below: float | None = None, digits: int = 2) -> None:
    """Print ``name: ksim X | baseline Y | ratio R`` and, for a target, PASS or MISS.

    The ratio is how many times better ksim is (``ksim / baseline`` for a rate,
    ``baseline / ksim`` for a cost), unless ``at_most`` is given or ``multiple`` is set: then
    it is how many times the baseline's cost ksim pays (``ksim / baseline``), which must not
    exceed ``at_most``.  ``below`` is a target on ksim's own figure instead (it must stay
    under it, in ``unit``); the ratio is then only shown.  ``digits``: decimals printed.
    """
    if multiple and at_most is None:
        ratio = ksim / baseline
        verdict = ""
    elif at_most is not None:
        ratio = ksim / baseline if not higher_is_better else baseline / ksim
        verdict = "PASS" if ratio <= at_most else "MISS"
        target = target or f"<= {at_most:g}x"
    else:
        ratio = ksim / baseline if higher_is_better else baseline / ksim
        verdict = ("PASS" if ratio >= at_least else "MISS") if at_least is not None else ""
        if at_least is not None:
            target = target or f">= {at_least:g}x"
    if below is not None:
        verdict = "PASS" if ksim < below else "MISS"
        target = target or f"< {below:g} {unit}"
    print(f"{name}: ksim {ksim:,.{digits}f} {unit} | "
          f"{baseline_name} {baseline:,.{digits}f} {unit} | "
          f"ratio {ratio:.2f}x" + (f" (target {target}" if target else "")
          + (f": {verdict})" if verdict else (")" if target else "")))
    RESULTS.append({"name": name, "ksim": ksim, "baseline": baseline, "unit": unit,
                    "baseline_name": baseline_name, "ratio": ratio, "target": target,
                    "verdict": verdict or None})


now = time.process_time

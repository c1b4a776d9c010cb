"""The bound docs/benchmarks.md argues from must stay a bound of *this* printk.

benchmarks/bench_bounds.py times an all-inline copy of printk's common path to show how far
the printk -> ttyS0 targets are from what a printk in Python with ksim's state can reach.  The
copy is only an argument while it does what printk does, so a change to printk that it does
not follow fails here, not silently in a benchmark nobody runs in CI.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture
def bench_bounds() -> Iterator[ModuleType]:
    sys.path.insert(0, str(BENCHMARKS))
    try:
        import bench_bounds
        yield bench_bounds
    finally:
        sys.path.remove(str(BENCHMARKS))


def test_inline_printk_leaves_what_printk_leaves(bench_bounds: ModuleType) -> None:
    bench_bounds._check_inline()


def test_the_check_catches_an_inline_printk_that_does_less(
        bench_bounds: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    async def prints_nothing(fmt: str, *args: object) -> None:
        from ksim.current import current_kernel
        kernel = current_kernel()
        text = fmt % args
        kernel.printk.log.store(kernel.local_clock(), ord(text[1]) - 48, text[2:-1])

    monkeypatch.setattr(bench_bounds, "inline_printk", prints_nothing)
    with pytest.raises(AssertionError, match="no longer does what printk does"):
        bench_bounds._check_inline()

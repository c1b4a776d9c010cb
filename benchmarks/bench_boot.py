"""Boot to init of a 64 GiB sparse machine: time and extra RSS, against a 64 MiB machine.

Target (issue 2): under 100 ms and under 50 MiB of extra RSS.  The baseline is the same boot
of a 64 MiB machine in the same run: a ratio near 1 means the RAM size costs nothing.
"""

from __future__ import annotations

import gc

import trio
import trio.testing

from _common import best_of, now, report, rss_bytes
from ksim import Machine


def boot_seconds(ram: str) -> float:
    async def main() -> float:
        machine = Machine(ram, seed=1)
        start = now()
        async with machine.boot("console=ttyS0"):
            elapsed = now() - start
        machine.close()
        return elapsed

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def rss_growth(ram: str) -> int:
    gc.collect()
    before = rss_bytes()

    async def main() -> int:
        machine = Machine(ram, seed=1)
        async with machine.boot("console=ttyS0"):
            grown = rss_bytes() - before
        machine.close()
        return grown

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def main() -> None:
    boot_seconds("64M")  # warm up imports and caches
    big = best_of(5, lambda: boot_seconds("64G")) * 1000
    small = best_of(5, lambda: boot_seconds("64M")) * 1000
    report("boot to init, 64 GiB machine", big, small, "ms", "64 MiB machine",
           higher_is_better=False, below=100)
    big_rss = rss_growth("64G") / 2**20
    small_rss = max(rss_growth("64M") / 2**20, 0.01)
    report("extra RSS, 64 GiB machine", big_rss, small_rss, "MiB", "64 MiB machine",
           multiple=True, below=50)


if __name__ == "__main__":
    main()

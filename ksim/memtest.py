"""The early memory test (mm/memtest.c): ``memtest[=N]``.

``memtest`` writes N patterns over all free memory, the last pass writing zeros, so a
warm reboot with ``memtest`` loses whatever the previous boot left in free RAM (M9).  ksim
records the passes and scrubs lazily: a page takes its final pattern when first touched.
``memtest=4294967295`` asks for four billion passes, hours of a real machine's time: only the
last :data:`MEMTEST_LOGGED_PASSES` passes' lines are logged, because the earlier ones would have
been overwritten in the log buffer before any console or reader saw them (a deviation: the
record sequence numbers do not count them).  The result, zeros, is known after the last pass.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ksim.cmdline import kstrtouint
from ksim.current import current_kernel
from ksim.errno import EINVAL
from ksim.init import early_param
from ksim.kern_levels import LOGLEVEL_INFO

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["MEMTEST_LOGGED_PASSES", "MEMTEST_PATTERNS", "MemtestState", "early_memtest"]

MEMTEST_PATTERNS = (0, 0xFFFFFFFFFFFFFFFF, 0x5555555555555555, 0xAAAAAAAAAAAAAAAA,
                    0x1111111111111111, 0x2222222222222222, 0x4444444444444444,
                    0x8888888888888888, 0x3333333333333333, 0x6666666666666666,
                    0x9999999999999999, 0xCCCCCCCCCCCCCCCC, 0x7777777777777777,
                    0xBBBBBBBBBBBBBBBB, 0xDDDDDDDDDDDDDDDD, 0xEEEEEEEEEEEEEEEE,
                    0x7A6C7258554E494C)  # the last pass writes 0
# 4,096 passes print at least 4,096 lines of 60-odd bytes: more than the early static log
# buffer (CONFIG_LOG_BUF_SHIFT=18, 256 KiB, records with their headers) keeps
MEMTEST_LOGGED_PASSES = 4096


@attrs.define
class MemtestState:
    patterns: int = 0  # memtest_pattern: passes to run (0: no test)


@early_param("memtest")
async def parse_memtest(val: str | None) -> int:
    state = current_kernel().memtest
    if val is None:
        state.patterns = len(MEMTEST_PATTERNS)
        return 0
    try:
        state.patterns = kstrtouint(val, 0)
    except Exception:
        return -EINVAL
    return 0


def early_memtest(k: Kernel) -> None:
    """Write the patterns over free memory; the last pass leaves zeros (lazily)."""
    n = k.memtest.patterns
    if not n:
        return
    log = k.printk.log_line
    log(LOGLEVEL_INFO, "early_memtest: # of tests: %u" % n)
    assert k.memblock is not None
    ranges = list(k.memblock.free_ranges())
    for i in range(min(n, MEMTEST_LOGGED_PASSES) - 1, -1, -1):
        pattern = MEMTEST_PATTERNS[i % len(MEMTEST_PATTERNS)]
        for start, end in ranges:
            log(LOGLEVEL_INFO, "  0x%016x - 0x%016x pattern %016x" % (
                start, end, int.from_bytes(pattern.to_bytes(8, "little"), "big")))
    k.mem.scrub(ranges, 0)

"""The firmware's memory map and ``mem=`` (arch/x86/kernel/e820.c, kernel/resource.c).

The machine's RAM is one contiguous range from physical 0, as its firmware reports it
(simplified: no reserved BIOS areas, no PCI hole; see docs/deviations.md).  ``mem=nn[KMG]``
limits the RAM the kernel uses (``parse_memopt``); the ``user-defined physical RAM map`` is
printed once the early parameters ran (``e820__finish_early_params``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ksim.cmdline import memparse
from ksim.current import current_kernel
from ksim.errno import EINVAL
from ksim.init import early_param

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["E820State", "e820__finish_early_params", "e820__memory_setup"]


@attrs.define
class E820State:
    """``mem=``: the RAM limit the kernel applies to the firmware's map (None: no limit)."""

    mem_limit: int | None = None


@early_param("mem")
async def parse_memopt(val: str | None) -> int:
    if val is None:
        return -EINVAL
    size, _ = memparse(val)
    if size == 0:
        return -EINVAL
    current_kernel().e820.mem_limit = size
    return 0


def e820__memory_setup(k: Kernel) -> list[str]:
    """The firmware map, printed *before* the early parameters run."""
    return ["BIOS-provided physical RAM map:",
            "BIOS-e820: [mem 0x%016x-0x%016x] usable" % (0, k.mem.size - 1)]


def e820__finish_early_params(k: Kernel) -> list[str]:
    """The ``user:`` map, printed once ``mem=`` has cut the firmware's."""
    limit = k.e820.mem_limit
    if limit is not None and limit < k.mem.size:
        return ["user-defined physical RAM map:",
                "user: [mem 0x%016x-0x%016x] usable" % (0, limit - 1)]
    return []

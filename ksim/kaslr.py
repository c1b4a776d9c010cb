"""Where the direct map begins (arch/x86/mm/kaslr.c): ``ksim.page_offset=``.

With CONFIG_RANDOMIZE_MEMORY the x86-64 direct map's base (PAGE_OFFSET) moves at every boot,
which is what makes a virtual pointer kept in RAM stale after a reboot (M3, F6).  ksim's
machine keeps it fixed by default; ``ksim.page_offset=ADDR`` fixes another base and
``ksim.page_offset=random`` draws one per boot from the machine seed and the boot count.
"""

from __future__ import annotations

import random

import attrs

from ksim.current import current_kernel
from ksim.errno import EINVAL
from ksim.init import early_param
from ksim.memory import PAGE_OFFSET_DEFAULT

__all__ = ["KaslrState"]


@attrs.define
class KaslrState:
    page_offset: int | None = None  # the direct-map base for this boot (None: the default)

    def direct_map_base(self) -> int:
        return self.page_offset or PAGE_OFFSET_DEFAULT


@early_param("ksim.page_offset")
async def page_offset_setup(val: str | None) -> int:
    if val is None:
        return -EINVAL
    k = current_kernel()
    if val == "random":
        rng = random.Random(k.seed * 1_000_003 + k.machine.boot_count)
        k.kaslr.page_offset = PAGE_OFFSET_DEFAULT + (rng.getrandbits(10) << 30)
        return 0
    try:
        k.kaslr.page_offset = int(val, 0)
    except ValueError:
        return -EINVAL
    return 0

"""fwlog: a stand-in for anything else that reserves the top of low memory at boot.

Used by the memconsole scenarios (``plugin_path: ../plugins``) to give memconsole's search a
reservation to collide with: the ``fwlog`` boot option reserves the top two pages of low
memory with memblock_reserve() as a firmware-log driver might.  Put ``fwlog`` before
``memconsole=`` on the command line: __setup handlers run in command-line order.
"""

from ksim import KERN_INFO, PAGE_SHIFT, PAGE_SIZE, KernelModule, max_low_pfn, memblock_reserve, \
    printk, setup

FWLOG_PAGES = 2


class Fwlog(KernelModule):
    name = "fwlog"
    description = "reserve the top of low memory for a (simulated) firmware log"
    license = "GPL"

    @setup("fwlog", core=True)
    async def fwlog_setup(self, value: str) -> int:
        size = FWLOG_PAGES * PAGE_SIZE
        base = (max_low_pfn() << PAGE_SHIFT) - size
        memblock_reserve(base, size)
        await printk(KERN_INFO + "fwlog: reserved [mem %#010x-%#010x]\n", base, base + size - 1)
        return 1

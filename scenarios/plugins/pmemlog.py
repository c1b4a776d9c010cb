"""pmemlog: the smallest ramoops, a record at a fixed physical address that ``memmap=`` keeps.

The scenarios' copy of tools/survival.py's ``PmemLog`` (same address, same record): boot the
kernel with ``memmap=1M$0x10000000`` so that e820 marks the MiB reserved, memblock never
allocates from it and KASLR's decompressor avoids it (E3, D4).  At init the module reads the
record the previous boot left at 0x10000000 (``PMEMLOG1`` then the panic line), shows it in
``/proc/pmemlog`` (empty if there was none) and clears it; its panic notifier (priority
INT_MIN + 1) writes the panic line there.  It keeps physical addresses only, so PAGE_OFFSET
moving (memory KASLR) does not matter.  The machine needs more than 256 MiB of RAM.
"""

from ksim import (
    INT_MIN, KernelModule, NotifierBlock, ProcOps, atomic_notifier_chain_register,
    atomic_notifier_chain_unregister, panic_notifier_list, phys_to_virt, proc_create,
    remove_proc_entry, virt_read, virt_write,
)

PMEM_ADDR = 0x10000000
PMEM_MAGIC = b"PMEMLOG1"


class PmemLog(KernelModule):
    name = "pmemlog"
    description = "a panic record at physical 0x10000000, kept by memmap=1M$0x10000000"
    license = "GPL"
    initcall = "device"

    def __init__(self, kernel, builtin: bool) -> None:
        super().__init__(kernel, builtin)
        self.found = b""
        self.nb = NotifierBlock(self.on_panic, priority=INT_MIN + 1)

    async def on_panic(self, nb: NotifierBlock, action: int, data: object) -> int:
        virt_write(phys_to_virt(PMEM_ADDR),
                   PMEM_MAGIC + b"Kernel panic - not syncing: %s\0" % str(data).encode())
        return 0

    async def proc_read(self, file: object, count: int, off: int) -> bytes:
        text = self.found + b"\n" if self.found else b""
        return text[off:off + count]

    async def init(self) -> int:
        record = virt_read(phys_to_virt(PMEM_ADDR), 256)
        self.found = record[8:].split(b"\0", 1)[0] if record[:8] == PMEM_MAGIC else b""
        virt_write(phys_to_virt(PMEM_ADDR), PMEM_MAGIC + b"\0")
        proc_create("pmemlog", 0o444, None, ProcOps(proc_read=self.proc_read))
        atomic_notifier_chain_register(panic_notifier_list, self.nb)
        return 0

    async def exit(self) -> None:
        await atomic_notifier_chain_unregister(panic_notifier_list, self.nb)
        remove_proc_entry("pmemlog", None)

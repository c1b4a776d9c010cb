"""memconsole: a virtual console to record the Oops message for debugging purpose.

A port of Changli Gao's RFC to Linus of 2009-06-13 (linux-semantics.md R1; the mail is in
``shared/seed/memconsole-lkml-2009.txt``).  The C reads, function by function, as it does in
the mail; where the archived text lost a line, the assumption made is marked ``ASSUMPTION``.
Everything the proposal gets wrong (F1..F13) is kept on purpose: ksim exists to show those
flaws, so the port must have them.

Two parts, as in the mail:

* the **boot part**, which the patch appended to ``mm/bootmem.c``: ``memconsole=SIZE``
  reserves a block at the top of low memory.  It is core kernel code, not module code, so it
  is declared ``core=True``: it runs whenever the plugin is present, built in or loadable.
* the **module**: a byte ring in that block behind a 16-byte header (the x86-64 layout of
  ``struct buf_header``), a console that appends to it, ``/proc/memconsole`` and a panic
  notifier that restarts the machine.

Departures from the mail, each deliberate:

* ``/proc/memconsole`` honours offset and count (the 2009 ``read_proc`` ignored both, which
  only worked because the buffer never exceeded the one page it was handed);
* ``whole_block`` (0444, default N) lets the ring use the whole reservation instead of one
  page (F8).

An impossible search (F2, F5) loops forever, as the C does; the simulator detects that the
boot hangs (:mod:`ksim.watchdog`) and ends it with a ``hang`` outcome.
"""

from __future__ import annotations

from ksim import (
    BOOTMEM_EXCLUSIVE, CON_ENABLED, INT_MIN, KERN_WARNING, NOTIFY_DONE, PAGE_ALIGN, PAGE_SHIFT,
    PAGE_SIZE, Console, DEFINE_SPINLOCK, EFAULT, EINVAL, ENOMEM, KernelModule, NotifierBlock,
    memcpy_from, memcpy_to,
    ProcOps, atomic_notifier_chain_register, atomic_notifier_chain_unregister,
    emergency_restart, max_low_pfn, max_pfn, min_low_pfn, module_param, panic,
    panic_notifier_list, phys_to_virt, printk, proc_create, register_console,
    remove_proc_entry, reserve_bootmem_generic, setup, simple_strtoul,
    spin_lock_irqsave, spin_unlock_irqrestore, virt_read_u32, virt_read_u64, virt_write_u32,
    virt_write_u64,
)
from ksim.testing import console_output_since, log_next_seq

UINT_MASK = 0xFFFFFFFF
ULONG_MASK = 0xFFFFFFFFFFFFFFFF

# struct buf_header { char *buf_ptr; unsigned int buf_len; };  on x86-64: 8 + 4 + 4 padding.
BUF_PTR_OFFSET = 0
BUF_LEN_OFFSET = 8
BUF_HEADER_SIZE = 16


class Memconsole(KernelModule):
    name = "memconsole"
    description = "a virtual console to record the Oops message for debugging purpose"
    author = "xiaosuo <>"
    license = "GPL"
    initcall = "device"
    # ksim compare: the proposal's own example size, and where the next boot shows the log
    usual_cmdline = "memconsole=8192"
    crash_log_files = ("/proc/memconsole",)
    crash_log_lock = "buf_lock"  # record_msg's

    # static int reboot = 1; module_param(reboot, bool, 0644);
    reboot = module_param("bool", True, 0o644, "restart the machine from the panic notifier")
    # ksim: use the whole reservation, not min(block - header, PAGE_SIZE) (F8).
    whole_block = module_param("bool", False, 0o444, "use the whole reserved block (ksim)")

    # ASSUMPTION: the console struct's flags line is lost in the archive; CON_ENABLED lets
    # memconsole=SIZE record without console=memconsole (C4, F10).  CON_PRINTBUFFER is not
    # set, so messages printed before the module initialised are not in the buffer (F9).
    con_flags = CON_ENABLED

    def __init__(self, kernel, builtin: bool) -> None:
        super().__init__(kernel, builtin)
        # mm/bootmem.c globals, exported to the module
        self.memconsole_mem_start: int | None = None  # void *: a *virtual* address
        self.memconsole_mem_size = 0  # unsigned int
        # module statics
        self.buf = 0  # char *buf (virtual)
        self.buf_hdr = 0  # struct buf_header * (virtual); buf_ptr/buf_len live in it
        self.buf_size = 0
        self.buf_lock = DEFINE_SPINLOCK("buf_lock")
        self.memconsole = Console(name="memconsole", write=self.record_msg,
                                  flags=self.con_flags, index=0)
        self.paniced = NotifierBlock(notifier_call=self.panic_restart, priority=INT_MIN)

    # -- the boot part: mm/bootmem.c ----------------------------------------------------------

    @setup("memconsole=", core=True)
    async def memconsole_setup(self, str_: str) -> int:
        # unsigned int memconsole_mem_size; decimal only: "1M" is 1 byte, "0x100000" is 0 (F1)
        self.memconsole_mem_size = simple_strtoul(str_, 10)[0] & UINT_MASK
        self.memconsole_mem_size = PAGE_ALIGN(self.memconsole_mem_size) & UINT_MASK
        # unsigned long start: the search wraps around below pfn 0 (F5), and a zero size
        # steps by nothing and retries the same candidate forever (F2).
        start = (max_low_pfn() - (self.memconsole_mem_size >> PAGE_SHIFT)) & ULONG_MASK
        while start >= min_low_pfn():
            # ASSUMPTION: the archive lost this call's last arguments; the mail's text names
            # the size and BOOTMEM_EXCLUSIVE ("In order to avoid the corruption ...").
            if reserve_bootmem_generic((start << PAGE_SHIFT) & ULONG_MASK,
                                       self.memconsole_mem_size, BOOTMEM_EXCLUSIVE) >= 0:
                break
            start = (start - (self.memconsole_mem_size >> PAGE_SHIFT)) & ULONG_MASK
        if start < min_low_pfn():
            await panic("Can't reserve bootmem for memconsole\n")
        self.memconsole_mem_start = phys_to_virt(start << PAGE_SHIFT)
        await printk("reserve bootmem for memconsole %u@%p\n",
                     self.memconsole_mem_size, self.memconsole_mem_start)
        return 1

    # -- the module ---------------------------------------------------------------------------

    async def panic_restart(self, block: NotifierBlock, l: int, p: object) -> int:
        # ASSUMPTION: the body is lost in the archive; "if (reboot)" restarts the machine the
        # way the panic path itself does, with emergency_restart().
        if self.reboot:
            await emergency_restart()
        return NOTIFY_DONE

    def _hdr_ptr(self) -> int:
        return virt_read_u64(self.buf_hdr + BUF_PTR_OFFSET)

    def _set_hdr_ptr(self, value: int) -> None:
        virt_write_u64(self.buf_hdr + BUF_PTR_OFFSET, value & ULONG_MASK)

    def _hdr_len(self) -> int:
        return virt_read_u32(self.buf_hdr + BUF_LEN_OFFSET)

    def _set_hdr_len(self, value: int) -> None:
        virt_write_u32(self.buf_hdr + BUF_LEN_OFFSET, value & UINT_MASK)

    async def buf_init(self) -> int:
        if self.memconsole_mem_size == 0 or self.memconsole_mem_start is None:
            await printk(KERN_WARNING + "no memory for memconsole\n")
            return -ENOMEM
        self.buf_hdr = self.memconsole_mem_start
        if self.memconsole_mem_size <= BUF_HEADER_SIZE:
            await printk(KERN_WARNING + "no enough memory for memconsole\n")
            return -EINVAL
        self.buf = self.buf_hdr + BUF_HEADER_SIZE
        self.buf_size = self.memconsole_mem_size - BUF_HEADER_SIZE
        if not self.whole_block:
            self.buf_size = min(self.buf_size, PAGE_SIZE)
        buf_ptr, buf_len = self._hdr_ptr(), self._hdr_len()
        if (buf_ptr < self.buf or buf_ptr >= self.buf + self.buf_size
                or buf_len > self.buf_size
                or (buf_len < self.buf_size
                    and ((buf_ptr - self.buf) & UINT_MASK) != buf_len)):
            # The archive cut this string after "isn't"; ksim completes it as "isn't valid".
            await printk(KERN_WARNING + "memory for memconsole isn't valid\n")
            self._set_hdr_ptr(self.buf)
            self._set_hdr_len(0)
        return 0

    async def record_msg(self, con: Console, msg: bytes) -> None:
        length = len(msg)
        pos = 0
        flags = await spin_lock_irqsave(self.buf_lock)
        while length != 0:
            n = min(self.buf + self.buf_size - self._hdr_ptr(), length)
            await memcpy_to(self._hdr_ptr(), msg[pos:pos + n])
            pos += n
            length -= n
            self._set_hdr_ptr(self._hdr_ptr() + n)
            if self._hdr_ptr() == self.buf + self.buf_size:
                self._set_hdr_ptr(self.buf)
            if self._hdr_len() < self.buf_size:
                self._set_hdr_len(min(self.buf_size, self._hdr_len() + n))
        spin_unlock_irqrestore(self.buf_lock, flags)

    async def proc_read(self, file: object, count: int, off: int) -> bytes:
        """The buffer oldest-first, ``count`` bytes from ``off`` (the 2009 read_proc handed
        back the whole buffer whatever it was asked, which only worked because the buffer
        never exceeded the one page it was given)."""
        flags = await spin_lock_irqsave(self.buf_lock)
        if self._hdr_len() < self.buf_size:
            segments = [(self.buf, self._hdr_len())]
        else:
            segments = [(self._hdr_ptr(), self.buf + self.buf_size - self._hdr_ptr()),
                        (self.buf, self._hdr_ptr() - self.buf)]
        page = bytearray()
        for start, size in segments:
            if count <= 0:
                break
            if off >= size:
                off -= size
                continue
            n = min(size - off, count)
            page += await memcpy_from(start + off, n)
            count -= n
            off = 0
        spin_unlock_irqrestore(self.buf_lock, flags)
        return bytes(page)

    def crash_log_region(self) -> tuple[int, int] | None:
        layout = self.kernel.layout
        if self.memconsole_mem_start is None or not self.memconsole_mem_size or layout is None:
            return None
        return layout.virt_to_phys(self.memconsole_mem_start), self.memconsole_mem_size

    async def init(self) -> int:
        retval = await self.buf_init()
        if retval != 0:
            return retval
        if proc_create("memconsole", 0o444, None, ProcOps(proc_read=self.proc_read)) is None:
            await printk("Can't register proc entry\n")
            return -EFAULT
        atomic_notifier_chain_register(panic_notifier_list, self.paniced)
        # ASSUMPTION: register_console() is not visible in the archive, but the console
        # cannot record without it.
        self.first_seq = log_next_seq()
        await register_console(self.memconsole)
        return 0

    async def check_invariants(self) -> list[str]:
        """For ``ksim stress``: the header is consistent and the buffer holds the newest
        console output, up to its capacity (what the console was given since it registered)."""
        problems = []
        buf_ptr, buf_len = self._hdr_ptr(), self._hdr_len()
        if not (self.buf <= buf_ptr < self.buf + self.buf_size and buf_len <= self.buf_size
                and (buf_len == self.buf_size or buf_ptr - self.buf == buf_len)):
            problems.append("header inconsistent: buf_ptr=%#x buf_len=%d (buf=%#x size=%d)"
                            % (buf_ptr, buf_len, self.buf, self.buf_size))
            return problems
        expected = console_output_since(self.memconsole, self.first_seq)
        tail = expected[-buf_len:] if buf_len else b""
        actual = await self.proc_read(None, self.buf_size, 0)
        if actual != tail:
            problems.append("/proc/memconsole is not the newest %d bytes of console output"
                            % buf_len)
        return problems

    async def exit(self) -> None:
        # As in the mail: no unregister_console(), so the console outlives the module (F10).
        await atomic_notifier_chain_unregister(panic_notifier_list, self.paniced)
        remove_proc_entry("memconsole", None)

"""ramoops.ko in a running ksim kernel: module parameters, probe, pstore registration.

The rest of fs/pstore/ram.c (``ramoops_register_dummy``, ``ramoops_probe``,
``ramoops_remove`` and the module parameters) on top of the byte code of
:mod:`ksim_ramoops.ram` and :mod:`ksim_ramoops.ram_core`, with pstore's registration, kmsg
dumper and console (:mod:`ksim_ramoops.platform`) and its filesystem
(:mod:`ksim_ramoops.inode`).  Built in (``ksim boot --plugin ramoops``) the module reads its
``ramoops.*`` options from the command line, as Debian's initramfs passes them to
``insmod ramoops.ko``; loadable, ``insmod("ramoops", mem_size=...)`` does the same.

What a boot does, in Linux's order: ``ramoops: using module parameters``; every zone is
attached (header ECC-corrected, old contents copied out by ``persistent_ram_save_old`` before
anything new is written, console and pmsg zones zapped); pstore sets deflate up
(``pstore: Using crash dump compression: deflate``), reads the records into
``/sys/fs/pstore`` (``dmesg-ramoops-N``, ``console-ramoops-0``, ``pmsg-ramoops-0``; an unlink
erases the record), registers the kmsg dumper with ``max_reason`` and, with ``pstore_console``,
the pstore console; ``pstore: Registered ramoops as persistent store backend``; ``ramoops:
using 0x100000@0x10000000, ecc: 0``.  On an Oops or panic the dumper writes the record that the
next warm boot shows.

The region must be kept from the page allocator, as on Linux: ``memmap=1M$0x10000000`` marks it
reserved in the e820 map.  (``reserve_mem=`` and ``ramoops.mem_name=`` came with Linux 6.12;
Debian's 6.1.192 has neither, see docs/ramoops.md.)

Two ksim options stand for kernel configuration: ``pstore_console`` (CONFIG_PSTORE_CONSOLE)
and ``pstore_pmsg`` (CONFIG_PSTORE_PMSG, ``/dev/pmsg0``), both off as in Debian's config.

Deviations
----------
* ``prz->buffer_lock`` is not taken by zone writes; pstore's ``buf_lock`` serialises dumps and
  the console writes are serialised by the console lock, which is all 6.1 relies on for the
  zones ramoops uses here (no ftrace frontend).
* A region outside the machine's RAM is refused at probe (``failed to request dmesg mem
  region``); Linux would ``ioremap`` it and read whatever the bus returns.
* Built in, pstore's compression is set up at registration (as when ramoops.ko is loaded);
  a built-in 6.1 ramoops registers at postcore and gets compression at late_initcall.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final

import attrs

from ksim import KERN_ERR, KERN_INFO, KernelModule, current_kernel, module_param, printk
from ksim.fs import ProcFile, ProcOps
from ksim.memory import PhysMem
from ksim.mm import MEMCPY_CHUNK
from ksim_ramoops.inode import pstore_fs_mkfile
from ksim_ramoops.platform import (
    Pstore, PstoreInfo, pstore_get_backend_records, pstore_register, pstore_unregister,
    write_pmsg,
)
from ksim_ramoops.pstore import PSTORE_FLAGS_PMSG, PstoreRecord
from ksim_ramoops.ram import (
    MIN_MEM_SIZE, RamoopsContext, ramoops_platform_data_from_params, ramoops_probe_zones,
    ramoops_pstore_erase, ramoops_pstore_open, ramoops_pstore_read, ramoops_pstore_write,
    ramoops_pstore_write_user,
)
from ksim_ramoops.ram_core import Buffer, RamLog

__all__ = ["Ramoops"]

PMSG_PATH: Final = "/dev/pmsg0"
# the line ramoops_pstore_read() ends a record with when ECC could not repair a block
_UNRECOVERABLE = re.compile(rb"ECC: \d+ Corrected bytes, ([1-9]\d*) unrecoverable blocks")


@attrs.frozen
class KernelRam:
    """The running kernel's RAM as the zones see it (their ``vmap``/``ioremap`` mapping).

    ``memcpy_toio`` copies a cache line at a time with a preemption point before each, as
    :func:`ksim.mm.memcpy_to` does: a dump's copy into its zone takes time, during which
    another CPU runs (and may panic, and stop this one half-way through the copy).
    """

    mem: PhysMem

    def read(self, addr: int, n: int) -> bytes:
        return self.mem.read(addr, n)

    def write(self, addr: int, data: Buffer) -> None:
        self.mem.write(addr, data)

    async def memcpy_toio(self, addr: int, data: Buffer) -> None:
        sched = current_kernel().sched
        view = memoryview(data).cast("B")
        if not sched.preemptible_copies:
            self.mem.write(addr, view)
            return
        for off in range(0, len(view), MEMCPY_CHUNK):
            await sched.preempt_point()
            self.mem.write(addr + off, view[off:off + MEMCPY_CHUNK])


class Ramoops(KernelModule):
    name = "ramoops"
    description = "RAM Oops/Panic logger/driver"
    author = "Marco Stornelli <marco.stornelli@gmail.com>"
    license = "GPL"
    initcall = "postcore"  # postcore_initcall(ramoops_init)
    # ksim compare: Documentation/admin-guide/ramoops.rst's setup (a memmap=$ region, 16 KiB
    # records, ECC on), and the files the next boot shows
    usual_cmdline = ("memmap=1M$0x10000000 ramoops.mem_address=0x10000000 "
                     "ramoops.mem_size=0x100000 ramoops.record_size=0x4000 ramoops.ecc=1")
    crash_log_files = ("/sys/fs/pstore",)
    crash_log_lock = "psinfo->buf_lock"  # pstore_dump's, around every dmesg record it writes

    @classmethod
    def crash_log_flags(cls, shown: Mapping[str, bytes]) -> list[str]:
        """A file ends with ramoops' ECC line, and says so when blocks were unrecoverable; a
        record that did not inflate stays compressed as ``.enc.z`` (pstore's naming)."""
        flags = [f"{name}: {m.group(0).decode()}" for name, data in shown.items()
                 for m in [_UNRECOVERABLE.search(data)] if m]
        return flags + [f"{name}: left compressed" for name in shown if name.endswith(".enc.z")]

    record_size = module_param("ulong", MIN_MEM_SIZE, 0o400, "size of each dump done on oops/panic")
    console_size = module_param("ulong", MIN_MEM_SIZE, 0o400, "size of kernel console log")
    ftrace_size = module_param("ulong", MIN_MEM_SIZE, 0o400, "size of ftrace log")
    pmsg_size = module_param("ulong", MIN_MEM_SIZE, 0o400, "size of user space message log")
    mem_address = module_param("ullong", 0, 0o400,
                               "start of reserved RAM used to store oops/panic logs")
    mem_size = module_param("ulong", 0, 0o400,
                            "size of reserved RAM used to store oops/panic logs")
    mem_type = module_param("uint", 0, 0o400,
                            "memory type: 0=write-combined (default), 1=unbuffered, 2=cached")
    max_reason = module_param("int", -1, 0o400,
                              "maximum reason for kmsg dump (default 2: Oops and Panic) ")
    ecc = module_param("int", 0, 0o400,
                       "if non-zero, the option enables ECC support and specifies ECC buffer "
                       "size in bytes (1 is a special value, means 16 bytes ECC)")
    dump_oops = module_param("int", -1, 0o400,
                             "(deprecated: use max_reason instead) set to 1 to dump oopses "
                             "& 2 to dump panics")
    pstore_console = module_param("bool", False, 0o400,
                                  "ksim: CONFIG_PSTORE_CONSOLE, the console copied to the "
                                  "console zone (off in Debian)")
    pstore_pmsg = module_param("bool", False, 0o400,
                               "ksim: CONFIG_PSTORE_PMSG, /dev/pmsg0 (off in Debian)")

    def __init__(self, kernel: object, builtin: bool) -> None:
        super().__init__(kernel, builtin)  # type: ignore[arg-type]
        self.cxt: RamoopsContext | None = None
        self.pstore = Pstore()
        self.log = RamLog()

    async def _flush_log(self) -> None:
        """Print what the zone code logged (it cannot await printk itself)."""
        messages, self.log.messages = self.log.messages, []
        for level, text in messages:
            await printk(f"\x01{level}%s\n", text)

    def _region_in_ram(self, start: int, size: int) -> bool:
        return any(lo <= start and start + size <= hi
                   for lo, hi in current_kernel().mem.ram_ranges())

    def crash_log_region(self) -> tuple[int, int] | None:
        return (self.mem_address, self.mem_size) if self.mem_size else None

    async def init(self) -> int:
        """ramoops_init: ramoops_register_dummy() and, with a device, ramoops_probe()."""
        if not self.mem_size:  # no module parameters: no device, nothing to probe
            return 0
        await printk(KERN_INFO + "ramoops: using module parameters\n")
        err = await self.ramoops_probe()
        if err:
            await printk(KERN_ERR + "ramoops ramoops: probe of ramoops failed with error %d\n",
                         err)
            return 0  # the driver registered; only its device failed, as with a .ko
        return 0

    async def ramoops_probe(self) -> int:
        pdata = ramoops_platform_data_from_params(
            self.mem_address, self.mem_size, record_size=self.record_size,
            console_size=self.console_size, ftrace_size=self.ftrace_size,
            pmsg_size=self.pmsg_size, mem_type=self.mem_type, max_reason=self.max_reason,
            dump_oops=self.dump_oops, ecc=self.ecc,
        )
        kernel = current_kernel()
        if pdata.mem_size and not self._region_in_ram(pdata.mem_address, pdata.mem_size):
            await printk(KERN_ERR + "ramoops ramoops: failed to request dmesg mem region "
                         "(0x%x@0x%x): %d\n", pdata.record_size, pdata.mem_address, -12)
            return -12
        cxt = ramoops_probe_zones(pdata, KernelRam(kernel.mem), self.log, nr_cpu_ids=kernel.smp.nr_cpu_ids)
        await self._flush_log()
        if isinstance(cxt, int):
            return cxt
        self.cxt = cxt
        psi = PstoreInfo(
            name=cxt.name, flags=cxt.pstore_flags, max_reason=cxt.max_reason,
            bufsize=cxt.bufsize,
            open=lambda: ramoops_pstore_open(cxt),
            read=lambda record: ramoops_pstore_read(cxt, record),
            write=self._write,
            write_user=self._write_user,
            erase=self._erase,
        )
        err = await pstore_register(self.pstore, psi, self._get_records)
        if err:
            await printk(KERN_ERR + "ramoops: registering with pstore failed\n")
            self.cxt = None
            return err
        if psi.flags & PSTORE_FLAGS_PMSG and self.pstore_pmsg:
            async def pmsg_write(file: ProcFile, data: bytes) -> int:
                return await write_pmsg(self.pstore, data)
            kernel.vfs.create(PMSG_PATH, 0o220, ProcOps(proc_write=pmsg_write), owner=self.name)
        # The module parameters show what was used (sizes rounded, max_reason resolved).
        self.mem_size = pdata.mem_size
        self.mem_address = pdata.mem_address
        self.record_size = pdata.record_size
        self.max_reason = pdata.max_reason
        self.console_size = pdata.console_size
        self.pmsg_size = pdata.pmsg_size
        self.ftrace_size = pdata.ftrace_size
        await printk(KERN_INFO + "ramoops: using 0x%x@0x%x, ecc: %d\n",
                     cxt.size, cxt.phys_addr, cxt.ecc_info.ecc_size)
        return 0

    async def _write(self, record: PstoreRecord) -> int:
        assert self.cxt is not None
        return await ramoops_pstore_write(self.cxt, record)

    async def _write_user(self, record: PstoreRecord, data: bytes) -> int:
        assert self.cxt is not None
        return await ramoops_pstore_write_user(self.cxt, record, data)

    def _erase(self, record: PstoreRecord) -> int:
        assert self.cxt is not None
        return ramoops_pstore_erase(self.cxt, record)

    async def _get_records(self) -> None:
        """pstore_get_records(0) on the mounted root: a file per record."""
        kernel = current_kernel()
        cxt = self.cxt
        assert cxt is not None
        psi = self.pstore.psinfo
        assert psi is not None
        if psi.open():
            return
        pstore_get_backend_records(
            cxt.name, psi.read, self.pstore.comp,
            lambda record: pstore_fs_mkfile(kernel.vfs, record, self._erase, self.name),
            quiet=False, log=self.log.pr,
        )
        await self._flush_log()

    async def exit(self) -> None:
        """ramoops_remove: pstore lets go of the backend; the files and /dev/pmsg0 go."""
        await pstore_unregister(self.pstore)
        vfs = current_kernel().vfs
        vfs.remove_owned(self.name)
        self.cxt = None

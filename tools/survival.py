"""Does a crash log survive the next boot?  Survival over many seeds, per firmware profile.

Issue 10's measurement: for each configuration (firmware profile, with or without a
distribution-sized initramfs, with or without KASLR) and each seed, a machine boots, records
an error and a panic, restarts warm, and boots again with the same command line.  Two kinds of
log are measured:

``memconsole``
    The 2009 proposal (``memconsole=8192``): its block sits where the search from the top of
    memory found room.  *intact*: the panic line's bytes are still at the block's physical
    address when the second boot's initcalls begin (before memconsole looks at them);
    *shown*: ``/proc/memconsole`` of the second boot still holds the panic line.
``memmap$``
    A block at a fixed address that the command line reserves (``memmap=1M$0x10000000``),
    as ramoops does: a tiny module writes the panic line there from the panic notifier and the
    next boot's module reads it back (*intact* = *shown*: it keeps physical addresses only).

The machine is 1 GiB with the ``debian`` kernel image and the profile's firmware.  The
initramfs is none, or a size drawn per seed from 30 to 80 MB, either the same at both boots or
grown by 1 to 8 MB at the second (a new initramfs after an update).  Run ``python tools/survival.py`` (add
``--seeds 10`` for a quick look, ``--markdown`` for the table of docs/survival.md).
"""

from __future__ import annotations

import argparse
import random

import trio
import trio.testing

from ksim import (
    KERN_ERR, INT_MIN, KernelModule, Machine, NotifierBlock, atomic_notifier_chain_register,
    panic, panic_notifier_list, phys_to_virt, printk, virt_read, virt_write,
)
from ksim_memconsole import BUF_HEADER_SIZE, Memconsole

PANIC_LINE = b"Kernel panic - not syncing: Fatal exception"
PMEM_ADDR = 0x10000000
PMEM_MAGIC = b"PMEMLOG1"
PROFILES = ("seabios", "pc-bios", "pc-bios+reboot=warm", "uefi", "ecc-scrub")


class PmemLog(KernelModule):
    """The smallest ramoops: a record at a fixed physical address, kept by ``memmap=1M$``."""

    name = "pmemlog"
    initcall = "device"
    found: bytes = b""

    async def init(self) -> int:
        record = virt_read(phys_to_virt(PMEM_ADDR), 256)
        PmemLog.found = record[8:].split(b"\0", 1)[0] if record[:8] == PMEM_MAGIC else b""
        virt_write(phys_to_virt(PMEM_ADDR), PMEM_MAGIC + b"\0")

        async def on_panic(nb: NotifierBlock, action: int, data: object) -> int:
            virt_write(phys_to_virt(PMEM_ADDR),
                       PMEM_MAGIC + b"Kernel panic - not syncing: %s\0" % str(data).encode())
            return 0

        atomic_notifier_chain_register(panic_notifier_list,
                                       NotifierBlock(on_panic, priority=INT_MIN + 1))
        return 0


class Snap(KernelModule):
    """Reads memconsole's old block before memconsole's own initcall can touch it."""

    name = "snap"
    initcall = "early"
    phys = 0
    seen: bytes = b""

    async def init(self) -> int:
        Snap.seen = virt_read(phys_to_virt(Snap.phys), 4096) if Snap.phys else b""
        return 0


INITRDS = ("none", "30-80 MB", "grows 1-8 MB")


def _config(profile: str, initrd: str, kaslr: bool, seed: int) -> tuple[Machine, str, int]:
    """The machine, the command line, and the second boot's initramfs size."""
    firmware, _, extra = profile.partition("+")
    rng = random.Random(f"initrd {seed}")
    size = rng.randrange(30, 81) << 20 if initrd != "none" else 0
    grown = size + (rng.randrange(1, 9) << 20 if initrd.startswith("grows") else 0)
    m = Machine("1G", seed=seed, firmware=firmware, initrd=size, kernel="debian")
    line = "loglevel=4" + ("" if kaslr else " nokaslr") + (" " + extra if extra else "")
    return m, line, grown


async def memconsole_once(profile: str, initrd: str, kaslr: bool, seed: int) -> tuple[bool, bool]:
    m, line, grown = _config(profile, initrd, kaslr, seed)
    line = "memconsole=8192 " + line
    async with m.boot(line, [Memconsole]) as k1:
        await printk(KERN_ERR + "disk on fire\n")
        mod = k1.module.instances["memconsole"]
        assert isinstance(mod, Memconsole) and k1.layout is not None
        Snap.phys = k1.layout.virt_to_phys(mod.buf_hdr)
        await panic("Fatal exception")
    Snap.seen = b""
    async with m.boot(line, [Snap, Memconsole], initrd=grown) as k2:
        shown = PANIC_LINE in await k2.read_file("/proc/memconsole")
    intact = PANIC_LINE in Snap.seen[BUF_HEADER_SIZE:]
    m.close()
    return intact, shown


async def pmem_once(profile: str, initrd: str, kaslr: bool, seed: int) -> bool:
    m, line, grown = _config(profile, initrd, kaslr, seed)
    line = "memmap=1M$0x10000000 panic=-1 " + line
    async with m.boot(line, [PmemLog]):
        await panic("Fatal exception")
    PmemLog.found = b""
    async with m.boot(line, [PmemLog], initrd=grown):
        pass
    m.close()
    return PmemLog.found == PANIC_LINE


async def measure(seeds: int) -> list[tuple[str, str, str, int, int, int]]:
    rows = []
    for profile in PROFILES:
        for initrd in INITRDS:
            for kaslr in (False, True):
                intact = shown = pmem = 0
                for seed in range(seeds):
                    a, b = await memconsole_once(profile, initrd, kaslr, seed)
                    intact += a
                    shown += b
                    pmem += await pmem_once(profile, initrd, kaslr, seed)
                rows.append((profile, initrd, "on" if kaslr else "nokaslr", intact, shown, pmem))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=100)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    rows = trio.run(measure, args.seeds, clock=trio.testing.MockClock(autojump_threshold=0))
    n = args.seeds
    if args.markdown:
        print("| firmware | initramfs | KASLR | memconsole intact | memconsole shown | memmap$ block |")
        print("|---|---|---|---|---|---|")
        for profile, initrd, kaslr, intact, shown, pmem in rows:
            print(f"| {profile} | {initrd} | {kaslr} | {intact}/{n} | {shown}/{n} | {pmem}/{n} |")
        return
    print(f"{'firmware':22} {'initramfs':13} {'KASLR':8} {'intact':>8} {'shown':>8} {'memmap$':>8}")
    for profile, initrd, kaslr, intact, shown, pmem in rows:
        print(f"{profile:22} {initrd:13} {kaslr:8} {intact:>5}/{n} {shown:>5}/{n} {pmem:>5}/{n}")


if __name__ == "__main__":
    main()

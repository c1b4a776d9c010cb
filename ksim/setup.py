"""The architecture's early boot (arch/x86/kernel/setup.c): ``setup_arch()``, in 6.1's order.

1. ``Command line:`` and the early reservations: the kernel image where the decompressor put it
   (:mod:`ksim.kaslr`), the first 64 KiB, the initramfs, the BIOS area below 1 MiB;
2. the firmware's e820 map (:mod:`ksim.e820`), the early parameters, the ``user:`` map;
3. the kernel's own range made RAM, page 0 and 640K-1M made not RAM, ``max_pfn`` (``last_pfn``),
   the direct map's randomised base (:func:`ksim.kaslr.kernel_randomize_memory`), the second
   ``last_pfn`` above 4 GiB;
4. the brk area reserved, RAM handed to memblock, the real-mode trampoline below 1 MiB and then
   all of the first MiB reserved, the direct map (``init_mem_mapping``: the early memory test,
   and ``max_low_pfn = max_pfn`` on x86-64, E5);
5. top-down allocations, each where 6.x puts it and printed where Linux prints it (E6): the
   ``log_buf_len=`` buffer, the initramfs check (``RAMDISK:``, moved if ``mem=`` cut it off),
   NODE_DATA, ``crashkernel=`` (E7), the ``struct page`` arrays, then the zones;
6. ``/proc/iomem``'s resources, the nosave regions and the PCI gap.

x86's panic notifier that prints the kernel's offset (``Kernel Offset:``, D3) is defined here and
registered by an initcall (``__initcall(register_kernel_offset_dumper)``): a panic before the
initcalls, such as the early ``Too many boot init vars``, has no such line (oracle F1).

The kernel image's sizes are :class:`ksim.vmlinux.KernelImage`'s.  Not modelled: the direct
map's page tables (a few pages from brk, and top-down on big machines), ACPI table parsing,
MTRR trimming, EFI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from ksim.crash_core import parse_crashkernel
from ksim.e820 import (
    E820_TYPE_RAM, e820__end_of_low_ram_pfn, e820__end_of_ram_pfn, e820__finish_early_params,
    e820__memory_setup, e820__pci_gap, e820__register_nosave_regions, e820_add_kernel_range,
    e820_type_to_string, trim_bios_range,
)
from ksim.current import current_kernel
from ksim.fs import ProcOps, text_reader
from ksim.init import kernel_file, parse_early_param
from ksim.kaslr import LOAD_PHYSICAL_ADDR, MODULES_VADDR, __START_KERNEL, __START_KERNEL_map, \
    kernel_randomize_memory
from ksim.kern_levels import KERN_EMERG, LOGLEVEL_INFO
from ksim.memblock import Memblock
from ksim.memory import FOUR_GIB, PAGE_ALIGN, PAGE_SHIFT, PAGE_SIZE, DirectMapHole, \
    MemoryLayout, PageFault
from ksim.memtest import early_memtest
from ksim.notifier import NotifierBlock
from ksim.numa import NodeDataFailed, initmem_init
from ksim.page_alloc import MAX_DMA_PFN, ZoneInfo, free_area_init, memory_pfn_ranges
from ksim.printk import printk, setup_log_buf
from ksim.sparse import sparse_init

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["KERNEL_IMAGE_START", "EarlyPanic", "SetupState", "dump_kernel_offset",
           "reserve_crashkernel",
           "setup_arch"]

# Where a kernel without KASLR runs (CONFIG_PHYSICAL_START); with KASLR see k.kaslr.phys_base.
KERNEL_IMAGE_START: Final = LOAD_PHYSICAL_ADDR
ISA_END_ADDRESS: Final = 0x100000
SZ_64K: Final = 0x10000
BIOS_START_MAX: Final = 0x9F000
REAL_MODE_SIZE: Final = 0x7000  # the trampoline (observed at 0x98000-0x9efff)
CRASH_ALIGN: Final = 16 << 20
CRASH_ADDR_LOW_MAX: Final = 1 << 32
CRASH_ADDR_HIGH_MAX: Final = 64 << 40


@attrs.define
class SetupState:
    """What setup_arch leaves for later: the initramfs (start, size) while the kernel holds it,
    the crash kernel's resources, the zones, the bounce buffer."""

    initrd: tuple[int, int] | None = None
    crashk_res: tuple[int, int] | None = None
    crashk_low_res: tuple[int, int] | None = None
    zones: ZoneInfo | None = None
    swiotlb: int = 0
    trampoline: int = 0  # the real-mode trampoline below 1 MiB (0: none could be had)


class EarlyPanic(Exception):
    """setup_arch cannot go on (``panic()`` before the console exists): the message."""


async def dump_kernel_offset(nb: NotifierBlock, action: int, data: object) -> int:
    """x86's panic notifier: where KASLR put the kernel text (D3)."""
    kaslr = current_kernel().kaslr
    if kaslr.enabled:
        await printk(KERN_EMERG + "Kernel Offset: %#x from %#x (relocation range: %#x-%#x)\n",
                     kaslr.kaslr_offset(), __START_KERNEL, __START_KERNEL_map, MODULES_VADDR - 1)
    else:
        await printk(KERN_EMERG + "Kernel Offset: disabled\n")
    return 0


def early_reserve_memory(k: Kernel) -> None:
    """The reservations made before memblock knows any memory."""
    mb = k.memblock
    assert mb is not None
    base, image = k.kaslr.phys_base, k.image
    mb.memblock_reserve(base, image.bss[1])  # [_text, __end_of_kernel_reserve)
    mb.memblock_reserve(0, SZ_64K)
    bp = k.boot_params
    if bp.type_of_loader and bp.ramdisk_image and bp.ramdisk_size:
        end = PAGE_ALIGN(bp.ramdisk_image + bp.ramdisk_size)
        mb.memblock_reserve(bp.ramdisk_image, end - bp.ramdisk_image)
    # reserve_bios_regions(): QEMU's BDA says 639 KiB of base memory and an EBDA at 0x9fc00,
    # which clamp to BIOS_START_MAX.
    mb.memblock_reserve(BIOS_START_MAX, ISA_END_ADDRESS - BIOS_START_MAX)


def reserve_initrd(k: Kernel, max_pfn: int) -> None:
    """``RAMDISK:``; an initramfs the direct map does not cover is moved (D2)."""
    bp = k.boot_params
    if not (bp.type_of_loader and bp.ramdisk_image and bp.ramdisk_size):
        return
    mb = k.memblock
    assert mb is not None
    image, size = bp.ramdisk_image, bp.ramdisk_size
    end = PAGE_ALIGN(image + size)
    log = k.printk.log_line
    log(LOGLEVEL_INFO, "RAMDISK: [mem %#010x-%#010x]" % (image, end - 1))
    if k.e820.table.mapped_all(image & ~(PAGE_SIZE - 1), end, E820_TYPE_RAM) and \
            end <= max_pfn << PAGE_SHIFT:
        k.setup.initrd = (image, size)
        return
    new = mb.memblock_phys_alloc_range(PAGE_ALIGN(size), PAGE_SIZE, 0, max_pfn << PAGE_SHIFT)
    if not new:
        raise EarlyPanic("Cannot find place for new RAMDISK of size %d" % size)
    log(LOGLEVEL_INFO, "Allocated new RAMDISK: [mem %#010x-%#010x]" % (new, new + size - 1))
    k.mem.fill([(new, new + size)], f"initrd:{size}")
    log(LOGLEVEL_INFO, "Move RAMDISK from [mem %#010x-%#010x] to [mem %#010x-%#010x]" % (
        image, image + size - 1, new, new + size - 1))
    mb.memblock_phys_free(image, end - image)
    k.setup.initrd = (new, size)


def acpi_table_upgrade(k: Kernel) -> None:
    """drivers/acpi/tables.c (``CONFIG_ACPI_TABLE_UPGRADE``, Debian's): find_cpio_data() looks
    for ``kernel/firmware/acpi/`` tables in the initramfs, reading it through the direct map.
    It is the first kernel read of the top of low RAM (D11, oracle: the Oops of ``memmap=`` RAM
    the machine lacks is here); ksim's initramfs holds no table overrides, so what matters is
    the read of its first header."""
    if k.setup.initrd is None:
        return
    assert k.layout is not None
    find_cpio_data(k, k.layout.phys_to_virt(k.setup.initrd[0]), k.setup.initrd[1])


CPIO_HEADER_LEN: Final = 110  # a newc header: the magic and 13 eight-digit hex fields


def find_cpio_data(k: Kernel, data: int, size: int) -> None:
    """lib/earlycpio.c: the scan starts by reading the first header at ``data`` (virtual); the
    garbage ksim's initramfs holds there has no ``070701`` magic, which ends the scan."""
    assert k.layout is not None
    length = min(size, CPIO_HEADER_LEN)
    k.mem.read(k.layout.translate(data, length, False), length)


def reserve_crashkernel(k: Kernel) -> None:
    """``crashkernel=`` with 6.1's x86 placement (E7): 16 MiB-aligned, top-down below 4 GiB, then
    anywhere; a fixed base must be free."""
    mb = k.memblock
    assert mb is not None
    log = k.printk.log_line
    total = mb.phys_mem_size()
    cmdline = k.init.boot_command_line
    high = False
    parsed = parse_crashkernel(cmdline, total, k.printk)
    if parsed is None or parsed[0] <= 0:
        parsed = parse_crashkernel(cmdline, total, k.printk, ",high")
        if parsed is None or parsed[0] <= 0:
            return
        high = True
    size, base = parsed
    if not base:
        if not high:
            base = mb.memblock_phys_alloc_range(size, CRASH_ALIGN, CRASH_ALIGN, CRASH_ADDR_LOW_MAX)
        if not base:
            base = mb.memblock_phys_alloc_range(size, CRASH_ALIGN, CRASH_ALIGN,
                                                CRASH_ADDR_HIGH_MAX)
        if not base:
            log(LOGLEVEL_INFO, "crashkernel reservation failed - No suitable area found.")
            return
    else:
        start = mb.memblock_phys_alloc_range(size, 1 << 20, base, base + size)
        if start != base:
            if start:
                mb.memblock_phys_free(start, size)
            log(LOGLEVEL_INFO, "crashkernel reservation failed - memory is in use.")
            return
    if base >= FOUR_GIB and not _reserve_crashkernel_low(k, total):
        mb.memblock_phys_free(base, size)
        return
    log(LOGLEVEL_INFO, "Reserving %dMB of memory at %dMB for crashkernel (System RAM: %dMB)"
        % (size >> 20, base >> 20, total >> 20))
    k.setup.crashk_res = (base, base + size - 1)


def _reserve_crashkernel_low(k: Kernel, total: int) -> bool:
    mb = k.memblock
    assert mb is not None
    limit = min(total, CRASH_ADDR_LOW_MAX)
    parsed = parse_crashkernel(k.init.boot_command_line, limit, k.printk, ",low")
    if parsed is None:
        low_size = max((64 << 20) + (8 << 20), 256 << 20)
    else:
        low_size = parsed[0]
        if not low_size:
            return True
    low = mb.memblock_phys_alloc_range(low_size, CRASH_ALIGN, 0, CRASH_ADDR_LOW_MAX)
    log = k.printk.log_line
    if not low:
        log(3, "Cannot reserve %dMB crashkernel low memory, please try smaller size."
            % (low_size >> 20))
        return False
    log(LOGLEVEL_INFO, "Reserving %dMB of low memory at %dMB for crashkernel (low RAM limit: "
        "%dMB)" % (low_size >> 20, low >> 20, limit >> 20))
    k.setup.crashk_low_res = (low, low + low_size - 1)
    return True


PMD_SIZE: Final = 2 << 20
PUD_SIZE: Final = 1 << 30
PGDIR_SIZE: Final = 1 << 39  # 4-level paging: QEMU's default CPU has no LA57
_ULONG: Final = (1 << 64) - 1
# INIT_PGT_BUF_SIZE: 4 * INIT_PGD_PAGE_TABLES pages with CONFIG_RANDOMIZE_MEMORY and
# CONFIG_X86_5LEVEL (Debian's configuration)
PGT_BUF_PAGES: Final = 16


_PAGE_TABLE: Final = 0x067  # PRESENT | RW | USER | ACCESSED | DIRTY: an early table entry
# The levels _DirectMap counts, as (key, bytes one table of that level maps, the entries that
# point to such a table in dump_pagetable()'s line, the entry read from the table).
_LEVELS: Final = (("pud", PGDIR_SIZE, ("PGD", "P4D"), "PUD"), ("pmd", PUD_SIZE, ("PUD",), "PMD"),
                  ("pte", PMD_SIZE, ("PMD",), "PTE"))


class _DirectMap:
    """init_mem_mapping()'s page tables (arch/x86/mm/init.c, init_64.c), counted, not built.

    The direct map needs a PUD page per 512 GiB, a PMD page per 1 GiB and a PTE page per 2 MiB
    it maps with 4 KiB pages (the ends of RAM ranges that are not 2 MiB-aligned; QEMU's default
    CPU has no 1 GiB pages).  ``alloc_low_pages`` takes them from the 16-page buffer in the
    kernel's brk, except for ranges overlapping that buffer and once it is used up: then from
    memblock, top-down within what is already mapped (E6: the 3 pages at the top of RAM on
    machines with RAM above 4 GiB, the page below 16 MiB with ``mem=16M``).

    A ``memmap=`` range of RAM the machine lacks is the top of memblock, so such a page can land
    where there is no RAM (D11): clear_page() and the entries written to it are lost (QEMU drops
    stores to nothing and reads zeros back), and the part of the direct map it should describe
    is not present: a :class:`DirectMapHole`.
    """

    def __init__(self, k: Kernel, page_offset: int, pgt_buf: int) -> None:
        self.k = k
        self.page_offset = page_offset
        self.pgt_buf_end = pgt_buf
        self.pgt_buf_top = pgt_buf + PGT_BUF_PAGES * PAGE_SIZE
        self.tables: dict[tuple[str, int], int] = {}  # (level, index) -> the table's address
        self.holes: list[DirectMapHole] = []
        self.min_mapped = 0
        self.max_mapped = 0
        self.can_use_brk = True

    def alloc_low_page(self) -> int:
        """A zeroed page for a table: its physical address."""
        if self.can_use_brk and self.pgt_buf_end < self.pgt_buf_top:
            self.pgt_buf_end += PAGE_SIZE
            return self.pgt_buf_end - PAGE_SIZE
        mb = self.k.memblock
        assert mb is not None
        addr = mb.memblock_phys_alloc_range(PAGE_SIZE, PAGE_SIZE, self.min_mapped,
                                            self.max_mapped)
        if not addr:
            raise EarlyPanic("alloc_low_pages: can not alloc memory")
        virt = (addr + self.page_offset) & _ULONG
        for hole in self.holes:  # clear_page(__va(addr)) through a part already lost
            if hole.start <= virt < hole.end:
                raise PageFault(virt, True, hole.walk)
        if self.k.mem.contains(addr, PAGE_SIZE):
            self.k.mem.fill([(addr, addr + PAGE_SIZE)], "pgtable")
        return addr

    def _need(self, level: str, virt: int, size: int) -> None:
        key = (level, virt // size)
        if key not in self.tables:
            addr = self.tables[key] = self.alloc_low_page()
            if not self.k.mem.contains(addr, PAGE_SIZE):
                start = virt & ~(size - 1)
                self.holes.append(DirectMapHole(start, start + size, self._walk(start)))

    def _walk(self, virt: int) -> str:
        """dump_pagetable()'s line for ``virt``: each entry down to the one read from a table
        with no RAM behind it (0: not present)."""
        line = ""
        for level, size, pointers, entry in _LEVELS:
            table = self.tables[(level, virt // size)]
            line += "".join("%s %x " % (name, table | _PAGE_TABLE) for name in pointers)
            if not self.k.mem.contains(table, PAGE_SIZE):
                return line + ("%s 0" if entry == "PTE" else "%s 0 ") % entry
        raise AssertionError("no table of the walk is missing")

    def init_memory_mapping(self, start: int, end: int) -> None:
        """One range: PUD and PMD pages as needed, PTE pages for its 4 KiB parts."""
        if start >= end:
            return
        head_end = min(end, (start + PMD_SIZE - 1) & ~(PMD_SIZE - 1))
        tail_start = max(head_end, end & ~(PMD_SIZE - 1))
        pieces = [(start, head_end, True), (head_end, tail_start, False), (tail_start, end, True)]
        for p_start, p_end, small in pieces:
            addr = p_start
            while addr < p_end:
                virt = (addr + self.page_offset) & _ULONG
                self._need("pud", virt, PGDIR_SIZE)
                self._need("pmd", virt, PUD_SIZE)
                if small:
                    self._need("pte", virt, PMD_SIZE)
                step = PMD_SIZE if small else PUD_SIZE
                addr = min(p_end, (addr & ~(step - 1)) + step)
        self.max_mapped = max(self.max_mapped, end & ~(PAGE_SIZE - 1))

    def init_range_memory_mapping(self, r_start: int, r_end: int) -> int:
        mb = self.k.memblock
        assert mb is not None
        mapped = 0
        for region in mb.memory:
            start, end = max(region.base, r_start), min(region.end, r_end)
            if start >= end:
                continue
            self.can_use_brk = max(start, self.pgt_buf_end) >= min(end, self.pgt_buf_top)
            self.init_memory_mapping(start, end)
            mapped += end - start
        return mapped


def init_mem_mapping(k: Kernel, max_pfn: int) -> tuple[DirectMapHole, ...]:
    """The direct map, mapped top-down (``memory_map_top_down``): the parts of it that are not
    present because their table has no RAM behind it (D11)."""
    mb = k.memblock
    assert mb is not None
    end = max_pfn << PAGE_SHIFT
    dm = _DirectMap(k, k.kaslr.direct_map_base(), k.kaslr.phys_base + k.image.bss[1])
    dm.init_memory_mapping(0, ISA_END_ADDRESS)  # always mapped, holes or not
    if k.kaslr.enabled or k.kaslr.page_offset_random:
        dm.alloc_low_page()  # init_trampoline_kaslr(): the trampoline's PUD page
    dm.can_use_brk = True
    addr = mb.memblock_phys_alloc_range(PMD_SIZE, PMD_SIZE, ISA_END_ADDRESS, end)
    mb.memblock_phys_free(addr, PMD_SIZE)  # only to find the top: mapped first
    real_end = addr + PMD_SIZE
    dm.min_mapped = real_end
    step, last_start, mapped = PMD_SIZE, real_end, 0
    while last_start > ISA_END_ADDRESS:
        if last_start > step:
            start = max(ISA_END_ADDRESS, (last_start - 1) & ~(step - 1))
        else:
            start = ISA_END_ADDRESS
        mapped += dm.init_range_memory_mapping(start, last_start)
        last_start = start
        dm.min_mapped = last_start
        if mapped >= step:
            step <<= 8  # get_new_step_size()
    if real_end < end:
        dm.init_range_memory_mapping(real_end, end)
    return tuple(dm.holes)


def memblock_find_dma_reserve(k: Kernel) -> int:
    """The pages below 16 MiB that are memory but not free (the DMA zone's reserve)."""
    mb = k.memblock
    assert mb is not None
    nr_pages = sum(max(0, min(e, MAX_DMA_PFN) - min(s, MAX_DMA_PFN))
                   for s, e in memory_pfn_ranges(k))
    free = 0
    for start, end in mb.free_ranges():
        s = min((start + PAGE_SIZE - 1) >> PAGE_SHIFT, MAX_DMA_PFN)
        e = min(end >> PAGE_SHIFT, MAX_DMA_PFN)
        if s < e:
            free += e - s
    return nr_pages - free


async def setup_arch(k: Kernel) -> ZoneInfo:
    """From the firmware map to zones, in setup_arch()'s order; returns the zones."""
    log = k.printk.log_line
    image, kaslr = k.image, k.kaslr
    base = kaslr.phys_base
    log(LOGLEVEL_INFO, "Command line: %s" % k.init.boot_command_line)
    k.memblock = mb = Memblock(0, log=log, mem=k.mem)
    early_reserve_memory(k)
    for line in e820__memory_setup(k):
        log(LOGLEVEL_INFO, line)
    await parse_early_param(k)
    try:
        lines = e820__finish_early_params(k)
    except ValueError as exc:
        raise EarlyPanic(str(exc)) from None
    for line in lines:
        log(LOGLEVEL_INFO, line)
    e820_add_kernel_range(k, base, base + image.end)
    trim_bios_range(k)
    max_pfn = e820__end_of_ram_pfn(k)
    mb.max_pfn = max_pfn
    if kaslr.enabled or kaslr.page_offset_random:
        kaslr.randomized_page_offset = kernel_randomize_memory(max_pfn, k.seed, k.boot_index)
    if max_pfn > 1 << (32 - PAGE_SHIFT):
        e820__end_of_low_ram_pfn(k)
    mb.memblock_reserve(base + image.bss[1], image.brk_used)  # reserve_brk()
    for start, end in k.e820.table.ram_ranges():
        mb.memblock_add(start, end - start)
    # reserve_real_mode(): the trampoline below 1 MiB, then all of the first MiB
    trampoline = mb.memblock_phys_alloc_range(REAL_MODE_SIZE, PAGE_SIZE, 0, ISA_END_ADDRESS)
    k.setup.trampoline = trampoline
    if trampoline:
        k.mem.fill([(trampoline, trampoline + REAL_MODE_SIZE)], "trampoline")
    else:
        log(LOGLEVEL_INFO, "No sub-1M memory is available for the trampoline")
    mb.memblock_reserve(0, ISA_END_ADDRESS)
    holes = init_mem_mapping(k, max_pfn)
    k.layout = MemoryLayout(kaslr.direct_map_base(), 0, max_pfn, max_pfn, holes)
    early_memtest(k)
    mb.memblock_set_current_limit(max_pfn << PAGE_SHIFT)
    setup_log_buf(k, early=True)
    reserve_initrd(k, max_pfn)
    acpi_table_upgrade(k)
    try:
        node_data = initmem_init(k, max_pfn)
    except NodeDataFailed as exc:
        raise EarlyPanic(str(exc)) from None
    reserve_crashkernel(k)
    dma_reserve = memblock_find_dma_reserve(k)
    sparse_init(k, memory_pfn_ranges(k), node_data)
    zones = k.setup.zones = free_area_init(k, max_pfn, dma_reserve)
    e820__register_nosave_regions(k, max_pfn)
    e820__pci_gap(k, max_pfn)
    return zones


# -- /proc/iomem ---------------------------------------------------------------------------------

# QEMU pc's fixed devices, as the oracle's /proc/iomem shows them (ksim's machine has no VGA).
_DEVICES: Final = [(0xFEC00000, 0xFEC003FF, "IOAPIC 0"), (0xFED00000, 0xFED003FF, "HPET 0"),
                   (0xFEE00000, 0xFEE00FFF, "Local APIC")]
_PCI_HOLE64_SIZE: Final = 2 << 30


def iomem_resources(k: Kernel) -> list[tuple[int, int, str, list[tuple[int, int, str]]]]:
    """The top-level resources (start, end, name, children), ascending."""
    out: list[tuple[int, int, str, list[tuple[int, int, str]]]] = []
    kernel = [(s, e, n) for n, s, e in k.image.sections(k.kaslr.phys_base)]
    crash = [(r[0], r[1], "Crash kernel") for r in (k.setup.crashk_res, k.setup.crashk_low_res)
             if r is not None]
    for entry in k.e820.table:
        start, end = entry.addr, entry.addr + entry.size - 1
        name = e820_type_to_string(entry.type)
        children = [c for c in kernel + crash if start <= c[0] and c[1] <= end]
        out.append((start, end, name, sorted(children)))
    if not any(s <= 0xF0000 <= e for s, e, _, _ in out):
        out.append((0xF0000, 0xFFFFF, "System ROM", []))
    else:
        out = [(s, e, n, sorted(c + [(0xF0000, 0xFFFFF, "System ROM")]))
               if s <= 0xF0000 and 0xFFFFF <= e and n == "Reserved" else (s, e, n, c)
               for s, e, n, c in out]
    top = k.mem.below_4g
    out.append((0xA0000, 0xBFFFF, "PCI Bus 0000:00", []))
    out.append((0xCA000, 0xCA5FF, "Adapter ROM", []))  # QEMU's linuxboot_dma.bin (probe_roms)
    out.append((top, 0xFEBFFFFF, "PCI Bus 0000:00", []))
    out += [(s, e, n, []) for s, e, n in _DEVICES]
    high_end = k.mem.ram_ranges()[-1][1] if k.mem.size > top else FOUR_GIB
    hole64 = -(-high_end // (1 << 30)) * (1 << 30)
    out.append((hole64, hole64 + _PCI_HOLE64_SIZE - 1, "PCI Bus 0000:00", []))
    return sorted(out)


@kernel_file("/proc/iomem", 0o444)
def _proc_iomem(k: Kernel) -> ProcOps:
    """kernel/resource.c's tree: the e820 entries, the kernel's sections inside System RAM,
    the crash kernel, and QEMU pc's PCI windows and fixed devices."""

    def render() -> str:
        lines = []
        for start, end, name, children in iomem_resources(k):
            lines.append("%08x-%08x : %s" % (start, end, name))
            lines += ["  %08x-%08x : %s" % c for c in children]
        return "\n".join(lines) + "\n"

    return text_reader(render)


@kernel_file("/sys/kernel/kexec_crash_size", 0o644)
def _kexec_crash_size(k: Kernel) -> ProcOps:
    def size() -> str:
        res = k.setup.crashk_res
        return "%d\n" % (0 if res is None else res[1] - res[0] + 1)

    return text_reader(size)

"""Zones and the boot memory report (mm/page_alloc.c of 6.1: ``free_area_init``, ``memmap_init``,
``build_all_zonelists``, ``alloc_large_system_hash``, ``mem_init_print_info``; arch/x86/mm/init.c
``zone_sizes_init``).

Everything here is computed from memblock, that is from the e820 map and what boot code
reserved (E6): the ``Zone ranges:``, ``Early memory node ranges``, ``Initmem setup node`` and
``On node 0, zone X: N pages in unavailable ranges`` lines, each zone's managed pages (present
pages minus its ``struct page`` array, minus the DMA zone's reserved pages), ``Total pages``,
the dentry and inode hash tables sized from the managed pages, and the ``Memory:`` line.

``Memory: A/BK available``: B (present pages) is exactly Linux's.  A is a deterministic model of
a figure the real kernel varies from boot to boot: with CONFIG_DEFERRED_STRUCT_PAGE_INIT, 6.1
counts only the pages freed before deferred initialisation (207548K, 207544K, 260860K on identical
512 MiB boots).  ksim counts every page memblock hands to the buddy allocator, as a kernel without
deferred initialisation does, so A = B - reserved.  ``reserved`` is what memblock holds at that
point: the kernel image, the first MiB, the initramfs, NODE_DATA, the ``struct page`` array, the
per-CPU areas, the hash tables, the log buffer and crash kernel if any; it misses a few dozen KiB
of small allocations ksim does not model (64712K against Linux's 64756K at 512 MiB).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from ksim.kern_levels import KERN_INFO, LOGLEVEL_INFO
from ksim.memory import PAGE_SHIFT, PAGE_SIZE, PFN_DOWN, PFN_UP
from ksim.printk import printk

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["MAX_DMA32_PFN", "MAX_DMA_PFN", "PAGES_PER_SECTION", "ZoneInfo",
           "alloc_large_system_hash",
           "build_all_zonelists", "free_area_init", "mem_init_print_info"]

MAX_DMA_PFN: Final = (16 << 20) >> PAGE_SHIFT
MAX_DMA32_PFN: Final = (1 << 32) >> PAGE_SHIFT
SECTION_SIZE_BITS: Final = 27
PAGES_PER_SECTION: Final = 1 << (SECTION_SIZE_BITS - PAGE_SHIFT)
STRUCT_PAGE_SIZE: Final = 64
ZONE_NAMES: Final = ("DMA", "DMA32", "Normal", "Movable", "Device")
ZONE_MOVABLE: Final = 3
ADAPT_SCALE_NPAGES: Final = (64 << 30) >> PAGE_SHIFT
SMP_CACHE_BYTES: Final = 64


def _K(pages: int) -> int:
    return pages << (PAGE_SHIFT - 10)


@attrs.define
class ZoneInfo:
    """What free_area_init computed: per zone (in ZONE_NAMES order) its span and managed pages."""

    lowest: list[int]
    highest: list[int]
    managed: list[int]
    present_pages: int
    nr_kernel_pages: int
    nr_all_pages: int


def memory_pfn_ranges(k: Kernel) -> list[tuple[int, int]]:
    """``for_each_mem_pfn_range``: memblock memory as whole pfns."""
    assert k.memblock is not None
    out = []
    for r in k.memblock.memory:
        start, end = PFN_UP(r.base), PFN_DOWN(r.end)
        if start < end:
            out.append((start, end))
    return out


def _absent(ranges: list[tuple[int, int]], start: int, end: int) -> int:
    present = sum(max(0, min(e, end) - max(s, start)) for s, e in ranges)
    return (end - start) - present


def _calc_memmap_size(spanned: int, present: int) -> int:
    pages = present if spanned > present + (present >> 4) else spanned
    return (pages * STRUCT_PAGE_SIZE + PAGE_SIZE - 1) >> PAGE_SHIFT


def free_area_init(k: Kernel, max_low_pfn: int, dma_reserve: int) -> ZoneInfo:
    """zone_sizes_init() and free_area_init(): the zone and node lines, and managed pages."""
    log = k.printk.log_line
    ranges = memory_pfn_ranges(k)
    max_zone_pfn = [min(MAX_DMA_PFN, max_low_pfn), min(MAX_DMA32_PFN, max_low_pfn), max_low_pfn,
                    0, 0]
    start_pfn = ranges[0][0] if ranges else 0
    lowest = [0] * len(ZONE_NAMES)
    highest = [0] * len(ZONE_NAMES)
    for zone in range(len(ZONE_NAMES)):
        if zone == ZONE_MOVABLE:
            continue
        end_pfn = max(max_zone_pfn[zone], start_pfn)
        lowest[zone], highest[zone] = start_pfn, end_pfn
        start_pfn = end_pfn
    log(LOGLEVEL_INFO, "Zone ranges:")
    for zone, name in enumerate(ZONE_NAMES):
        if zone == ZONE_MOVABLE:
            continue
        if lowest[zone] == highest[zone]:
            log(LOGLEVEL_INFO, "  %-8s empty" % name)
        else:
            log(LOGLEVEL_INFO, "  %-8s [mem %#018x-%#018x]" % (
                name, lowest[zone] << PAGE_SHIFT, (highest[zone] << PAGE_SHIFT) - 1))
    log(LOGLEVEL_INFO, "Movable zone start for each node")
    log(LOGLEVEL_INFO, "Early memory node ranges")
    for s, e in ranges:
        log(LOGLEVEL_INFO, "  node %3d: [mem %#018x-%#018x]" % (0, s << PAGE_SHIFT,
                                                                (e << PAGE_SHIFT) - 1))
    node_start, node_end = (ranges[0][0], ranges[-1][1]) if ranges else (0, 0)
    log(LOGLEVEL_INFO, "Initmem setup node %d [mem %#018x-%#018x]" % (
        0, node_start << PAGE_SHIFT, (node_end << PAGE_SHIFT) - 1))
    managed = [0] * len(ZONE_NAMES)
    present_total = nr_kernel = nr_all = 0
    presents = [0] * len(ZONE_NAMES)
    for zone in range(len(ZONE_NAMES)):
        zs, ze = max(lowest[zone], node_start), min(highest[zone], node_end)
        spanned = max(0, ze - zs)
        present = spanned - _absent(ranges, zs, ze) if spanned else 0
        presents[zone] = present
        present_total += present
        freesize = present
        memmap_pages = _calc_memmap_size(spanned, present)
        if freesize >= memmap_pages:
            freesize -= memmap_pages
        if zone == 0 and freesize > dma_reserve:
            freesize -= dma_reserve
        nr_kernel += freesize
        nr_all += freesize
        managed[zone] = freesize
    _memmap_init(k, ranges, lowest, highest, presents)
    return ZoneInfo(lowest, highest, managed, present_total, nr_kernel, nr_all)


def _memmap_init(k: Kernel, ranges: list[tuple[int, int]], lowest: list[int],
                 highest: list[int], presents: list[int]) -> None:
    """memmap_init(): the pages of valid sections that no memory range covers."""
    log = k.printk.log_line
    sections = {pfn // PAGES_PER_SECTION for s, e in ranges
                for pfn in range(s - s % PAGES_PER_SECTION, e, PAGES_PER_SECTION)}

    def unavailable(spfn: int, epfn: int, zone: int) -> None:
        count = 0
        sec = spfn // PAGES_PER_SECTION
        while sec * PAGES_PER_SECTION < epfn:
            if sec in sections:
                lo = max(spfn, sec * PAGES_PER_SECTION)
                hi = min(epfn, (sec + 1) * PAGES_PER_SECTION)
                count += max(0, hi - lo)
            sec += 1
        if count:
            log(LOGLEVEL_INFO, "On node 0, zone %s: %d pages in unavailable ranges"
                % (ZONE_NAMES[zone], count))

    hole_pfn = 0
    zone_id = 0
    end_pfn = 0
    for start_pfn, end_pfn in ranges:
        for zone in range(len(ZONE_NAMES)):
            if not presents[zone]:
                continue
            s = min(max(start_pfn, lowest[zone]), highest[zone])
            e = min(max(end_pfn, lowest[zone]), highest[zone])
            zone_id = zone
            if s >= e:
                continue
            if hole_pfn < s:
                unavailable(hole_pfn, s, zone)
            hole_pfn = e
    end = -(-end_pfn // PAGES_PER_SECTION) * PAGES_PER_SECTION
    if hole_pfn < end:
        unavailable(hole_pfn, end, zone_id)


def build_all_zonelists(k: Kernel, zones: ZoneInfo) -> None:
    """``Built 1 zonelists ... Total pages:`` (no watermarks yet: the managed pages) and the
    policy zone (the highest zone with pages)."""
    log = k.printk.log_line
    log(LOGLEVEL_INFO, "Built 1 zonelists, mobility grouping on.  Total pages: %d"
        % sum(zones.managed))
    policy = max((z for z in range(ZONE_MOVABLE) if zones.managed[z]), default=0)
    log(LOGLEVEL_INFO, "Policy zone: %s" % ZONE_NAMES[policy])


def alloc_large_system_hash(k: Kernel, tablename: str, bucketsize: int, scale: int,
                            zones: ZoneInfo) -> int:
    """An early (memblock) hash table sized from the kernel's pages; prints its line and
    returns its physical address."""
    assert k.memblock is not None
    numentries = zones.nr_kernel_pages
    numentries = -(-numentries // ((1 << 20) // PAGE_SIZE)) * ((1 << 20) // PAGE_SIZE)
    adapt = ADAPT_SCALE_NPAGES
    while adapt < numentries:
        scale += 1
        adapt <<= 4
    if scale > PAGE_SHIFT:
        numentries >>= scale - PAGE_SHIFT
    else:
        numentries <<= PAGE_SHIFT - scale
    if numentries * bucketsize < PAGE_SIZE:
        numentries = PAGE_SIZE // bucketsize
    numentries = 1 << (numentries - 1).bit_length() if numentries > 1 else 1
    max_entries = min(((zones.nr_all_pages << PAGE_SHIFT) >> 4) // bucketsize, 0x80000000)
    numentries = min(numentries, max_entries)
    log2qty = numentries.bit_length() - 1
    table = 0
    size = bucketsize << log2qty
    while True:
        size = bucketsize << log2qty
        table = k.memblock.memblock_alloc(size, SMP_CACHE_BYTES,
                                          contents="hash:" + tablename.replace(" ", "_"))
        if table or size <= PAGE_SIZE or log2qty <= 1:
            break
        log2qty -= 1
    if not table:
        raise MemoryError(f"Failed to allocate {tablename} hash table")
    k.printk.log_line(LOGLEVEL_INFO, "%s hash table entries: %d (order: %d, %d bytes, linear)" % (
        tablename, 1 << log2qty, (size.bit_length() - 1) - PAGE_SHIFT, size))
    return table


async def mem_init_print_info(k: Kernel, zones: ZoneInfo) -> None:
    """``Memory: ...K/...K available (...)``: present pages, and what memblock_free_all frees."""
    assert k.memblock is not None
    image = k.image
    physpages = zones.present_pages
    totalram = k.memblock.free_pages()
    await printk(KERN_INFO + "Memory: %uK/%uK available (%uK kernel code, %uK rwdata, "
                 "%uK rodata, %uK init, %uK bss, %uK reserved, %uK cma-reserved)\n",
                 _K(totalram), _K(physpages), image.code_k, image.rwdata_k, image.rodata_k,
                 image.init_k, image.bss_k, _K(physpages - totalram), 0)

"""ksim.memblock: memblock (M7, M8) and the 2009 bootmem front end (M4, M5, F2, F4)."""

from __future__ import annotations

import pytest

from ksim.errno import EBUSY, EFAULT
from ksim.memblock import (
    BOOTMEM_DEFAULT,
    BOOTMEM_EXCLUSIVE,
    MEMBLOCK_ALLOC_ACCESSIBLE,
    BootmemBug,
    Memblock,
    Region,
)
from ksim.memory import PAGE_SIZE, PFN_DOWN, MemoryLayout

MiB = 1 << 20
RAM = 64 * MiB


def machine(log: list[tuple[int, str]] | None = None) -> Memblock:
    """64 MiB of RAM at 0, as setup_arch would register it; printk lines go to *log*."""
    lines: list[tuple[int, str]] = [] if log is None else log
    mb = Memblock(PFN_DOWN(RAM), log=lambda level, text: lines.append((level, text)))
    mb.memblock_add(0, RAM)
    return mb


# -- M7 ----------------------------------------------------------------------------------------------------


def test_m7_reserve_merges_overlapping_and_adjacent_regions_without_error() -> None:
    mb = machine()
    assert mb.memblock_reserve(0x2000, 0x1000) == 0
    assert mb.memblock_reserve(0x5000, 0x1000) == 0
    assert mb.reserved == (Region(0x2000, 0x1000), Region(0x5000, 0x1000))
    assert mb.memblock_reserve(0x3000, 0x800) == 0  # adjacent
    assert mb.memblock_reserve(0x2800, 0x3000) == 0  # overlaps both: no exclusivity in memblock
    assert mb.reserved == (Region(0x2000, 0x4000),)
    assert mb.reserved_bytes() == 0x4000
    assert mb.memblock_reserve(0x9000, 0) == 0 and mb.reserved == (Region(0x2000, 0x4000),)


def test_m7_phys_free_splits_reservations() -> None:
    mb = machine()
    mb.memblock_reserve(0x1000, 0x4000)
    assert mb.memblock_phys_free(0x2000, 0x1000) == 0
    assert mb.reserved == (Region(0x1000, 0x1000), Region(0x3000, 0x2000))
    assert mb.memblock_is_reserved(0x1FFF) and not mb.memblock_is_reserved(0x2000)
    assert mb.memblock_is_region_reserved(0x2000, 0x1001)
    assert not mb.memblock_is_region_reserved(0x2000, 0x1000)
    assert not mb.memblock_is_region_reserved(0x1000, 0)


def test_m7_memory_regions_merge_and_free_ranges_subtract_reservations() -> None:
    mb = Memblock(0x100)
    mb.memblock_add(0x80000, 0x20000)
    mb.memblock_add(0, 0x80000)
    mb.memblock_add(0xC0000, 0x10000)
    assert mb.memory == (Region(0, 0xA0000), Region(0xC0000, 0x10000))
    for base, size in ((0, 0x1000), (0x10000, 0x1000), (0x9F000, 0x22000), (0xCF000, 0x1000)):
        mb.memblock_reserve(base, size)
    assert list(mb.free_ranges()) == [(0x1000, 0x10000), (0x11000, 0x9F000), (0xC1000, 0xCF000)]


# -- M8 ----------------------------------------------------------------------------------------------------


def test_m8_allocation_is_top_down_aligned_and_reserves() -> None:
    mb = machine()
    mb.memblock_reserve(RAM - 0x3000, 0x3000)
    addr = mb.memblock_phys_alloc(0x1800, 0x1000)
    assert addr == RAM - 0x5000  # round_down(end - size, align)
    assert mb.memblock_is_region_reserved(addr, 0x1800)
    # The 0x800 left above it is the highest free range; align 0 means SMP_CACHE_BYTES (64).
    assert mb.memblock_phys_alloc(0x101, 0) == RAM - 0x3140
    assert mb.memblock_phys_alloc_range(0x1000, PAGE_SIZE, 0x100000, 0x200000) == 0x1FF000


def test_m8_top_down_skips_a_range_that_is_too_small() -> None:
    mb = machine()
    mb.memblock_reserve(0x800000, RAM - 0x800000 - 0x1000)  # leaves one page at the top
    assert mb.memblock_phys_alloc(0x2000, PAGE_SIZE) == 0x800000 - 0x2000


def test_m8_bottom_up_mode() -> None:
    mb = machine()
    mb.memblock_set_bottom_up(True)
    assert mb.memblock_bottom_up()
    mb.memblock_reserve(0x1000, 0x800)
    assert mb.memblock_phys_alloc(0x1000, 0x4000) == 0x4000  # round_up(free start, align)
    assert mb.memblock_phys_alloc(0x100, 0x100) == 0x1800


def test_m8_page_zero_is_never_returned_and_zero_means_failure() -> None:
    mb = machine()
    mb.memblock_set_bottom_up(True)
    assert mb.memblock_phys_alloc_range(0x1000, PAGE_SIZE, 0, 0x2000) == 0x1000
    assert mb.memblock_phys_alloc_range(0x1000, PAGE_SIZE, 0, 0x2000) == 0  # only page 0 left
    assert mb.memblock_phys_alloc(2 * RAM, PAGE_SIZE) == 0
    assert not mb.memblock_is_reserved(0)


def test_m8_accessible_end_means_current_limit() -> None:
    mb = machine()
    mb.memblock_set_current_limit(16 * MiB)
    addr = mb.memblock_phys_alloc_range(PAGE_SIZE, PAGE_SIZE, 0, MEMBLOCK_ALLOC_ACCESSIBLE)
    assert addr == 16 * MiB - PAGE_SIZE
    with pytest.raises(ValueError, match="power of two"):
        mb.memblock_phys_alloc(PAGE_SIZE, 3)


# -- M4 ----------------------------------------------------------------------------------------------------


def test_m4_reserve_bootmem_rounds_outward_to_pages() -> None:
    mb = machine()
    assert mb.reserve_bootmem(0x1800, 0x1000, BOOTMEM_DEFAULT) == 0
    assert mb.reserved == (Region(0x1000, 0x2000),)


def test_m4_exclusive_conflict_is_ebusy_and_changes_nothing() -> None:
    mb = machine()
    mb.memblock_reserve(0x5000, 1)  # one reserved byte taints the whole page for bootmem
    before = mb.reserved
    assert mb.reserve_bootmem(0x3000, 0x3000, BOOTMEM_EXCLUSIVE) == -EBUSY
    assert mb.reserved == before
    assert mb.reserve_bootmem(0x3000, 0x2000, BOOTMEM_EXCLUSIVE) == 0


def test_m4_default_flag_double_reserves_silently() -> None:
    mb = machine()
    mb.reserve_bootmem(0x3000, 0x1000, BOOTMEM_DEFAULT)
    assert mb.reserve_bootmem(0x2000, 0x3000, BOOTMEM_DEFAULT) == 0
    assert mb.reserved == (Region(0x2000, 0x3000),)


def test_m4_pages_outside_ram_count_as_reserved() -> None:
    mb = Memblock(0x100)
    mb.memblock_add(0, 0x80000)
    mb.memblock_add(0x90000, 0x70000)  # a hole at [0x80000, 0x90000): never freed to bootmem
    assert mb.reserve_bootmem(0x7F000, 0x2000, BOOTMEM_EXCLUSIVE) == -EBUSY
    assert mb.reserve_bootmem(0x7F000, 0x1000, BOOTMEM_EXCLUSIVE) == 0


def test_m4_range_outside_the_node_is_a_bug() -> None:
    mb = machine()
    with pytest.raises(BootmemBug) as info:
        mb.reserve_bootmem(RAM, 0, BOOTMEM_EXCLUSIVE)  # F2 on a 32-bit box: pfn == max_low_pfn
    assert info.value.file == "mm/bootmem.c" and info.value.function == "mark_bootmem"
    assert mb.reserved == ()
    with pytest.raises(BootmemBug, match="run past the end"):
        mb.reserve_bootmem(RAM - PAGE_SIZE, 2 * PAGE_SIZE, BOOTMEM_DEFAULT)
    assert mb.reserved == (Region(RAM - PAGE_SIZE, PAGE_SIZE),)  # mark_bootmem marked the in-node part


# -- M5, F4 ------------------------------------------------------------------------------------------------


def test_m5_illegal_reserve_is_logged_and_efault() -> None:
    log: list[tuple[int, str]] = []
    mb = machine(log)
    # F2 on x86-64 with <= 4 GiB: a zero-sized memconsole's only candidate is max_low_pfn itself.
    for numa in (False, True):
        assert mb.reserve_bootmem_generic(RAM, 0, BOOTMEM_EXCLUSIVE, numa=numa) == -EFAULT
    assert log == [(3, "reserve_bootmem: illegal reserve 4000000 0")] * 2
    assert mb.reserved == ()


def test_m5_numa_build_reports_the_conflict() -> None:
    mb = machine()
    mb.memblock_reserve(RAM - PAGE_SIZE, PAGE_SIZE)
    ret = mb.reserve_bootmem_generic(RAM - 2 * PAGE_SIZE, 2 * PAGE_SIZE, BOOTMEM_EXCLUSIVE, numa=True)
    assert ret == -EBUSY
    assert mb.reserved == (Region(RAM - PAGE_SIZE, PAGE_SIZE),)


def test_f4_non_numa_build_ignores_the_conflict_and_double_reserves() -> None:
    mb = machine()
    mb.memblock_reserve(RAM - PAGE_SIZE, PAGE_SIZE)  # say, an earlier boot-time reservation
    ret = mb.reserve_bootmem_generic(RAM - 2 * PAGE_SIZE, 2 * PAGE_SIZE, BOOTMEM_EXCLUSIVE, numa=False)
    assert ret == 0
    assert mb.reserved == (Region(RAM - 2 * PAGE_SIZE, 2 * PAGE_SIZE),)

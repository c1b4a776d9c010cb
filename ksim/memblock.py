"""The boot-memory allocator: mm/memblock.c (M7, M8) with the 2009 bootmem front end (M4, M5).

memblock keeps two sorted, merged lists of physical byte ranges, ``memory`` (RAM the firmware reported)
and ``reserved`` (what boot code claimed).  The 2009 memconsole patch was written against bootmem, whose
``reserve_bootmem`` could refuse an overlapping reservation (``BOOTMEM_EXCLUSIVE``) and whose x86-64
wrapper ``reserve_bootmem_generic`` silently threw that refusal away (F4).  Both are emulated here on top
of memblock's lists, with bootmem's page granularity: a page is "reserved" for bootmem if any byte of it
is in ``reserved`` or not in ``memory`` (bootmem starts with every page reserved and frees only RAM).

The kernel's own allocations (:meth:`Memblock.memblock_alloc`: NODE_DATA, the struct pages, the log
buffer...) also write the machine's RAM, as the code that asked for them does (E6); a driver's
``memblock_phys_alloc`` only reserves, like the C.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator
from typing import Final

import attrs

from ksim.errno import EBUSY, EFAULT
from ksim.memory import PAGE_SHIFT, PAGE_SIZE, PFN_DOWN, PFN_PHYS, PFN_UP, PhysMem

__all__ = [
    "BOOTMEM_DEFAULT",
    "BOOTMEM_EXCLUSIVE",
    "MEMBLOCK_ALLOC_ACCESSIBLE",
    "MEMBLOCK_ALLOC_ANYWHERE",
    "BootmemBug",
    "LogFn",
    "Memblock",
    "Region",
]

BOOTMEM_DEFAULT: Final = 0
BOOTMEM_EXCLUSIVE: Final = 1

PHYS_ADDR_MAX: Final = (1 << 64) - 1
MEMBLOCK_ALLOC_ANYWHERE: Final = PHYS_ADDR_MAX
MEMBLOCK_ALLOC_ACCESSIBLE: Final = 0
# What memblock substitutes for align == 0 (after a dump_stack() that ksim does not model).
SMP_CACHE_BYTES: Final = 64

LOGLEVEL_ERR: Final = 3

LogFn = Callable[[int, str], None]
"""``log(level, text)``: a printk at *level* (0-7) of one line *text*, without its newline."""


def _no_log(level: int, text: str) -> None:
    pass


class BootmemBug(Exception):
    """mm/bootmem.c hit ``BUG()``: boot cannot continue; the caller turns this into an oops.

    ``file`` and ``function`` locate the BUG for the ``kernel BUG at %s:%d!`` line; ``detail`` explains
    the bad range (the kernel prints no such explanation).
    """

    def __init__(self, function: str, detail: str) -> None:
        self.file = "mm/bootmem.c"
        self.function = function
        self.detail = detail
        super().__init__(f"kernel BUG in {function}() ({self.file}): {detail}")


@attrs.frozen
class Region:
    """``struct memblock_region``: ``size`` bytes from physical ``base``."""

    base: int
    size: int

    @property
    def end(self) -> int:
        return self.base + self.size


def _cap(base: int, size: int) -> int:
    """memblock_cap_size(): clip *size* so base + size stays within phys_addr_t."""
    if base < 0 or size < 0:
        raise ValueError(f"invalid physical range base={base:#x} size={size:#x}")
    return min(size, PHYS_ADDR_MAX - base)


def _add(regions: list[Region], base: int, end: int) -> list[Region]:
    """*regions* united with ``[base, end)``, merging overlapping and adjacent entries (M7)."""
    kept = []
    for r in regions:
        if r.end < base or r.base > end:
            kept.append(r)
        else:
            base, end = min(base, r.base), max(end, r.end)
    kept.append(Region(base, end - base))
    kept.sort(key=lambda r: r.base)
    return kept


def _remove(regions: list[Region], base: int, end: int) -> list[Region]:
    """*regions* minus ``[base, end)``, splitting an entry that straddles it."""
    kept = []
    for r in regions:
        if r.end <= base or r.base >= end:
            kept.append(r)
            continue
        if r.base < base:
            kept.append(Region(r.base, base - r.base))
        if r.end > end:
            kept.append(Region(end, r.end - end))
    return kept


def _overlaps(regions: list[Region], base: int, end: int) -> bool:
    i = bisect.bisect_left(regions, end, key=lambda r: r.base)
    return i > 0 and regions[i - 1].end > base


class Memblock:
    """One boot's memblock, plus the bootmem interface of the node ``[0, max_pfn)``.

    *max_pfn* bounds the bootmem node (M4: ranges outside it are a ``BUG()``) and is the limit checked by
    ``reserve_bootmem_generic`` (M5).  *log* receives the messages the kernel would printk.
    """

    def __init__(self, max_pfn: int, *, log: LogFn = _no_log, mem: PhysMem | None = None) -> None:
        self.max_pfn = max_pfn
        self._log = log
        self._mem = mem
        self._memory: list[Region] = []
        self._reserved: list[Region] = []
        self._requests: list[Region] = []  # each reservation as asked for, before merging
        self._bottom_up = False
        self.current_limit = MEMBLOCK_ALLOC_ANYWHERE

    @property
    def memory(self) -> tuple[Region, ...]:
        return tuple(self._memory)

    @property
    def reserved(self) -> tuple[Region, ...]:
        return tuple(self._reserved)

    # -- region lists (M7) ---------------------------------------------------------------------------------

    def memblock_add(self, base: int, size: int) -> int:
        """Register RAM; always 0 (the lists grow without the kernel's -ENOMEM)."""
        size = _cap(base, size)
        if size:
            self._memory = _add(self._memory, base, base + size)
        return 0

    def memblock_reserve(self, base: int, size: int) -> int:
        """Claim ``[base, base + size)``; overlap with an earlier reservation is not an error (M7)."""
        size = _cap(base, size)
        if size:
            self._reserved = _add(self._reserved, base, base + size)
            self._requests.append(Region(base, size))
        return 0

    def requests(self) -> list[Region]:
        """The reservations as each was asked for (memblock merges them), newest first, those
        still wholly reserved: to tell which boot code owns a reserved address."""
        return [r for r in reversed(self._requests)
                if any(g.base <= r.base and r.end <= g.end for g in self._reserved)]

    def memblock_phys_free(self, base: int, size: int) -> int:
        """Drop ``[base, base + size)`` from the reservations; always 0."""
        size = _cap(base, size)
        if size:
            self._reserved = _remove(self._reserved, base, base + size)
        return 0

    def memblock_is_reserved(self, addr: int) -> bool:
        return _overlaps(self._reserved, addr, addr + 1)

    def memblock_is_region_reserved(self, base: int, size: int) -> bool:
        """Whether any byte of ``[base, base + size)`` is reserved (memblock_overlaps_region)."""
        size = _cap(base, size)
        return bool(size) and _overlaps(self._reserved, base, base + size)

    def reserved_bytes(self) -> int:
        """memblock_reserved_size(): the ``reserved`` figure of the boot memory report (M6)."""
        return sum(r.size for r in self._reserved)

    def phys_mem_size(self) -> int:
        """``memblock_phys_mem_size``: the bytes of RAM memblock knows."""
        return sum(r.size for r in self._memory)

    def free_pages(self) -> int:
        """What ``memblock_free_all`` hands the buddy allocator: the free ranges' whole pages."""
        return sum(max(0, PFN_DOWN(end) - PFN_UP(start)) for start, end in self.free_ranges())

    def free_ranges(self) -> Iterator[tuple[int, int]]:
        """``for_each_free_mem_range``: half-open ``(start, end)`` ranges of memory - reserved, ascending.

        The shape :meth:`ksim.memory.PhysMem.scrub` takes, which is how memtest sees free memory.
        """
        reserved = self._reserved
        i = 0
        for mem in self._memory:
            start = mem.base
            while i < len(reserved) and reserved[i].end <= start:
                i += 1
            j = i
            while j < len(reserved) and reserved[j].base < mem.end:
                if reserved[j].base > start:
                    yield start, reserved[j].base
                start = max(start, reserved[j].end)
                j += 1
            if start < mem.end:
                yield start, mem.end

    # -- allocation (M8) -----------------------------------------------------------------------------------

    def memblock_set_bottom_up(self, enable: bool) -> None:
        self._bottom_up = enable

    def memblock_bottom_up(self) -> bool:
        return self._bottom_up

    def memblock_set_current_limit(self, limit: int) -> None:
        """The end used for ``MEMBLOCK_ALLOC_ACCESSIBLE`` requests (x86 raises it as it maps memory)."""
        self.current_limit = limit

    def memblock_phys_alloc_range(self, size: int, align: int, start: int, end: int) -> int:
        """Find, reserve and return *size* bytes aligned to *align* within ``[start, end)``; 0 on failure.

        M8: page 0 is never handed out (start is raised to PAGE_SIZE, so 0 can mean failure); *end*
        ``MEMBLOCK_ALLOC_ACCESSIBLE`` means :attr:`current_limit`; the search is top-down unless
        bottom-up mode is set.  The memory is not cleared.
        """
        if size < 0:
            raise ValueError(f"invalid allocation size {size:#x}")
        if align == 0:
            align = SMP_CACHE_BYTES
        if align < 0 or align & (align - 1):
            raise ValueError(f"alignment {align:#x} is not a power of two")
        if end == MEMBLOCK_ALLOC_ACCESSIBLE:
            end = self.current_limit
        start = max(start, PAGE_SIZE)
        end = max(start, end)
        found = self._find_bottom_up if self._bottom_up else self._find_top_down
        cand = found(size, align, start, end)
        if cand:
            self.memblock_reserve(cand, size)
        return cand

    def memblock_phys_alloc(self, size: int, align: int) -> int:
        return self.memblock_phys_alloc_range(size, align, 0, MEMBLOCK_ALLOC_ACCESSIBLE)

    def memblock_alloc(self, size: int, align: int, *, min_addr: int = 0,
                       max_addr: int = MEMBLOCK_ALLOC_ACCESSIBLE, contents: str | None = None,
                       zero: bool = True) -> int:
        """The kernel's own allocation (``memblock_alloc_try_nid``): found as
        :meth:`memblock_phys_alloc_range` finds it, zeroed unless *zero* is false (the ``_raw``
        variants), then written with *contents* (a fill key: what the kernel puts there) in the
        machine's RAM.  Returns the physical address, or 0."""
        if max_addr in (MEMBLOCK_ALLOC_ACCESSIBLE, MEMBLOCK_ALLOC_ANYWHERE) or \
                max_addr > self.current_limit:
            max_addr = self.current_limit
        addr = self.memblock_phys_alloc_range(size, align, min_addr, max_addr)
        if not addr and min_addr:  # memblock_alloc_internal() retries without the lower limit
            addr = self.memblock_phys_alloc_range(size, align, 0, max_addr)
        if addr and self._mem is not None:
            span = [(addr, addr + size)]
            if contents is not None:
                self._mem.fill(span, contents)
            elif zero:
                self._mem.scrub(span, 0)
        return addr

    def _find_top_down(self, size: int, align: int, start: int, end: int) -> int:
        for this_start, this_end in reversed(list(self.free_ranges())):
            this_start = min(max(this_start, start), end)
            this_end = min(max(this_end, start), end)
            if this_end < size:
                continue
            cand = (this_end - size) & ~(align - 1)
            if cand >= this_start:
                return cand
        return 0

    def _find_bottom_up(self, size: int, align: int, start: int, end: int) -> int:
        for this_start, this_end in self.free_ranges():
            this_start = min(max(this_start, start), end)
            this_end = min(max(this_end, start), end)
            cand = (this_start + align - 1) & ~(align - 1)
            if cand < this_end and this_end - cand >= size:
                return cand
        return 0

    # -- the 2009 bootmem interface (M4, M5) ---------------------------------------------------------------

    def reserve_bootmem(self, addr: int, size: int, flags: int) -> int:
        """Reserve the pages touching ``[addr, addr + size)`` (rounded outward, M4).

        ``BOOTMEM_EXCLUSIVE``: if any of them is already reserved, return ``-EBUSY`` and change nothing.
        ``BOOTMEM_DEFAULT``: reserve regardless ("silent double reserve") and return 0.  A start outside
        the node ``[0, max_pfn)`` raises :class:`BootmemBug` before anything is marked; an end beyond it
        raises after the in-node part is marked, as mark_bootmem() does.
        """
        if addr < 0 or size < 0:
            raise ValueError(f"invalid physical range addr={addr:#x} size={size:#x}")
        start, end = PFN_DOWN(addr), PFN_UP(addr + size)
        if start >= self.max_pfn:
            raise BootmemBug(
                "mark_bootmem", f"pfn {start:#x} is outside the bootmem node [0, {self.max_pfn:#x})"
            )
        marked_end = min(end, self.max_pfn)
        base, length = PFN_PHYS(start), PFN_PHYS(marked_end - start)
        if flags & BOOTMEM_EXCLUSIVE and self._bootmem_busy(base, base + length):
            return -EBUSY
        self.memblock_reserve(base, length)
        if end > self.max_pfn:
            raise BootmemBug(
                "mark_bootmem",
                f"pfns [{start:#x}, {end:#x}) run past the end of the bootmem node {self.max_pfn:#x}",
            )
        return 0

    def _bootmem_busy(self, base: int, end: int) -> bool:
        """Whether bootmem's bitmap has a 1 anywhere in the page-aligned ``[base, end)``."""
        if base == end:
            return False
        if _overlaps(self._reserved, base, end):
            return True
        # Outside RAM the bitmap was never cleared.  Regions are merged, so RAM covering all of
        # [base, end) is a single region containing base.
        i = bisect.bisect_right(self._memory, base, key=lambda r: r.base)
        return i == 0 or self._memory[i - 1].end < end

    def reserve_bootmem_generic(self, addr: int, size: int, flags: int, *, numa: bool) -> int:
        """arch/x86/mm/init_64.c of 2009 (M5).

        A pfn at or beyond max_pfn logs ``reserve_bootmem: illegal reserve %lx %lu`` and returns
        ``-EFAULT``.  A NUMA build returns reserve_bootmem()'s verdict.  A non-NUMA build calls
        reserve_bootmem() with BOOTMEM_DEFAULT whatever *flags* said and returns 0: an exclusive
        reservation over reserved pages "succeeds" and double-reserves them (F4).
        """
        if addr >> PAGE_SHIFT >= self.max_pfn:
            self._log(LOGLEVEL_ERR, f"reserve_bootmem: illegal reserve {addr:x} {size}")
            return -EFAULT
        if numa:
            return self.reserve_bootmem(addr, size, flags)
        self.reserve_bootmem(addr, size, BOOTMEM_DEFAULT)
        return 0

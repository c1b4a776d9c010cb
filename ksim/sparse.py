"""SPARSEMEM_VMEMMAP's early allocations (mm/sparse.c, mm/sparse-vmemmap.c): ``sparse_init``.

RAM is counted in 128 MiB sections.  ``sparse_init`` allocates the section roots, the
section usage maps (next to NODE_DATA, in its section if possible) and, top-down above 16 MiB and
2 MiB-aligned, one buffer for all the ``struct page`` arrays: 2 MiB per present section, 8 MiB at
512 MiB of RAM (E6).  The ``struct page`` arrays are written (initialised) during boot, so the
buffer's old contents are gone.  If the buffer cannot be had, each section's array is tried on its
own; a section without one loses its memory (``memory map backing failed``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ksim.kern_levels import LOGLEVEL_ERR

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["present_sections", "sparse_init"]

SECTION_SHIFT: Final = 27
PAGES_PER_SECTION_SHIFT: Final = SECTION_SHIFT - 12
SECTION_MAP_SIZE: Final = 2 << 20  # PAGES_PER_SECTION * sizeof(struct page), PMD aligned
SECTIONS_PER_ROOT: Final = 4096 // 16
NR_SECTION_ROOTS: Final = (1 << (46 - SECTION_SHIFT)) // SECTIONS_PER_ROOT
MEM_SECTION_USAGE_SIZE: Final = 8 + 32
MAX_DMA_ADDRESS_PHYS: Final = 16 << 20
SMP_CACHE_BYTES: Final = 64


def present_sections(pfn_ranges: list[tuple[int, int]]) -> list[int]:
    """``memblocks_present``: the sections holding any memory, ascending."""
    sections: set[int] = set()
    for start, end in pfn_ranges:
        sections.update(range(start >> PAGES_PER_SECTION_SHIFT,
                              ((end - 1) >> PAGES_PER_SECTION_SHIFT) + 1))
    return sorted(sections)


def sparse_init(k: Kernel, pfn_ranges: list[tuple[int, int]], node_data: int) -> list[int]:
    """Allocate what SPARSEMEM needs; returns the sections whose memory map failed."""
    mb = k.memblock
    assert mb is not None
    sections = present_sections(pfn_ranges)
    mb.memblock_alloc(8 * NR_SECTION_ROOTS, SMP_CACHE_BYTES)
    for _root in sorted({s // SECTIONS_PER_ROOT for s in sections}):
        mb.memblock_alloc(4096, SMP_CACHE_BYTES)
    usage = MEM_SECTION_USAGE_SIZE * len(sections)
    goal = node_data & ~((1 << SECTION_SHIFT) - 1) if node_data else 0
    limit = goal + (1 << SECTION_SHIFT) if node_data else 0
    addr = 0
    if limit:
        addr = mb.memblock_alloc(usage, SMP_CACHE_BYTES, min_addr=goal, max_addr=limit,
                                 contents="usemap")
    if not addr:
        addr = mb.memblock_alloc(usage, SMP_CACHE_BYTES, contents="usemap")
    failed: list[int] = []
    buf = mb.memblock_alloc(SECTION_MAP_SIZE * len(sections), SECTION_MAP_SIZE,
                            min_addr=MAX_DMA_ADDRESS_PHYS, contents="memmap")
    if buf:
        return failed
    for section in sections:
        if not mb.memblock_alloc(SECTION_MAP_SIZE, SECTION_MAP_SIZE,
                                 min_addr=MAX_DMA_ADDRESS_PHYS, contents="memmap"):
            k.printk.log_line(LOGLEVEL_ERR, "sparse_init_nid: node[0] memory map backing failed. "
                              "Some memory will not be available.")
            failed.append(section)
    return failed

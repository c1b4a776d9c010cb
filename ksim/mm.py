"""Driver-facing memory API: pfn bounds, boot-time reservation and access through pointers.

C code reaches RAM by dereferencing kernel virtual addresses; a ksim driver does the same
through these helpers, which translate with the *running* kernel's ``phys_to_virt`` (M3).
That is what makes a persisted virtual pointer go stale when PAGE_OFFSET moves (F6): the
translation belongs to the boot, the bytes to the machine.
"""

from __future__ import annotations

from ksim.current import current_kernel
from ksim.memblock import BOOTMEM_DEFAULT, BOOTMEM_EXCLUSIVE, Memblock
from ksim.memory import PAGE_ALIGN, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PFN_DOWN, PFN_PHYS, \
    PFN_UP, MemoryLayout, PhysMem

__all__ = [
    "BOOTMEM_DEFAULT", "BOOTMEM_EXCLUSIVE", "PAGE_ALIGN", "PAGE_MASK", "PAGE_SHIFT", "PAGE_SIZE",
    "PFN_DOWN", "PFN_PHYS", "PFN_UP", "max_low_pfn", "max_pfn", "memblock_phys_alloc",
    "memblock_reserve", "min_low_pfn", "phys_to_virt", "reserve_bootmem",
    "reserve_bootmem_generic", "virt_read", "virt_read_u32", "virt_read_u64", "virt_to_phys",
    "virt_write", "virt_write_u32", "virt_write_u64",
]


def _layout() -> MemoryLayout:
    layout = current_kernel().layout
    if layout is None:
        raise RuntimeError("the memory layout is not set up yet (setup_arch has not run)")
    return layout


def _memblock() -> Memblock:
    memblock = current_kernel().memblock
    if memblock is None:
        raise RuntimeError("memblock is not set up yet (setup_arch has not run)")
    return memblock


def min_low_pfn() -> int:
    return _layout().min_low_pfn


def max_low_pfn() -> int:
    return _layout().max_low_pfn


def max_pfn() -> int:
    return _layout().max_pfn


def phys_to_virt(phys: int) -> int:
    return _layout().phys_to_virt(phys)


def virt_to_phys(virt: int) -> int:
    return _layout().virt_to_phys(virt)


def reserve_bootmem(addr: int, size: int, flags: int) -> int:
    return _memblock().reserve_bootmem(addr, size, flags)


def reserve_bootmem_generic(addr: int, size: int, flags: int) -> int:
    """The x86-64 variant (M5): honours ``flags`` only on a NUMA machine (F4)."""
    kernel = current_kernel()
    return _memblock().reserve_bootmem_generic(addr, size, flags, numa=kernel.numa)


def memblock_reserve(base: int, size: int) -> int:
    return _memblock().memblock_reserve(base, size)


def memblock_phys_alloc(size: int, align: int) -> int:
    return _memblock().memblock_phys_alloc(size, align)


def _mem() -> PhysMem:
    return current_kernel().mem


def virt_read(virt: int, n: int) -> bytes:
    """``memcpy(dst, (void *)virt, n)``: read RAM through a kernel virtual address."""
    return _mem().read(virt_to_phys(virt), n)


def virt_write(virt: int, data: bytes) -> None:
    _mem().write(virt_to_phys(virt), data)


def virt_read_u64(virt: int) -> int:
    return _mem().read_u64(virt_to_phys(virt))


def virt_write_u64(virt: int, value: int) -> None:
    _mem().write_u64(virt_to_phys(virt), value)


def virt_read_u32(virt: int) -> int:
    return _mem().read_u32(virt_to_phys(virt))


def virt_write_u32(virt: int, value: int) -> None:
    _mem().write_u32(virt_to_phys(virt), value)

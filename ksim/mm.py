"""Driver-facing memory API: pfn bounds, boot-time reservation and access through pointers.

C code reaches RAM by dereferencing kernel virtual addresses; a ksim driver does the same
through these helpers, which translate with the *running* kernel's ``phys_to_virt`` (M3).
That is what makes a persisted virtual pointer go stale when PAGE_OFFSET moves (F6): the
translation belongs to the boot, the bytes to the machine.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs

from ksim.current import current, current_kernel
from ksim.memblock import BOOTMEM_DEFAULT, BOOTMEM_EXCLUSIVE, Memblock
from ksim.memory import PAGE_ALIGN, PAGE_MASK, PAGE_SHIFT, PAGE_SIZE, PFN_DOWN, PFN_PHYS, \
    PFN_UP, MemoryLayout

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = [
    "MmState", "BOOTMEM_DEFAULT", "BOOTMEM_EXCLUSIVE", "PAGE_ALIGN", "PAGE_MASK", "PAGE_SHIFT", "PAGE_SIZE",
    "PFN_DOWN", "PFN_PHYS", "PFN_UP", "max_low_pfn", "max_pfn", "memblock_phys_alloc",
    "memblock_reserve", "min_low_pfn", "phys_to_virt", "reserve_bootmem",
    "reserve_bootmem_generic", "memcpy_from", "memcpy_to", "virt_read", "virt_read_u32",
    "virt_read_u64", "virt_to_phys", "virt_write", "virt_write_u32", "virt_write_u64",
]


@attrs.define
class MmState:
    """The driver memory API's per-kernel state: whether this is a NUMA build (M5, F4), and
    the memory observers (KCSAN's instrumentation: the data-race detector)."""

    numa: bool = True
    observers: list[Any] = attrs.Factory(list)


def _set_up() -> tuple[MemoryLayout, Memblock]:
    """The running kernel's memory, once setup_arch laid it out; each call counts as one
    call into the kernel for the early-boot hang check (ksim.watchdog)."""
    kernel = current_kernel()
    kernel.hangcheck.touch()
    layout, memblock = kernel.layout, kernel.memblock
    if layout is None or memblock is None:
        raise RuntimeError("the memory layout is not set up yet (setup_arch has not run)")
    return layout, memblock


def _layout() -> MemoryLayout:
    return _set_up()[0]


def _memblock() -> Memblock:
    return _set_up()[1]


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
    return _memblock().reserve_bootmem_generic(addr, size, flags, numa=kernel.mm.numa)


def memblock_reserve(base: int, size: int) -> int:
    return _memblock().memblock_reserve(base, size)


def memblock_phys_alloc(size: int, align: int) -> int:
    return _memblock().memblock_phys_alloc(size, align)



def _phys(kernel: Kernel, virt: int, size: int, write: bool) -> int:
    """Translate a driver's pointer, telling the memory observers (the race detector); a
    not-present part of the direct map faults (D11)."""
    layout = kernel.layout
    if layout is None:
        raise RuntimeError("the memory layout is not set up yet (setup_arch has not run)")
    phys = layout.translate(virt, size, write)
    observers = kernel.mm.observers
    if observers:
        for obs in observers:
            obs.on_access(phys, size, write)
    return phys


def _kernel() -> Kernel:
    """current_kernel() without a call in the common case (the accessors run per record)."""
    kernel = current().kernel
    return current_kernel() if kernel is None else kernel


def virt_read(virt: int, n: int) -> bytes:
    """Read ``n`` bytes through a kernel virtual address (a plain load, no preemption)."""
    kernel = _kernel()
    return kernel.mem.read(_phys(kernel, virt, n, False), n)


def virt_write(virt: int, data: bytes) -> None:
    kernel = _kernel()
    kernel.mem.write(_phys(kernel, virt, len(data), True), data)


_ULONG_MASK = (1 << 64) - 1  # __pa() wraps in unsigned long, as MemoryLayout's does


def _int_accessors(width: int) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
    """``virt_read_u<N>``/``virt_write_u<N>``: :func:`_phys` and the load or store in one
    frame (memconsole makes eight of these accesses per console record).  The inline
    translation is the direct map's arithmetic, so it is taken only while the map has no
    holes (D11); the load and store go through the machine's own PhysMem, whatever its class
    (ksim compare watches stores by swapping it)."""
    load_name, store_name = f"read_u{width * 8}", f"write_u{width * 8}"

    def read(virt: int) -> int:
        kernel = current().kernel
        layout = None if kernel is None else kernel.layout
        if layout is None or layout.holes:
            kernel = current_kernel()
            return getattr(kernel.mem, load_name)(_phys(kernel, virt, width, False))
        phys = (virt - layout.page_offset) & _ULONG_MASK  # layout.translate(), no holes
        observers = kernel.mm.observers  # type: ignore[union-attr]
        if observers:
            for obs in observers:
                obs.on_access(phys, width, False)
        return getattr(kernel.mem, load_name)(phys)  # type: ignore[union-attr]

    def write(virt: int, value: int) -> None:
        kernel = current().kernel
        layout = None if kernel is None else kernel.layout
        if layout is None or layout.holes:
            kernel = current_kernel()
            getattr(kernel.mem, store_name)(_phys(kernel, virt, width, True), value)
            return
        phys = (virt - layout.page_offset) & _ULONG_MASK  # layout.translate(), no holes
        observers = kernel.mm.observers  # type: ignore[union-attr]
        if observers:
            for obs in observers:
                obs.on_access(phys, width, True)
        getattr(kernel.mem, store_name)(phys, value)  # type: ignore[union-attr]

    read.__name__ = read.__qualname__ = load_name.replace("read", "virt_read")
    write.__name__ = write.__qualname__ = store_name.replace("write", "virt_write")
    read.__doc__ = "Load a u%d through a kernel virtual address." % (width * 8)
    write.__doc__ = "Store a u%d through a kernel virtual address." % (width * 8)
    return read, write


virt_read_u64, virt_write_u64 = _int_accessors(8)
virt_read_u32, virt_write_u32 = _int_accessors(4)


MEMCPY_CHUNK = 64  # a cache line: the unit in which another CPU can see a copy progress


async def memcpy_to(dst: int, data: bytes) -> None:
    """``memcpy(dst, data, len)`` into RAM at a kernel virtual address.

    Under the deterministic scheduler each cache-line chunk is a preemption point (before
    it is written), so a copy that no lock protects really can interleave with another
    CPU's, and the other CPUs can see (and stop, on the panic path) a CPU in the middle of
    the critical section a lock around the copy makes.
    """
    kernel = _kernel()
    sched = kernel.sched
    if not sched.preemptible_copies:
        kernel.mem.write(_phys(kernel, dst, len(data), True), data)
        return
    if len(data) <= MEMCPY_CHUNK:
        if data:
            await sched.preempt_point()
            kernel.mem.write(_phys(kernel, dst, len(data), True), data)
        return
    view = memoryview(data)
    for off in range(0, len(data), MEMCPY_CHUNK):
        await sched.preempt_point()
        chunk = view[off:off + MEMCPY_CHUNK]
        kernel.mem.write(_phys(kernel, dst + off, len(chunk), True), chunk)


async def memcpy_from(src: int, n: int) -> bytes:
    """``memcpy(buf, src, n)`` out of RAM, chunked like :func:`memcpy_to`."""
    kernel = _kernel()
    sched = kernel.sched
    if not sched.preemptible_copies or n <= 0:
        return kernel.mem.read(_phys(kernel, src, n, False), n)
    if n <= MEMCPY_CHUNK:
        await sched.preempt_point()
        return kernel.mem.read(_phys(kernel, src, n, False), n)
    out = bytearray()
    for off in range(0, n, MEMCPY_CHUNK):
        await sched.preempt_point()
        size = min(MEMCPY_CHUNK, n - off)
        out += kernel.mem.read(_phys(kernel, src + off, size, False), size)
    return bytes(out)

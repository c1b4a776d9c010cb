"""The software IO TLB (kernel/dma/swiotlb.c, arch/x86/kernel/pci-dma.c).

A machine with RAM above 4 GiB needs bounce buffers for 32-bit DMA: ``mem_init`` allocates
64 MiB as low as memblock allows below 4 GiB, top-down, plus its slot array (E6), before
memblock hands the rest to the buddy allocator.  With all RAM below 4 GiB nothing is allocated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ksim.kern_levels import LOGLEVEL_INFO

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["IO_TLB_DEFAULT_SIZE", "swiotlb_init", "swiotlb_print_info"]

IO_TLB_DEFAULT_SIZE: Final = 64 << 20
IO_TLB_SHIFT: Final = 11
IO_TLB_SLOT_SIZE: Final = 24  # sizeof(struct io_tlb_slot)
IO_TLB_AREA_SIZE: Final = 24  # sizeof(struct io_tlb_area)
MAX_DMA32_PFN: Final = (1 << 32) >> 12
ARCH_LOW_ADDRESS_LIMIT: Final = 0xFFFFFFFF
SMP_CACHE_BYTES: Final = 64


def swiotlb_init(k: Kernel, max_possible_pfn: int) -> int:
    """``pci_swiotlb_detect`` + ``swiotlb_init``: the bounce buffer's address, or 0 (none)."""
    if max_possible_pfn <= MAX_DMA32_PFN:
        return 0
    mb = k.memblock
    assert mb is not None
    nareas = 1 << (k.smp.nr_cpu_ids - 1).bit_length()
    k.printk.log_line(LOGLEVEL_INFO, "software IO TLB: area num %d." % nareas)
    tlb = mb.memblock_alloc(IO_TLB_DEFAULT_SIZE, 4096, max_addr=ARCH_LOW_ADDRESS_LIMIT)
    if not tlb:
        k.printk.log_line(LOGLEVEL_INFO, "software IO TLB: Cannot allocate buffer")
        return 0
    nslabs = IO_TLB_DEFAULT_SIZE >> IO_TLB_SHIFT
    slots = (IO_TLB_SLOT_SIZE * nslabs + 4095) & ~4095
    mb.memblock_alloc(slots, SMP_CACHE_BYTES)
    mb.memblock_alloc(IO_TLB_AREA_SIZE * nareas, SMP_CACHE_BYTES)
    return tlb


def swiotlb_print_info(k: Kernel, tlb: int) -> None:
    """pci_iommu_init's report (a rootfs initcall)."""
    log = k.printk.log_line
    log(LOGLEVEL_INFO, "PCI-DMA: Using software bounce buffering for IO (SWIOTLB)")
    log(LOGLEVEL_INFO, "software IO TLB: mapped [mem %#018x-%#018x] (%dMB)"
        % (tlb, tlb + IO_TLB_DEFAULT_SIZE, IO_TLB_DEFAULT_SIZE >> 20))

"""The per-CPU areas (mm/percpu.c ``pcpu_embed_first_chunk``, arch/x86/kernel/setup_percpu.c).

x86-64 embeds the first chunk: one 2 MiB-aligned memblock allocation (zeroed) holds a unit per
possible CPU; each unit gets a copy of the static per-CPU data and the unused tail of every unit
is given back to memblock (E6).  The unit size comes from ``pcpu_build_alloc_info``: as many units
per 2 MiB as fit with at most a third of them wasted (2 MiB for one CPU, 1 MiB for two).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ksim.kern_levels import LOGLEVEL_INFO

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["pcpu_unit_size", "setup_per_cpu_areas"]

PAGE_SIZE: Final = 4096
ATOM_SIZE: Final = 2 << 20  # PMD_SIZE
PCPU_MIN_UNIT_SIZE: Final = 32 << 10
PERCPU_DYNAMIC_EARLY_SIZE: Final = 20 << 10
NR_CPUS: Final = 8192  # Debian's CONFIG_NR_CPUS
MAX_DMA_ADDRESS_PHYS: Final = 16 << 20


def _pfn_align(x: int) -> int:
    return (x + PAGE_SIZE - 1) & ~(PAGE_SIZE - 1)


def pcpu_unit_size(size_sum: int, ncpus: int) -> tuple[int, int]:
    """``pcpu_build_alloc_info`` for one group of *ncpus*: (unit size, units)."""
    min_unit = max(size_sum, PCPU_MIN_UNIT_SIZE)
    alloc = -(-min_unit // ATOM_SIZE) * ATOM_SIZE

    def fits(upa: int) -> bool:
        return alloc % upa == 0 and (alloc // upa) % PAGE_SIZE == 0

    upa = alloc // min_unit
    while not fits(upa):
        upa -= 1
    best, last_allocs = 0, None
    for upa in range(upa, 0, -1):
        if not fits(upa):
            continue
        allocs = -(-ncpus // upa)
        if allocs * upa - ncpus > ncpus // 3:
            continue
        if last_allocs is not None and allocs > last_allocs:
            break
        last_allocs, best = allocs, upa
    return alloc // best, -(-ncpus // best) * best


def setup_per_cpu_areas(k: Kernel) -> None:
    mb = k.memblock
    assert mb is not None
    image = k.image
    ncpus = k.smp.nr_cpu_ids
    log = k.printk.log_line
    log(LOGLEVEL_INFO, "setup_percpu: NR_CPUS:%d nr_cpumask_bits:%d nr_cpu_ids:%d nr_node_ids:%d"
        % (NR_CPUS, ncpus, ncpus, 1))
    dynamic = max(image.percpu_dynamic, PERCPU_DYNAMIC_EARLY_SIZE)
    size_sum = _pfn_align(image.percpu_static + image.percpu_reserved + dynamic)
    dynamic = size_sum - image.percpu_static - image.percpu_reserved
    unit, units = pcpu_unit_size(size_sum, ncpus)
    base = mb.memblock_alloc(unit * units, ATOM_SIZE, min_addr=MAX_DMA_ADDRESS_PHYS)
    if not base:
        raise MemoryError("Failed to allocate per-cpu areas")
    for i in range(units):
        start = base + i * unit
        if i < ncpus:
            k.mem.fill([(start, start + image.percpu_static)], "percpu")
            mb.memblock_phys_free(start + size_sum, unit - size_sum)
        else:
            mb.memblock_phys_free(start, unit)
    log(LOGLEVEL_INFO, "percpu: Embedded %d pages/cpu s%d r%d d%d u%d" % (
        size_sum // PAGE_SIZE, image.percpu_static, image.percpu_reserved, dynamic, unit))

"""NUMA at boot (arch/x86/mm/numa.c): the one fake node of a machine without a NUMA table.

A CONFIG_NUMA=y kernel (Debian's, and ksim's unless ``Machine(numa=False)``) finds no SRAT on
QEMU's ``pc`` machine, fakes node 0 over all RAM (``dummy_numa_init``) and allocates its
``pg_data_t`` top-down (``NODE_DATA(0) allocated``, E6).  A CONFIG_NUMA=n kernel has a static
``contig_page_data`` in its bss: no lines, no allocation.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from ksim.kern_levels import LOGLEVEL_INFO

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["initmem_init"]

SMP_CACHE_BYTES: Final = 64


class NodeDataFailed(Exception):
    """``Cannot allocate %zu bytes for node %d data``: the caller panics."""


def initmem_init(k: Kernel, max_pfn: int) -> int:
    """``x86_numa_init`` on a machine without SRAT; returns NODE_DATA(0)'s physical address
    (0 without NUMA)."""
    if not k.mm.numa:
        return 0
    assert k.memblock is not None
    log = k.printk.log_line
    log(LOGLEVEL_INFO, "No NUMA configuration found")
    log(LOGLEVEL_INFO, "Faking a node at [mem %#018x-%#018x]" % (0, (max_pfn << 12) - 1))
    size = k.image.pgdat_size
    # memblock_phys_alloc_try_nid(), then memset() and the node's fields
    nd_pa = k.memblock.memblock_alloc(size, SMP_CACHE_BYTES, contents="node_data")
    if not nd_pa:
        raise NodeDataFailed("Cannot allocate %d bytes for node %d data" % (size, 0))
    log(LOGLEVEL_INFO, "NODE_DATA(%d) allocated [mem %#010x-%#010x]" % (0, nd_pa, nd_pa + size - 1))
    return nd_pa

"""The initramfs (init/initramfs.c, arch/x86/mm/init.c ``free_initrd_mem``).

At the rootfs initcall the kernel unpacks the image the boot loader left (``Trying to unpack
rootfs image as initramfs...``) and frees its pages (``Freeing initrd memory: %luK``, its
page-rounded size): from then on they are ordinary free memory (D2).  ksim does not model the
unpacked files: they go to page-cache pages the buddy allocator picks, which matters only for
memory nobody reserved.  The initramfs has ``/init``, so unless ``rdinit=`` names something
else, init is ``/init`` (P9).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksim.kern_levels import LOGLEVEL_INFO
from ksim.memory import PAGE_ALIGN, PAGE_MASK

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["RDINIT_DEFAULT", "populate_rootfs"]

RDINIT_DEFAULT = "/init"


def populate_rootfs(k: Kernel) -> None:
    initrd = k.setup.initrd
    if initrd is None:
        return
    start, size = initrd
    log = k.printk.log_line
    log(LOGLEVEL_INFO, "Trying to unpack rootfs image as initramfs...")
    aligned = start & PAGE_MASK
    end = PAGE_ALIGN(start + size)
    if k.memblock is not None:
        k.memblock.memblock_phys_free(aligned, end - aligned)
    log(LOGLEVEL_INFO, "Freeing initrd memory: %dK" % ((end - aligned) >> 10))
    k.setup.initrd = None

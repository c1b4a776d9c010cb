"""The architecture's early boot (arch/x86/kernel/setup.c): ``setup_arch()``.

In Linux's order for what ksim models: the firmware memory map, the early parameters
(``parse_early_param``), the ``user:`` map after ``mem=``, the pfn bounds and memblock with
the kernel image reserved, the early memory test, the log buffer of ``log_buf_len=``, and
x86's panic notifier that prints the kernel's text offset.  ``mem_init_print_info`` (the
``Memory:`` line of mm/mm_init.c) is here too because it reads what setup_arch laid out.

The kernel image is at 1 MiB, 3 MiB long (code, data, init and bss of a small x86-64 build);
physical RAM is one range from 0 (see :mod:`ksim.e820`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksim.e820 import e820__finish_early_params, e820__memory_setup
from ksim.fs import ProcOps, text_reader
from ksim.init import kernel_file, parse_early_param
from ksim.kern_levels import KERN_EMERG, KERN_INFO, LOGLEVEL_INFO
from ksim.memblock import Memblock
from ksim.memory import PAGE_SIZE, MemoryLayout
from ksim.memtest import early_memtest
from ksim.notifier import NotifierBlock, atomic_notifier_chain_register
from ksim.printk import printk, setup_log_buf

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["KERNEL_IMAGE_SECTIONS_K", "KERNEL_IMAGE_SIZE", "KERNEL_IMAGE_START", "mem_init_print_info",
           "setup_arch"]

KERNEL_IMAGE_START = 0x100000  # 1 MiB, the classic CONFIG_PHYSICAL_START of small kernels
KERNEL_IMAGE_SIZE = 0x300000  # 3 MiB of text, data and bss
KERNEL_IMAGE_SECTIONS_K = (512, 192, 256, 2048, 64)  # code, rwdata, rodata, init, bss: 3 MiB


async def dump_kernel_offset(nb: NotifierBlock, action: int, data: object) -> int:
    """x86's panic notifier: ksim's kernel text is never randomised (no KASLR, N14)."""
    await printk(KERN_EMERG + "Kernel Offset: disabled\n")
    return 0


async def setup_arch(k: Kernel) -> None:
    """From the firmware map to a memblock allocator, in setup_arch()'s order."""
    log = k.printk.log_line
    for line in e820__memory_setup(k):
        log(LOGLEVEL_INFO, line)
    await parse_early_param(k)
    for line in e820__finish_early_params(k):
        log(LOGLEVEL_INFO, line)
    kernel_end = KERNEL_IMAGE_START + KERNEL_IMAGE_SIZE
    k.layout = MemoryLayout.for_ram(k.mem.size, mem_limit=k.e820.mem_limit,
                                    page_offset=k.kaslr.direct_map_base(),
                                    kernel_end=kernel_end)
    k.memblock = Memblock(k.layout.max_pfn, log=log)
    k.memblock.memblock_add(0, k.layout.max_pfn * PAGE_SIZE)
    k.memblock.memblock_reserve(0, PAGE_SIZE)  # the BIOS data area, page 0
    k.memblock.memblock_reserve(KERNEL_IMAGE_START, KERNEL_IMAGE_SIZE)
    early_memtest(k)
    setup_log_buf(k)
    atomic_notifier_chain_register(k.chains.panic_notifier_list,
                                   NotifierBlock(dump_kernel_offset))


@kernel_file("/proc/iomem", 0o444)
def _proc_iomem(k: Kernel) -> ProcOps:
    """kernel/resource.c's tree as setup_arch() fills it: System RAM and the kernel code."""

    def render() -> str:
        assert k.layout is not None
        return "\n".join([
            "00000000-%08x : System RAM" % (k.layout.max_pfn * PAGE_SIZE - 1),
            "  %08x-%08x : Kernel code" % (KERNEL_IMAGE_START,
                                            KERNEL_IMAGE_START + KERNEL_IMAGE_SIZE - 1),
        ]) + "\n"

    return text_reader(render)


async def mem_init_print_info(k: Kernel) -> None:
    """``Memory: ...K/...K available (...)``; the image's 3 MiB split as a small x86-64
    build's would be."""
    assert k.layout is not None and k.memblock is not None
    total = k.layout.max_pfn * PAGE_SIZE
    reserved = k.memblock.reserved_bytes()
    code, rwdata, rodata, init, bss = KERNEL_IMAGE_SECTIONS_K
    await printk(KERN_INFO + "Memory: %uK/%uK available (%uK kernel code, %uK rwdata, "
                 "%uK rodata, %uK init, %uK bss, %uK reserved, %uK cma-reserved)\n",
                 (total - reserved) // 1024, total // 1024, code, rwdata, rodata, init, bss,
                 reserved // 1024, 0)

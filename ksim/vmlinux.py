"""The kernel image: vmlinux's sections (arch/x86/kernel/vmlinux.lds.S), the bzImage header
(arch/x86/boot/header.S) and what the decompressor writes (arch/x86/boot/compressed/head_64.S,
misc.c).

A :class:`KernelImage` describes one build.  Two are known:

``ksim`` (the default)
    ksim's own small build of 6.1 (``6.1.0-ksim``): 3 MiB of code, data and bss, laid out as
    vmlinux.lds.S lays out any x86-64 kernel (text at ``_text``, rodata and data each on the next
    2 MiB boundary, init between data and bss, then the brk area), with Debian's configuration
    otherwise (``pg_data_t``, per-CPU sizes).  Its sizes are chosen, not measured: small enough
    that a 64 MiB machine boots it with KASLR.
``debian``
    Debian's ``vmlinuz-6.1.0-57-amd64``, as the oracle measured it: sections from
    ``/proc/iomem`` with ``nokaslr``, section sizes from the ``Memory:`` line, header fields
    from the file (``init_size 0x3f98000``, 8 MB compressed).  It needs about 80 MiB of RAM
    below the initramfs, as the real one does (64 and 72 MiB machines reset).

What the decompressor writes (D5): head_64.S first copies the compressed kernel (ZO) to the end
of its buffer ``[LOAD_PHYSICAL_ADDR, + init_size)``, at the same place whatever KASLR picks
later; ``extract_kernel`` then chooses the output address (:mod:`ksim.kaslr`) and writes the
image there: text, rodata and data, then bss and brk cleared.  ``output_len`` and the ZO size of
the ``debian`` build are estimates (the header does not record them); they change nothing the
oracle saw.
"""

from __future__ import annotations

from typing import Final

import attrs

from ksim.memory import PhysMem

__all__ = ["IMAGES", "IMAGE_NAMES", "KernelImage", "LOAD_PHYSICAL_ADDR", "MIN_KERNEL_ALIGN",
           "extract_kernel"]

LOAD_PHYSICAL_ADDR: Final = 0x1000000  # CONFIG_PHYSICAL_START (Debian and the default)
CONFIG_PHYSICAL_ALIGN: Final = 0x200000
MIN_KERNEL_ALIGN: Final = 0x200000  # 1 << PMD_SHIFT on x86-64
__START_KERNEL_map: Final = 0xFFFFFFFF80000000


def _align(x: int, a: int) -> int:
    return (x + a - 1) & ~(a - 1)


@attrs.frozen
class KernelImage:
    """One kernel build; offsets are from ``_text``, sizes in bytes unless named ``_k``."""

    name: str
    # vmlinux (offsets from _text) and the Memory: line's section sizes
    text_end: int  # _etext
    rodata: tuple[int, int]  # [__start_rodata, __end_rodata)
    data: tuple[int, int]  # [_sdata, _edata)
    bss: tuple[int, int]  # [__bss_start, __bss_stop)
    brk_used: int  # bytes of .brk the early boot uses (page tables, DMI)
    end: int  # _end: the kernel's total run size
    code_k: int
    rwdata_k: int
    rodata_k: int
    init_k: int
    bss_k: int
    # the bzImage
    setup_sects: int
    payload_size: int  # the protected-mode part QEMU loads at 1 MiB
    init_size: int  # boot header: the decompression buffer
    output_len: int  # the decompressed vmlinux.bin plus relocations (estimate)
    zo_size: int  # the relocated ZO: compressed data, decompressor, heap, stack (estimate)
    initrd_addr_max: int = 0x7FFFFFFF
    can_load_above_4g: bool = True  # XLF_CAN_BE_LOADED_ABOVE_4G
    protocol: int = 0x20F
    cmdline_size: int = 0x7FF
    # configuration
    pgdat_size: int = 0x2B000  # roundup(sizeof(pg_data_t), PAGE_SIZE)
    percpu_static: int = 217088
    percpu_reserved: int = 8192
    percpu_dynamic: int = 28672

    @property
    def needed_size(self) -> int:
        """extract_kernel()'s ``needed_size``: what KASLR must find room for (D4)."""
        return _align(max(self.output_len, self.end), MIN_KERNEL_ALIGN)

    @property
    def setup_size(self) -> int:
        return (self.setup_sects + 1) * 512

    def sections(self, base: int) -> list[tuple[str, int, int]]:
        """``/proc/iomem``'s kernel resources at physical *base*: (name, start, end inclusive)."""
        return [("Kernel code", base, base + self.text_end - 1),
                ("Kernel rodata", base + self.rodata[0], base + self.rodata[1] - 1),
                ("Kernel data", base + self.data[0], base + self.data[1] - 1),
                ("Kernel bss", base + self.bss[0], base + self.bss[1] - 1)]


KSIM_IMAGE: Final = KernelImage(
    name="ksim", text_end=0x80000, rodata=(0x200000, 0x240000), data=(0x400000, 0x430000),
    bss=(0x630000, 0x640000), brk_used=0x11000, end=0x670000,
    code_k=512, rwdata_k=192, rodata_k=256, init_k=2048, bss_k=64,
    setup_sects=39, payload_size=0x1C0000, init_size=0xA00000, output_len=0x640000,
    zo_size=0x230000)

DEBIAN_IMAGE: Final = KernelImage(
    name="debian", text_end=0xE01D32, rodata=(0x1000000, 0x18EB000), data=(0x1A00000, 0x1C48980),
    bss=(0x2310000, 0x3400000), brk_used=0x11000, end=0x3430000,
    code_k=14343, rwdata_k=2338, rodata_k=9132, init_k=2824, bss_k=17344,
    setup_sects=39, payload_size=0x7D87C0, init_size=0x3F98000, output_len=0x2400000,
    zo_size=0x850000)

IMAGES: Final = {image.name: image for image in (KSIM_IMAGE, DEBIAN_IMAGE)}
IMAGE_NAMES: Final = tuple(IMAGES)


def zo_range(image: KernelImage, output: int = LOAD_PHYSICAL_ADDR) -> tuple[int, int]:
    """Where head_64.S copies the compressed kernel: the end of ``[output, output + init_size)``."""
    end = output + image.init_size
    return end - image.zo_size, end


def extract_kernel(mem: PhysMem, image: KernelImage, base: int) -> None:
    """The decompressor's writes for an image decompressed at physical *base* (D5): the ZO copy,
    then text to data (garbage to ksim) and bss and brk cleared."""
    zo_start, zo_end = zo_range(image)
    mem.fill([(zo_start, zo_end)], f"zo:{image.name}")
    mem.fill([(base, base + image.bss[0])], f"vmlinux:{image.name}")
    mem.scrub([(base + image.bss[0], base + image.end)], 0)

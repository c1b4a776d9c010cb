"""The boot loader: QEMU's ``-kernel``/``-initrd`` loader (hw/i386/x86.c ``x86_load_linux`` and
its ``linuxboot_dma`` option ROM) and the boot parameters it leaves (arch/x86/include/uapi/asm/
bootparam.h, Documentation/x86/boot.rst).

At every boot, before the kernel runs, the loader copies (D1, D2):

* the real-mode setup code and the ``boot_params`` inside it to 0x10000 (the setup code's own
  stack runs just below 0x20000);
* the command line, NUL-terminated, to 0x20000, whatever its length: the boot protocol's
  ``cmdline_size`` (2047) is not enforced by QEMU, and the kernel copies exactly
  ``COMMAND_LINE_SIZE`` (2048) bytes from there (P1);
* the protected-mode kernel (the compressed payload) to 1 MiB;
* the initramfs to ``(initrd_max - size) & ~4095`` with ``initrd_max`` the last byte below the
  128 KiB SeaBIOS keeps at the top of low RAM: the header's ``initrd_addr_max`` is ignored when
  the kernel says it can be loaded above 4 GiB (QEMU 7.2).  An initramfs that does not fit is
  QEMU's error, before anything boots.

Each copy overwrites what was in RAM there (lazily, :meth:`ksim.memory.PhysMem.fill`); the
command line's bytes are written for real, so the kernel reads its command line from RAM.
The firmware's e820 table travels in ``boot_params`` too.
"""

from __future__ import annotations

from typing import Final

import attrs

from ksim.e820 import E820Entry
from ksim.firmware import QEMU_PC_ACPI_DATA_SIZE
from ksim.memory import PAGE_SIZE, PhysMem
from ksim.vmlinux import KernelImage

__all__ = ["BOOT_PARAMS_ADDR", "BootParams", "CMDLINE_ADDR", "InitrdTooLarge", "KERNEL_ADDR",
           "REAL_ADDR", "load_linux", "qemu_initrd_addr"]

REAL_ADDR: Final = 0x10000  # the real-mode setup code
CMDLINE_ADDR: Final = 0x20000
KERNEL_ADDR: Final = 0x100000  # the protected-mode kernel
# %rsi at the kernel's entry: the zero page inside the setup image (observed with Debian's;
# ksim's build uses the same setup code).
BOOT_PARAMS_ADDR: Final = 0x14790
BOOT_PARAMS_SIZE: Final = 4096  # sizeof(struct boot_params)
SETUP_WRITTEN_END: Final = 0x16BFF  # the setup code's data and heap, as observed
SETUP_STACK: Final = (0x1F9E0, 0x20000)
UINT32_MAX: Final = 0xFFFFFFFF
LOADER_TYPE_QEMU: Final = 0xB0  # type_of_loader (QEMU: 0xB0)


class InitrdTooLarge(ValueError):
    """QEMU's ``initrd is too large`` error: the machine never starts."""


@attrs.frozen
class BootParams:
    """What the kernel finds at its entry (``struct boot_params``, the parts ksim uses)."""

    e820_table: tuple[E820Entry, ...]
    cmd_line_ptr: int
    cmdline_len: int  # strlen() of what the loader copied
    ramdisk_image: int
    ramdisk_size: int
    boot_params_addr: int = BOOT_PARAMS_ADDR
    boot_params_size: int = BOOT_PARAMS_SIZE
    type_of_loader: int = LOADER_TYPE_QEMU


def qemu_initrd_addr(mem: PhysMem, image: KernelImage, size: int) -> int:
    """Where QEMU puts an initramfs of *size* bytes (D2); raises :class:`InitrdTooLarge`."""
    low = mem.below_4g
    if image.protocol >= 0x20C and image.can_load_above_4g:
        initrd_max = UINT32_MAX
    elif image.protocol >= 0x203:
        initrd_max = image.initrd_addr_max
    else:
        initrd_max = 0x37FFFFFF
    if initrd_max >= low - QEMU_PC_ACPI_DATA_SIZE:
        initrd_max = low - QEMU_PC_ACPI_DATA_SIZE - 1
    if size >= initrd_max:
        raise InitrdTooLarge(f"qemu: initrd is too large, cannot support.(max: {initrd_max}, "
                             f"need {size})")
    return (initrd_max - size) & ~(PAGE_SIZE - 1)


def load_linux(mem: PhysMem, image: KernelImage, cmdline: str, initrd_size: int,
               e820: list[E820Entry]) -> BootParams:
    """Copy the setup code, command line, kernel and initramfs into *mem*; the boot params."""
    ramdisk = qemu_initrd_addr(mem, image, initrd_size) if initrd_size else 0
    mem.fill([(REAL_ADDR, SETUP_WRITTEN_END)], f"setup:{image.name}")
    mem.fill([SETUP_STACK], "setup-stack")
    raw = cmdline.encode("latin-1", errors="replace")
    mem.write(CMDLINE_ADDR, raw + b"\0")
    mem.fill([(KERNEL_ADDR, KERNEL_ADDR + image.payload_size)], f"bzimage:{image.name}")
    if initrd_size:
        mem.fill([(ramdisk, ramdisk + initrd_size)], f"initrd:{initrd_size}")
    return BootParams(tuple(e820), CMDLINE_ADDR, len(raw), ramdisk, initrd_size)

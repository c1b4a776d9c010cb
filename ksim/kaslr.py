"""KASLR: where the decompressor puts the kernel (arch/x86/boot/compressed/kaslr.c) and where the
direct map begins (arch/x86/mm/kaslr.c), both per boot.

**The kernel image** (CONFIG_RANDOMIZE_BASE=y, D3, D4).  Unless the command line has the word
``nokaslr``, ``choose_random_location`` walks the firmware's e820 RAM entries from
``min(LOAD_PHYSICAL_ADDR, 512 MiB)``, cuts out what the decompressor must not overwrite (its own
compressed copy and run space, the initramfs, the command line, the boot parameters, up to four
``memmap=`` regions) and what lies above a ``mem=``/``memmap=nn`` limit, counts the 2 MiB-aligned
slots where the whole image fits, and takes one at random; nothing else is avoided (not the
firmware's areas, not what the previous kernel left).  The virtual address is drawn separately
from the 1 GiB kernel-image window.  ``kaslr_offset()`` is the virtual distance from the link
address: the panic notifier prints it (``Kernel Offset:``), or ``Kernel Offset: disabled``
with ``nokaslr``.  ``nokaslr`` is the decompressor's word only: 6.1's kernel proper has no such
parameter and hands it to init (P6).

**The direct map** (CONFIG_RANDOMIZE_MEMORY=y, D6).  When the decompressor ran KASLR,
``kernel_randomize_memory`` moves PAGE_OFFSET (and the vmalloc and vmemmap bases) by a random
whole number of GiB within the space the three regions leave, so a virtual address kept in RAM
means nothing to the next boot (F6).  ``ksim.page_offset=ADDR`` (ksim's own early parameter)
overrides the result, also under ``nokaslr``; ``ksim.page_offset=random`` draws as
``kernel_randomize_memory`` does even under ``nokaslr``.

Randomness (``kaslr_get_random_long``) comes from :func:`ksim.cpu.boot_random`: independent per
machine seed, boot number and purpose.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

import attrs

from ksim.cmdline import memparse, next_arg
from ksim.cpu import boot_random
from ksim.current import current_kernel
from ksim.e820 import E820_TYPE_RAM
from ksim.errno import EINVAL
from ksim.init import early_param
from ksim.memory import PAGE_OFFSET_DEFAULT, PAGE_SHIFT
from ksim.vmlinux import LOAD_PHYSICAL_ADDR, KernelImage, zo_range

if TYPE_CHECKING:
    from ksim.bootloader import BootParams

__all__ = ["KASLR_FLAG", "KaslrState", "choose_random_location", "cmdline_find_option_bool",
           "kernel_randomize_memory"]

KASLR_FLAG: Final = 1 << 1  # boot_params.hdr.loadflags
CONFIG_PHYSICAL_ALIGN: Final = 0x200000
KERNEL_IMAGE_SIZE: Final = 1 << 30  # the kernel-image window with KASLR
MAX_MEMMAP_REGIONS: Final = 4
ULLONG_MAX: Final = (1 << 64) - 1
MAXMEM: Final = 1 << 46
__START_KERNEL_map: Final = 0xFFFFFFFF80000000
__START_KERNEL: Final = __START_KERNEL_map + LOAD_PHYSICAL_ADDR
MODULES_VADDR: Final = __START_KERNEL_map + KERNEL_IMAGE_SIZE
# arch/x86/mm/kaslr.c, 4-level paging
VADDR_END: Final = 0xFFFFFE0000000000  # CPU_ENTRY_AREA_BASE
TB_SHIFT: Final = 40
PUD_SIZE: Final = 1 << 30
VMALLOC_SIZE_TB: Final = 32
RANDOMIZE_MEMORY_PHYSICAL_PADDING: Final = 0xA  # Debian's CONFIG_RANDOMIZE_MEMORY_PHYSICAL_PADDING
STRUCT_PAGE_SIZE: Final = 64


@attrs.define
class KaslrState:
    """One boot's randomisation: what the decompressor chose, and the direct map's base."""

    enabled: bool = False  # KASLR_FLAG: the decompressor ran choose_random_location
    phys_base: int = LOAD_PHYSICAL_ADDR  # where the image was decompressed
    virt_addr: int = LOAD_PHYSICAL_ADDR  # the virtual placement, as a physical-style address
    physical_failed: bool = False  # "Physical KASLR disabled: no suitable memory region!"
    slots: int = 0  # how many physical slots there were
    randomized_page_offset: int | None = None  # kernel_randomize_memory's choice
    page_offset: int | None = None  # ksim.page_offset=ADDR: an override
    page_offset_random: bool = False  # ksim.page_offset=random: randomise even under nokaslr

    def kaslr_offset(self) -> int:
        return self.virt_addr - LOAD_PHYSICAL_ADDR

    def direct_map_base(self) -> int:
        if self.page_offset is not None:
            return self.page_offset
        if self.randomized_page_offset is not None:
            return self.randomized_page_offset
        return PAGE_OFFSET_DEFAULT


def cmdline_find_option_bool(cmdline: str, option: str) -> bool:
    """arch/x86/boot/cmdline.c: *option* as a whole whitespace-separated word, anywhere (no
    quoting, no ``--``)."""
    return option in cmdline.split()


@attrs.frozen
class MemVector:
    start: int
    size: int

    @property
    def end(self) -> int:
        return self.start + self.size


def _overlaps(one: MemVector, two: MemVector) -> bool:
    return not (one.end <= two.start or one.start >= two.end)


def _parse_memmap(p: str) -> tuple[int, int] | None:
    """The decompressor's ``parse_memmap``: (start, size) to avoid, or None to stop."""
    if p.startswith("exactmap"):
        return None
    size, rest = memparse(p)
    if rest == p:
        return None
    if rest[:1] in ("#", "$", "!"):
        start, _ = memparse(rest[1:])
        return start, size
    if rest[:1] == "@":
        size = 0  # a usable region: nothing to avoid
    return 0, size


@attrs.define
class _MemOptions:
    """``handle_mem_options``: the memmap= regions (at most four) and the memory limit."""

    avoid: list[MemVector] = attrs.Factory(list)
    mem_limit: int = ULLONG_MAX
    too_large: bool = False

    def memmap(self, value: str | None) -> None:
        if len(self.avoid) >= MAX_MEMMAP_REGIONS:
            return
        items = value.split(",") if value is not None else []
        i = 0
        while i < len(items) and len(self.avoid) < MAX_MEMMAP_REGIONS:
            parsed = _parse_memmap(items[i])
            if parsed is None:
                break
            i += 1
            start, size = parsed
            if start == 0:
                if size > 0:
                    self.mem_limit = size
                continue
            self.avoid.append(MemVector(start, size))
        if len(self.avoid) >= MAX_MEMMAP_REGIONS and i < len(items):
            self.too_large = True


def handle_mem_options(cmdline: str) -> _MemOptions:
    opts = _MemOptions()
    if "memmap=" not in cmdline and "mem=" not in cmdline and "hugepages" not in cmdline:
        return opts
    pos = 0
    while True:
        got = next_arg(cmdline, pos)
        if got is None:
            break
        tok, pos = got
        if tok.value is None and tok.name == "--":
            break
        if tok.name == "memmap":
            opts.memmap(tok.value)
        elif tok.name == "mem" and tok.value is not None:
            if tok.value == "nopentium":
                continue
            size, _ = memparse(tok.value)
            if size == 0:
                break
            opts.mem_limit = size
    return opts


def _mem_avoid(bp: BootParams, image: KernelImage, opts: _MemOptions) -> list[MemVector]:
    zo_start, zo_end = zo_range(image)
    avoid = [MemVector(zo_start, zo_end - zo_start),
             MemVector(bp.ramdisk_image, bp.ramdisk_size),
             MemVector(bp.cmd_line_ptr, bp.cmdline_len + 1),
             MemVector(bp.boot_params_addr, bp.boot_params_size)]
    return avoid + opts.avoid


def _slots_in(region: MemVector, image_size: int, avoid: list[MemVector],
              minimum: int) -> Iterable[tuple[int, int]]:
    """``process_mem_region`` for one RAM entry: (first slot address, number of slots)."""
    cur_end = region.end
    start, size = region.start, region.size
    while True:
        start_orig = start
        start = max(start, minimum)
        start = (start + CONFIG_PHYSICAL_ALIGN - 1) & ~(CONFIG_PHYSICAL_ALIGN - 1)
        if start > cur_end:
            return
        size -= start - start_orig
        if size < image_size:
            return
        img = MemVector(start, size)
        overlap = min((a for a in avoid if a.size and _overlaps(img, a)),
                      key=lambda a: a.start, default=None)
        if overlap is None:
            yield start, (size - image_size) // CONFIG_PHYSICAL_ALIGN + 1
            return
        if overlap.start > start + image_size:
            yield start, (overlap.start - start - image_size) // CONFIG_PHYSICAL_ALIGN + 1
        if overlap.end >= start + size:
            return
        size -= overlap.start - start + overlap.size
        start = overlap.end


def choose_random_location(bp: BootParams, image: KernelImage, cmdline: str, seed: int,
                           boot: int) -> KaslrState:
    """Where the decompressor puts *image* on this boot, and its virtual placement (D3)."""
    state = KaslrState()
    if cmdline_find_option_bool(cmdline, "nokaslr"):
        return state
    state.enabled = True
    opts = handle_mem_options(cmdline)
    image_size = image.needed_size
    minimum = min(LOAD_PHYSICAL_ADDR, 512 << 20)
    minimum = (minimum + CONFIG_PHYSICAL_ALIGN - 1) & ~(CONFIG_PHYSICAL_ALIGN - 1)
    areas: list[tuple[int, int]] = []
    if not opts.too_large:
        avoid = _mem_avoid(bp, image, opts)
        for entry in bp.e820_table:
            if entry.type != E820_TYPE_RAM or entry.addr + entry.size < minimum:
                continue
            end = min(entry.addr + entry.size, opts.mem_limit, MAXMEM)
            if entry.addr >= end:
                continue
            areas += [a for a in _slots_in(MemVector(entry.addr, end - entry.addr), image_size,
                                           avoid, minimum) if a[1] > 0]
    slot_max = sum(n for _, n in areas)
    state.slots = slot_max
    if slot_max:
        slot = boot_random(seed, boot, "kaslr-physical").getrandbits(64) % slot_max
        for addr, n in areas:
            if slot < n:
                state.phys_base = addr + slot * CONFIG_PHYSICAL_ALIGN
                break
            slot -= n
    else:
        state.physical_failed = True
    virt_slots = (KERNEL_IMAGE_SIZE - LOAD_PHYSICAL_ADDR - image_size) // CONFIG_PHYSICAL_ALIGN + 1
    pick = boot_random(seed, boot, "kaslr-virtual").getrandbits(64) % virt_slots
    state.virt_addr = pick * CONFIG_PHYSICAL_ALIGN + LOAD_PHYSICAL_ADDR
    return state


def kernel_randomize_memory(max_pfn: int, seed: int, boot: int) -> int:
    """arch/x86/mm/kaslr.c: the randomised PAGE_OFFSET (the direct map's base) for this boot."""
    memory_tb = -(-(max_pfn << PAGE_SHIFT) // (1 << TB_SHIFT)) + RANDOMIZE_MEMORY_PHYSICAL_PADDING
    sizes_tb = [min(1 << (46 - TB_SHIFT), memory_tb), VMALLOC_SIZE_TB, 0]
    vmemmap_size = (sizes_tb[0] << (TB_SHIFT - PAGE_SHIFT)) * STRUCT_PAGE_SIZE
    sizes_tb[2] = -(-vmemmap_size // (1 << TB_SHIFT))
    remain = VADDR_END - PAGE_OFFSET_DEFAULT - sum(tb << TB_SHIFT for tb in sizes_tb)
    rng = boot_random(seed, boot, "kaslr-memory")
    # only the first region's base, page_offset_base, matters to ksim
    entropy = remain // len(sizes_tb)
    rand = rng.getrandbits(64)
    return PAGE_OFFSET_DEFAULT + ((rand % (entropy + 1)) & ~(PUD_SIZE - 1))


@early_param("ksim.page_offset")
async def page_offset_setup(val: str | None) -> int:
    """ksim's own: fix the direct map's base for this boot, or draw it as KASLR does."""
    if val is None:
        return -EINVAL
    k = current_kernel()
    if val == "random":
        k.kaslr.page_offset_random = True  # drawn once max_pfn is known (setup_arch)
        return 0
    try:
        k.kaslr.page_offset = int(val, 0)
    except ValueError:
        return -EINVAL
    return 0

"""The firmware: QEMU's ``pc`` memory map and what POST writes at power-on and at a reset.

**The memory map** (E1) is QEMU 7.2's ``pc`` machine as SeaBIOS 1.16 reports it through INT 15h
E820, as the oracle observed for 64 MiB to 8 GiB: RAM below 3.5 GiB is all at physical 0; from
3.5 GiB on, 3 GiB stay low and the rest goes to 4 GiB (``pc_init1``'s split with gigabyte
alignment).  Below the top T of low RAM, SeaBIOS keeps 128 KiB for its tables (ACPI, FACS first);
the EBDA (1 KiB below 640 KiB), the BIOS at 0xf0000, the 256 KiB flash below 4 GiB and QEMU's
AMD HyperTransport hole at 1012 GiB are reserved at every size.

**What a reset keeps** is a firmware *profile*, chosen per machine:

``seabios`` (default)
    QEMU + SeaBIOS, observed (E4, W1): POST rewrites the IVT and BDA, its stack and the zeroed
    0x7000-0x8ffff, the EBDA, SMRAM behind the VGA window, the option-ROM/BIOS shadow at
    0xc0000-0xfffff, two pieces of its temporary high zone just below T-16 MiB and its 128 KiB
    of tables below T; on a warm reset its resume path also writes 0xf98-0xfff.  Nothing else:
    the previous kernel's image, log buffer and free memory survive.  SeaBIOS always re-POSTs
    (F10: warm or cold makes no difference) and never tests memory.
``pc-bios``
    A real PC BIOS (W2): the same regions, and POST runs its memory test, which leaves RAM
    cleared, unless the BIOS Data Area's reset flag at 0x472 holds 0x1234 (the IBM PC/AT
    convention: "warm boot, skip the memory test").  Linux writes that flag as it resets:
    0x1234 for ``reboot=warm``, 0 otherwise (arch/x86/kernel/reboot.c); after a power cut the
    flag is whatever garbage RAM holds, so the test runs.
``uefi``
    OVMF, observed once at 512 MiB (E(5), W3): PEI/DXE working memory at fixed low addresses
    (8-23 MiB, where a non-KASLR kernel lives) and ~20 MiB of boot-services memory in six
    regions below T, allocated top-down.  Each boot shifts every top region down by a seeded
    0..1 MiB (how much DXE allocates first depends on drivers and variables: the jitter is
    ksim's assumption, not an observation).  The e820 table is SeaBIOS's (OVMF's real one comes
    from the EFI memory map and has more entries: not modelled).
``ecc-scrub``
    Server firmware that initialises ECC memory by writing all of it at every POST (W4), then
    behaves like ``seabios``: nothing survives any reset.

Every write is lazy (:meth:`ksim.memory.PhysMem.fill`): a 64 GiB machine costs nothing more.
The boot loader's writes (setup code, command line, kernel, initramfs) are
:mod:`ksim.bootloader`'s.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Final

import attrs

from ksim.e820 import E820_TYPE_RAM, E820_TYPE_RESERVED, E820Entry
from ksim.memory import FOUR_GIB, PAGE_SIZE, PhysMem

__all__ = ["FIRMWARE", "FIRMWARE_NAMES", "Firmware", "QEMU_PC_ACPI_DATA_SIZE", "qemu_pc_below_4g",
           "qemu_pc_e820", "seabios_regions"]

GiB: Final = 1 << 30
MiB: Final = 1 << 20
# hw/i386/pc_piix.c: RAM at or above 3.5 GiB keeps only 3 GiB below 4 GiB (gigabyte_align).
QEMU_PC_LOWMEM: Final = 0xE0000000
QEMU_PC_LOWMEM_ALIGNED: Final = 0xC0000000
# The top of low RAM SeaBIOS keeps for its tables (QEMU's ACPI_DATA_SIZE, 128 KiB).
QEMU_PC_ACPI_DATA_SIZE: Final = 0x20000
AMD_HT_START: Final = 0xFD00000000
AMD_HT_END: Final = 0x10000000000
BIOS_FLASH_START: Final = 0xFFFC0000
RESET_FLAG: Final = 0x472  # the BIOS Data Area's reset flag (40:72)
WARM_BOOT_FLAG: Final = 0x1234


def qemu_pc_below_4g(ram: int) -> int:
    """How much of *ram* QEMU's ``pc`` machine puts below 4 GiB (E1)."""
    if ram >= QEMU_PC_LOWMEM:
        return QEMU_PC_LOWMEM_ALIGNED
    return ram


def qemu_pc_e820(mem: PhysMem) -> list[E820Entry]:
    """The e820 table SeaBIOS reports on QEMU's ``pc`` machine with this RAM (E1), in its order."""
    top = mem.below_4g
    entries = [
        E820Entry(0, 0x9FC00, E820_TYPE_RAM),
        E820Entry(0x9FC00, 0x400, E820_TYPE_RESERVED),  # the EBDA
        E820Entry(0xF0000, 0x10000, E820_TYPE_RESERVED),  # the BIOS
        E820Entry(0x100000, top - QEMU_PC_ACPI_DATA_SIZE - 0x100000, E820_TYPE_RAM),
        E820Entry(top - QEMU_PC_ACPI_DATA_SIZE, QEMU_PC_ACPI_DATA_SIZE, E820_TYPE_RESERVED),
        E820Entry(BIOS_FLASH_START, FOUR_GIB - BIOS_FLASH_START, E820_TYPE_RESERVED),
    ]
    if mem.size > top:
        entries.append(E820Entry(FOUR_GIB, mem.size - top, E820_TYPE_RAM))
    entries.append(E820Entry(AMD_HT_START, AMD_HT_END - AMD_HT_START, E820_TYPE_RESERVED))
    return entries


@attrs.frozen
class Region:
    """A range POST writes: ``zero`` ones are cleared, the others get data (garbage, to ksim)."""

    label: str
    start: int
    end: int
    zero: bool = False


def seabios_regions(top: int, *, warm: bool) -> list[Region]:
    """What SeaBIOS writes at POST, for low RAM ending at *top* (E(1), E(4) at 512 MiB; the high
    pieces are placed relative to *top*, as SeaBIOS's debug log shows at every size)."""
    regions = [
        Region("ivt-bda", 0x0, 0x500),
        Region("stack", 0x6604, 0x7000),
        Region("low", 0x7000, 0x90000, zero=True),
        Region("ebda", 0x9FC00, 0xA0000),
        Region("smram", 0xA0000, 0xA0404),
        Region("smram", 0xA7F9C, 0xA8008),
        Region("smram", 0xAFE00, 0xB0000),
        Region("shadow", 0xC0000, 0x100000),
        Region("zonehigh", top - 0x101DD60, top - 0x101DC38),
        Region("zonehigh", top - 0x101A000, top - 0x1000004),
        Region("tables", top - QEMU_PC_ACPI_DATA_SIZE, top),
    ]
    if warm:
        regions.append(Region("resume", 0xF98, 0x1000))
    # a machine too small for SeaBIOS's 16 MiB high zone keeps it in the tables' stead
    return sorted((r for r in regions if 0 <= r.start < r.end <= top), key=lambda r: r.start)


# OVMF 2022.11 at 512 MiB (E(5)): fixed low regions, and top regions as offsets below the top.
_OVMF_LOW = [Region("page0", 0x0, 0x1000, zero=True), Region("csm", 0xC0000, 0xC0354),
             Region("pei", 0x800000, 0x808000), Region("pei", 0x80B000, 0x80B01D),
             Region("dxe", 0x810000, 0x16E0090), Region("dxe", 0x1700000, 0x1703F80)]
_OVMF_TOP = [(0x4473000, 0x4463000), (0x1D74000, 0x1ACF010), (0x1AB0000, 0x17FD000),
             (0x1600000, 0x3FC000), (0x10C4D0, 0x109797), (0x106AF8, 0x99000)]
_OVMF_JITTER_PAGES: Final = 256  # at most 1 MiB


def ovmf_regions(top: int, rng: random.Random) -> list[Region]:
    """What OVMF writes at POST for low RAM ending at *top*: the fixed low regions, and the
    boot-services regions below *top*, each shifted down by a seeded whole number of pages."""
    regions = list(_OVMF_LOW)
    for below_start, below_end in _OVMF_TOP:
        shift = rng.randrange(_OVMF_JITTER_PAGES) * PAGE_SIZE
        start, end = top - below_start - shift, top - below_end - shift
        if start >= 0x100000:
            regions.append(Region("boot-services", start, end))
    return sorted(regions, key=lambda r: r.start)


@attrs.frozen
class Firmware:
    """A firmware profile: its e820 table and what its POST writes (see the module docstring)."""

    name: str
    description: str
    post_fn: Callable[[Firmware, PhysMem, bool, random.Random], list[Region]]

    def e820(self, mem: PhysMem) -> list[E820Entry]:
        return qemu_pc_e820(mem)

    def post(self, mem: PhysMem, *, warm: bool, rng: random.Random) -> list[Region]:
        """Run POST on *mem*: after a reset (*warm*) or a power-on; returns what it wrote."""
        regions = self.post_fn(self, mem, warm, rng)
        for region in regions:
            write_region(mem, self.name, region)
        return regions


def write_region(mem: PhysMem, who: str, region: Region) -> None:
    span = [(region.start, region.end)]
    if region.zero:
        mem.scrub(span, 0)
    else:
        mem.fill(span, f"{who}:{region.label}")


def _seabios(fw: Firmware, mem: PhysMem, warm: bool, rng: random.Random) -> list[Region]:
    return seabios_regions(mem.below_4g, warm=warm)


def _clear_all(mem: PhysMem) -> None:
    mem.scrub(mem.ram_ranges(), 0)


def _pc_bios(fw: Firmware, mem: PhysMem, warm: bool, rng: random.Random) -> list[Region]:
    # The reset flag is read before POST rewrites the BIOS Data Area.  After a power cut it is
    # garbage, which is not 0x1234 (except by a 1 in 65536 chance, which ksim lets happen).
    if not warm or mem.read_u16(RESET_FLAG) != WARM_BOOT_FLAG:
        _clear_all(mem)
    return seabios_regions(mem.below_4g, warm=warm)


def _uefi(fw: Firmware, mem: PhysMem, warm: bool, rng: random.Random) -> list[Region]:
    return ovmf_regions(mem.below_4g, rng)


def _ecc_scrub(fw: Firmware, mem: PhysMem, warm: bool, rng: random.Random) -> list[Region]:
    _clear_all(mem)
    return seabios_regions(mem.below_4g, warm=warm)


FIRMWARE: Final = {
    fw.name: fw for fw in (
        Firmware("seabios", "QEMU + SeaBIOS 1.16: keeps RAM except its own regions", _seabios),
        Firmware("pc-bios", "a PC BIOS: POST clears RAM unless the 0x472 flag says warm boot",
                 _pc_bios),
        Firmware("uefi", "OVMF: reuses ~40 MB, low and below the top of low RAM, seeded", _uefi),
        Firmware("ecc-scrub", "server firmware: zeroes all RAM at every POST", _ecc_scrub),
    )
}
FIRMWARE_NAMES: Final = tuple(FIRMWARE)

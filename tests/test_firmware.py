"""What a reset keeps, per firmware profile (W1-W4), and ``reboot=`` (W2).

W1 comes from the oracle's RAM images (FINDINGS E): SeaBIOS rewrites exactly the regions
:func:`ksim.firmware.seabios_regions` lists, and nothing else.
"""

from __future__ import annotations

import pytest

from ksim import Machine, panic
from ksim.cpu import boot_random
from ksim.firmware import FIRMWARE, ovmf_regions, seabios_regions
from ksim.memory import PhysMem
from ksim.reboot import BIOS_RESET_FLAG, BIOS_WARM_BOOT

MiB = 1 << 20
MARK = b"\xa5KSIM-MARK\x5a"


def marked(size: int) -> PhysMem:
    mem = PhysMem(size, below_4g=size)
    for addr in range(0, size, 64 << 10):  # one mark every 64 KiB
        mem.write(addr, MARK)
    return mem


def survivors(mem: PhysMem) -> set[int]:
    return {addr for addr in range(0, mem.size, 64 << 10) if mem.read(addr, len(MARK)) == MARK}


def test_w1_seabios_rewrites_exactly_its_regions_and_nothing_else() -> None:
    """W1: every 64 KiB mark outside SeaBIOS's regions survives a warm POST; each region's
    bytes change, and the bytes just outside each region do not."""
    top = 512 * MiB
    mem = marked(top)
    def in_mark(addr: int) -> bool:
        return addr % (64 << 10) < len(MARK)

    for region in seabios_regions(top, warm=True):
        for addr in (region.start - 1, region.end):
            if 0 <= addr < top and not in_mark(addr):
                mem.write(addr, b"\x77")
    regions = FIRMWARE["seabios"].post(mem, warm=True, rng=boot_random(0, 0, "firmware"))
    assert [(r.start, r.end) for r in regions if r.label == "tables"] == [(top - 0x20000, top)]
    inside = {a for a in range(0, top, 64 << 10)
              if any(r.start <= a < r.end for r in regions)}
    assert survivors(mem) == set(range(0, top, 64 << 10)) - inside
    for region in regions:
        if any(o is not region and o.start <= region.start - 1 < o.end for o in regions):
            continue
        if region.start and not in_mark(region.start - 1):
            assert mem.read(region.start - 1, 1) == b"\x77"
        if region.end < top and not in_mark(region.end) and \
                not any(o.start <= region.end < o.end for o in regions):
            assert mem.read(region.end, 1) == b"\x77"
    total = sum(r.end - r.start for r in regions)
    assert 0.9 * MiB < total < 1.1 * MiB  # the oracle: 1054080 bytes changed, 267 pages


def test_w1_only_a_warm_reset_writes_the_top_of_page_0() -> None:
    warm = {r.label for r in seabios_regions(512 * MiB, warm=True)}
    cold = {r.label for r in seabios_regions(512 * MiB, warm=False)}
    assert warm - cold == {"resume"}


async def test_w1_warm_reboot_on_seabios_keeps_free_ram(autojump_clock):
    m = Machine("256M", seed=1)
    async with m.boot("nokaslr") as k:
        pass
    m.mem.write(0x8000000, b"left by the last kernel")
    async with m.boot("nokaslr", power="warm") as k:
        assert m.mem.read(0x8000000, 23) == b"left by the last kernel"


@pytest.mark.parametrize(("reboot", "kept"), [("", False), ("reboot=warm", True),
                                              ("reboot=cold", False), ("reboot=w,b", True),
                                              ("reboot=panic_warm", True), ("reboot=acpi", False)])
async def test_w2_a_pc_bios_tests_memory_unless_linux_wrote_the_warm_boot_flag(
        autojump_clock, reboot, kept):
    """W2: Linux writes 0x1234 to 0x472 for reboot=warm (panic_warm for a panic's reboot), 0
    otherwise; a PC BIOS runs its memory test, clearing RAM, unless it finds 0x1234."""
    m = Machine("128M", seed=1, firmware="pc-bios")
    async with m.boot(f"nokaslr panic=-1 {reboot}") as k:
        m.mem.write(0x6000000, b"crash record")
        await panic("boom")
    assert k.outcome == "restart"
    assert (m.mem.read_u16(BIOS_RESET_FLAG) == BIOS_WARM_BOOT) == kept
    async with m.boot("nokaslr") as k:
        assert (m.mem.read(0x6000000, 12) == b"crash record") == kept
        if not kept:
            assert m.mem.read(0x6000000, 12) == bytes(12)


async def test_w2_reboot_warm_without_a_panic_prefix_does_not_change_a_panic_reboot(
        autojump_clock):
    m = Machine("128M", seed=1, firmware="pc-bios")
    async with m.boot("nokaslr panic=-1 reboot=panic_cold,warm") as k:
        assert (k.reboot.reboot_mode, k.reboot.panic_reboot_mode) == (1, 0)
        await panic("boom")
    assert m.mem.read_u16(BIOS_RESET_FLAG) == 0


def test_w3_uefi_reuses_boot_services_memory_below_the_top_at_a_seeded_place() -> None:
    top = 512 * MiB
    a = ovmf_regions(top, boot_random(1, 0, "firmware"))
    b = ovmf_regions(top, boot_random(1, 1, "firmware"))
    again = ovmf_regions(top, boot_random(1, 0, "firmware"))
    assert a == again and a != b
    low = [r for r in a if r.start < 0x1800000]
    assert low == [r for r in b if r.start < 0x1800000]  # PEI/DXE at fixed low addresses
    high = [r for r in a if r.start >= 0x1800000]
    assert len(high) == 6 and all(top - 0x4473000 - MiB <= r.start < r.end <= top for r in high)
    total = sum(r.end - r.start for r in a)
    assert 35 * MiB < total < 45 * MiB  # the oracle saw 40.4 MB


async def test_w4_ecc_scrub_clears_all_ram_at_every_post(autojump_clock):
    m = Machine("128M", seed=1, firmware="ecc-scrub")
    async with m.boot("nokaslr") as k:
        pass
    m.mem.write(0x6000000, b"crash record")
    async with m.boot("nokaslr", power="warm") as k:
        assert m.mem.read(0x6000000, 12) == bytes(12)

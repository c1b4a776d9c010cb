"""KASLR (D3, D4, D6) and the boot loader (D1, D2): where the kernel and the initramfs land.

The facts come from the oracle (FINDINGS C and D): the physical base is random, 2 MiB aligned,
never on the initramfs or a ``memmap=`` region; ``Kernel Offset:`` is printed in panics only;
``nokaslr`` is the decompressor's and 6.1's kernel hands it to init.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from ksim import Machine, panic
from ksim.bootloader import CMDLINE_ADDR, InitrdTooLarge
from ksim.e820 import E820_TYPE_RAM
from ksim.kaslr import MODULES_VADDR, __START_KERNEL_map
from ksim.memory import PAGE_OFFSET_DEFAULT
from ksim.vmlinux import LOAD_PHYSICAL_ADDR, zo_range

MiB = 1 << 20
OFFSET = re.compile(r"^Kernel Offset: 0x([0-9a-f]+) from 0xffffffff81000000 \(relocation range: "
                    r"0xffffffff80000000-0xffffffffbfffffff\)$")


def lines(k) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.text for r in k.printk.log]


async def test_d3_panic_prints_the_random_kernel_offset_before_the_end(autojump_clock):
    async with Machine("512M", seed=3).boot("") as k:
        await panic("sysrq triggered crash")
    out = lines(k)
    at = next(i for i, line in enumerate(out) if OFFSET.match(line))
    assert out[at + 1] == "---[ end Kernel panic - not syncing: sysrq triggered crash ]---"
    offset = int(OFFSET.match(out[at]).group(1), 16)  # type: ignore[union-attr]
    assert offset == k.kaslr.kaslr_offset() and offset % (2 * MiB) == 0
    assert __START_KERNEL_map + LOAD_PHYSICAL_ADDR + offset + k.image.end <= MODULES_VADDR
    assert not any(line.startswith("Kernel Offset") for line in out[:at])


async def test_d3_nokaslr_disables_both_and_is_passed_to_init(autojump_clock):
    async with Machine("512M", seed=3).boot("nokaslr panic=1") as k:
        cmdline = await k.read_file("/proc/1/cmdline")
        base, page_offset = k.kaslr.phys_base, k.layout.page_offset
        await panic("x")
    assert cmdline == b"/sbin/init\0nokaslr\0"
    assert 'Unknown kernel command line parameters "nokaslr", will be passed to user space.' \
        in lines(k)
    assert "Kernel Offset: disabled" in lines(k)
    assert lines(k).index("Kernel Offset: disabled") + 1 == lines(k).index(
        "Rebooting in 1 seconds..")
    assert (base, page_offset) == (LOAD_PHYSICAL_ADDR, PAGE_OFFSET_DEFAULT)


def _avoided(k) -> list[tuple[int, int]]:  # type: ignore[no-untyped-def]
    bp = k.boot_params
    return [zo_range(k.image), (bp.ramdisk_image, bp.ramdisk_image + bp.ramdisk_size),
            (CMDLINE_ADDR, CMDLINE_ADDR + bp.cmdline_len + 1),
            (bp.boot_params_addr, bp.boot_params_addr + bp.boot_params_size)]


async def test_d4_the_image_lands_anywhere_in_ram_but_on_what_the_decompressor_avoids(
        autojump_clock):
    """D4: over many boots the base takes many 2 MiB-aligned values, each with the whole
    image in usable RAM and off the compressed kernel, the initramfs, the command line, the
    boot parameters and the memmap= region (memmap=1M$0x10000000, as in oracle C)."""
    m = Machine("512M", seed=11, initrd="40M")
    bases = set()
    for _ in range(40):
        async with m.boot("memmap=1M$0x10000000") as k:
            pass
        base, end = k.kaslr.phys_base, k.kaslr.phys_base + k.image.needed_size
        assert base % (2 * MiB) == 0 and base >= LOAD_PHYSICAL_ADDR
        assert any(e.type == E820_TYPE_RAM and e.addr <= base and end <= e.addr + e.size
                   for e in k.boot_params.e820_table)
        for start, stop in _avoided(k) + [(0x10000000, 0x10100000)]:
            assert end <= start or base >= stop, (hex(base), hex(start))
        # nor does the kernel allocate from it: the region is not memblock memory (E3)
        assert not any(r.base < 0x10100000 and 0x10000000 < r.end for r in k.memblock.memory)
        bases.add(base)
    assert len(bases) > 15


async def test_d4_the_decompressor_tracks_four_memmap_regions_only(autojump_clock):
    """D4: one memmap= listing five regions makes the decompressor give up on the physical
    base (the virtual one is still random); five separate memmap= options are not a list, and
    the fifth region is simply not avoided: the kernel may land on it."""
    listed = "memmap=" + ",".join("1M$0x%x" % (0x8000000 + i * 0x1000000) for i in range(5))
    offsets = set()
    for seed in range(5):
        async with Machine("512M", seed=seed).boot(listed) as k:
            assert k.kaslr.phys_base == LOAD_PHYSICAL_ADDR and k.kaslr.physical_failed
            offsets.add(k.kaslr.kaslr_offset())
    assert len(offsets) > 1
    separate = " ".join("memmap=1M$0x%x" % (0x18000000 + i * 0x200000) for i in range(4))
    separate += " memmap=200M$0x2000000"  # [32 MiB, 232 MiB): the fifth
    landed = []
    for seed in range(20):
        async with Machine("512M", seed=seed).boot(separate) as k:
            base = k.kaslr.phys_base
            assert not k.kaslr.physical_failed
            for i in range(4):
                start = 0x18000000 + i * 0x200000
                assert base + k.image.needed_size <= start or base >= start + 0x100000
            landed.append(base < 0xE800000 and base + k.image.needed_size > 0x2000000)
    assert any(landed)


async def test_d6_page_offset_moves_at_every_boot_and_the_override_pins_it(autojump_clock):
    m = Machine("512M", seed=5)
    seen = []
    for _ in range(4):
        async with m.boot("") as k:
            seen.append(k.layout.page_offset)
    assert len(set(seen)) == 4
    assert all(p % (1 << 30) == 0 and p >= PAGE_OFFSET_DEFAULT for p in seen)
    async with m.boot("ksim.page_offset=0xffff888100000000") as k:
        assert k.layout.page_offset == 0xFFFF888100000000
    async with m.boot("nokaslr ksim.page_offset=random") as k:
        assert k.layout.page_offset != PAGE_OFFSET_DEFAULT and not k.kaslr.enabled


async def test_d4_randomness_is_per_seed_and_boot_number(autojump_clock):
    async def bases(seed: int) -> list[tuple[int, int, int]]:
        m = Machine("256M", seed=seed)
        out = []
        for _ in range(3):
            async with m.boot("") as k:
                out.append((k.kaslr.phys_base, k.kaslr.virt_addr, k.layout.page_offset))
        return out
    one, again, other = await bases(7), await bases(7), await bases(8)
    assert one == again and one != other
    assert len(set(one)) == 3


def test_d4_the_boot_count_lives_with_the_ram_file(tmp_path: Path):
    """A second ``ksim boot`` process on the same RAM file is boot 2, not boot 1 again."""
    ram = tmp_path / "m.ram"
    code = ("import trio, trio.testing, sys\n"
            "from ksim import Machine\n"
            "async def main():\n"
            "    m = Machine('256M', seed=4, ram_file=sys.argv[1] if len(sys.argv) > 1 else None)\n"
            "    for _ in range(int(sys.argv[2]) if len(sys.argv) > 2 else 1):\n"
            "        async with m.boot('') as k:\n"
            "            print(k.boot_index, hex(k.kaslr.phys_base), hex(k.layout.page_offset))\n"
            "    m.close()\n"
            "trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))\n")

    def run(*args: str) -> list[str]:
        out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                             text=True, check=True)
        return out.stdout.splitlines()

    assert run(str(ram)) + run(str(ram)) == run(str(tmp_path / "other.ram"), "2")


async def test_d5_the_decompressed_image_overwrites_what_was_there(autojump_clock):
    m = Machine("256M", seed=2)
    async with m.boot("") as k1:
        base = k1.kaslr.phys_base
    m.mem.write(base + 0x1000, b"old crash log")
    async with m.boot("nokaslr") as k2:
        pass
    if base != k2.kaslr.phys_base:  # the old place is free RAM now: untouched
        assert m.mem.read(base + 0x1000, 13) == b"old crash log"
    m.mem.write(LOAD_PHYSICAL_ADDR + 0x1000, b"old crash log")
    async with m.boot("nokaslr") as k3:
        assert k3.kaslr.phys_base == LOAD_PHYSICAL_ADDR
        assert m.mem.read(LOAD_PHYSICAL_ADDR + 0x1000, 13) != b"old crash log"


# -- the boot loader --------------------------------------------------------------------------

async def test_d2_the_initramfs_ends_below_the_tables_and_is_freed_after_unpacking(
        autojump_clock):
    """D2: QEMU copies it at every boot to (initrd_max - size) & ~4095, overwriting what was
    there; the kernel reserves it, unpacks it and frees it, and /init runs."""
    size = 30 << 20
    m = Machine("512M", seed=1, initrd=size)
    start = (0x20000000 - 0x20000 - 1 - size) & ~0xFFF
    m.mem.write(start + 4096, b"previous boot's data")
    async with m.boot("") as k:
        assert m.mem.read(start + 4096, 20) != b"previous boot's data"
        out = lines(k)
        # a size of whole pages ends a page below the tables: initrd_max is their start - 1
        assert "RAMDISK: [mem %#010x-%#010x]" % (start, start + size - 1) in out
        assert start + size == 0x1FFDF000
        assert "Freeing initrd memory: %dK" % (size >> 10) in out
        assert "Run /init as init process" in out
        assert not k.memblock.memblock_is_region_reserved(start, size)
    async with m.boot("", initrd=size + (10 << 20)) as k:  # it grew between boots
        assert k.boot_params.ramdisk_image == (0x20000000 - 0x20000 - 1 - size - (10 << 20)) \
            & ~0xFFF
    with pytest.raises(InitrdTooLarge, match="initrd is too large"):
        async with Machine("64M", initrd="64M").boot(""):
            pass


async def test_d1_the_command_line_sits_at_0x20000_and_the_kernel_reads_it_there(
        autojump_clock):
    m = Machine("64M", seed=1)
    async with m.boot("console=ttyS0 foo=bar") as k:
        assert m.mem.read(CMDLINE_ADDR, 22) == b"console=ttyS0 foo=bar\0"
        assert await k.read_file("/proc/cmdline") == b"console=ttyS0 foo=bar\n"

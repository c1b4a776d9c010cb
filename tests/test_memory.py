"""ksim.memory: page math (M1), the direct map (M2, M3) and RAM that outlives a boot (M9)."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ksim.memory import (
    PAGE_ALIGN,
    PAGE_MASK,
    PAGE_OFFSET_DEFAULT,
    PAGE_SHIFT,
    PAGE_SIZE,
    PFN_DOWN,
    PFN_PHYS,
    PFN_UP,
    MemoryLayout,
    PhysAddrError,
    PhysMem,
    RamFileError,
)

GiB = 1 << 30
MiB = 1 << 20
REPO = Path(__file__).resolve().parent.parent


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def cold_page(size: int, seed: int, epoch: int, pfn: int) -> bytes:
    """What page *pfn* holds after a cold boot, from an independent anonymous RAM."""
    with PhysMem(size, seed=seed) as ram:
        ram.cold_boot(epoch)
        return ram.read(PFN_PHYS(pfn), PAGE_SIZE)


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(REPO))
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=30)


# -- M1 ----------------------------------------------------------------------------------------------------


def test_m1_page_constants() -> None:
    assert (PAGE_SHIFT, PAGE_SIZE) == (12, 4096)
    assert 0x12345 & PAGE_MASK == 0x12000


@pytest.mark.parametrize(("x", "aligned"), [(0, 0), (1, 4096), (4095, 4096), (4096, 4096), (4097, 8192)])
def test_m1_page_align_rounds_up(x: int, aligned: int) -> None:
    assert PAGE_ALIGN(x) == aligned


def test_m1_pfn_helpers() -> None:
    assert (PFN_DOWN(4097), PFN_UP(4097), PFN_UP(4096), PFN_UP(0)) == (1, 2, 1, 0)
    assert PFN_PHYS(3) == 0x3000


# -- M2, M3 ------------------------------------------------------------------------------------------------


def test_m2_layout_rejects_inconsistent_bounds() -> None:
    with pytest.raises(ValueError, match="inconsistent"):
        MemoryLayout(PAGE_OFFSET_DEFAULT, 10, 5, 20)


def test_m3_phys_to_virt_is_unchecked_unsigned_long_arithmetic() -> None:
    layout = MemoryLayout(PAGE_OFFSET_DEFAULT, 0, GiB >> PAGE_SHIFT, GiB >> PAGE_SHIFT)
    assert layout.phys_to_virt(0x1000) == 0xFFFF888000001000
    assert layout.virt_to_phys(0xFFFF888000001000) == 0x1000
    # Past max_pfn still yields an address, as __va does; i386's PAGE_OFFSET gives another one (F6).
    assert layout.phys_to_virt(PFN_PHYS(layout.max_pfn)) == PAGE_OFFSET_DEFAULT + GiB
    i386 = MemoryLayout(0xC0000000, 0x1000, 0x38000, 0x38000)
    assert i386.phys_to_virt(0x1000) == 0xC0001000 != layout.phys_to_virt(0x1000)
    assert layout.virt_to_phys(0) == (1 << 64) - PAGE_OFFSET_DEFAULT


# -- access ------------------------------------------------------------------------------------------------


def test_read_write_and_little_endian_integers() -> None:
    with PhysMem(64 * 1024) as ram:
        ram.write(0x100, b"hello")
        ram.write(0x105, bytearray(b"!"))
        ram.write(0x106, memoryview(b"?"))
        assert ram.read(0x100, 7) == b"hello!?"
        ram.write_u64(0x200, 0x0102030405060708)
        assert ram.read(0x200, 8) == bytes([8, 7, 6, 5, 4, 3, 2, 1])
        assert (ram.read_u8(0x200), ram.read_u16(0x200), ram.read_u32(0x200)) == (8, 0x0708, 0x05060708)
        ram.write_u16(0x300, 0xBEEF)
        ram.write_u32(0x302, 0xFFFFFFFF)
        ram.write_u8(0x306, 0x7F)
        assert ram.read(0x300, 7) == b"\xef\xbe\xff\xff\xff\xff\x7f"
        with pytest.raises(ValueError, match="does not fit in u16"):
            ram.write_u16(0, 0x10000)


def test_memset_and_overlapping_memcpy() -> None:
    with PhysMem(4 * MiB) as ram:
        ram.memset(10, 0xAB, 3 * MiB)  # crosses the memset chunk size
        assert ram.read(9, 3) == b"\0\xab\xab" and ram.read(10 + 3 * MiB - 1, 2) == b"\xab\0"
        ram.write(0, b"abcdef")
        ram.memcpy(2, 0, 4)  # overlapping: memmove semantics
        assert ram.read(0, 6) == b"ababcd"


@pytest.mark.parametrize(
    "access",
    [
        lambda ram: ram.read(0x10000 - 4, 8),
        lambda ram: ram.read(-1, 1),
        lambda ram: ram.read(0, -1),
        lambda ram: ram.write(0x10000, b"x"),
        lambda ram: ram.write(-8, b"x"),
        lambda ram: ram.read_u64(0x10000 - 7),
        lambda ram: ram.write_u32(-1, 0),
        lambda ram: ram.memset(0xFFF0, 0, 0x11),
        lambda ram: ram.memcpy(0, 0xFFFF, 2),
        lambda ram: ram.memcpy(0xFFFF, 0, 2),
        lambda ram: ram.scrub([(0, 0x10001)]),
    ],
)
def test_out_of_range_access_names_address_and_ram_size(access) -> None:  # type: ignore[no-untyped-def]
    with PhysMem(0x10000) as ram, pytest.raises(PhysAddrError, match=r"at -?0x[0-9a-f]+ .*\[0, 0x10000\)"):
        access(ram)


def test_size_must_be_whole_pages() -> None:
    with pytest.raises(ValueError, match="multiple of PAGE_SIZE"):
        PhysMem(1000)


def test_64g_machine_is_sparse() -> None:
    before = rss()
    with PhysMem(64 * GiB) as ram:
        for addr in (0, 17 * GiB + 5, 64 * GiB - 8):
            ram.write_u64(addr, addr)
            assert ram.read_u64(addr) == addr
        assert rss() - before < 50 * MiB


# -- the RAM file ------------------------------------------------------------------------------------------


def test_ram_file_is_created_sparse_and_survives_the_process(tmp_path: Path) -> None:
    path = tmp_path / "machine.ram"
    writer = run_python(f"""
        from ksim.memory import PhysMem
        ram = PhysMem(1 << 30, ram_file={str(path)!r})
        ram.write(0x12345678, b"survives the process")
        """)  # no close(): the page cache holds MAP_SHARED writes
    assert writer.returncode == 0, writer.stderr
    assert path.stat().st_size == 1 << 30 and path.stat().st_blocks * 512 < MiB
    reader = run_python(f"""
        from ksim.memory import PhysMem
        with PhysMem(1 << 30, ram_file={str(path)!r}) as ram:
            print(ram.read(0x12345678, 20).decode())
        """)
    assert reader.returncode == 0, reader.stderr
    assert reader.stdout == "survives the process\n"


def test_wrong_size_ram_file_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "machine.ram"
    content = os.urandom(3 * PAGE_SIZE)
    path.write_bytes(content)
    mtime = path.stat().st_mtime_ns
    with pytest.raises(RamFileError) as info:
        PhysMem(MiB, ram_file=path)
    message = str(info.value)
    assert str(path) in message and str(3 * PAGE_SIZE) in message and str(MiB) in message
    assert path.read_bytes() == content and path.stat().st_mtime_ns == mtime
    assert not Path(f"{path}.cold").exists()


def test_ram_file_in_missing_directory(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "machine.ram"
    with pytest.raises(RamFileError, match="does not exist"):
        PhysMem(MiB, ram_file=path)
    assert not path.parent.exists()


def test_ram_file_must_be_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(RamFileError, match="is a directory"):
        PhysMem(MiB, ram_file=tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(RamFileError, match="not a regular file"):
        PhysMem(MiB, ram_file=fifo)


def test_ram_file_cannot_back_two_machines(tmp_path: Path) -> None:
    path = tmp_path / "machine.ram"
    with PhysMem(MiB, ram_file=path):
        with pytest.raises(RamFileError, match="in use"):
            PhysMem(MiB, ram_file=path)
    PhysMem(MiB, ram_file=path).close()


# -- the power model (M9) ----------------------------------------------------------------------------------


def test_m9_cold_boot_garbage_is_lazy_and_deterministic() -> None:
    before = rss()
    with PhysMem(64 * GiB, seed=3) as ram:
        ram.write(0, b"old boot")
        ram.cold_boot(1)
        page = ram.read(0, PAGE_SIZE)
        far = ram.read(PFN_PHYS(0xFFFFFF), PAGE_SIZE)
        assert page[:8] != b"old boot" and len(set(page)) > 200  # looks random
        assert ram.read(0, PAGE_SIZE) == page  # materialised once, not regenerated
        assert rss() - before < 50 * MiB  # a cold 64 GiB machine costs only the pages touched
    assert cold_page(64 * GiB, 3, 1, 0) == page and cold_page(64 * GiB, 3, 1, 0xFFFFFF) == far
    assert cold_page(64 * GiB, 3, 2, 0) != page  # another power cycle
    assert cold_page(64 * GiB, 4, 1, 0) != page  # another machine


def test_m9_data_written_after_cold_boot_is_kept_until_the_next_one() -> None:
    with PhysMem(MiB, seed=3) as ram:
        ram.cold_boot(1)
        ram.write(PAGE_SIZE + 16, b"new boot")
        page = ram.read(PAGE_SIZE, PAGE_SIZE)
        assert page[16:24] == b"new boot"
        assert page[:16] + page[24:] == (cold := cold_page(MiB, 3, 1, 1))[:16] + cold[24:]
        ram.cold_boot(2)
        assert ram.read(PAGE_SIZE, PAGE_SIZE) == cold_page(MiB, 3, 2, 1)


def test_m9_scrub_layers_over_cold_boot_by_byte_range() -> None:
    with PhysMem(MiB, seed=5) as ram:
        ram.cold_boot(1)
        ram.write(0x3000, b"kept data")  # materialised before memtest runs
        ram.scrub([(0x1000, 0x3000), (0x3100, 0x3200), (0x5080, 0x5090)])
        assert ram.read(0x1000, 0x2000) == bytes(0x2000)
        page3 = ram.read(0x3000, PAGE_SIZE)
        assert page3[:9] == b"kept data" and page3[0x100:0x200] == bytes(0x100)
        page5, garbage5 = ram.read(0x5000, PAGE_SIZE), cold_page(MiB, 5, 1, 5)
        assert page5[0x80:0x90] == bytes(16)
        assert page5[:0x80] == garbage5[:0x80] and page5[0x90:] == garbage5[0x90:]
        assert ram.read(0x6000, PAGE_SIZE) == cold_page(MiB, 5, 1, 6)  # not scrubbed
        ram.scrub([(0x1000, 0x2000)], pattern=0xAA)  # a later fill wins
        assert ram.read(0x1000, PAGE_SIZE) == b"\xaa" * PAGE_SIZE
        ram.cold_boot(2)  # and a cold boot overrides every scrub
        assert ram.read(0x1000, PAGE_SIZE) == cold_page(MiB, 5, 2, 1)


def test_m9_scrub_without_cold_boot_overwrites_data() -> None:
    with PhysMem(MiB) as ram:
        ram.write(0x2000, b"x" * 32)
        ram.scrub([(0x2008, 0x2010)], pattern=0x55)
        assert ram.read(0x2000, 32) == b"x" * 8 + b"U" * 8 + b"x" * 16
        with pytest.raises(ValueError, match="not a byte"):
            ram.scrub([(0, 1)], pattern=256)


# -- the journal -------------------------------------------------------------------------------------------


def test_m9_cold_boot_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "machine.ram"
    with PhysMem(MiB, ram_file=path, seed=9) as ram:
        ram.write(0x4000, b"previous boot")
        ram.cold_boot(1)
        ram.write(0x2000, b"written after cold boot")
        ram.scrub([(0x8000, 0x9000)], pattern=0x11)
        assert ram.journal_file == Path(f"{path}.cold")
    with PhysMem(MiB, ram_file=path, seed=0) as ram:  # the journal, not this seed, fixes the garbage
        assert ram.read(0x2000, 23) == b"written after cold boot"
        assert ram.read(0x4000, PAGE_SIZE) == cold_page(MiB, 9, 1, 4)
        assert ram.read(0x8000, PAGE_SIZE) == b"\x11" * PAGE_SIZE


def test_m9_journal_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "machine.ram"
    victim = run_python(f"""
        import os
        from ksim.memory import PhysMem
        ram = PhysMem(1 << 24, ram_file={str(path)!r}, seed=2)
        ram.write(0x3000, b"before the cold boot")
        ram.cold_boot(7)
        ram.write(0x3010, b"oops: kernel BUG")
        os.kill(os.getpid(), 9)
        """)
    assert victim.returncode == -9, victim.stderr
    with PhysMem(1 << 24, ram_file=path) as ram:
        page = ram.read(0x3000, PAGE_SIZE)
        garbage = cold_page(1 << 24, 2, 7, 3)
        assert page[0x10:0x20] == b"oops: kernel BUG"
        assert page[:0x10] == garbage[:0x10] and page[0x20:] == garbage[0x20:]
        assert ram.read(0x5000, PAGE_SIZE) == cold_page(1 << 24, 2, 7, 5)


def test_missing_journal_means_no_pending_fills(tmp_path: Path) -> None:
    path = tmp_path / "machine.ram"
    with PhysMem(MiB, ram_file=path) as ram:
        ram.write(0x1000, b"data")
        ram.cold_boot(1)
    Path(f"{path}.cold").unlink()
    with PhysMem(MiB, ram_file=path) as ram:
        assert ram.read(0x1000, 4) == b"data"


def test_stale_journal_is_dropped_with_a_new_ram_file(tmp_path: Path) -> None:
    path = tmp_path / "machine.ram"
    with PhysMem(MiB, ram_file=path) as ram:
        ram.cold_boot(1)
    path.unlink()
    with PhysMem(MiB, ram_file=path) as ram:
        assert ram.read(0, PAGE_SIZE) == bytes(PAGE_SIZE)
    # replaced by the new file's own journal, which has no fills and no boots
    assert Path(f"{path}.cold").read_text().splitlines() == ["ksim-ram-journal 2 1048576"]


@pytest.mark.parametrize(
    "journal",
    ["garbage\n", "ksim-ram-journal 1 1048576\nwhat 1\n", "ksim-ram-journal 1 4096\ncold 1 2\n",
     "ksim-ram-journal 1 1048576\nscrub 0 0-200000\n", "ksim-ram-journal 1 1048576\np zz\n",
     "ksim-ram-journal 1 1048576\ncold 0 0\np 100\n", "ksim-ram-journal 1 1048576\nscrub 100 0-1\n",
     "ksim-ram-journal 1 1048576\nwhat 1\np 1"],  # corrupt *and* torn: still not modified
)
def test_corrupt_journal_is_refused_and_nothing_is_deleted(tmp_path: Path, journal: str) -> None:
    path = tmp_path / "machine.ram"
    with PhysMem(MiB, ram_file=path) as ram:
        ram.write(0, b"user data")
    sidecar = Path(f"{path}.cold")
    sidecar.write_text(journal)
    with pytest.raises(RamFileError, match="corrupt"):
        PhysMem(MiB, ram_file=path)
    assert sidecar.read_text() == journal
    assert path.read_bytes()[:9] == b"user data" and path.stat().st_size == MiB
    sidecar.unlink()
    PhysMem(MiB, ram_file=path).close()  # the refused open released its lock


def test_torn_last_journal_record_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "machine.ram"
    with PhysMem(MiB, ram_file=path, seed=1) as ram:
        ram.cold_boot(1)
    sidecar = Path(f"{path}.cold")
    with sidecar.open("a") as f:
        f.write("p 1")  # killed mid-append: the page was materialised but nothing written after it
    with PhysMem(MiB, ram_file=path) as ram:
        assert ram.read(PAGE_SIZE, PAGE_SIZE) == cold_page(MiB, 1, 1, 1)
    assert sidecar.read_text() == "ksim-ram-journal 2 1048576\ncold 1 1\np 1\n"


def test_cold_garbage_of_an_access_crossing_into_an_unsettled_page():
    """The one-page fast path must not skip the second page of a straddling access."""
    ref = PhysMem(1 << 20, seed=3)
    ref.cold_boot(1)
    want = ref.read(4090, 8)
    for access in (lambda m: m.read(4090, 8), lambda m: m.read_u64(4090).to_bytes(8, "little")):
        mem = PhysMem(1 << 20, seed=3)
        mem.cold_boot(1)
        mem.read(0, 1)  # page 0 settled, page 1 not yet
        assert access(mem) == want


# -- RAM above 4 GiB (E1) ---------------------------------------------------------------------------------


def test_e1_ram_split_around_the_pci_hole_is_sparse_and_file_ordered(tmp_path: Path) -> None:
    """QEMU pc: 3 GiB at 0, the rest at 4 GiB; the RAM file holds them back to back."""
    path = tmp_path / "big.ram"
    with PhysMem(4 * GiB, ram_file=path, below_4g=3 * GiB) as ram:
        assert ram.ram_ranges() == [(0, 3 * GiB), (4 * GiB, 5 * GiB)]
        ram.write(3 * GiB - 4, b"low!")
        ram.write(4 * GiB, b"high")
        ram.write_u64(5 * GiB - 8, 0x1122334455667788)
        for addr in (3 * GiB, 4 * GiB - 1, 5 * GiB, 3 * GiB - 2):
            with pytest.raises(PhysAddrError, match="outside RAM"):
                ram.read(addr, 4)
    data = path.open("rb")
    data.seek(3 * GiB - 4)
    assert data.read(8) == b"low!high"
    data.seek(4 * GiB - 8)
    assert data.read(8) == (0x1122334455667788).to_bytes(8, "little")
    data.close()
    assert path.stat().st_blocks * 512 < 64 * MiB


def test_w1_data_fill_overwrites_lazily_by_byte_range() -> None:
    """An overwrite of a large region (an initramfs copy) costs nothing until read; bytes just
    outside it keep what they held; the same key gives the same bytes."""
    with PhysMem(64 * MiB, seed=1) as ram, PhysMem(64 * MiB, seed=2) as other:
        for mem in (ram, other):
            mem.write(0x100FFC, b"keepXXXXkeep")
            mem.fill([(0x101000, 0x3000000)], "initrd:40M")
        assert ram.read(0x100FFC, 4) == b"keep"
        assert ram.read(0x101000, 4) != b"XXXX"
        assert ram.read(0x200000, 4096) == other.read(0x200000, 4096)  # a function of key, page
        assert ram.read(0x3000000, 4) == bytes(4)
        with pytest.raises(ValueError, match="one word"):
            ram.fill([(0, 4096)], "two words")


def test_journal_keeps_the_boot_count_and_data_fills(tmp_path: Path) -> None:
    path = tmp_path / "m.ram"
    with PhysMem(MiB, ram_file=path) as ram:
        assert ram.boots == 0
        ram.record_boot(1)
        ram.fill([(0x4000, 0x6000)], "bzimage:ksim")
        want = ram.read(0x4000, 0x2000)
        ram.cold_boot(3)  # a cold boot forgets RAM, not how often the machine booted
        ram.fill([(0x4000, 0x6000)], "bzimage:ksim")
        ram.record_boot(2)
    with PhysMem(MiB, ram_file=path) as ram:
        assert ram.boots == 2
        assert ram.read(0x4000, 0x2000) == want


def test_journal_version_1_is_upgraded_atomically(tmp_path: Path) -> None:
    path = tmp_path / "m.ram"
    with PhysMem(MiB, ram_file=path, seed=4) as ram:
        ram.write(0x1000, b"data")
    sidecar = Path(f"{path}.cold")
    sidecar.write_text("ksim-ram-journal 1 1048576\ncold 4 7\np 1\n")
    with PhysMem(MiB, ram_file=path) as ram:
        assert ram.read(0x1000, 4) == b"data"  # page 1 was materialised before the write
        assert ram.read(0x2000, PAGE_SIZE) == cold_page(MiB, 4, 7, 2)
        ram.record_boot(1)
    assert sidecar.read_text() == "ksim-ram-journal 2 1048576\ncold 4 7\np 1\np 2\nboots 1\n"
    assert not Path(f"{path}.cold.tmp").exists()
    sidecar.write_text("ksim-ram-journal 1 1048576\nboots 3\n")  # not a version-1 record
    with pytest.raises(RamFileError, match="corrupt"):
        PhysMem(MiB, ram_file=path)


# -- a full filesystem: a clear error, never SIGBUS, never a half state ----------------------------------

def _enospc(*args: object) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_a_store_to_a_ram_file_on_a_full_filesystem_is_an_error_not_sigbus(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "machine.ram"
    with PhysMem(MiB, ram_file=path) as ram:
        ram.write(0, b"kept")
        monkeypatch.setattr(os, "posix_fallocate", _enospc)
        ram.write(8, b"same chunk: blocks already allocated")
        with pytest.raises(RamFileError, match="No space left on device"):
            ram.write(MiB // 2, b"a new chunk")
        with pytest.raises(RamFileError, match="No space left on device"):
            ram.write_u32(MiB // 2, 1)
    with PhysMem(MiB, ram_file=path) as ram:
        assert ram.read(0, 4) == b"kept"


def test_a_journal_write_on_a_full_filesystem_is_an_error_and_leaves_the_old_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "machine.ram"
    with PhysMem(MiB, ram_file=path) as ram:
        ram.cold_boot(1)
        before = Path(f"{path}.cold").read_text()
        real_write = os.write
        monkeypatch.setattr(os, "write", lambda fd, data: _enospc())
        with pytest.raises(RamFileError, match="cannot write RAM journal .*No space left"):
            ram.cold_boot(2)
        monkeypatch.setattr(os, "write", real_write)
    assert Path(f"{path}.cold").read_text() == before  # the rewrite was all or nothing
    assert not Path(f"{path}.cold.tmp").exists()


def test_a_new_ram_file_whose_journal_cannot_be_written_is_not_left_behind(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "machine.ram"
    monkeypatch.setattr(os, "write", lambda fd, data: _enospc())
    with pytest.raises(RamFileError, match="No space left on device"):
        PhysMem(MiB, ram_file=path)
    # a RAM file without its journal would boot warm, on zeros, next time
    assert not path.exists()


def test_ksim_boot_on_a_full_filesystem_says_so_and_exits_2(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from ksim.cli import main
    monkeypatch.setattr(os, "posix_fallocate", _enospc)
    code = main(["boot", "-q", "--ram-file", str(tmp_path / "m.ram"), "--cat", "/proc/cmdline"])
    err = capsys.readouterr().err
    assert code == 2
    assert "cannot store to RAM file" in err and "No space left on device" in err
    assert "Traceback" not in err and "internal error" not in err
    assert len(err.splitlines()) == 1

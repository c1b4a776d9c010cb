"""ramoops/pstore bytes as Linux 6.1 writes and reads them (R3-R12).

Most expectations come from the real kernel: fixture A (shared/fixtures/ramoops, ecc=0) and the
ECC regions in tests/fixtures/ramoops, each with the exact /sys/fs/pstore files, log lines and
RAM that Debian's 6.1.192 produced.  The rest are rules read off fs/pstore/*.c of 6.1.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import struct
from pathlib import Path
from types import ModuleType

import pytest

from ksim.errno import EEXIST, EINVAL, ENOSPC
from ksim.reed_solomon import encode_rs8, init_rs
from ksim_ramoops import decode_ramoops_image
from ksim_ramoops.inode import PstoreFile, pstore_mkfile
from ksim_ramoops.platform import (
    KMSG_DUMP_PANIC, allocate_buf_for_compression, copy_kmsg_to_buffer, crypto_deflate_decompress,
    decompress_record, pstore_compress, pstore_dump_header, zbufsize_deflate,
)
from ksim_ramoops.pstore import (
    PSTORE_TYPE_CONSOLE, PSTORE_TYPE_DMESG, PSTORE_TYPE_PMSG, PstoreRecord, Timespec64,
)
from ksim_ramoops.ram import (
    LINUX_VERSION_CODE, RamoopsContext, ramoops_platform_data_from_params, ramoops_probe_zones,
    ramoops_pstore_erase, ramoops_pstore_write, ramoops_read_kmsg_hdr, ramoops_write_kmsg_hdr,
)
from ksim_ramoops.ram_core import (
    PERSISTENT_RAM_SIG, PRZ_FLAG_ZAP_OLD, ImageMem, PersistentRamEccInfo, PersistentRamZone, RamLog,
    buffer_size, buffer_start, persistent_ram_ecc_string, persistent_ram_new, persistent_ram_old,
    persistent_ram_save_old, persistent_ram_write, persistent_ram_zap, run_to_end,
)

BASE = 0x10000000
MiB = 0x100000
HERE = Path(__file__).parent
OWN = HERE / "fixtures" / "ramoops"
ECC_CASES = ("ecc-clean", "ecc-corrupt", "ksim-written", "ksim-edges")


def shared_ramoops() -> Path:
    """shared/fixtures/ramoops: $KSIM_SHARED_DIR, else the first shared/ above the checkout."""
    env = os.environ.get("KSIM_SHARED_DIR")
    candidates = [Path(env)] if env else [p / "shared" for p in HERE.resolve().parents]
    for shared in candidates:
        if (shared / "fixtures" / "ramoops" / "regionA.bin.gz").is_file():
            return shared / "fixtures" / "ramoops"
    pytest.skip("shared/fixtures/ramoops/regionA.bin.gz not found (set KSIM_SHARED_DIR)")


def make_regions() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_regions", OWN / "make_regions.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def first_boot(mem_size: int = MiB, **params: int) -> tuple[ImageMem, RamoopsContext, RamLog]:
    """A zeroed region after the first probe, as a fresh machine's first boot leaves it."""
    mem = ImageMem(bytearray(mem_size), BASE)
    log = RamLog()
    cxt = ramoops_probe_zones(ramoops_platform_data_from_params(BASE, mem_size, **params), mem, log)
    assert isinstance(cxt, RamoopsContext), log.lines()
    return mem, cxt, log


def dump(cxt: RamoopsContext, text: bytes, time: Timespec64, compressed: bool) -> None:
    buf = text
    if compressed:
        comp = allocate_buf_for_compression(cxt.bufsize)
        assert comp is not None
        z = pstore_compress(comp, text, cxt.bufsize)
        assert isinstance(z, bytes)
        buf = z
    record = PstoreRecord(psi="ramoops", type=PSTORE_TYPE_DMESG, time=time, buf=buf, size=len(buf),
                          part=1, compressed=compressed)
    assert run_to_end(ramoops_pstore_write(cxt, record)) == 0


def decode(image: bytes, **params: int):
    params.setdefault("record_size", 0x4000)
    return decode_ramoops_image(image, mem_address=BASE, **params)


def listing(case: Path) -> dict[str, tuple[int, str, int]]:
    rows = {}
    for line in (case / "listing.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        name, size, md5, mtime = line.split()[:4]
        rows[name] = (int(size), md5, int(mtime))
    return rows


# -- fixture A: a real 6.1 panic, ecc=0 ------------------------------------------------------------

def test_R11_fixture_A_decodes_to_the_exact_pstore_file_and_mtime():
    shared = shared_ramoops()
    region = gzip.decompress((shared / "regionA.bin.gz").read_bytes())
    result = decode(region)
    assert [f.name for f in result.files] == ["dmesg-ramoops-0"]
    (f,) = result.files
    assert f.data == (shared / "expected" / "dmesg-ramoops-0").read_bytes()
    assert f.mtime == Timespec64(1796194719, 247289000)
    size, md5, mtime = listing(shared / "expected")["dmesg-ramoops-0"]
    assert (len(f.data), hashlib.md5(f.data).hexdigest(), f.mtime.tv_sec) == (size, md5, mtime)
    assert result.image_after == region  # boot 2 left the region as it was
    assert "pstore: Using crash dump compression: deflate" in result.messages


def test_R11_ksim_writes_fixture_A_byte_for_byte():
    """First probe on zeroed RAM, then the dump compressed with the kernel's deflate: Linux's region."""
    shared = shared_ramoops()
    region = gzip.decompress((shared / "regionA.bin.gz").read_bytes())
    text = (shared / "expected" / "dmesg-ramoops-0").read_bytes()
    mem, cxt, _ = first_boot(record_size=0x4000)
    dump(cxt, text, Timespec64(1796194719, 247289000), compressed=True)
    assert bytes(mem.image) == region


# -- ECC regions checked against the real kernel ---------------------------------------------------

@pytest.mark.parametrize("name", ECC_CASES)
def test_R8_ecc_regions_decode_exactly_as_linux_showed_them(name):
    case = OWN / name
    region = gzip.decompress((case / "region.bin.gz").read_bytes())
    result = decode(region, ecc=1)
    expected = {p.name: p.read_bytes() for p in (case / "expected").iterdir()}
    assert {f.name: f.data for f in result.files} == expected
    rows = listing(case)
    for f in result.files:
        if f.mtime is not None:
            assert f.mtime.tv_sec == rows[f.name][2]
    assert list(result.messages) == (case / "messages.txt").read_text().splitlines()
    after = case / "region-after.bin.gz"
    assert result.image_after == (gzip.decompress(after.read_bytes()) if after.exists() else region)


def test_R8_R7_random_ram_is_claimed_with_ten_ratelimited_header_messages():
    """Garbage in every header: uncorrectable, re-signed and zapped; the message is ratelimited to 10."""
    import json
    import random

    case = OWN / "garbage"
    region = random.Random(2026).randbytes(MiB)
    result = decode(region, ecc=1)
    assert result.files == ()
    assert list(result.messages) == (case / "messages.txt").read_text().splitlines()
    assert result.messages.count("ramoops: uncorrectable error in header") == 10
    after = bytearray(region)
    for offset, hexbytes in json.loads((case / "region-after.json").read_text())["changed"]:
        after[offset:offset + len(hexbytes) // 2] = bytes.fromhex(hexbytes)
    assert result.image_after == bytes(after)


def test_R8_ecc_notices_and_repairs_of_the_corrupt_region():
    """What a user reads: the ECC lines, the header messages, and RAM repaired in place."""
    region = gzip.decompress((OWN / "ecc-corrupt" / "region.bin.gz").read_bytes())
    result = decode(region, ecc=1)
    files = {f.name: f.data for f in result.files}
    assert files["dmesg-ramoops-0"].endswith(b"\nECC: 16 Corrected bytes, 0 unrecoverable blocks\n")
    assert files["dmesg-ramoops-1"].endswith(b"\nECC: 1 Corrected bytes, 1 unrecoverable blocks\n")
    assert "dmesg-ramoops-9" not in files  # zone 8 read as 0 bytes: pstore stopped there
    clean = gzip.decompress((OWN / "ecc-clean" / "region.bin.gz").read_bytes())
    assert result.image_after[:0x3900] == clean[:0x3900]  # zone 0's header and data repaired
    parity_error = 0x3900 + 16 * 20 + 3
    assert result.image_after[parity_error] != clean[parity_error]  # parity is fixed only in a copy


def test_R8_ksim_writes_the_real_ecc_region_byte_for_byte():
    """Data, block parity and header parity of a kernel-written ecc=1 region are ksim's too."""
    case = OWN / "ecc-clean"
    region = gzip.decompress((case / "region.bin.gz").read_bytes())
    text = (case / "expected" / "dmesg-ramoops-0").read_bytes().removesuffix(b"\nECC: No errors detected\n")
    mem, cxt, _ = first_boot(record_size=0x4000, ecc=1)
    dump(cxt, text, Timespec64(1796218317, 174759000), compressed=True)
    assert bytes(mem.image) == region


def test_R8_the_booted_ksim_regions_are_what_ksim_still_writes():
    mr = make_regions()
    clean = gzip.decompress((OWN / "ecc-clean" / "region.bin.gz").read_bytes())
    built = {
        "ecc-corrupt": mr.corrupt_ecc_region(clean),
        "ksim-written": mr.build_ksim_written(),
        "ksim-edges": mr.build_ksim_edges(),
    }
    for name, image in built.items():
        assert image == gzip.decompress((OWN / name / "region.bin.gz").read_bytes()), name


# -- R3, R9: headers and layout --------------------------------------------------------------------

def test_R3_first_probe_signs_and_empties_every_zone():
    mem, cxt, log = first_boot(record_size=0x4000, ecc=1)
    assert cxt.dprzs is not None and cxt.fprzs is not None
    zones = [*cxt.dprzs, cxt.cprz, *cxt.fprzs, cxt.mprz]
    rs = init_rs(8, 0x11D, 0, 1, 16)
    for prz in zones:
        assert prz is not None
        header = mem.read(prz.paddr, 12)
        sig, start, size = struct.unpack("<III", header)
        want = PERSISTENT_RAM_SIG ^ (LINUX_VERSION_CODE if prz in cxt.fprzs else 0)
        assert (sig, start, size) == (want, 0, 0)
        par = [0] * 16
        encode_rs8(rs, header, 12, par, 0)
        assert mem.read(prz.paddr + prz.par_header, 16) == bytes(par)
    assert mem.image[0:4] == b"DBGC"
    assert log.lines() == []  # a blank region is claimed silently (pr_debug only)


@pytest.mark.parametrize(
    ("mem_size", "params", "nr_cpu_ids", "want"),
    [
        # (dmesg count, dmesg zone size, console, ftrace zones, pmsg)
        (MiB, {"record_size": 0x4000}, 1, (63, 0x4040, 0x1000, [0x1000], 0x1000)),
        (MiB, {"record_size": 0x3000}, 1, (126, 0x2020, 0x1000, [0x1000], 0x1000)),  # 0x3000 -> 0x2000
        (MiB, {"record_size": 0x4000, "console_size": 0, "pmsg_size": 0}, 3,
         (63, 0x40C2, None, [0x554] * 3, None)),  # 4096 / 3 = 1365, made even
        (0x10000, {"record_size": 0x4000, "console_size": 0x8000}, 1, (1, 0x6000, 0x8000, [0x1000], 0x1000)),
    ],
)
def test_R9_zone_layout(mem_size, params, nr_cpu_ids, want):
    mem = ImageMem(bytearray(mem_size), BASE)
    cxt = ramoops_probe_zones(ramoops_platform_data_from_params(BASE, mem_size, **params), mem, RamLog(),
                              nr_cpu_ids=nr_cpu_ids)
    assert isinstance(cxt, RamoopsContext)
    count, zone, console, ftrace, pmsg = want
    assert cxt.dprzs is not None and len(cxt.dprzs) == count
    assert [p.paddr for p in cxt.dprzs] == [BASE + i * zone for i in range(count)]
    assert {p.size for p in cxt.dprzs} == {zone}
    at = BASE + count * zone
    if console is None:
        assert cxt.cprz is None
    else:
        assert cxt.cprz is not None and (cxt.cprz.paddr, cxt.cprz.size) == (at, console)
        at += console
    assert cxt.fprzs is not None and [p.size for p in cxt.fprzs] == ftrace
    assert cxt.fprzs[0].paddr == at
    at += sum(ftrace)
    if pmsg is None:
        assert cxt.mprz is None
    else:
        assert cxt.mprz is not None and (cxt.mprz.paddr, cxt.mprz.size) == (at, pmsg)
    assert cxt.bufsize == zone - 12


def test_R9_sizes_that_do_not_fit_fail_the_probe_with_the_kernel_message():
    result = decode(bytes(0x10000), console_size=0x20000)
    assert result.error == -12 and result.files == ()
    assert "ramoops ramoops: no room for dmesg mem region (0xfffffffffffee000@0x10000000) " \
           "in (0x10000@0x10000000)" in result.messages
    result = decode(bytes(0x10000), record_size=0, console_size=0, ftrace_size=0, pmsg_size=0)
    assert result.error == -EINVAL
    assert "ramoops: The memory size and the record/console size must be non-zero" in result.messages


# -- R4-R7: the ring and boot validation -----------------------------------------------------------

def zone(size: int = 64, *, ecc: int = 0, flags: int = 0, image: bytearray | None = None,
         log: RamLog | None = None) -> tuple[PersistentRamZone, ImageMem, RamLog]:
    mem = ImageMem(image if image is not None else bytearray(size), BASE)
    log = log or RamLog()
    prz = persistent_ram_new(BASE, size, 0, PersistentRamEccInfo(ecc_size=ecc), 0, flags, "ramoops:test",
                             mem=mem, log=log)
    assert isinstance(prz, PersistentRamZone), log.lines()
    return prz, mem, log


def test_R4_R5_writes_wrap_and_the_size_saturates():
    prz, mem, _ = zone(64)  # 52 data bytes
    assert run_to_end(persistent_ram_write(prz, b"A" * 30, 30)) == 30
    assert (buffer_start(prz), buffer_size(prz)) == (30, 30)
    run_to_end(persistent_ram_write(prz, b"B" * 30, 30))
    assert (buffer_start(prz), buffer_size(prz)) == (8, 52)
    assert mem.image[12:64] == b"B" * 8 + b"A" * 22 + b"B" * 22
    run_to_end(persistent_ram_write(prz, bytes(range(100)), 100))  # longer than the ring: its last 52 bytes
    assert buffer_size(prz) == 52 and buffer_start(prz) == 8


def test_R6_old_contents_come_back_oldest_first():
    prz, mem, _ = zone(64)
    run_to_end(persistent_ram_write(prz, b"0123456789" * 5, 50))
    run_to_end(persistent_ram_write(prz, b"abcdef", 6))
    again, _, _ = zone(64, image=mem.image)  # the next boot
    assert persistent_ram_old(again) == (b"0123456789" * 5 + b"abcdef")[-52:]


def test_R7_boot_validation_keeps_saves_or_resets():
    prz, mem, _ = zone(64)
    before = bytes(mem.image)
    again, _, log = zone(64, image=mem.image)
    assert bytes(mem.image) == before and log.lines() == []  # existing empty buffer: untouched

    struct.pack_into("<II", mem.image, 4, 5, 60)  # start 5, size 60 > 52
    again, _, log = zone(64, image=mem.image)
    assert log.lines() == ["ramoops: found existing invalid buffer, size 60, start 5"]
    assert (buffer_start(again), buffer_size(again)) == (0, 0)

    mem.image[0:4] = b"XXXX"
    mem.image[8:12] = struct.pack("<I", 3)
    again, _, log = zone(64, image=mem.image)
    assert mem.image[0:12] == b"DBGC" + bytes(8) and log.lines() == []

    run_to_end(persistent_ram_write(again, b"console", 7))
    once, _, _ = zone(64, flags=PRZ_FLAG_ZAP_OLD, image=mem.image)  # console/pmsg: one boot only
    assert persistent_ram_old(once) == b"console"
    assert buffer_size(once) == 0 and mem.image[12:19] == b"console"  # zap leaves the bytes


# -- R8: ECC in a zone -----------------------------------------------------------------------------

def test_R8_ecc_geometry_of_a_0x4040_zone():
    prz, _, _ = zone(0x4040, ecc=16)
    assert (prz.buffer_size, prz.par_buffer, prz.par_header) == (14580, 0x3900, 0x4030)
    console, _, _ = zone(4096, ecc=16)
    assert console.buffer_size == 3604
    log = RamLog()
    bad = persistent_ram_new(BASE, 40, 0, PersistentRamEccInfo(ecc_size=16), 0, 0, "ramoops:pmsg",
                             mem=ImageMem(bytearray(40), BASE), log=log)
    assert bad == -EINVAL
    assert log.lines() == ["ramoops: persistent_ram_init_ecc: invalid ecc_size 16 (total 32, buffer size 28)",
                           "ramoops: ECC failed ramoops:pmsg"]


def test_R8_errors_are_corrected_in_ram_and_counted_in_the_notice():
    prz, mem, _ = zone(1024, ecc=16)
    text = bytes(range(256)) * 2
    run_to_end(persistent_ram_write(prz, text, len(text)))
    clean = bytes(mem.image)
    for off in (12 + 3, 12 + 4, 12 + 200, 12 + 300):  # 2 in block 0, 1 in block 1, 1 in block 2
        mem.image[off] ^= 0xFF
    mem.image[9] ^= 0x01  # the header's size field
    again, _, log = zone(1024, ecc=16, image=mem.image)
    assert log.lines() == ["ramoops: error in header, 1"]
    assert persistent_ram_old(again) == text
    assert persistent_ram_ecc_string(again) == "\nECC: 5 Corrected bytes, 0 unrecoverable blocks\n"
    assert bytes(mem.image) == clean

    for off in range(12 + 128, 12 + 128 + 9):  # 9 bad bytes in block 1
        mem.image[off] ^= 0x55
    third, _, _ = zone(1024, ecc=16, image=mem.image)
    assert persistent_ram_ecc_string(third) == "\nECC: 0 Corrected bytes, 1 unrecoverable blocks\n"
    old = persistent_ram_old(third)
    assert old is not None and old[128:137] == bytes(b ^ 0x55 for b in text[128:137])


def test_R8_a_clean_zone_says_no_errors_and_without_ecc_says_nothing():
    prz, mem, _ = zone(256, ecc=16)
    run_to_end(persistent_ram_write(prz, b"x" * 10, 10))
    again, _, _ = zone(256, ecc=16, image=mem.image)
    assert persistent_ram_ecc_string(again) == "\nECC: No errors detected\n"
    plain, _, _ = zone(256)
    assert persistent_ram_ecc_string(plain) == ""


# -- R11: dumps --------------------------------------------------------------------------------------

def test_R11_dump_header_format_and_parse():
    prz, mem, _ = zone(256)
    record = PstoreRecord(time=Timespec64(1796194719, 247289123), compressed=True)
    assert run_to_end(ramoops_write_kmsg_hdr(prz, record)) == 24
    assert mem.image[12:36] == b"====1796194719.247289-C\n"
    t = Timespec64()
    assert ramoops_read_kmsg_hdr(b"====1796194719.247289-C\nPanic#1", t) == (24, True)
    assert t == Timespec64(1796194719, 247289000)


@pytest.mark.parametrize(
    ("data", "want", "time"),
    [
        (b"====12.5\nold", (9, False), (12, 5000)),  # the pre-3.x form, never compressed
        (b"====1.000006-D\n\n \t\x0bbody", (19, False), (1, 6000)),  # trailing white space eaten
        (b"====2.000000-D\n\xa0\xa0body", (17, False), (2, 0)),  # 0xA0 is space to the kernel
        (b"==== 17. 5-X\nbody", (13, False), (17, 5000)),  # spaces before numbers; X is not C
        (b"====-5.000001-D\nx", (16, False), (-5, 1000)),
        (b"====1.1234567-D\nx", (16, False), (1, 1234567000)),  # usec is not capped
        (b"hello", (0, False), (0, 0)),
        (b"====.5-D\n", (0, False), (0, 0)),
        (b"===", (0, False), (0, 0)),
    ],
)
def test_R11_dump_header_parser_follows_the_kernel_sscanf(data, want, time):
    t = Timespec64(99, 99)
    assert ramoops_read_kmsg_hdr(data, t) == want
    assert (t.tv_sec, t.tv_nsec) == time


def test_R11_dumps_round_trip_compressed_and_plain_with_and_without_ecc():
    text = pstore_dump_header(KMSG_DUMP_PANIC, 1, 1) + b"".join(
        b"<4>[%5d.%06d] line %d\n" % (i, i * 7, i) for i in range(500))
    for ecc in (0, 1):
        mem, cxt, _ = first_boot(record_size=0x4000, ecc=ecc)
        dump(cxt, text, Timespec64(1000, 2000), compressed=True)
        dump(cxt, text[:3000], Timespec64(1001, 0), compressed=False)
        assert cxt.dump_write_cnt == 2  # round robin
        notice = b"\nECC: No errors detected\n" if ecc else b""
        result = decode(bytes(mem.image), ecc=ecc)
        assert [(f.name, f.data, f.mtime) for f in result.files] == [
            ("dmesg-ramoops-0", text + notice, Timespec64(1000, 2000)),
            ("dmesg-ramoops-1", text[:3000] + notice, Timespec64(1001, 0)),
        ]


def test_R11_only_part_one_is_stored_and_a_big_plain_dump_keeps_its_start():
    mem, cxt, _ = first_boot(record_size=0x1000)
    part2 = PstoreRecord(type=PSTORE_TYPE_DMESG, buf=b"x", size=1, part=2)
    assert run_to_end(ramoops_pstore_write(cxt, part2)) == -ENOSPC
    big = b"Panic#1 Part1\n" + b"y" * 10000
    dump(cxt, big, Timespec64(5, 0), compressed=False)
    (f,) = decode(bytes(mem.image), record_size=0x1000).files
    assert f.data == big[:cxt.bufsize - len(b"====5.000000-D\n")]


def test_R11_a_zone_without_header_is_zapped_and_an_empty_record_ends_the_listing():
    mem, cxt, _ = first_boot(record_size=0x4000)
    assert cxt.dprzs is not None
    run_to_end(persistent_ram_write(cxt.dprzs[0], b"no header here", 14))
    run_to_end(persistent_ram_write(cxt.dprzs[1], b"====7.000000-D\n", 15))
    cxt.dump_write_cnt = 2
    dump(cxt, b"Panic#1 Part1\nlost\n", Timespec64(8, 0), compressed=False)
    console = PstoreRecord(type=PSTORE_TYPE_CONSOLE, buf=b"console\n", size=8)
    assert run_to_end(ramoops_pstore_write(cxt, console)) == 0
    result = decode(bytes(mem.image))
    assert result.files == ()  # zone 1 yields 0 bytes: neither zone 2 nor the console is read
    assert struct.unpack_from("<II", result.image_after, 4) == (0, 0)  # zone 0 zapped
    assert result.image_after[12:26] == b"no header here"


def test_R11_compression_limits_of_6_1():
    assert zbufsize_deflate(14580) == 24300 and zbufsize_deflate(4000) == 8888
    assert zbufsize_deflate(1000) == 1785
    comp = allocate_buf_for_compression(100)
    assert comp is not None
    log = RamLog()
    noise = bytes((i * 7919 + (i >> 3) * 13) % 256 for i in range(200))
    assert pstore_compress(comp, noise, 100, log.pr) == -EINVAL  # does not fit: stored plain instead
    assert log.lines() == ["pstore: crypto_comp_compress failed, ret = -22!"]
    assert copy_kmsg_to_buffer(b"HDR\n" + b"0123456789", 4, 10, 8) == b"HDR\n6789"
    text = b"abc" * 100
    comp2 = allocate_buf_for_compression(14580)
    assert comp2 is not None
    z = pstore_compress(comp2, text, 14580)
    assert isinstance(z, bytes)
    assert crypto_deflate_decompress(z + b"trailing", 300) == text  # ends inside 300 bytes
    assert crypto_deflate_decompress(z, 299) == -EINVAL
    assert crypto_deflate_decompress(z[:-2], 1000) == -EINVAL


def test_R11_a_record_that_does_not_inflate_stays_enc_z_with_its_compressed_bytes():
    comp = allocate_buf_for_compression(14580)
    record = PstoreRecord(psi="ramoops", buf=b"\xffnot deflate" + b"\nECC: No errors detected\n", size=12,
                          ecc_notice_size=25, compressed=True)
    log = RamLog()
    decompress_record(record, comp, log.pr)
    assert record.compressed and record.size == 12
    assert log.lines() == ["pstore: crypto_comp_decompress failed, ret = -22!"]
    files: list[PstoreFile] = []
    assert pstore_mkfile(files, record) == 0
    assert files[0].name == "dmesg-ramoops-0.enc.z" and files[0].data == record.buf


# -- R12: files ----------------------------------------------------------------------------------------

def test_R12_names_modes_mtimes_and_duplicates():
    files: list[PstoreFile] = []
    dmesg = PstoreRecord(psi="ramoops", type=PSTORE_TYPE_DMESG, id=3, time=Timespec64(10, 5), buf=b"d", size=1)
    console = PstoreRecord(psi="ramoops", type=PSTORE_TYPE_CONSOLE, buf=b"c", size=1)
    pmsg = PstoreRecord(psi="ramoops", type=PSTORE_TYPE_PMSG, buf=b"p", size=1)
    for record in (dmesg, console, pmsg):
        assert pstore_mkfile(files, record) == 0
    assert [(f.name, f.mode, f.mtime) for f in files] == [
        ("dmesg-ramoops-3", 0o444, Timespec64(10, 5)),
        ("console-ramoops-0", 0o444, None),
        ("pmsg-ramoops-0", 0o444, None),
    ]
    assert pstore_mkfile(files, PstoreRecord(psi="ramoops", type=PSTORE_TYPE_DMESG, id=3)) == -EEXIST


def test_R12_console_and_pmsg_show_once_and_erase_zaps_a_dump():
    mem, cxt, _ = first_boot(record_size=0x4000)
    run_to_end(ramoops_pstore_write(cxt, PstoreRecord(type=PSTORE_TYPE_CONSOLE, buf=b"boot log\n", size=9)))
    assert cxt.mprz is not None
    run_to_end(persistent_ram_write(cxt.mprz, b"pmsg\n", 5))
    dump(cxt, b"Panic#1 Part1\nbye\n", Timespec64(3, 0), compressed=False)
    boot2 = decode(bytes(mem.image))
    assert [(f.name, f.data) for f in boot2.files] == [
        ("dmesg-ramoops-0", b"Panic#1 Part1\nbye\n"),
        ("console-ramoops-0", b"boot log\n"),
        ("pmsg-ramoops-0", b"pmsg\n"),
    ]
    assert boot2.context is not None
    assert ramoops_pstore_erase(boot2.context, boot2.files[0].record) == 0  # rm dmesg-ramoops-0
    boot3 = decode(bytes(boot2.context.mem.image))  # type: ignore[attr-defined]
    assert boot3.files == ()  # console and pmsg were for one boot; the dump was erased
    assert boot2.context.dprzs is not None
    prz = boot2.context.dprzs[0]
    persistent_ram_zap(prz)
    persistent_ram_save_old(prz)
    assert persistent_ram_old(prz) is None

"""RAM Oops/Panic logger (fs/pstore/ram.c), Linux 6.1: zone layout, dump headers, read and write.

What is here is the part of ramoops that decides bytes; registering the platform driver and
the pstore backend with a running kernel is left to the plugin module built on it.

Layout (R9), from ``mem_address`` up: the dmesg zones, then the console zone, the ftrace
zone(s) and the pmsg zone.  Sizes that are not powers of two are rounded down to one (mem_size
is not).  The dump area is ``mem_size - console_size - ftrace_size - pmsg_size``; it holds
``dump area // record_size`` zones of ``dump area // count`` bytes each, rounded down to an
even number (``ALIGN_DOWN(zone_sz, 2)`` in 6.1), so with 1 MiB and 16 KiB records the 63 zones
are 0x4040 bytes, not 0x4000.  Module parameters always set ``RAMOOPS_FLAG_FTRACE_PER_CPU``:
the ftrace area is split into ``nr_cpu_ids`` zones the same way, with signature
``LINUX_VERSION_CODE`` (0x0601c0 for 6.1.192; the patch level is capped at 255).

A dmesg record starts with ``====<sec>.<usec>-<C|D>\\n`` (:func:`ramoops_write_kmsg_hdr`);
reading parses it with the kernel's ``sscanf`` rules (:func:`ramoops_read_kmsg_hdr`): both
numbers may be preceded by white space, the usec part is not limited to six digits, the
``\\n`` in the format swallows any white space after the header (the kernel's ``isspace``,
which includes 0xA0), and the older ``====<sec>.<usec>\\n`` form is accepted as plain text.
A dmesg zone without a header is zapped and skipped.  A read that yields 0 bytes (a header
and nothing else, say) ends pstore's loop, so no later record appears at all.

Deviations
----------
* ``sscanf`` stops at the end of the copied zone contents as if a NUL followed them; the
  kernel scans on into whatever the heap holds after the copy.
* The ftrace zones are read as in a kernel without ``CONFIG_PSTORE_FTRACE`` (Debian's 6.1):
  ``pstore_ftrace_combine_log`` is the stub that yields nothing, so no ftrace file appears.
"""

from __future__ import annotations

from typing import Final

import attrs

from ksim.errno import EINVAL, ENOMEM, ENOSPC
from ksim_ramoops.pstore import (
    PSTORE_FLAGS_CONSOLE,
    PSTORE_FLAGS_DMESG,
    PSTORE_FLAGS_FTRACE,
    PSTORE_FLAGS_PMSG,
    PSTORE_TYPE_CONSOLE,
    PSTORE_TYPE_DMESG,
    PSTORE_TYPE_FTRACE,
    PSTORE_TYPE_PMSG,
    PstoreRecord,
    Timespec64,
)
from ksim_ramoops.platform import pstore_name_to_type
from ksim_ramoops.ram_core import (
    KERN_ERR,
    KERN_INFO,
    KERN_WARNING,
    PRZ_FLAG_NO_LOCK,
    PRZ_FLAG_ZAP_OLD,
    PersistentRamEccInfo,
    PersistentRamZone,
    RamAccess,
    RamLog,
    persistent_ram_ecc_string,
    persistent_ram_free,
    persistent_ram_free_old,
    persistent_ram_new,
    persistent_ram_old,
    persistent_ram_old_size,
    persistent_ram_save_old,
    persistent_ram_write,
    persistent_ram_zap,
)

__all__ = [
    "LINUX_VERSION_CODE",
    "MIN_MEM_SIZE",
    "RAMOOPS_FLAG_FTRACE_PER_CPU",
    "RAMOOPS_KERNMSG_HDR",
    "RamoopsContext",
    "RamoopsPlatformData",
    "ramoops_init_prz",
    "ramoops_init_przs",
    "ramoops_platform_data_from_params",
    "ramoops_probe_zones",
    "ramoops_pstore_erase",
    "ramoops_pstore_open",
    "ramoops_pstore_read",
    "ramoops_pstore_write",
    "ramoops_pstore_write_user",
    "ramoops_read_kmsg_hdr",
    "ramoops_write_kmsg_hdr",
    "rounddown_pow_of_two",
]

RAMOOPS_KERNMSG_HDR: Final = b"===="
MIN_MEM_SIZE: Final = 4096
RAMOOPS_FLAG_FTRACE_PER_CPU: Final = 1 << 0
# KERNEL_VERSION(6, 1, 192) with the patch level capped at 255, as Debian's 6.1.192 reports it.
LINUX_VERSION_CODE: Final = (6 << 16) + (1 << 8) + 192
KMSG_DUMP_OOPS: Final = 2
KMSG_DUMP_PANIC: Final = 1
_PR_FMT: Final = "ramoops: "
_S64: Final = 1 << 64


def rounddown_pow_of_two(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def is_power_of_2(n: int) -> bool:
    return n != 0 and (n & (n - 1)) == 0


@attrs.define
class RamoopsPlatformData:
    """``struct ramoops_platform_data``."""

    mem_size: int
    mem_address: int
    mem_type: int = 0
    record_size: int = MIN_MEM_SIZE
    console_size: int = MIN_MEM_SIZE
    ftrace_size: int = MIN_MEM_SIZE
    pmsg_size: int = MIN_MEM_SIZE
    max_reason: int = KMSG_DUMP_OOPS
    flags: int = RAMOOPS_FLAG_FTRACE_PER_CPU
    ecc_info: PersistentRamEccInfo = attrs.field(factory=PersistentRamEccInfo)


def ramoops_platform_data_from_params(
    mem_address: int,
    mem_size: int,
    *,
    record_size: int = MIN_MEM_SIZE,
    console_size: int = MIN_MEM_SIZE,
    ftrace_size: int = MIN_MEM_SIZE,
    pmsg_size: int = MIN_MEM_SIZE,
    mem_type: int = 0,
    max_reason: int = -1,
    dump_oops: int = -1,
    ecc: int = 0,
) -> RamoopsPlatformData:
    """What ``ramoops_register_dummy`` builds from the ``ramoops.*`` module parameters."""
    if max_reason >= 0:
        reason = max_reason
    elif dump_oops != -1:
        reason = KMSG_DUMP_OOPS if dump_oops else KMSG_DUMP_PANIC
    else:
        reason = KMSG_DUMP_OOPS
    return RamoopsPlatformData(
        mem_size=mem_size, mem_address=mem_address, mem_type=mem_type, record_size=record_size,
        console_size=console_size, ftrace_size=ftrace_size, pmsg_size=pmsg_size,
        max_reason=reason, flags=RAMOOPS_FLAG_FTRACE_PER_CPU,
        # For backwards compatibility ramoops.ecc=1 means 16 bytes of ECC.
        ecc_info=PersistentRamEccInfo(ecc_size=16 if ecc == 1 else ecc),
    )


@attrs.define(eq=False)
class RamoopsContext:
    """``struct ramoops_context`` (the pstore_info part is the backend name and bufsize)."""

    mem: RamAccess
    log: RamLog
    nr_cpu_ids: int = 1
    dprzs: list[PersistentRamZone] | None = None
    cprz: PersistentRamZone | None = None
    fprzs: list[PersistentRamZone] | None = None
    mprz: PersistentRamZone | None = None
    phys_addr: int = 0
    size: int = 0
    memtype: int = 0
    record_size: int = 0
    console_size: int = 0
    ftrace_size: int = 0
    pmsg_size: int = 0
    flags: int = 0
    ecc_info: PersistentRamEccInfo = attrs.field(factory=PersistentRamEccInfo)
    max_dump_cnt: int = 0
    dump_write_cnt: int = 0
    dump_read_cnt: int = 0
    console_read_cnt: int = 0
    max_ftrace_cnt: int = 0
    ftrace_read_cnt: int = 0
    pmsg_read_cnt: int = 0
    name: str = "ramoops"
    pstore_flags: int = 0
    bufsize: int = 0
    max_reason: int = KMSG_DUMP_OOPS

    def dev_err(self, text: str) -> None:
        # dev_err(&pdev->dev, ...) on the "ramoops" platform device (id -1)
        self.log.pr(KERN_ERR, "ramoops ramoops: " + text)

    def pr(self, level: int, text: str) -> None:
        self.log.pr(level, _PR_FMT + text)


def ramoops_pstore_open(cxt: RamoopsContext) -> int:
    cxt.dump_read_cnt = 0
    cxt.console_read_cnt = 0
    cxt.ftrace_read_cnt = 0
    cxt.pmsg_read_cnt = 0
    return 0


def ramoops_get_next_prz(
    przs: list[PersistentRamZone | None] | list[PersistentRamZone] | None, id: int, record: PstoreRecord
) -> PersistentRamZone | None:
    if przs is None:  # we never existed
        return None
    prz = przs[id]
    if prz is None:
        return None
    if prz.type == PSTORE_TYPE_DMESG:  # update the old (shadowed) copy
        persistent_ram_save_old(prz)
    if not persistent_ram_old_size(prz):
        return None
    record.type = prz.type
    record.id = id
    return prz


# lib/ctype.c: _S is set for \t \n \v \f \r, space and 0xA0.
_KERNEL_SPACE: Final = frozenset(b"\t\n\v\f\r \xa0")


def _skip_spaces(buf: bytes, i: int) -> int:
    while i < len(buf) and buf[i] in _KERNEL_SPACE:
        i += 1
    return i


def _strntoull(buf: bytes, i: int) -> tuple[int, int]:
    """simple_strntoull(base 10): digits wrap modulo 2**64."""
    value = 0
    while i < len(buf) and 0x30 <= buf[i] <= 0x39:
        value = (value * 10 + buf[i] - 0x30) % _S64
        i += 1
    return value, i


def _s64(value: int) -> int:
    value %= _S64
    return value - _S64 if value >= 1 << 63 else value


def _sscanf_kmsg_hdr(buf: bytes, with_type: bool) -> tuple[int, list[int], int]:
    """``sscanf(buf, "====%lld.%lu-%c\\n%n")`` (or without ``-%c``) with lib/vsprintf.c's rules.

    Returns (conversions, values, header_length); header_length is 0 unless ``%n`` was reached.
    """
    values: list[int] = []
    i = 0
    # "====": ordinary characters match exactly
    for ch in RAMOOPS_KERNMSG_HDR:
        if i >= len(buf) or buf[i] != ch:
            return len(values), values, 0
        i += 1
    # %lld: white space, an optional '-', then at least one digit
    i = _skip_spaces(buf, i)
    negative = i < len(buf) and buf[i] == 0x2D
    first = buf[i + 1] if negative and i + 1 < len(buf) else (buf[i] if i < len(buf) else 0)
    if not 0x30 <= first <= 0x39:
        return len(values), values, 0
    value, i = _strntoull(buf, i + 1 if negative else i)
    values.append(_s64(-value if negative else value))
    if i >= len(buf) or buf[i] != 0x2E:  # '.'
        return len(values), values, 0
    i += 1
    # %lu (no sign for an unsigned conversion)
    i = _skip_spaces(buf, i)
    if i >= len(buf) or not 0x30 <= buf[i] <= 0x39:
        return len(values), values, 0
    value, i = _strntoull(buf, i)
    values.append(_s64(value))  # stored into a long
    if with_type:
        if i >= len(buf) or buf[i] != 0x2D:  # '-'
            return len(values), values, 0
        i += 1
        if i >= len(buf) or buf[i] == 0:  # %c needs a character
            return len(values), values, 0
        values.append(buf[i])
        i += 1
    # "\n": any amount of white space, including none; then %n
    i = _skip_spaces(buf, i)
    return len(values), values, i


def ramoops_read_kmsg_hdr(buffer: bytes, time: Timespec64) -> tuple[int, bool]:
    """Parse a dump header: (header_length, compressed); 0 means there is none."""
    n, values, header_length = _sscanf_kmsg_hdr(buffer, with_type=True)
    if n == 3:
        time.tv_sec = values[0]
        time.tv_nsec = _s64(values[1] * 1000)
        return header_length, values[2] == ord("C")
    n, values, header_length = _sscanf_kmsg_hdr(buffer, with_type=False)
    if n == 2:
        time.tv_sec = values[0]
        time.tv_nsec = _s64(values[1] * 1000)
        return header_length, False
    time.tv_sec = 0
    time.tv_nsec = 0
    return 0, False


def prz_ok(prz: PersistentRamZone | None) -> bool:
    return prz is not None and bool(persistent_ram_old_size(prz) + len(persistent_ram_ecc_string(prz)))


def ramoops_pstore_read(cxt: RamoopsContext, record: PstoreRecord) -> int:
    """The backend's ``read()``: fill ``record`` with the next record; its size, 0 at the end."""
    prz: PersistentRamZone | None = None
    header_length = 0
    # Only dmesg headers carry a time; console, ftrace and pmsg records have none.
    record.time.tv_sec = 0
    record.time.tv_nsec = 0
    record.compressed = False

    while cxt.dump_read_cnt < cxt.max_dump_cnt and prz is None:
        prz = ramoops_get_next_prz(cxt.dprzs, cxt.dump_read_cnt, record)
        cxt.dump_read_cnt += 1
        if not prz_ok(prz):
            continue
        assert prz is not None
        old = persistent_ram_old(prz)
        assert old is not None
        header_length, record.compressed = ramoops_read_kmsg_hdr(old, record.time)
        if not header_length:  # clear and skip a dmesg record without a valid header
            persistent_ram_free_old(prz)
            persistent_ram_zap(prz)
            prz = None

    if not prz_ok(prz):
        first = not cxt.console_read_cnt
        cxt.console_read_cnt += 1
        if first:
            prz = ramoops_get_next_prz([cxt.cprz], 0, record)

    if not prz_ok(prz):
        first = not cxt.pmsg_read_cnt
        cxt.pmsg_read_cnt += 1
        if first:
            prz = ramoops_get_next_prz([cxt.mprz], 0, record)

    # ftrace is last since it may want to allocate memory.
    if not prz_ok(prz):
        if not (cxt.flags & RAMOOPS_FLAG_FTRACE_PER_CPU) and not cxt.ftrace_read_cnt:
            cxt.ftrace_read_cnt += 1
            prz = ramoops_get_next_prz(cxt.fprzs, 0, record)
        else:
            if not (cxt.flags & RAMOOPS_FLAG_FTRACE_PER_CPU):
                cxt.ftrace_read_cnt += 1
            # A dummy zone that combines the per-CPU records and their ECC counts.
            tmp_prz = PersistentRamZone(
                paddr=0, size=0, vaddr=None, label="", flags=0, log=cxt.log,  # type: ignore[arg-type]
            )
            prz = tmp_prz
            while cxt.ftrace_read_cnt < cxt.max_ftrace_cnt:
                assert cxt.fprzs is not None
                prz_next = ramoops_get_next_prz(cxt.fprzs, cxt.ftrace_read_cnt, record)
                cxt.ftrace_read_cnt += 1
                if not prz_ok(prz_next):
                    continue
                assert prz_next is not None
                tmp_prz.ecc_info = prz_next.ecc_info
                tmp_prz.corrected_bytes += prz_next.corrected_bytes
                tmp_prz.bad_blocks += prz_next.bad_blocks
                # pstore_ftrace_combine_log() without CONFIG_PSTORE_FTRACE: nothing, size 0.
                tmp_prz.old_log_size = 0
            record.id = 0

    if not prz_ok(prz):
        return 0
    assert prz is not None
    old = persistent_ram_old(prz) or b""
    size = persistent_ram_old_size(prz) - header_length
    notice = persistent_ram_ecc_string(prz).encode()
    record.ecc_notice_size = len(notice)
    record.buf = old[header_length:header_length + size] + notice
    record.size = size
    return size


async def ramoops_write_kmsg_hdr(prz: PersistentRamZone, record: PstoreRecord) -> int:
    hdr = b"====%d.%06d-%c\n" % (
        record.time.tv_sec, record.time.tv_nsec // 1000, ord("C") if record.compressed else ord("D"),
    )
    # char hdr[36] with scnprintf: at most 35 characters
    hdr = hdr[:35]
    await persistent_ram_write(prz, hdr, len(hdr))
    return len(hdr)


async def ramoops_pstore_write(cxt: RamoopsContext, record: PstoreRecord) -> int:
    """The backend's ``write()``: a console/ftrace append, or a dmesg dump into the next zone."""
    if record.type == PSTORE_TYPE_CONSOLE:
        if cxt.cprz is None:
            return -ENOMEM
        await persistent_ram_write(cxt.cprz, record.buf, record.size)
        return 0
    if record.type == PSTORE_TYPE_FTRACE:
        if cxt.fprzs is None:
            return -ENOMEM
        # The plugin passes the writing CPU as record.id when the zones are per CPU.
        zonenum = record.id if cxt.flags & RAMOOPS_FLAG_FTRACE_PER_CPU else 0
        await persistent_ram_write(cxt.fprzs[zonenum], record.buf, record.size)
        return 0
    if record.type == PSTORE_TYPE_PMSG:
        cxt.log.pr_ratelimited("ramoops_pstore_write", KERN_WARNING,
                               _PR_FMT + "PMSG shouldn't call ramoops_pstore_write")
        return -EINVAL
    if record.type != PSTORE_TYPE_DMESG:
        return -EINVAL
    # Only the first part of a crash: a dump split over records would confuse readers.
    if record.part != 1:
        return -ENOSPC
    if cxt.dprzs is None:
        return -ENOSPC
    prz = cxt.dprzs[cxt.dump_write_cnt]
    # A new dump: reset the zone so the header lands at the start of its data.
    persistent_ram_zap(prz)
    hlen = await ramoops_write_kmsg_hdr(prz, record)
    if not hlen:
        return -ENOMEM
    size = record.size
    if size + hlen > prz.buffer_size:
        size = prz.buffer_size - hlen
    await persistent_ram_write(prz, record.buf, size)
    cxt.dump_write_cnt = (cxt.dump_write_cnt + 1) % cxt.max_dump_cnt
    return 0


async def ramoops_pstore_write_user(cxt: RamoopsContext, record: PstoreRecord, buf: bytes) -> int:
    """The backend's ``write_user()``: a /dev/pmsg0 write appended to the pmsg zone."""
    if record.type == PSTORE_TYPE_PMSG:
        if cxt.mprz is None:
            return -ENOMEM
        await persistent_ram_write(cxt.mprz, buf, record.size)
        return 0
    return -EINVAL


def ramoops_pstore_erase(cxt: RamoopsContext, record: PstoreRecord) -> int:
    prz: PersistentRamZone | None
    if record.type == PSTORE_TYPE_DMESG:
        if record.id >= cxt.max_dump_cnt or cxt.dprzs is None:
            return -EINVAL
        prz = cxt.dprzs[record.id]
    elif record.type == PSTORE_TYPE_CONSOLE:
        prz = cxt.cprz
    elif record.type == PSTORE_TYPE_FTRACE:
        if record.id >= cxt.max_ftrace_cnt or cxt.fprzs is None:
            return -EINVAL
        prz = cxt.fprzs[record.id]
    elif record.type == PSTORE_TYPE_PMSG:
        prz = cxt.mprz
    else:
        return -EINVAL
    assert prz is not None
    persistent_ram_free_old(prz)
    persistent_ram_zap(prz)
    return 0


def ramoops_init_przs(
    name: str,
    cxt: RamoopsContext,
    paddr: int,
    mem_sz: int,
    record_size: int,
    cnt: int,
    sig: int,
    flags: int,
) -> tuple[int, list[PersistentRamZone] | None, int, int]:
    """Carve ``mem_sz`` bytes at ``paddr`` into zones: (err, zones, cnt, new paddr).

    A negative ``record_size`` means "``cnt`` zones"; otherwise ``cnt`` follows from it.
    """
    if mem_sz == 0 or record_size == 0:
        return 0, None, 0, paddr
    if record_size < 0:
        if cnt == 0:
            return 0, None, cnt, paddr
        record_size = mem_sz // cnt
        if record_size == 0:
            cxt.dev_err(f"{name} record size == 0 ({mem_sz} / {cnt})")
            return -ENOMEM, None, 0, paddr
    else:
        cnt = mem_sz // record_size
        if cnt == 0:
            cxt.dev_err(f"{name} record count == 0 ({mem_sz} / {record_size})")
            return -ENOMEM, None, 0, paddr
    if paddr + mem_sz - cxt.phys_addr > cxt.size:
        cxt.dev_err(
            f"no room for {name} mem region (0x{mem_sz:x}@0x{paddr:x}) in (0x{cxt.size:x}@0x{cxt.phys_addr:x})"
        )
        return -ENOMEM, None, 0, paddr
    zone_sz = mem_sz // cnt
    zone_sz &= ~1  # ALIGN_DOWN(zone_sz, 2)
    if not zone_sz:
        cxt.dev_err(f"{name} zone size == 0")
        return -ENOMEM, None, 0, paddr
    prz_ar: list[PersistentRamZone] = []
    for i in range(cnt):
        label = f"ramoops:{name}" if cnt == 1 else f"ramoops:{name}({i}/{cnt - 1})"
        prz = persistent_ram_new(
            paddr, zone_sz, sig, cxt.ecc_info, cxt.memtype, flags, label, mem=cxt.mem, log=cxt.log,
        )
        if isinstance(prz, int):
            cxt.dev_err(f"failed to request {name} mem region (0x{record_size:x}@0x{paddr:x}): {prz}")
            for done in prz_ar:
                persistent_ram_free(done)
            return prz, None, 0, paddr
        paddr += zone_sz
        prz.type = pstore_name_to_type(name)
        prz_ar.append(prz)
    return 0, prz_ar, cnt, paddr


def ramoops_init_prz(
    name: str, cxt: RamoopsContext, paddr: int, sz: int, sig: int
) -> tuple[int, PersistentRamZone | None, int]:
    """One single-boot zone (console, pmsg) of ``sz`` bytes at ``paddr``: (err, zone, new paddr)."""
    if not sz:
        return 0, None, paddr
    if paddr + sz - cxt.phys_addr > cxt.size:
        cxt.dev_err(
            f"no room for {name} mem region (0x{sz:x}@0x{paddr:x}) in (0x{cxt.size:x}@0x{cxt.phys_addr:x})"
        )
        return -ENOMEM, None, paddr
    label = f"ramoops:{name}"
    prz = persistent_ram_new(
        paddr, sz, sig, cxt.ecc_info, cxt.memtype, PRZ_FLAG_ZAP_OLD, label, mem=cxt.mem, log=cxt.log,
    )
    if isinstance(prz, int):
        cxt.dev_err(f"failed to request {name} mem region (0x{sz:x}@0x{paddr:x}): {prz}")
        return prz, None, paddr
    prz.type = pstore_name_to_type(name)
    return 0, prz, paddr + sz


def ramoops_probe_zones(
    pdata: RamoopsPlatformData, mem: RamAccess, log: RamLog, *, nr_cpu_ids: int = 1
) -> RamoopsContext | int:
    """The zone-building half of ``ramoops_probe``: a ready context, or a negative errno.

    Attaching the zones validates and ECC-corrects what RAM holds, exactly as at boot.
    """
    cxt = RamoopsContext(mem=mem, log=log, nr_cpu_ids=nr_cpu_ids)
    if not pdata.mem_size or not (
        pdata.record_size or pdata.console_size or pdata.ftrace_size or pdata.pmsg_size
    ):
        cxt.pr(KERN_ERR, "The memory size and the record/console size must be non-zero")
        return -EINVAL
    if pdata.record_size and not is_power_of_2(pdata.record_size):
        pdata.record_size = rounddown_pow_of_two(pdata.record_size)
    if pdata.console_size and not is_power_of_2(pdata.console_size):
        pdata.console_size = rounddown_pow_of_two(pdata.console_size)
    if pdata.ftrace_size and not is_power_of_2(pdata.ftrace_size):
        pdata.ftrace_size = rounddown_pow_of_two(pdata.ftrace_size)
    if pdata.pmsg_size and not is_power_of_2(pdata.pmsg_size):
        pdata.pmsg_size = rounddown_pow_of_two(pdata.pmsg_size)

    cxt.size = pdata.mem_size
    cxt.phys_addr = pdata.mem_address
    cxt.memtype = pdata.mem_type
    cxt.record_size = pdata.record_size
    cxt.console_size = pdata.console_size
    cxt.ftrace_size = pdata.ftrace_size
    cxt.pmsg_size = pdata.pmsg_size
    cxt.flags = pdata.flags
    cxt.ecc_info = pdata.ecc_info

    paddr = cxt.phys_addr
    # size_t arithmetic: sizes larger than the region wrap to a huge dump area, refused below.
    dump_mem_sz = (cxt.size - cxt.console_size - cxt.ftrace_size - cxt.pmsg_size) % _S64
    err, cxt.dprzs, cxt.max_dump_cnt, paddr = ramoops_init_przs(
        "dmesg", cxt, paddr, dump_mem_sz, cxt.record_size, cxt.max_dump_cnt, 0, 0,
    )
    if err:
        return err
    err, cxt.cprz, paddr = ramoops_init_prz("console", cxt, paddr, cxt.console_size, 0)
    if err:
        return err
    cxt.max_ftrace_cnt = nr_cpu_ids if cxt.flags & RAMOOPS_FLAG_FTRACE_PER_CPU else 1
    err, cxt.fprzs, cxt.max_ftrace_cnt, paddr = ramoops_init_przs(
        "ftrace", cxt, paddr, cxt.ftrace_size, -1, cxt.max_ftrace_cnt, LINUX_VERSION_CODE,
        PRZ_FLAG_NO_LOCK if cxt.flags & RAMOOPS_FLAG_FTRACE_PER_CPU else 0,
    )
    if err:
        return err
    err, cxt.mprz, paddr = ramoops_init_prz("pmsg", cxt, paddr, cxt.pmsg_size, 0)
    if err:
        return err

    cxt.pstore_flags = 0
    if cxt.max_dump_cnt:
        cxt.pstore_flags |= PSTORE_FLAGS_DMESG
        cxt.max_reason = pdata.max_reason
    if cxt.console_size:
        cxt.pstore_flags |= PSTORE_FLAGS_CONSOLE
    if cxt.max_ftrace_cnt:
        cxt.pstore_flags |= PSTORE_FLAGS_FTRACE
    if cxt.pmsg_size:
        cxt.pstore_flags |= PSTORE_FLAGS_PMSG
    # bufsize is only used for dmesg dumps: it must match a dmesg zone's data size.
    if cxt.pstore_flags & PSTORE_FLAGS_DMESG:
        assert cxt.dprzs is not None
        cxt.bufsize = cxt.dprzs[0].buffer_size
    return cxt

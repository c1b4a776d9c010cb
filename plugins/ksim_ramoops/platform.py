"""pstore's backend-independent core (fs/pstore/platform.c) as far as records and compression go.

Linux 6.1 compresses dmesg dumps through the crypto API's ``deflate`` transform
(crypto/deflate.c), selected by ``CONFIG_PSTORE_COMPRESS_DEFAULT="deflate"`` (Debian's choice):

* **writing** (:func:`pstore_compress`): raw deflate, no zlib header, level
  ``Z_DEFAULT_COMPRESSION``, window bits 11, memLevel 8, one ``Z_FINISH`` call into a buffer of
  the backend's ``bufsize``; a stream that does not fit *with a byte to spare* is an error (a
  last block that fills the buffer exactly leaves deflate() "finish started"), and the dump is
  stored uncompressed instead (:func:`copy_kmsg_to_buffer` keeps the header and the newest bytes).
* **reading** (:func:`decompress_record`): inflate into ``big_oops_buf_sz`` =
  ``zbufsize_deflate(bufsize)`` bytes (``bufsize * 100 / 60`` for ramoops' sizes); a stream
  that does not end inside that space fails, ``pstore: crypto_comp_decompress failed, ret =
  -22!`` is logged and the record stays compressed, so its file is ``<name>.enc.z`` and holds
  the compressed bytes.  Any window size up to 32 KiB inflates, as in the kernel, whose
  inflater only checks distances against the output produced so far.

6.5 replaced all this with direct zlib calls and different sizes; this module is 6.1 only.

The compressor is the kernel's own (:mod:`ksim.zlib_deflate`, an old zlib whose block
boundaries differ from a current zlib's), so a compressed dump has Linux's exact bytes; its
workspace lives as long as the compression setup, as the crypto transform's does.

Deviations
----------
* Compressing a dump has no preemption point inside (the backend's copy into its zone has one
  per cache line): another CPU sees ``psinfo->buf_lock`` held, or stops the dumping CPU,
  only while the dump is being copied, never while it is being compressed.
* Inflating uses the host's zlib.  Every valid stream inflates to the same bytes as with
  lib/zlib_inflate, and so did the damaged ones tried against the real kernel (an
  uncorrectable ECC block that still inflated, to garbage); a corrupt stream on which the two
  inflaters disagree (fail versus garbage) remains possible in principle.
"""

from __future__ import annotations

import zlib
from collections.abc import Awaitable, Callable
from typing import Final

import attrs

from ksim.console import CON_ANYTIME, CON_ENABLED, CON_PRINTBUFFER, Console
from ksim.errno import EBUSY, EEXIST, EINVAL
from ksim.locking import DEFINE_SPINLOCK, SpinLock, spin_lock_irqsave, spin_trylock_irqsave, \
    spin_unlock_irqrestore
from ksim.preempt import in_nmi
from ksim.printk import KmsgDumper, KmsgDumpIter, kmsg_dump_get_buffer, kmsg_dump_register, \
    kmsg_dump_rewind, kmsg_dump_unregister, printk, register_console, unregister_console
from ksim.timekeeping import ktime_get_real_fast_ns
from ksim.zlib_deflate import DeflateWorkspace, crypto_deflate_compress as zlib_crypto_compress
from ksim_ramoops.pstore import (
    PSTORE_FLAGS_CONSOLE, PSTORE_FLAGS_DMESG, PSTORE_TYPE_CONSOLE, PSTORE_TYPE_DMESG,
    PSTORE_TYPE_MAX, PSTORE_TYPE_PMSG, PstoreRecord, Timespec64,
)

__all__ = [
    "KMSG_DUMP_EMERG",
    "KMSG_DUMP_OOPS",
    "KMSG_DUMP_PANIC",
    "KMSG_DUMP_SHUTDOWN",
    "PSTORE_DEFAULT_KMSG_BYTES",
    "Pstore",
    "PstoreCompression",
    "PstoreInfo",
    "allocate_buf_for_compression",
    "copy_kmsg_to_buffer",
    "crypto_deflate_compress",
    "crypto_deflate_decompress",
    "decompress_record",
    "kmsg_dump_reason_str",
    "pstore_cannot_block_path",
    "pstore_compress",
    "pstore_console_write",
    "pstore_dump",
    "pstore_dump_header",
    "pstore_get_backend_records",
    "pstore_name_to_type",
    "pstore_record_init",
    "pstore_register",
    "pstore_type_to_name",
    "pstore_unregister",
    "write_pmsg",
    "zbufsize_deflate",
]

_PR_FMT: Final = "pstore: "
KERN_ERR: Final = 3
KERN_WARNING: Final = 4
KERN_INFO: Final = 6

# enum kmsg_dump_reason (include/linux/kmsg_dump.h)
KMSG_DUMP_UNDEF: Final = 0
KMSG_DUMP_PANIC: Final = 1
KMSG_DUMP_OOPS: Final = 2
KMSG_DUMP_EMERG: Final = 3
KMSG_DUMP_SHUTDOWN: Final = 4

# crypto/deflate.c
DEFLATE_DEF_LEVEL: Final = -1  # Z_DEFAULT_COMPRESSION, what ksim.zlib_deflate uses
DEFLATE_DEF_WINBITS: Final = 11
DEFLATE_DEF_MEMLEVEL: Final = 8  # MAX_MEM_LEVEL in include/linux/zconf.h
# A raw stream's distances reach at most 32 KiB back; inflating with the widest window accepts
# every stream the kernel's inflater accepts (it checks distances only against its output).
_INFLATE_WBITS: Final = -15

# Names in the order of enum pstore_type_id.
pstore_type_names: Final = (
    "dmesg",
    "mce",
    "console",
    "ftrace",
    "rtas",
    "powerpc-ofw",
    "powerpc-common",
    "pmsg",
    "powerpc-opal",
)


def pstore_type_to_name(type: int) -> str:
    if not 0 <= type < PSTORE_TYPE_MAX:
        return "unknown"
    return pstore_type_names[type]


def pstore_name_to_type(name: str) -> int:
    for i, known in enumerate(pstore_type_names):
        if known == name:
            return i
    return PSTORE_TYPE_MAX


def kmsg_dump_reason_str(reason: int) -> str:
    """kernel/printk/printk.c: the word that starts a dump's ``%s#%d Part%u`` header."""
    return {
        KMSG_DUMP_PANIC: "Panic",
        KMSG_DUMP_OOPS: "Oops",
        KMSG_DUMP_EMERG: "Emergency",
        KMSG_DUMP_SHUTDOWN: "Shutdown",
    }.get(reason, "Unknown")


def pstore_dump_header(reason: int, oopscount: int, part: int) -> bytes:
    """The first line pstore_dump() writes into every part: ``Panic#1 Part1\\n``."""
    return f"{kmsg_dump_reason_str(reason)}#{oopscount} Part{part}\n".encode()


def zbufsize_deflate(size: int) -> int:
    """The size of the buffer a dump is assembled (and inflated) in, for a backend ``bufsize``."""
    if 1000 <= size <= 2000:  # efivars
        cmpr = 56
    elif 2001 <= size <= 3000:
        cmpr = 54
    elif 3001 <= size <= 3999:
        cmpr = 52
    elif 4000 <= size <= 10000:  # nvram, erst
        cmpr = 45
    else:
        cmpr = 60
    return (size * 100) // cmpr


def crypto_deflate_compress(workspace: DeflateWorkspace, src: bytes, dlen: int) -> bytes | int:
    """``crypto_comp_compress`` with "deflate": the kernel's stream, or -EINVAL if it needs ``dlen`` or more."""
    out = zlib_crypto_compress(workspace, src, dlen)
    return -EINVAL if out is None else out


def crypto_deflate_decompress(src: bytes, dlen: int) -> bytes | int:
    """``crypto_comp_decompress`` with "deflate": the text, or -EINVAL.

    Success means the stream ended within ``dlen`` output bytes; bytes after its end are
    ignored.  As crypto/deflate.c does for raw streams, one zero byte is offered after the input
    if the inflater still wants more and there is output space left.
    """
    d = zlib.decompressobj(_INFLATE_WBITS)
    try:
        # One byte more than the space: a stream that needs it did not fit.
        out = d.decompress(src, dlen + 1)
        if not d.eof and not d.unconsumed_tail and len(out) < dlen:
            out += d.decompress(b"\x00", dlen + 1 - len(out))
    except zlib.error:
        return -EINVAL
    if not d.eof or len(out) > dlen:
        return -EINVAL
    return out


def _new_workspace() -> DeflateWorkspace:
    # deflate_comp_init(): zlib_deflateInit2(..., -DEFLATE_DEF_WINBITS, DEFLATE_DEF_MEMLEVEL, ...)
    return DeflateWorkspace(-DEFLATE_DEF_WINBITS, DEFLATE_DEF_MEMLEVEL)


@attrs.define
class PstoreCompression:
    """The compression state pstore keeps once a dmesg-capable backend registers (``tfm``,
    ``big_oops_buf_sz``)."""

    big_oops_buf_sz: int
    name: str = "deflate"
    workspace: DeflateWorkspace = attrs.field(factory=_new_workspace, repr=False)

    def compress(self, src: bytes, dlen: int) -> bytes | int:
        return crypto_deflate_compress(self.workspace, src, dlen)

    def decompress(self, src: bytes, dlen: int) -> bytes | int:
        return crypto_deflate_decompress(src, dlen)


def allocate_buf_for_compression(bufsize: int, log: Callable[[int, str], None] | None = None) -> PstoreCompression | None:
    """Set compression up for a backend whose dmesg buffer holds ``bufsize`` bytes."""
    size = zbufsize_deflate(bufsize)
    if size <= 0:
        if log is not None:
            log(KERN_ERR, _PR_FMT + f"Invalid compression size for deflate: {size}")
        return None
    if log is not None:
        log(KERN_INFO, _PR_FMT + "Using crash dump compression: deflate")
    return PstoreCompression(big_oops_buf_sz=size)


def pstore_compress(
    comp: PstoreCompression, data: bytes, outlen: int, log: Callable[[int, str], None] | None = None
) -> bytes | int:
    ret = comp.compress(data, outlen)
    if isinstance(ret, int):
        if log is not None:
            log(KERN_ERR, _PR_FMT + f"crypto_comp_compress failed, ret = {ret}!")
    return ret


def copy_kmsg_to_buffer(big_oops_buf: bytes, hsize: int, length: int, bufsize: int) -> bytes:
    """A dump that did not compress: the header, then as many of the newest bytes as fit."""
    total_len = hsize + length
    if total_len > bufsize:
        diff = total_len - bufsize + hsize
        return big_oops_buf[:hsize] + big_oops_buf[diff:diff + bufsize - hsize]
    return big_oops_buf[:total_len]


def decompress_record(
    record: PstoreRecord, comp: PstoreCompression | None, log: Callable[[int, str], None] | None = None
) -> None:
    """Inflate a compressed dmesg record in place; on failure it stays compressed."""
    if not record.compressed:
        return
    if record.type != PSTORE_TYPE_DMESG:
        if log is not None:
            log(KERN_WARNING, _PR_FMT + f"ignored compressed record type {record.type}")
        return
    if comp is None:
        if log is not None:
            log(KERN_WARNING, _PR_FMT + "no decompression method initialized!")
        return
    ret = comp.decompress(record.buf[:record.size], comp.big_oops_buf_sz)
    if isinstance(ret, int):
        if log is not None:
            log(KERN_ERR, _PR_FMT + f"crypto_comp_decompress failed, ret = {ret}!")
        return
    notice = record.buf[record.size:record.size + record.ecc_notice_size]
    record.buf = ret + notice
    record.size = len(ret)
    record.compressed = False


def pstore_get_backend_records(
    psi_name: str,
    read: Callable[[PstoreRecord], int],
    comp: PstoreCompression | None,
    mkfile: Callable[[PstoreRecord], int],
    quiet: bool = False,
    log: Callable[[int, str], None] | None = None,
) -> None:
    """Read every record the backend has and make a file of each (at mount, or at registration
    when pstore is already mounted).  A read of 0 bytes or less ends the loop."""
    failed = 0
    stop_loop = 65536
    while stop_loop:
        record = PstoreRecord(psi=psi_name)
        record.size = read(record)
        if record.size <= 0:  # no more records left in the backend
            break
        decompress_record(record, comp, log)
        rc = mkfile(record)
        if rc and (rc != -EEXIST or not quiet):
            failed += 1
        stop_loop -= 1
    if log is not None:
        if failed:
            log(KERN_WARNING, _PR_FMT + f"failed to create {failed} record(s) from '{psi_name}'")
        if not stop_loop:
            log(KERN_ERR, _PR_FMT + f"looping? Too many records seen from '{psi_name}'")


# -- the running kernel's pstore: registration, the kmsg dumper, the console --------------------

# CONFIG_PSTORE_DEFAULT_KMSG_BYTES: how much log one dump tries to save (mount option kmsg_bytes).
PSTORE_DEFAULT_KMSG_BYTES: Final = 10240


@attrs.define(eq=False)
class PstoreInfo:
    """``struct pstore_info``: what a backend hands to :func:`pstore_register`.

    The callbacks are the backend's and run its byte code; they never sleep, but the writes
    copy into memory, at whose cache lines another CPU can run (:mod:`ksim_ramoops.ramoops`);
    ``buf_lock`` serialises dumps as ``psinfo->buf_lock`` does.
    """

    name: str
    flags: int
    max_reason: int
    bufsize: int
    open: Callable[[], int]
    read: Callable[[PstoreRecord], int]
    write: Callable[[PstoreRecord], Awaitable[int]]
    write_user: Callable[[PstoreRecord, bytes], Awaitable[int]]
    erase: Callable[[PstoreRecord], int]
    buf_lock: SpinLock = attrs.field(factory=lambda: DEFINE_SPINLOCK("psinfo->buf_lock"))


@attrs.define(eq=False)
class Pstore:
    """fs/pstore/platform.c's statics for one kernel (``psinfo``, ``oopscount``, ``tfm``...).

    ``console`` is CONFIG_PSTORE_CONSOLE and ``pmsg`` CONFIG_PSTORE_PMSG: both off in
    Debian's 6.1, so a backend's console and pmsg zones are read at boot but never written.
    """

    console: bool = False
    pmsg: bool = False
    psinfo: PstoreInfo | None = None
    oopscount: int = 0
    kmsg_bytes: int = PSTORE_DEFAULT_KMSG_BYTES
    comp: PstoreCompression | None = None
    dumper: KmsgDumper | None = None
    pstore_console: Console | None = None
    # set by an OOPS dump, as pstore_new_entry (the timer that re-reads records is not modelled)
    new_entry: bool = False


def pstore_record_init(record: PstoreRecord, psinfo: PstoreInfo) -> None:
    """Zero the record, name the backend and stamp it with the wall clock."""
    record.psi = psinfo.name
    ns = ktime_get_real_fast_ns()
    record.time = Timespec64(ns // 1_000_000_000, ns % 1_000_000_000)


def pstore_cannot_block_path(reason: int) -> bool:
    """In NMI, panic (the other CPUs are stopped) or an emergency restart: never spin."""
    if in_nmi():
        return True
    return reason in (KMSG_DUMP_PANIC, KMSG_DUMP_EMERG)


async def _pr(level: int, text: str) -> None:
    await printk(f"\x01{level}%s\n", text)


async def pstore_dump(ps: Pstore, dumper: KmsgDumper, reason: int) -> None:
    """The kmsg dumper: the log's newest ``kmsg_bytes`` as parts ``<Why>#<oopscount> Part<N>``.

    Each part is the header and as many of the newest log lines as fit in the (compression)
    buffer, deflated when that fits into the backend's ``bufsize``; ramoops keeps part 1 and
    refuses the others (-ENOSPC), which 6.1 does not report.
    """
    psinfo = ps.psinfo
    assert psinfo is not None
    why = kmsg_dump_reason_str(reason)
    if pstore_cannot_block_path(reason):
        locked, flags = spin_trylock_irqsave(psinfo.buf_lock)
        if not locked:
            await _pr(KERN_ERR, _PR_FMT + "dump skipped in %s path because of concurrent dump"
                      % ("NMI" if in_nmi() else why))
            return
    else:
        flags = await spin_lock_irqsave(psinfo.buf_lock)
    it = KmsgDumpIter()
    kmsg_dump_rewind(it)
    ps.oopscount += 1
    total = 0
    part = 1
    while total < ps.kmsg_bytes:
        record = PstoreRecord()
        pstore_record_init(record, psinfo)
        record.type = PSTORE_TYPE_DMESG
        record.count = ps.oopscount
        record.reason = reason
        record.part = part
        dst_size = ps.comp.big_oops_buf_sz if ps.comp is not None else psinfo.bufsize
        # snprintf(dst, dst_size, "%s#%d Part%u\n", ...)
        header = pstore_dump_header(reason, ps.oopscount, part)[:dst_size - 1]
        dst_size -= len(header)
        text = kmsg_dump_get_buffer(it, True, dst_size)
        if text is None:
            break
        if ps.comp is not None:
            zipped = pstore_compress(ps.comp, header + text, psinfo.bufsize)
            if isinstance(zipped, bytes) and zipped:
                record.compressed = True
                record.buf = zipped
            else:
                record.buf = copy_kmsg_to_buffer(header + text, len(header), len(text),
                                                 psinfo.bufsize)
        else:
            record.buf = header + text
        record.size = len(record.buf)
        if await psinfo.write(record) == 0 and reason == KMSG_DUMP_OOPS:
            ps.new_entry = True
        total += record.size
        part += 1
    spin_unlock_irqrestore(psinfo.buf_lock, flags)


async def pstore_console_write(ps: Pstore, con: Console, data: bytes) -> None:
    """The pstore console: every console line goes to the backend's console zone."""
    if not data or ps.psinfo is None:
        return
    record = PstoreRecord()
    pstore_record_init(record, ps.psinfo)
    record.type = PSTORE_TYPE_CONSOLE
    record.buf = data
    record.size = len(data)
    await ps.psinfo.write(record)


async def write_pmsg(ps: Pstore, data: bytes) -> int:
    """A write to /dev/pmsg0: the bytes go to the pmsg zone, appended (fs/pstore/pmsg.c)."""
    if not data:
        return 0
    assert ps.psinfo is not None
    record = PstoreRecord()
    pstore_record_init(record, ps.psinfo)
    record.type = PSTORE_TYPE_PMSG
    record.size = len(data)
    ret = await ps.psinfo.write_user(record, data)
    return len(data) if ret == 0 else ret


async def pstore_register(ps: Pstore, psi: PstoreInfo,
                          get_records: Callable[[], Awaitable[None]]) -> int:
    """Make ``psi`` the backend: compression, the records read now, then the frontends."""
    if ps.psinfo is not None:
        await _pr(KERN_WARNING, _PR_FMT + f"backend '{ps.psinfo.name}' already loaded: "
                  f"ignoring '{psi.name}'")
        return -EBUSY
    ps.psinfo = psi
    if psi.flags & PSTORE_FLAGS_DMESG:
        log: list[tuple[int, str]] = []
        ps.comp = allocate_buf_for_compression(psi.bufsize, lambda lv, t: log.append((lv, t)))
        for level, text in log:
            await _pr(level, text)
    await get_records()
    if psi.flags & PSTORE_FLAGS_DMESG:
        async def dump(dumper: KmsgDumper, reason: int) -> None:
            await pstore_dump(ps, dumper, reason)
        ps.dumper = KmsgDumper(dump=dump, max_reason=psi.max_reason)
        kmsg_dump_register(ps.dumper)
    if psi.flags & PSTORE_FLAGS_CONSOLE and ps.console:
        async def write(con: Console, data: bytes) -> None:
            await pstore_console_write(ps, con, data)
        # strscpy(pstore_console.name, psinfo->name): the console is called "ramoops"
        ps.pstore_console = Console(name=psi.name, write=write,
                                    flags=CON_PRINTBUFFER | CON_ENABLED | CON_ANYTIME, index=-1)
        await register_console(ps.pstore_console)
    await _pr(KERN_INFO, _PR_FMT + f"Registered {psi.name} as persistent store backend")
    return 0


async def pstore_unregister(ps: Pstore) -> None:
    if ps.pstore_console is not None:
        await unregister_console(ps.pstore_console)
        ps.pstore_console = None
    if ps.dumper is not None:
        kmsg_dump_unregister(ps.dumper)
        ps.dumper = None
    ps.comp = None
    ps.psinfo = None

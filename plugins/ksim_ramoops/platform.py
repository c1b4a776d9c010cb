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
* Inflating uses the host's zlib.  Every valid stream inflates to the same bytes as with
  lib/zlib_inflate, and so did the damaged ones tried against the real kernel (an
  uncorrectable ECC block that still inflated, to garbage); a corrupt stream on which the two
  inflaters disagree (fail versus garbage) remains possible in principle.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final

import attrs

from ksim.errno import EEXIST, EINVAL
from ksim.zlib_deflate import DeflateWorkspace, crypto_deflate_compress as zlib_crypto_compress
from ksim_ramoops.pstore import PSTORE_TYPE_DMESG, PSTORE_TYPE_MAX, PstoreRecord

__all__ = [
    "KMSG_DUMP_EMERG",
    "KMSG_DUMP_OOPS",
    "KMSG_DUMP_PANIC",
    "KMSG_DUMP_SHUTDOWN",
    "PstoreCompression",
    "allocate_buf_for_compression",
    "copy_kmsg_to_buffer",
    "crypto_deflate_compress",
    "crypto_deflate_decompress",
    "decompress_record",
    "kmsg_dump_reason_str",
    "pstore_compress",
    "pstore_dump_header",
    "pstore_get_backend_records",
    "pstore_name_to_type",
    "pstore_type_to_name",
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

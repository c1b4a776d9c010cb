"""The files of the pstore filesystem (fs/pstore/inode.c, ``pstore_mkfile``), as Linux 6.1 names them.

Each record becomes one read-only file (mode 0444) named ``<type>-<backend>-<id>``, with
``.enc.z`` appended while the record is still compressed (R12).  Its bytes are the record's
``size`` bytes followed by the ECC notice; its mtime is the record's time unless that time's
seconds are 0, in which case the file keeps the time it was created (the mount's "now").
A second record with the same type, id and backend is refused with -EEXIST.
"""

from __future__ import annotations

from typing import Final

import attrs

from ksim.errno import EEXIST
from ksim_ramoops.platform import pstore_type_to_name
from ksim_ramoops.pstore import PstoreRecord, Timespec64

__all__ = ["PSTORE_FILE_MODE", "PstoreFile", "pstore_mkfile"]

PSTORE_FILE_MODE: Final = 0o444
PSTORE_NAMELEN: Final = 64  # scnprintf() into char name[64]: at most 63 characters


@attrs.frozen
class PstoreFile:
    """One file under /sys/fs/pstore: what ``ls -l`` and ``cat`` show."""

    name: str
    data: bytes
    # None: the record had no time; the file shows when it was created.
    mtime: Timespec64 | None
    record: PstoreRecord = attrs.field(eq=False, repr=False)
    mode: int = PSTORE_FILE_MODE


def pstore_mkfile(files: list[PstoreFile], record: PstoreRecord) -> int:
    """Add the file for ``record`` to ``files`` (the mounted root); 0 or -EEXIST."""
    for pos in files:
        if (pos.record.type, pos.record.id, pos.record.psi) == (record.type, record.id, record.psi):
            return -EEXIST
    name = (
        f"{pstore_type_to_name(record.type)}-{record.psi}-{record.id}"
        f"{'.enc.z' if record.compressed else ''}"
    )[:PSTORE_NAMELEN - 1]
    size = record.size + record.ecc_notice_size
    mtime = Timespec64(record.time.tv_sec, record.time.tv_nsec) if record.time.tv_sec else None
    files.append(PstoreFile(name=name, data=bytes(record.buf[:size]), mtime=mtime, record=record))
    return 0

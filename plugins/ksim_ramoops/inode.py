"""The files of the pstore filesystem (fs/pstore/inode.c, ``pstore_mkfile``), as Linux 6.1 names them.

Each record becomes one read-only file (mode 0444) named ``<type>-<backend>-<id>``, with
``.enc.z`` appended while the record is still compressed (R12).  Its bytes are the record's
``size`` bytes followed by the ECC notice; its mtime is the record's time unless that time's
seconds are 0, in which case the file keeps the time it was created (the mount's "now").
A second record with the same type, id and backend is refused with -EEXIST.

In a running kernel (:func:`pstore_fs_mkfile`) the files live in ksim's VFS under
``/sys/fs/pstore``; removing one erases its record in the backend (``pstore_unlink``).
Deviation: pstore is mounted from the start (Debian's systemd mounts it early in user space),
so the records are read when the backend registers, not at the ``mount``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import attrs

from ksim.errno import EEXIST
from ksim.fs import VFS, ProcFile, ProcOps
from ksim_ramoops.platform import pstore_type_to_name
from ksim_ramoops.pstore import PstoreRecord, Timespec64

__all__ = ["PSTORE_FILE_MODE", "PSTORE_ROOT", "PstoreFile", "pstore_fs_files", "pstore_fs_mkfile",
           "pstore_mkfile"]

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


# -- the mounted filesystem of a running kernel -------------------------------------------------

PSTORE_ROOT: Final = "/sys/fs/pstore"


def pstore_fs_mkfile(
    vfs: VFS, record: PstoreRecord, erase: Callable[[PstoreRecord], int], owner: str
) -> int:
    """``pstore_mkfile`` on the mounted root: ``/sys/fs/pstore/<name>``, read-only, whose
    unlink asks the backend to ``erase`` the record first (R12)."""
    files = pstore_fs_files(vfs)
    rc = pstore_mkfile(files, record)
    if rc:
        return rc
    made = files[-1]

    async def read(file: ProcFile, count: int, pos: int) -> bytes:
        return made.data[pos:pos + count]

    async def unlink(file: ProcFile) -> int:
        erase(made.record)
        return 0

    entry = vfs.create(f"{PSTORE_ROOT}/{made.name}", made.mode,
                       ProcOps(proc_read=read, unlink=unlink), data=made, owner=owner)
    return 0 if entry is not None else -EEXIST


def pstore_fs_files(vfs: VFS) -> list[PstoreFile]:
    """The files under /sys/fs/pstore, by name."""
    out = []
    for name in vfs.listdir(PSTORE_ROOT):
        data = vfs.lookup(f"{PSTORE_ROOT}/{name}").data
        if isinstance(data, PstoreFile):
            out.append(data)
    return out

"""pstore's record types and records (include/linux/pstore.h), as Linux 6.1 defines them.

``struct pstore_record`` is what a backend's ``read()`` fills in and ``write()`` is handed; the
backend-independent code (:mod:`ksim_ramoops.platform`, :mod:`ksim_ramoops.inode`) only ever
sees records.  ``buf`` holds exactly ``size + ecc_notice_size`` meaningful bytes.
"""

from __future__ import annotations

from typing import Final

import attrs

__all__ = [
    "PSTORE_FLAGS_CONSOLE",
    "PSTORE_FLAGS_DMESG",
    "PSTORE_FLAGS_FTRACE",
    "PSTORE_FLAGS_PMSG",
    "PSTORE_TYPE_CONSOLE",
    "PSTORE_TYPE_DMESG",
    "PSTORE_TYPE_FTRACE",
    "PSTORE_TYPE_MAX",
    "PSTORE_TYPE_MCE",
    "PSTORE_TYPE_PMSG",
    "PstoreRecord",
    "Timespec64",
]

# enum pstore_type_id
PSTORE_TYPE_DMESG: Final = 0
PSTORE_TYPE_MCE: Final = 1
PSTORE_TYPE_CONSOLE: Final = 2
PSTORE_TYPE_FTRACE: Final = 3
PSTORE_TYPE_PPC_RTAS: Final = 4
PSTORE_TYPE_PPC_OF: Final = 5
PSTORE_TYPE_PPC_COMMON: Final = 6
PSTORE_TYPE_PMSG: Final = 7
PSTORE_TYPE_PPC_OPAL: Final = 8
PSTORE_TYPE_MAX: Final = 9

# struct pstore_info.flags: the frontends a backend supports
PSTORE_FLAGS_DMESG: Final = 1 << 0
PSTORE_FLAGS_CONSOLE: Final = 1 << 1
PSTORE_FLAGS_FTRACE: Final = 1 << 2
PSTORE_FLAGS_PMSG: Final = 1 << 3


@attrs.define
class Timespec64:
    """``struct timespec64``; values are kept as the kernel computed them, unnormalised."""

    tv_sec: int = 0
    tv_nsec: int = 0


@attrs.define
class PstoreRecord:
    """``struct pstore_record`` (``psi`` is the backend's name)."""

    psi: str = ""
    type: int = PSTORE_TYPE_DMESG
    id: int = 0
    time: Timespec64 = attrs.field(factory=Timespec64)
    buf: bytes = b""
    size: int = 0
    ecc_notice_size: int = 0
    count: int = 0
    reason: int = 0
    part: int = 0
    compressed: bool = False

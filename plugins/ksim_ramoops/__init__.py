"""ramoops/pstore: the byte-level core of Linux 6.1's RAM-backed pstore backend.

Modules follow the kernel's files: :mod:`ksim_ramoops.ram_core` (persistent RAM zones,
fs/pstore/ram_core.c), :mod:`ksim_ramoops.ram` (ramoops layout, dump headers, read/write,
fs/pstore/ram.c), :mod:`ksim_ramoops.platform` (compression and the record loop,
fs/pstore/platform.c), :mod:`ksim_ramoops.inode` (file names, fs/pstore/inode.c) and
:mod:`ksim_ramoops.pstore` (include/linux/pstore.h).  :mod:`ksim_ramoops.decode` puts them
together to show what a boot would find in a memory image.
"""

from ksim_ramoops.decode import DecodeResult, decode_ramoops_image

__all__ = ["DecodeResult", "decode_ramoops_image"]

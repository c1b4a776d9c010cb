"""Error numbers (include/uapi/asm-generic/errno-base.h) and the exception that carries them.

Kernel functions return ``-EINVAL`` and friends; ksim keeps that convention where a C driver
would check a return value (``if (ret < 0)``), and raises :class:`KernelError` where Python code
is better served by an exception (parsing a parameter value, say).  Either way the number is the
kernel's, so a message such as ``insmod: ... failed: -22`` reads exactly as it would on Linux.
"""

from __future__ import annotations

EPERM = 1
ENOENT = 2
EIO = 5
E2BIG = 7
ENOEXEC = 8
EAGAIN = 11
ENOMEM = 12
EACCES = 13
EFAULT = 14
EBUSY = 16
EEXIST = 17
ENODEV = 19
EINVAL = 22
ENOSPC = 28
ERANGE = 34
ENOSYS = 38

errorcode: dict[int, str] = {
    value: name for name, value in globals().items() if name.startswith("E") and isinstance(value, int)
}


class KernelError(Exception):
    """A kernel-style failure: ``errno`` is stored negative, as kernel functions return it."""

    def __init__(self, errno: int, message: str = "") -> None:
        self.errno = -abs(errno)
        self.message = message
        super().__init__(message or errorcode.get(-self.errno, str(self.errno)))

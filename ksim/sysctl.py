"""``/proc/sys`` handlers (kernel/sysctl.c): integers read and written as text.

Each sysctl file is declared by the subsystem that owns its variable, next to the variable
(:func:`ksim.init.kernel_file`); this module only has the shared handlers.
"""

from __future__ import annotations

from collections.abc import Callable

from ksim.errno import EINVAL
from ksim.fs import ProcFile, ProcOps

__all__ = ["proc_dointvec"]


def proc_dointvec(get: Callable[[], int], set_: Callable[[int], None]) -> ProcOps:
    """``proc_dointvec``: reads ``"%d\\n"``; a write parses one integer (base 0) or fails
    with ``-EINVAL``."""

    async def read(file: ProcFile, count: int, pos: int) -> bytes:
        return ("%d\n" % get()).encode()[pos:pos + count]

    async def write(file: ProcFile, data: bytes) -> int:
        try:
            set_(int(data.decode().strip(), 0))
        except ValueError:
            return -EINVAL
        return len(data)

    return ProcOps(read, write)

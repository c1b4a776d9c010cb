"""What a driver's tests and invariant checks may ask of the simulated kernel.

Driver code ports C and sees only the kernel API; a driver's *checks* need to compare what
it kept with what the kernel gave it.  Those questions are answered here, through public
functions, so no plugin reaches into the core's internals.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksim.console import CON_EXTENDED, Console
from ksim.current import current_kernel

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["console_output_since", "log_next_seq"]


def log_next_seq(kernel: Kernel | None = None) -> int:
    """The sequence number the next printk record will get (a point in the log to check
    from)."""
    return (kernel or current_kernel()).printk.log.next_seq


def console_output_since(con: Console, since_seq: int, kernel: Kernel | None = None) -> bytes:
    """What ``con`` was given for the records ``since_seq .. con.seq`` still in the log,
    as its ``write`` saw them (prefixes, loglevel filtering): a model of the console's
    stream, to check a driver's own record of it against."""
    pk = (kernel or current_kernel()).printk
    out = []
    for record in pk.log.records_from(since_seq):
        if record.seq >= con.seq:
            break
        if not pk.suppressed(con, record.level):
            out.append(pk.console_text(record, bool(con.flags & CON_EXTENDED)))
    return b"".join(out)

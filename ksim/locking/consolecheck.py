"""ksim's console-driver checker: a console write must not wait for a lock during an oops (S6).

Linux's console drivers follow one rule the lock checkers cannot see: while
``oops_in_progress`` is set (``bust_spinlocks(1)``, K1), ``write()`` takes its own lock with
``spin_trylock()`` and writes anyway if that fails, because the CPU that oopsed may be the
one holding it, interrupted inside the driver.  8250's ``serial8250_console_write()``::

    if (oops_in_progress)
            locked = spin_trylock_irqsave(&port->lock, flags);
    else
            spin_lock_irqsave(&port->lock, flags);

A driver that takes its lock unconditionally works until the day an oops (or a panic from an
NMI, or a second CPU stopped with the lock held) prints through it, and then spins for ever
with interrupts off: the machine hangs and the oops is lost.  lockdep sees nothing wrong
with such an acquisition, so this checker watches for it: any lock taken by waiting (not a
trylock) inside a console's ``write()`` while ``oops_in_progress`` is set is reported, once
per lock, with the lock and the call site, in the style of a lockdep report (kind
``console``).  The report is the simulator's, not a message Linux prints.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import TYPE_CHECKING

from ksim.bug import add_report, cpu_pid_line, report_header
from ksim.current import _current as _current_var
from ksim.kern_levels import KERN_WARNING
from ksim.locking.common import LOCK_TRY, LockBase
from ksim.locking.lockdep import _SKIP_FILES, capture, format_where

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["ConsoleWriteCheck"]

TITLE = "WARNING: console write waits for a lock while an oops is in progress"


class ConsoleWriteCheck:
    """``ConsoleWriteCheck.attach(kernel)``; its reports are the kernel's (kind ``console``)."""

    def __init__(self) -> None:
        self.reported: set[str] = set()  # lock names already reported
        self._kernel: Kernel | None = None

    @classmethod
    def attach(cls, kernel: Kernel) -> ConsoleWriteCheck:
        self = cls()
        self._kernel = kernel
        kernel.locking.observers.append(self)
        return self

    def detach(self) -> None:
        if self._kernel is not None and self in self._kernel.locking.observers:
            self._kernel.locking.observers.remove(self)

    def lock_event(self, event: str, lock: LockBase, flags: int = 0) -> None:
        if event != "acquire" or flags & LOCK_TRY:
            return
        task = _current_var.get()
        con = task.cpu.console_write
        if con is None:
            return
        kernel = task.kernel
        if kernel is None or not kernel.panic.oops_in_progress or lock.name in self.reported:
            return
        self.reported.add(lock.name)
        frame: FrameType | None = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename in _SKIP_FILES:
            frame = frame.f_back
        trace = capture(frame)
        where = format_where(trace[0]) if trace else "?"
        label = getattr(con, "label", None) or getattr(con, "name", "?")
        lines = report_header(TITLE) + [
            "%s/%d is printing through console %s while an oops is in progress "
            "(oops_in_progress=%d)" % (task.comm, task.pid, label, kernel.panic.oops_in_progress),
            "and waits for a lock instead of trying it:",
            "%016x (%s), at: %s" % (getattr(lock, "addr", 0), lock.name, where),
            "",
            "If the CPU that oopsed holds this lock, this write spins on it for ever with",
            "interrupts off. While oops_in_progress is set a console driver takes its lock with",
            "spin_trylock() and writes anyway if that fails (serial8250_console_write()).",
            "",
            "stack backtrace:", cpu_pid_line(), "Call Trace:", " <TASK>",
        ] + [" " + format_where(w) for w in trace] + [" </TASK>"]
        add_report("console", TITLE, lines, KERN_WARNING)

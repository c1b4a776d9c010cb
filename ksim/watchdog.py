"""Hangs the kernel itself cannot report (kernel/watchdog.c has no detector this early).

A handler of a boot option runs before any watchdog exists: if it loops forever, the real
kernel hangs silently.  ksim cannot run forever either, so it counts the driver code's calls
into the kernel's memory API while such a handler (or a module's init) runs; past
:data:`HANG_BUDGET` calls without returning, the boot is declared hung.  The diagnostic is
the *simulator's*, never a kernel message: it is the boot's ``outcome_detail`` and a report
of kind ``hang`` (not logged to dmesg), and ``ksim boot`` prints it on stderr.  A handler
that returns, however long it took, was making progress.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import attrs

from ksim.bug import Report
from ksim.reboot import MachineHang

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["HANG_BUDGET", "HangCheck"]

# Calls into the kernel one handler may make: a real memory search needs a few thousand at
# most (one per candidate block); 20,000 keeps a hung boot to about 0.15 s of CPU.
HANG_BUDGET = 20_000


@attrs.define
class HangCheck:
    """Which driver code the boot is in, and how many kernel calls it made there."""

    kernel: Kernel
    where: str | None = None
    calls: int = 0
    budget: int = HANG_BUDGET

    @contextmanager
    def running(self, where: str) -> Iterator[None]:
        """The boot calls into driver code ``where`` (a handler's or an initcall's name)."""
        saved = self.where, self.calls
        self.where, self.calls = where, 0
        try:
            yield
        finally:
            self.where, self.calls = saved

    def touch(self) -> None:
        """One call into the kernel from the code running now."""
        if self.where is None:
            return
        self.calls += 1
        if self.calls > self.budget:
            detail = ("ksim: boot hung in %s: no progress in %d calls into the kernel (the "
                      "real kernel hangs here silently, before any watchdog runs)"
                      % (self.where, self.budget))
            self.where = None
            self.kernel.reports.append(Report("hang", detail, detail))
            raise MachineHang(detail)

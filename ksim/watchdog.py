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

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import attrs

from ksim.bug import Report
from ksim.current import current_kernel
from ksim.fs import ProcOps
from ksim.init import kernel_file, setup
from ksim.reboot import MachineHang
from ksim.sysctl import proc_dointvec

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["HANG_BUDGET", "HangCheck", "WatchdogState"]

# Calls into the kernel one handler may make: a search through RAM makes at most one per page
# (a candidate block per step), so the budget is twice the machine's pages, and at least 20,000
# (about 0.15 s of CPU for a hung boot on a small machine).
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
        layout = self.kernel.layout
        if layout is not None:
            self.budget = max(HANG_BUDGET, 2 * layout.max_pfn)
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


# -- kernel/watchdog.c's switches -----------------------------------------------------------------

NMI_WATCHDOG_ENABLED = 1
SOFT_WATCHDOG_ENABLED = 2


@attrs.define
class WatchdogState:
    """The lockup detectors' switches (kernel/watchdog.c).  ksim runs no lockup detector (a
    boot that hangs is the simulator's to report, above); what the switches change is what
    ``/proc/sys/kernel/{watchdog,soft_watchdog,nmi_watchdog}`` read.  The machine has no PMU
    (like QEMU's TCG): the NMI watchdog is never available."""

    watchdog_user_enabled: int = 1
    soft_watchdog_user_enabled: int = 1
    nmi_watchdog_user_enabled: int = 1
    nmi_watchdog_available: bool = False

    @property
    def watchdog_enabled(self) -> int:
        """``lockup_detector_update_enable()``'s result."""
        if not self.watchdog_user_enabled:
            return 0
        enabled = 0
        if self.nmi_watchdog_available and self.nmi_watchdog_user_enabled:
            enabled |= NMI_WATCHDOG_ENABLED
        if self.soft_watchdog_user_enabled:
            enabled |= SOFT_WATCHDOG_ENABLED
        return enabled


@setup("nowatchdog")
async def nowatchdog_setup(val: str) -> int:
    current_kernel().watchdog.watchdog_user_enabled = 0
    return 1


@setup("nosoftlockup")
async def nosoftlockup_setup(val: str) -> int:
    current_kernel().watchdog.soft_watchdog_user_enabled = 0
    return 1


def _watchdog_file(attr: str, which: int) -> Callable[[Kernel], ProcOps]:
    def make(k: Kernel) -> ProcOps:
        state = k.watchdog

        def get() -> int:
            return int(bool(state.watchdog_enabled & which))

        def set_(value: int) -> None:
            if value in (0, 1):
                setattr(state, attr, value)

        return proc_dointvec(get, set_)

    return make


kernel_file("/proc/sys/kernel/watchdog", 0o644)(
    _watchdog_file("watchdog_user_enabled", NMI_WATCHDOG_ENABLED | SOFT_WATCHDOG_ENABLED))
kernel_file("/proc/sys/kernel/soft_watchdog", 0o644)(
    _watchdog_file("soft_watchdog_user_enabled", SOFT_WATCHDOG_ENABLED))
kernel_file("/proc/sys/kernel/nmi_watchdog", 0o644)(
    _watchdog_file("nmi_watchdog_user_enabled", NMI_WATCHDOG_ENABLED))

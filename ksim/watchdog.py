"""Hangs: the kernel's lockup detectors (kernel/watchdog.c), and the hangs no detector sees.

A handler of a boot option runs before any watchdog exists: if it loops forever, the real
kernel hangs silently.  ksim cannot run forever either, so it counts the driver code's calls
into the kernel's memory API while such a handler (or a module's init) runs; past
:data:`HANG_BUDGET` calls without returning, the boot is declared hung.  The diagnostic is
the *simulator's*, never a kernel message: it is the boot's ``outcome_detail`` and a report
of kind ``hang`` (not logged to dmesg), and ``ksim boot`` prints it on stderr.  A handler
that returns, however long it took, was making progress.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import attrs
import trio

from ksim.bug import Report, add_report, cpu_pid_line, short_path
from ksim.cmdline import simple_strtoul
from ksim.current import current_kernel
from ksim.fs import ProcOps
from ksim.init import kernel_file, setup
from ksim.kern_levels import KERN_EMERG
from ksim.panic import nmi_panic, panic
from ksim.reboot import MachineHang
from ksim.sysctl import proc_dointvec

if TYPE_CHECKING:
    from ksim.kernel import Kernel
    from ksim.scheduler import Scheduler, SimThread

__all__ = ["HANG_BUDGET", "HangCheck", "WatchdogState", "lockup_detected"]

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


# -- the lockup detectors (kernel/watchdog.c, kernel/watchdog_hld.c) -------------------------
#
# A CPU that spins forever is what they catch: with interrupts off the watchdog's hrtimer
# cannot run and the perf NMI notices (a hard lockup), with interrupts on but preemption off
# the hrtimer runs and sees that the watchdog thread never did (a soft lockup).  ksim's
# scheduler calls lockup_detected() when nothing can run but spinning CPUs; the detector's
# report then comes from the stuck CPU itself, in NMI or interrupt context, after the virtual
# time the real detector needs.

SOFTLOCKUP_STUCK = 22  # "stuck for 22s!": the first hrtimer check past 2 * watchdog_thresh


NMI_WATCHDOG_ENABLED = 1
SOFT_WATCHDOG_ENABLED = 2


@attrs.define
class WatchdogState:
    """kernel/watchdog.c's switches and knobs: ``nowatchdog``, ``nosoftlockup``,
    ``nmi_watchdog=`` (0, 1, panic, nopanic), ``softlockup_panic=``, ``watchdog_thresh=``,
    the ``/proc/sys/kernel/{watchdog,soft_watchdog,nmi_watchdog}`` sysctls; the CPUs reported.

    The hard-lockup detector needs a PMU (its perf NMI): ``nmi_watchdog_available`` is the
    machine's (``Machine(pmu=...)``; QEMU's TCG has none, real x86 hardware has one)."""

    watchdog_user_enabled: int = 1
    soft_watchdog_user_enabled: int = 1
    nmi_watchdog_user_enabled: int = 1
    nmi_watchdog_available: bool = False
    hardlockup_panic: bool = False  # CONFIG_BOOTPARAM_HARDLOCKUP_PANIC is not set (Debian)
    softlockup_panic: bool = False
    watchdog_thresh: int = 10
    reported: set[int] = attrs.Factory(set)

    @property
    def watchdog_enabled(self) -> int:
        """``lockup_detector_update_enable()``'s result (no detector with a zero threshold)."""
        if not self.watchdog_user_enabled or not self.watchdog_thresh:
            return 0
        enabled = 0
        if self.nmi_watchdog_available and self.nmi_watchdog_user_enabled:
            enabled |= NMI_WATCHDOG_ENABLED
        if self.soft_watchdog_user_enabled:
            enabled |= SOFT_WATCHDOG_ENABLED
        return enabled


@setup("nmi_watchdog=")
async def hardlockup_panic_setup(val: str) -> int:
    state = current_kernel().watchdog
    if val.startswith("panic"):
        state.hardlockup_panic = True
    elif val.startswith("nopanic"):
        state.hardlockup_panic = False
    elif val.startswith("0"):
        state.nmi_watchdog_user_enabled = 0
    elif val.startswith("1"):
        state.nmi_watchdog_user_enabled = 1
    return 1


@setup("nowatchdog")
async def nowatchdog_setup(val: str) -> int:
    current_kernel().watchdog.watchdog_user_enabled = 0
    return 1


@setup("nosoftlockup")
async def nosoftlockup_setup(val: str) -> int:
    current_kernel().watchdog.soft_watchdog_user_enabled = 0
    return 1


@setup("softlockup_panic=")
async def softlockup_panic_setup(val: str) -> int:
    current_kernel().watchdog.softlockup_panic = simple_strtoul(val, 0)[0] != 0
    return 1


@setup("watchdog_thresh=")
async def watchdog_thresh_setup(val: str) -> int:
    current_kernel().watchdog.watchdog_thresh = simple_strtoul(val, 0)[0]
    return 1


@kernel_file("/proc/sys/kernel/hardlockup_panic", 0o644)
def _hardlockup_panic_sysctl(k: Kernel) -> ProcOps:
    def set_(value: int) -> None:
        k.watchdog.hardlockup_panic = bool(value)
    return proc_dointvec(lambda: int(k.watchdog.hardlockup_panic), set_)


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


async def lockup_detected(kernel: Kernel, sched: Scheduler, spinners: list[SimThread]) -> bool:
    """Let the detectors see the CPUs of ``spinners`` stuck; True if one will report (the
    run goes on: the report, and a panic if so configured), False if none can."""
    state = kernel.watchdog
    for thread in spinners:
        cpu = thread.cpu
        enabled = state.watchdog_enabled
        if cpu.id in state.reported or cpu.stopped or not enabled:
            continue
        if not cpu.irqs_enabled or cpu.hardirq_count or cpu.nmi_count:
            if not enabled & NMI_WATCHDOG_ENABLED or cpu.nmi_count:
                continue
            state.reported.add(cpu.id)
            await trio.sleep(state.watchdog_thresh)  # the perf NMI's period
            sched.raise_nmi(cpu.id, _hardlockup_report(thread))
            return True
        if not enabled & SOFT_WATCHDOG_ENABLED:
            continue
        state.reported.add(cpu.id)
        await trio.sleep(SOFTLOCKUP_STUCK)
        sched.raise_core_irq(cpu.id, _softlockup_report(thread))
        return True
    return False


def _spin_site(thread: SimThread) -> str:
    """Where the stuck thread spins: the innermost frame of its coroutine outside ksim."""
    coro: object = thread.coro
    frames = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            frames.append(frame)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    for frame in reversed(frames):
        path = short_path(frame.f_code.co_filename)
        if not path.startswith("ksim/"):
            return "%s:%d %s" % (path, frame.f_lineno, frame.f_code.co_name)
    return "native_queued_spin_lock_slowpath+0x5a/0x1d0"


def _hardlockup_report(thread: SimThread) -> Callable[[int, int], Awaitable[None]]:
    async def watchdog_overflow_callback(number: int, cpu: int) -> None:
        kernel = current_kernel()
        lock = thread.blocked_on
        lines = ["NMI watchdog: Watchdog detected hard LOCKUP on cpu %d" % cpu,
                 "Modules linked in:%s" % "".join(" " + m for m in kernel.module.names()),
                 cpu_pid_line(),
                 "RIP: 0010:native_queued_spin_lock_slowpath+0x5a/0x1d0"]
        lines += ["Call Trace:", " <NMI>", " </NMI>", " <TASK>", " " + _spin_site(thread),
                  " </TASK>"]
        if lock is not None:
            lines.insert(1, "spinning on %s" % getattr(lock, "name", lock))
        add_report("lockup", lines[0], lines, KERN_EMERG)
        if kernel.watchdog.hardlockup_panic:
            await nmi_panic("Hard LOCKUP")
    return watchdog_overflow_callback


def _softlockup_report(thread: SimThread) -> Callable[[], Awaitable[None]]:
    async def watchdog_timer_fn() -> None:
        kernel = current_kernel()
        task = thread.task
        lines = ["watchdog: BUG: soft lockup - CPU#%d stuck for %ds! [%s:%d]" % (
                     task.cpu.id, SOFTLOCKUP_STUCK, task.comm, task.pid),
                 "Modules linked in:%s" % "".join(" " + m for m in kernel.module.names()),
                 cpu_pid_line(),
                 "RIP: 0010:native_queued_spin_lock_slowpath+0x5a/0x1d0",
                 "Call Trace:", " <TASK>", " " + _spin_site(thread), " </TASK>"]
        add_report("lockup", lines[0], lines, KERN_EMERG)
        if kernel.watchdog.softlockup_panic:
            await panic("softlockup: hung tasks")
    return watchdog_timer_fn

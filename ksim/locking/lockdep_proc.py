"""``/proc/lock_stat`` and the ``kernel.lock_stat`` sysctl (kernel/locking/lockdep_proc.c).

lock_stat counts, per lock *class* (the lock's name, summing its instances), how often it was
taken and contended and how long it was waited for and held, in virtual microseconds.  The
counters live on the locks (:class:`~ksim.locking.common.LockBase`); wait and hold times are
collected while the sysctl is on (:attr:`~ksim.locking.common.LockState.lock_stat`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksim.fs import ProcOps, text_reader
from ksim.init import kernel_file
from ksim.locking.common import LockBase
from ksim.sysctl import proc_dointvec

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["render_lock_stat"]


def render_lock_stat(locks: list[LockBase]) -> str:
    """``/proc/lock_stat`` (version 0.4), times in virtual us.

    Bounces (transfers between CPUs) are not tracked and print as 0.
    """
    classes: dict[str, list[LockBase]] = {}
    for lock in locks:
        classes.setdefault(lock.name, []).append(lock)
    bar = "-" * 197
    head = ("%40s %14s %14s %14s %14s %14s %14s %14s %14s %14s %14s %14s %14s" % (
        "class name", "con-bounces", "contentions", "waittime-min", "waittime-max",
        "waittime-total", "waittime-avg", "acq-bounces", "acquisitions", "holdtime-min",
        "holdtime-max", "holdtime-total", "holdtime-avg"))
    lines = ["lock_stat version 0.4", bar, head, bar]

    def us(ns: int) -> str:
        return "%.2f" % (max(ns, 0) / 1000)

    for name, group in sorted(classes.items(), key=lambda kv: -sum(l.contentions for l in kv[1])):
        cont = sum(l.contentions for l in group)
        acq = sum(l.acquisitions for l in group)
        waits = [l.min_wait_ns for l in group if l.min_wait_ns >= 0]
        holds = [l.min_hold_ns for l in group if l.min_hold_ns >= 0]
        wait_total = sum(l.wait_ns for l in group)
        hold_total = sum(l.hold_ns for l in group)
        lines.append("%40s %14d %14d %14s %14s %14s %14s %14d %14d %14s %14s %14s %14s" % (
            name + ":", 0, cont, us(min(waits, default=0)),
            us(max(l.max_wait_ns for l in group)), us(wait_total),
            us(wait_total // cont if cont else 0), 0, acq, us(min(holds, default=0)),
            us(max(l.max_hold_ns for l in group)), us(hold_total),
            us(hold_total // acq if acq else 0)))
    return "\n".join(lines) + "\n"


@kernel_file("/proc/lock_stat", 0o400)
def _lock_stat(k: Kernel) -> ProcOps:
    return text_reader(lambda: render_lock_stat(k.locking.locks_seen))


@kernel_file("/proc/sys/kernel/lock_stat", 0o644)
def _lock_stat_sysctl(k: Kernel) -> ProcOps:
    def set_(value: int) -> None:
        k.locking.lock_stat = bool(value)
    return proc_dointvec(lambda: int(k.locking.lock_stat), set_)

"""What every lock has: a lockdep class, an owner, lock_stat counters, waiters, observers.

This is the part of the locking code that ``include/linux/lockdep_types.h`` (the
``lockdep_map`` every lock embeds), ``include/linux/lockdep.h`` (the ``lock_acquire`` /
``lock_contended`` / ``lock_acquired`` / ``lock_release`` hooks) and lock_stat's per-class
counters give the kernel's locks in common.  The lock types themselves are in
:mod:`ksim.locking.spinlock`, :mod:`ksim.locking.mutex` and :mod:`ksim.locking.rwsem`.

Observers: for each ``obs`` in ``kernel.locking.observers`` ksim calls
``obs.lock_event(event, lock, flags)`` with ``event`` one of

* ``"acquire"``   -- about to take the lock (lockdep's ``lock_acquire``; emitted *before* the
  recursion check, so a checker sees the attempt that deadlocks);
* ``"contended"`` -- the lock is held by someone else, we are going to wait;
* ``"acquired"``  -- we own it now (``lock_acquired``);
* ``"release"``   -- about to drop it (``lock_release``; the owner is still set);

and ``flags`` a mask of :data:`LOCK_TRY` (a trylock) and :data:`LOCK_READ` (a shared
acquisition), as lockdep's ``lock_acquire(map, subclass, trylock, read, ...)`` is told.  A
successful trylock emits ``acquire`` + ``acquired``; a failed one emits nothing (as lockdep).
An attempt that ends in :class:`Deadlock` emits ``acquire`` only.

Waiting: a lock that is held is handed over by its releaser to the first waiter, FIFO (the
qspinlock queue, the mutex handoff), through an event of the kernel's scheduler backend, so
under the deterministic scheduler the waiter becomes runnable at once, in simulation order.
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import TYPE_CHECKING, Any, ClassVar, Self

import attrs

from ksim.bug import Report, add_report, dump_stack_lines, report_header
from ksim.current import Task, current
from ksim.kern_levels import KERN_WARNING

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["Deadlock", "LOCK_READ", "LOCK_TRY", "LockBase", "LockState"]

LOCK_TRY = 1
LOCK_READ = 2

# Fake, stable-per-process addresses for lock lines in reports (lockdep prints %px).
_addresses = itertools.count(0xFFFF888003A1C000, 0x40)


class Deadlock(Exception):
    """The current CPU/task can never make progress; ``report`` is what the kernel printed."""

    def __init__(self, report: Report) -> None:
        super().__init__(report.title)
        self.report = report


@attrs.define(eq=False)
class LockState:
    """One kernel's lock instrumentation (``kernel.locking``).

    ``observers`` receive every lock event (lockdep-lite, the race detector, the tracer);
    ``locks_seen`` is every lock acquired at least once, for ``/proc/lock_stat``; ``lock_stat``
    is the ``kernel.lock_stat`` sysctl: collect wait and hold times (the deterministic
    scheduler turns it on; outside it virtual time rarely moves while a lock is held, and
    reading the clock is the costly part of an uncontended lock).
    """

    observers: list[Any] = attrs.Factory(list)
    locks_seen: list[LockBase] = attrs.Factory(list)
    lock_stat: bool = False


def observers() -> list[Any] | tuple[()]:
    kernel = current().kernel
    return () if kernel is None else kernel.locking.observers


def notify(obs: list[Any] | tuple[()], event: str, lock: LockBase, flags: int = 0) -> None:
    for o in obs:
        o.lock_event(event, lock, flags)


def now() -> int:
    """The running kernel's clock in virtual ns (``local_clock()``) while it collects lock
    statistics, else 0.

    Under the deterministic scheduler that clock also counts the modelled cost of each
    preemption point, so hold and wait times say how much work happened meanwhile.
    """
    kernel = current().kernel
    if kernel is None or not kernel.locking.lock_stat:
        return 0
    return kernel.local_clock()


def register_stat(lock: LockBase, task: Task) -> None:
    """The first acquisition makes a lock visible in the kernel's /proc/lock_stat."""
    kernel: Kernel | None = task.kernel
    if kernel is not None:
        kernel.locking.locks_seen.append(lock)


@attrs.define(eq=False)
class Waiter:
    task: Task
    lock: object = None
    read: bool = False
    spin: bool = False
    granted: bool = False
    event: Any = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        # The waiter's backend decides how it waits: trio's event, or the deterministic
        # scheduler's, which makes the waiter runnable at once, in simulation order.
        kernel = self.task.kernel
        if kernel is None:
            import trio
            self.event = trio.Event()
        else:
            self.event = kernel.sched.new_event(self.task, self.lock, self.spin)


@attrs.define(eq=False)
class LockBase:
    """What every lock has: a lockdep class ``name``, an owner and lock_stat counters."""

    kind: ClassVar[str] = "lock"
    # lockdep usage/wait-type suffix used in report lines (L5); fixed per lock kind.
    lockdep_suffix: ClassVar[str] = "{....}-{2:2}"

    name: str = "lock"
    owner: Task | None = attrs.field(default=None, init=False)
    owner_cpu: int = attrs.field(default=-1, init=False)
    acquisitions: int = attrs.field(default=0, init=False)
    contentions: int = attrs.field(default=0, init=False)
    wait_ns: int = attrs.field(default=0, init=False)
    hold_ns: int = attrs.field(default=0, init=False)
    max_wait_ns: int = attrs.field(default=0, init=False)
    max_hold_ns: int = attrs.field(default=0, init=False)
    min_wait_ns: int = attrs.field(default=-1, init=False)
    min_hold_ns: int = attrs.field(default=-1, init=False)
    addr: int = attrs.field(factory=lambda: next(_addresses), init=False, repr=False)
    _acquired_at: int = attrs.field(default=0, init=False, repr=False)
    _owner_where: str = attrs.field(default="", init=False, repr=False)
    _waiters: deque[Waiter] = attrs.field(factory=deque, init=False, repr=False)

    def _reinit(self, name: str | None) -> Self:
        """``spin_lock_init``/``mutex_init``/``init_rwsem``: unlocked again, counters zeroed;
        ``name`` (e.g. ``"&dev->lock"``) sets the lockdep class."""
        self._reset()
        if name is not None:
            self.name = name
        return self

    def _reset(self) -> None:
        self.owner = None
        self.owner_cpu = -1
        self.acquisitions = self.contentions = 0
        self.wait_ns = self.hold_ns = self.max_wait_ns = self.max_hold_ns = 0
        self._waiters.clear()

    def _account_wait(self, waited: int) -> None:
        self.contentions += 1
        self.wait_ns += waited
        if waited > self.max_wait_ns:
            self.max_wait_ns = waited
        if self.min_wait_ns < 0 or waited < self.min_wait_ns:
            self.min_wait_ns = waited

    def _account_hold(self, since: int) -> None:
        kernel = current().kernel  # now(), inline: every release of every lock comes here
        held = (kernel.local_clock() if kernel is not None and kernel.locking.lock_stat
                else 0) - since
        self.hold_ns += held
        if held > self.max_hold_ns:
            self.max_hold_ns = held
        if self.min_hold_ns < 0 or held < self.min_hold_ns:
            self.min_hold_ns = held

    def lock_line(self, where: str | None = None) -> str:
        """A lockdep lock line: ``ffff888003a1c018 (&dev->lock){....}-{2:2}, at: func``."""
        line = "%016x (%s)%s" % (self.addr, self.name, self.lockdep_suffix)
        if where:
            line += ", at: " + where
        return line

    # -- handing the lock over (the one waiting path of every lock type) ------------------
    def _grant(self, waiter: Waiter) -> None:
        """Make ``waiter`` the owner and wake it (subclasses with shared owners override)."""
        self.owner = waiter.task
        self.owner_cpu = waiter.task.cpu.id
        waiter.granted = True
        waiter.event.set()

    def _grant_next(self) -> None:
        """Hand a just-released lock to the first waiter, FIFO (qspinlock / mutex handoff)."""
        if self._waiters:
            self._grant(self._waiters.popleft())

    def _ungrant(self, waiter: Waiter) -> None:
        """A waiter was cancelled after being handed the lock: take it back."""
        self.owner = None
        self.owner_cpu = -1

    async def _wait_for_grant(self, waiter: Waiter) -> int:
        """Park until a releaser hands the lock to ``waiter``; returns the wait in ns."""
        start = now()
        self._waiters.append(waiter)
        try:
            await waiter.event.wait()
        except BaseException:
            if waiter.granted:
                self._ungrant(waiter)
                self._grant_next()
            else:
                self._waiters.remove(waiter)
            raise
        return now() - start


def recursion_scenario(held: str, taken: str, held_read: bool = False,
                       read: bool = False) -> list[str]:
    """print_deadlock_scenario() of a class taken twice on one CPU (L7)."""
    return [
        "other info that might help us debug this:",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0",
        "       ----",
        "  %s(%s);" % ("rlock" if held_read else "lock", held),
        "  %s(%s);" % ("rlock" if read else "lock", taken),
        "",
        " *** DEADLOCK ***",
        "",
        " May be due to missing lock nesting notation",
        "",
    ]


def recursive_locking(lock: LockBase, held_where: str, where: str) -> Deadlock:
    """lockdep's ``possible recursive locking detected`` (L7) for a sleeping lock a task
    already holds: the task would wait for itself forever.

    Reported by the sleeping locks themselves, lockdep attached or not: without lockdep the
    task would simply hang, and a hang needs a report to be seen at all.
    """
    task = current()
    me = "%s/%d" % (task.comm, task.pid)
    lines = report_header("WARNING: possible recursive locking detected") + [
        "%s is trying to acquire lock:" % me,
        lock.lock_line(where),
        "",
        "but task is already holding lock:",
        lock.lock_line(held_where),
        "",
    ] + recursion_scenario(lock.name, lock.name) + [
        "1 lock held by %s:" % me,
        " #0: " + lock.lock_line(held_where),
        "",
        "stack backtrace:",
    ] + dump_stack_lines(where)
    return Deadlock(add_report("deadlock", lines[1], lines, KERN_WARNING))

"""Spinlocks, mutexes and rw-semaphores (include/linux/spinlock.h, kernel/locking/).

Single-CPU semantics for now.  Every lock class funnels its bookkeeping through one private
pair of functions (``_*_take`` / ``_*_release`` plus :func:`_notify`), which is where lock
observers hook in: for each ``obs`` in ``current_kernel().lock_observers`` ksim calls
``obs.lock_event(event, lock)`` with ``event`` one of

* ``"acquire"``   -- about to take the lock (lockdep's ``lock_acquire``; emitted *before* the
  recursion check, so a checker sees the attempt that deadlocks);
* ``"contended"`` -- the lock is held by someone else, we are going to wait;
* ``"acquired"``  -- we own it now (``lock_acquired``);
* ``"release"``   -- about to drop it (``lock_release``; the owner is still set).

A successful ``*_trylock`` emits ``acquire`` + ``acquired``; a failed one emits nothing (as
lockdep).  An attempt that ends in :class:`Deadlock` emits ``acquire`` only.

Rules (``linux-semantics.md`` section 7):

* L1: ``spin_lock_irqsave`` saves the local interrupt state into ``flags`` and
  ``spin_unlock_irqrestore`` restores it, so they nest; ``spin_lock_irq``/``spin_unlock_irq``
  disable/enable unconditionally.  Acquiring a spinlock disables preemption; the lock is
  appended to ``current_cpu().held_locks`` (sleeping locks are per task and are not).
* L3: re-acquiring a spinlock one already holds is reported in CONFIG_DEBUG_SPINLOCK's words
  (``BUG: spinlock recursion on CPU#%d, %s/%d``) as a report of kind ``deadlock``, then
  :class:`Deadlock` is raised: that CPU can never make progress.  The same for a mutex or an
  rw-semaphore a task already holds (reported in lockdep's "possible recursive locking" shape).
* Contention by *another* task (possible only after something slept holding a spinlock,
  itself a might_sleep BUG) parks on a trio primitive and hands the lock over FIFO, so virtual
  time (MockClock autojump) keeps working.  On a single CPU that situation is what
  CONFIG_DEBUG_SPINLOCK calls ``cpu recursion``; it is reported once per lock, not fatal.

Synchronous code cannot wait, so the ``*_sync`` spinlock variants (for ksim functions that are
sync because their kernel counterpart never sleeps, e.g. ``atomic_notifier_chain_register``)
take an uncontended lock exactly like the async ones and raise :class:`Deadlock` where the
async ones would wait.

Statistics (lock_stat-lite): ``acquisitions``, ``contentions``, ``wait_ns``, ``hold_ns``,
``max_wait_ns``, ``max_hold_ns`` in virtual nanoseconds from ``trio.current_time()`` (0 outside
trio).
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import ClassVar

import attrs
import trio

from ksim.bug import Report, add_report, caller_location, cpu_pid_line, taint_string, warn
from ksim.cpu import CPU
from ksim.current import Task, current, maybe_current_kernel
from ksim.printk import KERN_EMERG, KERN_WARNING
from ksim.sched import might_sleep

__all__ = [
    "Deadlock", "LockBase", "SpinLock", "RawSpinLock", "Mutex", "RwSemaphore",
    "SPINLOCK_MAGIC",
    "DEFINE_SPINLOCK", "DEFINE_RAW_SPINLOCK", "spin_lock_init", "raw_spin_lock_init",
    "spin_lock", "spin_unlock", "spin_lock_irqsave", "spin_unlock_irqrestore", "spin_lock_irq",
    "spin_unlock_irq", "spin_lock_bh", "spin_unlock_bh", "spin_trylock", "spin_trylock_irqsave",
    "spin_is_locked", "spin_lock_sync", "spin_lock_irqsave_sync", "spin_lock_irq_sync",
    "raw_spin_lock", "raw_spin_unlock", "raw_spin_lock_irqsave", "raw_spin_unlock_irqrestore",
    "raw_spin_lock_irq", "raw_spin_unlock_irq", "raw_spin_trylock", "raw_spin_trylock_irqsave",
    "raw_spin_is_locked", "raw_spin_lock_sync", "raw_spin_lock_irqsave_sync",
    "raw_spin_lock_irq_sync",
    "DEFINE_MUTEX", "mutex_init", "mutex_lock", "mutex_unlock", "mutex_trylock", "mutex_is_locked",
    "DECLARE_RWSEM", "init_rwsem", "down_read", "up_read", "down_write", "up_write",
    "down_read_trylock", "down_write_trylock", "rwsem_is_locked",
]

SPINLOCK_MAGIC = 0xDEAD4EAD

# Fake, stable-per-process addresses for lock lines in reports (lockdep prints %px).
_addresses = itertools.count(0xFFFF888003A1C000, 0x40)


class Deadlock(Exception):
    """The current CPU/task can never make progress; ``report`` is what the kernel printed."""

    def __init__(self, report: Report) -> None:
        super().__init__(report.title)
        self.report = report


# -- shared helpers ------------------------------------------------------------------------


def _observers() -> tuple | list:
    kernel = maybe_current_kernel()
    if kernel is None:
        return ()
    return getattr(kernel, "lock_observers", ())


def _notify(observers, event: str, lock: LockBase) -> None:  # type: ignore[no-untyped-def]
    for obs in observers:
        obs.lock_event(event, lock)




def _now() -> int:
    """The running kernel's clock in virtual ns (``local_clock()``) while it collects lock
    statistics (the ``lock_stat`` sysctl), else 0: the clock read is the costly part of an
    uncontended lock.

    Under the deterministic scheduler that clock also counts the modelled cost of each
    preemption point, so hold and wait times say how much work happened meanwhile.
    """
    kernel = maybe_current_kernel()
    if kernel is None or not getattr(kernel, "lock_stat", True):
        return 0
    clock = getattr(kernel, "local_clock", None)
    return clock() if clock is not None else 0


def _ns(value: int) -> int:
    return value


def _kernel_ident() -> str:
    """lockdep's print_kernel_ident(): ``6.1.0-ksim #1 Not tainted``."""
    kernel = maybe_current_kernel()
    release = getattr(kernel, "release", "6.1.0-ksim")
    taints = getattr(kernel, "taints", "")
    return "%s #1 %s" % (release, taint_string(taints))


def _dump_stack_lines(where: str) -> list[str]:
    return [cpu_pid_line(), "Call Trace:", " <TASK>", " " + where, " </TASK>"]


def _wait_event(task: Task, lock: object, spin: bool) -> trio.Event:
    """A trio event, or the scheduler's when a deterministic scheduler drives ``task``.

    Under the scheduler, the releaser's ``set()`` makes the waiter runnable at once, in
    simulation order; a trio event would wake it in trio's own (random) order.
    """
    sched = getattr(task.kernel, "sched", None)
    if sched is not None and task.thread is not None:
        return sched.new_event(lock, spin)  # type: ignore[return-value]
    return trio.Event()


@attrs.define(eq=False)
class _Waiter:
    task: Task
    lock: object = None
    read: bool = False
    spin: bool = False
    granted: bool = False
    event: trio.Event = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self.event = _wait_event(self.task, self.lock, self.spin)


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
    _waiters: deque[_Waiter] = attrs.field(factory=deque, init=False, repr=False)

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
        held = _ns(_now() - since)
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


async def _wait_for_grant(lock: LockBase, waiter: _Waiter) -> int:
    """Park until a releaser hands ``lock`` to ``waiter``; returns the wait in ns."""
    start = _now()
    lock._waiters.append(waiter)
    try:
        await waiter.event.wait()
    except BaseException:
        if waiter.granted:
            _undo_grant(lock, waiter)
        else:
            lock._waiters.remove(waiter)
        raise
    return _ns(_now() - start)


def _undo_grant(lock: LockBase, waiter: _Waiter) -> None:
    """A waiter was cancelled after being handed the lock: pass it on."""
    if isinstance(lock, RwSemaphore) and waiter.read:
        lock.readers.pop(waiter.task, None)
    else:
        lock.owner = None
        lock.owner_cpu = -1
    _grant_next(lock)


def _grant_next(lock: LockBase) -> None:
    """Hand a just-released lock to the first waiter(s), FIFO (qspinlock / mutex handoff)."""
    waiters = lock._waiters
    if not waiters:
        return
    if isinstance(lock, RwSemaphore):
        if lock.owner is not None:
            return
        if not waiters[0].read:
            if lock.readers:
                return
            waiter = waiters.popleft()
            lock.owner = waiter.task
            lock.owner_cpu = waiter.task.cpu.id
            waiter.granted = True
            waiter.event.set()
            return
        while waiters and waiters[0].read:
            waiter = waiters.popleft()
            lock.readers[waiter.task] = lock.readers.get(waiter.task, 0) + 1
            waiter.granted = True
            waiter.event.set()
        return
    waiter = waiters.popleft()
    lock.owner = waiter.task
    lock.owner_cpu = waiter.task.cpu.id
    waiter.granted = True
    waiter.event.set()


# -- spinlocks ------------------------------------------------------------------------------


@attrs.define(eq=False)
class _SpinBase(LockBase):
    magic: int = attrs.field(default=SPINLOCK_MAGIC, init=False, repr=False)
    _cpu_bug_reported: bool = attrs.field(default=False, init=False, repr=False)

    def _reset(self) -> None:
        super()._reset()
        self._cpu_bug_reported = False


@attrs.define(eq=False)
class RawSpinLock(_SpinBase):
    """``raw_spinlock_t``: never sleeps, not even on PREEMPT_RT."""

    kind: ClassVar[str] = "raw_spinlock_t"
    lockdep_suffix: ClassVar[str] = "{....}-{2:2}"


@attrs.define(eq=False)
class SpinLock(_SpinBase):
    """``spinlock_t``."""

    kind: ClassVar[str] = "spinlock_t"
    lockdep_suffix: ClassVar[str] = "{....}-{3:3}"


def DEFINE_SPINLOCK(name: str) -> SpinLock:
    return SpinLock(name)


def DEFINE_RAW_SPINLOCK(name: str) -> RawSpinLock:
    return RawSpinLock(name)


def spin_lock_init(lock: _SpinBase, name: str | None = None) -> _SpinBase:
    """(Re)initialise ``lock`` unlocked; ``name`` (e.g. ``"&dev->lock"``) sets its class."""
    lock._reset()
    if name is not None:
        lock.name = name
    return lock


raw_spin_lock_init = spin_lock_init


def _spin_symbol(lock: _SpinBase) -> str:
    """``%pS`` of the lock: a symbol for a named static lock, else an address."""
    if lock.name.isidentifier():
        return "%s+0x0/0x18" % lock.name
    return "0x%016x" % lock.addr


def _spin_bug(lock: _SpinBase, msg: str, where: str, kind: str = "bug") -> Report:
    """lib/spinlock_debug.c spin_dump(): the BUG line, the lock line, dump_stack()."""
    task = current()
    owner = lock.owner
    lines = [
        "BUG: spinlock %s on CPU#%d, %s/%d" % (msg, task.cpu.id, task.comm, task.pid),
        " lock: %s, .magic: %08x, .owner: %s/%d, .owner_cpu: %d" % (
            _spin_symbol(lock), lock.magic, owner.comm if owner else "<none>",
            owner.pid if owner else -1, lock.owner_cpu),
    ] + _dump_stack_lines(where)
    return add_report(kind, lines[0], lines, KERN_EMERG)


def _spin_take(lock: _SpinBase, task: Task, cpu: CPU, observers, waited: int) -> None:  # type: ignore[no-untyped-def]
    lock.owner = task
    lock.owner_cpu = cpu.id
    lock.acquisitions += 1
    if lock.acquisitions == 1:
        _register_stat(lock, task)
    lock._acquired_at = _now()
    cpu.held_locks.append(lock)
    if observers:
        _notify(observers, "acquired", lock)


def _register_stat(lock: LockBase, task: Task) -> None:
    """The first acquisition makes a lock visible in the kernel's /proc/lock_stat."""
    locks = getattr(task.kernel, "locks_seen", None)
    if locks is not None:
        locks.append(lock)


def render_lock_stat(locks: list[LockBase]) -> str:
    """``/proc/lock_stat`` (kernel/locking/lockdep_proc.c, version 0.4), times in virtual us.

    ksim counts per lock *class* (the lock's name), summing instances; bounces (transfers
    between CPUs) are not tracked and print as 0.
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


def _spin_recursion(lock: _SpinBase, task: Task, where: str) -> None:
    """L3: the owner spins on its own lock; that CPU is gone."""
    raise Deadlock(_spin_bug(lock, "recursion", where, "deadlock"))


def _spin_contended_check(lock: _SpinBase, task: Task, cpu: CPU, where_depth: int) -> None:
    if lock.owner is task:
        _spin_recursion(lock, task, caller_location(where_depth + 1))
    if lock.owner_cpu == cpu.id and not lock._cpu_bug_reported:
        lock._cpu_bug_reported = True
        _spin_bug(lock, "cpu recursion", caller_location(where_depth + 1))


async def _spin_acquire(lock: _SpinBase, task: Task, cpu: CPU) -> None:
    """The one acquire path of spinlocks (preemption/irqs already handled by the caller)."""
    sched = getattr(task.kernel, "sched", None)
    if sched is not None:
        await sched.preempt_point()  # another CPU may take the lock first
    observers = _observers()
    if observers:
        _notify(observers, "acquire", lock)
    if lock.owner is None:  # fast path: with FIFO handoff, no owner means no waiters
        _spin_take(lock, task, cpu, observers, 0)
        return
    _spin_contended_check(lock, task, cpu, 3)
    if observers:
        _notify(observers, "contended", lock)
    waited = await _wait_for_grant(lock, _Waiter(task, lock, spin=True))
    lock._account_wait(waited)
    _spin_take(lock, task, cpu, observers, waited)


def _spin_acquire_sync(lock: _SpinBase, task: Task, cpu: CPU) -> None:
    observers = _observers()
    if observers:
        _notify(observers, "acquire", lock)
    if lock.owner is None:
        _spin_take(lock, task, cpu, observers, 0)
        return
    _spin_contended_check(lock, task, cpu, 3)
    # A synchronous caller cannot let the owner run: on one CPU this spins forever.
    raise Deadlock(_spin_bug(lock, "lockup suspected", caller_location(3), "deadlock"))


def _spin_release(lock: _SpinBase, task: Task, cpu: CPU) -> bool:
    """The one release path; False if the lock was not held (nothing to undo then)."""
    owner = lock.owner
    if owner is None:
        _spin_bug(lock, "already unlocked", caller_location(3))
        return False
    if owner is not task:
        _spin_bug(lock, "wrong owner", caller_location(3))
    elif lock.owner_cpu != cpu.id:
        _spin_bug(lock, "wrong CPU", caller_location(3))
    observers = _observers()
    if observers:
        _notify(observers, "release", lock)
    lock._account_hold(lock._acquired_at)
    held = owner.cpu.held_locks
    if held and held[-1] is lock:
        held.pop()
    else:
        for i in range(len(held) - 1, -1, -1):
            if held[i] is lock:
                del held[i]
                break
    lock.owner = None
    lock.owner_cpu = -1
    if lock._waiters:
        _grant_next(lock)
    return True


async def spin_lock(lock: _SpinBase) -> None:
    task = current()
    cpu = task.cpu
    cpu.preempt_count += 1
    try:
        await _spin_acquire(lock, task, cpu)
    except BaseException:
        cpu.preempt_count -= 1
        raise


def spin_unlock(lock: _SpinBase) -> None:
    task = current()
    cpu = task.cpu
    if _spin_release(lock, task, cpu) and cpu.preempt_count > 0:
        cpu.preempt_count -= 1


async def spin_lock_irqsave(lock: _SpinBase) -> bool:
    """L1: save the local irq state, disable irqs, disable preemption, acquire."""
    task = current()
    cpu = task.cpu
    flags = cpu.irqs_enabled
    cpu.irqs_enabled = False
    cpu.preempt_count += 1
    try:
        await _spin_acquire(lock, task, cpu)
    except BaseException:
        cpu.preempt_count -= 1
        cpu.irqs_enabled = flags
        raise
    return flags


def spin_unlock_irqrestore(lock: _SpinBase, flags: bool) -> None:
    """L1: release, restore the saved irq state (not unconditionally enable), preempt_enable."""
    task = current()
    cpu = task.cpu
    if _spin_release(lock, task, cpu):
        cpu.irqs_enabled = flags
        if cpu.preempt_count > 0:
            cpu.preempt_count -= 1


async def spin_lock_irq(lock: _SpinBase) -> None:
    task = current()
    cpu = task.cpu
    was = cpu.irqs_enabled
    cpu.irqs_enabled = False
    cpu.preempt_count += 1
    try:
        await _spin_acquire(lock, task, cpu)
    except BaseException:
        cpu.preempt_count -= 1
        cpu.irqs_enabled = was
        raise


def spin_unlock_irq(lock: _SpinBase) -> None:
    """Enables interrupts unconditionally (L1: wrong if they were already off)."""
    task = current()
    cpu = task.cpu
    if _spin_release(lock, task, cpu):
        cpu.irqs_enabled = True
        if cpu.preempt_count > 0:
            cpu.preempt_count -= 1


# No softirqs are simulated: _bh variants only disable preemption (as local_bh_disable does).
spin_lock_bh = spin_lock
spin_unlock_bh = spin_unlock


def spin_trylock(lock: _SpinBase) -> bool:
    task = current()
    if lock.owner is not None:
        return False
    cpu = task.cpu
    cpu.preempt_count += 1
    observers = _observers()
    if observers:
        _notify(observers, "acquire", lock)
    _spin_take(lock, task, cpu, observers, 0)
    return True


def spin_trylock_irqsave(lock: _SpinBase) -> tuple[bool, bool]:
    """``spin_trylock_irqsave(lock, flags)`` → ``(locked, flags)``; irqs restored on failure."""
    cpu = current().cpu
    flags = cpu.irqs_enabled
    cpu.irqs_enabled = False
    if spin_trylock(lock):
        return True, flags
    cpu.irqs_enabled = flags
    return False, flags


def spin_is_locked(lock: _SpinBase) -> bool:
    return lock.owner is not None


def spin_lock_sync(lock: _SpinBase) -> None:
    """spin_lock for synchronous callers: contention raises :class:`Deadlock` (see module doc)."""
    task = current()
    cpu = task.cpu
    cpu.preempt_count += 1
    try:
        _spin_acquire_sync(lock, task, cpu)
    except BaseException:
        cpu.preempt_count -= 1
        raise


def spin_lock_irqsave_sync(lock: _SpinBase) -> bool:
    task = current()
    cpu = task.cpu
    flags = cpu.irqs_enabled
    cpu.irqs_enabled = False
    cpu.preempt_count += 1
    try:
        _spin_acquire_sync(lock, task, cpu)
    except BaseException:
        cpu.preempt_count -= 1
        cpu.irqs_enabled = flags
        raise
    return flags


def spin_lock_irq_sync(lock: _SpinBase) -> None:
    task = current()
    cpu = task.cpu
    was = cpu.irqs_enabled
    cpu.irqs_enabled = False
    cpu.preempt_count += 1
    try:
        _spin_acquire_sync(lock, task, cpu)
    except BaseException:
        cpu.preempt_count -= 1
        cpu.irqs_enabled = was
        raise


# raw_spinlock_t API: identical behaviour on a !PREEMPT_RT kernel.
raw_spin_lock = spin_lock
raw_spin_unlock = spin_unlock
raw_spin_lock_irqsave = spin_lock_irqsave
raw_spin_unlock_irqrestore = spin_unlock_irqrestore
raw_spin_lock_irq = spin_lock_irq
raw_spin_unlock_irq = spin_unlock_irq
raw_spin_trylock = spin_trylock
raw_spin_trylock_irqsave = spin_trylock_irqsave
raw_spin_is_locked = spin_is_locked
raw_spin_lock_sync = spin_lock_sync
raw_spin_lock_irqsave_sync = spin_lock_irqsave_sync
raw_spin_lock_irq_sync = spin_lock_irq_sync


# -- sleeping locks: reports ----------------------------------------------------------------


def _recursive_locking(lock: LockBase, held_where: str, where: str) -> Deadlock:
    """lockdep's ``possible recursive locking detected`` (L7) for a sleeping lock a task
    already holds: the task would wait for itself forever."""
    task = current()
    me = "%s/%d" % (task.comm, task.pid)
    lines = [
        "============================================",
        "WARNING: possible recursive locking detected",
        _kernel_ident(),
        "--------------------------------------------",
        "%s is trying to acquire lock:" % me,
        lock.lock_line(where),
        "",
        "but task is already holding lock:",
        lock.lock_line(held_where),
        "",
        "other info that might help us debug this:",
        " Possible unsafe locking scenario:",
        "",
        "       CPU0",
        "       ----",
        "  lock(%s);" % lock.name,
        "  lock(%s);" % lock.name,
        "",
        " *** DEADLOCK ***",
        "",
        " May be due to missing lock nesting notation",
        "",
        "1 lock held by %s:" % me,
        " #0: " + lock.lock_line(held_where),
        "",
        "stack backtrace:",
    ] + _dump_stack_lines(where)
    return Deadlock(add_report("deadlock", lines[1], lines, KERN_WARNING))


# -- mutex ----------------------------------------------------------------------------------


@attrs.define(eq=False)
class Mutex(LockBase):
    """``struct mutex``: sleeping, owned by a task, FIFO handoff to waiters."""

    kind: ClassVar[str] = "mutex"
    lockdep_suffix: ClassVar[str] = "{+.+.}-{3:3}"


def DEFINE_MUTEX(name: str) -> Mutex:
    return Mutex(name)


def mutex_init(lock: Mutex, name: str | None = None) -> Mutex:
    lock._reset()
    if name is not None:
        lock.name = name
    return lock


def _sleeping_take(lock: LockBase, task: Task, observers, where: str) -> None:  # type: ignore[no-untyped-def]
    lock.owner = task
    lock.owner_cpu = task.cpu.id
    lock.acquisitions += 1
    if lock.acquisitions == 1:
        _register_stat(lock, task)
    lock._acquired_at = _now()
    lock._owner_where = where
    if observers:
        _notify(observers, "acquired", lock)


def _mutex_release(lock: Mutex, task: Task, where: str) -> None:
    owner = lock.owner
    if owner is not task:
        warn("DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current)", where)
        if owner is None:
            return
    observers = _observers()
    if observers:
        _notify(observers, "release", lock)
    lock._account_hold(lock._acquired_at)
    lock.owner = None
    lock.owner_cpu = -1
    if lock._waiters:
        _grant_next(lock)


async def mutex_lock(lock: Mutex) -> None:
    """might_sleep() first (a mutex in atomic context is a BUG), then acquire or wait."""
    where = caller_location(2)
    might_sleep(where)
    task = current()
    observers = _observers()
    if observers:
        _notify(observers, "acquire", lock)
    if lock.owner is None:
        _sleeping_take(lock, task, observers, where)
        return
    if lock.owner is task:
        raise _recursive_locking(lock, lock._owner_where, where)
    if observers:
        _notify(observers, "contended", lock)
    waited = await _wait_for_grant(lock, _Waiter(task, lock))
    lock._account_wait(waited)
    _sleeping_take(lock, task, observers, where)


def mutex_trylock(lock: Mutex) -> bool:
    if lock.owner is not None:
        return False
    observers = _observers()
    if observers:
        _notify(observers, "acquire", lock)
    _sleeping_take(lock, current(), observers, "")
    return True


def mutex_unlock(lock: Mutex) -> None:
    _mutex_release(lock, current(), caller_location(2))


def mutex_is_locked(lock: Mutex) -> bool:
    return lock.owner is not None


# -- rw-semaphore ---------------------------------------------------------------------------


@attrs.define(eq=False)
class RwSemaphore(LockBase):
    """``struct rw_semaphore``: many readers or one writer (``owner``); FIFO, so a waiting
    writer blocks new readers (which is why a nested down_read can deadlock)."""

    kind: ClassVar[str] = "rw_semaphore"
    lockdep_suffix: ClassVar[str] = "{++++}-{3:3}"

    readers: dict[Task, int] = attrs.field(factory=dict, init=False, repr=False)
    _reader_since: dict[Task, tuple[int, str]] = attrs.field(factory=dict, init=False,
                                                              repr=False)

    def _reset(self) -> None:
        super()._reset()
        self.readers.clear()
        self._reader_since.clear()


def DECLARE_RWSEM(name: str) -> RwSemaphore:
    return RwSemaphore(name)


def init_rwsem(sem: RwSemaphore, name: str | None = None) -> RwSemaphore:
    sem._reset()
    if name is not None:
        sem.name = name
    return sem


def _read_take(sem: RwSemaphore, task: Task, observers, where: str) -> None:  # type: ignore[no-untyped-def]
    count = sem.readers.get(task, 0)
    sem.readers[task] = count + 1
    if not count:
        sem._reader_since[task] = (_now(), where)
    sem.acquisitions += 1
    if observers:
        _notify(observers, "acquired", sem)


async def down_read(sem: RwSemaphore) -> None:
    where = caller_location(2)
    might_sleep(where)
    task = current()
    observers = _observers()
    if observers:
        _notify(observers, "acquire", sem)
    if sem.owner is task:
        raise _recursive_locking(sem, sem._owner_where, where)
    if sem.owner is None and not sem._waiters:
        _read_take(sem, task, observers, where)
        return
    if task in sem.readers:
        # We hold it for read and a writer queued behind us: it waits for us, we for it.
        raise _recursive_locking(sem, sem._reader_since[task][1], where)
    if observers:
        _notify(observers, "contended", sem)
    waited = await _wait_for_grant(sem, _Waiter(task, sem, read=True))
    sem._account_wait(waited)
    # _grant_next already counted us in sem.readers.
    sem.readers[task] -= 1
    _read_take(sem, task, observers, where)


def down_read_trylock(sem: RwSemaphore) -> bool:
    if sem.owner is not None or sem._waiters:
        return False
    observers = _observers()
    if observers:
        _notify(observers, "acquire", sem)
    _read_take(sem, current(), observers, "")
    return True


async def up_read(sem: RwSemaphore) -> None:
    _up_read(sem, current(), caller_location(2))


def _up_read(sem: RwSemaphore, task: Task, where: str) -> None:
    count = sem.readers.get(task, 0)
    if not count:
        warn("DEBUG_RWSEMS_WARN_ON(!is_rwsem_reader_owned(sem))", where)
        return
    observers = _observers()
    if observers:
        _notify(observers, "release", sem)
    if count == 1:
        del sem.readers[task]
        since = sem._reader_since.pop(task, None)
        if since is not None:
            sem._account_hold(since[0])
    else:
        sem.readers[task] = count - 1
    if not sem.readers and sem._waiters:
        _grant_next(sem)


async def down_write(sem: RwSemaphore) -> None:
    where = caller_location(2)
    might_sleep(where)
    task = current()
    observers = _observers()
    if observers:
        _notify(observers, "acquire", sem)
    if sem.owner is None and not sem.readers and not sem._waiters:
        _sleeping_take(sem, task, observers, where)
        return
    if sem.owner is task:
        raise _recursive_locking(sem, sem._owner_where, where)
    if task in sem.readers:
        raise _recursive_locking(sem, sem._reader_since[task][1], where)
    if observers:
        _notify(observers, "contended", sem)
    waited = await _wait_for_grant(sem, _Waiter(task, sem))
    sem._account_wait(waited)
    _sleeping_take(sem, task, observers, where)


def down_write_trylock(sem: RwSemaphore) -> bool:
    if sem.owner is not None or sem.readers:
        return False
    observers = _observers()
    if observers:
        _notify(observers, "acquire", sem)
    _sleeping_take(sem, current(), observers, "")
    return True


async def up_write(sem: RwSemaphore) -> None:
    _up_write(sem, current(), caller_location(2))


def _up_write(sem: RwSemaphore, task: Task, where: str) -> None:
    owner = sem.owner
    if owner is not task:
        warn("DEBUG_RWSEMS_WARN_ON(rwsem_owner(sem) != current)", where)
        if owner is None:
            return
    observers = _observers()
    if observers:
        _notify(observers, "release", sem)
    sem._account_hold(sem._acquired_at)
    sem.owner = None
    sem.owner_cpu = -1
    if sem._waiters:
        _grant_next(sem)


def rwsem_is_locked(sem: RwSemaphore) -> bool:
    return sem.owner is not None or bool(sem.readers)

"""Spinlocks (include/linux/spinlock.h, kernel/locking/spinlock.c, lib/spinlock_debug.c).

Rules (L1..L3 in docs/linux-rules.md):

* L1: ``spin_lock_irqsave`` saves the local interrupt state into ``flags`` and
  ``spin_unlock_irqrestore`` restores it, so they nest; ``spin_lock_irq``/``spin_unlock_irq``
  disable/enable unconditionally.  Acquiring a spinlock disables preemption; the lock is
  appended to ``current_cpu().held_locks``.
* L3: re-acquiring a spinlock one already holds is reported in CONFIG_DEBUG_SPINLOCK's words
  (``BUG: spinlock recursion on CPU#%d, %s/%d``) as a report of kind ``deadlock``, then
  :class:`~ksim.locking.common.Deadlock` is raised: that CPU can never make progress.
* Contention by *another* task on the same CPU (possible only after something slept holding
  a spinlock, itself a might_sleep BUG) is what CONFIG_DEBUG_SPINLOCK calls ``cpu
  recursion``; it is reported once per lock, not fatal, and the waiter is handed the lock
  FIFO when it is released.

One lock body, as trio builds ``Lock.acquire()`` on ``acquire_nowait()``: :func:`_take`
makes the caller the owner; ``spin_trylock`` is "free? then take"; the async acquisitions try
the same and otherwise wait to be handed the lock.  Each acquisition is a preemption point
*before* the attempt (another CPU may take the lock first); a release is not (the unlock
functions are sync, as in C: they never wait).

The ``*_sync`` variants are for ksim functions that are sync because they never wait and run
no driver code (``atomic_notifier_chain_register``): they take an uncontended lock exactly
like the async ones and raise :class:`Deadlock` where those would wait.
"""

from __future__ import annotations

import attrs

from ksim.bug import Report, add_report, caller_location, dump_stack_lines
from ksim.cpu import CPU
from ksim.current import Task, current
from ksim.locking.common import LOCK_TRY, Deadlock, LockBase, Waiter, notify, now, \
    observers, register_stat
from ksim.kern_levels import KERN_EMERG

__all__ = [
    "SPINLOCK_MAGIC", "RawSpinLock", "SpinLock",
    "DEFINE_SPINLOCK", "DEFINE_RAW_SPINLOCK", "spin_lock_init", "raw_spin_lock_init",
    "spin_lock", "spin_unlock", "spin_lock_irqsave", "spin_unlock_irqrestore", "spin_lock_irq",
    "spin_unlock_irq", "spin_lock_bh", "spin_unlock_bh", "spin_trylock", "spin_trylock_irqsave",
    "spin_is_locked", "spin_lock_sync", "spin_lock_irqsave_sync", "spin_lock_irq_sync",
    "raw_spin_lock", "raw_spin_unlock", "raw_spin_lock_irqsave", "raw_spin_unlock_irqrestore",
    "raw_spin_lock_irq", "raw_spin_unlock_irq", "raw_spin_trylock", "raw_spin_trylock_irqsave",
    "raw_spin_is_locked", "raw_spin_lock_sync", "raw_spin_lock_irqsave_sync",
    "raw_spin_lock_irq_sync",
]

SPINLOCK_MAGIC = 0xDEAD4EAD


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

    kind = "raw_spinlock_t"
    lockdep_suffix = "{....}-{2:2}"


@attrs.define(eq=False)
class SpinLock(_SpinBase):
    """``spinlock_t``."""

    kind = "spinlock_t"
    lockdep_suffix = "{....}-{3:3}"


def DEFINE_SPINLOCK(name: str) -> SpinLock:
    return SpinLock(name)


def DEFINE_RAW_SPINLOCK(name: str) -> RawSpinLock:
    return RawSpinLock(name)


def spin_lock_init(lock: _SpinBase, name: str | None = None) -> _SpinBase:
    """(Re)initialise ``lock`` unlocked; ``name`` (e.g. ``"&dev->lock"``) sets its class."""
    return lock._reinit(name)


raw_spin_lock_init = spin_lock_init


# -- lib/spinlock_debug.c -------------------------------------------------------------------

def _spin_symbol(lock: _SpinBase) -> str:
    """``%pS`` of the lock: a symbol for a named static lock, else an address."""
    if lock.name.isidentifier():
        return "%s+0x0/0x18" % lock.name
    return "0x%016x" % lock.addr


def _spin_bug(lock: _SpinBase, msg: str, where: str, kind: str = "bug") -> Report:
    """spin_dump(): the BUG line, the lock line, dump_stack()."""
    task = current()
    owner = lock.owner
    lines = [
        "BUG: spinlock %s on CPU#%d, %s/%d" % (msg, task.cpu.id, task.comm, task.pid),
        " lock: %s, .magic: %08x, .owner: %s/%d, .owner_cpu: %d" % (
            _spin_symbol(lock), lock.magic, owner.comm if owner else "<none>",
            owner.pid if owner else -1, lock.owner_cpu),
    ] + dump_stack_lines(where)
    return add_report(kind, lines[0], lines, KERN_EMERG)


def _contended_check(lock: _SpinBase, task: Task, cpu: CPU) -> None:
    """debug_spin_lock_before(): recursion is fatal, another task of this CPU is a BUG."""
    if lock.owner is task:
        raise Deadlock(_spin_bug(lock, "recursion", caller_location(4), "deadlock"))
    if lock.owner_cpu == cpu.id and not lock._cpu_bug_reported:
        lock._cpu_bug_reported = True
        _spin_bug(lock, "cpu recursion", caller_location(4))


# -- the lock body ----------------------------------------------------------------------------

def _take(lock: _SpinBase, task: Task, cpu: CPU, obs: list[object] | tuple[()],
          flags: int) -> None:
    """The caller owns ``lock`` now (free, or handed over by its releaser)."""
    lock.owner = task
    lock.owner_cpu = cpu.id
    lock.acquisitions += 1
    if lock.acquisitions == 1:
        register_stat(lock, task)
    lock._acquired_at = now()
    cpu.held_locks.append(lock)
    if obs:
        notify(obs, "acquired", lock, flags)


def _trylock(lock: _SpinBase, task: Task, cpu: CPU) -> bool:
    """``do_raw_spin_trylock()``: take a free lock, else fail at once (no events)."""
    if lock.owner is not None:
        return False
    obs = observers()
    if obs:
        notify(obs, "acquire", lock, LOCK_TRY)
    _take(lock, task, cpu, obs, LOCK_TRY)
    return True


def _disable(irqs_off: bool) -> tuple[Task, CPU, bool]:
    """preempt_disable(), and local_irq_save() if ``irqs_off``: what every acquisition
    does first; returns the current task, its CPU and the interrupt state before."""
    task = current()
    cpu = task.cpu
    flags = cpu.irqs_enabled
    if irqs_off:
        cpu.irqs_enabled = False
    cpu.preempt_count += 1
    return task, cpu, flags


def _acquire_free(lock: _SpinBase, irqs_off: bool) -> bool | None:
    """:func:`_acquire` whole, when it has nothing to wait for and nobody to tell: the lock
    is free, no observer watches locks (lockdep, the race detector, the tracer) and the
    scheduler backend's preemption points are no-ops (the trio backend: ``preemptible_copies``
    is False exactly there, as nothing can run between two statements of a thread).  Returns
    the interrupt state before, or None (nothing done) if the full path must run."""
    task = current()
    kernel = task.kernel
    if (lock.owner is not None or kernel is None or kernel.sched.preemptible_copies
            or kernel.locking.observers):
        return None
    cpu = task.cpu
    flags = cpu.irqs_enabled
    if irqs_off:
        cpu.irqs_enabled = False
    cpu.preempt_count += 1
    lock.owner = task
    lock.owner_cpu = cpu.id
    lock.acquisitions += 1
    if lock.acquisitions == 1:
        kernel.locking.locks_seen.append(lock)  # register_stat()
    lock._acquired_at = kernel.local_clock() if kernel.locking.lock_stat else 0  # now()
    cpu.held_locks.append(lock)
    return flags


async def _acquire(lock: _SpinBase, irqs_off: bool) -> bool:
    """The one acquire path: disable preemption (and local interrupts if ``irqs_off``),
    then take the lock or wait to be handed it; returns the interrupt state before.

    The acquisition is a preemption point *before* the attempt: another CPU may take the
    lock first.  If the wait fails (a deadlock, a cancellation) the CPU state is restored.
    """
    task, cpu, flags = _disable(irqs_off)
    try:
        kernel = task.kernel
        if kernel is not None:
            await kernel.sched.preempt_point()
        obs = observers()
        if obs:
            notify(obs, "acquire", lock)
        if lock.owner is None:  # with FIFO handoff, no owner means no waiters
            _take(lock, task, cpu, obs, 0)
            return flags
        _contended_check(lock, task, cpu)
        if obs:
            notify(obs, "contended", lock)
        waited = await lock._wait_for_grant(Waiter(task, lock, spin=True))
        lock._account_wait(waited)
        _take(lock, task, cpu, obs, 0)
    except BaseException:
        cpu.preempt_count -= 1
        cpu.irqs_enabled = flags
        raise
    return flags


def _acquire_sync(lock: _SpinBase, irqs_off: bool) -> bool:
    """:func:`_acquire` for a synchronous caller: contention cannot be waited out."""
    task, cpu, flags = _disable(irqs_off)
    obs = observers()
    if obs:
        notify(obs, "acquire", lock)
    if lock.owner is None:
        _take(lock, task, cpu, obs, 0)
        return flags
    try:
        _contended_check(lock, task, cpu)
        # A synchronous caller cannot let the owner run: on one CPU this spins forever.
        raise Deadlock(_spin_bug(lock, "lockup suspected", caller_location(3), "deadlock"))
    finally:
        cpu.preempt_count -= 1
        cpu.irqs_enabled = flags


def _free(lock: _SpinBase, held: list[LockBase]) -> None:
    """The hold accounted, the lock off its owner CPU's ``held`` list (nearly always the
    last entry), and free."""
    lock._account_hold(lock._acquired_at)
    if held and held[-1] is lock:
        held.pop()
    else:
        for i in range(len(held) - 1, -1, -1):
            if held[i] is lock:
                del held[i]
                break
    lock.owner = None
    lock.owner_cpu = -1


def _release(lock: _SpinBase, task: Task, cpu: CPU) -> bool:
    """The one release path; False if the lock was not held (nothing to undo then)."""
    owner = lock.owner
    if owner is None:
        _spin_bug(lock, "already unlocked", caller_location(4))
        return False
    if owner is not task:
        _spin_bug(lock, "wrong owner", caller_location(4))
    elif lock.owner_cpu != cpu.id:
        _spin_bug(lock, "wrong CPU", caller_location(4))
    obs = observers()
    if obs:
        notify(obs, "release", lock)
    _free(lock, owner.cpu.held_locks)
    if lock._waiters:
        lock._grant_next()
    return True


# -- the API ----------------------------------------------------------------------------------

async def spin_lock(lock: _SpinBase) -> None:
    if _acquire_free(lock, False) is None:
        await _acquire(lock, False)


def _unlock(lock: _SpinBase, irqs: bool | None) -> None:
    """Release, then restore the interrupt state to ``irqs`` (None: leave it), and let
    preemption back on."""
    task = current()
    cpu = task.cpu
    kernel = task.kernel
    if (lock.owner is task and lock.owner_cpu == cpu.id and not lock._waiters
            and kernel is not None and not kernel.locking.observers):
        # _release() when it has no bug to report, no observer to tell and no waiter to
        # hand the lock to
        _free(lock, cpu.held_locks)
    elif not _release(lock, task, cpu):
        return
    if irqs is not None:
        cpu.irqs_enabled = irqs
    if cpu.preempt_count > 0:
        cpu.preempt_count -= 1


def spin_unlock(lock: _SpinBase) -> None:
    _unlock(lock, None)


async def spin_lock_irqsave(lock: _SpinBase) -> bool:
    """L1: save the local irq state, disable irqs, disable preemption, acquire."""
    flags = _acquire_free(lock, True)
    if flags is None:
        return await _acquire(lock, True)
    return flags


def spin_unlock_irqrestore(lock: _SpinBase, flags: bool) -> None:
    """L1: release, restore the saved irq state (not unconditionally enable), preempt_enable."""
    _unlock(lock, flags)


async def spin_lock_irq(lock: _SpinBase) -> None:
    if _acquire_free(lock, True) is None:
        await _acquire(lock, True)


def spin_unlock_irq(lock: _SpinBase) -> None:
    """Enables interrupts unconditionally (L1: wrong if they were already off)."""
    _unlock(lock, True)


# No softirqs are simulated: _bh variants only disable preemption (as local_bh_disable does).
spin_lock_bh = spin_lock
spin_unlock_bh = spin_unlock


def spin_trylock(lock: _SpinBase) -> bool:
    task = current()
    cpu = task.cpu
    cpu.preempt_count += 1
    if _trylock(lock, task, cpu):
        return True
    cpu.preempt_count -= 1
    return False


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
    _acquire_sync(lock, False)


def spin_lock_irqsave_sync(lock: _SpinBase) -> bool:
    return _acquire_sync(lock, True)


def spin_lock_irq_sync(lock: _SpinBase) -> None:
    _acquire_sync(lock, True)


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

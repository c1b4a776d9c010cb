"""Mutexes (kernel/locking/mutex.c, include/linux/mutex.h).

A mutex is a sleeping lock owned by a task: ``mutex_lock`` starts with ``might_sleep()`` (a
mutex in atomic context is a BUG), then takes the lock or waits to be handed it (FIFO, the
mutex handoff).  Taking a mutex the task already holds can never succeed: it is reported as
lockdep's ``possible recursive locking detected`` (L7) and raises
:class:`~ksim.locking.common.Deadlock`.  ``mutex_unlock`` by a task that does not own the
lock is the ``DEBUG_LOCKS_WARN_ON`` of CONFIG_DEBUG_MUTEXES.

One lock body, as in :mod:`ksim.locking.spinlock`: :func:`_take` is shared by
``mutex_trylock`` and ``mutex_lock``.
"""

from __future__ import annotations

import attrs

from ksim.bug import caller_location, warn
from ksim.current import Task, current
from ksim.locking.common import LOCK_TRY, LockBase, Waiter, notify, now, observers, \
    recursive_locking, register_stat
from ksim.sched import might_sleep

__all__ = ["Mutex", "DEFINE_MUTEX", "mutex_init", "mutex_lock", "mutex_unlock", "mutex_trylock",
           "mutex_is_locked"]


@attrs.define(eq=False)
class Mutex(LockBase):
    """``struct mutex``: sleeping, owned by a task, FIFO handoff to waiters."""

    kind = "mutex"
    lockdep_suffix = "{+.+.}-{3:3}"


def DEFINE_MUTEX(name: str) -> Mutex:
    return Mutex(name)


def mutex_init(lock: Mutex, name: str | None = None) -> Mutex:
    return lock._reinit(name)


def _take(lock: LockBase, task: Task, obs: list[object] | tuple[()], where: str,
          flags: int) -> None:
    """The caller owns ``lock`` now (a writer of an rw-semaphore takes it the same way)."""
    lock.owner = task
    lock.owner_cpu = task.cpu.id
    lock.acquisitions += 1
    if lock.acquisitions == 1:
        register_stat(lock, task)
    lock._acquired_at = now()
    lock._owner_where = where
    if obs:
        notify(obs, "acquired", lock, flags)


def sleeping_acquire(lock: LockBase, flags: int) -> tuple[str, Task, list[object] | tuple[()]]:
    """What every sleeping lock does first (mutex_lock, down_read, down_write): note the
    call site, might_sleep(), tell the observers; returns (where, task, observers)."""
    where = caller_location(3)
    might_sleep(where)
    obs = observers()
    if obs:
        notify(obs, "acquire", lock, flags)
    return where, current(), obs


async def mutex_lock(lock: Mutex) -> None:
    where, task, obs = sleeping_acquire(lock, 0)
    if lock.owner is None:
        _take(lock, task, obs, where, 0)
        return
    if lock.owner is task:
        raise recursive_locking(lock, lock._owner_where, where)
    if obs:
        notify(obs, "contended", lock)
    waited = await lock._wait_for_grant(Waiter(task, lock))
    lock._account_wait(waited)
    _take(lock, task, obs, where, 0)


def mutex_trylock(lock: Mutex) -> bool:
    if lock.owner is not None:
        return False
    obs = observers()
    if obs:
        notify(obs, "acquire", lock, LOCK_TRY)
    _take(lock, current(), obs, "", LOCK_TRY)
    return True


def _release(lock: LockBase, warning: str) -> None:
    """The owner lets go and hands the lock to the first waiter; a release by another task
    is CONFIG_DEBUG_MUTEXES' / DEBUG_RWSEMS' warning (an rwsem writer releases this way)."""
    task = current()
    owner = lock.owner
    if owner is not task:
        warn(warning, caller_location(3))
        if owner is None:
            return
    obs = observers()
    if obs:
        notify(obs, "release", lock)
    lock._account_hold(lock._acquired_at)
    lock.owner = None
    lock.owner_cpu = -1
    if lock._waiters:
        lock._grant_next()


def mutex_unlock(lock: Mutex) -> None:
    _release(lock, "DEBUG_LOCKS_WARN_ON(__owner_task(owner) != current)")


def mutex_is_locked(lock: Mutex) -> bool:
    return lock.owner is not None

"""Read-write semaphores (kernel/locking/rwsem.c, include/linux/rwsem.h).

Many readers or one writer (``owner``); waiters queue FIFO, so a waiting writer blocks new
readers, which is why a nested ``down_read`` can deadlock against a writer queued between the
two (reported as lockdep's recursive locking, L7).  ``down_read``/``down_write`` may sleep and
start with ``might_sleep()``; ``up_read``/``up_write`` never wait and are sync, as in C.

The write side shares the mutex's lock body (:func:`ksim.locking.mutex._take`); the read side
has its own, since a reader is counted rather than owning the lock.
"""

from __future__ import annotations

import attrs

from ksim.bug import caller_location, warn
from ksim.current import Task, current
from ksim.locking.common import LOCK_READ, LOCK_TRY, LockBase, Waiter, notify, now, \
    observers, recursive_locking
from ksim.locking.mutex import _release as _write_release
from ksim.locking.mutex import _take as _write_take
from ksim.locking.mutex import sleeping_acquire

__all__ = ["RwSemaphore", "DECLARE_RWSEM", "init_rwsem", "down_read", "up_read", "down_write",
           "up_write", "down_read_trylock", "down_write_trylock", "rwsem_is_locked"]


@attrs.define(eq=False)
class RwSemaphore(LockBase):
    """``struct rw_semaphore``: many readers or one writer (``owner``); FIFO."""

    kind = "rw_semaphore"
    lockdep_suffix = "{++++}-{3:3}"

    readers: dict[Task, int] = attrs.field(factory=dict, init=False, repr=False)
    _reader_since: dict[Task, tuple[int, str]] = attrs.field(factory=dict, init=False,
                                                              repr=False)

    def _reset(self) -> None:
        super()._reset()
        self.readers.clear()
        self._reader_since.clear()

    def _grant_next(self) -> None:
        """A writer at the head gets the semaphore alone; readers at the head all at once."""
        waiters = self._waiters
        if not waiters or self.owner is not None:
            return
        if not waiters[0].read:
            if not self.readers:
                self._grant(waiters.popleft())
            return
        while waiters and waiters[0].read:
            waiter = waiters.popleft()
            self.readers[waiter.task] = self.readers.get(waiter.task, 0) + 1
            waiter.granted = True
            waiter.event.set()

    def _ungrant(self, waiter: Waiter) -> None:
        if waiter.read:
            self.readers.pop(waiter.task, None)
        else:
            super()._ungrant(waiter)


def DECLARE_RWSEM(name: str) -> RwSemaphore:
    return RwSemaphore(name)


def init_rwsem(sem: RwSemaphore, name: str | None = None) -> RwSemaphore:
    return sem._reinit(name)


def _read_take(sem: RwSemaphore, task: Task, obs: list[object] | tuple[()], where: str,
               flags: int) -> None:
    count = sem.readers.get(task, 0)
    sem.readers[task] = count + 1
    if not count:
        sem._reader_since[task] = (now(), where)
    sem.acquisitions += 1
    if obs:
        notify(obs, "acquired", sem, flags)


async def down_read(sem: RwSemaphore) -> None:
    where, task, obs = sleeping_acquire(sem, LOCK_READ)
    if sem.owner is task:
        raise recursive_locking(sem, sem._owner_where, where)
    if sem.owner is None and not sem._waiters:
        _read_take(sem, task, obs, where, LOCK_READ)
        return
    if task in sem.readers:
        # We hold it for read and a writer queued behind us: it waits for us, we for it.
        raise recursive_locking(sem, sem._reader_since[task][1], where)
    if obs:
        notify(obs, "contended", sem, LOCK_READ)
    waited = await sem._wait_for_grant(Waiter(task, sem, read=True))
    sem._account_wait(waited)
    sem.readers[task] -= 1  # the grant already counted us
    _read_take(sem, task, obs, where, LOCK_READ)


def down_read_trylock(sem: RwSemaphore) -> bool:
    if sem.owner is not None or sem._waiters:
        return False
    obs = observers()
    if obs:
        notify(obs, "acquire", sem, LOCK_TRY | LOCK_READ)
    _read_take(sem, current(), obs, "", LOCK_TRY | LOCK_READ)
    return True


def up_read(sem: RwSemaphore) -> None:
    task = current()
    count = sem.readers.get(task, 0)
    if not count:
        warn("DEBUG_RWSEMS_WARN_ON(!is_rwsem_reader_owned(sem))", caller_location(2))
        return
    obs = observers()
    if obs:
        notify(obs, "release", sem, LOCK_READ)
    if count == 1:
        del sem.readers[task]
        since = sem._reader_since.pop(task, None)
        if since is not None:
            sem._account_hold(since[0])
    else:
        sem.readers[task] = count - 1
    if not sem.readers and sem._waiters:
        sem._grant_next()


async def down_write(sem: RwSemaphore) -> None:
    where, task, obs = sleeping_acquire(sem, 0)
    if sem.owner is None and not sem.readers and not sem._waiters:
        _write_take(sem, task, obs, where, 0)
        return
    if sem.owner is task:
        raise recursive_locking(sem, sem._owner_where, where)
    if task in sem.readers:
        raise recursive_locking(sem, sem._reader_since[task][1], where)
    if obs:
        notify(obs, "contended", sem)
    waited = await sem._wait_for_grant(Waiter(task, sem))
    sem._account_wait(waited)
    _write_take(sem, task, obs, where, 0)


def down_write_trylock(sem: RwSemaphore) -> bool:
    if sem.owner is not None or sem.readers:
        return False
    obs = observers()
    if obs:
        notify(obs, "acquire", sem, LOCK_TRY)
    _write_take(sem, current(), obs, "", LOCK_TRY)
    return True


def up_write(sem: RwSemaphore) -> None:
    _write_release(sem, "DEBUG_RWSEMS_WARN_ON(rwsem_owner(sem) != current)")


def rwsem_is_locked(sem: RwSemaphore) -> bool:
    return sem.owner is not None or bool(sem.readers)

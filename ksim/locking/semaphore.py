"""Counting semaphores (kernel/locking/semaphore.c, include/linux/semaphore.h).

A semaphore has a count instead of an owner: ``down()`` takes one unit or sleeps until
``up()`` hands one over (FIFO), ``down_trylock()`` takes one or fails at once and returns 1
on *failure*, as in C, and ``up()`` may come from any task.  printk's ``console_sem`` is one
(a binary semaphore used as the console lock), and the reason console locking looks as it
does: whoever holds it prints, and the lock can be handed from one task to another.

For the checkers a binary semaphore is a lock: the task that took the unit is ``owner``
(lockdep and the race detector see ``acquire``/``acquired``/``release`` events for it).
``transfer`` hands the held unit to another task without an ``up()`` (printk's console_owner
hand-off): the releaser's ``release`` and the receiver's ``acquired`` are both reported.
"""

from __future__ import annotations

import attrs

from ksim.current import Task, current
from ksim.locking.common import LOCK_TRY, LockBase, Waiter, notify, now, observers
from ksim.locking.mutex import sleeping_acquire

__all__ = ["DEFINE_SEMAPHORE", "Semaphore", "accept_transfer", "down", "down_trylock",
           "sema_init", "transfer", "up"]


@attrs.define(eq=False)
class Semaphore(LockBase):
    """``struct semaphore``."""

    kind = "semaphore"
    lockdep_suffix = "{+.+.}-{0:0}"

    count: int = 1


def DEFINE_SEMAPHORE(name: str, count: int = 1) -> Semaphore:
    return Semaphore(name, count)


def sema_init(sem: Semaphore, val: int, name: str | None = None) -> Semaphore:
    sem._reinit(name)
    sem.count = val
    return sem


def _take(sem: Semaphore, task: Task, flags: int) -> None:
    """``task`` (current) has the unit: it owns ``sem`` now.  register_stat(), now() and
    observers() inline, from ``task``'s kernel: printk takes console_sem for every record."""
    sem.owner = task
    sem.owner_cpu = task.cpu.id
    sem.acquisitions += 1
    kernel = task.kernel
    if kernel is None:
        sem._acquired_at = 0
        return
    locking = kernel.locking
    if sem.acquisitions == 1:
        locking.locks_seen.append(sem)
    sem._acquired_at = kernel.local_clock() if locking.lock_stat else 0
    obs = locking.observers
    if obs:
        notify(obs, "acquired", sem, flags)


async def down(sem: Semaphore) -> None:
    """Take a unit, sleeping until one is free (might_sleep first)."""
    _where, task, obs = sleeping_acquire(sem, 0)
    if sem.count > 0:
        sem.count -= 1
        _take(sem, task, 0)
        return
    if obs:
        notify(obs, "contended", sem)
    waited = await sem._wait_for_grant(Waiter(task, sem))
    sem._account_wait(waited)
    _take(sem, task, 0)


def down_trylock(sem: Semaphore) -> int:
    """0 if a unit was taken, 1 if none was free (the C convention)."""
    if sem.count <= 0:
        return 1
    task = current()
    kernel = task.kernel
    if kernel is not None and kernel.locking.observers:
        notify(kernel.locking.observers, "acquire", sem, LOCK_TRY)
    sem.count -= 1
    _take(sem, task, LOCK_TRY)
    return 0


def up(sem: Semaphore) -> None:
    """Give a unit back: to the first waiter if there is one."""
    if sem.owner is not None:
        kernel = current().kernel
        if kernel is not None and kernel.locking.observers:
            notify(kernel.locking.observers, "release", sem)
        sem._account_hold(sem._acquired_at)
    sem.owner = None
    sem.owner_cpu = -1
    if sem._waiters:
        sem._grant_next()
    else:
        sem.count += 1


def transfer(sem: Semaphore, to: Task) -> None:
    """Hand the held unit to ``to`` without an up(), in the giver's context: printk's
    console_owner hand-off, where the spinning waiter becomes the console lock's holder
    (and will up() it).  The receiver then calls :func:`accept_transfer`."""
    obs = observers()
    if obs and sem.owner is not None:
        notify(obs, "release", sem)
    if sem.owner is not None:
        sem._account_hold(sem._acquired_at)
    sem.owner = to
    sem.owner_cpu = to.cpu.id


def accept_transfer(sem: Semaphore) -> None:
    """The receiver's side of :func:`transfer`: lockdep sees a trylock (``mutex_acquire(...,
    trylock=1)`` in console_trylock_spinning())."""
    task = current()
    obs = observers()
    if obs:
        notify(obs, "acquire", sem, LOCK_TRY)
    sem.acquisitions += 1
    sem._acquired_at = now()
    if obs:
        notify(obs, "acquired", sem, LOCK_TRY)
    assert sem.owner is task

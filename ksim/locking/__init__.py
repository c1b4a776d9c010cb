"""Locks (kernel/locking/): spinlocks, mutexes, rw-semaphores, and what they share.

The package is split as kernel/locking/ is: :mod:`~ksim.locking.spinlock`,
:mod:`~ksim.locking.mutex`, :mod:`~ksim.locking.rwsem`, the validator
:mod:`~ksim.locking.lockdep` and its ``/proc/lock_stat`` (:mod:`~ksim.locking.lockdep_proc`);
:mod:`~ksim.locking.common` holds what every lock has (a lockdep class, an owner, lock_stat
counters, the FIFO handoff to waiters and the observer hooks).  The API is re-exported here.

Every lock acquisition that can wait is ``async`` (it is a preemption point); trylocks and
releases never wait and are plain functions, as in C.
"""

from ksim.locking.common import LOCK_READ, LOCK_TRY, Deadlock, LockBase, LockState
from ksim.locking.mutex import (
    DEFINE_MUTEX, Mutex, mutex_init, mutex_is_locked, mutex_lock, mutex_trylock, mutex_unlock,
)
from ksim.locking.rwsem import (
    DECLARE_RWSEM, RwSemaphore, down_read, down_read_trylock, down_write, down_write_trylock,
    init_rwsem, rwsem_is_locked, up_read, up_write,
)
from ksim.locking.spinlock import (
    DEFINE_RAW_SPINLOCK, DEFINE_SPINLOCK, SPINLOCK_MAGIC, RawSpinLock, SpinLock,
    raw_spin_is_locked, raw_spin_lock, raw_spin_lock_init, raw_spin_lock_irq,
    raw_spin_lock_irq_sync, raw_spin_lock_irqsave, raw_spin_lock_irqsave_sync,
    raw_spin_lock_sync, raw_spin_trylock, raw_spin_trylock_irqsave, raw_spin_unlock,
    raw_spin_unlock_irq, raw_spin_unlock_irqrestore, spin_is_locked, spin_lock, spin_lock_bh,
    spin_lock_init, spin_lock_irq, spin_lock_irq_sync, spin_lock_irqsave,
    spin_lock_irqsave_sync, spin_lock_sync, spin_trylock, spin_trylock_irqsave, spin_unlock,
    spin_unlock_bh, spin_unlock_irq, spin_unlock_irqrestore,
)

__all__ = [
    "LOCK_READ", "LOCK_TRY", "Deadlock", "LockBase", "LockState",
    "DEFINE_MUTEX", "Mutex", "mutex_init", "mutex_is_locked", "mutex_lock", "mutex_trylock",
    "mutex_unlock",
    "DECLARE_RWSEM", "RwSemaphore", "down_read", "down_read_trylock", "down_write",
    "down_write_trylock", "init_rwsem", "rwsem_is_locked", "up_read", "up_write",
    "DEFINE_RAW_SPINLOCK", "DEFINE_SPINLOCK", "SPINLOCK_MAGIC", "RawSpinLock", "SpinLock",
    "raw_spin_is_locked", "raw_spin_lock", "raw_spin_lock_init", "raw_spin_lock_irq",
    "raw_spin_lock_irq_sync", "raw_spin_lock_irqsave", "raw_spin_lock_irqsave_sync",
    "raw_spin_lock_sync", "raw_spin_trylock", "raw_spin_trylock_irqsave", "raw_spin_unlock",
    "raw_spin_unlock_irq", "raw_spin_unlock_irqrestore", "spin_is_locked", "spin_lock",
    "spin_lock_bh", "spin_lock_init", "spin_lock_irq", "spin_lock_irq_sync",
    "spin_lock_irqsave", "spin_lock_irqsave_sync", "spin_lock_sync", "spin_trylock",
    "spin_trylock_irqsave", "spin_unlock", "spin_unlock_bh", "spin_unlock_irq",
    "spin_unlock_irqrestore",
]

"""Notifier chains (kernel/notifier.c, include/linux/notifier.h).

A chain is a singly linked list of :class:`NotifierBlock` (``nb.next``) sorted by priority,
walked exactly as the kernel walks it: the walker reads ``nb.next`` *before* calling ``nb``
(N8), which gives N12/N13 for free: a block that unregisters itself or its successor does not
break the walk (the successor is still called in this pass), a block linked right after the
current one is missed, one linked after the already-fetched successor is seen.
``*_unregister`` never clears ``nb.next``, as in C.

Sync vs async follows the project's rule: a function is ``async`` iff it can be a preemption
point or run driver code.  ``atomic_/raw_notifier_chain_register`` and
``raw_notifier_chain_unregister`` only link a block (under a spinlock that is never
contended for long) and are plain functions; blocking/SRCU register and unregister (a
sleeping lock), ``atomic_notifier_chain_unregister`` (``synchronize_rcu``) and every
``*_call_chain`` (it runs the callbacks) are async.

Callbacks are ``async def (nb, action, data) -> int``, checked when the block is
registered.  ``None`` is accepted as NOTIFY_DONE (a Python function that forgets to return).

Unregistering from inside a walk of the same kind of chain (N12) is the kernel's deadlock and
is reported in its words, then :class:`~ksim.locking.Deadlock` is raised out of the callback
(the task would never return; the walk's own locks are released on the way out):

* atomic: the block *is* unlinked (the kernel unlinks under the spinlock, then calls
  ``synchronize_rcu()``), which is safe for the walker because it already fetched ``next``;
  ``synchronize_rcu()`` inside an RCU read section then reports might_sleep's ``BUG: sleeping
  function called from invalid context`` plus lockdep-RCU's ``WARNING: suspicious RCU usage``
  / ``Illegal synchronize_rcu() in RCU read-side critical section!`` (kind ``deadlock``).
* SRCU: likewise unlinked, then ``Illegal synchronize_srcu() in same-type SRCU (or in RCU)
  read-side critical section!``.
* blocking: *not* unlinked: ``down_write`` on the rwsem the walker holds for read never
  succeeds; lockdep's ``possible recursive locking detected`` (kind ``deadlock``).  The same
  happens to a *register* from inside a blocking walk.  While ``system_state`` is
  SYSTEM_BOOTING blocking/SRCU register/unregister take no lock (as in C), so raw rules apply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import attrs
import trio

from ksim.bug import Report, add_report, caller_location, dump_stack_lines, is_driver_bug, report_header, \
    warn
from ksim.current import KernelGlobal, Task, current, current_cpu, current_kernel, deref, \
    maybe_current_kernel
from ksim.errno import EBUSY, EEXIST, ENOENT
from ksim.init import SYSTEM_BOOTING, require_async
from ksim.kern_levels import KERN_WARNING
from ksim.locking import (
    Deadlock, Mutex, RwSemaphore, SpinLock, down_read, down_write, mutex_lock, mutex_unlock,
    spin_lock_irqsave_sync, spin_unlock_irqrestore, up_read, up_write,
)
from ksim.preempt import rcu_read_lock, rcu_read_unlock
from ksim.sched import might_sleep

__all__ = [
    "NOTIFY_DONE", "NOTIFY_OK", "NOTIFY_STOP_MASK", "NOTIFY_BAD", "NOTIFY_STOP",
    "INT_MIN", "INT_MAX", "notifier_from_errno", "notifier_to_errno",
    "NotifierBlock", "AtomicNotifierHead", "BlockingNotifierHead", "RawNotifierHead",
    "SrcuNotifierHead", "ATOMIC_NOTIFIER_HEAD", "BLOCKING_NOTIFIER_HEAD", "RAW_NOTIFIER_HEAD",
    "srcu_init_notifier_head", "srcu_cleanup_notifier_head",
    "atomic_notifier_chain_register", "atomic_notifier_chain_register_unique_prio",
    "atomic_notifier_chain_unregister", "atomic_notifier_call_chain",
    "atomic_notifier_call_chain_is_empty",
    "blocking_notifier_chain_register", "blocking_notifier_chain_register_unique_prio",
    "blocking_notifier_chain_unregister", "blocking_notifier_call_chain",
    "blocking_notifier_call_chain_robust",
    "raw_notifier_chain_register", "raw_notifier_chain_unregister", "raw_notifier_call_chain",
    "raw_notifier_call_chain_robust",
    "srcu_notifier_chain_register", "srcu_notifier_chain_unregister", "srcu_notifier_call_chain",
    "notifier_call_chain", "StandardChains", "Deadlock",
    "DIE_OOPS", "DIE_INT3", "DIE_DEBUG", "DIE_PANIC", "DIE_NMI", "DIE_DIE", "DIE_KERNELDEBUG",
    "DIE_TRAP", "DIE_GPF", "DIE_CALL", "DIE_PAGE_FAULT", "DIE_NMIUNKNOWN",
    "SYS_DOWN", "SYS_RESTART", "SYS_HALT", "SYS_POWER_OFF",
]

# N7 ---------------------------------------------------------------------------------------
NOTIFY_DONE = 0x0000
NOTIFY_OK = 0x0001
NOTIFY_STOP_MASK = 0x8000
NOTIFY_BAD = NOTIFY_STOP_MASK | 0x0002
NOTIFY_STOP = NOTIFY_OK | NOTIFY_STOP_MASK

INT_MAX = 2**31 - 1
INT_MIN = -(2**31)

# N16: x86 enum die_val.
DIE_OOPS = 1
DIE_INT3 = 2
DIE_DEBUG = 3
DIE_PANIC = 4
DIE_NMI = 5
DIE_DIE = 6
DIE_KERNELDEBUG = 7
DIE_TRAP = 8
DIE_GPF = 9
DIE_CALL = 10
DIE_PAGE_FAULT = 11
DIE_NMIUNKNOWN = 12

# N15: reboot notifier actions.
SYS_DOWN = 0x0001
SYS_RESTART = SYS_DOWN
SYS_HALT = 0x0002
SYS_POWER_OFF = 0x0003


def notifier_from_errno(err: int) -> int:
    """N10: 0 → NOTIFY_OK, a negative errno → ``NOTIFY_STOP_MASK | (NOTIFY_OK - err)``."""
    if err:
        return NOTIFY_STOP_MASK | (NOTIFY_OK - err)
    return NOTIFY_OK


def notifier_to_errno(ret: int) -> int:
    """N10: NOTIFY_BAD → -EPERM; NOTIFY_OK/STOP/DONE → 0."""
    ret &= ~NOTIFY_STOP_MASK
    return NOTIFY_OK - ret if ret > NOTIFY_OK else 0


NotifierFn = Callable[["NotifierBlock", int, Any], Awaitable["int | None"]]


@attrs.define(eq=False)
class NotifierBlock:
    """``struct notifier_block`` (N1)."""

    notifier_call: NotifierFn
    priority: int = 0
    next: NotifierBlock | None = attrs.field(default=None, kw_only=True, repr=False)


# Heads (N2) -------------------------------------------------------------------------------
# A head argument may be the head itself or a kernel global naming the current kernel's
# (``panic_notifier_list``): see ksim.current.KernelGlobal.


class _ReadSide:
    """Readers of one chain, for RCU/SRCU grace periods: ``synchronize`` waits until every
    walker that was inside when it was called has left (later walkers do not delay it)."""

    __slots__ = ("_active", "_next", "_lot")

    def __init__(self) -> None:
        self._active: dict[int, Task] = {}
        self._next = 0
        self._lot = trio.lowlevel.ParkingLot()

    def enter(self, task: Task) -> int:
        token = self._next
        self._next = token + 1
        self._active[token] = task
        return token

    def exit(self, token: int) -> None:
        del self._active[token]
        if self._lot:
            self._lot.unpark_all()

    def held_by(self, task: Task) -> bool:
        return any(t is task for t in self._active.values())

    async def synchronize(self) -> None:
        pending = set(self._active)
        if not pending:
            await trio.lowlevel.checkpoint()
            return
        while pending:
            await self._lot.park()
            pending.intersection_update(self._active)


@attrs.define(eq=False)
class _NotifierHead:
    name: str = ""
    head: NotifierBlock | None = attrs.field(default=None, init=False)

    def blocks(self) -> list[NotifierBlock]:
        """The chain in call order (stops at a cycle left by a double registration, N4)."""
        out: list[NotifierBlock] = []
        seen: set[int] = set()
        nb = self.head
        while nb is not None and id(nb) not in seen:
            seen.add(id(nb))
            out.append(nb)
            nb = nb.next
        return out

    def __iter__(self) -> Iterator[NotifierBlock]:
        return iter(self.blocks())

    def __len__(self) -> int:
        return len(self.blocks())

    def _lock_name(self, field: str) -> str:
        return "%s.%s" % (self.name, field) if self.name else "&nh->%s" % field


@attrs.define(eq=False)
class AtomicNotifierHead(_NotifierHead):
    """{spinlock, head}: register in any context, walk lock-free under rcu_read_lock()."""

    lock: SpinLock = attrs.field(
        default=attrs.Factory(lambda self: SpinLock(self._lock_name("lock")), takes_self=True))
    _rcu: _ReadSide = attrs.field(factory=_ReadSide, init=False, repr=False)


@attrs.define(eq=False)
class BlockingNotifierHead(_NotifierHead):
    """{rw-semaphore, head}: walkers share the read side, (un)registration writes."""

    rwsem: RwSemaphore = attrs.field(
        default=attrs.Factory(lambda self: RwSemaphore(self._lock_name("rwsem")),
                              takes_self=True))


@attrs.define(eq=False)
class RawNotifierHead(_NotifierHead):
    """Head only: the caller does all locking."""


@attrs.define(eq=False)
class SrcuNotifierHead(_NotifierHead):
    """{mutex, srcu_struct, head}; constructing one is ``srcu_init_notifier_head``."""

    mutex: Mutex = attrs.field(
        default=attrs.Factory(lambda self: Mutex(self._lock_name("mutex")), takes_self=True))
    srcu: _ReadSide = attrs.field(factory=_ReadSide, init=False, repr=False)


AtomicHeadArg = AtomicNotifierHead | KernelGlobal[AtomicNotifierHead]
BlockingHeadArg = BlockingNotifierHead | KernelGlobal[BlockingNotifierHead]
RawHeadArg = RawNotifierHead | KernelGlobal[RawNotifierHead]
SrcuHeadArg = SrcuNotifierHead | KernelGlobal[SrcuNotifierHead]


def ATOMIC_NOTIFIER_HEAD(name: str) -> AtomicNotifierHead:
    return AtomicNotifierHead(name)


def BLOCKING_NOTIFIER_HEAD(name: str) -> BlockingNotifierHead:
    return BlockingNotifierHead(name)


def RAW_NOTIFIER_HEAD(name: str) -> RawNotifierHead:
    return RawNotifierHead(name)


def srcu_init_notifier_head(nh: SrcuNotifierHead | None = None, name: str = "") -> SrcuNotifierHead:
    """Initialise (or create) an SRCU head: empty chain, fresh mutex and SRCU state."""
    if nh is None:
        return SrcuNotifierHead(name)
    nh.head = None
    nh.mutex = Mutex(nh._lock_name("mutex"))
    nh.srcu = _ReadSide()
    return nh


def srcu_cleanup_notifier_head(nh: SrcuNotifierHead) -> None:
    """Nothing to free in Python; kept for API parity."""


# List primitives (N3..N6) -----------------------------------------------------------------


def _symbol(fn: object) -> str:
    """``%ps`` of a callback."""
    return getattr(fn, "__name__", None) or repr(fn)


def _notifier_chain_register(nh: _NotifierHead, n: NotifierBlock, unique_priority: bool) -> int:
    require_async(n.notifier_call, "the notifier callback")
    prev: NotifierBlock | None = None
    cur = nh.head
    while cur is not None:
        if cur is n:
            warn("notifier callback %s already registered" % _symbol(n.notifier_call),
                 "kernel/notifier.c:29 notifier_chain_register+0x5d/0x90")
            return -EEXIST
        if n.priority > cur.priority:
            break
        if n.priority == cur.priority and unique_priority:
            return -EBUSY
        prev = cur
        cur = cur.next
    n.next = cur
    if prev is None:
        nh.head = n
    else:
        prev.next = n
    return 0


def _notifier_chain_unregister(nh: _NotifierHead, n: NotifierBlock) -> int:
    prev: NotifierBlock | None = None
    cur = nh.head
    while cur is not None:
        if cur is n:
            if prev is None:
                nh.head = n.next
            else:
                prev.next = n.next
            return 0
        prev = cur
        cur = cur.next
    return -ENOENT


async def _notifier_call_chain(nh: _NotifierHead, val: int, v: object,
                               nr_to_call: int) -> tuple[int, int]:
    """N8: returns ``(ret, nr_calls)``; the call that stops the chain is counted."""
    ret = NOTIFY_DONE
    nr_calls = 0
    nb = nh.head
    while nb is not None and nr_to_call:
        next_nb = nb.next
        try:
            result = await nb.notifier_call(nb, val, v)
        except BaseException as exc:
            if not is_driver_bug(exc):
                raise
            await current_kernel().driver_bug(
                exc, getattr(nb.notifier_call, "__qualname__", "notifier_call"))
            result = NOTIFY_DONE
        ret = NOTIFY_DONE if not isinstance(result, int) else int(result)
        nr_calls += 1
        if ret & NOTIFY_STOP_MASK:
            break
        nb = next_nb
        nr_to_call -= 1
    return ret, nr_calls


async def notifier_call_chain(nh: _NotifierHead, val: int, v: object = None,
                              nr_to_call: int = -1, nr_calls: list[int] | None = None) -> int:
    """The internal walker (N8), with no locking.  ``nr_calls``, if given, is an out
    parameter: a one-element list whose ``[0]`` is incremented once per callback called."""
    ret, n = await _notifier_call_chain(nh, val, v, nr_to_call)
    if nr_calls is not None:
        nr_calls[0] += n
    return ret


async def _notifier_call_chain_robust(nh: _NotifierHead, val_up: int, val_down: int,
                                      v: object) -> int:
    """N9: on STOP_MASK, roll back the ``nr - 1`` blocks before the one that stopped."""
    ret, nr = await _notifier_call_chain(nh, val_up, v, -1)
    if ret & NOTIFY_STOP_MASK:
        await _notifier_call_chain(nh, val_down, v, nr - 1)
    return ret


# Context helpers --------------------------------------------------------------------------


def _system_booting() -> bool:
    """``system_state == SYSTEM_BOOTING``; no kernel counts as running."""
    kernel = maybe_current_kernel()
    return kernel is not None and kernel.init.system_state == SYSTEM_BOOTING


def _suspicious_rcu(file_line: str, message: str, where: str) -> Report:
    """lockdep_rcu_suspicious(): the ``WARNING: suspicious RCU usage`` splat."""
    task = current()
    depth = task.cpu.rcu_read_lock_nesting
    lines = report_header("WARNING: suspicious RCU usage") + [
        "%s %s!" % (file_line, message),
        "",
        "other info that might help us debug this:",
        "",
        "",
        "rcu_scheduler_active = 2, debug_locks = 1",
        "%d lock%s held by %s/%d:" % (depth, "" if depth == 1 else "s", task.comm, task.pid),
    ]
    lines += [" #%d: ffffffff82b5f1a0 (rcu_read_lock){....}-{1:2}, at: rcu_lock_acquire+0x0/0x30"
              % i for i in range(depth)]
    lines += ["", "stack backtrace:"] + dump_stack_lines(where)
    return add_report("deadlock", lines[1], lines, KERN_WARNING)


async def _synchronize_rcu(nh: AtomicNotifierHead, where: str) -> None:
    might_sleep(where)
    if current_cpu().rcu_read_lock_nesting > 0:
        # The grace period needs this very read section to end: it never will.
        raise Deadlock(_suspicious_rcu(
            "kernel/rcu/tree.c:3785",
            "Illegal synchronize_rcu() in RCU read-side critical section", where))
    await nh._rcu.synchronize()


async def _synchronize_srcu(nh: SrcuNotifierHead, where: str) -> None:
    might_sleep(where)
    if nh.srcu.held_by(current()) or current_cpu().rcu_read_lock_nesting > 0:
        raise Deadlock(_suspicious_rcu(
            "kernel/rcu/srcutree.c:1324",
            "Illegal synchronize_srcu() in same-type SRCU (or in RCU) read-side critical section",
            where))
    await nh.srcu.synchronize()


# Atomic chains ----------------------------------------------------------------------------


def _atomic_register(nh: AtomicNotifierHead, n: NotifierBlock, unique: bool) -> int:
    flags = spin_lock_irqsave_sync(nh.lock)
    try:
        return _notifier_chain_register(nh, n, unique)
    finally:
        spin_unlock_irqrestore(nh.lock, flags)


def atomic_notifier_chain_register(nh: AtomicHeadArg, n: NotifierBlock) -> int:
    """N3/N4; may be called in atomic context (sync)."""
    head = deref(nh)
    return _atomic_register(head, n, False)


def atomic_notifier_chain_register_unique_prio(nh: AtomicHeadArg, n: NotifierBlock) -> int:
    """N5: -EBUSY if the priority is taken."""
    head = deref(nh)
    return _atomic_register(head, n, True)


async def atomic_notifier_chain_unregister(nh: AtomicHeadArg, n: NotifierBlock) -> int:
    """N6: unlink under the spinlock, then ``synchronize_rcu()`` (sleeps; N12 deadlock)."""
    head = deref(nh)
    where = caller_location(2)
    flags = spin_lock_irqsave_sync(head.lock)
    try:
        ret = _notifier_chain_unregister(head, n)
    finally:
        spin_unlock_irqrestore(head.lock, flags)
    await _synchronize_rcu(head, where)
    return ret


async def atomic_notifier_call_chain(nh: AtomicHeadArg, val: int, v: object = None) -> int:
    """Walk under rcu_read_lock(): a callback that sleeps gets might_sleep's BUG (N11)."""
    head = deref(nh)
    rcu_read_lock()
    token = head._rcu.enter(current())
    try:
        ret, _ = await _notifier_call_chain(head, val, v, -1)
    finally:
        head._rcu.exit(token)
        rcu_read_unlock()
    return ret


def atomic_notifier_call_chain_is_empty(nh: AtomicHeadArg) -> bool:
    head = deref(nh)
    return head.head is None


# Blocking chains --------------------------------------------------------------------------


async def _chain_write(nh: BlockingNotifierHead | SrcuNotifierHead, op: Callable[[], int]) -> int:
    """Change a blocking or SRCU chain under its write side: the rwsem (waits for current
    walkers, N11) or the SRCU mutex; no lock at all while booting, as in C."""
    if _system_booting():
        return op()
    if isinstance(nh, BlockingNotifierHead):
        await down_write(nh.rwsem)
        try:
            return op()
        finally:
            up_write(nh.rwsem)
    await mutex_lock(nh.mutex)
    try:
        return op()
    finally:
        mutex_unlock(nh.mutex)


async def blocking_notifier_chain_register(nh: BlockingHeadArg, n: NotifierBlock) -> int:
    """N3/N4; waits for current walkers (N11), no locking while booting."""
    head = deref(nh)
    return await _chain_write(head, lambda: _notifier_chain_register(head, n, False))


async def blocking_notifier_chain_register_unique_prio(nh: BlockingHeadArg,
                                                       n: NotifierBlock) -> int:
    head = deref(nh)
    return await _chain_write(head, lambda: _notifier_chain_register(head, n, True))


async def blocking_notifier_chain_unregister(nh: BlockingHeadArg, n: NotifierBlock) -> int:
    head = deref(nh)
    return await _chain_write(head, lambda: _notifier_chain_unregister(head, n))


async def blocking_notifier_call_chain(nh: BlockingHeadArg, val: int, v: object = None) -> int:
    """Callbacks may sleep; walkers share the read lock; an empty chain takes no lock."""
    head = deref(nh)
    if head.head is None:
        return NOTIFY_DONE
    await down_read(head.rwsem)
    try:
        ret, _ = await _notifier_call_chain(head, val, v, -1)
    finally:
        up_read(head.rwsem)
    return ret


async def blocking_notifier_call_chain_robust(nh: BlockingHeadArg, val_up: int,
                                              val_down: int, v: object = None) -> int:
    """N9, holding the read lock across both passes."""
    head = deref(nh)
    if head.head is None:
        return NOTIFY_DONE
    await down_read(head.rwsem)
    try:
        return await _notifier_call_chain_robust(head, val_up, val_down, v)
    finally:
        up_read(head.rwsem)


# Raw chains -------------------------------------------------------------------------------


def raw_notifier_chain_register(nh: RawHeadArg, n: NotifierBlock) -> int:
    head = deref(nh)
    return _notifier_chain_register(head, n, False)


def raw_notifier_chain_unregister(nh: RawHeadArg, n: NotifierBlock) -> int:
    """No locking: allowed from inside the walk (N12)."""
    head = deref(nh)
    return _notifier_chain_unregister(head, n)


async def raw_notifier_call_chain(nh: RawHeadArg, val: int, v: object = None) -> int:
    head = deref(nh)
    ret, _ = await _notifier_call_chain(head, val, v, -1)
    return ret


async def raw_notifier_call_chain_robust(nh: RawHeadArg, val_up: int, val_down: int,
                                         v: object = None) -> int:
    head = deref(nh)
    return await _notifier_call_chain_robust(head, val_up, val_down, v)


# SRCU chains ------------------------------------------------------------------------------


async def srcu_notifier_chain_register(nh: SrcuHeadArg, n: NotifierBlock) -> int:
    head = deref(nh)
    return await _chain_write(head, lambda: _notifier_chain_register(head, n, False))


async def srcu_notifier_chain_unregister(nh: SrcuHeadArg, n: NotifierBlock) -> int:
    head = deref(nh)
    where = caller_location(2)
    ret = await _chain_write(head, lambda: _notifier_chain_unregister(head, n))
    if not _system_booting():
        await _synchronize_srcu(head, where)
    return ret


async def srcu_notifier_call_chain(nh: SrcuHeadArg, val: int, v: object = None) -> int:
    head = deref(nh)
    token = head.srcu.enter(current())
    try:
        ret, _ = await _notifier_call_chain(head, val, v, -1)
    finally:
        head.srcu.exit(token)
    return ret


# Per-kernel standard chains (N14..N16) ----------------------------------------------------


@attrs.define(eq=False)
class StandardChains:
    """The chains every kernel owns; a Kernel holds one (never module globals)."""

    panic_notifier_list: AtomicNotifierHead = attrs.Factory(
        lambda: AtomicNotifierHead("panic_notifier_list"))
    reboot_notifier_list: BlockingNotifierHead = attrs.Factory(
        lambda: BlockingNotifierHead("reboot_notifier_list"))
    die_chain: AtomicNotifierHead = attrs.Factory(lambda: AtomicNotifierHead("die_chain"))
    restart_handler_list: AtomicNotifierHead = attrs.Factory(
        lambda: AtomicNotifierHead("restart_handler_list"))

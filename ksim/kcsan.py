"""A lockset data-race detector over simulated RAM, reporting in KCSAN's words
(kernel/kcsan/report.c; Eraser, Savage et al. 1997, for the algorithm).

Attach with ``RaceDetector.attach(kernel)`` (or append an instance to
``kernel.mm.observers``): every driver access through :mod:`ksim.mm` (``virt_read``,
``virt_write``, the ``_u32``/``_u64`` helpers, each chunk of ``memcpy_to``/``memcpy_from``)
calls :meth:`RaceDetector.on_access` with the *physical* address.  The detector also
subscribes itself to ``kernel.locking.observers`` (on attach, or at its first access) to learn
which sleeping locks a task holds and which spinlocks were taken inside a hardirq handler.

Model, kept simple on purpose:

* **Contexts.**  An access is made by a *context*: a task, or a hardirq handler running on
  top of a task (``hardirq_count > 0``).  Accesses of one context never race with each other
  (program order), whatever CPU it ran on.
* **Shadow.**  RAM is shadowed in 8-byte granules (a sparse dict).  A granule first belongs
  to the context that touched it (Eraser's *exclusive* state): initialisation without a lock,
  e.g. memconsole's ``buf_init()``, is not a race -- unless the second context holds no lock
  either (then nothing ever protected the data: the owner's last lockless access is compared).
  From the first access by a second context on, the granule is *shared* and keeps the last
  write and, per context, the last read since.
* **Race.**  Two accesses of a shared granule race when they come from different contexts,
  at least one writes, their *locksets* have no lock in common, and they can overlap in time:
  they ran on different CPUs; or, on one CPU, one ran in a hardirq handler and the other in
  task context with interrupts enabled; or, on one CPU, both in task context and at least one
  of them preemptible (``preempt_count == 0``, interrupts on).
* **Locksets** are lock *instances*: the spinlocks in ``cpu.held_locks`` (in a hardirq
  handler only those the handler took itself, not those of the task it interrupted) plus, in
  task context, the mutexes and rw-semaphores the task holds.  A read counts every lock; a
  write only those held exclusively (spinlocks, mutexes, ``down_write``), so two writers under
  ``down_read`` race while a ``down_write`` writer and a ``down_read`` reader do not.
* **Reports.**  One per pair of code locations (first frame outside ksim's memory code),
  through :func:`ksim.bug.add_report` with kind ``"data-race"``, also kept in
  :attr:`RaceDetector.reports`.  The earlier access is listed first, as KCSAN lists the other
  thread's access first; a handler's access is ``by interrupt``.  No ``value changed`` line:
  a lockset detector does not watch values.
* Accesses after the kernel stopped (``outcome != "running"``, e.g. a checker reading a dead
  kernel's buffer) and while ``enabled`` is False are ignored.

Being lockset-based, the detector reports a *possible* race from one run even when the two
accesses did not overlap in it: no happens-before is tracked (thread start/join, events,
RCU).  Code that reads driver state after its threads finished should take the driver's lock
or set ``enabled = False``.
"""

from __future__ import annotations

import sys
from types import FrameType
from typing import TYPE_CHECKING

from ksim import memory as _memory
from ksim import mm as _mm
from ksim.bug import Report, add_report, cpu_pid_line
from ksim.current import _current as _current_var
from ksim.current import Task, maybe_current_kernel
from ksim.kern_levels import KERN_ERR
from ksim.locking import LockBase, Mutex, RwSemaphore
from ksim.locking.semaphore import Semaphore
from ksim.locking.lockdep import Trace, format_where, trace_ends_at

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["RaceDetector"]

GRANULE_SHIFT = 3  # 8-byte shadow granules
_SKIP_FILES = frozenset({_mm.virt_read.__code__.co_filename,
                         _memory.PhysMem.read.__code__.co_filename,
                         sys._getframe().f_code.co_filename})
_RULE = "=" * 66
_EMPTY: frozenset[LockBase] = frozenset()
# Locks held by a task rather than a CPU (console_sem among them: console drivers rely on it).
_SLEEPING = (Mutex, RwSemaphore, Semaphore)


class _Ctx:
    """A context: a task, or the hardirq handlers running on top of it."""

    __slots__ = ("task", "irq", "held", "held_gen")

    def __init__(self, task: Task, irq: bool) -> None:
        self.task = task
        self.irq = irq
        # What every access of this context asks of its locks (see RaceDetector._gen).
        self.held: _Held = (True, _EMPTY, _EMPTY, -1)
        self.held_gen = -1


# One access, a plain tuple (made on most accesses once data is shared):
# (context, cpu, write, phys addr, size, lockset, irqs on, preemptible, trace).
_Access = tuple
_CTX, _CPU, _WRITE, _ADDR, _SIZE, _LOCKS, _IRQS_ON, _PREEMPTIBLE, _TRACE = range(9)


_Held = tuple[bool, frozenset[LockBase], frozenset[LockBase], int]


class _Shadow:
    __slots__ = ("owner", "last", "write", "reads")

    def __init__(self, owner: _Ctx) -> None:
        self.owner: _Ctx | None = owner  # exclusive to this context until another comes
        self.last: _Access | None = None  # the owner's last access, if it held no lock
        self.write: _Access | None = None
        self.reads: dict[_Ctx, _Access] | None = None


def _may_overlap(a: _Access, b: _Access) -> bool:
    """Could accesses from two different contexts have overlapped in time?"""
    if a[_CPU] != b[_CPU]:
        return True
    a_irq, b_irq = a[_CTX].irq, b[_CTX].irq
    if a_irq != b_irq:  # an interrupt handler and the task it may interrupt
        return (b if a_irq else a)[_IRQS_ON]
    if a_irq:
        return False
    return a[_PREEMPTIBLE] or b[_PREEMPTIBLE]


def _walk(frame: FrameType | None) -> Trace:
    """(code, f_lasti) of ``frame`` and its three callers, whatever code they are: where the
    trace really ends (the runtime: lockdep.capture's rule) is decided only when a report
    prints it (:func:`_where`), since nearly every access makes a trace and almost none is
    ever printed."""
    if frame is None:
        return ()
    c0 = (frame.f_code, frame.f_lasti)
    f = frame.f_back
    if f is None:
        return (c0,)
    c1 = (f.f_code, f.f_lasti)
    f = f.f_back
    if f is None:
        return (c0, c1)
    c2 = (f.f_code, f.f_lasti)
    f = f.f_back
    if f is None:
        return (c0, c1, c2)
    return (c0, c1, c2, (f.f_code, f.f_lasti))


def _where(access: _Access) -> Trace:
    """The access's trace as lockdep.capture() would have taken it."""
    trace: Trace = access[_TRACE]
    return trace[:trace_ends_at(trace)]


class RaceDetector:
    """``RaceDetector.attach(kernel)``; then read :attr:`reports`."""

    def __init__(self) -> None:
        self.enabled = True
        self.reports: list[Report] = []
        self.accesses = 0
        self._shadow: dict[int, _Shadow] = {}
        self._task_ctx: dict[Task, _Ctx] = {}
        self._irq_ctx: dict[Task, _Ctx] = {}
        # spinlocks taken inside a hardirq handler and not yet released
        self._irq_locks: set[LockBase] = set()
        # (task, in hardirq) -> {sleeping lock: [exclusive holds, shared holds]}
        self._sleeping: dict[tuple[Task, bool], dict[LockBase, list[int]]] = {}
        self._reported: set[frozenset[tuple[int, int]]] = set()
        # A context's (holds no lock, write lockset, read lockset, spinlocks held on its CPU)
        # is what every one of its accesses asks, and it is kept on the context (_Ctx.held)
        # until a lock is taken or released anywhere: every input of a lockset changes only
        # then.  Each such event starts a new generation, which makes every kept one stale;
        # a spinlock leaves ``held_locks`` just after its "release" event, which the count
        # catches should anything access memory in between.
        self._gen = 0
        self._kernel: Kernel | None = None
        self._subscribed = False

    # -- attaching -------------------------------------------------------------------------
    @classmethod
    def attach(cls, kernel: Kernel) -> RaceDetector:
        """Observe ``kernel``'s driver memory accesses and lock acquisitions."""
        self = cls()
        self._kernel = kernel
        kernel.mm.observers.append(self)
        self._subscribe(kernel)
        return self

    def _subscribe(self, kernel: Kernel) -> None:
        self._subscribed = True
        self._kernel = kernel
        observers = kernel.locking.observers
        if self not in observers:
            observers.append(self)

    def detach(self) -> None:
        kernel = self._kernel
        if kernel is None:
            return
        for observers in (kernel.mm.observers, kernel.locking.observers):
            if self in observers:
                observers.remove(self)

    def _ctx(self, task: Task, irq: bool) -> _Ctx:
        table = self._irq_ctx if irq else self._task_ctx
        ctx = table.get(task)
        if ctx is None:
            ctx = table[task] = _Ctx(task, irq)
        return ctx

    # -- lock observer: sleeping locks per task, spinlocks taken in hardirq ----------------
    def lock_event(self, event: str, lock: LockBase, flags: int = 0) -> None:
        if event == "acquired" or event == "release":
            self._gen += 1
        if event == "acquired":
            task = _current_var.get()
            if type(lock) in _SLEEPING:
                # keyed by context: a console_sem an interrupt handler took protects it
                key = (task, task.cpu.hardirq_count > 0)
                holds = self._sleeping.setdefault(key, {}).setdefault(lock, [0, 0])
                holds[1 if type(lock) is RwSemaphore and lock.owner is not task else 0] += 1
            elif task.cpu.hardirq_count:
                self._irq_locks.add(lock)
        elif event == "release":
            if type(lock) in _SLEEPING:
                task = _current_var.get()
                self._drop_sleeping((task, task.cpu.hardirq_count > 0), lock)
            elif self._irq_locks:
                self._irq_locks.discard(lock)

    def _drop_sleeping(self, key: tuple[Task, bool], lock: LockBase) -> None:
        held = self._sleeping.get(key)
        holds = held.get(lock) if held else None
        if holds is None:  # released by another task: find the holder
            for held in self._sleeping.values():
                holds = held.get(lock)
                if holds is not None:
                    break
            else:
                return
        assert held is not None
        if type(lock) is RwSemaphore and lock.owner is None and holds[1]:
            holds[1] -= 1  # up_read (the semaphore has no writer, so this is a reader)
        elif holds[0]:
            holds[0] -= 1
        else:
            holds[1] -= 1
        if not holds[0] and not holds[1]:
            del held[lock]

    def _locksets(self, task: Task, irq: bool) -> tuple[frozenset[LockBase],
                                                         frozenset[LockBase]]:
        """(locks protecting a write, locks protecting a read) of this context now."""
        spin = task.cpu.held_locks
        if spin:
            irq_locks = self._irq_locks
            if irq:
                excl = [lock for lock in spin if lock in irq_locks]
            elif irq_locks:
                excl = [lock for lock in spin if lock not in irq_locks]
            else:
                excl = list(spin)
        else:
            excl = []
        shared = []
        held = self._sleeping.get((task, irq))
        if held:
            for lock, (n_excl, n_shared) in held.items():
                if n_excl:
                    excl.append(lock)
                elif n_shared:
                    shared.append(lock)
        locks_w = frozenset(excl) if excl else _EMPTY
        return locks_w, (locks_w.union(shared) if shared else locks_w)

    # -- memory observer -------------------------------------------------------------------
    def on_access(self, addr: int, size: int, write: bool) -> None:
        """A driver read or wrote ``size`` bytes of RAM at physical ``addr``."""
        if not self.enabled or size <= 0:
            return
        task = _current_var.get()
        kernel = task.kernel
        if kernel is not None:
            if kernel.outcome != "running":
                return
            if not self._subscribed:
                self._subscribe(kernel)
        self.accesses += 1
        cpu = task.cpu
        irq = cpu.hardirq_count > 0
        ctx = (self._irq_ctx if irq else self._task_ctx).get(task)
        if ctx is None:
            ctx = self._ctx(task, irq)
        held = ctx.held
        if ctx.held_gen != self._gen or held[3] != len(cpu.held_locks):
            held = ctx.held = self._held_now(task, irq)
            ctx.held_gen = self._gen
        # Without any lock held, even the owner's accesses are remembered: if the next
        # context also holds none, nothing ever protected the data (the lockless ring).
        lockless = held[0]
        shadow = self._shadow
        access: _Access | None = None
        locks: frozenset[LockBase] = _EMPTY
        seen: _Access | None = None  # consecutive granules mostly share their last write
        # (hot loop: tuple fields by literal index, 0 = _CTX, 5 = _LOCKS)
        for granule in range(addr >> GRANULE_SHIFT, ((addr + size - 1) >> GRANULE_SHIFT) + 1):
            sh = shadow.get(granule)
            if sh is None or sh.owner is ctx:
                if sh is None:
                    sh = shadow[granule] = _Shadow(ctx)
                if not lockless:
                    if sh.last is not None:
                        sh.last = None
                    continue
            if access is None:
                # The access, made once and only when some granule needs it: its trace is
                # the costly part.  Built here rather than in a method, since nearly every
                # access of shared data makes one.
                frame: FrameType | None = sys._getframe(1)
                while frame is not None and frame.f_code.co_filename in _SKIP_FILES:
                    frame = frame.f_back
                locks = held[1] if write else held[2]
                irqs_on = cpu.irqs_enabled
                access = (ctx, cpu.id, write, addr, size, locks, irqs_on,
                          irqs_on and not irq and cpu.preempt_count == 0, _walk(frame))
            owner = sh.owner
            if owner is ctx:  # the owner's own access without a lock
                sh.last = access
                continue
            if owner is not None:
                # A second context: the granule is shared from now on.  Eraser forgives the
                # owner's accesses (initialisation), unless neither side held any lock.
                sh.owner = None
                last = sh.last
                sh.last = None
                if last is not None and not locks:
                    self._check(last, access)
            else:
                last = sh.write
                if last is not None and last is not seen:
                    seen = last
                    if last[0] is not ctx and last[5].isdisjoint(locks):
                        self._check(last, access)
                if write and sh.reads:
                    for read in sh.reads.values():
                        if read[0] is not ctx and read[5].isdisjoint(locks):
                            self._check(read, access)
            if write:
                sh.write = access
                sh.reads = None
            else:
                reads = sh.reads
                if reads is None:
                    sh.reads = {ctx: access}
                else:
                    reads[ctx] = access

    def _held_now(self, task: Task, irq: bool) -> _Held:
        """(holds no lock, write lockset, read lockset, spinlocks held) of this context."""
        spin = task.cpu.held_locks
        sleeping = self._sleeping.get((task, irq))
        if irq or self._irq_locks or sleeping:
            locks_w, locks_r = self._locksets(task, irq)
        else:  # the common case: only this CPU's spinlocks
            locks_w = locks_r = frozenset(spin) if spin else _EMPTY
        return not spin and not sleeping, locks_w, locks_r, len(spin)

    def _check(self, old: _Access, new: _Access) -> None:
        """Two accesses of different contexts with no lock in common: a race if one writes
        and they could overlap; reported once per pair of locations."""
        if not old[_WRITE] and not new[_WRITE]:
            return
        if not old[_LOCKS].isdisjoint(new[_LOCKS]) or not _may_overlap(old, new):
            return
        key = frozenset((id(w[0]), w[1]) for w in (old[_TRACE][:1] + new[_TRACE][:1]))
        if key in self._reported:
            return
        self._reported.add(key)
        self._report(old, new)

    # -- the report (print_report) ---------------------------------------------------------
    def _report(self, other: _Access, this: _Access) -> None:
        def sym(access: _Access) -> str:
            """%pS of the access's first frame: function first, as KCSAN sorts the title."""
            trace = _where(access)
            return format_where(trace[0]).split(" ", 1)[1] if trace else "?"

        funcs = sorted((sym(other), sym(this)))
        lines = [_RULE, "BUG: KCSAN: data-race in %s / %s" % (funcs[0], funcs[1]), ""]
        lines += self._access_lines(other)
        lines.append("")
        lines += self._access_lines(this)
        lines += ["", "Reported by Kernel Concurrency Sanitizer on:", cpu_pid_line(), _RULE]
        self.reports.append(add_report("data-race", lines[1], lines, KERN_ERR))

    def _access_lines(self, access: _Access) -> list[str]:
        ctx = access[_CTX]
        who = "interrupt" if ctx.irq else "task %d" % ctx.task.pid
        lines = ["%s to 0x%016x of %d bytes by %s on cpu %d:" % (
            "write" if access[_WRITE] else "read", self._virt(access[_ADDR]), access[_SIZE],
            who, access[_CPU])]
        return lines + [" " + format_where(w) for w in _where(access)]

    def _virt(self, phys: int) -> int:
        kernel = self._kernel or maybe_current_kernel()
        layout = kernel.layout if kernel is not None else None
        if layout is None:
            return phys
        try:
            return layout.phys_to_virt(phys)
        except Exception:  # noqa: BLE001 - an address outside the direct map: print phys
            return phys

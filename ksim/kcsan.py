"""A lockset data-race detector over simulated RAM, reporting in KCSAN's words
(kernel/kcsan/report.c; Eraser, Savage et al. 1997, for the algorithm).

Attach with ``RaceDetector.attach(kernel)`` (or append an instance to
``kernel.mem_observers``): every driver access through :mod:`ksim.mm` (``virt_read``,
``virt_write``, the ``_u32``/``_u64`` helpers, each chunk of ``memcpy_to``/``memcpy_from``)
calls :meth:`RaceDetector.on_access` with the *physical* address.  The detector also
subscribes itself to ``kernel.lock_observers`` (on attach, or at its first access) to learn
which sleeping locks a task holds and which spinlocks were taken inside a hardirq handler.

Model, kept simple on purpose:

* **Contexts.**  An access is made by a *context*: a task, or a hardirq handler running on
  top of a task (``hardirq_count > 0``).  Accesses of one context never race with each other
  (program order), whatever CPU it ran on.
* **Shadow.**  RAM is shadowed in 8-byte granules (a sparse dict).  A granule first belongs
  to the context that touched it (Eraser's *exclusive* state): initialisation without a lock,
  e.g. memconsole's ``buf_init()``, is not a race.  From the first access by a second context
  on, the granule is *shared* and keeps the last write and, per context, the last read since.
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
  thread's access first.  No ``value changed`` line: a lockset detector does not watch values.
* Accesses after the kernel stopped (``outcome != "running"``, e.g. a checker reading a dead
  kernel's buffer) and while ``enabled`` is False are ignored.

Being lockset-based, the detector reports a *possible* race from one run even when the two
accesses did not overlap in it: no happens-before is tracked (thread start/join, events,
RCU).  Code that reads driver state after its threads finished should take the driver's lock
or set ``enabled = False``.
"""

from __future__ import annotations

import sys
from types import CodeType, FrameType

from ksim import memory as _memory
from ksim import mm as _mm
from ksim.bug import Report, add_report, cpu_pid_line
from ksim.current import Task, current, maybe_current_kernel
from ksim.locking import LockBase, RwSemaphore
from ksim.lockdep import Trace, capture, format_where
from ksim.printk import KERN_ERR

__all__ = ["RaceDetector"]

GRANULE_SHIFT = 3  # 8-byte shadow granules
_TRACE_DEPTH = 4
_SKIP_FILES = frozenset({_mm.virt_read.__code__.co_filename,
                         _memory.PhysMem.read.__code__.co_filename,
                         sys._getframe().f_code.co_filename})
_RULE = "=" * 66
_EMPTY: frozenset[LockBase] = frozenset()


class _Ctx:
    """A context: a task, or the hardirq handlers running on top of it."""

    __slots__ = ("task", "irq")

    def __init__(self, task: Task, irq: bool) -> None:
        self.task = task
        self.irq = irq


class _Access:
    __slots__ = ("ctx", "cpu", "write", "addr", "size", "locks", "irqs_on", "preemptible",
                 "trace")

    def __init__(self, ctx: _Ctx, cpu: int, write: bool, addr: int, size: int,
                 locks: frozenset[LockBase], irqs_on: bool, preemptible: bool,
                 trace: Trace) -> None:
        self.ctx = ctx
        self.cpu = cpu
        self.write = write
        self.addr = addr
        self.size = size
        self.locks = locks
        self.irqs_on = irqs_on
        self.preemptible = preemptible
        self.trace = trace


class _Shadow:
    __slots__ = ("owner", "write", "reads")

    def __init__(self, owner: _Ctx) -> None:
        self.owner: _Ctx | None = owner  # exclusive to this context until another comes
        self.write: _Access | None = None
        self.reads: dict[_Ctx, _Access] | None = None


def _may_overlap(a: _Access, b: _Access) -> bool:
    """Could accesses from two different contexts have overlapped in time?"""
    if a.cpu != b.cpu:
        return True
    if a.ctx.irq != b.ctx.irq:  # an interrupt handler and the task it may interrupt
        return (b if a.ctx.irq else a).irqs_on
    if a.ctx.irq:
        return False
    return a.preemptible or b.preemptible


def _capture(frame: FrameType | None) -> Trace:
    while frame is not None and frame.f_code.co_filename in _SKIP_FILES:
        frame = frame.f_back
    return capture(frame, _TRACE_DEPTH)


class RaceDetector:
    """``RaceDetector.attach(kernel)``; then read :attr:`reports`."""

    def __init__(self) -> None:
        self.enabled = True
        self.reports: list[Report] = []
        self.accesses = 0
        self._shadow: dict[int, _Shadow] = {}
        self._task_ctx: dict[Task, _Ctx] = {}
        self._irq_ctx: dict[Task, _Ctx] = {}
        self._reported: set[frozenset[tuple[CodeType, int]]] = set()
        self._kernel: object | None = None

    # -- attaching -------------------------------------------------------------------------
    @classmethod
    def attach(cls, kernel: object) -> RaceDetector:
        """Observe ``kernel``'s driver memory accesses and lock acquisitions."""
        self = cls()
        self._kernel = kernel
        if getattr(kernel, "mem_observers", None) is None:
            kernel.mem_observers = []  # type: ignore[attr-defined]
        kernel.mem_observers.append(self)  # type: ignore[attr-defined]
        kernel.lock_observers.append(self)  # type: ignore[attr-defined]
        return self

    def detach(self) -> None:
        for attr in ("mem_observers", "lock_observers"):
            observers = getattr(self._kernel, attr, None)
            if observers is not None and self in observers:
                observers.remove(self)

    def _ctx(self, task: Task, irq: bool) -> _Ctx:
        table = self._irq_ctx if irq else self._task_ctx
        ctx = table.get(task)
        if ctx is None:
            ctx = table[task] = _Ctx(task, irq)
        return ctx

    # -- lock observer: who holds what -----------------------------------------------------
    def lock_event(self, event: str, lock: LockBase) -> None:
        if event == "acquired":
            task = current()
            ctx = self._ctx(task, task.cpu.hardirq_count > 0)
            held = (ctx.shared if type(lock) is RwSemaphore and lock.owner is not task
                    else ctx.exclusive)
            held[lock] = held.get(lock, 0) + 1
            ctx.dirty = True
        elif event == "release":
            task = current()
            if self._ctx(task, task.cpu.hardirq_count > 0).drop(lock):
                return
            # released in another context than it was taken in: find it
            for table in (self._task_ctx, self._irq_ctx):
                ctx = table.get(task)
                if ctx is not None and ctx.drop(lock):
                    return
            for table in (self._task_ctx, self._irq_ctx):
                for ctx in table.values():
                    if ctx.drop(lock):
                        return

    # -- memory observer -------------------------------------------------------------------
    def on_access(self, addr: int, size: int, write: bool) -> None:
        """A driver read or wrote ``size`` bytes of RAM at physical ``addr``."""
        if not self.enabled or size <= 0:
            return
        self.accesses += 1
        task = current()
        cpu = task.cpu
        irq = cpu.hardirq_count > 0
        ctx = (self._irq_ctx if irq else self._task_ctx).get(task)
        if ctx is None:
            ctx = self._ctx(task, irq)
        shadow = self._shadow
        access: _Access | None = None
        for granule in range(addr >> GRANULE_SHIFT, ((addr + size - 1) >> GRANULE_SHIFT) + 1):
            sh = shadow.get(granule)
            if sh is None:
                shadow[granule] = _Shadow(ctx)
                continue
            owner = sh.owner
            if owner is ctx:
                continue
            if access is None:
                if ctx.dirty:
                    ctx.rebuild()
                irqs_on = cpu.irqs_enabled
                access = _Access(ctx, cpu.id, write, addr, size,
                                 ctx.locks_w if write else ctx.locks_r, irqs_on,
                                 irqs_on and not irq and cpu.preempt_count == 0,
                                 _capture(sys._getframe(1)))
            if owner is not None:
                sh.owner = None  # a second context: shared from now on (nothing to compare)
            else:
                last = sh.write
                if last is not None and last.ctx is not ctx:
                    self._check(last, access)
                if write and sh.reads:
                    for read in sh.reads.values():
                        if read.ctx is not ctx:
                            self._check(read, access)
            if write:
                sh.write = access
                sh.reads = None
            elif sh.reads is None:
                sh.reads = {ctx: access}
            else:
                sh.reads[ctx] = access

    def _check(self, old: _Access, new: _Access) -> None:
        if not old.write and not new.write:
            return
        if not old.locks.isdisjoint(new.locks) or not _may_overlap(old, new):
            return
        key = frozenset((old.trace[:1] + new.trace[:1]))
        if key in self._reported:
            return
        self._reported.add(key)
        self._report(old, new)

    # -- the report (print_report) ---------------------------------------------------------
    def _report(self, other: _Access, this: _Access) -> None:
        def sym(access: _Access) -> tuple[str, int]:
            if not access.trace:
                return ("?", 0)
            code, line = access.trace[0]
            return (code.co_name, line)

        first, second = sorted((sym(other), sym(this)))
        lines = [_RULE, "BUG: KCSAN: data-race in %s / %s" % (first[0], second[0]), ""]
        lines += self._access_lines(other)
        lines.append("")
        lines += self._access_lines(this)
        lines += ["", "Reported by Kernel Concurrency Sanitizer on:", cpu_pid_line(), _RULE]
        self.reports.append(add_report("kcsan", lines[1], lines, KERN_ERR))

    def _access_lines(self, access: _Access) -> list[str]:
        who = "interrupt" if access.ctx.irq else "task %d" % access.ctx.task.pid
        lines = ["%s to 0x%016x of %d bytes by %s on cpu %d:" % (
            "write" if access.write else "read", self._virt(access.addr), access.size, who,
            access.cpu)]
        return lines + [" " + format_where(w) for w in access.trace]

    def _virt(self, phys: int) -> int:
        kernel = self._kernel or maybe_current_kernel()
        layout = getattr(kernel, "layout", None)
        if layout is None:
            return phys
        try:
            return layout.phys_to_virt(phys)
        except Exception:  # noqa: BLE001 - an address outside the direct map: print phys
            return phys

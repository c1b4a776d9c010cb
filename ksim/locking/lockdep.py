"""lockdep-lite: the kernel's runtime locking correctness validator, in miniature
(kernel/locking/lockdep.c; linux-semantics.md section 7, rules L4..L8).

A :class:`Lockdep` is a lock observer: attach it with ``Lockdep.attach(kernel)`` (or append an
instance to ``kernel.lock_observers``) and every acquisition ksim's locks make is checked, per
lock *class* (the lock's ``name``; every lock of one name is one class, as every lock
initialised at one ``spin_lock_init()`` site is in the kernel).  From the acquisitions seen in
one run it reports, in the modern (6.x) shape of the kernel's own reports:

* **inconsistent lock state** (L4, L6): a class used in hardirq context (``IN-HARDIRQ-W``,
  ``hardirq_count > 0``) and elsewhere with interrupts enabled (``HARDIRQ-ON-W``).  Fires even
  though this run did not deadlock: the interrupt merely *could* have arrived while the lock
  was held.  That is what catches a plain ``spin_lock`` where ``spin_lock_irqsave`` is needed.
* **possible circular locking dependency** (AB-BA and longer cycles): a class->class graph is
  built from the locks a task holds when it takes another (in the same irq context, as
  lockdep's chains are); an acquisition that would close a cycle is reported with the
  existing chain and the CPU0/CPU1 scenario.
* **possible recursive locking** (L7): a class taken again while the same task holds it (two
  instances of one class included: annotate those with distinct names).

L8: after the first report lockdep turns itself off (``debug_locks`` becomes False) and
ignores every later event; an oops or panic switches it off silently, as ``oops_enter()``
does.  Reports go through :func:`ksim.bug.add_report` with kind ``"lockdep"`` and are also
kept in :attr:`Lockdep.reports`.

Modelling choices:

* Usage states: ``IN-HARDIRQ-{W,R}`` for a non-trylock acquisition with ``hardirq_count > 0``;
  ``HARDIRQ-ON-{W,R}`` and ``SOFTIRQ-ON-{W,R}`` for one outside hardirq with interrupts
  enabled (softirqs are not simulated, so they count as always enabled and never entered).
  An acquisition inside a hardirq handler never marks ``*-ON-*`` even if the simulation left
  interrupts on (real handlers always run with them off).
* Read acquisitions are those of ``down_read``/``down_read_trylock`` (``-R`` states and
  ``rlock()`` in scenarios); for dependencies and recursion every acquisition counts as a
  write (an rw_semaphore reader is not a recursive reader).
* Trylocks (``spin_trylock``, ``mutex_trylock``, ``down_*_trylock``) mark only the ``-ON-``
  states and add no dependencies, as in lockdep.
* Locations are Python ``file:line function`` (ksim's ``%pS``); stack traces are the Python
  frames outside ksim's locking code.  The ``irq event stamp`` block is not printed (ksim
  does not trace irq enable/disable events).
* Not checked: hardirq-safe -> hardirq-unsafe dependencies ("irq lock inversion"), lock
  nesting annotations (``*_nested``), held-lock-freed and bad-unlock-balance reports.

Cost: an acquisition whose class, states and dependency are already known is a walk out of
ksim's locking frames plus a handful of dict lookups (about 1.5 us); "acquired" and a LIFO
release are a list push and pop (about 0.5 us each).  The graph search runs only when a new
class->class edge appears; stack traces are taken only when a state or an edge is new, and
line numbers are resolved only when a report prints them.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from functools import lru_cache
from types import CodeType, FrameType

from ksim.bug import Report, add_report, cpu_pid_line, is_runtime_file, report_header, \
    short_path
from ksim.current import _current as _current_var
from ksim.current import Task, maybe_current_kernel
from ksim.kern_levels import KERN_WARNING
from ksim.locking.common import LOCK_READ, LOCK_TRY, LockBase, recursion_scenario

__all__ = ["Lockdep", "USAGE_STR"]

# -- usage bits (lockdep_states.h x lock_usage_bit: 4 per state) ---------------------------

LOCK_USED_IN_HARDIRQ = 0
LOCK_USED_IN_HARDIRQ_READ = 1
LOCK_ENABLED_HARDIRQ = 2
LOCK_ENABLED_HARDIRQ_READ = 3
LOCK_USED_IN_SOFTIRQ = 4
LOCK_USED_IN_SOFTIRQ_READ = 5
LOCK_ENABLED_SOFTIRQ = 6
LOCK_ENABLED_SOFTIRQ_READ = 7
LOCK_USAGE_READ_MASK = 1
LOCK_USAGE_DIR_MASK = 2
LOCK_USAGE_STATES = 8

USAGE_STR = ("IN-HARDIRQ-W", "IN-HARDIRQ-R", "HARDIRQ-ON-W", "HARDIRQ-ON-R",
             "IN-SOFTIRQ-W", "IN-SOFTIRQ-R", "SOFTIRQ-ON-W", "SOFTIRQ-ON-R")

_IN_W = 1 << LOCK_USED_IN_HARDIRQ
_IN_R = 1 << LOCK_USED_IN_HARDIRQ_READ
_ON_W = (1 << LOCK_ENABLED_HARDIRQ) | (1 << LOCK_ENABLED_SOFTIRQ)
_ON_R = (1 << LOCK_ENABLED_HARDIRQ_READ) | (1 << LOCK_ENABLED_SOFTIRQ_READ)

_TRACE_DEPTH = 8  # frames kept for "registered at", dependency chains and backtraces


def _exclusive_bit(bit: int) -> int:
    """The usage bit that conflicts with ``bit``: same state, other direction, write."""
    return (bit & ~(LOCK_USAGE_READ_MASK | LOCK_USAGE_DIR_MASK)) | (
        (bit & LOCK_USAGE_DIR_MASK) ^ LOCK_USAGE_DIR_MASK)


def _usage_char(mask: int, bit: int) -> str:
    """get_usage_char(): ``.`` neither, ``-`` in irq, ``+`` irqs enabled, ``?`` both (L5)."""
    if mask & (1 << (bit + LOCK_USAGE_DIR_MASK)):
        return "?" if mask & (1 << bit) else "+"
    return "-" if mask & (1 << bit) else "."


def _usage_chars(mask: int) -> str:
    return "".join(_usage_char(mask, bit) for bit in (
        LOCK_USED_IN_HARDIRQ, LOCK_USED_IN_HARDIRQ_READ,
        LOCK_USED_IN_SOFTIRQ, LOCK_USED_IN_SOFTIRQ_READ))


# -- where: Python frames stand in for %pS --------------------------------------------------

# The acquisition site is the first frame outside the locking code (every file of this
# package), as lockdep's ``_RET_IP_`` is the caller of the lock function.
_PACKAGE = os.path.dirname(os.path.abspath(__file__))
_SKIP_FILES = frozenset(os.path.join(_PACKAGE, name) for name in os.listdir(_PACKAGE)
                        if name.endswith(".py"))

Where = tuple[CodeType, int]  # (code, f_lasti): a frame's position, resolved to a line lazily
Trace = tuple[Where, ...]


@lru_cache(maxsize=4096)
def _line_of(code: CodeType, lasti: int) -> int:
    """The source line of bytecode offset ``lasti`` (what ``frame.f_lineno`` computes, but
    only when a report needs it: reading ``f_lasti`` is several times cheaper)."""
    line = code.co_firstlineno
    for start, end, lineno in code.co_lines():
        if start <= lasti < end:
            return lineno if lineno is not None else line
        if lineno is not None and start <= lasti:
            line = lineno
    return line


def format_where(where: Where | None) -> str:
    """``file:line func``, as :func:`ksim.bug.caller_location` prints a caller."""
    if where is None:
        return "?"
    code, lasti = where
    return "%s:%d %s" % (short_path(code.co_filename), _line_of(code, lasti), code.co_name)


# A trace ends where ksim's code was entered from the runtime (trio, pytest, the stdlib):
# that is the simulated kernel's entry point, as a kernel stack ends at the syscall entry.
_runtime_files: dict[str, bool] = {}


def _is_runtime(path: str) -> bool:
    is_runtime = _runtime_files.get(path)
    if is_runtime is None:
        is_runtime = _runtime_files[path] = is_runtime_file(path)
    return is_runtime


def capture(frame: FrameType | None, depth: int = _TRACE_DEPTH) -> Trace:
    """Up to ``depth`` (code, f_lasti) pairs from ``frame`` outwards, up to the runtime."""
    if frame is None:
        return ()
    out = [(frame.f_code, frame.f_lasti)]
    frame = frame.f_back
    runtime = _runtime_files
    while frame is not None and len(out) < depth:
        code = frame.f_code
        path = code.co_filename
        is_runtime = runtime.get(path)
        if is_runtime is None:
            is_runtime = _is_runtime(path)
        if is_runtime:
            break
        out.append((code, frame.f_lasti))
        frame = frame.f_back
    return tuple(out)


def trace_ends_at(trace: Trace) -> int:
    """How much of a walk taken without looking (the first frame, then every caller) is what
    :func:`capture` keeps: the frames before the first runtime caller."""
    for i in range(1, len(trace)):
        if _is_runtime(trace[i][0].co_filename):
            return i
    return len(trace)


# -- state ----------------------------------------------------------------------------------

class _Class:
    """A lock class: its usage mask, where each state was first registered, its wait type."""

    __slots__ = ("name", "mask", "usage", "wait")

    def __init__(self, name: str, wait: str) -> None:
        self.name = name
        self.mask = 0
        # bit -> (trace, comm, pid, cpu) of the acquisition that first set it
        self.usage: dict[int, tuple[Trace, str, int, int]] = {}
        self.wait = wait


# One entry of a task's held-lock stack (struct held_lock), a plain tuple because it is made
# on every acquisition: (lock, class name, where, in hardirq, trylock, read).
_Held = tuple  # tuple[LockBase, str, Where | None, bool, bool, bool]
_LOCK, _NAME, _WHERE, _IRQ, _TRY, _READ = range(6)


class _TaskState:
    __slots__ = ("stack", "counts", "pending")

    def __init__(self) -> None:
        self.stack: list[_Held] = []
        self.counts: dict[str, int] = {}
        # acquisitions announced ("acquire") and not yet owned ("acquired")
        self.pending: dict[LockBase, _Held] = {}


def _wait_suffix(lock: LockBase) -> str:
    suffix = getattr(lock, "lockdep_suffix", "{....}-{2:2}")
    at = suffix.find("}-")
    return suffix[at + 1:] if at >= 0 else "-{2:2}"


# -- the observer ---------------------------------------------------------------------------

class Lockdep:
    """lockdep-lite.  ``Lockdep()`` then append to ``kernel.lock_observers``, or
    ``Lockdep.attach(kernel)``.  One instance per boot: its graph is that run's."""

    def __init__(self) -> None:
        self.debug_locks = True
        self.reports: list[Report] = []
        self._classes: dict[str, _Class] = {}
        self._tasks: dict[Task, _TaskState] = {}
        # class -> {class taken while holding it: trace of the first such acquisition}
        self._after: dict[str, dict[str, Trace]] = {}
        self._kernel: object | None = None

    # -- attaching -------------------------------------------------------------------------
    @classmethod
    def attach(cls, kernel: object) -> Lockdep:
        self = cls()
        self._kernel = kernel
        kernel.locking.observers.append(self)  # type: ignore[attr-defined]
        return self

    def detach(self) -> None:
        if self._kernel is not None:
            observers = self._kernel.locking.observers  # type: ignore[attr-defined]
            if self in observers:
                observers.remove(self)

    # -- introspection ---------------------------------------------------------------------
    def usage(self, name: str) -> str:
        """The L5 usage string of a class, e.g. ``{?.+.}`` (``{....}`` if never seen)."""
        cls = self._classes.get(name)
        return "{%s}" % _usage_chars(cls.mask if cls else 0)

    def states(self, name: str) -> list[str]:
        """The usage states a class has, e.g. ``["IN-HARDIRQ-W"]``."""
        cls = self._classes.get(name)
        mask = cls.mask if cls else 0
        return [USAGE_STR[bit] for bit in range(LOCK_USAGE_STATES) if mask & (1 << bit)]

    def registered_at(self, name: str, state: str) -> dict[str, object] | None:
        """Where ``state`` (e.g. ``"IN-HARDIRQ-W"``) was first registered for class ``name``:
        ``{"comm", "pid", "cpu", "where", "trace"}``."""
        cls = self._classes.get(name)
        if cls is None or state not in USAGE_STR:
            return None
        entry = cls.usage.get(USAGE_STR.index(state))
        if entry is None:
            return None
        trace, comm, pid, cpu = entry
        return {"comm": comm, "pid": pid, "cpu": cpu,
                "where": format_where(trace[0] if trace else None),
                "trace": [format_where(w) for w in trace]}

    @property
    def dependencies(self) -> set[tuple[str, str]]:
        """Every class->class edge seen: (held, then taken)."""
        return {(a, b) for a, after in self._after.items() for b in after}

    def held_locks(self, task: Task) -> list[str]:
        ts = self._tasks.get(task)
        return [h[_NAME] for h in ts.stack] if ts else []

    # -- the observer entry point ----------------------------------------------------------
    def lock_event(self, event: str, lock: LockBase, flags: int = 0) -> None:
        if not self.debug_locks:
            return
        if event == "acquire":
            self._acquire(lock, flags)
        elif event == "acquired":
            ts = self._tasks.get(_current_var.get())
            held = ts.pending.pop(lock, None) if ts is not None else None
            if ts is None or held is None:
                self._acquired_unseen(lock)
                return
            ts.stack.append(held)
            counts = ts.counts
            name = held[_NAME]
            counts[name] = counts.get(name, 0) + 1
        elif event == "release":
            ts = self._tasks.get(_current_var.get())
            if ts is not None:
                stack = ts.stack
                if stack and stack[-1][_LOCK] is lock:  # released in LIFO order
                    name = stack.pop()[_NAME]
                    counts = ts.counts
                    n = counts[name] - 1
                    if n:
                        counts[name] = n
                    else:
                        del counts[name]
                    return
            self._release(lock, ts)

    def _acquire(self, lock: LockBase, flags: int) -> None:
        task = _current_var.get()
        cpu = task.cpu
        # Walk out of ksim's locking code: the first frame left is the acquisition site.
        frame: FrameType | None = sys._getframe(2)
        read = bool(flags & LOCK_READ)
        trylock = bool(flags & LOCK_TRY)
        while frame is not None and frame.f_code.co_filename in _SKIP_FILES:
            frame = frame.f_back
        where = (frame.f_code, frame.f_lasti) if frame is not None else None
        irq = cpu.hardirq_count > 0
        name = lock.name
        cls = self._classes.get(name)
        if cls is None:
            cls = self._classes[name] = _Class(name, _wait_suffix(lock))
        ts = self._tasks.get(task)
        if ts is None:
            ts = self._tasks[task] = _TaskState()

        # L4: irq usage states
        if irq:
            bits = 0 if trylock else (_IN_R if read else _IN_W)
        elif cpu.irqs_enabled:
            bits = _ON_R if read else _ON_W
        else:
            bits = 0
        new = bits & ~cls.mask
        if new and self._mark(cls, new, lock, where, frame, task, ts):
            return

        if not trylock:
            # L7: the same class again, held by this task
            if name in ts.counts:
                for prev in reversed(ts.stack):
                    if prev[_NAME] == name:
                        self._report_recursive(task, ts, prev, lock, where, read, frame)
                        return
            # dependencies: from the held locks of this irq context, down to the first
            # non-trylock one (its own dependencies cover the rest, as check_prevs_add)
            stack = ts.stack
            i = len(stack) - 1
            while i >= 0:
                prev = stack[i]
                if prev[_IRQ] != irq:
                    break
                after = self._after.get(prev[_NAME])
                if after is None or name not in after:
                    if self._new_dependency(prev, lock, where, read, frame, task, ts):
                        return
                if not prev[_TRY]:
                    break
                i -= 1
        ts.pending[lock] = (lock, name, where, irq, trylock, read)

    def _acquired_unseen(self, lock: LockBase) -> None:
        """An acquisition whose "acquire" was not seen (attached meanwhile)."""
        task = _current_var.get()
        ts = self._tasks.get(task)
        if ts is None:
            ts = self._tasks[task] = _TaskState()
        ts.stack.append((lock, lock.name, None, task.cpu.hardirq_count > 0, False, False))
        ts.counts[lock.name] = ts.counts.get(lock.name, 0) + 1

    def _release(self, lock: LockBase, ts: _TaskState | None) -> None:
        """A release out of LIFO order, or by another task than the one that took it."""
        if ts is not None and self._pop(ts, lock):
            return
        for other in self._tasks.values():
            if other is not ts and self._pop(other, lock):
                return

    @staticmethod
    def _pop(ts: _TaskState, lock: LockBase) -> bool:
        stack = ts.stack
        for i in range(len(stack) - 1, -1, -1):
            held = stack[i]
            if held[_LOCK] is lock:
                del stack[i]
                name = held[_NAME]
                n = ts.counts[name] - 1
                if n:
                    ts.counts[name] = n
                else:
                    del ts.counts[name]
                return True
        return False

    # -- L4/L6: usage ----------------------------------------------------------------------
    def _mark(self, cls: _Class, new: int, lock: LockBase, where: Where | None,
              frame: FrameType | None, task: Task, ts: _TaskState) -> bool:
        """mark_lock(): set each new bit, then check it against its exclusive bits."""
        trace = capture(frame)
        for bit in range(LOCK_USAGE_STATES):
            if not new & (1 << bit):
                continue
            cls.mask |= 1 << bit
            cls.usage[bit] = (trace, task.comm, task.pid, task.cpu.id)
            excl = _exclusive_bit(bit)
            bad = -1
            if cls.mask & (1 << excl):
                bad = excl
            elif not bit & LOCK_USAGE_READ_MASK and cls.mask & (1 << (excl + 1)):
                bad = excl + 1
            if bad >= 0:
                self._report_usage(cls, bad, bit, lock, where, frame, task, ts)
                return True
        return False

    def _report_usage(self, cls: _Class, prev_bit: int, new_bit: int,
                      lock: LockBase, where: Where | None,
                      frame: FrameType | None, task: Task, ts: _TaskState) -> None:
        if not self._debug_locks_off():
            return
        cpu = task.cpu
        name = cls.name
        hc = cpu.hardirq_count
        lines = report_header("WARNING: inconsistent lock state") + [
            "inconsistent {%s} -> {%s} usage." % (USAGE_STR[prev_bit], USAGE_STR[new_bit]),
            "%s/%d [HC%d[%d]:SC0[0]:HE%d:SE1] takes:" % (
                task.comm, task.pid, 1 if hc else 0, hc, 1 if cpu.irqs_enabled else 0),
            self._lock_line(lock, where),
            "{%s} state was registered at:" % USAGE_STR[prev_bit],
        ]
        registered = cls.usage.get(prev_bit)
        lines += ["  " + format_where(w) for w in (registered[0] if registered else ())]
        lines += [
            "",
            "other info that might help us debug this:",
            " Possible unsafe locking scenario:",
            "",
            "       CPU0",
            "       ----",
            "  lock(%s);" % name,
            "  <Interrupt>",
            "    lock(%s);" % name,
            "",
            " *** DEADLOCK ***",
            "",
        ]
        lines += self._held_lines(task, ts)
        lines += self._backtrace(frame, cpu.hardirq_count > 0)
        self._add(lines)

    def _acquiring(self, task: Task, lock: LockBase, where: Where | None,
                   prev: _Held) -> list[str]:
        """``comm/pid is trying to acquire lock:`` ... ``but task is already holding lock:``."""
        return ["%s/%d is trying to acquire lock:" % (task.comm, task.pid),
                self._lock_line(lock, where), "", "but task is already holding lock:",
                self._lock_line(prev[_LOCK], prev[_WHERE]), ""]

    # -- L7: recursion ---------------------------------------------------------------------
    def _report_recursive(self, task: Task, ts: _TaskState, prev: _Held,
                          lock: LockBase, where: Where | None, read: bool,
                          frame: FrameType | None) -> None:
        if not self._debug_locks_off():
            return
        lines = report_header("WARNING: possible recursive locking detected") + \
            self._acquiring(task, lock, where, prev) + \
            recursion_scenario(prev[_NAME], lock.name, prev[_READ], read)
        lines += self._held_lines(task, ts)
        lines += self._backtrace(frame, task.cpu.hardirq_count > 0)
        self._add(lines)

    # -- circular dependencies -------------------------------------------------------------
    def _new_dependency(self, prev: _Held, lock: LockBase, where: Where | None,
                        read: bool, frame: FrameType | None, task: Task,
                        ts: _TaskState) -> bool:
        """check_noncircular(): may ``prev -> lock`` join the graph?  Adds it, or reports
        the cycle it would close and returns True."""
        name = lock.name
        path = self._find_path(name, prev[_NAME])
        if path is None:
            self._after.setdefault(prev[_NAME], {})[name] = capture(frame)
            return False
        self._report_circular(path, prev, lock, where, read, frame, task, ts)
        return True

    def _find_path(self, src: str, dst: str) -> list[str] | None:
        """Shortest class path src -> ... -> dst in the graph (breadth first), or None."""
        after = self._after
        parent: dict[str, str | None] = {src: None}
        queue = deque([src])
        while queue:
            node = queue.popleft()
            for nxt in after.get(node, ()):
                if nxt in parent:
                    continue
                parent[nxt] = node
                if nxt == dst:
                    path = [nxt]
                    back: str | None = node
                    while back is not None:
                        path.append(back)
                        back = parent[back]
                    path.reverse()
                    return path
                queue.append(nxt)
        return None

    def _report_circular(self, path: list[str], prev: _Held, lock: LockBase,
                         where: Where | None, read: bool, frame: FrameType | None,
                         task: Task, ts: _TaskState) -> None:
        if not self._debug_locks_off():
            return
        lines = report_header("WARNING: possible circular locking dependency detected") + \
            self._acquiring(task, lock, where, prev) + [
            "which lock already depends on the new lock.",
            "",
            "",
            "the existing dependency chain (in reverse order) is:",
        ]
        depth = len(path) - 1
        for k in range(depth, -1, -1):
            trace = self._after[path[k - 1]][path[k]] if k else capture(frame)
            lines += ["", "-> #%d %s:" % (k, self._class_name(path[k]))]
            lines += ["       " + format_where(w) for w in trace]
        source, target, parent = path[0], path[-1], path[-2]
        lines += ["", "other info that might help us debug this:", ""]
        if parent != source:
            lines += ["Chain exists of:", "  %s --> %s --> %s" % (source, parent, target), ""]
        lines += [
            " Possible unsafe locking scenario:",
            "",
            "       CPU0                    CPU1",
            "       ----                    ----",
            "  %s(%s);" % ("rlock" if prev[_READ] else "lock", target),
            "                               lock(%s);" % parent,
            "                               lock(%s);" % target,
            "  %s(%s);" % ("rlock" if read else "lock", source),
            "",
            " *** DEADLOCK ***",
            "",
        ]
        lines += self._held_lines(task, ts)
        lines += self._backtrace(frame, task.cpu.hardirq_count > 0)
        self._add(lines)

    # -- report helpers --------------------------------------------------------------------
    def debug_locks_off(self) -> None:
        """``debug_locks_off()`` from outside (the panic path): no further reports."""
        self.debug_locks = False

    def _debug_locks_off(self) -> bool:
        """debug_locks_off(): True if this call turned lockdep off (and so may report).

        An oops or a panic has already switched lockdep off in the kernel (oops_enter());
        then the report is suppressed."""
        if not self.debug_locks:
            return False
        self.debug_locks = False
        kernel = maybe_current_kernel()
        if kernel is not None and (kernel.panic.oops_count
                                   or kernel.panic.panic_message is not None):
            return False
        return True

    def _class_name(self, name: str) -> str:
        """print_lock_name(): ``(name){usage}-{o:i}``."""
        cls = self._classes.get(name)
        return "(%s){%s}%s" % (name, _usage_chars(cls.mask if cls else 0),
                               cls.wait if cls else "-{2:2}")

    def _lock_line(self, lock: LockBase, where: Where | None) -> str:
        """print_lock(): ``ffff888003a1c018 (name){usage}-{o:i}, at: where``."""
        return "%016x %s, at: %s" % (lock.addr, self._class_name(lock.name),
                                     format_where(where))

    def _held_lines(self, task: Task, ts: _TaskState) -> list[str]:
        """lockdep_print_held_locks()."""
        stack = ts.stack
        me = "%s/%d" % (task.comm, task.pid)
        if not stack:
            return ["no locks held by %s." % me]
        lines = ["%d lock%s held by %s:" % (len(stack), "s" if len(stack) > 1 else "", me)]
        lines += [" #%d: %s" % (i, self._lock_line(h[_LOCK], h[_WHERE]))
                  for i, h in enumerate(stack)]
        return lines

    @staticmethod
    def _backtrace(frame: FrameType | None, irq: bool) -> list[str]:
        """``stack backtrace:`` and dump_stack()."""
        tag = "IRQ" if irq else "TASK"
        return (["", "stack backtrace:", cpu_pid_line(), "Call Trace:", " <%s>" % tag]
                + [" " + format_where(w) for w in capture(frame)] + [" </%s>" % tag])

    def _add(self, lines: list[str]) -> None:
        self.reports.append(add_report("lockdep", lines[1], lines, KERN_WARNING))

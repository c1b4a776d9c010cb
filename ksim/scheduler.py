"""A deterministic scheduler for simulated CPUs, threads and interrupts.

trio decides which of its runnable tasks goes next by its own rules (deliberately shuffled,
and by memory address for tasks waking at the same time), so seeding trio cannot make a
concurrent run repeatable.  This scheduler owns who runs instead: exactly one simulated
thread holds the *baton* at a time; at each preemption point (lock acquire, each printk step,
each chunk of a simulated memory copy, :func:`preempt_point`) the strategy picks the next
thread among the candidates.

The threads are not trio tasks.  One trio task, the *driver*, runs every simulated thread's
coroutine itself (``coro.send`` in the thread's own context): a switch is a ``yield`` back to
the driver, which resumes the next thread — no trio scheduling round per switch, and staying
on the same thread costs nothing.  Should a thread await a trio primitive directly, the
driver forwards the trap to trio and the whole machine waits with that CPU.  Nor does a
switch move a thread between lists: the *ready list* holds the runnable threads and the running
one, in tid order, and while no ready thread waits behind another's CPU it is the candidate list
as it stands.

The CPU model: each thread is bound to a CPU, and a CPU runs one thread at a time.  A thread
may only be replaced on its CPU where the kernel could preempt it (preempt count zero,
interrupts on, not in an interrupt); threads on other CPUs interleave freely, as on SMP.
Interrupts raised on a CPU are delivered at its next preemption point with interrupts
enabled, and the handler runs *on top of* the interrupted thread (in its coroutine, with
``hardirq_count`` raised), so a lock the thread holds is a lock the handler deadlocks on.

Waiting is also the scheduler's: a thread that waits for a lock is *blocked* and becomes
runnable when the releaser hands it the lock — a synchronous, deterministic decision.  A
sleeping thread waits on the scheduler's own timer queue; when nothing is runnable the driver
lets trio's virtual clock advance to the earliest deadline and wakes the sleepers due, in
(deadline, thread) order.  When nothing can run and nothing sleeps, the run ends with a
deadlock verdict naming every CPU's held and awaited locks; a run never hangs.

Nor does a run that keeps going without end: a thread that busy-polls for something only a
lower-priority thread can provide runs forever under a priority strategy (PCT), an interleaving
livelock.  ``step_budget``, when set, bounds the preemption points of a run; past it the run ends
with a *livelock verdict*: who ran in the second half of the budget, who was left waiting to run,
and the budget's reason (``budget_note``).  Whoever installs the scheduler sets the budget from
its configuration (``ksim stress``: see :func:`ksim.stress.step_budget`).
"""

from __future__ import annotations

import bisect
import contextvars
import heapq
import itertools
import operator
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ksim.bug import add_report
from ksim.cpu import CPU
from ksim.locking.common import Deadlock
from ksim.current import _current as _current_var
from ksim.current import Task, current, set_current
from ksim.nmi import default_do_nmi
from ksim.preempt import hardirq_context, nmi_context
from ksim.printk import wake_up_klogd_work_func
from ksim.watchdog import lockup_detected
from ksim.reboot import MachineHang
from ksim.strategy import Recorder, Strategy, encode_schedule

if TYPE_CHECKING:
    from ksim.kernel import Kernel

RUNNABLE = "runnable"
RUNNING = "running"
BLOCKED = "blocked"
SLEEPING = "sleeping"
DONE = "done"
FROZEN = "frozen"  # its CPU was stopped (the panic path): it never runs again, holding its CPU

_OFF_CPU = frozenset((BLOCKED, DONE, SLEEPING))
_READY = frozenset((RUNNABLE, RUNNING))  # the states of the threads in the ready list
_TID = operator.attrgetter("tid")  # the sort key of the candidate lists
_SWITCH = object()  # what a simulated thread yields to the driver: "another thread runs now"


class TrioInSimThread(RuntimeError):
    """A simulated thread used a trio primitive the deterministic scheduler cannot give it."""


@types.coroutine
def _to_driver() -> Any:
    """Suspend the running simulated thread; the driver resumes whoever holds the baton."""
    yield _SWITCH


@types.coroutine
def _forward(trap: object) -> Any:
    """Hand a trio trap that a simulated thread yielded up to trio, and its answer back."""
    return (yield trap)
IrqHandler = Callable[[int, int], Awaitable[None]]
NmiHandler = Callable[[int, int], Awaitable[None]]
CoreIrq = Callable[[], Awaitable[None]]
POINT_NS = 50  # modelled cost of the work between two preemption points, in virtual ns


@attrs.define(eq=False)
class SimThread:
    """A simulated kernel thread driven by the scheduler."""

    tid: int
    task: Task
    cpu: CPU = attrs.field(init=False)  # the task's CPU: the hot path reads it so often
    state: str = RUNNABLE
    coro: Coroutine[Any, Any, object] | None = None
    context: contextvars.Context | None = None
    blocked_on: object = None
    spinning: bool = False
    points: int = 0  # preemption points this thread passed (the livelock verdict's "ran")
    last_point: int = 0  # the scheduler's point counter when it last passed one

    def __attrs_post_init__(self) -> None:
        self.cpu = self.task.cpu

    def __lt__(self, other: SimThread) -> bool:  # candidate lists are kept in tid order
        return self.tid < other.tid

    @property
    def name(self) -> str:
        return self.task.comm

    def __repr__(self) -> str:
        return f"<thread {self.tid} {self.task.comm} cpu{self.task.cpu.id} {self.state}>"


class SchedEvent:
    """A one-shot event for simulated threads: ``set`` wakes the waiter deterministically."""

    __slots__ = ("_sched", "_waiter", "_is_set", "_what", "_spin")

    def __init__(self, sched: Scheduler, what: object = None, spin: bool = False) -> None:
        self._sched = sched
        self._waiter: SimThread | None = None
        self._is_set = False
        self._what = what
        self._spin = spin

    def is_set(self) -> bool:
        return self._is_set

    def set(self) -> None:
        self._is_set = True
        if self._waiter is not None:
            self._sched.wake(self._waiter)
            self._waiter = None

    async def wait(self) -> None:
        thread = self._sched.current_thread()
        if thread is None and not self._is_set:
            raise RuntimeError("SchedEvent.wait() outside a simulated thread")
        while not self._is_set:
            self._waiter = thread
            # A spinning CPU still takes NMIs, and interrupts if they are enabled: the
            # scheduler wakes the spinner for them, it takes them, and spins on.
            await self._sched.block(thread, self._what, spinning=self._spin)  # type: ignore[arg-type]


class Scheduler:
    """Drives the simulated threads of one kernel; see the module docstring.

    ``irq_budget`` (interrupts the strategy may still inject) and ``irq_handler`` are plain
    attributes: whoever drives the scheduler may change them between preemption points (the
    scenario runner queues the interrupts of its ``irq`` steps that way).
    """

    # A memory copy is cut into cache lines, each a preemption point (ksim.mm.memcpy_to).
    preemptible_copies = True

    def __init__(self, kernel: Kernel, strategy: Strategy, *, irq_budget: int = 0,
                 irq_handler: IrqHandler | None = None) -> None:
        self.kernel = kernel
        kernel.locking.lock_stat = True  # hold and wait times mean something once work costs time
        self.strategy = Recorder(strategy)
        # preempt_point's pick, as Recorder.pick makes it: the chain of strategies told the
        # point (the wrapped one, then any it wraps), the pick recorded.
        self._inner = strategy
        self._below = self.strategy.chain[1:]
        self._decisions = self.strategy.decisions
        self.threads: list[SimThread] = []
        self.running: SimThread | None = None
        self.cpu_curr: list[SimThread | None] = [None] * len(kernel.cpus)
        # The ready list: the runnable threads and the running one, in tid order, with their
        # tids and CPU numbers alongside (bisected and masked without a call per thread).  A
        # switch at a point changes none of it: the running thread stays, now runnable.
        self._ready: list[SimThread] = []
        self._ready_tids: list[int] = []
        self._ready_cpus: list[int] = []
        self._ready_version = 0  # counts the ready list's changes (_tested_candidates' cache)
        self._cands_cache: tuple[int, int, list[SimThread], list[SimThread]] = (-1, 0, [], [])
        # What makes the ready list itself the candidate list (see _candidates): the ready
        # threads bound to each CPU, how many find their CPU occupied by another thread, and
        # whether any CPU was stopped.
        self._ready_on = [0] * len(kernel.cpus)
        self._contested = 0
        self._cpu_stopped = False
        self._cpus = tuple(kernel.cpus)
        ncpus = len(kernel.cpus)
        self.pending_irqs = [0] * ncpus
        self.irq_budget = irq_budget
        self.irq_handler = irq_handler
        self.irqs_delivered = 0
        # NMIs: raised at seeded points (``nmi_budget``) or by the kernel itself (the
        # hard-lockup detector, the panic path's stop NMI); taken whatever the interrupt flag.
        self.pending_nmis: list[deque[NmiHandler | None]] = [deque() for _ in range(ncpus)]
        self.nmi_budget = 0
        self.nmi_handler: NmiHandler | None = None
        self.nmis_delivered = 0
        # The kernel's own interrupts (irq_work's self-IPI, the watchdog's timer), each with
        # its handler; and the panic path's REBOOT_VECTOR stop IPI.
        self.pending_core_irqs: list[deque[CoreIrq]] = [deque() for _ in range(ncpus)]
        self.pending_stop = [False] * ncpus
        self.points = 0
        self.switches = 0
        self.verdict: str | None = None
        # The livelock bound (see the module docstring): None runs without one.
        self.step_budget: int | None = None
        self.budget_note = ""
        self._half_budget: dict[int, int] | None = None  # points per thread at budget / 2
        self.trace: object = None  # a ksim.trace.Trace when --trace asked for one
        self._timers: list[tuple[float, int, SimThread]] = []  # (deadline, seq, thread) heap
        self._timer_seq = 0
        self._wakeup = trio.Event()
        self._all_done = trio.Event()
        self._started = False
        self.dead = False  # the driver has exited: the machine stopped

    # -- threads ------------------------------------------------------------------------------
    def spawn(self, fn: Callable[..., Awaitable[object]], *args: object, name: str,
              cpu: int = 0) -> Task:
        kernel = self.kernel
        if kernel._nursery is None or self.dead:
            raise RuntimeError("the kernel is not running")
        if not self._started:
            self._started = True
            kernel._nursery.start_soon(self._driver, name="ksim:scheduler")
        task = kernel.new_task(name, cpu)
        thread = SimThread(len(self.threads), task)
        task.thread = thread
        thread.context = contextvars.copy_context()
        thread.context.run(set_current, task)
        thread.coro = fn(*args)  # type: ignore[assignment]
        self.threads.append(thread)
        self.strategy.new_thread(thread.tid)
        self._add_runnable(thread)
        if self._all_done.is_set():
            self._all_done = trio.Event()
        self._wakeup.set()
        return task

    def is_live(self, thread: SimThread) -> bool:
        """Still part of the run: not finished, not frozen on a stopped CPU."""
        return thread.state != DONE and thread.state != FROZEN and not thread.cpu.stopped

    async def join(self) -> None:
        """Wait (from outside the simulated threads) until every thread has finished (or
        was frozen on a stopped CPU)."""
        if any(self.is_live(t) for t in self.threads):
            await self._all_done.wait()

    # -- the driver -----------------------------------------------------------------------------
    async def _driver(self) -> None:
        """Run simulated threads one at a time until the kernel's nursery is cancelled."""
        try:
            while True:
                thread = self.running
                if thread is not None:
                    await self._step(thread)
                    continue
                cands = self._candidates(None)
                if cands:
                    self._run(self.strategy.pick(cands, None))
                    continue
                if self._timers:
                    await self._wait_for_timer()
                    continue
                if any(self.is_live(t) and t.state in (BLOCKED, RUNNABLE) for t in self.threads):
                    await self._stuck()
                    continue
                self._wakeup = trio.Event()
                await self._wakeup.wait()
        finally:
            self.dead = True
            for thread in self.threads:
                if thread.coro is not None and thread.state != DONE:
                    thread.state = DONE
                    try:
                        thread.context.run(thread.coro.close)  # type: ignore[union-attr]
                    except BaseException:  # noqa: S110 - the kernel is going away anyway
                        pass

    async def _step(self, thread: SimThread) -> None:
        """Resume ``thread`` until it hands the baton on, then whoever holds the baton next,
        until a thread finishes or dies or no one holds it (one call drives a whole run of
        switches: resuming the next thread is all a switch costs the driver)."""
        coro, run = thread.coro, thread.context.run  # type: ignore[union-attr]
        value: object = None
        error: BaseException | None = None
        # Every thread runs inside this one trio task: a cancel scope a thread enters belongs
        # to the task, so one left open across a switch corrupts the task's scope stack.
        task = trio.lowlevel.current_task()
        status = getattr(task, "_cancel_status", None)
        while True:
            try:
                if error is None:
                    yielded = run(coro.send, value)  # type: ignore[union-attr]
                else:
                    yielded = run(coro.throw, error)  # type: ignore[union-attr]
            except StopIteration:
                self._finish(thread)
                return
            except BaseException as exc:
                self._finish(thread)
                if isinstance(exc, Deadlock):
                    self.verdict = exc.report.title if exc.report else "deadlock"
                    raise MachineHang(self.verdict) from None
                raise
            if yielded is _SWITCH:
                if getattr(task, "_cancel_status", None) is not status:
                    error = TrioInSimThread(
                        f"{thread.task.comm} (cpu {thread.cpu.id}) reached a preemption point "
                        "inside a trio cancel scope (trio.move_on_after, fail_after, "
                        "CancelScope); a simulated thread must wait through the kernel "
                        "(msleep, locks, wait events), not through trio")
                    continue
                thread = self.running  # type: ignore[assignment]
                if thread is None:
                    return
                coro, run = thread.coro, thread.context.run  # type: ignore[union-attr]
                value = None
                continue
            try:  # a trio primitive awaited directly: the machine waits with this CPU
                value, error = await _forward(yielded), None
            except BaseException as exc:
                value, error = None, exc

    def _finish(self, thread: SimThread) -> None:
        if thread.state in _READY:
            self._unready(thread, DONE)
        else:  # it failed on its way to blocking or sleeping
            thread.state = DONE
        self._leave_cpu(thread)
        if self.running is thread:
            self.running = None
        self._check_all_done()

    def _check_all_done(self) -> None:
        if not any(self.is_live(t) for t in self.threads):
            self._all_done.set()

    def _now(self) -> float:
        """The kernel's time in seconds: trio's virtual clock plus the modelled work of every
        preemption point so far (what local_clock() reads), so a CPU that keeps working
        lets time pass for the others' timers too."""
        return trio.current_time() + self.kernel.work_ns * 1e-9

    def _wake_due(self) -> None:
        now = self._now()
        timers = self._timers
        while timers and timers[0][0] <= now:
            _, _, thread = heapq.heappop(timers)
            if thread.state == SLEEPING:
                self._add_runnable(thread)

    async def _wait_for_timer(self) -> None:
        """Let virtual time run to the earliest deadline (or a spawn), then wake those due."""
        self._wakeup = trio.Event()
        with trio.move_on_at(self._timers[0][0] - self.kernel.work_ns * 1e-9):
            await self._wakeup.wait()
        self._wake_due()

    def current_thread(self) -> SimThread | None:
        thread = current().thread
        return thread if thread is not None and thread is self.running else None

    # -- the baton ------------------------------------------------------------------------------
    def _add_runnable(self, thread: SimThread) -> None:
        """``thread`` (new, blocked or sleeping) joins the ready list."""
        thread.state = RUNNABLE
        tid = thread.tid
        cpu = thread.cpu.id
        i = bisect.bisect_left(self._ready_tids, tid)
        self._ready_version += 1
        self._ready.insert(i, thread)
        self._ready_tids.insert(i, tid)
        self._ready_cpus.insert(i, cpu)
        self._ready_on[cpu] += 1
        occupant = self.cpu_curr[cpu]
        if occupant is not None and occupant is not thread:
            self._contested += 1

    def _unready(self, thread: SimThread, state: str) -> None:
        """``thread`` (running, or runnable) leaves the ready list for ``state``."""
        thread.state = state
        i = bisect.bisect_left(self._ready_tids, thread.tid)
        self._ready_version += 1
        del self._ready[i], self._ready_tids[i], self._ready_cpus[i]
        cpu = thread.cpu.id
        self._ready_on[cpu] -= 1
        occupant = self.cpu_curr[cpu]
        if occupant is not None and occupant is not thread:
            self._contested -= 1

    def _leave_cpu(self, thread: SimThread) -> None:
        """``thread`` (no longer ready) frees its CPU."""
        cpu = thread.cpu.id
        if self.cpu_curr[cpu] is thread:
            self.cpu_curr[cpu] = None
            self._contested -= self._ready_on[cpu]  # they waited behind it; no longer

    def _candidates(self, running: SimThread | None) -> list[SimThread]:
        """The ready threads that may take (or keep) their CPU now, in tid order: the running
        one (``running``, or None if it stopped running) and the runnable ones.

        A CPU's occupant that was preempted at a point can be replaced only if the kernel
        could preempt it there (preempt count zero, interrupts on, not in an interrupt); a
        blocked, sleeping or finished occupant leaves the CPU free, a spinning one does not.

        When no ready thread finds its CPU occupied by another and no CPU was stopped, that
        is every ready thread, whatever the CPUs' state (a CPU per thread, or each CPU's other
        threads blocked): the ready list itself, no test per thread or CPU.  Either list is
        valid until the ready list next changes (a strategy reads it and returns).
        """
        if not self._contested and not self._cpu_stopped:
            return self._ready
        return self._tested_candidates(running)

    def _tested_candidates(self, running: SimThread | None) -> list[SimThread]:
        """:meth:`_candidates`, decided per CPU: a free CPU lets all its ready threads in, a
        held or stopped one only its occupant if that is ready (a held CPU's) or running (a
        stopped CPU's: it runs on until it stops itself).

        The list is kept until the ready list or that per-CPU decision changes: a thread
        holding its CPU through many points (a long copy under a lock) sees the same list.
        """
        cpu_curr = self.cpu_curr
        held = 0  # a bit per CPU that lets none of its ready threads in but ``kept``
        kept: list[SimThread] = []
        for cpu, occupant in zip(self._cpus, cpu_curr):
            if cpu.stopped:
                held |= 1 << cpu.id
                if occupant is not None and occupant is running:
                    kept.append(occupant)
            elif (occupant is not None
                    and (cpu.preempt_count or not cpu.irqs_enabled or cpu.hardirq_count)
                    and (occupant.state not in _OFF_CPU or occupant.spinning)):
                held |= 1 << cpu.id
                if occupant.state in _READY:
                    kept.append(occupant)
        if not held:
            return self._ready
        cache = self._cands_cache
        if cache[0] == self._ready_version and cache[1] == held and cache[2] == kept:
            return cache[3]
        allowed = [not held >> i & 1 for i in range(len(cpu_curr))]
        cands = list(itertools.compress(self._ready, map(allowed.__getitem__, self._ready_cpus)))
        for t in kept:
            bisect.insort(cands, t, key=_TID)
        self._cands_cache = (self._ready_version, held, kept, cands)
        return cands

    def _run(self, thread: SimThread) -> None:
        """Give ``thread`` (a runnable one) the baton, and its CPU (preempt_point has a copy
        inline)."""
        cpu = thread.cpu.id
        previous = self.cpu_curr[cpu]
        if previous is None:  # the others ready on this CPU wait behind it from now on
            self._contested += self._ready_on[cpu] - 1
        elif previous is not thread and previous.state not in _READY:
            # It waited behind ``previous``; a ready ``previous`` would now wait behind it.
            self._contested -= 1
        thread.state = RUNNING
        self.running = thread
        self.cpu_curr[cpu] = thread
        if self.trace is not None:
            self.trace.run(thread, previous)  # type: ignore[attr-defined]

    def _pass_baton(self, running: SimThread | None) -> None:
        """The baton holder stops running: choose who goes next, or leave it to the arbiter."""
        cands = self._candidates(None)
        if cands:
            self._run(self.strategy.pick(cands, running))
            return
        self.running = None

    # -- preemption points --------------------------------------------------------------------
    @types.coroutine
    def preempt_point(self) -> Generator[object, object, None]:
        """A preemption point of the running thread (``await sched.preempt_point()``).

        A generator-based coroutine that yields ``_SWITCH`` to the driver itself, not an
        ``async def`` awaiting :func:`_to_driver`: a switch suspends and resumes the thread
        through every frame of its stack, and this is the one every switch passes through.
        """
        thread = _current_var.get().thread
        if thread is None or thread is not self.running:
            return
        points = self.points = self.points + 1
        thread.points += 1
        thread.last_point = points
        if self.step_budget is not None and points * 2 >= self.step_budget:
            self._budget_check()
        self.kernel.work_ns += POINT_NS
        if self._timers and self._timers[0][0] <= self._now():
            self._wake_due()  # work took the time a sleeper or a spinning delay waited for
        strategy = self.strategy
        strategy.point = points
        if self.irq_budget:
            target = strategy.irq(len(self.cpu_curr))
            if target is not None:
                self.irq_budget -= 1
                self.raise_irq(target)
        if self.nmi_budget:
            strategy.point = self.points
            target = strategy.nmi(len(self.cpu_curr))
            if target is not None:
                self.nmi_budget -= 1
                self.raise_nmi(target)
        cpu = thread.cpu
        i = cpu.id
        if self.pending_nmis[i] or self.pending_stop[i] or self.pending_core_irqs[i] \
                or self.pending_irqs[i]:
            yield from self._take_interrupts(thread, cpu)
        cands = self._ready
        if len(cands) < 2:  # no one else wants the baton: no decision to make
            return
        if self._contested or self._cpu_stopped:  # else _candidates() is the ready list
            cands = self._tested_candidates(thread)
            if len(cands) < 2:
                return
        inner = self._inner  # Recorder.pick, inline
        inner.point = points
        if self._below:
            for wrapped in self._below:
                wrapped.point = points
        nxt = inner.pick(cands, thread)
        self._decisions.append(nxt.tid)
        if nxt is thread:
            return
        self.switches += 1
        thread.state = RUNNABLE  # it stays in the ready list
        # self._run(nxt), inline (a call costs as much as the rest of the switch):
        cpu_id = nxt.cpu.id
        previous = self.cpu_curr[cpu_id]
        if previous is None:
            self._contested += self._ready_on[cpu_id] - 1
        elif previous is not nxt and previous.state not in _READY:
            self._contested -= 1
        nxt.state = RUNNING
        self.running = nxt
        self.cpu_curr[cpu_id] = nxt
        if self.trace is not None:
            self.trace.run(nxt, previous)  # type: ignore[attr-defined]
        yield _SWITCH

    async def irq_window(self) -> None:
        """Interrupts were just enabled again: what became pending while they were off is
        taken now, as the CPU does at its ``sti``/``popf``, before the next instruction (the
        printk path calls this where it restores the interrupt flag; a driver's
        ``spin_unlock_irqrestore`` is a plain call, so it takes them at its next point)."""
        thread = current().thread
        if thread is None or thread is not self.running:
            return
        cpu = thread.cpu
        i = cpu.id
        if self.pending_stop[i] or self.pending_core_irqs[i] or self.pending_irqs[i] \
                or self.pending_nmis[i]:
            await self._take_interrupts(thread, cpu)

    async def _take_interrupts(self, thread: SimThread, cpu: CPU) -> None:
        """What the CPU takes at this point: an NMI whatever the interrupt flag; with
        interrupts enabled, the panic path's stop IPI, printk's irq_work, one interrupt."""
        if self.pending_nmis[cpu.id] and not cpu.nmi_count:
            await self._deliver_nmi(thread, cpu)
        if not cpu.irqs_enabled or cpu.hardirq_count or cpu.nmi_count:
            return
        if self.pending_stop[cpu.id]:
            await self._stop_this_cpu(thread)
        core = self.pending_core_irqs[cpu.id]
        while core:
            handler = core.popleft()
            with hardirq_context(cpu):
                await handler()
        if self.pending_irqs[cpu.id]:
            await self._deliver_irq(thread, cpu)

    def _poke(self, cpu: int) -> None:
        """Something is pending for ``cpu``: a CPU spinning there takes it now (an NMI at
        once, anything else if its interrupts are enabled)."""
        occupant = self.cpu_curr[cpu]
        if occupant is not None and occupant.state == BLOCKED and occupant.spinning:
            c = occupant.cpu
            if self.pending_nmis[cpu] and not c.nmi_count or (
                    c.irqs_enabled and not c.hardirq_count and not c.nmi_count):
                self._add_runnable(occupant)
                self._wakeup.set()

    def raise_irq(self, cpu: int) -> None:
        """Raise an interrupt on ``cpu`` now (outside the strategy's own injections).

        Like an injected one, it is handled at that CPU's next preemption point with
        interrupts enabled, by ``irq_handler``, on top of whatever thread runs there.
        """
        if not 0 <= cpu < len(self.pending_irqs):
            raise ValueError(f"no CPU {cpu} (the machine has {len(self.pending_irqs)})")
        self.pending_irqs[cpu] += 1
        self._poke(cpu)

    def raise_nmi(self, cpu: int, handler: NmiHandler | None = None) -> None:
        """Raise an NMI on ``cpu``: handled at its next preemption point, even with
        interrupts disabled, by ``handler``, else ``nmi_handler``, else as an unknown NMI
        (ksim.nmi)."""
        if not 0 <= cpu < len(self.pending_nmis):
            raise ValueError(f"no CPU {cpu} (the machine has {len(self.pending_nmis)})")
        self.pending_nmis[cpu].append(handler)
        self._poke(cpu)

    def raise_core_irq(self, cpu: int, handler: CoreIrq) -> None:
        """An interrupt of the kernel's own on ``cpu`` (a timer, irq_work's self-IPI)."""
        if handler not in self.pending_core_irqs[cpu]:
            self.pending_core_irqs[cpu].append(handler)
            self._poke(cpu)

    def raise_irq_work(self, cpu: int) -> None:
        """irq_work's self-IPI: printk's deferred output, printed from an interrupt."""
        self.raise_core_irq(cpu, wake_up_klogd_work_func)

    async def _deliver_irq(self, thread: SimThread, cpu: CPU) -> None:
        self.pending_irqs[cpu.id] -= 1
        handler = self.irq_handler
        if handler is None:
            return
        self.irqs_delivered += 1
        number = self.irqs_delivered
        if self.trace is not None:
            self.trace.irq_begin(cpu.id, number)  # type: ignore[attr-defined]
        try:
            with hardirq_context(cpu):
                await handler(number, cpu.id)
        finally:
            if self.trace is not None:
                self.trace.irq_end(cpu.id, number)  # type: ignore[attr-defined]

    async def _deliver_nmi(self, thread: SimThread, cpu: CPU) -> None:
        handler = self.pending_nmis[cpu.id].popleft() or self.nmi_handler or default_do_nmi
        self.nmis_delivered += 1
        number = self.nmis_delivered
        if self.trace is not None:
            self.trace.irq_begin(cpu.id, number, nmi=True)  # type: ignore[attr-defined]
        try:
            with nmi_context(cpu):
                await handler(number, cpu.id)
        finally:
            if self.trace is not None:
                self.trace.irq_end(cpu.id, number)  # type: ignore[attr-defined]

    # -- stopping CPUs (the panic path) ---------------------------------------------------------
    def halt_cpu(self, cpu: CPU) -> None:
        """stop_this_cpu() on ``cpu``: halted for good, its thread frozen where it is (the
        locks it holds stay held); nothing bound to it ever runs again."""
        cpu.stopped = True  # only here, under this scheduler (what _candidates relies on)
        self._cpu_stopped = True
        cpu.online = False
        cpu.irqs_enabled = False
        self.pending_stop[cpu.id] = False
        occupant = self.cpu_curr[cpu.id]
        if occupant is not None and occupant.state in (RUNNABLE, BLOCKED, SLEEPING):
            if occupant.state == RUNNABLE:
                self._unready(occupant, FROZEN)
            else:
                occupant.state = FROZEN
        self._check_all_done()
        self._wakeup.set()

    def send_stop_ipi(self, cpus: list[CPU]) -> None:
        """The REBOOT_VECTOR interrupt: a CPU takes it if its interrupts are enabled (idle,
        preempted at a point, or spinning with interrupts on); otherwise it is pending."""
        for cpu in cpus:
            occupant = self.cpu_curr[cpu.id]
            if occupant is None or occupant.state == FROZEN:
                self.halt_cpu(cpu)
            elif occupant.state != RUNNING and cpu.irqs_enabled and not cpu.hardirq_count \
                    and not cpu.nmi_count:
                self.halt_cpu(cpu)
            else:
                self.pending_stop[cpu.id] = True

    def send_stop_nmi(self, cpus: list[CPU]) -> None:
        """The NMI fallback: every CPU stops, whatever it was doing."""
        for cpu in cpus:
            self.halt_cpu(cpu)

    async def _stop_this_cpu(self, thread: SimThread) -> None:
        """The running thread's CPU stops here and now: it never returns."""
        self.halt_cpu(thread.cpu)
        self._unready(thread, FROZEN)
        self.running = None
        self._pass_baton(None)
        await _to_driver()
        raise AssertionError("a thread of a stopped CPU ran again")  # pragma: no cover

    async def freeze_current(self) -> None:
        """panic_smp_self_stop(): the current CPU stops itself for good."""
        thread = self.current_thread()
        if thread is None:
            await trio.sleep_forever()
            return
        await self._stop_this_cpu(thread)

    # -- blocking and waking --------------------------------------------------------------------
    async def block(self, thread: SimThread, what: object, *, spinning: bool = False) -> None:
        """``thread`` waits for ``what`` until :meth:`wake`; a spinner keeps its CPU busy and
        still takes what is pending for its CPU (NMIs; interrupts if they are enabled)."""
        self._unready(thread, BLOCKED)
        thread.blocked_on = what
        thread.spinning = spinning
        if not spinning:
            self._leave_cpu(thread)
        self.running = None
        self._pass_baton(thread)
        await _to_driver()
        thread.blocked_on = None
        thread.spinning = False
        if spinning:
            await self._take_interrupts(thread, thread.cpu)

    def wake(self, thread: SimThread) -> None:
        if thread.state == BLOCKED:
            self._add_runnable(thread)
            self._wakeup.set()

    async def sleep(self, seconds: float) -> None:
        """A virtual-time sleep of the current thread (msleep under the scheduler)."""
        await self._sleep(seconds, spinning=False)

    async def spin_delay(self, seconds: float) -> None:
        """mdelay()/udelay(): virtual time passes while the thread keeps its CPU busy."""
        await self._sleep(seconds, spinning=True)

    async def _sleep(self, seconds: float, *, spinning: bool) -> None:
        thread = self.current_thread()
        if thread is None:
            await trio.sleep(seconds)
            return
        self._unready(thread, SLEEPING)
        thread.spinning = spinning
        if not spinning:
            self._leave_cpu(thread)
        self._timer_seq += 1
        heapq.heappush(self._timers, (self._now() + seconds, self._timer_seq, thread))
        self.running = None
        self._pass_baton(None)
        await _to_driver()
        thread.spinning = False

    def new_event(self, task: Task, what: object = None,
                  spin: bool = False) -> SchedEvent | trio.Event:
        """An event for ``task`` to wait on: the scheduler's if it drives the task, trio's
        for a task of the shell (which waits in trio, outside the simulated threads)."""
        if task.thread is None:
            return trio.Event()
        return SchedEvent(self, what, spin)

    # -- verdicts ---------------------------------------------------------------------------------
    async def _stuck(self) -> None:
        """Nothing can run and nothing sleeps.  A CPU spinning forever is what the lockup
        detectors catch (ksim.watchdog); if they do not end the run, it is a deadlock."""
        spinners = [t for t in self.threads if self.is_live(t) and t.state == BLOCKED
                    and t.spinning and self.cpu_curr[t.cpu.id] is t]
        if spinners and await lockup_detected(self.kernel, self, spinners):
            return
        self._deadlock()

    def _deadlock(self) -> None:
        lines = ["ksim: deadlock: no CPU can make progress"]
        for cpu in self.kernel.cpus:
            held = ", ".join(getattr(lock, "name", "?") for lock in cpu.held_locks) or "none"
            occupant = self.cpu_curr[cpu.id]
            state = " (stopped)" if cpu.stopped else ""
            lines.append(" CPU%d%s: %s holds [%s]" % (
                cpu.id, state, occupant.task.comm if occupant else "idle", held))
        for thread in self.threads:
            if thread.state == BLOCKED and self.is_live(thread):
                lines.append(" %s/%d (cpu %d) waits for %s" % (
                    thread.task.comm, thread.task.pid, thread.task.cpu.id,
                    getattr(thread.blocked_on, "name", thread.blocked_on)))
        self.verdict = lines[0]
        add_report("deadlock", lines[0], lines)
        raise MachineHang(lines[0])

    def _budget_check(self) -> None:
        if self._half_budget is None:
            self._half_budget = {t.tid: t.points for t in self.threads}
        assert self.step_budget is not None
        if self.points >= self.step_budget:
            self._livelock()

    def _livelock(self) -> None:
        budget = self.step_budget or 0
        half = self._half_budget or {}
        title = "ksim: livelock: the run did not end within %d preemption points" % budget
        lines = [title]
        if self.budget_note:
            lines.append(" budget: " + self.budget_note)
        window = budget - budget // 2
        ran = sorted(((t.points - half.get(t.tid, 0), t) for t in self.threads
                      if t.points > half.get(t.tid, 0)), key=lambda e: (-e[0], e[1].tid))
        for n, t in ran:
            lines.append(" ran:     %s (cpu %d) %d of the last %d points" % (
                t.task.comm, t.task.cpu.id, n, window))
        for t in self.threads:
            if t.state != DONE and t.points == half.get(t.tid, 0):
                lines.append(" starved: %s (cpu %d) %s, %s" % (
                    t.task.comm, t.task.cpu.id, t.state,
                    "last ran at point %d" % t.last_point if t.points else "never ran"))
        self.verdict = title
        add_report("livelock", title, lines)
        raise MachineHang(title)

    def schedule_string(self) -> str:
        return encode_schedule(self.strategy.decisions)


def preempt_point() -> Awaitable[None]:
    """An explicit preemption point for driver authors, ``await preempt_point()`` (a no-op
    outside the deterministic scheduler).

    A plain function returning the scheduler's awaitable rather than an ``async def`` awaiting
    it: every switch at a point suspends and resumes through each coroutine frame on the
    thread's stack, and this one would do nothing but pass the switch along.
    """
    kernel = _current_var.get().kernel  # maybe_current_kernel(), without the call
    if kernel is None:
        return _outside_kernel()
    return kernel.sched.preempt_point()


async def _outside_kernel() -> None:
    """:func:`preempt_point` with no kernel current: nothing to do."""

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
driver forwards the trap to trio and the whole machine waits with that CPU.

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
import types
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

import attrs
import trio

from ksim.bug import add_report
from ksim.cpu import CPU
from ksim.locking.common import Deadlock
from ksim.current import Task, current, maybe_current_kernel, set_current
from ksim.preempt import hardirq_context
from ksim.reboot import MachineHang
from ksim.strategy import Recorder, Strategy, encode_schedule

if TYPE_CHECKING:
    from ksim.kernel import Kernel

RUNNABLE = "runnable"
RUNNING = "running"
BLOCKED = "blocked"
SLEEPING = "sleeping"
DONE = "done"

_OFF_CPU = frozenset((BLOCKED, DONE, SLEEPING))
_SWITCH = object()  # what a simulated thread yields to the driver: "another thread runs now"


@types.coroutine
def _to_driver() -> Any:
    """Suspend the running simulated thread; the driver resumes whoever holds the baton."""
    yield _SWITCH


@types.coroutine
def _forward(trap: object) -> Any:
    """Hand a trio trap that a simulated thread yielded up to trio, and its answer back."""
    return (yield trap)
IrqHandler = Callable[[int, int], Awaitable[None]]
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
        if self._is_set:
            return
        thread = self._sched.current_thread()
        if thread is None:
            raise RuntimeError("SchedEvent.wait() outside a simulated thread")
        self._waiter = thread
        await self._sched.block(thread, self._what, spinning=self._spin)


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
        self.threads: list[SimThread] = []
        self.runnable: list[SimThread] = []  # wanting the baton; kept in tid order
        self.running: SimThread | None = None
        self.cpu_curr: list[SimThread | None] = [None] * len(kernel.cpus)
        self.pending_irqs = [0] * len(kernel.cpus)
        self.irq_budget = irq_budget
        self.irq_handler = irq_handler
        self.irqs_delivered = 0
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

    # -- threads ------------------------------------------------------------------------------
    def spawn(self, fn: Callable[..., Awaitable[object]], *args: object, name: str,
              cpu: int = 0) -> Task:
        kernel = self.kernel
        if kernel._nursery is None:
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

    async def join(self) -> None:
        """Wait (from outside the simulated threads) until every thread has finished."""
        if self.threads and not all(t.state == DONE for t in self.threads):
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
                if any(t.state in (BLOCKED, RUNNABLE) for t in self.threads):
                    self._deadlock()
                self._wakeup = trio.Event()
                await self._wakeup.wait()
        finally:
            for thread in self.threads:
                if thread.coro is not None and thread.state != DONE:
                    thread.state = DONE
                    try:
                        thread.context.run(thread.coro.close)  # type: ignore[union-attr]
                    except BaseException:  # noqa: S110 - the kernel is going away anyway
                        pass

    async def _step(self, thread: SimThread) -> None:
        """Resume ``thread`` until it hands the baton on, finishes or dies."""
        coro, run = thread.coro, thread.context.run  # type: ignore[union-attr]
        value: object = None
        error: BaseException | None = None
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
                return
            try:  # a trio primitive awaited directly: the machine waits with this CPU
                value, error = await _forward(yielded), None
            except BaseException as exc:
                value, error = None, exc

    def _finish(self, thread: SimThread) -> None:
        thread.state = DONE
        self._leave_cpu(thread)
        if self.running is thread:
            self.running = None
        if all(t.state == DONE for t in self.threads):
            self._all_done.set()

    async def _wait_for_timer(self) -> None:
        """Let virtual time run to the earliest deadline (or a spawn), then wake those due."""
        self._wakeup = trio.Event()
        with trio.move_on_at(self._timers[0][0]):
            await self._wakeup.wait()
        now = trio.current_time()
        while self._timers and self._timers[0][0] <= now:
            _, _, thread = heapq.heappop(self._timers)
            self._add_runnable(thread)

    def current_thread(self) -> SimThread | None:
        thread = current().thread
        return thread if thread is not None and thread is self.running else None

    # -- the baton ------------------------------------------------------------------------------
    def _add_runnable(self, thread: SimThread) -> None:
        thread.state = RUNNABLE
        bisect.insort(self.runnable, thread)

    def _leave_cpu(self, thread: SimThread) -> None:
        cpu = thread.cpu.id
        if self.cpu_curr[cpu] is thread:
            self.cpu_curr[cpu] = None

    def _candidates(self, running: SimThread | None) -> list[SimThread]:
        """The runnable threads that may take (or keep) their CPU now, in tid order.

        A CPU's occupant that was preempted at a point can be replaced only if the kernel
        could preempt it there (preempt count zero, interrupts on, not in an interrupt); a
        blocked, sleeping or finished occupant leaves the CPU free, a spinning one does not.
        """
        cpu_curr = self.cpu_curr
        cands = []
        for t in self.runnable:
            cpu = t.cpu
            occupant = cpu_curr[cpu.id]
            if (occupant is None or occupant is t
                    or (occupant.state in _OFF_CPU and not occupant.spinning)
                    or (cpu.preempt_count == 0 and cpu.irqs_enabled
                        and cpu.hardirq_count == 0)):
                cands.append(t)
        if running is not None and running.state == RUNNING:
            bisect.insort(cands, running)
        return cands

    def _run(self, thread: SimThread) -> None:
        """Give ``thread`` the baton (and its CPU)."""
        self.runnable.remove(thread)
        thread.state = RUNNING
        self.running = thread
        cpu = thread.cpu.id
        previous = self.cpu_curr[cpu]
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
        if not self._timers and any(t.state in (BLOCKED, RUNNABLE) for t in self.threads):
            self._deadlock()

    # -- preemption points --------------------------------------------------------------------
    async def preempt_point(self) -> None:
        thread = current().thread
        if thread is None or thread is not self.running:
            return
        self.points += 1
        thread.points += 1
        thread.last_point = self.points
        if self.step_budget is not None and self.points * 2 >= self.step_budget:
            self._budget_check()
        self.kernel.work_ns += POINT_NS
        strategy = self.strategy
        strategy.point = self.points
        cpu = thread.cpu
        if self.irq_budget:
            target = strategy.irq(len(self.cpu_curr))
            if target is not None:
                self.irq_budget -= 1
                self.pending_irqs[target] += 1
        if self.pending_irqs[cpu.id] and cpu.irqs_enabled and not cpu.hardirq_count:
            await self._deliver_irq(thread, cpu)
        cands = self._candidates(thread)
        nxt = strategy.pick(cands, thread) if len(cands) > 1 else thread
        if nxt is thread:
            return
        self.switches += 1
        self._add_runnable(thread)
        self._run(nxt)
        await _to_driver()

    def raise_irq(self, cpu: int) -> None:
        """Raise an interrupt on ``cpu`` now (outside the strategy's own injections).

        Like an injected one, it is handled at that CPU's next preemption point with
        interrupts enabled, by ``irq_handler``, on top of whatever thread runs there.
        """
        if not 0 <= cpu < len(self.pending_irqs):
            raise ValueError(f"no CPU {cpu} (the machine has {len(self.pending_irqs)})")
        self.pending_irqs[cpu] += 1

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

    # -- blocking and waking --------------------------------------------------------------------
    async def block(self, thread: SimThread, what: object, *, spinning: bool = False) -> None:
        """``thread`` waits for ``what`` until :meth:`wake`; a spinner keeps its CPU busy."""
        thread.state = BLOCKED
        thread.blocked_on = what
        thread.spinning = spinning
        if not spinning:
            self._leave_cpu(thread)
        self.running = None
        self._pass_baton(thread)
        await _to_driver()
        thread.blocked_on = None
        thread.spinning = False

    def wake(self, thread: SimThread) -> None:
        if thread.state == BLOCKED:
            self._add_runnable(thread)
            self._wakeup.set()

    async def sleep(self, seconds: float) -> None:
        """A virtual-time sleep of the current thread (msleep under the scheduler)."""
        thread = self.current_thread()
        if thread is None:
            await trio.sleep(seconds)
            return
        thread.state = SLEEPING
        self._leave_cpu(thread)
        self._timer_seq += 1
        heapq.heappush(self._timers, (trio.current_time() + seconds, self._timer_seq, thread))
        self.running = None
        self._pass_baton(None)
        await _to_driver()

    def new_event(self, task: Task, what: object = None,
                  spin: bool = False) -> SchedEvent | trio.Event:
        """An event for ``task`` to wait on: the scheduler's if it drives the task, trio's
        for a task of the shell (which waits in trio, outside the simulated threads)."""
        if task.thread is None:
            return trio.Event()
        return SchedEvent(self, what, spin)

    # -- verdicts ---------------------------------------------------------------------------------
    def _deadlock(self) -> None:
        lines = ["ksim: deadlock: no CPU can make progress"]
        for cpu in self.kernel.cpus:
            held = ", ".join(getattr(lock, "name", "?") for lock in cpu.held_locks) or "none"
            occupant = self.cpu_curr[cpu.id]
            lines.append(" CPU%d: %s holds [%s]" % (
                cpu.id, occupant.task.comm if occupant else "idle", held))
        for thread in self.threads:
            if thread.state == BLOCKED:
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


async def preempt_point() -> None:
    """An explicit preemption point for driver authors (a no-op outside the deterministic
    scheduler)."""
    kernel = maybe_current_kernel()
    if kernel is not None:
        await kernel.sched.preempt_point()

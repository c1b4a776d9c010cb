"""The concurrent steps of a scenario: ``spawn`` threads and ``irq`` interrupts, deterministic.

A boot with a ``spawn`` or ``irq`` step runs under the deterministic scheduler
(:mod:`ksim.scheduler`) with the scenario's strategy, seeded from the scenario's seed and the
boot's number: the scheduler, not trio's run queue, decides every interleaving, so a seed
replays a scenario exactly.  This module is the glue (docs/scenarios.md states the semantics):

* **Threads.**  A ``spawn`` step starts simulated threads (``kernel.spawn_thread``) on the CPUs
  it names; the shell itself is not a simulated thread and never runs kernel code while
  threads are in flight: it only waits at a *sync point* (:meth:`BootConcurrency.settle`).
* **Readers.**  A ``read`` step starts reader threads that read a file again and again while
  the other threads run (one read(2) of ``size`` bytes each time, a consistent snapshot as
  far as the driver's locking makes it one); every read is kept for the ``reads`` subject.
* **Interrupts.**  An ``irq`` step appends its interrupts to the boot's *queue*.  While
  threads run, the strategy wrapper :class:`_IrqStrategy` raises the queue's head at their
  preemption points (on average once every ``every`` points; exactly every ``every``-th with
  ``rr``), on the CPU the step names or, for ``cpu: any``, on the CPU of the thread at that
  point; the scheduler delivers it at that CPU's next preemption point with interrupts on,
  on top of the thread running there.  At a sync point, once no thread is left, interrupts
  still pending on a CPU and then those still queued are handled one at a time, in order, on
  an idle CPU: a stand-in idle task ``swapper/N`` takes the interrupt at its first
  preemption point (``cpu: any`` sends queued interrupt ``i`` of a step to CPU ``i mod N``).
* **Checkers.**  lockdep-lite and the data-race detector (:mod:`ksim.harness`) are attached
  for the boot's steps (by default on boots that spawn or raise interrupts) and detached
  before the boot's expectations read what the stopped kernel left.
"""

from __future__ import annotations

import random
from collections import deque

import attrs

from ksim.current import current
from ksim.harness import install_scheduler
from ksim.nmi import NMI_REASON_IOCHK, default_do_nmi
from ksim.panic import TaskKilled, die, panic
from ksim.printk import console_lock, console_unlock, printk
from ksim.scenario.model import IrqStep, NmiStep, ReadStep, SpawnStep
from ksim.scheduler import preempt_point
from ksim.strategy import RoundRobin, Strategy, make_strategy


class ConcurrencyError(Exception):
    """A concurrent step could not do its job (the runner reports it as a step failure)."""


def boot_seed(seed: int, boot: int) -> int:
    """The strategy seed of boot ``boot`` (1-based) of a scenario run with ``seed``."""
    return seed if boot == 1 else seed * 1_000_003 + boot


@attrs.define(eq=False)
class _Irq:
    step: IrqStep | NmiStep
    index: int  # 0-based, within its step
    prefix: str


class _Queue:
    """The interrupts (or NMIs) of a boot's steps: queued, then raised on a CPU."""

    def __init__(self, ncpus: int) -> None:
        self.queued: deque[_Irq] = deque()
        self.raised: list[deque[_Irq]] = [deque() for _ in range(ncpus)]

    def __bool__(self) -> bool:
        return bool(self.queued) or any(self.raised)

    def __len__(self) -> int:
        return len(self.queued) + sum(map(len, self.raised))


class _IrqStrategy(Strategy):
    """The scenario's strategy for thread choices, plus the irq and nmi steps' injection
    decisions (NMIs draw from their own generator: adding an nmi step leaves every other
    decision of a seed as it was)."""

    def __init__(self, inner: Strategy, owner: BootConcurrency, seed: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.owner = owner
        self.rng = random.Random(f"ksim-irq:{seed}")
        self.nmi_rng = random.Random(f"ksim-nmi:{seed}")
        self.every_n = isinstance(inner, RoundRobin)
        self.points = 0
        self.nmi_points = 0
        # thread choices are the inner strategy's own, without a call in between
        self.pick = inner.pick  # type: ignore[method-assign]
        self.new_thread = inner.new_thread  # type: ignore[method-assign]

    def irq(self, nr_cpus: int) -> int | None:
        return self._raise(self.owner.irqs, self.rng, "points")

    def nmi(self, nr_cpus: int) -> int | None:
        return self._raise(self.owner.nmis, self.nmi_rng, "nmi_points")

    def _raise(self, queue: _Queue, rng: random.Random, counter: str) -> int | None:
        owner = self.owner
        if owner.paused or not queue.queued:
            return None
        every = queue.queued[0].step.every
        if self.every_n:
            points = getattr(self, counter) + 1
            setattr(self, counter, points)
            if points % every:
                return None
        elif every > 1 and rng.random() * every >= 1.0:
            return None
        irq = queue.queued.popleft()
        cpu = irq.step.cpu
        if not isinstance(cpu, int):
            running = owner.sched.running
            cpu = running.cpu.id if running is not None else 0
        queue.raised[cpu].append(irq)
        return cpu


class BootConcurrency:
    """The scheduler, interrupt queues and checkers of one boot (see the module docstring)."""

    def __init__(self, kernel, strategy_spec: str, seed: int, *, steps: int | None = None,
                 budget: int | None = None, inner: Strategy | None = None) -> None:
        self.kernel = kernel
        self.ncpus = len(kernel.cpus)
        self.irqs = _Queue(self.ncpus)
        self.nmis = _Queue(self.ncpus)
        self.paused = False
        self.handled = 0
        self.nmis_handled = 0
        self.workers = 0
        self.problems: list[str] = []  # what a thread could not do (reported at a sync point)
        # ``inner``: thread choices from elsewhere (a schedule shrink: ksim.shrink)
        self.strategy = _IrqStrategy(inner or make_strategy(strategy_spec, seed, steps=steps),
                                     self, seed)
        self.sched = install_scheduler(kernel, self.strategy, irq_handler=self._handler)
        self.sched.step_budget = budget
        if budget is not None:
            self.sched.budget_note = (f"20 x the {steps} points of this boot's first "
                                      "(round-robin, seed 0) run" if steps else
                                      "1000 points per message, read and interrupt of the boot")
        self.sched.nmi_handler = self._nmi_handler
        # path -> [(reader's name, what one read(2) returned)], in the order they were made
        self.reads: dict[str, list[tuple[str, bytes]]] = {}

    # -- steps --------------------------------------------------------------------------------
    def spawn(self, step: SpawnStep, prefix: str) -> None:
        sched = self.sched
        interval = step.interval

        async def worker(thread: int) -> None:
            text = step.text.replace("{thread}", str(thread))
            if step.console_lock:
                await console_lock()
            for i in range(step.count):
                await printk(prefix + "%s\n", text.replace("{i}", str(i)))
                if interval:
                    await sched.sleep(interval)
                else:
                    await preempt_point()
            if step.console_lock:
                await console_unlock()
            if step.oops is not None:
                try:
                    await die(step.oops.replace("{thread}", str(thread)))
                except TaskKilled:  # make_task_dead(): the thread exits
                    pass
                return
            if step.panic is None:
                return
            if step.until_held is not None and not await self._until_held(step.until_held):
                return
            await panic("%s", step.panic.replace("{thread}", str(thread)))

        for t in range(step.threads):
            cpu = t % self.ncpus if step.cpu == "any" else int(step.cpu)
            # named in boot order, so two spawn steps' threads are told apart in reports
            self.kernel.spawn_thread(worker, t, name=f"worker/{self.workers}", cpu=cpu)
            self.workers += 1

    async def _until_held(self, name: str) -> bool:
        """Wait, at this thread's preemption points, until a task on another CPU holds a
        lock called ``name``; False (and a problem for the step) if no other thread is left
        to take it."""
        me = current()
        sched = self.sched
        locks = self.kernel.locking.locks_seen
        while True:
            for lock in locks:
                owner = lock.owner
                if lock.name == name and owner is not None and owner.cpu is not me.cpu:
                    return True
            if not any(t.task is not me and sched.is_live(t) for t in sched.threads):
                self.problems.append(f"no other CPU ever held {name!r} while {me.comm} waited "
                                     "to panic")
                return False
            await preempt_point()

    def read(self, step: ReadStep) -> None:
        """Start the step's reader threads; each keeps what every read(2) returned."""
        sched = self.sched
        kept = self.reads.setdefault(step.path, [])

        async def reader(thread: int, name: str) -> None:
            for _ in range(step.count):
                data = await self.kernel.read_file(step.path, 0, step.size)
                kept.append((name, data))
                if step.interval:
                    await sched.sleep(step.interval)
                else:
                    await preempt_point()

        for t in range(step.threads):
            cpu = (self.ncpus - 1 - t) % self.ncpus if step.cpu == "any" else int(step.cpu)
            name = f"reader/{t}"
            self.kernel.spawn_thread(reader, t, name, name=name, cpu=cpu)

    def queue_irqs(self, step: IrqStep, prefix: str) -> None:
        self.irqs.queued.extend(_Irq(step, i, prefix) for i in range(step.count))
        self.sched.irq_budget += step.count

    def queue_nmis(self, step: NmiStep) -> None:
        self.nmis.queued.extend(_Irq(step, i, "") for i in range(step.count))
        self.sched.nmi_budget += step.count

    async def _handler(self, number: int, cpu: int) -> None:
        raised = self.irqs.raised[cpu]
        if not raised:  # raised by someone else: nothing of ours to print
            return
        irq = raised.popleft()
        self.handled += 1
        step = irq.step
        assert isinstance(step, IrqStep)
        text = step.text.replace("{i}", str(irq.index)).replace("{cpu}", str(cpu))
        await printk(irq.prefix + "%s\n", text)

    async def _nmi_handler(self, number: int, cpu: int) -> None:
        raised = self.nmis.raised[cpu]
        if not raised:
            await default_do_nmi(number, cpu)
            return
        nmi = raised.popleft()
        step = nmi.step
        assert isinstance(step, NmiStep)
        self.nmis_handled += 1
        if step.text is not None:
            await printk("%s\n", step.text.replace("{i}", str(nmi.index))
                         .replace("{cpu}", str(cpu)))
            return
        if step.reason == "iochk":
            self.kernel.nmi.reason[cpu] = NMI_REASON_IOCHK
        await default_do_nmi(number, cpu)

    # -- sync points ----------------------------------------------------------------------------
    async def settle(self) -> None:
        """Wait until every thread finished and every queued interrupt and NMI was handled."""
        sched = self.sched
        await sched.join()
        if self.problems:
            problems, self.problems = self.problems, []
            raise ConcurrencyError("; ".join(problems))
        if not self.irqs and not self.nmis:
            return
        self.paused = True
        try:
            for queue in (self.nmis, self.irqs):
                for cpu in range(self.ncpus):
                    while queue.raised[cpu]:
                        await self._on_idle_cpu(cpu)
                while queue.queued:
                    irq = queue.queued.popleft()
                    cpu = irq.step.cpu if isinstance(irq.step.cpu, int) \
                        else irq.index % self.ncpus
                    queue.raised[cpu].append(irq)
                    if queue is self.nmis:
                        sched.nmi_budget -= 1
                        sched.raise_nmi(cpu)
                    else:
                        sched.irq_budget -= 1
                        sched.raise_irq(cpu)
                    await self._on_idle_cpu(cpu)
        finally:
            self.paused = False

    async def _on_idle_cpu(self, cpu_id: int) -> None:
        """Let CPU ``cpu_id``'s idle task take its pending interrupts, one at a time."""
        sched = self.sched
        cpu = self.kernel.cpus[cpu_id]
        if sched.dead:  # the machine stopped (a hang): nothing takes interrupts any more
            self._drop(cpu_id)
            return
        if cpu.stopped:
            left = len(self.irqs.raised[cpu_id]) + len(self.nmis.raised[cpu_id])
            self._drop(cpu_id)
            raise ConcurrencyError(f"{left} interrupt(s) on CPU {cpu_id} could not be handled: "
                                   "the CPU was stopped")
        before = (sched.pending_irqs[cpu_id], len(sched.pending_nmis[cpu_id]))

        async def idle() -> None:
            if sched.pending_nmis[cpu_id] or (
                    sched.pending_irqs[cpu_id] and cpu.irqs_enabled and not cpu.hardirq_count):
                await sched.preempt_point()

        self.kernel.spawn_thread(idle, name=f"swapper/{cpu_id}", cpu=cpu_id)
        await sched.join()
        after = (sched.pending_irqs[cpu_id], len(sched.pending_nmis[cpu_id]))
        if after[0] >= before[0] and after[1] >= before[1]:
            left = len(self.irqs.raised[cpu_id]) + len(self.nmis.raised[cpu_id])
            self._drop(cpu_id)
            raise ConcurrencyError(
                f"{left} interrupt(s) on CPU {cpu_id} could not be handled: its interrupts "
                f"stay disabled (irqs_enabled={cpu.irqs_enabled}, "
                f"hardirq_count={cpu.hardirq_count})")

    def _drop(self, cpu_id: int) -> None:
        sched = self.sched
        sched.pending_irqs[cpu_id] = 0
        sched.pending_nmis[cpu_id].clear()
        for queue in (self.irqs, self.nmis):
            queue.raised[cpu_id].clear()
            queue.queued.clear()

    def summary(self) -> str:
        s = self.sched
        left = len(self.irqs) + len(self.nmis)
        return (f"scheduler {self.strategy.name}: {len(s.threads)} threads, {s.points} "
                f"preemption points, {s.switches} switches, {self.handled} interrupts handled"
                + (f", {self.nmis_handled} NMIs handled" if self.nmis_handled else "")
                + (f", {left} not handled" if left else "")
                + (f"; {s.verdict}" if s.verdict else ""))

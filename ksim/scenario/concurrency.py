"""The concurrent steps of a scenario: ``spawn`` threads and ``irq`` interrupts, deterministic.

A boot with a ``spawn`` or ``irq`` step runs under the deterministic scheduler
(:mod:`ksim.scheduler`) with the scenario's strategy, seeded from the scenario's seed and the
boot's number: the scheduler, not trio's run queue, decides every interleaving, so a seed
replays a scenario exactly.  This module is the glue (docs/scenarios.md states the semantics):

* **Threads.**  A ``spawn`` step starts simulated threads (``kernel.spawn_thread``) on the CPUs
  it names; the shell itself is not a simulated thread and never runs kernel code while
  threads are in flight: it only waits at a *sync point* (:meth:`BootConcurrency.settle`).
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

from ksim.harness import install_scheduler
from ksim.printk import printk
from ksim.scenario.model import IrqStep, SpawnStep
from ksim.scheduler import preempt_point
from ksim.strategy import RoundRobin, Strategy, make_strategy


class ConcurrencyError(Exception):
    """A concurrent step could not do its job (the runner reports it as a step failure)."""


def boot_seed(seed: int, boot: int) -> int:
    """The strategy seed of boot ``boot`` (1-based) of a scenario run with ``seed``."""
    return seed if boot == 1 else seed * 1_000_003 + boot


@attrs.define(eq=False)
class _Irq:
    step: IrqStep
    index: int  # 0-based, within its step
    prefix: str


class _IrqStrategy(Strategy):
    """The scenario's strategy for thread choices, plus the irq steps' injection decisions."""

    def __init__(self, inner: Strategy, owner: BootConcurrency, seed: int) -> None:
        self.inner = inner
        self.name = inner.name
        self.owner = owner
        self.rng = random.Random(f"ksim-irq:{seed}")
        self.every_n = isinstance(inner, RoundRobin)
        self.points = 0
        # thread choices are the inner strategy's own, without a call in between
        self.pick = inner.pick  # type: ignore[method-assign]
        self.new_thread = inner.new_thread  # type: ignore[method-assign]

    def irq(self, nr_cpus: int) -> int | None:
        owner = self.owner
        if owner.paused or not owner.queue:
            return None
        every = owner.queue[0].step.every
        if self.every_n:
            self.points += 1
            if self.points % every:
                return None
        elif every > 1 and self.rng.random() * every >= 1.0:
            return None
        irq = owner.queue.popleft()
        cpu = irq.step.cpu
        if not isinstance(cpu, int):
            running = owner.sched.running
            cpu = running.cpu.id if running is not None else 0
        owner.raised[cpu].append(irq)
        return cpu


class BootConcurrency:
    """The scheduler, interrupt queue and checkers of one boot (see the module docstring)."""

    def __init__(self, kernel, strategy_spec: str, seed: int) -> None:
        self.kernel = kernel
        self.ncpus = len(kernel.cpus)
        self.queue: deque[_Irq] = deque()
        self.raised: list[deque[_Irq]] = [deque() for _ in range(self.ncpus)]
        self.paused = False
        self.handled = 0
        self.strategy = _IrqStrategy(make_strategy(strategy_spec, seed), self, seed)
        self.sched = install_scheduler(kernel, self.strategy, irq_handler=self._handler)

    # -- steps --------------------------------------------------------------------------------
    def spawn(self, step: SpawnStep, prefix: str) -> None:
        sched = self.sched
        interval = step.interval

        async def worker(thread: int) -> None:
            text = step.text.replace("{thread}", str(thread))
            for i in range(step.count):
                await printk(prefix + "%s\n", text.replace("{i}", str(i)))
                if interval:
                    await sched.sleep(interval)
                else:
                    await preempt_point()

        for t in range(step.threads):
            cpu = t % self.ncpus if step.cpu == "any" else int(step.cpu)
            self.kernel.spawn_thread(worker, t, name=f"worker/{t}", cpu=cpu)

    def queue_irqs(self, step: IrqStep, prefix: str) -> None:
        for i in range(step.count):
            self.queue.append(_Irq(step, i, prefix))
        self.sched.irq_budget += step.count

    async def _handler(self, number: int, cpu: int) -> None:
        raised = self.raised[cpu]
        if not raised:  # raised by someone else: nothing of ours to print
            return
        irq = raised.popleft()
        self.handled += 1
        text = irq.step.text.replace("{i}", str(irq.index)).replace("{cpu}", str(cpu))
        await printk(irq.prefix + "%s\n", text)

    # -- sync points ----------------------------------------------------------------------------
    async def settle(self) -> None:
        """Wait until every thread finished and every queued interrupt was handled."""
        sched = self.sched
        await sched.join()
        if not self.queue and not any(self.raised):
            return
        self.paused = True
        try:
            for cpu in range(self.ncpus):
                while self.raised[cpu]:
                    await self._on_idle_cpu(cpu)
            while self.queue:
                irq = self.queue.popleft()
                sched.irq_budget -= 1
                cpu = irq.step.cpu if isinstance(irq.step.cpu, int) else irq.index % self.ncpus
                self.raised[cpu].append(irq)
                sched.raise_irq(cpu)
                await self._on_idle_cpu(cpu)
        finally:
            self.paused = False

    async def _on_idle_cpu(self, cpu_id: int) -> None:
        """Let CPU ``cpu_id``'s idle task take its pending interrupts, one at a time."""
        sched = self.sched
        cpu = self.kernel.cpus[cpu_id]
        before = sched.pending_irqs[cpu_id]

        async def idle() -> None:
            if sched.pending_irqs[cpu_id] and cpu.irqs_enabled and not cpu.hardirq_count:
                await sched.preempt_point()

        self.kernel.spawn_thread(idle, name=f"swapper/{cpu_id}", cpu=cpu_id)
        await sched.join()
        if sched.pending_irqs[cpu_id] >= before:
            left = len(self.raised[cpu_id])
            sched.pending_irqs[cpu_id] = 0
            self.raised[cpu_id].clear()
            self.queue.clear()
            raise ConcurrencyError(
                f"{left} interrupt(s) on CPU {cpu_id} could not be handled: its interrupts "
                f"stay disabled (irqs_enabled={cpu.irqs_enabled}, "
                f"hardirq_count={cpu.hardirq_count})")

    def summary(self) -> str:
        s = self.sched
        return (f"scheduler {self.strategy.name}: {len(s.threads)} threads, {s.points} "
                f"preemption points, {s.switches} switches, {self.handled} interrupts handled"
                + (f", {len(self.queue) + sum(map(len, self.raised))} not handled"
                   if self.queue or any(self.raised) else "")
                + (f"; {s.verdict}" if s.verdict else ""))

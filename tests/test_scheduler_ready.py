"""The scheduler's ready-list bookkeeping against the rule it stands for.

The scheduler keeps the runnable threads and the running one in a ready list, with counts that
let it skip testing each thread at a point (``_candidates``) and a cache of the tested list.
Here random sequences of the scheduler's own transitions (spawn, run, switch at a point,
block, sleep, wake, finish, CPU state changes, stopping a CPU) are checked after each step
against the candidate rule computed from scratch, thread by thread.  Half the switches go
through ``preempt_point`` itself, which hands the baton over with a copy of ``_run`` inline.
"""

from __future__ import annotations

import random
from types import SimpleNamespace

from hypothesis import given, settings
from hypothesis import strategies as st

from ksim.cpu import CPU
from ksim.current import reset_current, set_current
from ksim.scheduler import (
    _SWITCH, BLOCKED, DONE, FROZEN, RUNNABLE, RUNNING, SLEEPING, Scheduler, SimThread,
)
from ksim.strategy import Strategy


class Chosen(Strategy):
    """Picks the candidate the test drew."""

    def __init__(self) -> None:
        self.n = 0

    def pick(self, candidates, running):  # type: ignore[no-untyped-def]
        return candidates[self.n % len(candidates)]


def switch_at_a_point(sched: Scheduler, running: SimThread) -> None:
    """The running thread passes a preemption point: preempt_point's own switch (it hands
    the baton inline, not through _run)."""
    token = set_current(running.task)  # type: ignore[arg-type]
    try:
        yielded = next(sched.preempt_point(), None)
    finally:
        reset_current(token)
    assert yielded is (None if sched.running is running else _SWITCH)


def reference_candidates(sched: Scheduler, running: SimThread | None) -> list[SimThread]:
    """The rule of ``_candidates``' docstring, one thread at a time."""
    cands = []
    for t in sorted(sched.threads, key=lambda t: t.tid):
        if t is running and t.state == RUNNING:
            cands.append(t)
            continue
        if t.state != RUNNABLE or t.cpu.stopped:
            continue
        cpu = t.cpu
        occupant = sched.cpu_curr[cpu.id]
        if (occupant is None or occupant is t
                or (occupant.state in (BLOCKED, DONE, SLEEPING) and not occupant.spinning)
                or (cpu.preempt_count == 0 and cpu.irqs_enabled and cpu.hardirq_count == 0)):
            cands.append(t)
    return cands


def check(sched: Scheduler) -> None:
    ready = [t for t in sched.threads if t.state in (RUNNABLE, RUNNING)]
    assert sched._ready == ready  # threads are made in tid order
    assert sched._ready_tids == [t.tid for t in ready]
    assert sched._ready_cpus == [t.cpu.id for t in ready]
    assert sched._ready_on == [sum(t.cpu.id == c for t in ready)
                               for c in range(len(sched.cpu_curr))]
    assert sched._contested == sum(
        sched.cpu_curr[t.cpu.id] is not None and sched.cpu_curr[t.cpu.id] is not t
        for t in ready)
    running = sched.running
    assert sched._candidates(running) == reference_candidates(sched, running)
    if running is not None:
        assert sched._tested_candidates(running) == reference_candidates(sched, running)


# Each op with its weight: the panic path's CPU stops are rare, as in a run.
OPS = {"spawn": 4, "run": 6, "switch": 10, "block": 3, "spin": 2, "sleep": 2, "wake": 6,
       "finish": 1, "cpu": 6, "halt": 0.05, "stop": 0.05}


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.integers(0, 1 << 32))
def test_ready_list_and_candidates_follow_the_rule(seed: int) -> None:
    rng = random.Random(seed)
    ncpus = rng.randint(1, 4)
    ops = rng.choices(list(OPS), weights=list(OPS.values()), k=150)
    cpus = [CPU(i) for i in range(ncpus)]
    kernel = SimpleNamespace(cpus=cpus, locking=SimpleNamespace(lock_stat=False), work_ns=0)
    chosen = Chosen()
    sched = Scheduler(kernel, chosen)  # type: ignore[arg-type]
    for op in ops:
        n = rng.randrange(1 << 16)
        running = sched.running
        waiting = [t for t in sched.threads if t.state in (BLOCKED, SLEEPING)]
        if op == "spawn":
            task = SimpleNamespace(cpu=cpus[n % ncpus], comm="t", thread=None)
            thread = SimThread(len(sched.threads), task)  # type: ignore[arg-type]
            task.thread = thread
            sched.threads.append(thread)
            sched._add_runnable(thread)
        elif op == "run" and running is None:
            cands = sched._candidates(None)
            if cands:
                sched._run(cands[n % len(cands)])
        elif op == "switch" and running is not None and n % 2:
            chosen.n = n // 2
            switch_at_a_point(sched, running)
        elif op == "switch" and running is not None:
            cands = sched._candidates(running)
            nxt = cands[n % len(cands)]
            if nxt is not running:
                running.state = RUNNABLE
                sched._run(nxt)
        elif op in ("block", "spin", "sleep") and running is not None:
            spinning = op == "spin" or (op == "sleep" and n % 2 == 1)
            sched._unready(running, SLEEPING if op == "sleep" else BLOCKED)
            running.spinning = spinning
            if not spinning:
                sched._leave_cpu(running)
            sched.running = None
        elif op == "wake" and waiting:
            sched._add_runnable(waiting[n % len(waiting)])
        elif op == "finish" and running is not None:
            sched._finish(running)
        elif op == "cpu":
            cpu = cpus[n % ncpus]
            field = n // ncpus % 3
            if field == 0:
                cpu.preempt_count = 1 - min(cpu.preempt_count, 1)
            elif field == 1:
                cpu.irqs_enabled = not cpu.irqs_enabled
            else:
                cpu.hardirq_count = 1 - min(cpu.hardirq_count, 1)
        elif op == "halt":
            sched.halt_cpu(cpus[n % ncpus])
        elif op == "stop" and running is not None:
            sched.halt_cpu(running.cpu)  # _stop_this_cpu(), up to its switch
            sched._unready(running, FROZEN)
            sched.running = None
        check(sched)

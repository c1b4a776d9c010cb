"""Sleeping and kernel threads (kernel/sched/core.c, kernel/kthread.c, kernel/time/timer.c).

Sleeping is what atomic context forbids, so every sleeping primitive starts with
:func:`might_sleep`, which reports the kernel's ``BUG: sleeping function called from invalid
context`` splat instead of raising: the simulated kernel carries on, as a real one with
CONFIG_DEBUG_ATOMIC_SLEEP does, and the report is kept for tests to assert on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ksim.bug import add_report, caller_location, cpu_pid_line
from ksim.current import Task, current, current_kernel
from ksim.preempt import in_atomic


def might_sleep(where: str | None = None) -> bool:
    """Report (once per call site) a sleep in atomic context; returns True if it reported."""
    if not in_atomic():
        return False
    task = current()
    cpu = task.cpu
    where = where or caller_location(2)
    file_line = where.split(" ", 1)[0]
    lines = [
        "BUG: sleeping function called from invalid context at %s" % file_line,
        "in_atomic(): %d, irqs_disabled(): %d, non_block: 0, pid: %d, name: %s" % (
            1 if cpu.preempt_count or cpu.hardirq_count else 0, 0 if cpu.irqs_enabled else 1,
            task.pid, task.comm),
        "preempt_count: %x, expected: 0" % cpu.preempt_count,
        "RCU nest depth: %d, expected: 0" % cpu.rcu_read_lock_nesting,
        cpu_pid_line(),
        "Call Trace:",
        " <TASK>",
        " " + where.split(" ", 1)[-1],
        " </TASK>",
    ]
    add_report("bug", lines[0], lines)
    return True


async def msleep(msecs: int) -> None:
    """Sleep ``msecs`` milliseconds of virtual time (the scheduler's sleep when it drives us)."""
    might_sleep(caller_location(2))
    task = current()
    sched = getattr(task.kernel, "sched", None)
    if sched is not None and task.thread is not None:
        await sched.sleep(msecs / 1000)
    else:
        await trio.sleep(msecs / 1000)


async def schedule() -> None:
    """Yield the CPU (a trio checkpoint)."""
    might_sleep(caller_location(2))
    await trio.lowlevel.checkpoint()


def kthread_run(fn: Callable[..., Awaitable[object]], *args: object, name: str,
                cpu: int | None = None) -> Task:
    """Start a kernel thread in the kernel's nursery (every task lives in a nursery)."""
    kernel = current_kernel()
    return kernel.spawn_thread(fn, *args, name=name, cpu=cpu)

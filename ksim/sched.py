"""Sleeping and kernel threads (kernel/sched/core.c, kernel/kthread.c, kernel/time/timer.c).

Sleeping is what atomic context forbids, so every sleeping primitive starts with
:func:`might_sleep`, which reports the kernel's ``BUG: sleeping function called from invalid
context`` splat instead of raising: the simulated kernel carries on, as a real one with
CONFIG_DEBUG_ATOMIC_SLEEP does, and the report is kept for tests to assert on.  As in 6.1's
``__might_resched()`` the splat is rate-limited kernel-wide to one per second of ``jiffies``
(virtual time: :func:`jiffies`).

Who runs when is the kernel's *scheduler backend* (``kernel.sched``), always installed, so
that no primitive asks "is there a scheduler?":

* :class:`TrioBackend` (the default): kernel threads are trio tasks of the kernel's nursery,
  run in trio's order; preemption points cost nothing and wait for nothing.
* :class:`ksim.scheduler.Scheduler`: the deterministic SMP scheduler, which owns every
  interleaving (``ksim stress``, concurrent scenarios).

Both offer ``spawn``, ``preempt_point``, ``sleep`` and ``new_event``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs
import trio

from ksim.bug import add_report, caller_location, cpu_pid_line
from ksim.cpu import CPU
from ksim.current import Task, current, current_kernel, reset_current, set_current
from ksim.init import SYSTEM_RUNNING, SYSTEM_SCHEDULING
from ksim.preempt import in_atomic

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["HZ", "INITIAL_JIFFIES", "SchedCoreState", "TrioBackend", "jiffies", "kthread_run",
           "might_sleep", "msleep", "schedule", "time_before"]

HZ = 250  # CONFIG_HZ of Debian's 6.1
_ULONG = (1 << 64) - 1
# include/linux/jiffies.h: jiffies start 5 minutes before their 32-bit wrap, so that wrap bugs
# show early (unsigned long of unsigned int: positive on 64-bit).
INITIAL_JIFFIES = (-300 * HZ) & 0xFFFFFFFF


def jiffies() -> int:
    """``jiffies``: INITIAL_JIFFIES plus the ticks of virtual time since the boot started."""
    return (INITIAL_JIFFIES + current_kernel().local_clock() * HZ // 1_000_000_000) & _ULONG


def time_before(a: int, b: int) -> bool:
    """``time_before(a, b)``: ``(long)((a) - (b)) < 0``, wrap-safe as in C."""
    return (a - b) & _ULONG >= 1 << 63


@attrs.define
class SchedCoreState:
    """kernel/sched/core.c's statics for one boot: ``__might_resched()``'s ``prev_jiffy``."""

    prev_jiffy: int = 0


class TrioBackend:
    """Kernel threads as plain trio tasks (see the module docstring)."""

    # A memory copy need not be cut into cache lines when nothing can run in between.
    preemptible_copies = False

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel

    def spawn(self, fn: Callable[..., Awaitable[object]], *args: object, name: str,
              cpu: int = 0) -> Task:
        kernel = self.kernel
        nursery = kernel._nursery
        if nursery is None:
            raise RuntimeError("the kernel is not running")
        task = kernel.new_task(name, cpu)

        async def thread_main() -> None:
            token = set_current(task)
            try:
                await fn(*args)
            finally:
                reset_current(token)

        nursery.start_soon(thread_main, name=f"ksim:{name}")
        return task

    async def preempt_point(self) -> None:
        """Nothing else may run here: trio switches tasks only where they wait."""

    irq_window = preempt_point  # no interrupts are raised without the scheduler

    async def sleep(self, seconds: float) -> None:
        await trio.sleep(seconds)

    spin_delay = sleep  # mdelay(): nothing else shares a CPU here

    @staticmethod
    def new_event(task: Task, what: object = None, spin: bool = False) -> trio.Event:
        return trio.Event()

    # The panic path's CPU stop: without the deterministic scheduler threads are trio
    # tasks, which cannot be frozen; the CPUs are marked stopped and offline only.
    @staticmethod
    def halt_cpu(cpu: CPU) -> None:
        cpu.stopped = True
        cpu.online = False

    def send_stop_ipi(self, cpus: list[CPU]) -> None:
        for cpu in cpus:
            self.halt_cpu(cpu)

    send_stop_nmi = send_stop_ipi

    @staticmethod
    async def freeze_current() -> None:
        await trio.sleep_forever()


def might_sleep(where: str | None = None) -> bool:
    """Report a sleep in atomic context, at most once per ``HZ`` jiffies for the whole kernel
    (``__might_resched()``'s ``prev_jiffy``: an offence within a second of the last report is
    not reported); returns True if it reported."""
    if not in_atomic():
        return False
    kernel = current_kernel()
    if kernel.init.system_state not in (SYSTEM_SCHEDULING, SYSTEM_RUNNING) \
            or kernel.panic.oops_in_progress:
        return False  # early boot, shutting down, or an oops: __might_resched() keeps quiet
    state = kernel.sched_core
    now = jiffies()
    if time_before(now, state.prev_jiffy + HZ) and state.prev_jiffy:
        return False
    state.prev_jiffy = now
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
    """Sleep ``msecs`` milliseconds of virtual time."""
    might_sleep(caller_location(2))
    await current_kernel().sched.sleep(msecs / 1000)


async def schedule() -> None:
    """Yield the CPU (a trio checkpoint)."""
    might_sleep(caller_location(2))
    await trio.lowlevel.checkpoint()


def kthread_run(fn: Callable[..., Awaitable[object]], *args: object, name: str,
                cpu: int | None = None) -> Task:
    """Start a kernel thread in the kernel's nursery (every task lives in a nursery)."""
    kernel = current_kernel()
    return kernel.spawn_thread(fn, *args, name=name, cpu=cpu)

"""What a driver's tests and invariant checks may ask of the simulated kernel.

Driver code ports C and sees only the kernel API; a driver's *checks* need to compare what
it kept with what the kernel gave it.  Those questions are answered here, through public
functions, so no plugin reaches into the core's internals.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import trio

from ksim.console import CON_EXTENDED, Console
from ksim.current import current_kernel, reset_current, set_current
from ksim.init import SYSTEM_RUNNING
from ksim.kernel import Kernel
from ksim.machine import Machine

__all__ = ["console_output_since", "log_next_seq", "standalone_kernel"]


class _RunClock:
    """A standalone kernel's clock: the current trio run's time, 0 outside one."""

    @staticmethod
    def current_time() -> float:
        try:
            return trio.current_time()
        except RuntimeError:
            return 0.0


@contextmanager
def standalone_kernel(cpus: int = 1, seed: int = 0, ram: str = "16M") -> Iterator[Kernel]:
    """A real kernel that is not booted, current in the ``with`` block: for unit tests of
    code that needs a kernel (locks, notifier chains, consoles) but not a boot.

    Its ``system_state`` is running (registration takes the chains' locks), its clock is
    the current trio run's, and it has no console until one is registered.
    """
    machine = Machine(ram, cpus=cpus, seed=seed)
    kernel = Kernel(machine, "", "cold", [], set())
    kernel.init.system_state = SYSTEM_RUNNING
    kernel._clock = _RunClock()
    token = set_current(kernel.idle_task)
    try:
        yield kernel
    finally:
        reset_current(token)
        machine.close()


def log_next_seq(kernel: Kernel | None = None) -> int:
    """The sequence number the next printk record will get (a point in the log to check
    from)."""
    return (kernel or current_kernel()).printk.log.next_seq


def console_output_since(con: Console, since_seq: int, kernel: Kernel | None = None) -> bytes:
    """What ``con`` was given for the records ``since_seq .. con.seq`` still in the log,
    as its ``write`` saw them (prefixes, loglevel filtering): a model of the console's
    stream, to check a driver's own record of it against."""
    pk = (kernel or current_kernel()).printk
    out = []
    for record in pk.log.records_from(since_seq):
        if record.seq >= con.seq:
            break
        if not pk.suppressed(con, record.level):
            out.append(pk.console_text(record, bool(con.flags & CON_EXTENDED)))
    return b"".join(out)

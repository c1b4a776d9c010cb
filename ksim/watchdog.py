"""The soft-lockup detector's report (kernel/watchdog.c).

ksim never spins forever: where the simulated kernel would loop with no way out (a search
whose step is zero, say), the code that would hang calls :func:`report_soft_lockup` and
gives up instead.  The report is what Linux's watchdog prints once a CPU has not scheduled
for twice ``watchdog_thresh`` (10 s), and virtual time advances by that much so timestamps
show the stall.
"""

from __future__ import annotations

import trio

from ksim.bug import add_report, cpu_pid_line
from ksim.current import current, current_kernel
from ksim.printk import console_unlock

WATCHDOG_THRESH = 10
SOFTLOCKUP_AFTER = 2 * WATCHDOG_THRESH + 2  # the report fires at the first check past 20 s


async def report_soft_lockup(function: str) -> None:
    """Report that the current CPU is stuck in ``function``; the caller then gives up."""
    kernel = current_kernel()
    task = current()
    await trio.sleep(SOFTLOCKUP_AFTER)
    lines = ["watchdog: BUG: soft lockup - CPU#%d stuck for %ds! [%s:%d]" % (
                 task.cpu.id, SOFTLOCKUP_AFTER, task.comm, task.pid),
             "Modules linked in: %s" % " ".join(kernel.module.names()),
             cpu_pid_line(),
             "RIP: 0010:%s+0x5b/0xa0" % function]
    add_report("lockup", lines[0], lines)
    await console_unlock(kernel.printk)

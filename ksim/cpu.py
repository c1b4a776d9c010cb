"""Per-CPU state: the interrupt flag, preempt count and context nesting of one simulated CPU.

In the kernel these live in per-CPU variables and in the flags register; here they are fields
of a :class:`CPU` object that the running task points at.  Everything that asks "may I sleep
here?" or "are interrupts off?" reads this object, so the answers are per CPU, exactly as a
driver author expects.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from ksim.locking.common import LockBase

__all__ = ["CPU", "boot_random"]


def boot_random(seed: int, boot: int, purpose: str) -> random.Random:
    """What RDRAND and RDTSC give boot number *boot* of the machine seeded *seed* for *purpose*.

    Real entropy (``kaslr_get_random_long`` mixes RDRAND, RDTSC and the i8254) differs at every
    boot; ksim's is independent per (seed, boot, purpose) and the same on every host and in
    every process, so a boot can be replayed, also as the next ``ksim boot`` on a RAM file.
    """
    return random.Random(f"ksim-entropy {seed} {boot} {purpose}")


@attrs.define(eq=False)
class CPU:
    """One simulated CPU.

    ``preempt_count`` counts preempt_disable() nesting (spinlocks, RCU read sections, atomic
    notifier walks); ``hardirq_count`` counts nested interrupt handlers and ``nmi_count`` NMI
    handlers.  The kernel packs them into one word; separate fields are clearer and cost
    nothing here.
    """

    id: int
    irqs_enabled: bool = True
    preempt_count: int = 0
    hardirq_count: int = 0
    nmi_count: int = 0  # nested NMI handlers (0 or 1: NMIs do not nest on x86)
    rcu_read_lock_nesting: int = 0
    # printk_safe: a printk from here is only stored (console drivers, console_lock paths)
    printk_context: int = 0
    # the console whose write() runs here now (console_emit_next_record), for the checkers
    console_write: object = None
    online: bool = True
    # stop_this_cpu(): halted for good by the panic path; its thread never runs again
    stopped: bool = False
    # Locks held by code running on this CPU, in acquisition order (checkers read it).
    held_locks: list[LockBase] = attrs.Factory(list)

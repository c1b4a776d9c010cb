"""Preemption and interrupt-context queries (include/linux/preempt.h, include/linux/irqflags.h).

These answer from the *current* CPU (the CPU of the task that calls them).  Code that runs
outside any simulated kernel (a unit test of a notifier chain, say) gets a private boot CPU,
so the helpers never need a special case for "no kernel yet".
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from ksim.cpu import CPU
from ksim.current import current_cpu


def preempt_count() -> int:
    return current_cpu().preempt_count


def preempt_disable() -> None:
    current_cpu().preempt_count += 1


def preempt_enable() -> None:
    cpu = current_cpu()
    if cpu.preempt_count <= 0:
        raise RuntimeError("preempt_enable() without a matching preempt_disable()")
    cpu.preempt_count -= 1


def in_irq() -> bool:
    """True inside a hardirq handler (``in_hardirq()`` in modern kernels)."""
    return current_cpu().hardirq_count > 0


in_hardirq = in_irq


def in_nmi() -> bool:
    """True inside an NMI handler."""
    return current_cpu().nmi_count > 0


def in_interrupt() -> bool:
    """Hardirq or NMI context (softirqs are not simulated)."""
    cpu = current_cpu()
    return cpu.hardirq_count > 0 or cpu.nmi_count > 0


def irqs_disabled() -> bool:
    return not current_cpu().irqs_enabled


def in_atomic() -> bool:
    """True where sleeping is forbidden: preemption off, interrupts off or in an interrupt."""
    cpu = current_cpu()
    return (cpu.preempt_count > 0 or cpu.hardirq_count > 0 or cpu.nmi_count > 0
            or not cpu.irqs_enabled)


def local_irq_save() -> bool:
    """Disable local interrupts and return the previous state (the ``flags`` of L1)."""
    cpu = current_cpu()
    flags = cpu.irqs_enabled
    cpu.irqs_enabled = False
    return flags


def local_irq_restore(flags: bool) -> None:
    current_cpu().irqs_enabled = flags


def local_irq_disable() -> None:
    current_cpu().irqs_enabled = False


def local_irq_enable() -> None:
    current_cpu().irqs_enabled = True


def rcu_read_lock() -> None:
    cpu: CPU = current_cpu()
    cpu.rcu_read_lock_nesting += 1
    cpu.preempt_count += 1  # a non-preemptible RCU read section, as in !CONFIG_PREEMPT_RCU


def rcu_read_unlock() -> None:
    cpu = current_cpu()
    cpu.rcu_read_lock_nesting -= 1
    cpu.preempt_count -= 1


@contextmanager
def nmi_context(cpu: CPU | None = None) -> Iterator[None]:
    """Run the block as an NMI handler on ``cpu``: taken whatever the interrupt flag, with
    interrupts off inside (nmi_enter()); undone on the way out."""
    cpu = cpu or current_cpu()
    saved = cpu.irqs_enabled
    cpu.irqs_enabled = False
    cpu.nmi_count += 1
    try:
        yield
    finally:
        cpu.nmi_count -= 1
        cpu.irqs_enabled = saved


@contextmanager
def hardirq_context(cpu: CPU | None = None) -> Iterator[None]:
    """Run the block as a hardirq handler on ``cpu`` (default: the current one).

    The CPU took the interrupt with interrupts off and ``irq_enter()`` raised the hardirq
    count; both are undone on the way out, so the interrupted code resumes as it was.
    """
    cpu = cpu or current_cpu()
    saved = cpu.irqs_enabled
    cpu.irqs_enabled = False
    cpu.hardirq_count += 1
    try:
        yield
    finally:
        cpu.hardirq_count -= 1
        cpu.irqs_enabled = saved

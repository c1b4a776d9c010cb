"""CPUs: how many exist and come up, and stopping them (kernel/smp.c, kernel/cpu.c,
arch/x86/kernel/smp.c).

The machine has ``Machine(cpus=N)`` CPUs.  ``nr_cpus=N`` limits how many exist for this boot
(``nr_cpu_ids``, the possible and present masks); ``maxcpus=N`` how many ``smp_init`` brings
up (the online mask); the rest stay present but offline.  ``smp_send_stop`` is what the
panic path calls to stop the other CPUs (arch/x86/kernel/smp.c).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

import attrs

from ksim.cmdline import get_option
from ksim.cpu import CPU
from ksim.current import current, current_kernel
from ksim.errno import EINVAL
from ksim.fs import text_reader
from ksim.init import early_param
from ksim.kern_levels import KERN_EMERG, KERN_INFO
from ksim.printk import printk

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["SmpState", "crash_smp_send_stop", "panic_smp_self_stop", "smp_init", "smp_send_stop"]


@attrs.define
class SmpState:
    """One boot's CPUs: ``cpus`` (per-CPU state), ``nr_cpu_ids`` (possible, ``nr_cpus=``) and
    ``nr_online`` (brought up at boot, ``maxcpus=``)."""

    cpus: list[CPU]
    nr_cpu_ids: int
    nr_online: int
    stopping_cpu: int = -1  # the CPU that sent the others the stop IPI
    crash_stopped: bool = False  # crash_smp_send_stop()'s cpus_stopped

    @classmethod
    def for_machine(cls, ncpus: int) -> SmpState:
        return cls([CPU(i) for i in range(ncpus)], ncpus, ncpus)


def _count(val: str | None, minimum: int) -> int | None:
    rc, value, _ = get_option(val or "")
    return value if rc and value >= minimum else None


@early_param("nr_cpus")
async def nr_cpus(val: str | None) -> int:
    """arch/x86: the number of possible CPUs; the others do not exist for this boot."""
    value = _count(val, 1)
    if value is None:
        return -EINVAL
    smp = current_kernel().smp
    smp.nr_cpu_ids = min(smp.nr_cpu_ids, value)
    smp.nr_online = min(smp.nr_online, value)
    return 0


@early_param("maxcpus")
async def maxcpus(val: str | None) -> int:
    """kernel/cpu.c: bring up at most N CPUs at boot; the rest stay present but offline."""
    value = _count(val, 0)
    if value is None:
        return -EINVAL
    current_kernel().smp.nr_online = max(min(current_kernel().smp.nr_online, value), 1)
    return 0


def _cpu_list(n: int) -> str:
    return "0\n" if n == 1 else "0-%d\n" % (n - 1)


async def smp_init(k: Kernel) -> None:
    """Bring up the secondary CPUs: ``maxcpus=`` of them, within ``nr_cpus=``."""
    smp = k.smp
    for cpu in smp.cpus[smp.nr_online:]:
        cpu.online = False
    await printk(KERN_INFO + "smp: Bringing up secondary CPUs ...\n")
    await printk(KERN_INFO + "smp: Brought up 1 node, %d CPU%s\n", smp.nr_online,
                 "" if smp.nr_online == 1 else "s")
    for name, count in (("possible", smp.nr_cpu_ids), ("present", smp.nr_cpu_ids),
                        ("online", smp.nr_online)):
        k.vfs.create("/sys/devices/system/cpu/" + name, 0o444,
                     text_reader(functools.partial(_cpu_list, count)))


async def smp_send_stop() -> None:
    """x86's ``native_stop_other_cpus(0)``, the panic path's ``smp_send_stop()``.

    The first caller sends the REBOOT_VECTOR interrupt to every other online CPU; a CPU takes
    it only with interrupts enabled (idle, or preempted, or spinning with interrupts on) and
    halts there.  After up to a second (virtual) the CPUs still running get the NMI
    (``Shutting down cpus with NMI``), which stops them wherever they are.  A stopped CPU
    never runs again in this boot: the locks it holds stay held.
    """
    kernel = current_kernel()
    smp = kernel.smp
    me = current().cpu
    if smp.stopping_cpu >= 0:
        return
    smp.stopping_cpu = me.id
    sched = kernel.sched
    await sched.preempt_point()  # the cmpxchg and wmb(): the other CPUs run on meanwhile
    others = [c for c in smp.cpus if c is not me and c.online and not c.stopped]
    if not others:
        return
    sched.send_stop_ipi(others)
    for _ in range(1000):  # "Don't wait longer than a second for IPI completion"
        if all(c.stopped for c in others):
            return
        await sched.spin_delay(0.001)
    running = [c for c in others if not c.stopped]
    await printk(KERN_EMERG + "Shutting down cpus with NMI\n")
    sched.send_stop_nmi(running)
    await sched.spin_delay(0.01)


async def crash_smp_send_stop() -> None:
    """x86's ``crash_smp_send_stop()`` (``kdump_nmi_shootdown_cpus``), what panic() calls
    instead of smp_send_stop() with ``crash_kexec_post_notifiers``: the NMI goes to every
    other CPU at once, no stop IPI first, so a CPU stops wherever it is, interrupts off or
    not, inside a console driver's critical section included; then up to a second's wait
    for them to check in."""
    kernel = current_kernel()
    smp = kernel.smp
    if smp.crash_stopped:
        return
    smp.crash_stopped = True
    me = current().cpu
    sched = kernel.sched
    await sched.preempt_point()
    others = [c for c in smp.cpus if c is not me and c.online and not c.stopped]
    if others:
        sched.send_stop_nmi(others)
        for _ in range(1000):
            if all(c.stopped for c in others):
                break
            await sched.spin_delay(0.001)


async def panic_smp_self_stop() -> None:
    """A CPU that panicked second stops itself for good."""
    await current_kernel().sched.freeze_current()

"""Non-maskable interrupts (arch/x86/kernel/nmi.c, kernel/panic.c's nmi_panic).

An NMI is taken whatever the interrupt flag (a CPU spinning with interrupts off still takes
one), never nests, and runs in NMI context (``in_nmi()``), where printk only stores (the
output waits for irq_work) and locks must not be taken.  Under the deterministic scheduler
NMIs come from ``ksim stress --nmi N`` or a scenario's ``nmi`` step (external NMIs, an "NMI
button"), from the hard-lockup detector (ksim.watchdog) and from the panic path's stop NMI
(ksim.smp).

An external NMI nobody claims is an *unknown* NMI: ``Uhhuh. NMI received for unknown reason
%02x on CPU %d.``, then ``nmi_panic("NMI: Not continuing")`` if ``unknown_nmi_panic`` or
``panic_on_unrecovered_nmi`` is set, else ``Dazed and confused, but trying to continue``.  An
NMI whose reason has IOCHK (0x40) set is an I/O check error: ``NMI: IOCK error (debug
interrupt?) for reason %02x on CPU %d.``, and ``panic_on_io_nmi`` panics
(``NMI IOCK error: Not continuing``).  The reason is what port 0x61 reads; ksim's machine
reads 0x00 unless the NMI's raiser says otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import attrs

from ksim.current import current_kernel
from ksim.fs import ProcOps
from ksim.init import kernel_file, setup
from ksim.kern_levels import KERN_EMERG
from ksim.panic import nmi_panic
from ksim.printk import printk
from ksim.sysctl import proc_dointvec

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["NMI_REASON_IOCHK", "NMI_REASON_SERR", "NmiState", "default_do_nmi"]

NMI_REASON_SERR = 0x80
NMI_REASON_IOCHK = 0x40


@attrs.define
class NmiState:
    """arch/x86/kernel/nmi.c's knobs, and the reason port 0x61 reads for the next NMI."""

    unknown_nmi_panic: bool = False
    panic_on_unrecovered_nmi: bool = False
    panic_on_io_nmi: bool = False
    reason: dict[int, int] = attrs.Factory(dict)  # per CPU: the next NMI's reason


@setup("unknown_nmi_panic")
async def setup_unknown_nmi_panic(val: str) -> int:
    current_kernel().nmi.unknown_nmi_panic = True
    return 1


def _nmi_sysctl(attr: str) -> Callable[[Kernel], ProcOps]:
    def make(k: Kernel) -> ProcOps:
        def set_(value: int) -> None:
            setattr(k.nmi, attr, bool(value))
        return proc_dointvec(lambda: int(getattr(k.nmi, attr)), set_)
    return make


for _attr in ("unknown_nmi_panic", "panic_on_unrecovered_nmi", "panic_on_io_nmi"):
    kernel_file("/proc/sys/kernel/" + _attr, 0o644)(_nmi_sysctl(_attr))


async def default_do_nmi(number: int, cpu: int) -> None:
    """An NMI with no local handler to claim it: an I/O check error or an unknown NMI."""
    kernel = current_kernel()
    state = kernel.nmi
    reason = state.reason.pop(cpu, 0)
    if reason & NMI_REASON_IOCHK:
        await printk(KERN_EMERG + "NMI: IOCK error (debug interrupt?) for reason %02x on CPU "
                     "%d.\n", reason, cpu)
        if state.panic_on_io_nmi:
            await nmi_panic("NMI IOCK error: Not continuing")
        return
    await printk(KERN_EMERG + "Uhhuh. NMI received for unknown reason %02x on CPU %d.\n",
                 reason, cpu)
    if state.unknown_nmi_panic or state.panic_on_unrecovered_nmi:
        await nmi_panic("NMI: Not continuing")
    await printk(KERN_EMERG + "Dazed and confused, but trying to continue\n")

"""Restart, halt and power-off (kernel/reboot.c).

A simulated machine cannot jump to its reset vector, so leaving the kernel is an exception:
:class:`MachineStop` and its subclasses are ``BaseException`` so that driver code catching
``Exception`` cannot swallow a reboot, and they unwind every task of the kernel's nursery.
The boot context manager turns them into the boot's outcome (``kernel.outcome``).
"""

from __future__ import annotations

from ksim.current import KernelGlobal, current_kernel
from ksim.init import SYSTEM_BOOTING, SYSTEM_HALT, SYSTEM_POWER_OFF, SYSTEM_RESTART, \
    SYSTEM_RUNNING
from ksim.notifier import SYS_HALT, SYS_POWER_OFF, SYS_RESTART, BlockingNotifierHead, \
    NotifierBlock, \
    blocking_notifier_call_chain, blocking_notifier_chain_register, \
    blocking_notifier_chain_unregister
from ksim.printk import KERN_EMERG, KMSG_DUMP_EMERG, kmsg_dump, printk

__all__ = ["MachineHalt", "MachineHang", "MachinePowerOff", "MachineRestart", "MachineStop",
           "SYSTEM_BOOTING", "SYSTEM_HALT", "SYSTEM_POWER_OFF", "SYSTEM_RESTART",
           "SYSTEM_RUNNING", "emergency_restart", "kernel_halt", "kernel_power_off",
           "kernel_restart", "reboot_notifier_list", "register_reboot_notifier",
           "unregister_reboot_notifier"]


class MachineStop(BaseException):
    """The kernel stopped running; ``how`` says what the machine does next."""

    how = "stop"

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.how)
        self.detail = detail


class MachineRestart(MachineStop):
    """A warm restart: RAM is kept and the next boot finds it as it was (M9)."""

    how = "restart"


class MachineHalt(MachineStop):
    """The CPU stops for good (``panic`` with ``panic=0``, ``kernel_halt``): RAM still powered."""

    how = "halt"


class MachinePowerOff(MachineStop):
    how = "power_off"


class MachineHang(MachineStop):
    """No CPU can make progress (a global deadlock, a lockup): the machine is stuck."""

    how = "hang"


async def _prepare(event: int, cmd: str | None, state: str) -> None:
    kernel = current_kernel()
    await blocking_notifier_call_chain(reboot_notifier_list, event, cmd)
    kernel.init.system_state = state


async def kernel_restart(cmd: str | None = None) -> None:
    """reboot(2) RESTART: reboot notifiers (N15), the ``reboot:`` line, then a warm reset."""
    await _prepare(SYS_RESTART, cmd, SYSTEM_RESTART)
    if cmd is None:
        await printk(KERN_EMERG + "reboot: Restarting system\n")
    else:
        await printk(KERN_EMERG + "reboot: Restarting system with command '%s'\n", cmd)
    raise MachineRestart(cmd or "")


async def kernel_halt() -> None:
    await _prepare(SYS_HALT, None, SYSTEM_HALT)
    await printk(KERN_EMERG + "reboot: System halted\n")
    raise MachineHalt("System halted")


async def kernel_power_off() -> None:
    await _prepare(SYS_POWER_OFF, None, SYSTEM_POWER_OFF)
    await printk(KERN_EMERG + "reboot: Power down\n")
    raise MachinePowerOff("Power down")


async def emergency_restart() -> None:
    """Reset now, from any context (the panic path, N15): kmsg_dump(EMERG) for the dumpers
    that want it, then the reset: no reboot notifiers, no device shutdown, nothing printed."""
    kernel = current_kernel()
    await kmsg_dump(KMSG_DUMP_EMERG)
    kernel.init.system_state = SYSTEM_RESTART
    kernel.printk.flush_partial()
    raise MachineRestart("emergency")


reboot_notifier_list: KernelGlobal[BlockingNotifierHead] = KernelGlobal(
    "reboot_notifier_list", "chains.reboot_notifier_list")


async def register_reboot_notifier(nb: NotifierBlock) -> int:
    return await blocking_notifier_chain_register(reboot_notifier_list, nb)


async def unregister_reboot_notifier(nb: NotifierBlock) -> int:
    return await blocking_notifier_chain_unregister(reboot_notifier_list, nb)

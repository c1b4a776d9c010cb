"""Restart, halt and power-off (kernel/reboot.c, arch/x86/kernel/reboot.c).

A simulated machine cannot jump to its reset vector, so leaving the kernel is an exception:
:class:`MachineStop` and its subclasses are ``BaseException`` so that driver code catching
``Exception`` cannot swallow a reboot, and they unwind every task of the kernel's nursery.
The boot context manager turns them into the boot's outcome (``kernel.outcome``).

``reboot=`` is parsed as 6.1's ``reboot_setup`` parses it (W2): comma-separated words of which
only the first letter counts (``w``arm, ``c``old, ``h``ard, ``s``oft or ``s``[mp]N, ``g``pio, the
methods ``b a k t e p``, ``f``orce), each optionally ``panic_``-prefixed to set the mode a panic
reboots with.  x86's ``native_machine_emergency_restart`` then tells the BIOS what kind of reset
follows by writing the BIOS Data Area's reset flag at physical 0x472: 0x1234 for a warm reboot,
0 otherwise (the default mode is cold).  Whether the firmware honours it is the firmware
profile's business (:mod:`ksim.firmware`).  The reboot method itself (ACPI, keyboard controller,
triple fault...) makes no difference to RAM on the modelled machines (F10).
"""

from __future__ import annotations

import attrs

from ksim.cmdline import simple_strtoul
from ksim.current import KernelGlobal, current_kernel
from ksim.init import SYSTEM_BOOTING, SYSTEM_HALT, SYSTEM_POWER_OFF, SYSTEM_RESTART, \
    SYSTEM_RUNNING, setup
from ksim.kern_levels import LOGLEVEL_ERR
from ksim.notifier import SYS_HALT, SYS_POWER_OFF, SYS_RESTART, BlockingNotifierHead, \
    NotifierBlock, \
    blocking_notifier_call_chain, blocking_notifier_chain_register, \
    blocking_notifier_chain_unregister
from ksim.printk import KERN_EMERG, KMSG_DUMP_EMERG, KMSG_DUMP_SHUTDOWN, kmsg_dump, printk

__all__ = ["REBOOT_COLD", "REBOOT_UNDEFINED", "REBOOT_WARM", "RebootState", "MachineHalt",
           "MachineHang", "MachinePowerOff", "MachineRestart", "MachineStop",
           "SYSTEM_BOOTING", "SYSTEM_HALT", "SYSTEM_POWER_OFF", "SYSTEM_RESTART",
           "SYSTEM_RUNNING", "emergency_restart", "kernel_halt", "kernel_power_off",
           "kernel_restart", "reboot_notifier_list", "register_reboot_notifier",
           "unregister_reboot_notifier"]


REBOOT_UNDEFINED = -1
REBOOT_COLD = 0
REBOOT_WARM = 1
REBOOT_HARD = 2
REBOOT_SOFT = 3
REBOOT_GPIO = 4
BIOS_RESET_FLAG = 0x472
BIOS_WARM_BOOT = 0x1234


@attrs.define
class RebootState:
    """kernel/reboot.c's variables for one boot (W2); x86 defaults: cold, by ACPI."""

    reboot_mode: int = REBOOT_COLD
    panic_reboot_mode: int = REBOOT_UNDEFINED
    reboot_type: str = "a"
    reboot_force: bool = False
    reboot_cpu: int = 0
    reboot_default: bool = True


@setup("reboot=")
async def reboot_setup(value: str) -> int:
    k = current_kernel()
    state = k.reboot
    rest: str | None = value
    while rest is not None:
        state.reboot_default = False
        word = rest
        panic_mode = word.startswith("panic_")
        if panic_mode:
            word = word[6:]
        modes = {"w": REBOOT_WARM, "c": REBOOT_COLD, "h": REBOOT_HARD, "g": REBOOT_GPIO}
        mode = modes.get(word[:1])
        if word[:1] == "s":
            digits = word[3:] if word[1:3] == "mp" else word[1:]
            if "0" <= digits[:1] <= "9":
                cpu = simple_strtoul(digits, 0)[0]
                if cpu >= k.smp.nr_cpu_ids:
                    k.printk.log_line(LOGLEVEL_ERR, "Ignoring the CPU number in reboot= option. "
                                      "CPU %d exceeds possible cpu number %d"
                                      % (cpu, k.smp.nr_cpu_ids))
                else:
                    state.reboot_cpu = cpu
            else:
                mode = REBOOT_SOFT
        elif word[:1] in ("b", "a", "k", "t", "e", "p"):
            state.reboot_type = word[0]
        elif word[:1] == "f":
            state.reboot_force = True
        if mode is not None:
            if panic_mode:
                state.panic_reboot_mode = mode
            else:
                state.reboot_mode = mode
        comma = word.find(",")
        rest = word[comma + 1:] if comma >= 0 else None
    return 1


def machine_emergency_restart() -> None:
    """x86's restart: tell the BIOS whether the coming reset is warm (BIOS_RESET_FLAG)."""
    kernel = current_kernel()
    mode = BIOS_WARM_BOOT if kernel.reboot.reboot_mode == REBOOT_WARM else 0
    kernel.mem.write_u16(BIOS_RESET_FLAG, mode)


def apply_panic_reboot_mode() -> None:
    """panic(): a ``reboot=panic_*`` mode replaces the reboot mode before the restart."""
    state = current_kernel().reboot
    if state.panic_reboot_mode != REBOOT_UNDEFINED:
        state.reboot_mode = state.panic_reboot_mode


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
    await kmsg_dump(KMSG_DUMP_SHUTDOWN)  # for the dumpers whose max_reason asks for it
    machine_emergency_restart()
    raise MachineRestart(cmd or "")


async def kernel_halt() -> None:
    await _prepare(SYS_HALT, None, SYSTEM_HALT)
    await printk(KERN_EMERG + "reboot: System halted\n")
    await kmsg_dump(KMSG_DUMP_SHUTDOWN)
    raise MachineHalt("System halted")


async def kernel_power_off() -> None:
    await _prepare(SYS_POWER_OFF, None, SYSTEM_POWER_OFF)
    await printk(KERN_EMERG + "reboot: Power down\n")
    await kmsg_dump(KMSG_DUMP_SHUTDOWN)
    raise MachinePowerOff("Power down")


async def emergency_restart() -> None:
    """Reset now, from any context (the panic path, N15): kmsg_dump(EMERG) for the dumpers
    that want it, then the reset: no reboot notifiers, no device shutdown, nothing printed."""
    kernel = current_kernel()
    await kmsg_dump(KMSG_DUMP_EMERG)
    kernel.init.system_state = SYSTEM_RESTART
    kernel.printk.flush_partial()
    machine_emergency_restart()
    raise MachineRestart("emergency")


reboot_notifier_list: KernelGlobal[BlockingNotifierHead] = KernelGlobal(
    "reboot_notifier_list", "chains.reboot_notifier_list")


async def register_reboot_notifier(nb: NotifierBlock) -> int:
    return await blocking_notifier_chain_register(reboot_notifier_list, nb)


async def unregister_reboot_notifier(nb: NotifierBlock) -> int:
    return await blocking_notifier_chain_unregister(reboot_notifier_list, nb)

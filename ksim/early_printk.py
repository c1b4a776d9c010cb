"""``earlyprintk=`` (arch/x86/kernel/early_printk.c): a boot console on the UART from the early
parameters on.

``earlyprintk=serial[,ttySn][,baud]`` or ``earlyprintk=ttySn`` registers ``earlyser`` as a boot
console (``CON_BOOT``, unless the value contains ``keep``) with ``CON_PRINTBUFFER``: it replays
what the kernel logged so far and then prints every line until the real console replaces it
(``printk: bootconsole [earlyser0] disabled``, C4h).  Only ``ttyS0`` exists on ksim's machine;
another port's bytes go nowhere.  ``vga`` needs a VGA screen the machine lacks.  Messages the
kernel prints when it cannot even panic (an early exception) go to this console only
(:func:`early_printk`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from ksim.console import CON_BOOT, CON_PRINTBUFFER, Console
from ksim.current import current_kernel
from ksim.init import early_param
from ksim.printk import KERN_CRIT, printk, register_console

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["EarlyPrintkState", "early_printk"]


@attrs.define
class EarlyPrintkState:
    initialized: bool = False
    console: Console | None = None
    port: int = 0


def _port(spec: str) -> int:
    digits = ""
    for ch in spec:
        if not "0" <= ch <= "9":  # ASCII only: "²" is a digit to str.isdigit
            break
        digits += ch
    return int(digits) if digits else 0


async def _register(k: Kernel, state: EarlyPrintkState, port: int, keep: bool) -> None:
    if state.console is not None:
        await printk(KERN_CRIT + "ERROR: earlyprintk= %s already used\n", "earlyser")
        return
    async def early_serial_write(con: Console, data: bytes) -> None:
        _uart_write(k, port, data)

    flags = CON_PRINTBUFFER | (0 if keep else CON_BOOT)
    con = Console(name="earlyser", write=early_serial_write, flags=flags, index=-1)
    state.console, state.port = con, port
    await register_console(con)


@early_param("earlyprintk")
async def setup_early_printk(val: str | None) -> int:
    if val is None:
        return 0
    k = current_kernel()
    state = k.early_printk
    if state.initialized:
        return 0
    state.initialized = True
    keep = "keep" in val
    buf = val
    while buf:
        if buf.startswith("serial"):
            buf = buf[6:]
            port = _port(buf[5:]) if buf.startswith(",ttyS") else 0
            await _register(k, state, port, keep)
            if buf.startswith(",ttyS"):
                buf = buf[5:]
        if buf.startswith("ttyS"):
            await _register(k, state, _port(buf[4:]), keep)
        buf = buf[1:]
    return 0


def _uart_write(k: Kernel, port: int, data: bytes) -> None:
    """early_serial_write(): polled output on the UART at *port*, if the machine has it."""
    if port < len(k.serial.output):
        k.serial.output[port] += data
        if k.serial.sink is not None:
            k.serial.sink(data)


def early_printk(k: Kernel, text: str) -> None:
    """``early_printk()``: straight to the early console's UART, not into the log."""
    state = k.early_printk
    if state.console is not None:
        _uart_write(k, state.port, text.encode())

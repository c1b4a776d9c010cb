"""``struct console``, the ``console=`` syntax and ``/proc/consoles`` (include/linux/console.h,
kernel/printk/printk.c's console_setup(), fs/proc/consoles.c).

A console is a sink for kernel messages: the serial port, a VGA text screen, a block of RAM.
Which consoles are registered and enabled, and who prints to them, is printk's business
(:func:`ksim.printk.register_console`, C4, C6); this module holds what a driver declares and
what the user writes on the command line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs

from ksim.fs import ProcOps, text_reader
from ksim.init import kernel_file

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["CON_ANYTIME", "CON_BOOT", "CON_BRL", "CON_CONSDEV", "CON_ENABLED", "CON_EXTENDED",
           "CON_PRINTBUFFER", "MAX_CMDLINECONSOLES", "Console", "ConsoleCmdline",
           "parse_console_option", "proc_consoles"]

# Flags (C2).
CON_PRINTBUFFER = 1
CON_CONSDEV = 2
CON_ENABLED = 4
CON_BOOT = 8
CON_ANYTIME = 16
CON_BRL = 32
CON_EXTENDED = 64

MAX_CMDLINECONSOLES = 8

ConsoleWrite = Callable[["Console", bytes], Awaitable[None]]


@attrs.define(eq=False)
class Console:
    """``struct console`` (C1).  ``write``, ``setup``, ``device`` and ``unblank`` are
    ``async def`` (driver code: they may printk and be preemption points); register_console
    refuses a console whose callbacks are not.

    ``loglevel`` is ksim's per-console loglevel (0: follow the global console_loglevel), as in
    the per-console loglevel series for Linux (``console=NAME,OPTIONS/loglevel:N``).
    ``write_nowait`` is a core driver's synchronous twin of ``write`` for the hot path (the
    UART never waits); drivers leave it None.
    """

    name: str
    write: ConsoleWrite | None = None
    flags: int = 0
    index: int = -1
    setup: Callable[[Console, str | None], Awaitable[int]] | None = None
    device: Callable[[Console], Awaitable[tuple[int, int] | None]] | None = None
    read: Callable[..., object] | None = None
    unblank: Callable[[Console], Awaitable[None]] | None = None
    data: object = None
    loglevel: int = 0
    seq: int = 0
    dropped: int = 0
    # Every byte this console was given, when the machine records consoles (tests, scenarios).
    received: bytearray | None = None
    write_nowait: Callable[[Console, bytes], None] | None = None

    @property
    def label(self) -> str:
        return "%s%d" % (self.name, self.index)


@attrs.frozen
class ConsoleCmdline:
    """One ``console=`` entry (C3)."""

    name: str
    index: int
    options: str | None
    loglevel: int = 0


def _loglevel(level: str) -> int:
    """``/loglevel:N``'s N; anything but ASCII digits (``²`` is a Unicode digit that ``int``
    rejects) leaves the console's own loglevel, as a kernel parser reading ``0``-``9`` would."""
    return int(level) if level.isascii() and level.isdigit() else 0


def parse_console_option(value: str) -> ConsoleCmdline:
    """Split ``ttyS1,115200n8`` into (ttyS, 1, "115200n8") exactly as console_setup() does (C3).

    ``console=`` and ``console=null`` select ``ttynull``.  The name and index come from a
    20-byte copy of the value (``ttyS`` prepended when it starts with a digit): the name
    ends at the first digit or ``,``, the index is the decimal number there (0 if none), and
    the name keeps at most 15 characters; the options are everything after the first ``,``
    of the original value.  ``/loglevel:N`` is ksim's per-console loglevel extension.
    """
    if value in ("", "null"):
        return ConsoleCmdline("ttynull", 0, None)
    head, comma, tail = value.partition(",")
    options: str | None = tail if comma else None
    loglevel = 0
    if options is not None and "/loglevel:" in options:
        options, _, level = options.partition("/loglevel:")
        loglevel = _loglevel(level)
    elif "/loglevel:" in head:
        head, _, level = head.partition("/loglevel:")
        loglevel = _loglevel(level)
        value = head
    buf = ("ttyS" + value[:15]) if "0" <= value[:1] <= "9" else value[:19]
    cut = len(buf)
    for i, ch in enumerate(buf):
        if "0" <= ch <= "9" or ch == ",":
            cut = i
            break
    name, digits = buf[:cut], buf[cut:]
    end = 0
    while end < len(digits) and "0" <= digits[end] <= "9":
        end += 1
    index = int(digits[:end]) if end else 0
    return ConsoleCmdline(name[:15], index, options, loglevel)


async def proc_consoles(consoles: list[Console]) -> str:
    """``/proc/consoles`` (C7): one line per registered console, in list order."""
    lines = []
    for con in consoles:
        flags = "".join(ch if con.flags & bit else " " for bit, ch in (
            (CON_ENABLED, "E"), (CON_CONSDEV, "C"), (CON_BOOT, "B"),
            (CON_PRINTBUFFER, "p"), (CON_BRL, "b"), (CON_ANYTIME, "a")))
        line = ("%s%d" % (con.name, con.index)).ljust(20) + " "
        writable = con.flags & CON_ENABLED and con.write is not None
        line += "%s%s%s (%s)" % ("R" if con.read else "-", "W" if writable else "-",
                                 "U" if con.unblank else "-", flags)
        dev = await con.device(con) if con.device is not None else None
        if dev is not None:
            line += " %4d:%d" % dev
        lines.append(line + "\n")
    return "".join(lines)


@kernel_file("/proc/consoles", 0o444)
def _proc_consoles(k: Kernel) -> ProcOps:
    return text_reader(lambda: proc_consoles(k.printk.console_drivers))

"""The console registry and the printing half of printk (kernel/printk/printk.c, console.h).

A console is a sink for kernel messages: the serial port, a VGA text screen, a block of RAM.
``register_console`` decides, by the ``console=`` rules (C3, C4), whether a new console is
enabled, whether it becomes ``/dev/console`` (CON_CONSDEV) and whether it first receives the
backlog (CON_PRINTBUFFER).  Every enabled console then gets each record exactly once and in
sequence order, because each console keeps its own cursor (``seq``) and only the holder of the
console lock advances the cursors (C6).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
import attrs

from ksim.bug import warn
from ksim.current import current_kernel
from ksim.errno import ENODEV
from ksim.printk import CONSOLE_LOGLEVEL_MOTORMOUTH, KERN_INFO, Printk, \
    PrintkRecord, printk, record_kmsg_text, record_print_text

# Flags (C2).
CON_PRINTBUFFER = 1
CON_CONSDEV = 2
CON_ENABLED = 4
CON_BOOT = 8
CON_ANYTIME = 16
CON_BRL = 32
CON_EXTENDED = 64

MAX_CMDLINECONSOLES = 8

ConsoleWrite = Callable[["Console", bytes], "Awaitable[None] | None"]


@attrs.define(eq=False)
class Console:
    """``struct console`` (C1).  ``write`` may be a plain or an ``async`` function.

    ``loglevel`` is ksim's per-console loglevel (0: follow the global console_loglevel), as in
    the per-console loglevel series for Linux (``console=NAME,OPTIONS/loglevel:N``).
    """

    name: str
    write: ConsoleWrite | None = None
    flags: int = 0
    index: int = -1
    setup: Callable[[Console, str | None], int] | None = None
    device: Callable[[Console], tuple[int, int] | None] | None = None
    read: Callable[..., object] | None = None
    unblank: Callable[[Console], None] | None = None
    data: object = None
    loglevel: int = 0
    seq: int = 0
    dropped: int = 0
    # Every byte this console was given, when the machine records consoles (tests, scenarios).
    received: bytearray | None = None
    _async_write: bool = attrs.field(default=False, init=False)

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
        loglevel = int(level) if level.isdigit() else 0
    elif "/loglevel:" in head:
        head, _, level = head.partition("/loglevel:")
        loglevel = int(level) if level.isdigit() else 0
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


class ConsoleRegistry:
    """One kernel's consoles, ``console=`` preferences and console lock."""

    def __init__(self, printk: Printk) -> None:
        self.printk = printk
        self.cmdline: list[ConsoleCmdline] = []
        self.preferred_console = -1
        self.consoles: list[Console] = []  # head first; the head is /dev/console
        self.keep_bootcon = False
        self.record = False  # keep what each console receives in Console.received
        self.recorded: list[Console] = []  # consoles recorded on this boot, even if gone since
        self.syslog_seq = 0  # syslog(2) READ position; ksim has no syslog reader (C4g)
        self._locked = False
        self._text_cache: tuple[int, bool, bytes] = (-1, False, b"")

    # -- console= (C3) ----------------------------------------------------------------------
    def add_preferred_console(self, entry: ConsoleCmdline) -> None:
        for i, existing in enumerate(self.cmdline):
            if existing.name == entry.name and existing.index == entry.index:
                self.preferred_console = i  # a repeat re-selects, adds nothing
                return
        if len(self.cmdline) >= MAX_CMDLINECONSOLES:
            return  # extra entries are silently ignored
        self.cmdline.append(entry)
        self.preferred_console = len(self.cmdline) - 1

    def console_setup(self, value: str) -> int:
        """The ``__setup("console=")`` handler; always consumes the option."""
        self.add_preferred_console(parse_console_option(value))
        return 1

    # -- register / unregister (C4, C5) -----------------------------------------------------
    def _try_enable_default(self, con: Console) -> None:
        if con.index < 0:
            con.index = 0
        if con.setup is not None and con.setup(con, None) != 0:
            return
        con.flags |= CON_ENABLED
        if con.device is not None:
            con.flags |= CON_CONSDEV

    def _try_enable_preferred(self, con: Console) -> int:
        for i, entry in enumerate(self.cmdline):
            if entry.name != con.name:
                continue
            if con.index >= 0 and con.index != entry.index:
                continue
            if con.index < 0:
                con.index = entry.index
            if con.setup is not None and con.setup(con, entry.options) != 0:
                return -ENODEV
            con.flags |= CON_ENABLED
            if entry.loglevel:
                con.loglevel = entry.loglevel
            if i == self.preferred_console:
                con.flags |= CON_CONSDEV
            return 0
        if con.flags & CON_ENABLED:
            return 0  # pre-enabled consoles (pstore, netconsole) are accepted without a match
        return -ENODEV

    def _register(self, con: Console) -> tuple[list[str], list[Console]]:
        """register_console() up to the ``enabled`` line (C4).

        Returns the lines to log and the boot consoles the newcomer replaces (C4h), which the
        caller unregisters only *after* logging, so that they, too, print ``console [..]
        enabled`` and their own ``bootconsole [..] disabled``, as in Linux.
        """
        msgs: list[str] = []
        if con in self.consoles:
            # C4a: WARN(), i.e. the cut-here splat and taint W, then ignore the call.
            warn("console '%s%d' already registered" % (con.name, con.index))
            return msgs, []
        bootcon = any(c.flags & CON_BOOT for c in self.consoles)
        realcon = any(not c.flags & CON_BOOT for c in self.consoles)
        if con.flags & CON_BOOT and realcon:
            msgs.append(KERN_INFO + "printk: Too late to register bootconsole %s%d" % (
                con.name, con.index))
            return msgs, []
        if self.preferred_console < 0:
            head = self.consoles[0] if self.consoles else None
            if head is None or head.device is None or head.flags & CON_BOOT:
                self._try_enable_default(con)
        if self._try_enable_preferred(con) != 0 or con.flags & CON_BRL:
            return msgs, []
        con._async_write = inspect.iscoroutinefunction(con.write)
        if self.record and con.received is None:
            con.received = bytearray()
            self.recorded.append(con)
        replaces_bootcons = bootcon and (con.flags & (CON_CONSDEV | CON_BOOT)) == CON_CONSDEV
        if replaces_bootcons:
            con.flags &= ~CON_PRINTBUFFER  # C4h: no second replay of the same boot messages
        if not self.consoles:
            con.flags |= CON_CONSDEV
            self.consoles.insert(0, con)
        elif con.flags & CON_CONSDEV:
            self.consoles[0].flags &= ~CON_CONSDEV
            self.consoles.insert(0, con)
        else:
            self.consoles.insert(1, con)
        # C4g: a CON_PRINTBUFFER console starts at the syslog reader's position (6.1
        # register_console); records lost since then are announced as dropped (C6, C13).
        con.seq = self.syslog_seq if con.flags & CON_PRINTBUFFER else self.printk.log.next_seq
        con.dropped = 0
        msgs.append(KERN_INFO + "printk: %sconsole [%s%d] enabled" % (
            "boot" if con.flags & CON_BOOT else "", con.name, con.index))
        if replaces_bootcons and not self.keep_bootcon:
            return msgs, [c for c in self.consoles if c.flags & CON_BOOT]
        return msgs, []

    def register_console(self, con: Console) -> list[str]:
        """Register ``con`` (C4); returns the lines the kernel logs, for the caller to printk.

        Synchronous form for code without a running kernel: replaced boot consoles are
        unregistered at once.  :func:`register_console` (the driver API) logs in Linux's order.
        """
        msgs, bootcons = self._register(con)
        for old in bootcons:
            msgs.extend(self.unregister_console(old)[1])
        return msgs

    @staticmethod
    def disabled_message(con: Console) -> str:
        """The line unregister_console() logs first, whether or not ``con`` is registered (C5)."""
        return KERN_INFO + "printk: %sconsole [%s%d] disabled" % (
            "boot" if con.flags & CON_BOOT else "", con.name, con.index)

    def unlink_console(self, con: Console) -> int:
        """Unlink ``con``; 0, or -ENODEV if it was not registered.  CON_ENABLED is cleared
        either way, and a removed CON_CONSDEV passes to the new list head (C5)."""
        con.flags &= ~CON_ENABLED
        if con not in self.consoles:
            return -ENODEV
        self.consoles.remove(con)
        if con.flags & CON_CONSDEV:
            con.flags &= ~CON_CONSDEV
            if self.consoles:
                self.consoles[0].flags |= CON_CONSDEV
        return 0

    def unregister_console(self, con: Console) -> tuple[int, list[str]]:
        """Remove ``con`` (C5); returns (0 or -ENODEV, lines to log).

        Linux prints ``console [..] disabled`` before it even looks for the console, so the
        line is logged for an unregistered console too.
        """
        msg = self.disabled_message(con)
        return self.unlink_console(con), [msg]

    def find(self, name: str, index: int | None = None) -> Console | None:
        for con in self.consoles:
            if con.name == name and (index is None or con.index == index):
                return con
        return None

    @property
    def dev_console(self) -> Console | None:
        """The console behind ``/dev/console``: the one with CON_CONSDEV."""
        for con in self.consoles:
            if con.flags & CON_CONSDEV:
                return con
        return None

    # -- printing (C6) ------------------------------------------------------------------------
    def _text(self, record: PrintkRecord, extended: bool) -> bytes:
        seq, ext, data = self._text_cache
        if seq == record.seq and ext == extended:
            return data
        if extended:
            data = record_kmsg_text(record).encode()
        else:
            data = record_print_text(record, time=self.printk.printk_time).encode()
        self._text_cache = (record.seq, extended, data)
        return data

    def _suppressed(self, con: Console, level: int) -> bool:
        pk = self.printk
        if pk.ignore_loglevel:
            return False
        limit = pk.console_loglevel
        if con.loglevel and limit != CONSOLE_LOGLEVEL_MOTORMOUTH:
            limit = con.loglevel
        return level >= limit

    async def console_unlock_if_free(self) -> None:
        """printk's ``console_trylock() ... console_unlock()``: print, or leave it to the holder."""
        if self._locked or not self.consoles:
            return
        await self._flush_all()

    async def console_flush_on_panic(self) -> None:
        """Print everything pending, whoever holds the console lock (K2 step 12)."""
        self.printk.flush_partial()
        holder = self._locked
        try:
            await self._flush_all()
        finally:
            self._locked = holder

    async def _flush_all(self) -> None:
        """console_flush_all() under the console lock: one record per console per round,
        until none progresses.

        A console whose cursor fell behind the oldest record adds the gap to ``dropped``;
        the ``** N printk messages dropped **`` line goes out just before the next record
        that console actually prints, and never to an extended console (C6, C13).
        """
        self._locked = True
        try:
            pk = self.printk
            log = pk.log
            progress = True
            while progress:
                progress = False
                for con in tuple(self.consoles):
                    seq = con.seq
                    if seq >= log.next_seq or not con.flags & CON_ENABLED or con.write is None:
                        continue
                    progress = True
                    if seq < log.first_seq:
                        con.dropped += log.first_seq - seq
                        seq = log.first_seq
                    record = log.get(seq)
                    con.seq = seq + 1
                    if record is None:
                        continue
                    # C6 (and the per-console loglevel), inline: this runs for every record
                    if not pk.ignore_loglevel:
                        limit = pk.console_loglevel
                        if con.loglevel and limit != CONSOLE_LOGLEVEL_MOTORMOUTH:
                            limit = con.loglevel
                        if record.level >= limit:
                            continue
                    extended = bool(con.flags & CON_EXTENDED)
                    if con.dropped and not extended:
                        line = b"** %d printk messages dropped **\n" % con.dropped
                        con.dropped = 0
                        await self._write(con, line)
                    data = self._text(record, extended)
                    if con._async_write or con.received is not None:
                        await self._write(con, data)
                    else:  # the serial port: a plain call, no coroutine to build
                        con.write(con, data)  # type: ignore[misc]
        finally:
            self._locked = False

    @staticmethod
    async def _write(con: Console, data: bytes) -> None:
        if con.received is not None:
            con.received += data
        if con._async_write:
            await con.write(con, data)  # type: ignore[misc]
        else:
            con.write(con, data)  # type: ignore[misc]

    # -- /proc/consoles (C7) ----------------------------------------------------------------
    def proc_consoles(self) -> str:
        lines = []
        for con in self.consoles:
            flags = "".join(ch if con.flags & bit else " " for bit, ch in (
                (CON_ENABLED, "E"), (CON_CONSDEV, "C"), (CON_BOOT, "B"),
                (CON_PRINTBUFFER, "p"), (CON_BRL, "b"), (CON_ANYTIME, "a")))
            line = ("%s%d" % (con.name, con.index)).ljust(20) + " "
            writable = con.flags & CON_ENABLED and con.write is not None
            line += "%s%s%s (%s)" % ("R" if con.read else "-", "W" if writable else "-",
                                     "U" if con.unblank else "-", flags)
            dev = con.device(con) if con.device is not None else None
            if dev is not None:
                line += " %4d:%d" % dev
            lines.append(line + "\n")
        return "".join(lines)


# -- the driver-facing API ------------------------------------------------------------------------

async def register_console(con: Console) -> None:
    """``register_console(&con)``: enable by the C4 rules, log it, replay the backlog if asked.

    As in Linux, ``console [..] enabled`` is logged while the boot consoles are still
    registered (they print it too), and only then are the replaced boot consoles removed,
    each logging its own ``bootconsole [..] disabled`` first (C4h, C5).
    """
    kernel = current_kernel()
    lines, bootcons = kernel.consoles._register(con)
    for line in lines:
        await printk(line + "\n")
    await kernel.consoles.console_unlock_if_free()
    for old in bootcons:
        await unregister_console(old)


async def unregister_console(con: Console) -> int:
    """``unregister_console(&con)``: 0, or -ENODEV if it was not registered (C5).

    The ``disabled`` line is logged first, so the console still prints it itself.
    """
    kernel = current_kernel()
    await printk(kernel.consoles.disabled_message(con) + "\n")
    return kernel.consoles.unlink_console(con)


def console_text_since(kernel, con: Console, since_seq: int) -> bytes:  # type: ignore[no-untyped-def]
    """What ``con`` was given for the records ``since_seq .. con.seq`` still in the buffer.

    A model of the console's stream, for checking a driver's own record of it (stress).
    """
    registry = kernel.consoles
    out = []
    for record in kernel.printk.log.records_from(since_seq):
        if record.seq >= con.seq:
            break
        if not registry._suppressed(con, record.level):
            out.append(registry._text(record, bool(con.flags & CON_EXTENDED)))
    return b"".join(out)

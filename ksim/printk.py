"""printk: levels, the log, the console lock and the consoles (kernel/printk/printk.c).

printk has two halves, as in Linux 5.10+:

* **store** (:meth:`Printk.vprintk_store`): parse the level prefix, join continuation lines,
  stamp the record with a sequence number and the virtual clock, and put it in the ring buffer
  (:mod:`ksim.printk_ringbuffer`; whole oldest records are dropped when full, C13).  Storing
  never sleeps, so code that must not await (a parser running synchronously, a report raised
  deep inside a check) can log with :func:`printk_deferred`, like the kernel's deferred printk.
* **print**: whoever holds the console lock pushes every new record to every enabled console
  (:func:`console_unlock`).  :func:`printk` stores, then tries the console lock; if another
  task holds it, that task prints our record before it lets go (C6), which is what keeps each
  console's stream in sequence order without a lock around the whole of printk.

This module also owns what printk.c owns in Linux: the registered consoles
(``console_drivers``), the ``console=`` preferences (``console_cmdline``) and
:func:`register_console` (C3, C4, C5), the kmsg dumpers (``kmsg_dump``), and printk's boot
options (``loglevel=``, ``quiet``, ``debug``, ``ignore_loglevel``, ``log_buf_len=``,
``keep_bootcon``, ``console=``), parameters (``printk.time``, ``printk.ignore_loglevel``) and
files (``/proc/sys/kernel/printk``, ``/dev/kmsg``).  ``struct console`` itself, the
``console=`` syntax and ``/proc/consoles`` are :mod:`ksim.console`'s; calls go one way, from
here to there.

Rule ids (C3..C16) refer to docs/linux-rules.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any

import attrs

from ksim.bug import is_driver_bug, warn
from ksim.cmdline import get_option, memparse, simple_strtoul
from ksim.console import (
    CON_BOOT, CON_BRL, CON_CONSDEV, CON_ENABLED, CON_EXTENDED, CON_PRINTBUFFER,
    MAX_CMDLINECONSOLES, Console, ConsoleCmdline, parse_console_option,
)
from ksim.current import Task, current, current_kernel, maybe_current_kernel
from ksim.errno import EBUSY, EINVAL, ENODEV
from ksim.fs import ProcFile, ProcOps, text_reader
from ksim.init import core_param, early_param, kernel_file, require_async, setup
from ksim.kern_levels import (
    CONSOLE_LOGLEVEL_DEBUG, CONSOLE_LOGLEVEL_DEFAULT, CONSOLE_LOGLEVEL_MIN,
    CONSOLE_LOGLEVEL_MOTORMOUTH, CONSOLE_LOGLEVEL_QUIET, CONSOLE_LOGLEVEL_SILENT, KERN_ALERT,
    KERN_CONT, KERN_CRIT, KERN_DEBUG, KERN_DEFAULT, KERN_EMERG, KERN_ERR, KERN_INFO,
    KERN_NOTICE, KERN_SOH, KERN_WARNING, LEVEL_NAMES, LOGLEVEL_ALERT, LOGLEVEL_CRIT,
    LOGLEVEL_DEBUG, LOGLEVEL_DEFAULT, LOGLEVEL_EMERG, LOGLEVEL_ERR, LOGLEVEL_INFO,
    LOGLEVEL_NOTICE, LOGLEVEL_WARNING, MESSAGE_LOGLEVEL_DEFAULT, level_from_name,
)
from ksim.locking.semaphore import Semaphore, accept_transfer, down, down_trylock, transfer, \
    up
from ksim.printk_ringbuffer import LOG_BUF_LEN_DEFAULT, LOG_CONT, LOG_NEWLINE, LogBuffer, \
    PrintkRecord

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = [
    "CONSOLE_LOGLEVEL_DEBUG", "CONSOLE_LOGLEVEL_DEFAULT", "CONSOLE_LOGLEVEL_MIN",
    "CONSOLE_LOGLEVEL_MOTORMOUTH", "CONSOLE_LOGLEVEL_QUIET", "CONSOLE_LOGLEVEL_SILENT",
    "KERN_ALERT", "KERN_CONT", "KERN_CRIT", "KERN_DEBUG", "KERN_DEFAULT", "KERN_EMERG",
    "KERN_ERR", "KERN_INFO", "KERN_NOTICE", "KERN_SOH", "KERN_WARNING", "LEVEL_NAMES",
    "LOGLEVEL_ALERT", "LOGLEVEL_CRIT", "LOGLEVEL_DEBUG", "LOGLEVEL_DEFAULT", "LOGLEVEL_EMERG",
    "LOGLEVEL_ERR", "LOGLEVEL_INFO", "LOGLEVEL_NOTICE", "LOGLEVEL_WARNING",
    "KMSG_DUMP_EMERG", "KMSG_DUMP_MAX", "KMSG_DUMP_OOPS", "KMSG_DUMP_PANIC",
    "KMSG_DUMP_SHUTDOWN", "KMSG_DUMP_UNDEF", "KmsgDumpIter", "KmsgDumper",
    "LOG_BUF_LEN_DEFAULT", "LOG_LINE_MAX", "MESSAGE_LOGLEVEL_DEFAULT", "Printk", "PrintkRecord",
    "console_flush_on_panic", "console_lock", "console_trylock", "console_unlock",
    "format_time", "kmsg_dump", "kmsg_dump_get_buffer", "kmsg_dump_register",
    "kmsg_dump_rewind", "kmsg_dump_unregister", "level_from_name", "pr_alert", "pr_cont",
    "pr_crit", "pr_debug", "pr_emerg", "pr_err", "pr_info", "pr_notice", "pr_warn", "printk",
    "printk_deferred", "record_kmsg_text", "record_print_text", "register_console",
    "setup_log_buf", "unregister_console",
]

CONSOLE_LOG_MAX = 1024
PREFIX_MAX = 32  # !CONFIG_PRINTK_CALLER
LOG_LINE_MAX = CONSOLE_LOG_MAX - PREFIX_MAX  # the largest record vprintk_store() reserves
LOG_BUF_LEN_MAX = 1 << 31
PRB_AVGBITS = 5  # an average record of 32 bytes: one descriptor and info per 32 text bytes
PRB_DESC_SIZE = 24  # sizeof(struct prb_desc)
PRINTK_INFO_SIZE = 88  # sizeof(struct printk_info)
LOG_ALIGN = 8  # __alignof__(struct printk_info)


def format_time(ts_nsec: int) -> str:
    """``[%5lu.%06lu] `` (C15)."""
    sec, nsec = divmod(ts_nsec, 1_000_000_000)
    return "[%5d.%06d] " % (sec, nsec // 1000)


def record_print_text(record: PrintkRecord, *, syslog: bool = False, time: bool = True) -> str:
    """The text a console or dmesg shows for a record: every line prefixed (C15), newline-ended."""
    text = record.text
    if time and not syslog and "\n" not in text:  # the common line, in one formatting step
        sec, nsec = divmod(record.ts_nsec, 1_000_000_000)
        return "[%5d.%06d] %s\n" % (sec, nsec // 1000, text)
    prefix = ""
    if syslog:
        prefix = "<%d>" % ((record.facility << 3) | record.level)
    if time:
        prefix += format_time(record.ts_nsec)
    if "\n" not in text:
        return prefix + text + "\n"
    return "".join(prefix + line + "\n" for line in text.split("\n"))


def _kmsg_escape(text: str) -> str:
    """msg_add_ext_text(): every *byte* < 0x20, >= 0x7f and ``\\`` becomes ``\\xNN`` (C14).

    The kernel escapes the UTF-8 bytes of the text, so ``é`` reads back as ``\\xc3\\xa9``.
    """
    if text.isascii() and text.isprintable() and "\\" not in text:
        return text
    return "".join(chr(b) if 0x20 <= b < 0x7F and b != 0x5C else "\\x%02x" % b
                   for b in text.encode(errors="surrogatepass"))


def record_kmsg_text(record: PrintkRecord) -> str:
    """One ``/dev/kmsg`` read (C14): ``prio,seq,usec,flag;text``.

    info_print_ext_header() prints ``c`` exactly when the record carries LOG_CONT, i.e. it
    began with KERN_CONT and found no partial line of its caller to join (C11, C12).
    """
    flag = "c" if record.flags & LOG_CONT else "-"
    return "%d,%d,%d,%s;%s\n" % ((record.facility << 3) | record.level, record.seq,
                                  record.ts_nsec // 1000, flag, _kmsg_escape(record.text))


class Printk:
    """One kernel's printk state: ``console_printk[4]`` (C9), the log, the consoles."""

    __slots__ = ("console_loglevel", "default_message_loglevel", "minimum_console_loglevel",
                 "default_console_loglevel", "ignore_loglevel", "printk_time",
                 "suppress_printk", "log", "new_log_buf_len", "clock_ns", "_cont",
                 "console_drivers", "console_cmdline", "preferred_console", "keep_bootcon",
                 "console_sem", "console_locked", "console_may_schedule", "console_owner",
                 "console_waiter", "console_waiter_event", "syslog_seq", "record",
                 "recorded", "_text_cache", "dumpers", "always_kmsg_dump",
                 "irq_work_pending")

    def __init__(self, clock_ns: Callable[[], int]) -> None:
        self.console_loglevel = CONSOLE_LOGLEVEL_DEFAULT
        self.default_message_loglevel = MESSAGE_LOGLEVEL_DEFAULT
        self.minimum_console_loglevel = CONSOLE_LOGLEVEL_MIN
        self.default_console_loglevel = CONSOLE_LOGLEVEL_DEFAULT
        self.ignore_loglevel = False  # ignore_loglevel, printk.ignore_loglevel (C10)
        self.printk_time = True  # printk.time (C15)
        self.suppress_printk = False  # set once a halting panic printed its trailer (K2)
        self.log = LogBuffer()
        self.new_log_buf_len = 0  # log_buf_len=, applied by setup_log_buf() (C16)
        self.clock_ns = clock_ns
        # The partial line (C11): caller id, level, facility, timestamp, text so far, flags.
        self._cont: tuple[str, int, int, int, str, int] | None = None
        # The consoles (C3, C4): registered ones head first (the head is /dev/console), the
        # console= entries and which of them is selected.
        self.console_drivers: list[Console] = []
        self.console_cmdline: list[ConsoleCmdline] = []
        self.preferred_console = -1
        self.keep_bootcon = False
        # The console lock (console_sem) and the printing hand-off (6.1): the task inside a
        # console write (console_owner) and the one spinning to take over (console_waiter).
        self.console_sem = Semaphore("console_lock")
        self.console_locked = False
        self.console_may_schedule = False
        self.console_owner: Task | None = None
        self.console_waiter: Task | None = None
        self.console_waiter_event: Any = None
        self.irq_work_pending = False  # defer_console_output(): output left to irq_work
        self.syslog_seq = 0  # syslog(2) READ position; ksim has no syslog reader (C4g)
        # ksim: keep what each console receives in Console.received (tests, scenarios).
        self.record = False
        self.recorded: list[Console] = []  # consoles recorded on this boot, even if gone since
        self._text_cache: tuple[int, bool, bytes] = (-1, False, b"")
        self.dumpers: list[KmsgDumper] = []
        self.always_kmsg_dump = False  # printk.always_kmsg_dump

    # -- store ----------------------------------------------------------------------------
    def vprintk_store(self, facility: int, level: int, text: str, caller_id: str) -> None:
        """Parse prefixes, merge continuations and store (never sleeps).

        As in vprintk_store(): the formatted text is cut to ``LOG_LINE_MAX - 1`` bytes
        *before* the trailing newline is looked for (a cut message stays open for pr_cont);
        a KERN_CONT fragment joins its caller's partial line unless the joined text would
        exceed LOG_LINE_MAX (prb_reserve_in_last fails), and a record keeps the flags of its
        first fragment: LOG_CONT only if that fragment itself began with KERN_CONT (C11, C12).
        """
        if self.suppress_printk:
            return
        if (self._cont is None and level == LOGLEVEL_DEFAULT and text[:1] == KERN_SOH
                and "0" <= text[1:2] <= "7" and text[2:3] != KERN_SOH
                and text[-1:] == "\n" and len(text) < LOG_LINE_MAX // 4):
            self.log.store(self.clock_ns(), ord(text[1]) - 48, text[2:-1], facility,
                           LOG_NEWLINE, caller_id)
            return
        if len(text) > LOG_LINE_MAX // 4:
            raw = text.encode(errors="surrogatepass")
            if len(raw) >= LOG_LINE_MAX:
                text = raw[:LOG_LINE_MAX - 1].decode(errors="ignore")
        reserve = len(text) + 1
        cont = False
        while text[:1] == KERN_SOH and len(text) >= 2:
            code = text[1]
            if "0" <= code <= "7":
                if level == LOGLEVEL_DEFAULT:
                    level = ord(code) - 48
            elif code == "c":
                cont = True
            elif code != "d":
                break
            text = text[2:]
        newline = text.endswith("\n")
        if newline:
            text = text[:-1]
        pending = self._cont
        if pending is not None:
            if cont and pending[0] == caller_id and len(pending[4]) + reserve <= LOG_LINE_MAX:
                text = pending[4] + text
                level, facility, ts, flags = pending[1], pending[2], pending[3], pending[5]
                self._cont = None
                if not newline:
                    self._cont = (caller_id, level, facility, ts, text, flags)
                    return
                self.log.store(ts, level, text, facility, flags | LOG_NEWLINE, caller_id)
                return
            self._flush_cont()
        if level == LOGLEVEL_DEFAULT:
            level = self.default_message_loglevel
        ts = self.clock_ns()
        flags = LOG_CONT if cont else 0
        if not newline:
            self._cont = (caller_id, level, facility, ts, text, flags)
            return
        self.log.store(ts, level, text, facility, flags | LOG_NEWLINE, caller_id)

    def _flush_cont(self) -> None:
        pending = self._cont
        if pending is not None:
            self._cont = None
            caller, level, facility, ts, text, flags = pending
            self.log.store(ts, level, text, facility, flags, caller)

    def flush_partial(self) -> None:
        """Finalize a held partial line (console_flush_on_panic, shutdown)."""
        self._flush_cont()

    # -- policy -----------------------------------------------------------------------------
    def console_verbose(self) -> None:
        """C9: oops and panic make everything visible, unless the console was silenced."""
        if self.console_loglevel:
            self.console_loglevel = CONSOLE_LOGLEVEL_MOTORMOUTH

    def proc_sys_printk(self) -> str:
        return "%d\t%d\t%d\t%d\n" % (self.console_loglevel, self.default_message_loglevel,
                                     self.minimum_console_loglevel, self.default_console_loglevel)

    def dmesg(self, *, time: bool = True) -> str:
        """What ``dmesg`` prints: every record in the buffer (C15), partial line excluded."""
        return "".join(record_print_text(r, time=time) for r in self.log)

    def log_line(self, level: int, text: str) -> None:
        """Store ``text`` at ``level`` as task 0's line, without printing it now (early boot
        code and parsers that run synchronously).  Formatted as ``printk(KERN_<level> ...)``
        is, so the level prefix counts against LOG_LINE_MAX: 989 characters of text (D7)."""
        self.vprintk_store(0, LOGLEVEL_DEFAULT, "%s%d%s\n" % (KERN_SOH, level, text), "T0")

    # -- consoles -----------------------------------------------------------------------------
    def find_console(self, name: str, index: int | None = None) -> Console | None:
        for con in self.console_drivers:
            if con.name == name and (index is None or con.index == index):
                return con
        return None

    @property
    def dev_console(self) -> Console | None:
        """The console behind ``/dev/console``: the one with CON_CONSDEV."""
        for con in self.console_drivers:
            if con.flags & CON_CONSDEV:
                return con
        return None

    def add_preferred_console(self, entry: ConsoleCmdline) -> None:
        """__add_preferred_console() (C3): a repeat re-selects, a ninth entry is ignored."""
        for i, existing in enumerate(self.console_cmdline):
            if existing.name == entry.name and existing.index == entry.index:
                self.preferred_console = i
                return
        if len(self.console_cmdline) >= MAX_CMDLINECONSOLES:
            return
        self.console_cmdline.append(entry)
        self.preferred_console = len(self.console_cmdline) - 1

    def console_text(self, record: PrintkRecord, extended: bool) -> bytes:
        """The bytes a console is given for ``record`` (C14 or C15), cached per record."""
        seq, ext, data = self._text_cache
        if seq == record.seq and ext == extended:
            return data
        text = record.text
        if extended:
            data = record_kmsg_text(record).encode()
        elif self.printk_time and "\n" not in text:  # record_print_text()'s common line
            sec, nsec = divmod(record.ts_nsec, 1_000_000_000)
            data = ("[%5d.%06d] %s\n" % (sec, nsec // 1000, text)).encode()
        else:
            data = record_print_text(record, time=self.printk_time).encode()
        self._text_cache = (record.seq, extended, data)
        return data

    def suppressed(self, con: Console, level: int) -> bool:
        """C6: does ``con`` skip a record of ``level`` (the per-console loglevel included)?"""
        if self.ignore_loglevel:
            return False
        limit = self.console_loglevel
        if con.loglevel and limit != CONSOLE_LOGLEVEL_MOTORMOUTH:
            limit = con.loglevel
        return level >= limit


def _caller_id() -> str:
    task = current()
    cpu = task.cpu
    return "C%d" % cpu.id if cpu.hardirq_count else "T%d" % task.pid


_current_task = current  # printk's hot path reads the task once and takes what it needs


def defer_console_output(kernel: Kernel) -> None:
    """Leave the printing to irq_work (6.1's defer_console_output): the scheduler raises it
    as an interrupt on this CPU; without one, the next printk prints what is pending."""
    kernel.printk.irq_work_pending = True
    raise_irq_work = getattr(kernel.sched, "raise_irq_work", None)
    if raise_irq_work is not None:
        raise_irq_work(current().cpu.id)


async def wake_up_klogd_work_func() -> None:
    """The irq_work: print what was deferred, if the console lock is free."""
    pk = current_kernel().printk
    if pk.irq_work_pending:
        pk.irq_work_pending = False
        await print_pending(pk)


def printk_deferred(fmt: str, *args: object) -> None:
    """Store a message and leave the printing to irq_work (``printk_deferred``): for code
    that cannot await or must not take the console lock.

    Outside a running kernel the message is dropped, as an early-boot printk before the log
    exists would be.
    """
    kernel = maybe_current_kernel()
    if kernel is None:
        return
    kernel.printk.vprintk_store(0, LOGLEVEL_DEFAULT, kernel.vsprintf.format(fmt, args),
                                _caller_id())


async def printk(fmt: str, *args: object) -> None:
    """Store the message, then print every pending record if the console lock can be had
    (C6): vprintk_emit() with preemption off around console_trylock_spinning() and
    console_unlock().  From an NMI or inside the console code (printk_safe) the message is
    only stored, its output deferred."""
    task = _current_task()
    kernel = task.kernel
    if kernel is None:
        current_kernel()  # raises the "no kernel" error
        return
    cpu = task.cpu
    pk = kernel.printk
    pk.vprintk_store(0, LOGLEVEL_DEFAULT, kernel.vsprintf.format(fmt, args) if args else fmt,
                     "C%d" % cpu.id if cpu.hardirq_count else task.caller_tag)
    if cpu.printk_context or cpu.nmi_count:
        defer_console_output(kernel)
        return
    sched = kernel.sched
    if sched.preemptible_copies:  # False only where preemption points are no-ops (trio)
        await sched.preempt_point()  # stored, console lock not yet tried
    if not pk.console_drivers:
        return
    cpu.preempt_count += 1
    try:
        if not down_trylock(pk.console_sem):  # console_trylock(), inline: the common case
            pk.console_locked = True
            pk.console_may_schedule = False
            await console_unlock(pk)
        elif await console_trylock_spinning(kernel):
            await console_unlock(pk)
    finally:
        cpu.preempt_count -= 1


def _pr(level: str, name: str) -> Callable[..., Awaitable[None]]:
    async def pr(fmt: str, *args: object) -> None:
        await printk(level + fmt, *args)
    pr.__name__ = pr.__qualname__ = name
    pr.__doc__ = "``%s(fmt, ...)``: printk at its level." % name
    return pr


pr_emerg = _pr(KERN_EMERG, "pr_emerg")
pr_alert = _pr(KERN_ALERT, "pr_alert")
pr_crit = _pr(KERN_CRIT, "pr_crit")
pr_err = _pr(KERN_ERR, "pr_err")
pr_warn = _pr(KERN_WARNING, "pr_warn")
pr_notice = _pr(KERN_NOTICE, "pr_notice")
pr_info = _pr(KERN_INFO, "pr_info")
pr_debug = _pr(KERN_DEBUG, "pr_debug")
pr_cont = _pr(KERN_CONT, "pr_cont")


# -- printing: the console lock (C6) ----------------------------------------------------------
#
# 6.1's rules: whoever holds console_sem prints every pending record to every usable console
# before letting go; a printk that finds it held leaves its record to the holder, unless the
# holder is inside a console write and nobody waits yet, in which case it spins (interrupts
# off) until that write ends and the holder hands it the lock (console_owner/console_waiter);
# each console write runs with local interrupts off (printk_safe), and a printk from there, or
# from an NMI, is only stored (its output deferred to irq_work).

def console_trylock() -> int:
    """``console_trylock()``: 1 if this context now holds the console lock, else 0."""
    pk = current_kernel().printk
    if down_trylock(pk.console_sem):
        return 0
    pk.console_locked = True
    pk.console_may_schedule = False
    return 1


async def console_lock() -> None:
    """``console_lock()``: sleep until the console lock is ours (might_sleep first)."""
    pk = current_kernel().printk
    await down(pk.console_sem)
    pk.console_locked = True
    pk.console_may_schedule = True


def _console_unlock_sem(pk: Printk) -> None:
    """``__console_unlock()``: drop the lock itself (nothing printed)."""
    pk.console_locked = False
    up(pk.console_sem)


def panic_in_progress(kernel: Kernel) -> bool:
    return kernel.panic.panic_cpu >= 0


async def console_trylock_spinning(kernel: Kernel) -> bool:
    """Take the console lock, or take it over from a printing CPU (6.1's hand-off).

    If the holder is inside a console write and nobody waits yet, become the waiter and spin
    with interrupts off until that write ends: the holder then passes the lock here instead
    of printing our record itself, so no CPU prints for ever while others keep printk-ing.
    """
    pk = kernel.printk
    if console_trylock():
        return True
    if panic_in_progress(kernel):
        return False
    task = current()
    cpu = task.cpu
    flags = cpu.irqs_enabled
    cpu.irqs_enabled = False
    cpu.printk_context += 1
    owner = pk.console_owner
    if pk.console_waiter is not None or owner is None or owner is task:
        cpu.printk_context -= 1
        cpu.irqs_enabled = flags
        return False
    pk.console_waiter = task
    event = kernel.sched.new_event(task, "console_owner", spin=True)
    pk.console_waiter_event = event
    await event.wait()  # the owner clears console_waiter on hand-off
    cpu.printk_context -= 1
    cpu.irqs_enabled = flags
    accept_transfer(pk.console_sem)
    pk.console_locked = True
    pk.console_may_schedule = False
    return True


def _console_lock_spinning_disable_and_check(pk: Printk) -> bool:
    """After a record's write: clear console_owner; hand the lock to a spinning waiter."""
    pk.console_owner = None
    waiter = pk.console_waiter
    if waiter is None:
        return False
    pk.console_waiter = None
    transfer(pk.console_sem, waiter)
    event, pk.console_waiter_event = pk.console_waiter_event, None
    if event is not None:
        event.set()
    return True


async def print_pending(pk: Printk) -> None:
    """``if (console_trylock()) console_unlock();``: print what is pending unless someone
    holds the console lock (who will print it)."""
    if pk.console_drivers and console_trylock():
        await console_unlock(pk)


def _abandon_console_lock_in_panic(kernel: Kernel, task_cpu: int) -> bool:
    """A CPU other than the panicking one lets the consoles go (6.1)."""
    cpu = kernel.panic.panic_cpu
    return cpu >= 0 and cpu != task_cpu


async def console_unlock(pk: Printk | None = None) -> None:
    """``console_unlock()``: print every pending record to every usable console, then
    release the console lock; if records arrived meanwhile and the lock is free again, go
    on (C6).  Returns early if the lock was handed to a waiter."""
    if pk is None:
        pk = current_kernel().printk
    do_cond_resched = pk.console_may_schedule
    while True:
        pk.console_may_schedule = False
        flushed, next_seq, handover = await console_flush_all(pk, do_cond_resched)
        if not handover:
            _console_unlock_sem(pk)
        if not flushed:
            return
        if not (next_seq < pk.log.next_seq and console_trylock()):
            return


async def console_flush_on_panic(pk: Printk) -> None:
    """Print everything pending, whoever holds the console lock (K2 step 12): try the lock,
    then unlock regardless, as 6.1 does (an up() of a lock a stopped CPU still holds)."""
    pk.flush_partial()
    console_trylock()
    pk.console_may_schedule = False
    await console_unlock(pk)


async def console_flush_all(pk: Printk, do_cond_resched: bool) -> tuple[bool, int, bool]:
    """``console_flush_all()``: one record per usable console per round, until none
    progresses; returns (a console was usable, the highest console seq, handed over).

    Each record is ``console_emit_next_record()``: a console whose cursor fell behind the
    oldest record adds the gap to ``dropped`` and writes ``** N printk messages dropped **``
    before the next record it prints (never to an extended console, C6, C13); the write runs
    with local interrupts off and ``console_owner`` set, and afterwards a spinning waiter is
    handed the lock.
    """
    log = pk.log
    task = current()
    kernel = task.kernel
    if kernel is None:
        kernel = current_kernel()  # raises the "no kernel" error
    cpu = task.cpu
    next_seq = 0
    any_usable = False
    while True:
        any_progress = False
        for con in tuple(pk.console_drivers):
            if not con.flags & CON_ENABLED or con.write is None:
                continue
            any_usable = True
            seq = con.seq
            if seq >= log.next_seq:
                if seq > next_seq:
                    next_seq = seq
                continue
            if seq < log.first_seq:
                con.dropped += log.first_seq - seq
                seq = con.seq = log.first_seq
            record = log.get(seq)
            # C6 (and the per-console loglevel), inline: this runs for every record
            skip = record is None
            if not skip and not pk.ignore_loglevel:
                limit = pk.console_loglevel
                if con.loglevel and limit != CONSOLE_LOGLEVEL_MOTORMOUTH:
                    limit = con.loglevel
                skip = record.level >= limit  # type: ignore[union-attr]
            if skip:
                con.seq = seq + 1
            else:
                extended = bool(con.flags & CON_EXTENDED)
                flags = cpu.irqs_enabled
                cpu.irqs_enabled = False  # printk_safe_enter_irqsave()
                cpu.printk_context += 1
                pk.console_owner = task  # console_lock_spinning_enable()
                data = pk.console_text(record, extended)  # type: ignore[arg-type]
                nowait = con.write_nowait
                if nowait is not None and con.received is None and not con.dropped:
                    nowait(con, data)  # the UART: a plain call, no coroutine to build
                else:
                    cpu.console_write = con  # for the checkers: a console driver runs here
                    try:
                        if con.dropped and not extended:
                            line = b"** %d printk messages dropped **\n" % con.dropped
                            con.dropped = 0
                            await _write(con, line)
                        await _write(con, data)
                    finally:
                        cpu.console_write = None
                con.seq = seq + 1
                pk.console_owner = None  # console_lock_spinning_disable_and_check()
                handover = (pk.console_waiter is not None
                            and _console_lock_spinning_disable_and_check(pk))
                cpu.printk_context -= 1
                cpu.irqs_enabled = flags  # printk_safe_exit_irqrestore()
                if flags:
                    sched = kernel.sched
                    if sched.preemptible_copies:  # no interrupts without the scheduler
                        await sched.irq_window()
                if handover:
                    return False, next_seq, True
            if con.seq > next_seq:
                next_seq = con.seq
            any_progress = True
            if kernel.panic.panic_cpu >= 0 and _abandon_console_lock_in_panic(kernel, cpu.id):
                return False, next_seq, False
            if do_cond_resched:
                sched = kernel.sched
                if sched.preemptible_copies:
                    await sched.preempt_point()  # cond_resched()
        if not any_progress:
            return any_usable, next_seq, False


async def _write(con: Console, data: bytes) -> None:
    if con.received is not None:
        con.received += data
    try:
        await con.write(con, data)  # type: ignore[misc]
    except BaseException as exc:
        if not is_driver_bug(exc):
            raise
        await current_kernel().driver_bug(exc, "%s->write" % con.name)


# -- register_console / unregister_console (C4, C5) ------------------------------------------

async def _try_enable_default_console(con: Console) -> None:
    if con.index < 0:
        con.index = 0
    if con.setup is not None and await con.setup(con, None) != 0:
        return
    con.flags |= CON_ENABLED
    if con.device is not None:
        con.flags |= CON_CONSDEV


async def _try_enable_preferred_console(pk: Printk, con: Console) -> int:
    for i, entry in enumerate(pk.console_cmdline):
        if entry.name != con.name:
            continue
        if con.index >= 0 and con.index != entry.index:
            continue
        if con.index < 0:
            con.index = entry.index
        if con.setup is not None and await con.setup(con, entry.options) != 0:
            return -ENODEV
        con.flags |= CON_ENABLED
        if entry.loglevel:
            con.loglevel = entry.loglevel
        if i == pk.preferred_console:
            con.flags |= CON_CONSDEV
        return 0
    if con.flags & CON_ENABLED:
        return 0  # pre-enabled consoles (pstore, netconsole) are accepted without a match
    return -ENODEV


def _check_console(con: Console) -> None:
    for field in ("write", "setup", "device", "unblank"):
        fn = getattr(con, field)
        if fn is not None:
            require_async(fn, f"console {con.name}'s {field}")


async def register_console(con: Console) -> None:
    """``register_console(&con)``: enable by the C4 rules, log it, replay the backlog if asked.

    As in Linux, ``console [..] enabled`` is logged while the boot consoles are still
    registered (they print it too), and only then are the replaced boot consoles removed,
    each logging its own ``bootconsole [..] disabled`` first (C4h, C5).
    """
    pk = current_kernel().printk
    _check_console(con)
    if con in pk.console_drivers:
        # C4a: WARN(), i.e. the cut-here splat and taint W, then ignore the call.
        warn("console '%s%d' already registered" % (con.name, con.index))
        await print_pending(pk)
        return
    consoles = pk.console_drivers
    bootcon = any(c.flags & CON_BOOT for c in consoles)
    realcon = any(not c.flags & CON_BOOT for c in consoles)
    if con.flags & CON_BOOT and realcon:
        await printk(KERN_INFO + "printk: Too late to register bootconsole %s%d\n",
                     con.name, con.index)
        return
    if pk.preferred_console < 0:
        head = consoles[0] if consoles else None
        if head is None or head.device is None or head.flags & CON_BOOT:
            await _try_enable_default_console(con)
    if await _try_enable_preferred_console(pk, con) != 0 or con.flags & CON_BRL:
        await print_pending(pk)
        return
    if pk.record and con.received is None:
        con.received = bytearray()
        pk.recorded.append(con)
    replaces_bootcons = bootcon and (con.flags & (CON_CONSDEV | CON_BOOT)) == CON_CONSDEV
    if replaces_bootcons:
        con.flags &= ~CON_PRINTBUFFER  # C4h: no second replay of the same boot messages
    await console_lock()  # the list changes under the console lock
    if not consoles:
        con.flags |= CON_CONSDEV
        consoles.insert(0, con)
    elif con.flags & CON_CONSDEV:
        consoles[0].flags &= ~CON_CONSDEV
        consoles.insert(0, con)
    else:
        consoles.insert(1, con)
    # C4g: a CON_PRINTBUFFER console starts at the syslog reader's position (6.1
    # register_console); records lost since then are announced as dropped (C6, C13).
    con.seq = pk.syslog_seq if con.flags & CON_PRINTBUFFER else pk.log.next_seq
    con.dropped = 0
    await console_unlock(pk)  # prints the backlog to a CON_PRINTBUFFER console
    await printk(KERN_INFO + "printk: %sconsole [%s%d] enabled\n",
                 "boot" if con.flags & CON_BOOT else "", con.name, con.index)
    if replaces_bootcons and not pk.keep_bootcon:
        for old in [c for c in consoles if c.flags & CON_BOOT]:
            await unregister_console(old)


async def unregister_console(con: Console) -> int:
    """``unregister_console(&con)``: 0, or -ENODEV if it was not registered (C5).

    The ``disabled`` line is logged first (before Linux even looks for the console), so the
    console still prints it itself.  CON_ENABLED is cleared either way, and a removed
    CON_CONSDEV passes to the new list head.
    """
    pk = current_kernel().printk
    await printk(KERN_INFO + "printk: %sconsole [%s%d] disabled\n",
                 "boot" if con.flags & CON_BOOT else "", con.name, con.index)
    await console_lock()
    con.flags &= ~CON_ENABLED
    ret = -ENODEV
    if con in pk.console_drivers:
        ret = 0
        pk.console_drivers.remove(con)
        if con.flags & CON_CONSDEV:
            con.flags &= ~CON_CONSDEV
            if pk.console_drivers:
                pk.console_drivers[0].flags |= CON_CONSDEV
    await console_unlock(pk)
    return ret


# -- kmsg_dump (R2a, R11) ----------------------------------------------------------------------

# enum kmsg_dump_reason (include/linux/kmsg_dump.h, 6.1)
KMSG_DUMP_UNDEF = 0
KMSG_DUMP_PANIC = 1
KMSG_DUMP_OOPS = 2
KMSG_DUMP_EMERG = 3
KMSG_DUMP_SHUTDOWN = 4
KMSG_DUMP_MAX = 5


@attrs.define(eq=False)
class KmsgDumper:
    """``struct kmsg_dumper``: ``dump(dumper, reason)`` is awaited for every dump whose
    reason is at most ``max_reason`` (UNDEF: up to OOPS, or everything with
    ``printk.always_kmsg_dump``)."""

    dump: Callable[[KmsgDumper, int], Awaitable[None]]
    max_reason: int = KMSG_DUMP_UNDEF


@attrs.define
class KmsgDumpIter:
    """``struct kmsg_dump_iter``: where a dumper reads from (``kmsg_dump_rewind``)."""

    cur_seq: int = 0
    next_seq: int = 0


def kmsg_dump_register(dumper: KmsgDumper) -> int:
    """Add a dumper; -EBUSY if it is registered already."""
    require_async(dumper.dump, "the kmsg dumper")
    dumpers = current_kernel().printk.dumpers
    if dumper in dumpers:
        return -EBUSY
    dumpers.append(dumper)
    return 0


def kmsg_dump_unregister(dumper: KmsgDumper) -> int:
    dumpers = current_kernel().printk.dumpers
    if dumper not in dumpers:
        return -EINVAL
    dumpers.remove(dumper)
    return 0


async def kmsg_dump(reason: int) -> None:
    """``kmsg_dump(reason)``: every registered dumper whose max_reason admits ``reason``."""
    pk = current_kernel().printk
    for dumper in list(pk.dumpers):
        max_reason = dumper.max_reason
        if max_reason == KMSG_DUMP_UNDEF:
            max_reason = KMSG_DUMP_MAX if pk.always_kmsg_dump else KMSG_DUMP_OOPS
        if reason > max_reason:
            continue
        await dumper.dump(dumper, reason)


def kmsg_dump_rewind(it: KmsgDumpIter) -> None:
    """Reset the iterator to the whole log still in the buffer."""
    log = current_kernel().printk.log
    it.cur_seq = log.first_seq
    it.next_seq = log.next_seq


def kmsg_dump_get_buffer(it: KmsgDumpIter, syslog: bool, size: int) -> bytes | None:
    """The newest records between ``cur_seq`` and ``next_seq`` that fit in ``size`` bytes,
    oldest first, as syslog-format (``<N>[ time] text``) or plain lines; moves ``next_seq``
    back past them, so the next call returns the chunk before.  None when nothing is left
    (or ``size`` holds no record)."""
    pk = current_kernel().printk
    log = pk.log
    if it.cur_seq < log.first_seq:
        it.cur_seq = log.first_seq
    if it.cur_seq >= it.next_seq:
        return None
    texts: list[bytes] = []
    total = 0
    seq = it.next_seq - 1
    while seq >= it.cur_seq:
        record = log.get(seq)
        if record is not None:
            text = record_print_text(record, syslog=syslog, time=pk.printk_time).encode(
                errors="surrogatepass")
            if total + len(text) > size:
                break
            texts.append(text)
            total += len(text)
        seq -= 1
    if not texts:
        return None
    it.next_seq = seq + 1
    return b"".join(reversed(texts))


# -- boot options (C9, C10, C13, C16) ---------------------------------------------------------

@early_param("loglevel")
async def loglevel(val: str | None) -> int:
    rc, value, _ = get_option(val or "")
    if rc:
        current_kernel().printk.console_loglevel = value
        return 0
    return -EINVAL


@early_param("quiet")
async def quiet_kernel(val: str | None) -> int:
    current_kernel().printk.console_loglevel = CONSOLE_LOGLEVEL_QUIET
    return 0


@early_param("debug")
async def debug_kernel(val: str | None) -> int:
    current_kernel().printk.console_loglevel = CONSOLE_LOGLEVEL_DEBUG
    return 0


@early_param("ignore_loglevel")
async def ignore_loglevel_setup(val: str | None) -> int:
    pk = current_kernel().printk
    pk.ignore_loglevel = True
    pk.log_line(LOGLEVEL_INFO, "printk: debug: ignoring loglevel setting.")  # pr_fmt (C10)
    return 0


@early_param("log_buf_len")
async def log_buf_len_setup(val: str | None) -> int:
    if val is None:
        return -EINVAL
    pk = current_kernel().printk
    size, _ = memparse(val)
    if size > LOG_BUF_LEN_MAX:
        size = LOG_BUF_LEN_MAX
        pk.log_line(LOGLEVEL_ERR, "printk: log_buf over 2G is not supported.")
    if size:
        size = 1 << (size - 1).bit_length()
    if size > pk.log.size:
        pk.new_log_buf_len = size
    return 0


@early_param("keep_bootcon")
async def keep_bootcon_setup(val: str | None) -> int:
    pk = current_kernel().printk
    pk.keep_bootcon = True
    pk.log_line(LOGLEVEL_INFO, "printk: debug: skip boot console de-registration.")
    return 0


@setup("console=")
async def console_setup(value: str) -> int:
    """``__setup("console=")``: always consumes the option (C3)."""
    current_kernel().printk.add_preferred_console(parse_console_option(value))
    return 1


core_param("printk.time", "bool", 0o644, "printk.printk_time")
core_param("printk.always_kmsg_dump", "bool", 0o644, "printk.always_kmsg_dump")
core_param("printk.ignore_loglevel", "bool", 0o644, "printk.ignore_loglevel")


def setup_log_buf(kernel: Kernel, early: bool = True) -> None:
    """``setup_log_buf()``: move to the ``log_buf_len=`` buffer (C16), allocated from memblock.

    x86 calls it from setup_arch (*early*) and again from start_kernel; a buffer memblock cannot
    give (text, then descriptors, then infos: 4.5 times the text size) is reported each time
    and the static buffer stays.  The early records are copied over; ``early log buf free`` is
    what they left of the static buffer, each costing its text rounded up to 8 bytes plus an
    8-byte block id, as in the lockless ring buffer's data ring.
    """
    pk = kernel.printk
    size = pk.new_log_buf_len
    if not size:
        return
    if size >> PRB_AVGBITS == 0:
        pk.log_line(LOGLEVEL_ERR, "printk: new_log_buf_len: %u too small" % size)
        return
    mb = kernel.memblock
    if mb is not None:
        text = mb.memblock_alloc(size, LOG_ALIGN)
        if not text:
            pk.log_line(LOGLEVEL_ERR, "printk: log_buf_len: %u text bytes not available" % size)
            return
        descs_size = (size >> PRB_AVGBITS) * PRB_DESC_SIZE
        descs = mb.memblock_alloc(descs_size, LOG_ALIGN)
        if not descs:
            pk.log_line(LOGLEVEL_ERR, "printk: log_buf_len: %u desc bytes not available"
                        % descs_size)
            mb.memblock_phys_free(text, size)
            return
        infos_size = (size >> PRB_AVGBITS) * PRINTK_INFO_SIZE
        if not mb.memblock_alloc(infos_size, LOG_ALIGN):
            pk.log_line(LOGLEVEL_ERR, "printk: log_buf_len: %u info bytes not available"
                        % infos_size)
            mb.memblock_phys_free(descs, descs_size)
            mb.memblock_phys_free(text, size)
            return
    free = LOG_BUF_LEN_DEFAULT
    for record in pk.log:
        text_len = len(record.text.encode(errors="surrogatepass"))
        if text_len:
            free -= (text_len + 8 + 7) & ~7
    pk.log.resize(size)
    pk.new_log_buf_len = 0
    pk.log_line(LOGLEVEL_INFO, "printk: log_buf_len: %u bytes" % size)
    pk.log_line(LOGLEVEL_INFO, "printk: early log buf free: %u(%u%%)" % (
        free, free * 100 // LOG_BUF_LEN_DEFAULT))


# -- files ------------------------------------------------------------------------------------

@kernel_file("/proc/sys/kernel/printk", 0o644)
def _proc_sys_printk(k: Kernel) -> ProcOps:
    pk = k.printk

    async def write(file: ProcFile, data: bytes) -> int:
        # proc_dointvec() on the four ints: each value is stored as it is parsed, so a bad
        # one fails the write after the ones before it took effect (oracle F6)
        fields = data.decode(errors="replace").split()
        names = ("console_loglevel", "default_message_loglevel", "minimum_console_loglevel",
                 "default_console_loglevel")
        if not fields:
            return -EINVAL
        for name, field in zip(names, fields):
            digits = field[1:] if field[:1] == "-" else field
            value, rest = simple_strtoul(digits, 0)
            if rest or not digits or not digits[:1].isdigit():
                return -EINVAL
            setattr(pk, name, -value if field[:1] == "-" else value)
        return len(data)

    return ProcOps(text_reader(pk.proc_sys_printk).proc_read, write)


@kernel_file("/dev/kmsg", 0o644)
def _dev_kmsg(k: Kernel) -> ProcOps:
    return text_reader(lambda: "".join(record_kmsg_text(r) for r in k.printk.log))


def records(kernel: Kernel, since_seq: int = 0) -> Iterator[PrintkRecord]:
    """The records still in ``kernel``'s log, from sequence number ``since_seq`` on."""
    return kernel.printk.log.records_from(since_seq)

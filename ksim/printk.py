"""printk: log levels, the log ring buffer and its text formats (kernel/printk/printk.c).

printk has two halves, as in Linux 5.10+:

* **store** (:meth:`Printk.vprintk_store`): parse the level prefix, join continuation lines,
  stamp the record with a sequence number and the virtual clock, and put it in the ring buffer
  (dropping whole oldest records when full, C13).  Storing never sleeps, so code that must not
  await (a parser running synchronously, a report raised deep inside a check) can log with
  :func:`printk_deferred`, exactly like the kernel's deferred printk.
* **print**: whoever holds the console lock pushes every new record to every enabled console
  (:mod:`ksim.console`).  :func:`printk` stores, then tries the console lock; if another task
  holds it, that task prints our record before it lets go (C6), which is what keeps each
  console's stream in sequence order without a lock around the whole of printk.

Rule ids (C8..C16) refer to ``linux-semantics.md``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import NamedTuple


from ksim.current import current, current_kernel, maybe_current_kernel
from ksim.vsprintf import Formatter

# Levels (C8) ---------------------------------------------------------------------------------
LOGLEVEL_EMERG = 0
LOGLEVEL_ALERT = 1
LOGLEVEL_CRIT = 2
LOGLEVEL_ERR = 3
LOGLEVEL_WARNING = 4
LOGLEVEL_NOTICE = 5
LOGLEVEL_INFO = 6
LOGLEVEL_DEBUG = 7
LOGLEVEL_DEFAULT = -1

KERN_SOH = "\x01"
KERN_EMERG = KERN_SOH + "0"
KERN_ALERT = KERN_SOH + "1"
KERN_CRIT = KERN_SOH + "2"
KERN_ERR = KERN_SOH + "3"
KERN_WARNING = KERN_SOH + "4"
KERN_NOTICE = KERN_SOH + "5"
KERN_INFO = KERN_SOH + "6"
KERN_DEBUG = KERN_SOH + "7"
KERN_DEFAULT = ""  # modern kernels: no prefix means default_message_loglevel
KERN_CONT = KERN_SOH + "c"

LEVEL_NAMES = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")

# Console loglevel presets (C9).
CONSOLE_LOGLEVEL_SILENT = 0
CONSOLE_LOGLEVEL_MIN = 1
CONSOLE_LOGLEVEL_QUIET = 4
CONSOLE_LOGLEVEL_DEFAULT = 7
CONSOLE_LOGLEVEL_DEBUG = 10
CONSOLE_LOGLEVEL_MOTORMOUTH = 15
MESSAGE_LOGLEVEL_DEFAULT = 4

# Record flags (C12).
LOG_NEWLINE = 2
LOG_CONT = 8

LOG_BUF_LEN_DEFAULT = 1 << 17  # CONFIG_LOG_BUF_SHIFT=17
CONSOLE_LOG_MAX = 1024
PREFIX_MAX = 32  # !CONFIG_PRINTK_CALLER
LOG_LINE_MAX = CONSOLE_LOG_MAX - PREFIX_MAX  # the largest record vprintk_store() reserves
RECORD_OVERHEAD = 16  # bytes of the 3.5-5.9 record header; ksim charges it per record (C13)
TRUNC_MSG = "<truncated>"


def level_from_name(name: str | int) -> int:
    """``"err"`` / ``"3"`` / ``3`` → 3; also accepts ``warning`` and ``KERN_ERR``-style names."""
    if isinstance(name, int):
        if not 0 <= name <= 7:
            raise ValueError(f"log level {name} is outside 0..7")
        return name
    key = name.strip().lower().removeprefix("kern_")
    if key.isdigit():
        return level_from_name(int(key))
    if key == "warning":
        key = "warn"
    if key in LEVEL_NAMES:
        return LEVEL_NAMES.index(key)
    raise ValueError(f"unknown log level {name!r}; expected one of {', '.join(LEVEL_NAMES)} or 0-7")


class PrintkRecord(NamedTuple):
    """One finalized record of the ring buffer (C12).

    A NamedTuple rather than an attrs class: it is immutable all the same, and building one
    is the single hottest allocation of printk.
    """

    seq: int
    ts_nsec: int
    level: int
    text: str
    facility: int = 0
    flags: int = LOG_NEWLINE
    caller_id: str = ""


_new_record = tuple.__new__  # PrintkRecord(...) without the generated __new__'s extra call


class LogBuffer:
    """The printk ring buffer: whole records, oldest dropped first when full (C12, C13).

    Capacity is in bytes, each record costing its UTF-8 text length plus a fixed header, so
    ``log_buf_len=`` has the effect it has on Linux: how *much text* survives, not how many
    lines.
    """

    __slots__ = ("size", "_records", "_used", "first_seq", "next_seq")

    def __init__(self, size: int = LOG_BUF_LEN_DEFAULT) -> None:
        self.size = size
        self._records: deque[tuple[PrintkRecord, int]] = deque()
        self._used = 0
        self.first_seq = 0
        self.next_seq = 0

    def store(self, ts_nsec: int, level: int, text: str, facility: int = 0,
              flags: int = LOG_NEWLINE, caller_id: str = "") -> PrintkRecord:
        cost = RECORD_OVERHEAD + (len(text) if text.isascii() else len(text.encode()))
        if cost > self.size:
            # C13: a message that could never fit is cut to a quarter of the buffer.
            keep = max(self.size // 4 - RECORD_OVERHEAD - len(TRUNC_MSG), 0)
            text = text.encode()[:keep].decode(errors="ignore") + TRUNC_MSG
            cost = RECORD_OVERHEAD + len(text.encode())
        records = self._records
        while records and self._used + cost > self.size:
            _, old_cost = records.popleft()
            self._used -= old_cost
            self.first_seq += 1
        record = _new_record(PrintkRecord,
                             (self.next_seq, ts_nsec, level, text, facility, flags, caller_id))
        records.append((record, cost))
        self._used += cost
        self.next_seq += 1
        return record

    def get(self, seq: int) -> PrintkRecord | None:
        index = seq - self.first_seq
        if 0 <= index < len(self._records):
            return self._records[index][0]
        return None

    def records_from(self, seq: int) -> Iterator[PrintkRecord]:
        start = max(seq - self.first_seq, 0)
        for index in range(start, len(self._records)):
            yield self._records[index][0]

    def __iter__(self) -> Iterator[PrintkRecord]:
        return (record for record, _ in self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def used(self) -> int:
        return self._used

    def resize(self, size: int) -> None:
        """Grow to ``size`` bytes, keeping every record (setup_log_buf copies the early log)."""
        self.size = max(size, self.size)


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
    """One kernel's printk state: levels (``console_printk[4]``, C9), the buffer, partial lines."""

    def __init__(self, clock_ns, formatter: Formatter | None = None) -> None:
        self.console_loglevel = CONSOLE_LOGLEVEL_DEFAULT
        self.default_message_loglevel = MESSAGE_LOGLEVEL_DEFAULT
        self.minimum_console_loglevel = CONSOLE_LOGLEVEL_MIN
        self.default_console_loglevel = CONSOLE_LOGLEVEL_DEFAULT
        self.ignore_loglevel = False
        self.printk_time = True
        self.suppress_printk = False
        self.log = LogBuffer()
        self.formatter = formatter or Formatter()
        self.clock_ns = clock_ns
        # The partial line (C11): caller id, level, facility, timestamp, text so far, flags.
        self._cont: tuple[str, int, int, int, str, int] | None = None

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


def _caller_id() -> str:
    task = current()
    cpu = task.cpu
    return "C%d" % cpu.id if cpu.hardirq_count else "T%d" % task.pid


_current_task = current  # printk's hot path reads the task once and takes what it needs


def printk_deferred(fmt: str, *args: object) -> None:
    """Store a message without printing it now; consoles catch up at the next flush.

    For code that cannot await.  Outside a running kernel the message is dropped, as an
    early-boot printk before the log exists would be.
    """
    kernel = maybe_current_kernel()
    if kernel is None:
        return
    pk = kernel.printk
    pk.vprintk_store(0, LOGLEVEL_DEFAULT, pk.formatter.format(fmt, args), _caller_id())


async def printk(fmt: str, *args: object) -> None:
    """Store the message, then print every pending record if the console lock is free (C6)."""
    task = _current_task()
    kernel = task.kernel
    if kernel is None:
        current_kernel()  # raises the "no kernel" error
        return
    cpu = task.cpu
    pk = kernel.printk
    pk.vprintk_store(0, LOGLEVEL_DEFAULT, pk.formatter.format(fmt, args) if args else fmt,
                     "C%d" % cpu.id if cpu.hardirq_count else task.caller_tag)
    if kernel.sched is not None:
        await kernel.sched.preempt_point()  # stored, console lock not yet tried
    consoles = kernel.consoles
    if not consoles._locked and consoles.consoles:
        await consoles._flush_all()  # console_trylock() succeeded: print what is pending


async def pr_emerg(fmt: str, *args: object) -> None:
    await printk(KERN_EMERG + fmt, *args)


async def pr_alert(fmt: str, *args: object) -> None:
    await printk(KERN_ALERT + fmt, *args)


async def pr_crit(fmt: str, *args: object) -> None:
    await printk(KERN_CRIT + fmt, *args)


async def pr_err(fmt: str, *args: object) -> None:
    await printk(KERN_ERR + fmt, *args)


async def pr_warn(fmt: str, *args: object) -> None:
    await printk(KERN_WARNING + fmt, *args)


async def pr_notice(fmt: str, *args: object) -> None:
    await printk(KERN_NOTICE + fmt, *args)


async def pr_info(fmt: str, *args: object) -> None:
    await printk(KERN_INFO + fmt, *args)


async def pr_debug(fmt: str, *args: object) -> None:
    await printk(KERN_DEBUG + fmt, *args)


async def pr_cont(fmt: str, *args: object) -> None:
    await printk(KERN_CONT + fmt, *args)

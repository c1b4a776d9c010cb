"""How far the missed targets of issue 13 are from what could be reached at all.

Three figures, each beside a baseline from the same run (no targets of their own; see
docs/benchmarks.md, "Why four targets are out of reach"):

* **An all-inline printk -> ttyS0.**  printk.c's whole common path (format, level prefix,
  store, console_trylock, the console loop, the timestamp prefix, the release) written as
  one coroutine frame, with the ring buffer's store, its lookup and the UART's write left as
  the calls they are: about as few steps as a printk in Python with ksim's state can take.
  Before it is timed, its serial output, log and lock counts are checked equal to the real
  printk's for the same records, so it cannot drift into doing less.  Its ratio against the
  stdlib baselines is the ceiling for ``printk -> ttyS0``'s targets (3x and 2x).
* **memconsole's write alone**: the 2009 driver's ``record_msg`` (its spinlock, header
  accesses and copy through the driver memory API), called directly, against the minimal
  memconsole floor: about the whole 3x the target allows the path, printk included.
* **``ksim stress`` taken apart**: the target's 20 seeds with the race detector and lockdep
  off, with the ``/proc`` reader off, and with both off, against plain printk -> memconsole.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio
import trio.testing

from _common import interleaved, now, report
from bench_targets import FMT, N, US, ksim_printk_us, memconsole_floor_us, stdlib_us, \
    stress_us
from ksim import Machine, printk
from ksim.console import CON_ENABLED
from ksim.current import current, current_kernel
from ksim.kern_levels import CONSOLE_LOGLEVEL_MOTORMOUTH
from ksim.plugins import load_plugins
from ksim.printk_ringbuffer import LOG_NEWLINE, PrintkRecord


async def inline_printk(fmt: str, *args: object) -> None:
    """printk() -> vprintk_store() -> console_trylock() -> console_unlock() in one frame, for
    the common case the benchmark makes (a whole line with its level, one UART console, no
    lock observers, lock_stat off, the trio backend); :func:`_check_inline` holds it to the
    real printk's effects."""
    task = current()
    kernel = task.kernel
    if kernel is None:  # as printk() checks
        return
    cpu = task.cpu
    pk = kernel.printk
    text = fmt % args
    log = pk.log
    log.store(kernel.local_clock(), ord(text[1]) - 48, text[2:-1], 0, LOG_NEWLINE,
              "C%d" % cpu.id if cpu.hardirq_count else task.caller_tag)
    if cpu.printk_context or cpu.nmi_count:
        return
    sem = pk.console_sem
    if sem.count <= 0:
        return
    cpu.preempt_count += 1
    sem.count -= 1
    sem.owner = task
    sem.owner_cpu = cpu.id
    sem.acquisitions += 1
    sem._acquired_at = 0
    pk.console_locked = True
    pk.console_may_schedule = False
    for con in pk.console_drivers:
        if not con.flags & CON_ENABLED:
            continue
        while con.seq < log.next_seq:
            seq = con.seq
            record = log.get(seq)
            limit = pk.console_loglevel
            if con.loglevel and limit != CONSOLE_LOGLEVEL_MOTORMOUTH:
                limit = con.loglevel
            if record is not None and (pk.ignore_loglevel or record.level < limit):
                flags = cpu.irqs_enabled
                cpu.irqs_enabled = False
                cpu.printk_context += 1
                pk.console_owner = task
                sec, nsec = divmod(record.ts_nsec, 1_000_000_000)
                nowait = con.write_nowait
                assert nowait is not None  # _run: the UART is the only console
                nowait(con, ("[%5d.%06d] %s\n" % (sec, nsec // 1000, record.text)).encode())
                pk.console_owner = None
                cpu.printk_context -= 1
                cpu.irqs_enabled = flags
            con.seq = seq + 1
    pk.console_locked = False
    sem.owner = None
    sem.owner_cpu = -1
    if sem.min_hold_ns < 0:
        sem.min_hold_ns = 0
    sem.count += 1
    cpu.preempt_count -= 1


Effects = tuple[bytes, tuple[PrintkRecord, ...], int]


def _run(emit: Callable[..., Awaitable[None]], records: int,
         levels: str = "3") -> tuple[float, Effects]:
    """``records`` printks of FMT through ``emit``, their levels taken in turn from
    ``levels``: the time per record, and the serial output, the log and console_sem's
    acquisitions."""
    messages = ["\x01" + level + FMT + "\n" for level in levels]

    async def main() -> tuple[float, Effects]:
        async with Machine("64M").boot("", []):
            kernel = current_kernel()
            assert not kernel.locking.observers and not kernel.locking.lock_stat
            assert [c.name for c in kernel.printk.console_drivers] == ["ttyS"]
            start = now()
            if len(messages) == 1:
                message = messages[0]
                for i in range(records):
                    await emit(message, i)
            else:
                for i in range(records):
                    await emit(messages[i % len(messages)], i)
            took = (now() - start) / max(records, 1) * US
            return took, (bytes(kernel.serial.output[0]), tuple(kernel.printk.log),
                          kernel.printk.console_sem.acquisitions)

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def _check_inline() -> None:
    """The inline printk leaves what the real one leaves: the same serial bytes (levels the
    console shows and hides, a log that overflowed), the same records, the same console_sem
    acquisitions."""
    records = 3000  # more than the 128 KiB log holds: the oldest records are dropped
    real = _run(printk, records, "01234567")[1]
    inline = _run(inline_printk, records, "01234567")[1]
    assert real == inline, "the inline printk no longer does what printk does"


def inline_printk_us() -> float:
    return _run(inline_printk, N)[0]


def memconsole_write_us() -> float:
    """memconsole's console write alone: record_msg() as console_flush_all() calls it."""
    classes = load_plugins(["memconsole"])
    line = b"[    0.000000] message number 12345 from the benchmark\n"

    async def main() -> float:
        async with Machine("64M").boot("memconsole=8192 console=memconsole", classes):
            con = current_kernel().printk.find_console("memconsole")
            assert con is not None and con.write is not None
            write = con.write
            start = now()
            for _ in range(N):
                await write(con, line)
            return (now() - start) / N * US

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def main() -> None:
    _check_inline()
    inline, stdlib, tuned = interleaved(3, inline_printk_us, lambda: stdlib_us(False),
                                        lambda: stdlib_us(True))
    report("bound: all-inline printk -> ttyS0 vs stdlib (the target asks 3x of printk)",
           inline, stdlib, "us/record", "stdlib logging ring", higher_is_better=False)
    report("bound: all-inline printk -> ttyS0 vs tuned stdlib (the target asks 2x)",
           inline, tuned, "us/record", "tuned stdlib logging ring", higher_is_better=False)
    write, memfloor = interleaved(3, memconsole_write_us, memconsole_floor_us)
    report("bound: memconsole's write alone vs the whole path's floor (the target allows "
           "the whole path 3x)", write, memfloor, "us/record", "minimal memconsole floor",
           multiple=True)
    full, nocheck, noread, bare, plain = interleaved(
        2, lambda: stress_us(8, 200), lambda: stress_us(8, 200, checkers=False),
        lambda: stress_us(8, 200, readers=False),
        lambda: stress_us(8, 200, checkers=False, readers=False),
        lambda: ksim_printk_us("memconsole=8192 console=memconsole", ["memconsole"]))
    for name, figure in (("checkers and /proc reader on (the target's run)", full),
                         ("checkers off", nocheck), ("/proc reader off", noread),
                         ("both off", bare)):
        report(f"stress per record, {name}, vs plain printk (the target allows 4x)", figure,
               plain, "us/record", "plain printk -> memconsole", multiple=True)


if __name__ == "__main__":
    main()

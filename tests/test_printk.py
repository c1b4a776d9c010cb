"""printk: levels, continuation lines, records, the ring buffer, text formats (C6, C8-C15).

Rule ids refer to ``linux-semantics.md``; the core follows Linux 6.1's printk.
"""

from __future__ import annotations

import re

import trio
import trio.testing

from ksim import (
    CON_ENABLED, CON_EXTENDED, KERN_CONT, KERN_DEBUG, KERN_DEFAULT, KERN_EMERG, KERN_ERR,
    KERN_INFO, KERN_NOTICE, KERN_WARNING, Console, Machine, pr_cont, pr_err, pr_info, printk,
    printk_deferred, register_console,
)
from ksim.printk import (
    LOG_CONT, LOG_NEWLINE, LogBuffer, PrintkRecord, format_time, level_from_name,
    record_kmsg_text, record_print_text,
)


def texts(k, since: int = 0) -> list[str]:  # type: ignore[no-untyped-def]
    return [r.text for r in k.printk.log if r.seq >= since]


def record(k, text: str) -> PrintkRecord:  # type: ignore[no-untyped-def]
    return next(r for r in k.printk.log if r.text == text)


# -- C8 / C9: levels ---------------------------------------------------------------------------

async def test_c8_level_prefixes_first_numeric_wins_and_default_is_4(autojump_clock):
    async with Machine("64M").boot("") as k:
        await printk(KERN_ERR + KERN_INFO + "stacked\n")
        await printk("no level\n")
        await printk(KERN_DEFAULT + "\x01dexplicit default\n")
        await printk(KERN_EMERG + "emerg\n")
        await k.write_file("/proc/sys/kernel/printk", "7 6 1 7\n")
        await printk("after sysctl\n")
    assert [record(k, t).level for t in ("stacked", "no level", "explicit default", "emerg",
                                         "after sysctl")] == [3, 4, 4, 0, 6]


async def test_c9_proc_sys_kernel_printk_reads_and_sets_the_four_levels(autojump_clock):
    async with Machine("64M").boot("") as k:
        assert await k.read_file("/proc/sys/kernel/printk") == b"7\t4\t1\t7\n"
        await k.write_file("/proc/sys/kernel/printk", "3\n")
        assert await k.read_file("/proc/sys/kernel/printk") == b"3\t4\t1\t7\n"
        await printk(KERN_ERR + "err at 3\n")
        await printk("\x012crit at 3\n")
    assert "crit at 3" in k.serial_output() and "err at 3" not in k.serial_output()


def test_c8_level_names_for_the_cli():
    assert [level_from_name(n) for n in ("emerg", "KERN_ERR", "warning", "warn", "7", 3)] \
        == [0, 3, 4, 4, 7, 3]
    for bad in ("loud", "8", 9):
        try:
            level_from_name(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


# -- C6: which records reach the console -------------------------------------------------------

async def test_c6_level_must_be_strictly_below_console_loglevel(autojump_clock):
    async with Machine("64M").boot("loglevel=4") as k:
        for level in range(8):
            await printk("\x01%dlevel-%d\n" % (level, level))
    out = k.serial_output()
    assert [level for level in range(8) if "level-%d\n" % level in out] == [0, 1, 2, 3]
    assert all("level-%d" % level in k.dmesg() for level in range(8))


async def test_c6_loglevel_is_read_at_print_time(autojump_clock):
    async with Machine("64M").boot("") as k:
        await printk(KERN_DEBUG + "hidden\n")
        await k.write_file("/proc/sys/kernel/printk", "8")
        await printk(KERN_DEBUG + "shown\n")
    assert "shown" in k.serial_output() and "hidden" not in k.serial_output()


async def test_c6_deferred_printk_reaches_console_at_next_flush(autojump_clock):
    async with Machine("64M").boot("") as k:
        printk_deferred(KERN_ERR + "deferred %d\n", 7)
        assert "deferred 7" in k.dmesg() and "deferred 7" not in k.serial_output()
        await printk(KERN_ERR + "next\n")
    assert k.serial_output().index("deferred 7") < k.serial_output().index("next")


# -- C11: continuation lines -------------------------------------------------------------------

async def test_c11_cont_joins_the_callers_partial_line(autojump_clock):
    async with Machine("64M").boot("") as k:
        start = k.printk.log.next_seq
        await pr_info("a")
        await trio.sleep(0.5)
        assert "a" not in texts(k, start)  # a partial line is not a record yet
        await pr_cont("b%d", 1)
        await pr_cont("c\n")
        rec = record(k, "ab1c")
    assert texts(k, start)[0] == "ab1c"
    assert rec.level == 6 and rec.flags == LOG_NEWLINE  # first fragment's level and flags
    assert rec.ts_nsec < 500_000_000 + k.printk.log.get(start).ts_nsec  # first fragment's time
    assert k.serial_output().count("ab1c\n") == 1


async def test_c11_non_cont_printk_flushes_the_partial_line(autojump_clock):
    async with Machine("64M").boot("") as k:
        start = k.printk.log.next_seq
        await pr_err("half")
        await pr_info("whole\n")
        await pr_cont("orphan\n")
    assert texts(k, start) == ["half", "whole", "orphan"]
    half, orphan = record(k, "half"), record(k, "orphan")
    assert half.flags == 0 and half.level == 3
    # a KERN_CONT fragment with nothing to join is its own LOG_CONT record, default level
    assert orphan.flags == LOG_CONT | LOG_NEWLINE and orphan.level == 4
    assert "half\n" in k.serial_output()  # consoles always end a record with a newline


async def test_c11_cont_from_another_task_does_not_join(autojump_clock):
    async with Machine("64M").boot("") as k:
        start = k.printk.log.next_seq
        await pr_info("mine")

        async def other() -> None:
            await pr_cont(" theirs\n")

        k.spawn_thread(other, name="other")
        await trio.sleep(0.1)
        await pr_cont(" end\n")
    assert texts(k, start) == ["mine", " theirs", " end"]


async def test_c11_c12_overlong_message_is_cut_and_stays_open(autojump_clock):
    """vprintk_store() reserves at most LOG_LINE_MAX (992) bytes with the prefix; the cut
    text lost its newline, and a continuation that would overflow starts a new record."""
    async with Machine("64M").boot("") as k:
        start = k.printk.log.next_seq
        await printk(KERN_ERR + "y" * 2000 + "\n")
        await pr_cont("tail\n")
    first, second = [r for r in k.printk.log if r.seq >= start]
    assert first.text == "y" * 989 and first.flags == 0
    assert second.text == "tail" and second.flags == LOG_CONT | LOG_NEWLINE


# -- C12 / C13: records and the ring buffer ----------------------------------------------------

async def test_c12_records_have_increasing_seq_and_virtual_timestamps(autojump_clock):
    async with Machine("64M").boot("") as k:
        assert k.printk.log.first_seq == 0 and k.printk.log.get(0).text.startswith("Linux")
        t0 = k.local_clock()
        await trio.sleep(1.5)
        await printk(KERN_NOTICE + "later\n")
    seqs = [r.seq for r in k.printk.log]
    assert seqs == list(range(len(seqs)))
    assert record(k, "later").ts_nsec - t0 == 1_500_000_000
    assert format_time(t0 + 1_500_000_000) + "later\n" in k.serial_output()


async def test_c13_full_buffer_drops_whole_oldest_records(autojump_clock):
    async with Machine("64M").boot("") as k:
        for i in range(8000):
            printk_deferred(KERN_INFO + "m%05d\n" % i)
        log = k.printk.log
        assert log.first_seq > 0 and log.used <= log.size
        assert [r.seq for r in log] == list(range(log.first_seq, log.next_seq))
        first = k.dmesg().splitlines()[0]
        assert re.fullmatch(r"\[ +\d+\.\d{6}\] m\d{5}", first)
        assert texts(k)[-1] == "m07999"


def test_c13_long_run_of_drops_keeps_every_surviving_record_by_seq():
    """Tens of thousands of drops (well past the point where the dropped front is cut off
    the list): the survivors are exactly the newest records that fit, each found by its
    sequence number, and an iterator taken before more drops keeps its records."""
    log = LogBuffer(4096)
    for i in range(20_000):
        log.store(i, 6, "m%d" % i)
    survivors = [r.seq for r in log]
    assert survivors == list(range(log.first_seq, log.next_seq)) and log.next_seq == 20_000
    cost = sum(16 + len("m%d" % s) for s in survivors)
    assert log.used == cost <= 4096 < cost + 16 + len("m%d" % (log.first_seq - 1))
    assert all(log.get(s).text == "m%d" % s for s in survivors)  # type: ignore[union-attr]
    assert log.get(log.first_seq - 1) is None and log.get(log.next_seq) is None
    assert len(log) == len(survivors)
    before = log.records_from(log.next_seq - 3)
    for i in range(20_000, 30_000):
        log.store(i, 6, "n%d" % i)
    assert [r.text for r in before] == ["m19997", "m19998", "m19999"]
    assert [r.seq for r in log.records_from(29_998)] == [29_998, 29_999]


def test_c13_a_record_too_big_for_the_buffer_is_cut_with_truncated():
    log = LogBuffer(256)
    for i in range(5):
        log.store(0, 6, "r%d" % i)
    rec = log.store(0, 6, "z" * 300)
    assert rec.text.endswith("<truncated>") and len(rec.text) <= 256 // 4
    assert log.used <= 256 and log.next_seq == 6 and log.get(5) is rec


async def test_c6_c13_console_behind_gets_dropped_count_before_next_record(autojump_clock):
    """A console that fell behind the ring prints ``** N printk messages dropped **``
    right before its next record; an extended console never gets that line (C6, C13)."""
    gate = trio.Event()
    slow_out: list[bytes] = []
    ext_out: list[bytes] = []

    async def slow_write(con: Console, data: bytes) -> None:
        slow_out.append(data)
        if data.endswith(b"first\n"):
            await gate.wait()

    async with Machine("64M").boot("") as k:
        await register_console(Console("slow", write=slow_write, flags=CON_ENABLED, index=0))
        async def ext_write(con: Console, data: bytes) -> None:
            ext_out.append(data)

        await register_console(Console("ext", write=ext_write,
                                       flags=CON_ENABLED | CON_EXTENDED, index=0))
        k.spawn_thread(printk, KERN_ERR + "first\n", name="holder")
        await trio.testing.wait_all_tasks_blocked()  # the holder owns the console lock now,
        assert "first" in k.serial_output()  # stuck in slow_write
        first_seq = k.printk.log.next_seq - 1
        for i in range(7000):
            await printk(KERN_ERR + "m%05d\n" % i)  # stored only: the lock is busy
        lost = k.printk.log.first_seq - (first_seq + 1)
        assert lost > 0
        gate.set()
        await trio.sleep(0.1)
    for out in (k.serial_output(), b"".join(slow_out).decode()):
        body = out[out.index("first\n"):].splitlines()
        assert body[1] == "** %d printk messages dropped **" % lost
        numbers = [int(line[-5:]) for line in body[2:] if re.search(r"m\d{5}$", line)]
        assert numbers == list(range(lost, 7000))  # m00000..m<lost-1> are the lost ones
    ext = b"".join(ext_out).decode()
    assert "dropped" not in ext and ext.count(";m06999\n") == 1


async def test_c6_c13_dropped_line_waits_for_a_printed_record(autojump_clock):
    gate = trio.Event()

    async def slow_write(con: Console, data: bytes) -> None:
        if data.endswith(b"first\n"):
            await gate.wait()

    async with Machine("64M").boot("") as k:
        await register_console(Console("slow", write=slow_write, flags=CON_ENABLED, index=0))
        k.spawn_thread(printk, KERN_ERR + "first\n", name="holder")
        await trio.testing.wait_all_tasks_blocked()
        first_seq = k.printk.log.next_seq - 1
        for i in range(7000):
            await printk(KERN_DEBUG + "d%05d\n" % i)  # all suppressed at loglevel 7
        lost = k.printk.log.first_seq - (first_seq + 1)
        gate.set()
        await trio.sleep(0.1)
        assert "dropped" not in k.serial_output()
        await printk(KERN_ERR + "after\n")
    tail = k.serial_output().splitlines()[-3:]
    assert tail[0].endswith("] first") and tail[2].endswith("] after")
    assert tail[1] == "** %d printk messages dropped **" % lost


# -- C14 / C15: text formats -------------------------------------------------------------------

def test_c15_time_prefix_widths():
    assert format_time(0) == "[    0.000000] "
    assert format_time(12_345_678_901_234) == "[12345.678901] "
    assert format_time(123_456_000_000_000) == "[123456.000000] "


def test_c15_multiline_record_repeats_the_prefix():
    rec = PrintkRecord(3, 2_000_000, 4, "one\ntwo\n")
    assert record_print_text(rec) == ("[    0.002000] one\n[    0.002000] two\n"
                                      "[    0.002000] \n")
    assert record_print_text(rec, syslog=True, time=False) == "<4>one\n<4>two\n<4>\n"


def test_c14_kmsg_line_escapes_bytes_and_flags_cont():
    rec = PrintkRecord(17, 1_500_000_999, 3, "tab\there \\ é\nx", facility=0)
    assert record_kmsg_text(rec) == "3,17,1500000,-;tab\\x09here \\x5c \\xc3\\xa9\\x0ax\n"
    cont = PrintkRecord(5, 0, 4, "piece", facility=1, flags=LOG_CONT | LOG_NEWLINE)
    assert record_kmsg_text(cont) == "12,5,0,c;piece\n"
    assert record_kmsg_text(PrintkRecord(6, 0, 7, "\x7f", flags=0)) == "7,6,0,-;\\x7f\n"


async def test_c14_dev_kmsg_shows_every_record_in_order(autojump_clock):
    async with Machine("64M").boot("") as k:
        await trio.sleep(2)
        usec = k.local_clock() // 1000
        await printk(KERN_WARNING + "warn %s\n", "me")
        await pr_err("partial")
        await pr_cont(" done\n")
        await printk(KERN_CONT + "lonely\n")
        kmsg = (await k.read_file("/dev/kmsg")).decode().splitlines()
    assert kmsg[0].startswith("5,0,0,-;Linux version 6.1.0-ksim ")
    assert [int(line.split(",")[1]) for line in kmsg] == list(range(len(kmsg)))
    n = len(kmsg)
    assert kmsg[-3:] == ["4,%d,%d,-;warn me" % (n - 3, usec),
                         "3,%d,%d,-;partial done" % (n - 2, usec),
                         "4,%d,%d,c;lonely" % (n - 1, usec)]


# -- vsprintf ----------------------------------------------------------------------------------

async def test_printk_formats_like_the_kernel_vsprintf(autojump_clock):
    async with Machine("64M", seed=3).boot("") as k:
        await printk("%d|%5d|%-4d|%03d|%u|%lx|%hhx|%#x|%#o|%#o|%s|%.2s|%c|%%\n",
                     -3, 7, 7, 7, -1, -1, -1, 255, 8, 0, None, "abc", 65)
        await printk("%p %p %px %pa\n", 0, -12, 0xffff888000001000, 0x1000)
        await printk("%p|%p\n", 0xffff888000002000, 0xffff888000002000)
    assert texts(k)[-3] == ("-3|    7|7   |007|4294967295|ffffffffffffffff|ff|0xff|010|0|"
                            "(null)|ab|A|%")
    assert texts(k)[-2] == ("0000000000000000 fffffffffffffff4 ffff888000001000 "
                            "0x0000000000001000")
    hashed, again = texts(k)[-1].split("|")
    assert hashed == again and hashed.startswith("00000000") and hashed != "ffff888000002000"


async def test_no_hash_pointers_prints_raw_addresses(autojump_clock):
    async with Machine("64M").boot("no_hash_pointers") as k:
        await printk("%p\n", 0xffff888000002000)
    assert texts(k)[-1] == "ffff888000002000"
    assert "**   NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE   **" in k.dmesg()

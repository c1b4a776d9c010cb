"""The lockset data-race detector (ksim.kcsan), reported in KCSAN's shape.

Two contexts (tasks, or a hardirq handler on top of a task) touching the same bytes of
simulated RAM, at least one writing, with no lock in common, where the two could overlap
(different CPUs; a handler and a task with interrupts on; two preemptible tasks).
"""

from __future__ import annotations

from pathlib import Path
import re

import pytest
import trio

from ksim import (
    Console, DEFINE_MUTEX, DEFINE_SPINLOCK, Machine, mutex_lock, mutex_unlock, phys_to_virt,
    printk, spin_lock, spin_lock_irqsave, spin_unlock, spin_unlock_irqrestore, virt_read_u64,
    virt_write, virt_write_u64,
)
from ksim.preempt import hardirq_context
from ksim.current import current, current_cpu
from ksim.kernel import Kernel
from ksim.kcsan import RaceDetector
from ksim.locking import DECLARE_RWSEM, down_read, down_write, up_read, up_write
from ksim.plugins import load_plugins
from ksim_memconsole import Memconsole
from kthreads import on_cpu

DATA = 0x2000000  # a physical address in the 64M machine's RAM, used by nobody






def races(kernel) -> list:  # type: ignore[no-untyped-def]
    return [r for r in kernel.reports if r.kind == "data-race"]


# -- memconsole ------------------------------------------------------------------------------


# memconsole with its spinlock removed from both the console and /proc/memconsole.
[MemconsoleNoLock] = load_plugins(["memconsole_nolock"],
                                  [Path(__file__).parent / "stress_plugins"])


class Writer:
    """One kernel thread on CPU1 that printks a message each time it is asked to."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.send, self.receive = trio.open_memory_channel[str](0)
        self.done = trio.Event()
        self.task = kernel.spawn_thread(self.run, name="writer", cpu=1)

    async def run(self) -> None:
        async for text in self.receive:
            await printk("%s\n", text)
            self.done.set()

    async def write(self, text: str) -> None:
        self.done = trio.Event()
        await self.send.send(text)
        await self.done.wait()


async def writer_and_reader(k: Kernel, writer: Writer, rounds: int = 2) -> None:
    """The writer on CPU1 printks, the shell on CPU0 reads /proc/memconsole, ``rounds`` times."""
    for i in range(rounds):
        await writer.write("message %d from cpu1" % i)
        assert b"message %d from cpu1" % i in await k.read_file("/proc/memconsole")


async def test_kcsan_lockless_memconsole_writer_and_reader_race(autojump_clock):
    async with Machine("64M", cpus=2).boot("memconsole=8192", [MemconsoleNoLock]) as k:
        rd = RaceDetector.attach(k)
        writer = Writer(k)
        await writer_and_reader(k, writer)
        me = current()
        hdr = k.module.instances["memconsole_nolock"].buf_hdr
    reports = races(k)
    assert reports and rd.reports == reports
    titles = {r.title for r in reports}
    # Until the ring wraps the reader reads only buf_len, as the C does (buf_ptr: below).
    assert titles == {"BUG: KCSAN: data-race in _hdr_len / _set_hdr_len",
                      "BUG: KCSAN: data-race in proc_read / record_msg"}
    [report] = [r for r in reports if r.title.endswith("_hdr_len / _set_hdr_len")]
    lines = report.text.splitlines()
    assert lines[0] == lines[-1] == "=" * 66
    assert lines[1:3] == ["BUG: KCSAN: data-race in _hdr_len / _set_hdr_len", ""]
    # The earlier access comes first (KCSAN's order): whichever it was in this interleaving.
    first = lines[3:6]
    at = lines.index("", 3)
    second = lines[at + 1:at + 4]
    write = [first, second][second[0].startswith("write")]
    read = [first, second][second[0].startswith("read")]
    assert write[0] == "write to 0x%016x of 4 bytes by task %d on cpu 1:" % (hdr + 8,
                                                                           writer.task.pid)
    assert write[1].startswith(" plugins/ksim_memconsole/memconsole.py:")
    assert write[1].endswith(" _set_hdr_len") and write[2].endswith(" record_msg")
    assert read[0] == "read to 0x%016x of 4 bytes by task %d on cpu 0:" % (hdr + 8, me.pid)
    assert read[1].endswith(" _hdr_len") and read[2].endswith(" proc_read")
    reporter = writer.task if second is write else me
    assert lines[-4:-1] == ["", "Reported by Kernel Concurrency Sanitizer on:",
                            "CPU: %d PID: %d Comm: %s Not tainted 6.1.0-ksim #1" % (
                                reporter.cpu.id, reporter.pid, reporter.comm)]
    assert "BUG: KCSAN: data-race in _hdr_len / _set_hdr_len" in k.dmesg()


async def test_kcsan_once_the_ring_wrapped_the_reader_races_on_buf_ptr_too(autojump_clock):
    async with Machine("64M", cpus=2).boot("memconsole=8192", [MemconsoleNoLock]) as k:
        rd = RaceDetector.attach(k)
        writer = Writer(k)
        for i in range(150):  # 150 lines of ~40 bytes: more than the one-page ring holds
            await writer.write("filler line %02d from cpu1" % i)
        await writer_and_reader(k, writer)
    assert "BUG: KCSAN: data-race in _hdr_ptr / _set_hdr_ptr" in {r.title for r in rd.reports}


async def test_kcsan_reports_each_location_pair_once(autojump_clock):
    async with Machine("64M", cpus=2).boot("memconsole=8192", [MemconsoleNoLock]) as k:
        rd = RaceDetector.attach(k)
        writer = Writer(k)
        await writer_and_reader(k, writer, rounds=2)
        first = len(rd.reports)
        assert first == 2
        await writer_and_reader(k, writer, rounds=3)
        assert len(rd.reports) == first
        assert len({r.title for r in rd.reports}) == len(rd.reports)


async def test_kcsan_real_memconsole_is_clean(autojump_clock):
    """spin_lock_irqsave around the ring: writer and reader share buf_lock, no report, even
    though buf_init() wrote the header with no lock (Eraser's exclusive state)."""
    async with Machine("64M", cpus=2).boot("memconsole=8192", [Memconsole]) as k:
        rd = RaceDetector.attach(k)
        await writer_and_reader(k, Writer(k), rounds=3)

        async def irq_printk() -> None:
            with hardirq_context():
                await printk("from an interrupt handler\n")

        await on_cpu(k, 1, irq_printk)
        await k.read_file("/proc/memconsole")
        assert rd.accesses > 0
    assert races(k) == [] and rd.reports == []


# -- the model, driven directly ------------------------------------------------------------------


async def test_kcsan_no_common_lock_on_two_cpus_is_a_race(autojump_clock):
    async with Machine("64M", cpus=2).boot() as k:
        rd = RaceDetector.attach(k)
        addr = phys_to_virt(DATA)
        a, b = DEFINE_SPINLOCK("a_lock"), DEFINE_SPINLOCK("b_lock")

        async def write_under(lock) -> None:  # type: ignore[no-untyped-def]
            await spin_lock(lock)
            virt_write_u64(addr, 1)
            spin_unlock(lock)

        await on_cpu(k, 1, lambda: write_under(a))  # owner: not yet shared
        await write_under(b)  # shared now; nothing to compare with yet
        assert rd.reports == []
        await on_cpu(k, 1, lambda: write_under(a))  # a vs b: no lock in common
    [report] = rd.reports
    assert report.title == "BUG: KCSAN: data-race in write_under / write_under"
    assert re.search(r"write to 0x%016x of 8 bytes by task \d+ on cpu 0:" % addr, report.text)
    assert re.search(r"write to 0x%016x of 8 bytes by task \d+ on cpu 1:" % addr, report.text)


async def test_kcsan_common_lock_and_one_context_are_not_races(autojump_clock):
    async with Machine("64M", cpus=2).boot() as k:
        rd = RaceDetector.attach(k)
        addr = phys_to_virt(DATA)
        lock = DEFINE_SPINLOCK("data_lock")

        async def locked_rw() -> None:
            flags = await spin_lock_irqsave(lock)
            virt_write_u64(addr, virt_read_u64(addr) + 1)
            spin_unlock_irqrestore(lock, flags)

        for _ in range(3):
            await on_cpu(k, 1, locked_rw)
            await locked_rw()
        for _ in range(3):  # one context, lock or no lock: program order
            virt_write(phys_to_virt(DATA + 64), b"x" * 24)
            virt_read_u64(phys_to_virt(DATA + 72))
    assert rd.reports == []


async def test_kcsan_initialisation_without_lock_is_not_a_race(autojump_clock):
    """Eraser's exclusive state: the first context may set data up without a lock."""
    async with Machine("64M", cpus=2).boot() as k:
        rd = RaceDetector.attach(k)
        addr = phys_to_virt(DATA)
        lock = DEFINE_SPINLOCK("data_lock")
        virt_write_u64(addr, 0)  # init, no lock

        async def use() -> None:
            await spin_lock(lock)
            virt_write_u64(addr, virt_read_u64(addr) + 1)
            spin_unlock(lock)

        await on_cpu(k, 1, use)
        await use()
    assert rd.reports == []


async def test_kcsan_interrupt_and_task_on_one_cpu(autojump_clock):
    """Same CPU: a handler races with task code that left interrupts on, not with code that
    turned them off (spin_lock_irqsave) -- even when the handler takes no lock."""
    async with Machine("64M").boot() as k:
        rd = RaceDetector.attach(k)
        safe, racy = phys_to_virt(DATA), phys_to_virt(DATA + 8)
        lock = DEFINE_SPINLOCK("data_lock")

        async def task_side() -> None:
            flags = await spin_lock_irqsave(lock)
            virt_write_u64(safe, 1)
            spin_unlock_irqrestore(lock, flags)
            await spin_lock(lock)
            virt_write_u64(racy, 1)
            spin_unlock(lock)

        def irq_side() -> None:
            with hardirq_context():
                virt_write_u64(safe, 2)
                virt_write_u64(racy, 2)

        await task_side()
        irq_side()
        await task_side()
        me = current()
    [report] = rd.reports
    assert "BUG: KCSAN: data-race in irq_side / task_side" == report.title
    assert "write to 0x%016x of 8 bytes by interrupt on cpu 0:" % racy in report.text
    assert "write to 0x%016x of 8 bytes by task %d on cpu 0:" % (racy, me.pid) in report.text


async def test_kcsan_rwsem_readers_do_not_protect_writers(autojump_clock):
    """A write counts only locks held exclusively: two writers under down_read race; a
    down_write writer and a down_read reader do not."""
    async with Machine("64M", cpus=2).boot() as k:
        rd = RaceDetector.attach(k)
        shared, guarded = phys_to_virt(DATA), phys_to_virt(DATA + 8)
        sem = DECLARE_RWSEM("&sb->s_umount")

        async def write_under_read() -> None:
            await down_read(sem)
            virt_write_u64(shared, 1)
            up_read(sem)

        async def write_then_read() -> None:
            await down_write(sem)
            virt_write_u64(guarded, 1)
            up_write(sem)
            await down_read(sem)
            virt_read_u64(guarded)
            up_read(sem)

        for _ in range(2):
            await on_cpu(k, 1, write_under_read)
            await write_under_read()
            await on_cpu(k, 1, write_then_read)
            await write_then_read()
    [report] = rd.reports
    assert report.title == "BUG: KCSAN: data-race in write_under_read / write_under_read"


async def test_kcsan_mutex_is_a_common_lock(autojump_clock):
    async with Machine("64M", cpus=2).boot() as k:
        rd = RaceDetector.attach(k)
        addr = phys_to_virt(DATA)
        m = DEFINE_MUTEX("&dev->mutex")

        async def use() -> None:
            await mutex_lock(m)
            virt_write_u64(addr, virt_read_u64(addr) + 1)
            mutex_unlock(m)

        for _ in range(3):
            await on_cpu(k, 1, use)
            await use()
    assert rd.reports == []


async def test_kcsan_joins_lock_observers_when_only_a_memory_observer(autojump_clock):
    """Appending to kernel.mm.observers is enough: the detector subscribes to lock events
    itself (it needs them for sleeping locks and handler-taken spinlocks)."""
    async with Machine("64M", cpus=2).boot() as k:
        rd = RaceDetector()
        k.mm.observers.append(rd)
        addr = phys_to_virt(DATA)
        m = DEFINE_MUTEX("&dev->mutex")
        virt_read_u64(addr)
        assert rd in k.locking.observers

        async def use() -> None:
            await mutex_lock(m)
            virt_write_u64(addr, 1)
            mutex_unlock(m)

        for _ in range(2):
            await on_cpu(k, 1, use)
            await use()
        assert rd.reports == []
        rd.detach()
        assert rd not in k.locking.observers and rd not in k.mm.observers


@pytest.mark.parametrize("how", ["disabled", "after shutdown"])
async def test_kcsan_ignores_accesses_when_disabled_or_after_the_kernel_stopped(
        autojump_clock, how):
    async with Machine("64M", cpus=2).boot() as k:
        rd = RaceDetector.attach(k)
        addr = phys_to_virt(DATA)

        async def write() -> None:
            virt_write_u64(addr, 1)

        await on_cpu(k, 1, write)
        if how == "disabled":
            rd.enabled = False
            await write()
    if how == "after shutdown":  # a checker reading a dead kernel's memory
        with k.as_current():
            virt_write_u64(addr, 2)
    assert rd.reports == []
    assert rd.accesses == 1


async def test_kcsan_granules_are_eight_bytes(autojump_clock):
    """Neighbouring fields in different 8-byte granules do not conflict."""
    async with Machine("64M", cpus=2).boot() as k:
        rd = RaceDetector.attach(k)
        base = phys_to_virt(DATA)

        async def left() -> None:
            for _ in range(3):
                virt_write_u64(base, 1)
                await trio.sleep(0.001)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(on_cpu, k, 1, left)
            for _ in range(3):
                virt_write_u64(base + 8, 1)
                virt_write(base + 16, b"y" * 8)
                await trio.sleep(0.001)
        virt_read_u64(base)  # but the same granule does
    [report] = rd.reports
    assert report.title == "BUG: KCSAN: data-race in left / test_kcsan_granules_are_eight_bytes"


def test_a_race_report_trace_ends_at_the_runtime_as_lockdeps_traces_do():
    """The detector walks four frames without looking at them (every access makes a trace);
    a report prints only what lockdep.capture() keeps: up to the first runtime caller."""
    import sys

    from ksim.kcsan import _walk
    from ksim.locking.lockdep import capture, trace_ends_at

    def access():  # the driver's function, called from this test (then pytest: the runtime)
        frame = sys._getframe()
        return _walk(frame), capture(frame, 4)

    walked, captured = access()
    printed = walked[:trace_ends_at(walked)]
    assert len(walked) == 4 and len(printed) == 2
    assert [code for code, _ in printed] == [code for code, _ in captured]
    assert printed[1:] == captured[1:]  # the callers' positions; the first differs by a call

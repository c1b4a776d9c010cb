"""lockdep-lite (ksim.lockdep): irq usage states, inconsistent state, circular dependencies,
recursion and one-shot reporting, in the modern shape of the kernel's reports.

Rule ids refer to /work/shared/reference/linux-semantics.md section 7 (L4..L8).  Interrupt
context is simulated the way the scheduler delivers an interrupt: on top of the running
task, with ``hardirq_count`` raised and interrupts disabled.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ksim import (
    Console, DEFINE_MUTEX, DEFINE_SPINLOCK, Deadlock, Machine, mutex_lock, mutex_unlock,
    printk, spin_lock, spin_lock_irqsave, spin_trylock, spin_unlock, spin_unlock_irqrestore,
)
from ksim.preempt import hardirq_context
from ksim.current import current, current_cpu
from ksim.kernel import Kernel
from ksim.locking.lockdep import Lockdep
from ksim.locking import DECLARE_RWSEM, down_read, up_read
from ksim.plugins import load_plugins
from ksim_memconsole import Memconsole
from kthreads import on_cpu




async def locked(lock, irqsave: bool = False) -> None:  # type: ignore[no-untyped-def]
    if irqsave:
        flags = await spin_lock_irqsave(lock)
        spin_unlock_irqrestore(lock, flags)
    else:
        await spin_lock(lock)
        spin_unlock(lock)




def lockdep_reports(kernel) -> list:  # type: ignore[no-untyped-def]
    return [r for r in kernel.reports if r.kind == "lockdep"]


# -- L4 / L5 / L6: irq usage ------------------------------------------------------------------


async def test_l6_in_hardirq_then_irqs_on_is_inconsistent_lock_state(autojump_clock):
    """L4/L6: taken in hardirq, then with irqs enabled: caught although nothing deadlocked."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        lock = DEFINE_SPINLOCK("&dev->lock")
        with hardirq_context():
            await locked(lock)
        assert ld.states("&dev->lock") == ["IN-HARDIRQ-W"] and ld.usage("&dev->lock") == "{-...}"
        assert not ld.reports
        await locked(lock)  # line of the second acquisition
        me = current()
    [report] = lockdep_reports(k)
    assert ld.reports == [report] and report.title == "WARNING: inconsistent lock state"
    lines = report.text.splitlines()
    assert lines[:5] == [
        "================================",
        "WARNING: inconsistent lock state",
        "6.1.0-ksim #1 Not tainted",
        "--------------------------------",
        "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage.",
    ]
    assert lines[5] == "%s/%d [HC0[0]:SC0[0]:HE1:SE1] takes:" % (me.comm, me.pid)
    # The report comes from the first mark that conflicts (hardirq), as mark_lock() does.
    assert lines[6] == "%016x (&dev->lock){?...}-{3:3}, at: %s" % (
        lock.addr, lines[6].split(", at: ")[1])
    assert "tests/test_lockdep.py:" in lines[6] and lines[6].endswith(" locked")
    assert lines[7] == "{IN-HARDIRQ-W} state was registered at:"
    assert lines[8].startswith("  tests/test_lockdep.py:") and lines[8].endswith(" locked")
    assert lines[9].startswith("  tests/test_lockdep.py:") and "test_l6_in_hardirq" in lines[9]
    text = report.text
    assert ("\n\nother info that might help us debug this:\n"
            " Possible unsafe locking scenario:\n\n"
            "       CPU0\n"
            "       ----\n"
            "  lock(&dev->lock);\n"
            "  <Interrupt>\n"
            "    lock(&dev->lock);\n\n"
            " *** DEADLOCK ***\n\n"
            "no locks held by %s/%d.\n\n"
            "stack backtrace:\n"
            "CPU: 0 PID: %d Comm: %s Not tainted 6.1.0-ksim #1\n"
            "Call Trace:\n <TASK>\n" % (me.comm, me.pid, me.pid, me.comm)) in text
    assert text.endswith(" </TASK>")
    assert "WARNING: inconsistent lock state" in k.dmesg()
    assert ld.debug_locks is False  # L8
    info = ld.registered_at("&dev->lock", "IN-HARDIRQ-W")
    assert info is not None and info["cpu"] == 0 and info["pid"] == me.pid
    assert info["where"].startswith("tests/test_lockdep.py:")


async def test_l6_irqs_on_then_in_hardirq_reverses_the_arrow(autojump_clock):
    """L6: the reverse sequence prints {HARDIRQ-ON-W} -> {IN-HARDIRQ-W}, from the handler."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        lock = DEFINE_SPINLOCK("&dev->lock")
        await locked(lock)
        assert ld.usage("&dev->lock") == "{+.+.}"
        assert ld.states("&dev->lock") == ["HARDIRQ-ON-W", "SOFTIRQ-ON-W"]
        with hardirq_context():
            await locked(lock)
        me = current()
    [report] = ld.reports
    lines = report.text.splitlines()
    assert lines[4] == "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage."
    assert lines[5] == "%s/%d [HC1[1]:SC0[0]:HE0:SE1] takes:" % (me.comm, me.pid)
    assert "(&dev->lock){?.+.}-{3:3}, at: " in lines[6]
    assert lines[7] == "{HARDIRQ-ON-W} state was registered at:"
    assert " <IRQ>" in lines and " </IRQ>" in lines


async def test_l2_irqsave_everywhere_is_consistent(autojump_clock):
    """L1/L2: irqsave outside the handler, plain spin_lock inside it: no report."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        lock = DEFINE_SPINLOCK("&dev->lock")
        for _ in range(3):
            await locked(lock, irqsave=True)
            with hardirq_context():
                await locked(lock)
        assert ld.usage("&dev->lock") == "{-...}"
    assert ld.reports == [] and lockdep_reports(k) == [] and ld.debug_locks


async def test_l4_state_registered_on_another_cpu_is_remembered(autojump_clock):
    """L4: per class, whoever registered the state: an irq on CPU1, a task on CPU0."""
    async with Machine("64M", cpus=2).boot() as k:
        ld = Lockdep.attach(k)
        lock = DEFINE_SPINLOCK("&dev->lock")

        async def irq_on_cpu1() -> None:
            with hardirq_context():
                await locked(lock)

        await on_cpu(k, 1, irq_on_cpu1)
        info = ld.registered_at("&dev->lock", "IN-HARDIRQ-W")
        assert info is not None and info["cpu"] == 1 and info["comm"] == "t1"
        await locked(lock)
    [report] = ld.reports
    assert "inconsistent {IN-HARDIRQ-W} -> {HARDIRQ-ON-W} usage." in report.text
    assert "irq_on_cpu1" in report.text.split("state was registered at:")[1]


async def test_l4_trylock_in_hardirq_does_not_mark_in_hardirq(autojump_clock):
    """L4: lockdep marks IN-HARDIRQ only for a non-trylock acquisition (mark_usage)."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        lock = DEFINE_SPINLOCK("&dev->lock")
        with hardirq_context():
            assert spin_trylock(lock)
            spin_unlock(lock)
        await locked(lock)
        assert ld.states("&dev->lock") == ["HARDIRQ-ON-W", "SOFTIRQ-ON-W"]
    assert ld.reports == []


async def test_l5_read_acquisitions_mark_read_states(autojump_clock):
    """L5: down_read marks the -R states: usage {.+.+}."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        sem = DECLARE_RWSEM("&mm->mmap_lock")
        await down_read(sem)
        up_read(sem)
        assert ld.states("&mm->mmap_lock") == ["HARDIRQ-ON-R", "SOFTIRQ-ON-R"]
        assert ld.usage("&mm->mmap_lock") == "{.+.+}"
    assert ld.reports == []


# -- lock order ---------------------------------------------------------------------------------


async def test_lockdep_ab_ba_inversion_is_a_circular_dependency(autojump_clock):
    """AB on one CPU, BA on another: reported on the BA acquisition, no deadlock needed."""
    async with Machine("64M", cpus=2).boot() as k:
        ld = Lockdep.attach(k)
        a, b = DEFINE_SPINLOCK("lock_a"), DEFINE_SPINLOCK("lock_b")

        async def ab() -> None:
            await spin_lock(a)
            await spin_lock(b)
            spin_unlock(b)
            spin_unlock(a)

        await on_cpu(k, 1, ab)
        assert ld.dependencies == {("lock_a", "lock_b")}
        await spin_lock(b)
        await spin_lock(a)  # closes the cycle
        spin_unlock(a)
        spin_unlock(b)
        me = current()
    [report] = lockdep_reports(k)
    lines = report.text.splitlines()
    assert report.title == "WARNING: possible circular locking dependency detected"
    assert lines[:5] == [
        "======================================================",
        "WARNING: possible circular locking dependency detected",
        "6.1.0-ksim #1 Not tainted",
        "------------------------------------------------------",
        "%s/%d is trying to acquire lock:" % (me.comm, me.pid),
    ]
    assert lines[5].startswith("%016x (lock_a){+.+.}-{3:3}, at: tests/test_lockdep.py:" % a.addr)
    assert lines[6:8] == ["", "but task is already holding lock:"]
    assert lines[8].startswith("%016x (lock_b){+.+.}-{3:3}, at: tests/test_lockdep.py:" % b.addr)
    assert lines[9:14] == ["", "which lock already depends on the new lock.", "", "",
                           "the existing dependency chain (in reverse order) is:"]
    assert lines[14:16] == ["", "-> #1 (lock_b){+.+.}-{3:3}:"]
    assert lines[16].startswith("       tests/test_lockdep.py:") and lines[16].endswith(" ab")
    at0 = lines.index("-> #0 (lock_a){+.+.}-{3:3}:")
    assert "test_lockdep_ab_ba" in lines[at0 + 1]
    assert ("\n\nother info that might help us debug this:\n\n"
            " Possible unsafe locking scenario:\n\n"
            "       CPU0                    CPU1\n"
            "       ----                    ----\n"
            "  lock(lock_b);\n"
            "                               lock(lock_a);\n"
            "                               lock(lock_b);\n"
            "  lock(lock_a);\n\n"
            " *** DEADLOCK ***\n\n"
            "1 lock held by %s/%d:\n"
            " #0: %016x (lock_b){+.+.}-{3:3}, at: tests/test_lockdep.py:" % (
                me.comm, me.pid, b.addr)) in report.text
    assert "Chain exists of:" not in report.text
    assert "\n\nstack backtrace:\nCPU: 0 PID: %d" % me.pid in report.text


async def test_lockdep_three_lock_cycle_shows_the_chain(autojump_clock):
    """A longer cycle (A->B, B->C, then C->A): "Chain exists of:" and the whole chain."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        a, b, c = (DEFINE_SPINLOCK(n) for n in ("A", "B", "C"))
        for first, second in ((a, b), (b, c)):
            await spin_lock(first)
            await spin_lock(second)
            spin_unlock(second)
            spin_unlock(first)
        await spin_lock(c)
        await spin_lock(a)
        spin_unlock(a)
        spin_unlock(c)
    [report] = ld.reports
    text = report.text
    assert "-> #2 (C){+.+.}-{3:3}:" in text and "-> #1 (B){+.+.}-{3:3}:" in text
    assert "-> #0 (A){+.+.}-{3:3}:" in text
    assert text.index("-> #2 (C)") < text.index("-> #1 (B)") < text.index("-> #0 (A)")
    assert "Chain exists of:\n  A --> B --> C\n\n Possible unsafe locking scenario:" in text
    assert ("  lock(C);\n                               lock(B);\n"
            "                               lock(C);\n  lock(A);\n") in text


async def test_lockdep_consistent_order_and_trylock_inversion_are_clean(autojump_clock):
    """The same order every time is fine; a trylock cannot deadlock, so it adds no edge."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        a, b = DEFINE_SPINLOCK("A"), DEFINE_SPINLOCK("B")
        for _ in range(3):
            await spin_lock(a)
            await spin_lock(b)
            spin_unlock(b)
            spin_unlock(a)
        await spin_lock(b)
        assert spin_trylock(a)
        spin_unlock(a)
        spin_unlock(b)
        assert ld.dependencies == {("A", "B")}
    assert ld.reports == []


async def test_lockdep_irq_context_starts_a_new_chain(autojump_clock):
    """A lock taken by a handler does not depend on the locks of the task it interrupted."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        a, b = DEFINE_SPINLOCK("A"), DEFINE_SPINLOCK("B")
        flags = await spin_lock_irqsave(a)
        with hardirq_context():  # (cannot happen with irqs off; lockdep separates contexts anyway)
            await locked(b)
        spin_unlock_irqrestore(a, flags)
        with hardirq_context():
            await spin_lock(b)
            await spin_lock(a)
            spin_unlock(a)
            spin_unlock(b)
        assert ld.dependencies == {("B", "A")}
    assert ld.reports == []


# -- L7 recursion ---------------------------------------------------------------------------------


async def test_l7_two_instances_of_one_class_are_recursive_locking(autojump_clock):
    """L7: the same class twice in one task (two instances): annotate with _nested."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        parent, child = DEFINE_SPINLOCK("&dentry->d_lock"), DEFINE_SPINLOCK("&dentry->d_lock")
        await spin_lock(parent)
        await spin_lock(child)  # no deadlock: another instance
        spin_unlock(child)
        spin_unlock(parent)
        me = current()
    [report] = lockdep_reports(k)
    lines = report.text.splitlines()
    assert lines[:5] == [
        "============================================",
        "WARNING: possible recursive locking detected",
        "6.1.0-ksim #1 Not tainted",
        "--------------------------------------------",
        "%s/%d is trying to acquire lock:" % (me.comm, me.pid),
    ]
    assert lines[5].startswith("%016x (&dentry->d_lock){+.+.}-{3:3}, at: " % child.addr)
    assert lines[6:8] == ["", "but task is already holding lock:"]
    assert lines[8].startswith("%016x (&dentry->d_lock)" % parent.addr)
    assert ("\n\nother info that might help us debug this:\n"
            " Possible unsafe locking scenario:\n\n"
            "       CPU0\n       ----\n"
            "  lock(&dentry->d_lock);\n  lock(&dentry->d_lock);\n\n"
            " *** DEADLOCK ***\n\n"
            " May be due to missing lock nesting notation\n\n"
            "1 lock held by %s/%d:\n #0: %016x" % (me.comm, me.pid, parent.addr)) in report.text


async def test_l7_mutex_taken_twice_is_reported_before_the_deadlock(autojump_clock):
    """L7: lockdep sees the attempt that deadlocks (observers run before the wait)."""
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        m = DEFINE_MUTEX("&dev->mutex")
        await mutex_lock(m)
        with pytest.raises(Deadlock):
            await mutex_lock(m)
        mutex_unlock(m)
    kinds = [r.kind for r in k.reports]
    assert kinds.index("lockdep") < kinds.index("deadlock")
    assert ld.reports[0].title == "WARNING: possible recursive locking detected"
    assert "(&dev->mutex){+.+.}-{3:3}" in ld.reports[0].text


# -- L8 one-shot ---------------------------------------------------------------------------------


async def test_l8_lockdep_turns_itself_off_after_the_first_report(autojump_clock):
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        a, b, c = (DEFINE_SPINLOCK(n) for n in ("A", "B", "C"))
        with hardirq_context():
            await locked(c)
        await locked(c)  # first report: inconsistent state
        assert len(ld.reports) == 1 and not ld.debug_locks
        for first, second in ((a, b), (b, a)):  # would be a circular dependency
            await spin_lock(first)
            await spin_lock(second)
            spin_unlock(second)
            spin_unlock(first)
        assert ld.dependencies == set()  # nothing recorded any more
    assert len(lockdep_reports(k)) == 1


async def test_l8_an_oops_switches_lockdep_off_silently(autojump_clock):
    async with Machine("64M").boot() as k:
        ld = Lockdep.attach(k)
        lock = DEFINE_SPINLOCK("A")
        k.panic.oops_count += 1  # as after die(): oops_enter() called debug_locks_off()
        with hardirq_context():
            await locked(lock)
        await locked(lock)
    assert ld.reports == [] and not ld.debug_locks


# -- memconsole --------------------------------------------------------------------------------


# memconsole with spin_lock where spin_lock_irqsave is needed (the L2 bug).
[MemconsolePlainSpinLock] = load_plugins(["memconsole_spinlock"],
                                         [Path(__file__).parent / "stress_plugins"])


@pytest.mark.parametrize("irq_cpu", [0, 1])
async def test_l6_memconsole_with_plain_spin_lock_is_caught_in_one_run(autojump_clock, irq_cpu):
    """The acceptance case: a read of /proc/memconsole takes buf_lock with interrupts on, a
    printk from a handler takes it in the interrupt; no deadlock needed.  A printk from
    process context alone is not the bug: console writes run with interrupts off (C6)."""
    async with Machine("64M", cpus=2).boot("memconsole=8192",
                                           [MemconsolePlainSpinLock]) as k:
        ld = Lockdep.attach(k)
        await printk("from process context\n")
        assert ld.states("buf_lock") == []  # record_msg ran with interrupts off
        await k.read_file("/proc/memconsole")
        assert ld.states("buf_lock") == ["HARDIRQ-ON-W", "SOFTIRQ-ON-W"]

        async def interrupt() -> None:
            with hardirq_context():
                await printk("from an interrupt handler\n")

        await on_cpu(k, irq_cpu, interrupt)
        assert b"from an interrupt handler" in await k.read_file("/proc/memconsole")
    [report] = lockdep_reports(k)
    text = report.text
    assert "inconsistent {HARDIRQ-ON-W} -> {IN-HARDIRQ-W} usage." in text
    info = ld.registered_at("buf_lock", "IN-HARDIRQ-W")
    assert info is not None and info["comm"] == "t%d" % irq_cpu and info["cpu"] == irq_cpu
    assert "t%d/%d [HC1[1]:SC0[0]:HE0:SE1] takes:" % (irq_cpu, info["pid"]) in text
    assert "(buf_lock){?.+.}-{3:3}, at: tests/stress_plugins/memconsole_spinlock.py:" in text
    assert "record_msg" in text.splitlines()[6]
    registered = text.split("{HARDIRQ-ON-W} state was registered at:\n")[1].splitlines()
    assert "proc_read" in registered[0]
    assert "  lock(buf_lock);\n  <Interrupt>\n    lock(buf_lock);" in text
    assert "CPU: %d PID:" % irq_cpu in text


async def test_l2_real_memconsole_is_clean_under_lockdep(autojump_clock):
    """The proposal's spin_lock_irqsave: the same run, no report; usage {-...}."""
    async with Machine("64M", cpus=2).boot("memconsole=8192", [Memconsole]) as k:
        ld = Lockdep.attach(k)
        await printk("from process context\n")

        async def interrupt() -> None:
            with hardirq_context():
                await printk("from an interrupt handler\n")

        await on_cpu(k, 1, interrupt)
        await printk("from process context again\n")
        await k.read_file("/proc/memconsole")
        assert ld.usage("buf_lock") == "{-...}"
    assert ld.reports == [] and lockdep_reports(k) == []

"""ksim.locking: spinlocks (L1..L3), mutexes, rw-semaphores, observers and lock_stat-lite.

Rule ids refer to /work/shared/reference/linux-semantics.md section 7.
"""

from __future__ import annotations

import pytest
import trio

from ksim.cpu import CPU
from ksim.current import Task, current, reset_current, set_current
from ksim.locking import (
    DECLARE_RWSEM, DEFINE_MUTEX, DEFINE_RAW_SPINLOCK, DEFINE_SPINLOCK, Deadlock, Mutex,
    RawSpinLock, SpinLock, down_read, down_read_trylock, down_write, down_write_trylock,
    mutex_init, mutex_lock, mutex_trylock, mutex_unlock, raw_spin_lock, raw_spin_unlock,
    spin_is_locked, spin_lock, spin_lock_init, spin_lock_irq, spin_lock_irqsave,
    spin_lock_irqsave_sync, spin_lock_sync, spin_trylock, spin_trylock_irqsave, spin_unlock,
    spin_unlock_irq, spin_unlock_irqrestore, up_read, up_write,
)
from ksim.kernel import Kernel
from ksim.testing import standalone_kernel
from ksim.sched import HZ, INITIAL_JIFFIES, msleep


def kinds(kernel: Kernel) -> list[str]:
    return [r.kind for r in kernel.reports]


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str, str]] = []

    def lock_event(self, event: str, lock, flags: int = 0) -> None:  # type: ignore[no-untyped-def]
        self.events.append((current().comm, event, lock.name))


@pytest.fixture
def kernel():
    """A kernel that is not booted; the test runs as its task 1 (pid 0 is the idle task)."""
    with standalone_kernel() as k:
        token = set_current(k.new_task("swapper/0"))
        yield k
        reset_current(token)


def as_task(kernel: Kernel, pid: int, comm: str, cpu: CPU | None = None) -> Task:
    """Make the running trio task a distinct simulated task (call inside a child task)."""
    task = Task(pid=pid, comm=comm, cpu=cpu or current().cpu, kernel=kernel)
    set_current(task)
    return task


# -- basics ---------------------------------------------------------------------------------


async def test_spin_lock_disables_preemption_and_tracks_held_locks(kernel):
    lock = DEFINE_SPINLOCK("buf_lock")
    cpu = current().cpu
    await spin_lock(lock)
    assert cpu.preempt_count == 1 and cpu.held_locks == [lock]
    assert lock.owner is current() and lock.owner_cpu == 0 and spin_is_locked(lock)
    spin_unlock(lock)
    assert cpu.preempt_count == 0 and cpu.held_locks == []
    assert lock.owner is None and lock.owner_cpu == -1
    assert lock.acquisitions == 1 and lock.contentions == 0
    assert kernel.reports == []


async def test_works_without_a_kernel():
    lock = SpinLock("nokernel")
    flags = await spin_lock_irqsave(lock)
    spin_unlock_irqrestore(lock, flags)
    m = DEFINE_MUTEX("m")
    await mutex_lock(m)
    mutex_unlock(m)
    assert lock.acquisitions == 1 and m.acquisitions == 1
    assert current().cpu.preempt_count == 0 and current().cpu.irqs_enabled


def test_trylock_outside_trio_has_zero_time(kernel):
    lock = DEFINE_RAW_SPINLOCK("raw")
    assert isinstance(lock, RawSpinLock)
    assert spin_trylock(lock)
    assert not spin_trylock(lock)  # held (even by us): trylock just fails
    spin_unlock(lock)
    assert lock.hold_ns == 0 and current().cpu.preempt_count == 0


async def test_spin_lock_init_names_the_class(kernel):
    lock = spin_lock_init(SpinLock(), "&dev->lock")
    assert lock.name == "&dev->lock"
    assert "(&dev->lock)" in lock.lock_line("probe")


# -- L1 -------------------------------------------------------------------------------------


async def test_l1_irqsave_nests(kernel):
    a, b = DEFINE_SPINLOCK("a"), DEFINE_SPINLOCK("b")
    cpu = current().cpu
    assert cpu.irqs_enabled
    fa = await spin_lock_irqsave(a)
    assert fa is True and not cpu.irqs_enabled
    fb = await spin_lock_irqsave(b)
    assert fb is False and cpu.preempt_count == 2
    spin_unlock_irqrestore(b, fb)
    assert not cpu.irqs_enabled, "inner restore must not re-enable interrupts"
    spin_unlock_irqrestore(a, fa)
    assert cpu.irqs_enabled and cpu.preempt_count == 0


async def test_l1_spin_unlock_irq_enables_unconditionally(kernel):
    a, b = DEFINE_SPINLOCK("a"), DEFINE_SPINLOCK("b")
    cpu = current().cpu
    fa = await spin_lock_irqsave(a)
    await spin_lock_irq(b)
    spin_unlock_irq(b)
    assert cpu.irqs_enabled, "the L1 pitfall: _irq re-enables even though a is held irqsave"
    spin_unlock_irqrestore(a, fa)


async def test_l1_only_local_cpu_affected(kernel):
    other = CPU(1)
    flags = await spin_lock_irqsave(DEFINE_SPINLOCK("x"))
    assert other.irqs_enabled and flags


def test_l1_trylock_irqsave_restores_on_failure(kernel):
    lock = DEFINE_SPINLOCK("t")
    cpu = current().cpu
    ok, flags = spin_trylock_irqsave(lock)
    assert ok and flags and not cpu.irqs_enabled
    ok2, flags2 = spin_trylock_irqsave(lock)
    assert not ok2 and not cpu.irqs_enabled and cpu.preempt_count == 1
    spin_unlock_irqrestore(lock, flags)
    assert cpu.irqs_enabled and cpu.preempt_count == 0


# -- L3 -------------------------------------------------------------------------------------


async def test_l3_recursion_reports_and_raises_deadlock(kernel):
    lock = DEFINE_SPINLOCK("buf_lock")
    cpu = current().cpu
    await spin_lock(lock)
    with pytest.raises(Deadlock) as info:
        await spin_lock(lock)
    text = info.value.report.text.splitlines()
    assert text[0] == "BUG: spinlock recursion on CPU#0, swapper/0/1"
    assert text[1] == (" lock: buf_lock+0x0/0x18, .magic: dead4ead, .owner: swapper/0/1,"
                       " .owner_cpu: 0")
    assert text[2].startswith("CPU: 0 PID: 1 Comm: swapper/0")
    assert any("test_l3_recursion_reports_and_raises_deadlock" in line for line in text)
    assert kernel.reports[-1].kind == "deadlock"
    # The failed attempt left the CPU as it was; the first acquisition still holds.
    assert cpu.preempt_count == 1 and cpu.held_locks == [lock]
    spin_unlock(lock)
    assert cpu.preempt_count == 0


async def test_l3_recursion_irqsave_restores_irq_state_on_deadlock(kernel):
    lock = DEFINE_SPINLOCK("l")
    cpu = current().cpu
    await spin_lock(lock)
    with pytest.raises(Deadlock):
        await spin_lock_irqsave(lock)
    assert cpu.irqs_enabled and cpu.preempt_count == 1
    spin_unlock(lock)


def test_l3_recursion_sync_variant(kernel):
    lock = DEFINE_SPINLOCK("s")
    flags = spin_lock_irqsave_sync(lock)
    with pytest.raises(Deadlock, match="spinlock recursion"):
        spin_lock_sync(lock)
    spin_unlock_irqrestore(lock, flags)
    assert current().cpu.irqs_enabled and current().cpu.preempt_count == 0


async def test_l3_sleeping_with_spinlock_held_is_a_bug(kernel):
    lock = DEFINE_SPINLOCK("l")
    await spin_lock(lock)
    await msleep(1)
    spin_unlock(lock)
    assert kinds(kernel) == ["bug"]
    assert kernel.reports[0].title.startswith(
        "BUG: sleeping function called from invalid context at tests/test_locking.py:")


async def test_l3_the_sleeping_in_atomic_bug_is_reported_once_per_second(kernel, autojump_clock):
    """__might_resched(): no report within HZ jiffies of the last one, kernel-wide."""
    lock = DEFINE_SPINLOCK("l")

    async def offend() -> None:
        await spin_lock(lock)
        await msleep(1)
        spin_unlock(lock)

    await offend()
    await offend()  # 1 ms later: the same second
    await trio.sleep(0.99)  # 248 jiffies after the report
    await offend()
    assert kinds(kernel) == ["bug"]
    await trio.sleep(0.01)  # 250 jiffies: a second has passed
    await offend()
    assert kinds(kernel) == ["bug", "bug"]
    assert kernel.sched_core.prev_jiffy == INITIAL_JIFFIES + HZ


async def test_l3_no_sleeping_in_atomic_report_during_an_oops_or_a_shutdown(kernel):
    """__might_resched() returns early while oops_in_progress, before SYSTEM_SCHEDULING and
    after SYSTEM_RUNNING: the panic path and early boot sleep with preemption off."""
    from ksim.init import SYSTEM_BOOTING, SYSTEM_RESTART, SYSTEM_SCHEDULING
    lock = DEFINE_SPINLOCK("l")

    async def offend() -> None:
        await spin_lock(lock)
        await msleep(1)
        spin_unlock(lock)

    kernel.panic.oops_in_progress = 1
    await offend()
    kernel.panic.oops_in_progress = 0
    for state in (SYSTEM_BOOTING, SYSTEM_RESTART):
        kernel.init.system_state = state
        await offend()
    assert kinds(kernel) == []
    kernel.init.system_state = SYSTEM_SCHEDULING  # the initcalls: reported
    await offend()
    assert kinds(kernel) == ["bug"]


async def test_unlock_of_unlocked_spinlock_is_a_bug_not_a_crash(kernel):
    lock = DEFINE_SPINLOCK("l")
    spin_unlock(lock)
    assert kernel.reports[0].title == "BUG: spinlock already unlocked on CPU#0, swapper/0/1"
    assert current().cpu.preempt_count == 0


async def test_spin_contention_by_another_task_waits_and_counts(kernel, autojump_clock):
    kernel.locking.lock_stat = True  # the sysctl: collect wait and hold times
    lock = DEFINE_SPINLOCK("buf_lock")
    rec = Recorder()
    kernel.locking.observers.append(rec)
    order = []

    async def holder():
        as_task(kernel, 10, "holder", CPU(0))
        await spin_lock(lock)
        order.append("holder locked")
        await msleep(5)  # BUG: sleeping with a spinlock held; lets the waiter run
        order.append("holder unlocking")
        spin_unlock(lock)

    async def waiter():
        as_task(kernel, 11, "waiter", CPU(1))
        await trio.sleep(0.001)
        await spin_lock(lock)
        order.append("waiter locked")
        spin_unlock(lock)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        nursery.start_soon(waiter)
    assert order == ["holder locked", "holder unlocking", "waiter locked"]
    assert lock.contentions == 1 and lock.acquisitions == 2
    assert lock.wait_ns == 4_000_000 and lock.hold_ns == 5_000_000
    assert rec.events == [
        ("holder", "acquire", "buf_lock"), ("holder", "acquired", "buf_lock"),
        ("waiter", "acquire", "buf_lock"), ("waiter", "contended", "buf_lock"),
        ("holder", "release", "buf_lock"), ("waiter", "acquired", "buf_lock"),
        ("waiter", "release", "buf_lock"),
    ]
    assert kinds(kernel) == ["bug"]  # only the might_sleep BUG (different CPUs)


async def test_spin_contention_on_same_cpu_reports_cpu_recursion_once(kernel, autojump_clock):
    lock = DEFINE_SPINLOCK("l")
    cpu = CPU(0)

    async def holder():
        as_task(kernel, 10, "holder", cpu)
        await spin_lock(lock)
        await trio.sleep(0.002)
        spin_unlock(lock)

    async def waiter():
        as_task(kernel, 11, "waiter", cpu)
        await trio.sleep(0.001)
        await spin_lock(lock)
        spin_unlock(lock)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        nursery.start_soon(waiter)
    titles = [r.title for r in kernel.reports]
    assert "BUG: spinlock cpu recursion on CPU#0, waiter/11" in titles
    assert cpu.preempt_count == 0 and cpu.held_locks == []


async def test_observer_event_order_uncontended(kernel):
    rec = Recorder()
    kernel.locking.observers.append(rec)
    lock = DEFINE_SPINLOCK("l")
    flags = await spin_lock_irqsave(lock)
    spin_unlock_irqrestore(lock, flags)
    assert spin_trylock(lock)
    spin_unlock(lock)
    await raw_spin_lock(lock)
    raw_spin_unlock(lock)
    assert [e for _, e, _ in rec.events] == ["acquire", "acquired", "release"] * 3


async def test_observer_sees_acquire_but_no_acquired_on_deadlock(kernel):
    rec = Recorder()
    kernel.locking.observers.append(rec)
    lock = DEFINE_SPINLOCK("l")
    await spin_lock(lock)
    with pytest.raises(Deadlock):
        await spin_lock(lock)
    spin_unlock(lock)
    assert [e for _, e, _ in rec.events] == ["acquire", "acquired", "acquire", "release"]


async def test_cancelled_waiter_leaves_lock_usable(kernel, autojump_clock):
    lock = DEFINE_SPINLOCK("l")
    cpu1 = CPU(1)

    async def holder():
        as_task(kernel, 10, "holder", CPU(0))
        await spin_lock(lock)
        await trio.sleep(1)
        spin_unlock(lock)

    async def waiter():
        as_task(kernel, 11, "waiter", cpu1)
        await trio.sleep(0.1)
        with trio.move_on_after(0.5):
            await spin_lock(lock)
        assert cpu1.preempt_count == 0

    async with trio.open_nursery() as nursery:
        nursery.start_soon(holder)
        nursery.start_soon(waiter)
    assert lock.owner is None and not lock._waiters
    await spin_lock(lock)
    spin_unlock(lock)


# -- mutex ----------------------------------------------------------------------------------


async def test_mutex_in_atomic_context_is_a_bug(kernel):
    m = DEFINE_MUTEX("dev_mutex")
    lock = DEFINE_SPINLOCK("l")
    await spin_lock(lock)
    await mutex_lock(m)
    mutex_unlock(m)
    spin_unlock(lock)
    assert kinds(kernel) == ["bug"]
    assert "sleeping function called from invalid context" in kernel.reports[0].title
    assert "in_atomic(): 1" in kernel.reports[0].text


async def test_mutex_fifo_handoff_and_stats(kernel, autojump_clock):
    m = mutex_init(Mutex(), "&dev->mutex")
    order = []

    async def user(pid, delay):
        as_task(kernel, pid, "t%d" % pid)
        await trio.sleep(delay)
        await mutex_lock(m)
        order.append(pid)
        await msleep(10)  # sleeping under a mutex is fine
        mutex_unlock(m)

    async with trio.open_nursery() as nursery:
        for pid, delay in ((1, 0), (2, 0.001), (3, 0.002)):
            nursery.start_soon(user, pid, delay)
    assert order == [1, 2, 3]
    assert m.acquisitions == 3 and m.contentions == 2
    assert kernel.reports == []


async def test_mutex_recursion_is_a_deadlock(kernel):
    m = DEFINE_MUTEX("m")
    await mutex_lock(m)
    with pytest.raises(Deadlock) as info:
        await mutex_lock(m)
    lines = info.value.report.text.splitlines()
    assert lines[1] == "WARNING: possible recursive locking detected"
    assert lines[4] == "swapper/0/1 is trying to acquire lock:"
    assert "  lock(m);" in lines and " *** DEADLOCK ***" in lines
    mutex_unlock(m)


async def test_mutex_trylock_and_wrong_unlock(kernel):
    m = DEFINE_MUTEX("m")
    assert mutex_trylock(m) and not mutex_trylock(m)
    mutex_unlock(m)
    mutex_unlock(m)  # not held: a WARN, not a crash
    assert kernel.reports[-1].kind == "warning"
    assert "DEBUG_LOCKS_WARN_ON" in kernel.reports[-1].text


# -- rw-semaphore ---------------------------------------------------------------------------


async def test_rwsem_readers_share_writer_excludes(kernel, autojump_clock):
    sem = DECLARE_RWSEM("sem")
    log = []

    async def reader(pid):
        as_task(kernel, pid, "r%d" % pid)
        await down_read(sem)
        log.append(("in", pid, trio.current_time()))
        await trio.sleep(1)
        up_read(sem)

    async def writer():
        as_task(kernel, 9, "w")
        await trio.sleep(0.5)
        await down_write(sem)
        log.append(("w", 9, trio.current_time()))
        up_write(sem)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reader, 1)
        nursery.start_soon(reader, 2)
        nursery.start_soon(writer)
    assert sorted(e[:2] for e in log[:2]) == [("in", 1), ("in", 2)] and log[2][:2] == ("w", 9)
    assert log[0][2] == log[1][2] == 0 and log[2][2] == pytest.approx(1.0)
    assert sem.contentions == 1


async def test_rwsem_waiting_writer_blocks_new_readers(kernel, autojump_clock):
    sem = DECLARE_RWSEM("sem")
    order = []

    async def first_reader():
        as_task(kernel, 1, "r1")
        await down_read(sem)
        await trio.sleep(1)
        up_read(sem)

    async def writer():
        as_task(kernel, 2, "w")
        await trio.sleep(0.1)
        await down_write(sem)
        order.append("w")
        up_write(sem)

    async def late_reader():
        as_task(kernel, 3, "r3")
        await trio.sleep(0.2)
        assert not down_read_trylock(sem)
        await down_read(sem)
        order.append("r3")
        up_read(sem)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(first_reader)
        nursery.start_soon(writer)
        nursery.start_soon(late_reader)
    assert order == ["w", "r3"]


async def test_rwsem_write_while_holding_read_is_a_deadlock(kernel):
    sem = DECLARE_RWSEM("&nh->rwsem")
    await down_read(sem)
    with pytest.raises(Deadlock) as info:
        await down_write(sem)
    assert info.value.report.kind == "deadlock"
    assert "  lock(&nh->rwsem);" in info.value.report.text
    up_read(sem)
    assert down_write_trylock(sem)
    up_write(sem)


async def test_rwsem_nested_read_ok_without_waiting_writer(kernel):
    sem = DECLARE_RWSEM("sem")
    await down_read(sem)
    await down_read(sem)
    assert sem.readers[current()] == 2
    up_read(sem)
    up_read(sem)
    assert not sem.readers and kernel.reports == []


async def test_l1_uncontended_irqsave_same_state_with_or_without_observers(kernel, autojump_clock):
    """The uncontended spin_lock_irqsave/irqrestore (no observer, the trio backend's no-op
    preemption points) leaves lock, CPU and lock_stat exactly as the full path does (taken
    with an observer attached); that observer sees the events lockdep would."""
    kernel.locking.lock_stat = True
    states = []
    for observed in (False, True):
        rec = Recorder()
        kernel.locking.observers[:] = [rec] if observed else []
        lock = DEFINE_SPINLOCK("l%d" % observed)
        cpu = current().cpu
        outer = await spin_lock_irqsave(lock)
        assert cpu.irqs_enabled is False and cpu.preempt_count == 1 and lock.owner is current()
        await trio.sleep(0.002)  # held for 2 ms of virtual time
        spin_unlock_irqrestore(lock, outer)
        await spin_lock(lock)
        spin_unlock(lock)
        states.append((outer, cpu.irqs_enabled, cpu.preempt_count, list(cpu.held_locks),
                       lock.owner, lock.owner_cpu, lock.acquisitions, lock.hold_ns,
                       lock.max_hold_ns, lock.min_hold_ns, lock in kernel.locking.locks_seen))
        assert rec.events == ([("swapper/0", e, "l1") for e in
                               ("acquire", "acquired", "release") * 2] if observed else [])
    assert states[0] == states[1] == (True, True, 0, [], None, -1, 2, 2_000_000, 2_000_000, 0,
                                      True)

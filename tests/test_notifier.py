"""ksim.notifier: notifier chains.  Rule ids refer to linux-semantics.md section 1 (N1..N16)."""

from __future__ import annotations

import pytest
import trio

from ksim.cpu import CPU
from ksim.current import Task, current, reset_current, set_current
from ksim.errno import EBUSY, EEXIST, ENOENT, ENOMEM, EPERM
from ksim.locking import Deadlock, down_read, up_read
from ksim.notifier import (
    DIE_NMIUNKNOWN, DIE_OOPS, INT_MAX, INT_MIN, NOTIFY_BAD, NOTIFY_DONE, NOTIFY_OK, NOTIFY_STOP,
    NOTIFY_STOP_MASK, SYS_DOWN, SYS_HALT, SYS_POWER_OFF, SYS_RESTART, AtomicNotifierHead,
    BlockingNotifierHead, NotifierBlock, RawNotifierHead, SrcuNotifierHead, StandardChains,
    atomic_notifier_call_chain, atomic_notifier_call_chain_is_empty,
    atomic_notifier_chain_register, atomic_notifier_chain_register_unique_prio,
    atomic_notifier_chain_unregister, blocking_notifier_call_chain,
    blocking_notifier_call_chain_robust, blocking_notifier_chain_register,
    blocking_notifier_chain_register_unique_prio, blocking_notifier_chain_unregister,
    notifier_call_chain, notifier_from_errno, notifier_to_errno, raw_notifier_call_chain,
    raw_notifier_call_chain_robust, raw_notifier_chain_register, raw_notifier_chain_unregister,
    srcu_init_notifier_head, srcu_notifier_call_chain, srcu_notifier_chain_register,
    srcu_notifier_chain_unregister,
)
from ksim.kernel import Kernel
from ksim.testing import standalone_kernel
from ksim.sched import msleep


def kinds(kernel: Kernel) -> list[str]:
    return [r.kind for r in kernel.reports]


@pytest.fixture
def kernel():
    with standalone_kernel() as k:
        yield k


def recorder(log: list, name: str, ret: int = NOTIFY_OK, prio: int = 0) -> NotifierBlock:
    async def cb(nb, action, data):
        log.append((name, action, data))
        return ret
    cb.__name__ = name
    return NotifierBlock(cb, prio)


def names(nh) -> list[str]:
    return [nb.notifier_call.__name__ for nb in nh.blocks()]


# -- N7 / N10 -------------------------------------------------------------------------------


def test_n7_return_codes():
    assert (NOTIFY_DONE, NOTIFY_OK, NOTIFY_STOP_MASK) == (0, 1, 0x8000)
    assert NOTIFY_BAD == 0x8002 and NOTIFY_STOP == 0x8001


def test_n10_examples():
    assert notifier_from_errno(0) == NOTIFY_OK
    assert notifier_from_errno(-EPERM) == NOTIFY_BAD
    assert notifier_from_errno(-ENOMEM) == 0x800D
    assert notifier_from_errno(-EBUSY) == 0x8011
    assert notifier_to_errno(NOTIFY_BAD) == -EPERM
    assert [notifier_to_errno(r) for r in (NOTIFY_STOP, NOTIFY_OK, NOTIFY_DONE)] == [0, 0, 0]


@pytest.mark.parametrize("err", range(1, 134))
def test_n10_round_trip_every_errno(err):
    assert notifier_to_errno(notifier_from_errno(-err)) == -err


# -- N1..N3 ---------------------------------------------------------------------------------


def test_n1_block_fields_and_kernel_style_construction():
    async def f(nb, action, data):
        return NOTIFY_DONE
    nb = NotifierBlock(notifier_call=f, priority=INT_MIN)
    assert nb.priority == INT_MIN and nb.next is None
    assert NotifierBlock(f).priority == 0 and INT_MAX == 2**31 - 1


async def test_n3_priority_order_and_fifo_within_priority():
    nh = RawNotifierHead("t")
    log: list = []
    for name, prio in (("a0", 0), ("b10", 10), ("c0", 0), ("d-5", -5), ("e10", 10),
                       ("fmax", INT_MAX)):
        assert raw_notifier_chain_register(nh, recorder(log, name, prio=prio)) == 0
    assert names(nh) == ["fmax", "b10", "e10", "a0", "c0", "d-5"]
    await raw_notifier_call_chain(nh, 1, None)
    assert [n for n, _, _ in log] == ["fmax", "b10", "e10", "a0", "c0", "d-5"]


# -- N4 / N5 --------------------------------------------------------------------------------


async def test_n4_duplicate_warns_and_returns_eexist(kernel):
    nh = AtomicNotifierHead("test_chain")
    nb = recorder([], "my_handler")
    assert atomic_notifier_chain_register(nh, nb) == 0
    assert atomic_notifier_chain_register(nh, nb) == -EEXIST
    assert names(nh) == ["my_handler"]
    assert kinds(kernel) == ["warning"]
    assert "notifier callback my_handler already registered" in kernel.reports[0].text
    assert "W" in kernel.panic.taints


async def test_n4_identity_check_only_up_to_insertion_point(kernel):
    nh = RawNotifierHead()
    a, b = recorder([], "a"), recorder([], "b")
    raw_notifier_chain_register(nh, a)
    raw_notifier_chain_register(nh, b)
    b.priority = 10  # raised after registration: the walk stops before meeting b
    assert raw_notifier_chain_register(nh, b) == 0
    assert nh.head is b and b.next is a and a.next is b  # linked twice: a cycle, as in C
    assert kernel.reports == []


@pytest.mark.parametrize("kind", ["atomic", "blocking"])
async def test_n5_unique_prio(kernel, kind):
    if kind == "atomic":
        nh = AtomicNotifierHead()

        async def reg(nb):
            return atomic_notifier_chain_register_unique_prio(nh, nb)
    else:
        nh = BlockingNotifierHead()

        async def reg(nb):
            return await blocking_notifier_chain_register_unique_prio(nh, nb)
    a = recorder([], "a", prio=5)
    assert await reg(a) == 0
    assert await reg(recorder([], "b", prio=5)) == -EBUSY
    assert await reg(recorder([], "c", prio=6)) == 0
    assert await reg(recorder([], "d", prio=4)) == 0
    assert await reg(a) == -EEXIST  # met before any equal-priority entry: -EEXIST wins
    assert names(nh) == ["c", "a", "d"]


# -- N6 -------------------------------------------------------------------------------------


async def test_n6_unregister(kernel):
    nh = AtomicNotifierHead()
    a, b = recorder([], "a"), recorder([], "b")
    atomic_notifier_chain_register(nh, a)
    atomic_notifier_chain_register(nh, b)
    assert await atomic_notifier_chain_unregister(nh, a) == 0
    assert await atomic_notifier_chain_unregister(nh, a) == -ENOENT
    assert names(nh) == ["b"]
    bh = BlockingNotifierHead()
    assert await blocking_notifier_chain_unregister(bh, a) == -ENOENT
    assert raw_notifier_chain_unregister(RawNotifierHead(), a) == -ENOENT
    assert kernel.reports == []


async def test_n6_atomic_unregister_in_atomic_context_is_a_sleep_bug(kernel):
    nh = AtomicNotifierHead()
    a = recorder([], "a")
    atomic_notifier_chain_register(nh, a)
    current().cpu.preempt_count += 1  # e.g. under a spinlock
    try:
        assert await atomic_notifier_chain_unregister(nh, a) == 0
    finally:
        current().cpu.preempt_count -= 1
    assert kinds(kernel) == ["bug"]  # synchronize_rcu sleeps; no RCU read section: no deadlock


def test_n6_atomic_register_is_fine_in_atomic_context(kernel):
    nh = AtomicNotifierHead()
    cpu = current().cpu
    cpu.irqs_enabled = False
    try:
        assert atomic_notifier_chain_register(nh, recorder([], "a")) == 0
        assert not cpu.irqs_enabled and cpu.preempt_count == 0
    finally:
        cpu.irqs_enabled = True
    assert kernel.reports == [] and not atomic_notifier_call_chain_is_empty(nh)


# -- N8 -------------------------------------------------------------------------------------


async def test_n8_nr_to_call_and_nr_calls():
    nh = RawNotifierHead()
    log: list = []
    for n in "abcd":
        raw_notifier_chain_register(nh, recorder(log, n))
    nr = [0]
    assert await notifier_call_chain(nh, 7, "x", 2, nr) == NOTIFY_OK
    assert nr == [2] and [n for n, _, _ in log] == ["a", "b"]
    nr = [0]
    assert await notifier_call_chain(nh, 7, "x", 0, nr) == NOTIFY_DONE and nr == [0]
    nr = [0]
    assert await notifier_call_chain(nh, 7, "x", -1, nr) == NOTIFY_OK and nr == [4]


async def test_n8_stop_is_counted_and_ret_is_last_callback():
    nh = RawNotifierHead()
    log: list = []
    raw_notifier_chain_register(nh, recorder(log, "a", NOTIFY_DONE))
    raw_notifier_chain_register(nh, recorder(log, "b", NOTIFY_STOP))
    raw_notifier_chain_register(nh, recorder(log, "c"))
    nr = [0]
    assert await notifier_call_chain(nh, 1, None, -1, nr) == NOTIFY_STOP
    assert nr == [2] and [n for n, _, _ in log] == ["a", "b"]


async def test_n8_empty_chain_returns_done(kernel):
    for nh, call in ((RawNotifierHead(), raw_notifier_call_chain),
                     (AtomicNotifierHead(), atomic_notifier_call_chain),
                     (BlockingNotifierHead(), blocking_notifier_call_chain),
                     (SrcuNotifierHead(), srcu_notifier_call_chain)):
        assert await call(nh, 1, None) == NOTIFY_DONE


async def test_n8_callbacks_get_block_action_data_and_none_is_done(kernel):
    nh = AtomicNotifierHead()
    seen = []

    async def ok_cb(nb, action, data):
        seen.append(("ok", nb, action, data))
        return NOTIFY_OK

    async def forgets_return(nb, action, data):
        seen.append(("none", nb, action, data))

    a, b = NotifierBlock(ok_cb, 2), NotifierBlock(forgets_return, 1)
    for nb in (a, b):
        atomic_notifier_chain_register(nh, nb)
    assert await atomic_notifier_call_chain(nh, DIE_OOPS, "oops") == NOTIFY_DONE
    assert seen == [("ok", a, DIE_OOPS, "oops"), ("none", b, DIE_OOPS, "oops")]


def test_n1_a_callback_that_is_not_async_is_refused_at_registration():
    """Callbacks run driver code, so they are coroutines; a plain function is a mistake
    reported where it is made, not deep inside a later walk."""
    def sync_cb(nb, action, data):
        return NOTIFY_OK
    for register, nh in ((raw_notifier_chain_register, RawNotifierHead()),
                         (atomic_notifier_chain_register, AtomicNotifierHead())):
        with pytest.raises(TypeError, match="sync_cb must be an 'async def' function"):
            register(nh, NotifierBlock(sync_cb))
        assert nh.head is None


# -- N9 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("stopper", [NOTIFY_BAD, NOTIFY_STOP, notifier_from_errno(-ENOMEM)])
async def test_n9_robust_rolls_back_earlier_blocks_forward(kernel, stopper):
    for kind in ("raw", "blocking"):
        log: list = []
        nh = RawNotifierHead() if kind == "raw" else BlockingNotifierHead()
        blocks = [recorder(log, "a"), recorder(log, "b"), recorder(log, "c", stopper),
                  recorder(log, "d")]
        for nb in blocks:
            if kind == "raw":
                raw_notifier_chain_register(nh, nb)
            else:
                await blocking_notifier_chain_register(nh, nb)
        if kind == "raw":
            ret = await raw_notifier_call_chain_robust(nh, 1, 2, "v")
        else:
            ret = await blocking_notifier_call_chain_robust(nh, 1, 2, "v")
        assert ret == stopper
        assert [(n, a) for n, a, _ in log] == [("a", 1), ("b", 1), ("c", 1), ("a", 2), ("b", 2)]


async def test_n9_robust_no_rollback_on_success_and_first_block_stopping(kernel):
    log: list = []
    nh = RawNotifierHead()
    raw_notifier_chain_register(nh, recorder(log, "a"))
    assert await raw_notifier_call_chain_robust(nh, 1, 2, None) == NOTIFY_OK
    assert log == [("a", 1, None)]
    log.clear()
    first = RawNotifierHead()
    raw_notifier_chain_register(first, recorder(log, "x", NOTIFY_BAD))
    raw_notifier_chain_register(first, recorder(log, "y"))
    assert await raw_notifier_call_chain_robust(first, 1, 2, None) == NOTIFY_BAD
    assert log == [("x", 1, None)]  # nr - 1 == 0 blocks rolled back


async def test_n9_blocking_robust_holds_read_lock_across_both_passes(kernel):
    nh = BlockingNotifierHead()
    held = []

    async def cb(nb, action, data):
        held.append(current() in nh.rwsem.readers)
        return NOTIFY_OK if action == 1 and len(held) == 1 else NOTIFY_BAD
    await blocking_notifier_chain_register(nh, NotifierBlock(cb, 1))
    await blocking_notifier_chain_register(nh, recorder([], "bad", NOTIFY_BAD))
    assert await blocking_notifier_call_chain_robust(nh, 1, 2, None) == NOTIFY_BAD
    assert held == [True, True] and not nh.rwsem.readers


# -- N11 ------------------------------------------------------------------------------------


async def test_n11_atomic_callback_that_sleeps_is_a_bug_not_an_exception(kernel, autojump_clock):
    nh = AtomicNotifierHead("panic_notifier_list")

    async def sleepy(nb, action, data):
        await msleep(10)
        return NOTIFY_OK
    atomic_notifier_chain_register(nh, NotifierBlock(sleepy))
    assert await atomic_notifier_call_chain(nh, 0, "msg") == NOTIFY_OK
    assert kinds(kernel) == ["bug"]
    report = kernel.reports[0]
    assert report.title.startswith("BUG: sleeping function called from invalid context at ")
    assert "RCU nest depth: 1, expected: 0" in report.text
    cpu = current().cpu
    assert cpu.preempt_count == 0 and cpu.rcu_read_lock_nesting == 0


async def test_n11_blocking_callbacks_may_sleep(kernel, autojump_clock):
    nh = BlockingNotifierHead()

    async def sleepy(nb, action, data):
        await msleep(10)
        return NOTIFY_OK
    await blocking_notifier_chain_register(nh, NotifierBlock(sleepy))
    assert await blocking_notifier_call_chain(nh, 0, None) == NOTIFY_OK
    assert kernel.reports == []


async def test_n11_blocking_call_in_atomic_context_is_a_bug_unless_empty(kernel):
    nh = BlockingNotifierHead()
    cpu = current().cpu
    cpu.preempt_count += 1
    try:
        await blocking_notifier_call_chain(nh, 0, None)  # empty: no down_read, no BUG
        assert kernel.reports == []
        nh_full = BlockingNotifierHead()
        nh_full.head = recorder([], "a")  # as if registered during boot
        await blocking_notifier_call_chain(nh_full, 0, None)
    finally:
        cpu.preempt_count -= 1
    assert kinds(kernel) == ["bug"]


async def test_n11_concurrent_blocking_walkers_share_the_read_lock(kernel, autojump_clock):
    nh = BlockingNotifierHead()
    inside = []
    peak = []

    async def slow(nb, action, data):
        inside.append(action)
        peak.append(len(inside))
        await trio.sleep(1)
        inside.remove(action)
        return NOTIFY_OK
    await blocking_notifier_chain_register(nh, NotifierBlock(slow))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocking_notifier_call_chain, nh, 1, None)
        nursery.start_soon(blocking_notifier_call_chain, nh, 2, None)
    assert max(peak) == 2 and trio.current_time() == pytest.approx(1.0)


async def test_n11_n13_blocking_register_waits_for_walkers(kernel, autojump_clock):
    nh = BlockingNotifierHead()
    events = []

    async def slow(nb, action, data):
        events.append(("walk start", trio.current_time()))
        await trio.sleep(1)
        events.append(("walk end", trio.current_time()))
        return NOTIFY_OK
    await blocking_notifier_chain_register(nh, NotifierBlock(slow))

    async def registrar():
        set_current(Task(pid=2, comm="modprobe", cpu=current().cpu, kernel=kernel))
        await trio.sleep(0.5)
        await blocking_notifier_chain_register(nh, recorder([], "late"))
        events.append(("registered", trio.current_time()))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(blocking_notifier_call_chain, nh, 1, None)
        nursery.start_soon(registrar)
    assert [e for e, _ in events] == ["walk start", "walk end", "registered"]
    assert events[-1][1] == pytest.approx(1.0)


async def test_n11_booting_registration_takes_no_lock(kernel):
    kernel.init.system_state = "booting"
    nh = BlockingNotifierHead()
    await down_read(nh.rwsem)  # a walker holds the read lock
    assert await blocking_notifier_chain_register(nh, recorder([], "a")) == 0
    assert await srcu_notifier_chain_register(SrcuNotifierHead(), recorder([], "b")) == 0
    up_read(nh.rwsem)
    assert kernel.reports == []


# -- N12 ------------------------------------------------------------------------------------


async def test_n12_raw_self_unregister_does_not_break_the_walk():
    nh = RawNotifierHead()
    log: list = []

    async def once(nb, action, data):
        log.append("once")
        raw_notifier_chain_unregister(nh, nb)
        return NOTIFY_OK
    raw_notifier_chain_register(nh, NotifierBlock(once, 1))
    raw_notifier_chain_register(nh, recorder(log, "after"))
    await raw_notifier_call_chain(nh, 0)
    await raw_notifier_call_chain(nh, 0)
    assert [e if isinstance(e, str) else e[0] for e in log] == ["once", "after", "after"]


async def test_n12_raw_unregister_successor_still_called():
    nh = RawNotifierHead()
    log: list = []
    b = recorder(log, "b", prio=1)
    c = recorder(log, "c", prio=0)

    async def a_cb(nb, action, data):
        log.append(("a", action, data))
        if action == 1:
            assert raw_notifier_chain_unregister(nh, b) == 0
        return NOTIFY_OK
    raw_notifier_chain_register(nh, NotifierBlock(a_cb, 2))
    raw_notifier_chain_register(nh, b)
    raw_notifier_chain_register(nh, c)
    await raw_notifier_call_chain(nh, 1)
    assert [n for n, _, _ in log] == ["a", "b", "c"]  # b's pointer was already fetched
    log.clear()
    await raw_notifier_call_chain(nh, 2)
    assert [n for n, _, _ in log] == ["a", "c"]
    assert b.next is c  # unregister does not clear next (as in C)


async def test_n12_atomic_unregister_inside_walk_is_reported_deadlock(kernel):
    nh = AtomicNotifierHead("die_chain")
    log: list = []
    b = recorder(log, "b")

    async def a_cb(nb, action, data):
        log.append(("a", action, data))
        if action == 1:
            await atomic_notifier_chain_unregister(nh, b)
        return NOTIFY_OK
    atomic_notifier_chain_register(nh, NotifierBlock(a_cb, 1))
    atomic_notifier_chain_register(nh, b)
    with pytest.raises(Deadlock) as info:
        await atomic_notifier_call_chain(nh, 1)
    assert kinds(kernel) == ["bug", "deadlock"]
    assert kernel.reports[0].title.startswith("BUG: sleeping function called from invalid context")
    text = info.value.report.text
    assert "WARNING: suspicious RCU usage" in text
    assert "Illegal synchronize_rcu() in RCU read-side critical section!" in text
    # The unlink happened before synchronize_rcu, and the list is intact.
    assert names(nh) == ["a_cb"] and nh.head.next is None
    cpu = current().cpu
    assert cpu.preempt_count == 0 and cpu.rcu_read_lock_nesting == 0 and cpu.irqs_enabled
    log.clear()
    atomic_notifier_chain_register(nh, b)
    assert await atomic_notifier_call_chain(nh, 2) == NOTIFY_OK
    assert [n for n, _, _ in log] == ["a", "b"]


async def test_n12_blocking_unregister_inside_walk_is_reported_deadlock(kernel):
    nh = BlockingNotifierHead("reboot_notifier_list")
    b = recorder([], "b")

    async def a_cb(nb, action, data):
        await blocking_notifier_chain_unregister(nh, b)
        return NOTIFY_OK
    await blocking_notifier_chain_register(nh, NotifierBlock(a_cb, 1))
    await blocking_notifier_chain_register(nh, b)
    with pytest.raises(Deadlock) as info:
        await blocking_notifier_call_chain(nh, SYS_RESTART)
    assert info.value.report.kind == "deadlock"
    assert "WARNING: possible recursive locking detected" in info.value.report.text
    assert "  lock(reboot_notifier_list.rwsem);" in info.value.report.text
    assert names(nh) == ["a_cb", "b"]  # down_write never succeeded: nothing unlinked
    assert not nh.rwsem.readers and nh.rwsem.owner is None
    assert await blocking_notifier_chain_unregister(nh, b) == 0  # usable afterwards


async def test_n12_blocking_register_inside_walk_self_deadlocks(kernel):
    nh = BlockingNotifierHead()

    async def a_cb(nb, action, data):
        await blocking_notifier_chain_register(nh, recorder([], "new"))
        return NOTIFY_OK
    await blocking_notifier_chain_register(nh, NotifierBlock(a_cb))
    with pytest.raises(Deadlock):
        await blocking_notifier_call_chain(nh, 0)


async def test_n12_blocking_unregister_inside_walk_while_booting_behaves_like_raw(kernel):
    kernel.init.system_state = "booting"
    nh = BlockingNotifierHead()
    log: list = []
    b = recorder(log, "b")

    async def a_cb(nb, action, data):
        log.append(("a", action, data))
        assert await blocking_notifier_chain_unregister(nh, b) == 0
        return NOTIFY_OK
    await blocking_notifier_chain_register(nh, NotifierBlock(a_cb, 1))
    await blocking_notifier_chain_register(nh, b)
    await blocking_notifier_call_chain(nh, 0)
    assert [n for n, _, _ in log] == ["a", "b"] and names(nh) == ["a_cb"]
    assert kernel.reports == []


async def test_n12_srcu_unregister_inside_walk_is_reported_deadlock(kernel):
    nh = srcu_init_notifier_head(name="srcu_chain")
    b = recorder([], "b")

    async def a_cb(nb, action, data):
        await srcu_notifier_chain_unregister(nh, b)
        return NOTIFY_OK
    await srcu_notifier_chain_register(nh, NotifierBlock(a_cb, 1))
    await srcu_notifier_chain_register(nh, b)
    with pytest.raises(Deadlock) as info:
        await srcu_notifier_call_chain(nh, 0)
    assert "Illegal synchronize_srcu() in same-type SRCU" in info.value.report.text
    assert names(nh) == ["a_cb"]
    assert kinds(kernel) == ["deadlock"]  # SRCU readers may sleep: no might_sleep BUG


async def test_n12_srcu_unregister_waits_for_readers(kernel, autojump_clock):
    nh = SrcuNotifierHead()
    events = []

    async def slow(nb, action, data):
        await trio.sleep(1)
        events.append("walk done")
        return NOTIFY_OK
    nb = NotifierBlock(slow)
    await srcu_notifier_chain_register(nh, nb)

    async def remover():
        set_current(Task(pid=3, comm="rmmod", cpu=CPU(0), kernel=kernel))
        await trio.sleep(0.5)
        assert await srcu_notifier_chain_unregister(nh, nb) == 0
        events.append("unregistered")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(srcu_notifier_call_chain, nh, 0, None)
        nursery.start_soon(remover)
    assert events == ["walk done", "unregistered"] and kernel.reports == []


async def test_n12_atomic_unregister_waits_for_a_walker_of_another_task(kernel, autojump_clock):
    nh = AtomicNotifierHead()
    events = []

    async def slow(nb, action, data):
        await trio.sleep(1)  # (a sleep in an atomic walk: not what we test here)
        events.append("walk done")
        return NOTIFY_OK
    nb = NotifierBlock(slow)
    atomic_notifier_chain_register(nh, nb)

    async def walker():
        set_current(Task(pid=4, comm="walker", cpu=CPU(1), kernel=kernel))
        await atomic_notifier_call_chain(nh, 0)

    async def remover():
        set_current(Task(pid=5, comm="rmmod", cpu=CPU(0), kernel=kernel))
        await trio.sleep(0.5)
        assert await atomic_notifier_chain_unregister(nh, nb) == 0
        events.append("unregistered")

    async with trio.open_nursery() as nursery:
        nursery.start_soon(walker)
        nursery.start_soon(remover)
    assert events == ["walk done", "unregistered"]


# -- N13 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["raw", "atomic"])
async def test_n13_register_during_walk(kernel, kind):
    nh = RawNotifierHead() if kind == "raw" else AtomicNotifierHead()
    register = raw_notifier_chain_register if kind == "raw" else atomic_notifier_chain_register
    call = raw_notifier_call_chain if kind == "raw" else atomic_notifier_call_chain
    log: list = []
    newcomers = [recorder(log, "right_after_a", prio=5), recorder(log, "before_a", prio=20),
                 recorder(log, "after_b", prio=-5)]

    async def a_cb(nb, action, data):
        log.append(("a", action, data))
        if action == 1:
            for n in newcomers:
                assert register(nh, n) == 0
        return NOTIFY_OK
    register(nh, NotifierBlock(a_cb, 10))
    register(nh, recorder(log, "b", prio=0))
    await call(nh, 1, None)
    assert [n for n, _, _ in log] == ["a", "b", "after_b"]
    log.clear()
    await call(nh, 2, None)
    assert [n for n, _, _ in log] == ["before_a", "a", "right_after_a", "b", "after_b"]


# -- N14..N16 -------------------------------------------------------------------------------


def test_n14_n16_standard_chains_are_per_kernel():
    one, two = StandardChains(), StandardChains()
    assert isinstance(one.panic_notifier_list, AtomicNotifierHead)
    assert isinstance(one.reboot_notifier_list, BlockingNotifierHead)
    assert isinstance(one.die_chain, AtomicNotifierHead)
    assert isinstance(one.restart_handler_list, AtomicNotifierHead)
    assert one.panic_notifier_list is not two.panic_notifier_list
    assert one.die_chain.lock is not two.die_chain.lock
    assert one.panic_notifier_list.lock.name == "panic_notifier_list.lock"


def test_n15_n16_constants():
    assert (SYS_DOWN, SYS_RESTART, SYS_HALT, SYS_POWER_OFF) == (1, 1, 2, 3)
    assert (DIE_OOPS, DIE_NMIUNKNOWN) == (1, 12)


async def test_observers_see_the_atomic_head_spinlock(kernel):
    events = []

    class Obs:
        def lock_event(self, event, lock, flags=0):
            events.append((event, lock.name))
    kernel.locking.observers.append(Obs())
    nh = AtomicNotifierHead("die_chain")
    atomic_notifier_chain_register(nh, recorder([], "a"))
    assert events == [("acquire", "die_chain.lock"), ("acquired", "die_chain.lock"),
                      ("release", "die_chain.lock")]

"""Panic on SMP and the console lock as Linux 6.1 does them (K2, C6, S1-S6).

The first tests are the four modelling errors issue 11 removed, each of which failed before:
a stopped CPU kept running, a console's write() ran with interrupts on, the console lock was
invisible to the race detector, and a reader of memconsole could not be expressed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
import trio

from ksim import (
    CON_ENABLED, DEFINE_SPINLOCK, Console, Machine, irqs_disabled, local_irq_restore,
    local_irq_save, panic, preempt_point, printk, register_console, spin_lock,
    spin_lock_irqsave, spin_unlock, spin_unlock_irqrestore,
)
from ksim.harness import attach_checkers, install_scheduler
from ksim.kernel import Kernel
from ksim.preempt import in_nmi
from ksim.strategy import RandomWalk, RoundRobin


async def smp_boot(cmdline: str, body: Callable[[Kernel], Awaitable[None]], *, cpus: int = 2,
                   seed: int = 1, pmu: bool = False, checkers: bool = False) -> Kernel:
    """Boot ``cpus`` CPUs under the deterministic scheduler and run ``body`` in the shell;
    returns the kernel, however its boot ended."""
    machine = Machine("64M", cpus=cpus, seed=seed, pmu=pmu)
    try:
        async with machine.boot(cmdline) as k:
            install_scheduler(k, RandomWalk(seed))
            if checkers:
                attach_checkers(k)
            await body(k)
        return machine.last_kernel  # type: ignore[return-value]
    finally:
        machine.close()


# -- the modelling errors -----------------------------------------------------------------

async def test_k2_a_cpu_stopped_by_the_panic_never_runs_again_and_keeps_its_locks(
        autojump_clock):
    """smp_send_stop() stops CPU 1 where it is (here at a point with interrupts on, holding
    a spinlock that disables no interrupts); it never runs again and the lock stays held."""
    lock = DEFINE_SPINLOCK("cpu1_lock")
    steps = {"after_stop": 0}

    async def body(k: Kernel) -> None:
        async def cpu1() -> None:
            await spin_lock(lock)
            while True:
                if k.panic.panic_cpu >= 0 and k.smp.stopping_cpu >= 0:
                    steps["after_stop"] += 1
                await preempt_point()

        async def cpu0() -> None:
            for _ in range(20):
                await preempt_point()
            await panic("stop them")

        k.spawn_thread(cpu1, name="holder", cpu=1)
        k.spawn_thread(cpu0, name="panicker", cpu=0)
        await trio.sleep_forever()

    k = await smp_boot("panic=0", body)
    assert k.panic_message == "stop them" and k.outcome == "halt"
    assert k.cpus[1].stopped and not k.cpus[1].online
    assert lock.owner is not None and lock.owner.cpu is k.cpus[1]
    assert steps["after_stop"] <= 1  # at most the step that was under way when it stopped
    assert "Shutting down cpus with NMI" not in k.dmesg()


async def test_c6_a_console_write_runs_with_local_interrupts_disabled(autojump_clock):
    """console_emit_next_record() calls write() inside printk_safe_enter_irqsave(), from a
    thread with interrupts on as from the boot's own printk."""
    seen: list[bool] = []

    async def write(con: Console, data: bytes) -> None:
        seen.append(irqs_disabled())

    async def body(k: Kernel) -> None:
        await register_console(Console(name="probe", write=write, flags=CON_ENABLED))

        async def thread() -> None:
            assert not irqs_disabled()
            await printk("from a thread\n")

        k.spawn_thread(thread, name="t", cpu=1)
        await k.sched.join()  # type: ignore[union-attr]
        await printk("from the shell\n")

    await smp_boot("", body)
    assert seen and all(seen)


async def test_s1_console_writes_are_serialized_by_console_sem_and_the_checkers_see_it(
        autojump_clock):
    """Two CPUs print through a console whose write keeps a counter without any lock of its
    own: the console lock serializes the writes, no update is lost, and the race detector
    (which now sees console_sem as a lock) reports nothing; lockdep-lite neither."""
    state = {"n": 0}

    async def write(con: Console, data: bytes) -> None:
        value = state["n"]
        await preempt_point()  # a read-modify-write split by a preemption point
        state["n"] = value + 1

    async def body(k: Kernel) -> None:
        await register_console(Console(name="counter", write=write, flags=CON_ENABLED))
        before = state["n"]

        async def thread(i: int) -> None:
            for j in range(10):
                await printk("thread %d line %d\n", i, j)

        for i in range(4):
            k.spawn_thread(thread, i, name=f"w{i}", cpu=i % 2)
        await k.sched.join()  # type: ignore[union-attr]
        state["lines"] = state["n"] - before

    k = await smp_boot("", body, checkers=True)
    assert state["lines"] == 40
    assert [r for r in k.reports if r.kind in ("data-race", "lockdep")] == []


# -- the console lock (S1) ------------------------------------------------------------------

async def test_s1_console_trylock_spinning_hands_the_console_to_a_spinning_waiter(autojump_clock):
    """A printk that finds the holder inside a write spins for it (console_owner) and takes
    the console over: over many seeds, some record of CPU 1 is printed by CPU 0's caller."""
    printed_by: list[tuple[str, str]] = []

    async def write(con: Console, data: bytes) -> None:
        from ksim import current
        printed_by.append((current().comm, data.decode().split("] ", 1)[-1].strip()))
        await preempt_point()

    handed = False
    for seed in range(8):
        printed_by.clear()

        async def body(k: Kernel) -> None:
            await register_console(Console(name="slow", write=write, flags=CON_ENABLED))

            async def thread(i: int) -> None:
                for j in range(6):
                    await printk("t%d m%d\n", i, j)

            for i in range(2):
                k.spawn_thread(thread, i, name=f"t{i}", cpu=i)
            await k.sched.join()  # type: ignore[union-attr]

        await smp_boot("", body, seed=seed)
        mine = [(who, text) for who, text in printed_by if text.startswith("t")]
        assert sorted(text for _, text in mine) == sorted(
            f"t{i} m{j}" for i in range(2) for j in range(6))  # each once
        handed = handed or any(who != f"t{text[1]}" for who, text in mine)
    assert handed


# -- stopping CPUs (S3) ---------------------------------------------------------------------

async def _cpu1_irqs_off_forever(k: Kernel) -> None:
    """CPU 1 spins with interrupts off on a lock CPU 2's thread holds while it sleeps; CPU 0
    panics."""
    lock = DEFINE_SPINLOCK("held")

    async def cpu2() -> None:
        await spin_lock(lock)
        await k.sched.sleep(3600)  # type: ignore[union-attr]

    async def cpu1() -> None:
        await preempt_point()
        flags = await spin_lock_irqsave(lock)
        spin_unlock_irqrestore(lock, flags)

    async def cpu0() -> None:
        for _ in range(10):
            await preempt_point()
        await panic("x")

    k.spawn_thread(cpu2, name="holder", cpu=2)
    k.spawn_thread(cpu1, name="irqs-off", cpu=1)
    k.spawn_thread(cpu0, name="panicker", cpu=0)
    await trio.sleep_forever()


async def test_s3_the_stop_ipi_waits_for_interrupts_then_the_nmi_stops_the_cpu(autojump_clock):
    k = await smp_boot("panic=0", _cpu1_irqs_off_forever, cpus=3)
    log = k.dmesg()
    assert "Shutting down cpus with NMI" in log and k.cpus[1].stopped
    panic_at = next(line for line in log.splitlines() if "Kernel panic" in line)
    nmi_at = next(line for line in log.splitlines() if "Shutting down cpus" in line)
    seconds = float(nmi_at[1:13]) - float(panic_at[1:13])
    assert 0.99 < seconds < 1.1  # "Don't wait longer than a second for IPI completion"


async def test_s3_crash_kexec_post_notifiers_stops_the_cpus_with_an_nmi_at_once(autojump_clock):
    k = await smp_boot("panic=0 crash_kexec_post_notifiers", _cpu1_irqs_off_forever, cpus=3)
    log = k.dmesg()
    assert k.cpus[1].stopped and "Shutting down cpus with NMI" not in log
    assert float(log.splitlines()[-1][1:13]) < 0.5  # no second's wait for a stop IPI


async def test_k2_a_second_cpu_that_panics_stops_in_panic_smp_self_stop(autojump_clock):
    async def body(k: Kernel) -> None:
        async def both(i: int) -> None:
            await preempt_point()
            await panic("panic %d", i)

        for i in range(2):
            k.spawn_thread(both, i, name=f"p{i}", cpu=i)
        await trio.sleep_forever()

    for seed in range(6):
        k = await smp_boot("panic=0", body, seed=seed)
        assert k.dmesg().count("] Kernel panic - not syncing") == 1
        loser = 1 - int(k.panic_message[-1])
        assert k.cpus[loser].stopped


# -- NMIs (S2, S4) --------------------------------------------------------------------------

async def test_s2_printk_in_nmi_context_only_stores_and_irq_work_prints_it(autojump_clock):
    """An NMI arrives while CPU 1 has interrupts off; its printk is stored at once but reaches
    the console only after the CPU turns interrupts back on (irq_work)."""
    got: list[str] = []
    events: list[str] = []

    async def write(con: Console, data: bytes) -> None:
        got.append(data.decode())

    async def body(k: Kernel) -> None:
        await register_console(Console(name="c", write=write, flags=CON_ENABLED))
        sched = k.sched

        async def handler(number: int, cpu: int) -> None:
            assert in_nmi() and irqs_disabled()
            await printk("from the NMI\n")
            events.append("nmi")

        async def cpu1() -> None:
            flags = local_irq_save()
            sched.raise_nmi(1, handler)  # type: ignore[union-attr]
            for _ in range(5):
                await preempt_point()
            events.append("stored" if "from the NMI" in k.dmesg() else "missing")
            events.append("printed" if any("from the NMI" in g for g in got) else "waiting")
            local_irq_restore(flags)
            await preempt_point()
            events.append("printed" if any("from the NMI" in g for g in got) else "waiting")

        k.spawn_thread(cpu1, name="t", cpu=1)
        await sched.join()  # type: ignore[union-attr]

    await smp_boot("", body)
    assert events == ["nmi", "stored", "waiting", "printed"]


@pytest.mark.parametrize(("cmdline", "panics"), [("", False), ("unknown_nmi_panic", True)])
async def test_s4_an_unknown_nmi_is_reported_and_panics_with_unknown_nmi_panic(
        autojump_clock, cmdline: str, panics: bool):
    async def body(k: Kernel) -> None:
        async def cpu1() -> None:
            k.sched.raise_nmi(1)  # type: ignore[union-attr]
            await preempt_point()
            await preempt_point()

        k.spawn_thread(cpu1, name="t", cpu=1)
        await k.sched.join()  # type: ignore[union-attr]

    k = await smp_boot(cmdline + " panic=0", body)
    log = k.dmesg()
    assert "Uhhuh. NMI received for unknown reason 00 on CPU 1." in log
    assert (k.panic_message == "NMI: Not continuing") is panics
    assert ("Dazed and confused, but trying to continue" in log) is not panics


# -- the lockup detectors (S5) ----------------------------------------------------------------

async def _spin_forever_irqs_off(k: Kernel) -> None:
    lock = DEFINE_SPINLOCK("held")

    async def holder() -> None:
        await spin_lock(lock)  # and never lets go: it sleeps, holding it
        await k.sched.sleep(10_000)  # type: ignore[union-attr]

    async def spinner() -> None:
        for _ in range(3):
            await preempt_point()
        flags = await spin_lock_irqsave(lock)
        spin_unlock_irqrestore(lock, flags)

    k.spawn_thread(holder, name="holder", cpu=1)
    k.spawn_thread(spinner, name="spinner", cpu=0)
    await k.sched.join()  # type: ignore[union-attr]


async def test_s5_the_hard_lockup_detector_needs_a_pmu(autojump_clock):
    """A CPU spinning with interrupts off: with a PMU the NMI watchdog reports it after
    watchdog_thresh seconds; without one (QEMU's TCG) nothing does."""
    with_pmu = await smp_boot("", _spin_forever_irqs_off, pmu=True)
    assert "NMI watchdog: Watchdog detected hard LOCKUP on cpu 0" in with_pmu.dmesg()
    assert [r.kind for r in with_pmu.reports].count("lockup") == 1
    without = await smp_boot("", _spin_forever_irqs_off, pmu=False)
    assert "hard LOCKUP" not in without.dmesg()
    assert "lockup" not in [r.kind for r in without.reports]


async def test_s5_hardlockup_panic_panics_from_the_nmi(autojump_clock):
    k = await smp_boot("nmi_watchdog=panic panic=0", _spin_forever_irqs_off, pmu=True)
    assert k.panic_message == "Hard LOCKUP"


# -- the console-driver checker (S6) ------------------------------------------------------------

def _driver(trylock: bool) -> tuple[Console, object]:
    from ksim import oops_in_progress, spin_trylock_irqsave
    lock = DEFINE_SPINLOCK("port_lock")

    async def write(con: Console, data: bytes) -> None:
        if trylock and oops_in_progress():
            locked, flags = spin_trylock_irqsave(lock)
        else:
            flags = await spin_lock_irqsave(lock)
            locked = True
        if locked:
            spin_unlock_irqrestore(lock, flags)

    return Console(name="port", write=write, flags=CON_ENABLED), lock


@pytest.mark.parametrize("trylock", [False, True])
async def test_s6_a_console_write_that_waits_for_its_lock_during_an_oops_is_reported_once(
        autojump_clock, trylock: bool):
    con, _ = _driver(trylock)

    async def body(k: Kernel) -> None:
        await register_console(con)
        await printk("before the panic\n")  # not during an oops: no report
        await panic("Fatal exception")

    k = await smp_boot("panic=0", body, checkers=True)
    reports = [r for r in k.reports if r.kind == "console"]
    if trylock:
        assert reports == []
        return
    assert len(reports) == 1  # the panic prints many lines through it: one report
    text = reports[0].text
    assert "WARNING: console write waits for a lock while an oops is in progress" in text
    assert "(port_lock), at: tests/test_smp_panic.py:" in text and " write" in text
    assert "printing through console port-1 while an oops is in progress" in text

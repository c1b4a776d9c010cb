"""panic(), die()/oops and reboot: K1-K8, N14-N16.  Rule ids refer to ``linux-semantics.md``."""

from __future__ import annotations

import pytest
import trio

from ksim import (
    INT_MIN, KERN_ERR, NOTIFY_OK, NOTIFY_STOP, Machine, NotifierBlock,
    atomic_notifier_chain_register, die, die_chain, kernel_halt, kernel_power_off,
    kernel_restart, panic, panic_notifier_list, printk, register_reboot_notifier,
)
from ksim.current import current_cpu, set_current
from ksim.notifier import DIE_OOPS, SYS_HALT, SYS_POWER_OFF, SYS_RESTART
from ksim.panic import TaskKilled
from ksim.printk import KMSG_DUMP_PANIC, KmsgDumper, kmsg_dump_register

NULL_DEREF = "BUG: kernel NULL pointer dereference, address: 0000000000000000"


def lines(k) -> list[str]:  # type: ignore[no-untyped-def]
    return [line[15:] for line in k.dmesg().splitlines()]


def serial_lines(k) -> list[str]:  # type: ignore[no-untyped-def]
    return [line[15:] if line.startswith("[") else line for line in
            k.serial_output().splitlines()]


async def oops_quietly() -> None:
    try:
        await die(NULL_DEREF)
    except TaskKilled:
        pass


# -- K2: panic ---------------------------------------------------------------------------------

async def test_k2_panic_order_and_lines_with_panic_0(autojump_clock):
    seen: list[tuple[int, object]] = []

    async def note(nb: NotifierBlock, action: int, data: object) -> int:
        seen.append((action, data))
        return NOTIFY_STOP  # ends the walk (N8); panic() ignores the result and goes on

    async def last(nb: NotifierBlock, action: int, data: object) -> int:
        seen.append((-1, data))
        return 0

    dumps: list[str] = []
    async with Machine("64M").boot("quiet") as k:
        atomic_notifier_chain_register(panic_notifier_list, NotifierBlock(last, INT_MIN))
        atomic_notifier_chain_register(panic_notifier_list, NotifierBlock(note, 10))
        async def dump(dumper: KmsgDumper, reason: int) -> None:
            dumps.append(reason)

        kmsg_dump_register(KmsgDumper(dump))
        await panic("disk %s on fire\n", "sda")
        raise AssertionError("panic returned")  # pragma: no cover
    msg = "disk sda on fire"
    assert k.outcome == "halt" and k.panicked and k.panic_message == msg
    assert seen == [(0, msg)] and dumps == [KMSG_DUMP_PANIC]
    out = serial_lines(k)  # console_verbose(): everything shows despite quiet
    at = out.index("Kernel panic - not syncing: " + msg)
    assert out[at + 1].startswith("CPU: 0 PID: 2 Comm: sh Not tainted 6.1.0-ksim #1")
    assert out[at + 2:at + 4] == ["Hardware name: ksim virtual machine, BIOS ksim 06/13/2009",
                                  "Call Trace:"]
    assert out[-1] == "---[ end Kernel panic - not syncing: %s ]---" % msg
    assert "Rebooting in" not in k.serial_output()
    assert [r.level for r in k.printk.log if r.text.startswith("Kernel panic")] == [0]


async def test_k2_printk_is_suppressed_after_the_trailer(autojump_clock):
    async with Machine("64M").boot("") as k:
        await panic("x")
    count = len(k.printk.log)
    with k.as_current():
        await printk(KERN_ERR + "ghost\n")
    assert len(k.printk.log) == count and "ghost" not in k.dmesg()


async def test_k2_panic_message_is_cut_to_1023_chars(autojump_clock):
    async with Machine("64M").boot("") as k:
        await panic("%s", "z" * 2000)
    assert k.panic_message == "z" * 1023


async def test_k4_positive_panic_timeout_waits_on_virtual_time_then_restarts(autojump_clock):
    async with Machine("64M").boot("panic=5") as k:
        t0 = trio.current_time()
        await panic("boom")
    assert trio.current_time() - t0 == pytest.approx(5.0)
    assert k.outcome == "restart" and k.rebooted
    out = serial_lines(k)
    assert out[-1] == "Rebooting in 5 seconds.."
    assert "---[ end Kernel panic" not in k.dmesg()


async def test_k4_negative_panic_timeout_restarts_at_once_without_reboot_chain(autojump_clock):
    called: list[int] = []

    async with Machine("64M").boot("panic=-1") as k:
        async def note(nb: NotifierBlock, action: int, data: object) -> int:
            called.append(action)
            return 0

        await register_reboot_notifier(NotifierBlock(note))
        t0 = trio.current_time()
        await panic("boom")
    assert trio.current_time() == t0 and k.outcome == "restart"
    assert called == []  # emergency_restart() skips the reboot notifiers (N15)
    assert "Rebooting in" not in k.dmesg() and "---[ end Kernel panic" not in k.dmesg()


async def test_k4_panic_timeout_from_sysfs_and_sysctl(autojump_clock):
    async with Machine("64M").boot("") as k:
        await k.write_file("/sys/module/kernel/parameters/panic", "3\n")
        assert await k.read_file("/proc/sys/kernel/panic") == b"3\n"
        await k.write_file("/proc/sys/kernel/panic", "2")
        assert await k.read_file("/sys/module/kernel/parameters/panic") == b"2\n"
        await panic("later")
    assert "Rebooting in 2 seconds.." in k.dmesg() and k.outcome == "restart"


async def test_k2_console_loglevel_0_stays_silent_even_on_panic(autojump_clock):
    async with Machine("64M").boot("loglevel=0") as k:
        await panic("unseen")
    assert "Kernel panic" in k.dmesg() and "Kernel panic" not in k.serial_output()


async def test_k2_nested_panic_from_a_notifier_does_not_recurse(autojump_clock):
    calls: list[str] = []

    async with Machine("64M").boot("") as k:
        async def boom_again(nb: NotifierBlock, action: int, data: object) -> int:
            calls.append(str(data))
            await panic("inner %d", len(calls))
            return 0

        atomic_notifier_chain_register(panic_notifier_list, NotifierBlock(boom_again))
        await panic("outer")
    assert calls == ["outer"] and k.panic_message == "outer" and k.outcome == "halt"
    out = lines(k)
    assert out.index("Kernel panic - not syncing: outer") < out.index(
        "Kernel panic - not syncing: inner 1")
    assert out[-1] == "---[ end Kernel panic - not syncing: inner 1 ]---"


async def test_k2_panic_in_every_dumper_call_stops_at_the_second_nesting(autojump_clock):
    async with Machine("64M").boot("") as k:
        async def dump(dumper: KmsgDumper, reason: int) -> None:
            await panic("from dumper")

        kmsg_dump_register(KmsgDumper(dump))
        await panic("first")
    assert k.outcome == "halt" and k.panic.panic_depth == 3
    assert k.dmesg().count("Kernel panic - not syncing: from dumper") == 2


# -- K5-K8: die() ------------------------------------------------------------------------------

async def test_k5_k8_oops_lines_in_order_then_the_task_dies(autojump_clock):
    async with Machine("64M").boot("") as k:
        with pytest.raises(TaskKilled):
            await die(NULL_DEREF)
        await printk(KERN_ERR + "still running\n")
        tainted = await k.read_file("/proc/sys/kernel/tainted")
    assert k.outcome == "shutdown" and not k.panicked and tainted == b"128\n"
    out = lines(k)
    at = out.index(NULL_DEREF)
    assert out[at + 1:at + 6] == ["#PF: supervisor write access in kernel mode",
                                  "#PF: error_code(0x0002) - not-present page",
                                  "PGD 0 P4D 0 ",
                                  "Oops: 0002 [#1] PREEMPT SMP NOPTI",
                                  "CPU: 0 PID: 2 Comm: sh Not tainted 6.1.0-ksim #1"]
    assert out[at + 7] == "RIP: 0010:sysrq_handle_crash+0x16/0x20"
    assert out[at + 8].startswith("Code: ") and out[at + 9].startswith("RSP: 0018:")
    end = out.index("---[ end trace 0000000000000000 ]---")
    assert out[end - 3:end] == [" </TASK>", "Modules linked in:", "CR2: 0000000000000000"]
    # oops_end(): the executive summary repeats RIP .. CR4 after the end marker
    assert out[end + 1:end + 12] == out[at + 7:at + 18]
    assert out[end + 12] == "still running"
    levels = {r.text: r.level for r in k.printk.log}
    assert (levels[NULL_DEREF], levels["PGD 0 P4D 0 "], levels["Oops: 0002 [#1] PREEMPT SMP NOPTI"],
            levels["---[ end trace 0000000000000000 ]---"]) == (1, 6, 4, 4)
    assert [r.kind for r in k.reports] == ["oops"]


async def test_k5_second_oops_counts_and_shows_taint(autojump_clock):
    async with Machine("64M").boot("") as k:
        await oops_quietly()
        await oops_quietly()
    out = lines(k)
    assert "Oops: 0002 [#2] PREEMPT SMP NOPTI" in out
    # the executive summary always repeats the first oops's registers (exec_summary_regs)
    rsp = [line for line in out if line.startswith("RSP: 0018:")]
    assert len(rsp) == 4 and rsp[0] == rsp[1] == rsp[3] != rsp[2]
    cpu = [line for line in lines(k) if line.startswith("CPU: 0 PID: 2 Comm: sh ")]
    assert "Not tainted" in cpu[0] and "Tainted: G" in cpu[-1] and "D" in cpu[-1]


async def test_k7_taint_string_has_19_fixed_columns(autojump_clock):
    async with Machine("64M").boot("") as k:
        await oops_quietly()
        await oops_quietly()
    cpu = [line for line in lines(k) if line.startswith("CPU: 0 PID: 2 Comm: sh ")]
    # 6.1: "Tainted: " + P/G F S R M B U D A W C I O E L K X T N, each letter or a space
    assert cpu[-1] == "CPU: 0 PID: 2 Comm: sh Tainted: G      D            6.1.0-ksim #1"


async def test_k5_n16_die_chain_notify_stop_handles_the_oops(autojump_clock):
    seen: list[tuple[int, object, str]] = []

    async with Machine("64M").boot("oops=panic") as k:
        async def handler(nb: NotifierBlock, action: int, data: object) -> int:
            seen.append((action, data, k.panic.taints))
            return NOTIFY_STOP

        atomic_notifier_chain_register(die_chain, NotifierBlock(handler))
        await die(NULL_DEREF)  # returns: no kill, no panic despite panic_on_oops
        await printk(KERN_ERR + "survived\n")
    assert seen == [(DIE_OOPS, NULL_DEREF, "")]  # taint D comes after the chain (oops_end)
    assert k.outcome == "shutdown" and not k.panicked and "D" in k.panic.taints
    assert "---[ end trace 0000000000000000 ]---" in lines(k) and "survived" in lines(k)


async def test_n16_die_notifier_output_lands_between_modules_and_cr2(autojump_clock):
    async with Machine("64M").boot("") as k:
        async def handler(nb: NotifierBlock, action: int, data: object) -> int:
            await printk(KERN_ERR + "die notifier here\n")
            return NOTIFY_OK

        atomic_notifier_chain_register(die_chain, NotifierBlock(handler))
        await oops_quietly()
    out = lines(k)
    at = out.index("die notifier here")
    assert out[at - 1] == "Modules linked in:" and out[at + 1] == "CR2: 0000000000000000"


async def test_k4_k5_oops_panic_panics_with_fatal_exception_without_stack_dump(autojump_clock):
    async with Machine("64M").boot("oops=panic") as k:
        assert await k.read_file("/proc/sys/kernel/panic_on_oops") == b"1\n"
        await die(NULL_DEREF)
    assert k.outcome == "halt" and k.panic_message == "Fatal exception"
    out = lines(k)
    at = out.index("Kernel panic - not syncing: Fatal exception")
    assert out.index("---[ end trace 0000000000000000 ]---") < at
    assert not any(line.startswith("CPU: ") for line in out[at:])  # TAINT_DIE: no dump_stack
    assert out[-1] == "---[ end Kernel panic - not syncing: Fatal exception ]---"


async def test_k4_panic_on_oops_sysctl(autojump_clock):
    async with Machine("64M").boot("") as k:
        await k.write_file("/proc/sys/kernel/panic_on_oops", "1\n")
        await die(NULL_DEREF)
    assert k.panic_message == "Fatal exception"


async def test_k5_oops_in_interrupt_and_in_init_panic(autojump_clock):
    async with Machine("64M").boot("") as k:
        current_cpu().hardirq_count += 1
        await die(NULL_DEREF)
    assert k.panic_message == "Fatal exception in interrupt"
    async with Machine("64M").boot("") as k:
        set_current(k.init_task)
        await die(NULL_DEREF)
    assert k.panic_message == "Attempted to kill init! exitcode=0x0000000b"
    assert "CPU: 0 PID: 1 Comm: init Not tainted 6.1.0-ksim #1" in lines(k)


# -- N15: reboot --------------------------------------------------------------------------------

async def test_n15_kernel_restart_runs_reboot_chain_and_keeps_ram(autojump_clock):
    calls: list[tuple[int, object]] = []
    m = Machine("64M", seed=2)
    async with m.boot("") as k:
        async def note(nb: NotifierBlock, action: int, data: object) -> int:
            calls.append((action, data))
            return 0

        await register_reboot_notifier(NotifierBlock(note))
        m.mem.write(0x800000, b"survives a warm reset")
        await kernel_restart("bootloader")
    assert calls == [(SYS_RESTART, "bootloader")] and k.outcome == "restart"
    assert lines(k)[-1] == "reboot: Restarting system with command 'bootloader'"
    assert [r.level for r in k.printk.log if r.text.startswith("reboot:")] == [0]
    async with m.boot("") as k2:
        kept = m.mem.read(0x800000, 21)
    assert kept == b"survives a warm reset" and k2.boot_kind == "warm"


async def test_n15_restart_without_command_halt_and_power_off(autojump_clock):
    calls: list[tuple[int, object]] = []

    async def note(nb: NotifierBlock, action: int, data: object) -> int:
        calls.append((action, data))
        return 0

    m = Machine("64M", seed=2)
    for action, line, outcome, event in (
            (lambda: kernel_restart(), "reboot: Restarting system", "restart", SYS_RESTART),
            (kernel_halt, "reboot: System halted", "halt", SYS_HALT),
            (kernel_power_off, "reboot: Power down", "power_off", SYS_POWER_OFF)):
        calls.clear()
        async with m.boot("") as k:
            await register_reboot_notifier(NotifierBlock(note))
            await action()
        assert calls == [(event, None)] and k.outcome == outcome
        assert serial_lines(k)[-1] == line
    async with m.boot("") as k:
        pass
    assert k.boot_kind == "cold"  # power was cut


async def test_n15_reboot_halt_and_power_off_dump_with_kmsg_dump_shutdown(autojump_clock):
    # 6.1's kernel_restart/halt/power_off call kmsg_dump(KMSG_DUMP_SHUTDOWN) after their
    # console line; only a dumper whose max_reason reaches SHUTDOWN takes it
    from ksim.printk import KMSG_DUMP_SHUTDOWN
    for action in (lambda: kernel_restart(), kernel_halt, kernel_power_off):
        wants: list[int] = []
        default: list[int] = []

        async def dump_wants(dumper: KmsgDumper, reason: int) -> None:
            wants.append(reason)

        async def dump_default(dumper: KmsgDumper, reason: int) -> None:
            default.append(reason)

        async with Machine("64M").boot("") as k:
            kmsg_dump_register(KmsgDumper(dump_wants, max_reason=KMSG_DUMP_SHUTDOWN))
            kmsg_dump_register(KmsgDumper(dump_default))
            await action()
        assert wants == [KMSG_DUMP_SHUTDOWN] and default == [], k.outcome

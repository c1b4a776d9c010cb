"""The console registry: console= (C3), register/unregister (C4, C5), delivery (C6),
/proc/consoles (C7), extended consoles (C2).  Rule ids refer to ``linux-semantics.md``."""

from __future__ import annotations

import trio

from ksim import (
    CON_ANYTIME, CON_BOOT, CON_CONSDEV, CON_ENABLED, CON_EXTENDED, CON_PRINTBUFFER, ENODEV,
    KERN_DEBUG, KERN_ERR, KERN_INFO, Console, KernelModule, Machine, die, printk,
    register_console, unregister_console,
)
from ksim.kernel import Kernel
from ksim.testing import standalone_kernel
from ksim.panic import TaskKilled
from ksim.printk import record_print_text


class Sink:
    """A console driver that records what it is given, and the options of its setup()."""

    def __init__(self, name: str, index: int = -1, flags: int = 0, device: bool = True,
                 fail_setup: bool = False) -> None:
        self.data = bytearray()
        self.options: list[str | None] = []
        self.fail_setup = fail_setup
        self.con = Console(name, write=self.write, flags=flags, index=index, setup=self.setup,
                           device=self.device if device else None)

    async def write(self, con: Console, data: bytes) -> None:
        self.data += data

    @staticmethod
    async def device(con: Console) -> tuple[int, int]:
        return 250, con.index

    async def setup(self, con: Console, options: str | None) -> int:
        self.options.append(options)
        return -ENODEV if self.fail_setup else 0

    @property
    def text(self) -> str:
        return self.data.decode()


async def consoles(k) -> list[str]:  # type: ignore[no-untyped-def]
    return (await k.read_file("/proc/consoles")).decode().splitlines()


# -- C4c: no console= --------------------------------------------------------------------------

async def test_c4c_first_console_with_device_becomes_consdev(autojump_clock):
    async with Machine("64M").boot("") as k:
        late = Sink("late")
        await register_console(late.con)
        assert await consoles(k) == ["ttyS0                -W- (EC p a)    4:64"]
        assert k.printk.dev_console is k.printk.find_console("ttyS")
    assert late.text == "" and not late.con.flags & CON_ENABLED  # C4e: silently dropped
    assert "late" not in k.dmesg()


async def test_c4c_a_first_console_without_device_does_not_satisfy_the_preference():
    nodev, dev, third = Sink("nodev", device=False), Sink("dev"), Sink("third")
    with standalone_kernel() as k:  # no console registered yet, no console=
        for s in (nodev, dev, third):
            await register_console(s.con)
    assert [c.label for c in k.printk.console_drivers] == ["dev0", "nodev0"]
    assert nodev.con.flags & CON_ENABLED and dev.con.flags & CON_CONSDEV
    assert not nodev.con.flags & CON_CONSDEV and not third.con.flags & CON_ENABLED
    assert nodev.options == [None] and third.options == []


async def test_c4c_failing_setup_is_not_enabled_and_the_next_one_is():
    bad, good = Sink("bad", fail_setup=True), Sink("good")
    with standalone_kernel() as k:
        await register_console(bad.con)
        assert "bad" not in k.dmesg()
        await register_console(good.con)
    assert [c.label for c in k.printk.console_drivers] == ["good0"]


# -- C3 / C4d: console= ------------------------------------------------------------------------

async def test_c4d_last_console_entry_is_consdev_and_heads_the_list(autojump_clock):
    async with Machine("64M").boot("console=ttyS0 console=foo3,9600n8") as k:
        foo = Sink("foo")
        await register_console(foo.con)
        assert foo.con.index == 3 and foo.options == ["9600n8"]  # index -1 adopts the entry's
        assert await consoles(k) == ["foo3                 -W- (EC    )  250:3",
                                     "ttyS0                -W- (E  p a)    4:64"]
        assert k.printk.dev_console is foo.con
        await printk(KERN_ERR + "to both\n")
    assert "to both" in foo.text and "to both" in k.serial_output()
    assert "Linux version" not in foo.text  # no CON_PRINTBUFFER: only new records
    assert foo.text.startswith("[") and "printk: console [foo3] enabled" in foo.text


async def test_c3_repeated_console_reselects_without_a_new_entry(autojump_clock):
    async with Machine("64M").boot("console=ttyS0,1 console=foo0 console=ttyS0,2") as k:
        assert [(e.name, e.index, e.options) for e in k.printk.console_cmdline] == [
            ("ttyS", 0, "1"), ("foo", 0, None)]
        assert k.printk.preferred_console == 0
        foo = Sink("foo", index=0)
        await register_console(foo.con)
        assert await consoles(k) == ["ttyS0                -W- (EC p a)    4:64",
                                     "foo0                 -W- (E     )  250:0"]


async def test_c4d_index_mismatch_and_setup_failure_leave_console_out(autojump_clock):
    async with Machine("64M").boot("console=foo1 console=bar0,x") as k:
        assert k.serial_output() == ""  # ttyS0 matches no entry: not enabled (C4d/e)
        wrong = Sink("foo", index=0)
        failing = Sink("bar", fail_setup=True)
        await register_console(wrong.con)
        await register_console(failing.con)
        assert await consoles(k) == [] and failing.options == ["x"]
        right = Sink("foo", index=1)
        await register_console(right.con)
        assert await consoles(k) == ["foo1                 -W- (EC    )  250:1"]


async def test_c3_digit_start_means_ttys_and_options_reach_setup(autojump_clock):
    async with Machine("64M").boot("console=0,115200n8") as k:
        pass
    assert "printk: console [ttyS0] enabled" in k.serial_output()
    assert (k.printk.console_cmdline[0].name, k.printk.console_cmdline[0].options) == ("ttyS", "115200n8")


async def test_c4d_console_on_a_missing_port_stays_disabled(autojump_clock):
    async with Machine("64M").boot("console=ttyS1") as k:
        await printk(KERN_ERR + "nobody hears\n")
        assert await consoles(k) == []
    assert k.serial_output() == "" and "nobody hears" in k.dmesg()


# -- C4a / C4b / C4h: duplicates and boot consoles ---------------------------------------------

async def test_c4a_registering_twice_warns_and_taints(autojump_clock):
    async with Machine("64M").boot("") as k:
        serial = k.printk.find_console("ttyS")
        assert serial is not None
        await register_console(serial)
        await printk(KERN_ERR + "once\n")
        tainted = await k.read_file("/proc/sys/kernel/tainted")
        listing = await consoles(k)
    out = k.dmesg()
    assert "------------[ cut here ]------------" in out
    assert "console 'ttyS0' already registered" in out and "WARNING: CPU: 0 PID: " in out
    assert tainted == b"512\n" and [r.kind for r in k.reports] == ["warning"]
    assert len(listing) == 1 and k.serial_output().count("once\n") == 1


async def test_c4b_boot_console_after_a_real_one_is_too_late(autojump_clock):
    async with Machine("64M").boot("") as k:
        early = Sink("early", index=0, flags=CON_BOOT | CON_ENABLED)
        await register_console(early.con)
        assert await consoles(k) == ["ttyS0                -W- (EC p a)    4:64"]
    assert "printk: Too late to register bootconsole early0" in k.dmesg()
    assert early.text == ""


class EarlyCon(KernelModule):
    """Registers a boot console at the first initcall level (like an earlycon)."""

    name = "earlycon"
    initcall = "early"

    def __init__(self, kernel, builtin):  # type: ignore[no-untyped-def]
        super().__init__(kernel, builtin)
        self.sink = Sink("early", index=0, flags=CON_BOOT | CON_ENABLED | CON_PRINTBUFFER,
                         device=False)

    async def init(self) -> int:
        await register_console(self.sink.con)
        return 0


async def test_c4h_real_preferred_console_replaces_boot_consoles(autojump_clock):
    async with Machine("64M").boot("console=foo0", [EarlyCon]) as k:
        early = k.module.live["earlycon"].sink
        # modern printk_late_init keeps a boot console outside init memory (C4h)
        assert await consoles(k) == ["early0               -W- (ECBp  )"]
        assert "Linux version" in early.text  # CON_PRINTBUFFER replay
        foo = Sink("foo", index=0, flags=CON_PRINTBUFFER)
        await register_console(foo.con)
        assert await consoles(k) == ["foo0                 -W- (EC    )  250:0"]
        await printk(KERN_ERR + "only foo\n")
    assert not foo.con.flags & CON_PRINTBUFFER  # no second replay of the boot messages
    assert "Linux version" not in foo.text and "only foo" in foo.text
    # the boot console printed the newcomer's "enabled" and its own "disabled", then left
    assert early.text.endswith("printk: console [foo0] enabled\n"
                               + early.text.splitlines()[-1][:15]
                               + "printk: bootconsole [early0] disabled\n")
    assert "only foo" not in early.text and not early.con.flags & CON_ENABLED
    lines = [line[15:] for line in k.dmesg().splitlines()]
    assert lines.index("printk: console [foo0] enabled") + 1 == lines.index(
        "printk: bootconsole [early0] disabled")


async def test_c4h_keep_bootcon_and_non_preferred_consoles_keep_the_boot_console(autojump_clock):
    async with Machine("64M").boot("console=bar0 console=foo0 keep_bootcon", [EarlyCon]) as k:
        assert "printk: debug: skip boot console de-registration." in k.dmesg()
        bar = Sink("bar", index=0)  # not the preferred (last) entry: never replaces bootcons
        await register_console(bar.con)
        assert len(await consoles(k)) == 2
        foo = Sink("foo", index=0)
        await register_console(foo.con)
        listing = await consoles(k)
        await printk(KERN_ERR + "to all three\n")
    # foo (CON_CONSDEV) heads the list; bar went in second, behind the then-head early0 (C4f)
    assert listing == ["foo0                 -W- (EC    )  250:0",
                       "early0               -W- (E Bp  )",
                       "bar0                 -W- (E     )  250:0"]
    early = k.module.live["earlycon"].sink
    assert all("to all three" in s.text for s in (early, bar, foo))


# -- C5: unregister ----------------------------------------------------------------------------

async def test_c5_unregister_logs_first_passes_consdev_and_reports_enodev(autojump_clock):
    async with Machine("64M").boot("console=ttyS0 console=foo0") as k:
        foo = Sink("foo", index=0)
        await register_console(foo.con)
        assert await unregister_console(foo.con) == 0
        assert await consoles(k) == ["ttyS0                -W- (EC p a)    4:64"]
        assert not foo.con.flags & (CON_ENABLED | CON_CONSDEV)
        assert await unregister_console(foo.con) == -ENODEV
        await printk(KERN_ERR + "after\n")
    assert foo.text.endswith("printk: console [foo0] disabled\n")  # it printed its own end
    assert "after" not in foo.text
    assert k.dmesg().count("printk: console [foo0] disabled") == 2  # logged even when absent


# -- C6: delivery ------------------------------------------------------------------------------

async def test_c6_every_console_gets_each_record_once_in_order(autojump_clock):
    out: list[bytes] = []

    async def slow(con: Console, data: bytes) -> None:
        out.append(data)
        await trio.sleep(0.001)

    async with Machine("64M").boot("") as k:
        await register_console(Console("slow", write=slow, flags=CON_ENABLED | CON_PRINTBUFFER,
                                       index=0))

        async def writer(tag: str) -> None:
            for i in range(50):
                await printk(KERN_ERR + "%s%02d\n", tag, i)
                await trio.sleep(0)

        async with trio.open_nursery() as nursery:
            for tag in "abc":
                nursery.start_soon(writer, tag)
        await trio.sleep(1)
    shown = "".join(record_print_text(r) for r in k.printk.log if r.level < 7)
    assert b"".join(out).decode() == shown == k.serial_output()
    assert sum(line[15:17] in ("a0", "a1", "a2", "a3", "a4") for line in shown.splitlines()) == 50


async def test_c6_per_console_loglevel_and_console_verbose(autojump_clock):
    async with Machine("64M").boot("console=ttyS0,115200/loglevel:3") as k:
        await printk(KERN_ERR + "err\n")
        await printk("\x012crit\n")
        try:
            await die("BUG: test oops")
        except TaskKilled:
            pass
        await printk(KERN_INFO + "info after oops\n")
    out = k.serial_output()
    assert "crit" in out and "] err\n" not in out
    assert "Oops: 0002 [#1]" in out and "info after oops" in out  # console_verbose wins


async def test_c6_suppressed_records_are_skipped_not_delayed(autojump_clock):
    async with Machine("64M").boot("") as k:
        seq = k.printk.find_console("ttyS").seq  # type: ignore[union-attr]
        await printk(KERN_DEBUG + "dbg\n")
        assert k.printk.find_console("ttyS").seq == seq + 1  # type: ignore[union-attr]
        await k.write_file("/proc/sys/kernel/printk", "8")
        await printk(KERN_ERR + "next\n")
    assert "dbg" not in k.serial_output()


# -- C2 / C7: extended consoles, /proc/consoles ------------------------------------------------

async def test_c2_extended_console_gets_dev_kmsg_lines(autojump_clock):
    got = bytearray()
    async with Machine("64M").boot("") as k:
        async def netcon_write(con: Console, data: bytes) -> None:
            got.extend(data)

        await register_console(Console("netcon", write=netcon_write,
                                       flags=CON_ENABLED | CON_EXTENDED, index=0))
        await printk(KERN_ERR + "tab\there\n")
    lines = got.decode().splitlines()
    assert lines[-1].startswith("3,") and lines[-1].endswith(",-;tab\\x09here")
    assert lines[0].endswith(",-;printk: console [netcon0] enabled")


async def test_c7_proc_consoles_columns_and_flags(autojump_clock):
    async with Machine("64M").boot("") as k:
        async def unblank(con: Console) -> None:
            pass

        long_name = Console("abcdefghijklmno", write=None, read=lambda *a: 0,
                            unblank=unblank, index=123456,
                            flags=CON_ENABLED | CON_ANYTIME | CON_PRINTBUFFER)
        await register_console(long_name)
        listing = await consoles(k)
    assert listing == ["ttyS0                -W- (EC p a)    4:64",
                       "abcdefghijklmno123456 R-U (E  p a)"]
    assert all(len(line.split(" (")[0]) >= 24 for line in listing)


async def test_c4g_printbuffer_replay_starts_at_syslog_seq_and_reports_lost_records(autojump_clock):
    """6.1 register_console(): ``newcon->seq = syslog_seq`` (0 without a syslog reader), so a
    replay after the ring wrapped begins with the dropped count (C4g, C13).  The replay is
    the console_unlock() inside register_console, before ``enabled`` is logged."""
    async with Machine("64M").boot("") as k:
        for i in range(8000):
            await printk(KERN_ERR + "m%05d\n" % i)
        first = k.printk.log.first_seq
        assert first > 0
        oldest = k.printk.log.get(first).text  # type: ignore[union-attr]
        late = Sink("late", index=0, flags=CON_ENABLED | CON_PRINTBUFFER)
        await register_console(late.con)
    lines = late.text.splitlines()
    assert lines[0] == "** %d printk messages dropped **" % first
    assert lines[1][15:] == oldest
    assert lines[-1].endswith("printk: console [late0] enabled")
    assert late.text.count("dropped") == 1

"""The boot command line end to end (P1-P13, C10, C16, M-rules for mem=/memtest).

Each test boots a machine and checks what a real 6.x kernel shows for the same line: init's
argv/envp as ``/proc/1/cmdline`` / ``/proc/1/environ`` byte for byte, ``/proc/cmdline``,
the log lines and their order.  Rule ids refer to ``linux-semantics.md``.
"""

from __future__ import annotations

from ksim import EINVAL, KERN_DEBUG, KernelError, KernelModule, Machine, early_param, printk, \
    setup
from ksim.setup import KERNEL_IMAGE_START
from ksim.printk import LOG_BUF_LEN_DEFAULT

UNKNOWN = 'Unknown kernel command line parameters "%s", will be passed to user space.'


async def boot(cmdline: str, plugins=(), ram: str = "64M"):  # type: ignore[no-untyped-def]
    """Boot, read init's vectors and a few files; returns (kernel, files by path)."""
    files: dict[str, bytes] = {}
    async with Machine(ram, seed=1).boot(cmdline, plugins) as k:
        if k.outcome == "running":
            for path in ("/proc/1/cmdline", "/proc/1/environ", "/proc/cmdline",
                         "/proc/sys/kernel/printk"):
                files[path] = await k.read_file(path)
    return k, files


def lines(k) -> list[str]:  # type: ignore[no-untyped-def]
    """dmesg without timestamps."""
    return [line[15:] for line in k.dmesg().splitlines()]


# -- P6/P7: unknown options become init's argv and envp ----------------------------------------

async def test_p6_p7_init_argv_envp_byte_for_byte(autojump_clock):
    k, f = await boot('console=ttyS0 splash foo=bar HOME=/root quiet "a b=c" x.y=1 '
                      'TERM=vt100 splash drm.debug=0x1e a=b.c')
    assert f["/proc/1/cmdline"] == b"/sbin/init\0splash\0splash\0"
    # HOME and TERM are replaced in place (P7: name= prefix, last wins); a '.' only in the
    # *value* is not a module parameter (P6 step 4), a '.' in the name is.
    assert f["/proc/1/environ"] == b"HOME=/root\0TERM=vt100\0foo=bar\0a b=c\0a=b.c\0"
    assert k.init.init_argv == ["/sbin/init", "splash", "splash"]


async def test_p10_unknown_summary_lists_argv_then_new_envp_only(autojump_clock):
    """P10: argv[1..] then envp[2..]; HOME=/TERM= replacements sit in slots 0/1, not listed."""
    k, _ = await boot("HOME=/root b=1 splash nosmt=force TERM=xterm")
    assert UNKNOWN % "splash b=1 nosmt=force" in lines(k)
    assert sum("Unknown kernel command line" in line for line in lines(k)) == 1


async def test_p10_no_summary_when_nothing_is_passed_on(autojump_clock):
    k, _ = await boot("console=ttyS0 quiet loglevel=7 x.y=3 HOME=/")
    assert not any("Unknown kernel command line" in line for line in lines(k))
    # HOME=/ replaces HOME=/ in slot 0: still nothing beyond the defaults
    assert k.init.init_envp == ["HOME=/", "TERM=linux"]


async def test_p2_p6_quoted_values_reach_init_without_their_quotes(autojump_clock):
    k, f = await boot('foo="a b" "x y" bar=c"d e"f')
    assert f["/proc/1/environ"] == b'HOME=/\0TERM=linux\0foo=a b\0bar=c"d e"f\0'
    assert f["/proc/1/cmdline"] == b"/sbin/init\0x y\0"


async def test_p1_proc_cmdline_is_the_raw_line_plus_newline(autojump_clock):
    line = 'a  "b c"   d=e -- f'
    _, f = await boot(line)
    assert f["/proc/cmdline"] == (line + "\n").encode()


async def test_p1_b7_a_2047_character_line_boots_and_printk_cuts_its_lines_at_989(
        autojump_clock):
    """P1, D7: 2047 characters fit COMMAND_LINE_SIZE with their NUL; /proc/cmdline has them
    all, while each printk of the line keeps 989 characters (LOG_LINE_MAX - 1 with the
    level prefix), as 6.1 does (oracle F3: ``Command line: `` + 975 characters)."""
    line = "x" * 2047
    k, f = await boot(line)
    assert f["/proc/cmdline"] == b"x" * 2047 + b"\n"
    assert "Command line: " + "x" * 975 in lines(k)
    assert "Kernel command line: " + "x" * 968 in lines(k)
    record = next(r for r in k.printk.log if r.text.startswith("Kernel command line: "))
    assert len(record.text) == 989 and record.flags == 0


async def test_p1_a_2048_character_line_traps_in_start_kernel_silently(autojump_clock):
    """P1: copy_bootdata() copies 2048 bytes and finds no NUL; the fortified strlen() in
    setup_command_line() BUGs before any console exists, so the machine stops with nothing on
    its serial line (oracle F3)."""
    for length in (2048, 3000):
        k, f = await boot("x" * length)
        assert k.outcome == "halt" and not f
        out = lines(k)
        assert "Command line: " + "x" * 975 in out
        at = out.index("detected buffer overflow in __fortify_strlen")
        assert out[at + 1:at + 3] == ["------------[ cut here ]------------",
                                      "kernel BUG at lib/string_helpers.c:1027!"]
        assert not any(line.startswith("Kernel command line") for line in out)
        assert k.serial_output() == ""


async def test_p1_earlyprintk_shows_the_2048_character_trap(autojump_clock):
    """With ``earlyprintk=serial`` the boot console shows the BUG and the early exception."""
    head = "earlyprintk=serial,ttyS0,115200 x="
    k, _ = await boot(head + "A" * (2048 - len(head)))
    serial = k.serial_output()
    assert "printk: bootconsole [earlyser0] enabled" in serial
    assert "kernel BUG at lib/string_helpers.c:1027!" in serial
    assert "PANIC: early exception 0x06 IP 10:" in serial
    assert "early exception" not in k.dmesg()  # early_printk() bypasses the log


async def test_p1_boot_log_order(autojump_clock):
    """P1: banner, x86 ``Command line:``, the e820 map, early params (their messages), the
    ``user:`` map after mem=, then ``Kernel command line:``, then the unknown summary."""
    k, _ = await boot("mem=32M ignore_loglevel splash")
    out = lines(k)
    order = [out.index(s) for s in (
        "Command line: mem=32M ignore_loglevel splash",
        "BIOS-provided physical RAM map:",
        "BIOS-e820: [mem 0x0000000000100000-0x0000000003fdffff] usable",
        "printk: debug: ignoring loglevel setting.",
        "user-defined physical RAM map:",
        "user: [mem 0x0000000000100000-0x0000000001ffffff] usable",
        "Kernel command line: mem=32M ignore_loglevel splash",
        UNKNOWN % "splash",
        "printk: console [ttyS0] enabled",
        "Run /sbin/init as init process")]
    assert order == sorted(order)
    assert out[0].startswith("Linux version 6.1.0-ksim ")


async def test_p1_run_init_process_lists_argv_and_envp_at_debug(autojump_clock):
    k, _ = await boot("splash foo=1")
    out = lines(k)
    at = out.index("Run /sbin/init as init process")
    assert out[at + 1:at + 8] == ["  with arguments:", "    /sbin/init", "    splash",
                                  "  with environment:", "    HOME=/", "    TERM=linux",
                                  "    foo=1"]
    assert [r.level for r in k.printk.log if r.text == "    splash"] == [7]


# -- P4: -- ------------------------------------------------------------------------------------

async def test_p4_everything_after_dashes_goes_to_argv_untouched_by_kernel(autojump_clock):
    k, f = await boot('splash -- quiet console=ttyS1 "d e" x.y=2 -- f')
    # quiet and console= after -- are not kernel options (not even early ones)
    assert f["/proc/sys/kernel/printk"] == b"7\t4\t1\t7\n"
    assert "printk: console [ttyS0] enabled" in lines(k)
    # set_init_arg(): '=' restored, quotes stripped; parsing stops at a second --
    assert f["/proc/1/cmdline"] == b"/sbin/init\0splash\0quiet\0console=ttyS1\0d e\0x.y=2\0"
    # the summary is printed before the after-dashes words are added (P10 before P4)
    assert UNKNOWN % "splash" in lines(k)


async def test_p4_a_bad_value_before_dashes_drops_the_init_args(autojump_clock):
    """parse_args() returns ``err ?: args``: an error before ``--`` loses what follows."""
    k, f = await boot("panic=abc splash -- a b")
    assert "Booting kernel: `abc' invalid for parameter `panic'" in lines(k)
    assert f["/proc/1/cmdline"] == b"/sbin/init\0splash\0"
    k, f = await boot("splash -- a b panic=abc")
    assert f["/proc/1/cmdline"] == b"/sbin/init\0splash\0a\0b\0panic=abc\0"


async def test_p4_trailing_dashes_is_harmless(autojump_clock):
    _, f = await boot("a --")
    assert f["/proc/1/cmdline"] == b"/sbin/init\0a\0"


# -- P8: too many init args / env vars ---------------------------------------------------------

async def test_p8_32_args_fit_the_33rd_panics_after_console_init(autojump_clock):
    args = " ".join("a%d" % i for i in range(1, 33))
    k, f = await boot(args)
    assert f["/proc/1/cmdline"].count(b"\0") == 33 and k.outcome == "shutdown"
    k, _ = await boot(args + " a33 a34 e=1")
    assert k.outcome == "halt" and k.panic_message == "Too many boot init vars at `a33'"
    out = lines(k)
    # no summary with a panic pending; the panic comes after the console is up
    assert not any("Unknown kernel command line" in line for line in out)
    assert out.index("printk: console [ttyS0] enabled") < out.index(
        "Kernel panic - not syncing: Too many boot init vars at `a33'")
    assert "Kernel panic - not syncing: Too many boot init vars at `a33'" in k.serial_output()
    assert "Run /sbin/init as init process" not in out
    # oracle F1: in start_kernel right after console_init, as the idle task, before the
    # secondary CPUs come up and before x86's kernel-offset notifier is registered
    at = out.index("printk: console [ttyS0] enabled")
    assert out[at + 1] == "Kernel panic - not syncing: Too many boot init vars at `a33'"
    assert out[at + 2].startswith("CPU: 0 PID: 0 Comm: swapper/0 ")
    assert not any(line.startswith(("smp: ", "Kernel Offset")) for line in out)


async def test_p8_env_limit_is_home_term_plus_31(autojump_clock):
    envs = " ".join("e%d=1" % i for i in range(1, 32))
    k, f = await boot(envs)
    assert f["/proc/1/environ"].count(b"\0") == 33 and k.outcome == "shutdown"
    k, _ = await boot(envs + " e32=x e33=y")
    assert k.panic_message == "Too many boot env vars at `e32=x'"
    assert k.outcome == "halt"


async def test_p8_after_dashes_args_count_towards_the_limit(autojump_clock):
    k, _ = await boot("-- " + " ".join("a%d" % i for i in range(1, 34)))
    assert k.panic_message == "Too many boot init vars at `a33'"


# -- P9: init= / rdinit= -----------------------------------------------------------------------

async def test_p9_init_discards_earlier_bare_options_keeps_later(autojump_clock):
    k, f = await boot("auto single init=/bin/sh emergency x=1")
    assert f["/proc/1/cmdline"] == b"/bin/sh\0emergency\0"
    assert f["/proc/1/environ"] == b"HOME=/\0TERM=linux\0x=1\0"
    assert k.init_task.comm == "sh"
    assert "Run /bin/sh as init process" in lines(k)
    assert UNKNOWN % "emergency x=1" in lines(k)


async def test_p9_rdinit_clears_argv_but_without_initramfs_init_runs(autojump_clock):
    _, f = await boot("a rdinit=/init b")
    assert f["/proc/1/cmdline"] == b"/sbin/init\0b\0"


async def test_p9_missing_init_is_announced_then_panics(autojump_clock):
    k, _ = await boot("init=/no/such")
    out = lines(k)
    assert out.index("Run /no/such as init process") < out.index(
        "Kernel panic - not syncing: Requested init /no/such failed (error -2).")
    assert k.outcome == "halt"


# -- P11: __setup return value; P12: early_param -----------------------------------------------

class Handlers(KernelModule):
    name = "handlers"

    def __init__(self, kernel, builtin):  # type: ignore[no-untyped-def]
        super().__init__(kernel, builtin)
        self.got: list[tuple[str, object]] = []

    @setup("leak=")
    async def leak(self, value: str) -> int:
        self.got.append(("leak", value))
        return 0  # the classic bug: "not handled"

    @setup("my_eat=")
    async def eat(self, value: str) -> int:
        self.got.append(("eat", value))
        return 1

    @setup("pre")
    async def prefix(self, value: str) -> int:
        self.got.append(("pre", value))
        return 1

    @early_param("early")
    async def early(self, value: str | None) -> int:
        self.got.append(("early", value))
        return 0 if value != "bad" else -22

    @early_param("early")
    async def early_too(self, value: str | None) -> int:
        self.got.append(("early2", value))
        return 0


async def test_p11_setup_returning_zero_leaks_into_init_env(autojump_clock):
    k, f = await boot("leak=1 my_eat=2 leak-bare", [Handlers])
    mod = k.module.live["handlers"]
    assert ("leak", "1") in mod.got and ("eat", "2") in mod.got
    assert f["/proc/1/environ"] == b"HOME=/\0TERM=linux\0leak=1\0"
    assert f["/proc/1/cmdline"] == b"/sbin/init\0leak-bare\0"
    assert UNKNOWN % "leak-bare leak=1" in lines(k)


async def test_p11_setup_matches_by_prefix_and_dash_equivalence(autojump_clock):
    """``__setup("pre")`` also takes ``prefix`` and ``pre=x`` (P11); ``my-eat=`` is ``my_eat=``."""
    k, f = await boot("prefix pre=x my-eat=3", [Handlers])
    assert k.module.live["handlers"].got == [("pre", "fix"), ("pre", "=x"), ("eat", "3")]
    assert f["/proc/1/cmdline"] == b"/sbin/init\0"


async def test_p12_every_early_handler_runs_whole_name_only(autojump_clock):
    k, f = await boot("early=1 earlyish=2 early", [Handlers])
    got = k.module.live["handlers"].got
    assert got == [("early", "1"), ("early2", "1"), ("early", None), ("early2", None)]
    # consumed by the normal pass too (P6 step 3); earlyish is not an early param
    assert f["/proc/1/environ"] == b"HOME=/\0TERM=linux\0earlyish=2\0"


async def test_p12_malformed_early_option_warns_and_boot_goes_on(autojump_clock):
    k, f = await boot("early=bad loglevel= memtest=abc mem=0 oops splash", [Handlers])
    out = lines(k)
    for name in ("early", "loglevel", "memtest", "mem", "oops"):
        assert "Malformed early option '%s'" % name in out
    assert [r.level for r in k.printk.log if r.text == "Malformed early option 'mem'"] == [4]
    assert k.outcome == "shutdown" and f["/proc/1/cmdline"] == b"/sbin/init\0splash\0"
    assert f["/proc/sys/kernel/printk"] == b"7\t4\t1\t7\n"  # loglevel= left it alone


# -- P13: loglevel / quiet / debug in command-line order ---------------------------------------

async def test_p13_last_of_quiet_debug_loglevel_wins(autojump_clock):
    for line, level in (("debug quiet", 4), ("quiet debug", 10), ("quiet loglevel=0x3", 3),
                        ("loglevel=2 debug", 10), ("loglevel=3 loglevel", 3), ("", 7)):
        k, f = await boot(line)
        assert f["/proc/sys/kernel/printk"] == b"%d\t4\t1\t7\n" % level, line
        assert f["/proc/1/cmdline"] == b"/sbin/init\0", line


async def test_p13_early_names_are_case_sensitive(autojump_clock):
    _, f = await boot("Quiet LOGLEVEL=1")
    assert f["/proc/sys/kernel/printk"] == b"7\t4\t1\t7\n"
    assert f["/proc/1/cmdline"] == b"/sbin/init\0Quiet\0"
    assert f["/proc/1/environ"] == b"HOME=/\0TERM=linux\0LOGLEVEL=1\0"


async def test_c6_p13_quiet_filters_the_serial_console_not_the_log(autojump_clock):
    async with Machine("64M").boot("quiet") as k:
        await printk("\x015notice here\n")
        await printk("\x013error here\n")
    assert "notice here" in k.dmesg() and "notice here" not in k.serial_output()
    assert "error here" in k.serial_output()
    # "Kernel command line" is NOTICE (5): filtered at quiet (4)
    assert "Kernel command line" not in k.serial_output()


# -- C10 / C16: ignore_loglevel, log_buf_len ---------------------------------------------------

async def test_c10_ignore_loglevel_prints_everything_until_switched_off(autojump_clock):
    async with Machine("64M").boot("loglevel=1 ignore-loglevel") as k:
        assert "printk: debug: ignoring loglevel setting." in k.serial_output()
        await printk(KERN_DEBUG + "debug one\n")
        path = "/sys/module/printk/parameters/ignore_loglevel"
        assert await k.read_file(path) == b"Y\n"
        await k.write_file(path, "N\n")
        await printk(KERN_DEBUG + "debug two\n")
    assert "debug one" in k.serial_output() and "debug two" not in k.serial_output()
    assert "debug two" in k.dmesg()


async def test_c16_log_buf_len_rounds_up_and_only_grows(autojump_clock):
    k, _ = await boot("log_buf_len=200000")
    assert k.printk.log.size == 262144
    out = lines(k)
    assert "printk: log_buf_len: 262144 bytes" in out
    free = [line for line in out if line.startswith("printk: early log buf free: ")]
    assert len(free) == 1 and free[0].endswith("%)")
    # setup_log_buf(1) runs in setup_arch: before "Kernel command line"
    assert out.index("printk: log_buf_len: 262144 bytes") < out.index(
        "Kernel command line: log_buf_len=200000")
    k, _ = await boot("log_buf_len=64K")
    assert k.printk.log.size == LOG_BUF_LEN_DEFAULT
    assert not any("log_buf_len" in line and "bytes" in line for line in lines(k))
    k, _ = await boot("log-buf-len=1M log_buf_len=2M")
    assert k.printk.log.size == 2 << 20


async def test_c16_log_buf_len_without_value_is_malformed(autojump_clock):
    k, _ = await boot("log_buf_len")
    assert "Malformed early option 'log_buf_len'" in lines(k)


# -- mem= and memtest --------------------------------------------------------------------------

async def test_e2_mem_limits_ram_and_is_consumed(autojump_clock):
    """E2: mem=32M removes the RAM above 32 MiB (the kernel's own range stays RAM)."""
    k, f = await boot("mem=32M nokaslr", ram="64M")
    assert k.layout is not None and k.layout.max_pfn == (32 << 20) // 4096
    memory = [line for line in lines(k) if line.startswith("Memory: ")]
    # present pages: 0x1..0x9e and 0x100..0x1fff
    assert len(memory) == 1 and "K/32376K available (" in memory[0]
    assert memory[0].endswith("K reserved, 0K cma-reserved)")
    assert f["/proc/1/environ"] == b"HOME=/\0TERM=linux\0"


async def test_e2_mem_larger_than_ram_prints_the_unchanged_user_map(autojump_clock):
    """E2: parse_memopt() sets userdef before it looks at the size, so any mem= prints the
    ``user:`` map, here identical to the firmware's."""
    k, _ = await boot("mem=1G", ram="64M")
    assert k.layout is not None and k.layout.max_pfn == 0x3FE0
    out = lines(k)
    bios = [line[len("BIOS-e820: "):] for line in out if line.startswith("BIOS-e820: ")]
    user = [line[len("user: "):] for line in out if line.startswith("user: ")]
    assert "user-defined physical RAM map:" in out and user == bios


async def test_memtest_prints_passes_and_leaves_free_ram_zeroed(autojump_clock):
    """memtest tests what memblock has free when the direct map is set up: from 1 MiB to the
    kernel and from the end of its brk to the top (oracle F9); the last pass writes 0."""
    m = Machine("64M", seed=5)
    probe = 0x2000000  # free RAM above the image (16 MiB .. 22.3 MiB without KASLR)
    async with m.boot("nokaslr") as k:
        assert m.mem.read(probe, 64) != bytes(64)  # cold boot: seeded garbage
    m.power_cycle()
    async with m.boot("nokaslr memtest=2") as k:
        assert m.mem.read(probe, 64) == bytes(64)
        text = m.mem.read(KERNEL_IMAGE_START, k.image.text_end)
    assert text != bytes(len(text))  # reserved memory is not tested
    out = lines(k)
    at = out.index("early_memtest: # of tests: 2")
    brk_end = KERNEL_IMAGE_START + k.image.bss[1] + k.image.brk_used
    assert out[at + 1:at + 5] == [
        "  0x0000000000100000 - 0x0000000001000000 pattern ffffffffffffffff",
        "  0x%016x - 0x0000000003fe0000 pattern ffffffffffffffff" % brk_end,
        "  0x0000000000100000 - 0x0000000001000000 pattern 0000000000000000",
        "  0x%016x - 0x0000000003fe0000 pattern 0000000000000000" % brk_end]
    async with Machine("64M").boot("memtest") as k:
        pass
    assert "early_memtest: # of tests: 17" in lines(k)
    assert any(line.endswith("pattern 4c494e5558726c7a") for line in lines(k))


# -- console= on the command line (C3) ---------------------------------------------------------

async def test_c3_console_entries_beyond_eight_are_ignored(autojump_clock):
    others = " ".join("console=tty%s0" % c for c in "abcdefgh")
    k, _ = await boot(others + " console=ttyS0")
    assert k.serial_output() == "" and k.printk.console_drivers == []
    k, _ = await boot(" ".join("console=tty%s0" % c for c in "abcdefg") + " console=ttyS0")
    assert "printk: console [ttyS0] enabled" in k.serial_output()
    assert [c.label for c in k.printk.console_drivers] == ["ttyS0"]


async def test_c3_console_null_or_empty_selects_ttynull_and_silences_serial(autojump_clock):
    for line in ("console=null", "console="):
        k, f = await boot(line)
        assert k.printk.console_cmdline[0].name == "ttynull" and k.serial_output() == ""
        assert f["/proc/1/environ"] == b"HOME=/\0TERM=linux\0"


# -- boot details checked against the real kernel (oracle F4-F7) ------------------------------

async def test_no_hash_pointers_banner_is_linuxs_thirteen_lines(autojump_clock):
    k, _ = await boot("no_hash_pointers")
    out = lines(k)
    at = out.index("**   NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE   **")
    banner = out[at - 1:at + 12]
    assert banner[0] == banner[-1] == "*" * 58
    assert banner[7:10] == ["** If you see this message and you are not debugging    **",
                            "** the kernel, report this immediately to your system   **",
                            "** administrator!                                       **"]
    assert all(len(line) == 58 for line in banner)
    assert out.index("BIOS-provided physical RAM map:") < at


async def test_console_null_warns_that_no_initial_console_opens(autojump_clock):
    """oracle F5: with no console behind /dev/console, console_on_rootfs() complains, after
    the initcalls and before the kernel frees its init memory."""
    k, _ = await boot("console=null")
    out = lines(k)
    at = out.index("Warning: unable to open an initial console.")
    assert at < next(i for i, line in enumerate(out) if line.startswith("Freeing unused kernel"))
    assert [r.level for r in k.printk.log
            if r.text == "Warning: unable to open an initial console."] == [3]
    k, _ = await boot("")
    assert "Warning: unable to open an initial console." not in lines(k)


async def test_proc_sys_kernel_printk_writes_apply_each_value_as_parsed(autojump_clock):
    """oracle F6: proc_dointvec stores each of the four values in turn; a bad one fails the
    write after those before it took effect; a fifth is ignored; nothing is range-checked."""
    async with Machine("64M", seed=1).boot("") as k:
        seen = []
        for text in ("3", "2 5", "x", "6 x", "8 8 8 8", "5 4 3 2 1", "-1", "010"):
            try:
                await k.write_file("/proc/sys/kernel/printk", text + "\n")
                result = "ok"
            except KernelError as exc:
                result = exc.errno
            seen.append((result, (await k.read_file("/proc/sys/kernel/printk")).decode()))
    assert seen == [("ok", "3\t4\t1\t7\n"), ("ok", "2\t5\t1\t7\n"), (-EINVAL, "2\t5\t1\t7\n"),
                    (-EINVAL, "6\t5\t1\t7\n"), ("ok", "8\t8\t8\t8\n"), ("ok", "5\t4\t3\t2\n"),
                    ("ok", "-1\t4\t3\t2\n"), ("ok", "8\t4\t3\t2\n")]


async def test_nosoftlockup_turns_the_soft_lockup_detector_off(autojump_clock):
    """oracle F7: the switches show in /proc/sys/kernel; the NMI watchdog is unavailable (no
    PMU), so watchdog reads 0 once the soft one is off."""
    async def knobs(line: str) -> list[bytes]:
        async with Machine("64M").boot(line) as k:
            return [await k.read_file("/proc/sys/kernel/" + name)
                    for name in ("watchdog", "soft_watchdog", "nmi_watchdog")]
    assert await knobs("") == [b"1\n", b"1\n", b"0\n"]
    assert await knobs("nosoftlockup") == [b"0\n", b"0\n", b"0\n"]
    assert await knobs("nowatchdog") == [b"0\n", b"0\n", b"0\n"]


async def test_panic_on_warn_is_a_core_parameter_and_sysctl(autojump_clock):
    k, f = await boot("panic_on_warn=1")
    assert f["/proc/1/cmdline"] == b"/sbin/init\0"
    async with Machine("64M").boot("panic_on_warn=1") as k:
        assert await k.read_file("/proc/sys/kernel/panic_on_warn") == b"1\n"
        assert await k.read_file("/sys/module/kernel/parameters/panic_on_warn") == b"1\n"


async def test_earlyprintk_registers_a_boot_console_that_the_real_one_replaces(autojump_clock):
    """oracle F7: ``printk: bootconsole [earlyser0] enabled`` after the e820 lines, every line
    twice while both consoles are up, then the boot console goes."""
    k, _ = await boot("earlyprintk=serial,ttyS0,115200")
    serial = k.serial_output().splitlines()
    text = [line[15:] for line in serial]
    assert text.index("printk: bootconsole [earlyser0] enabled") > text.index(
        "BIOS-provided physical RAM map:")
    assert text.count("printk: console [ttyS0] enabled") == 2
    assert text.count("printk: bootconsole [earlyser0] disabled") == 2
    assert text.count("Command line: earlyprintk=serial,ttyS0,115200") == 1

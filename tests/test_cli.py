"""``ksim boot``: the serial console on stdout, ordered actions, exit statuses, clean errors.

In-process runs use :func:`ksim.cli.main` (its own trio loop, so these tests are plain
functions); exit statuses of a real process are checked with a few subprocesses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from ksim.cli import EXIT_ACTION, EXIT_HALTED, EXIT_OK, EXIT_RESTARTED, EXIT_USAGE, main


def ksim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ksim", *args], capture_output=True,
                          text=True, timeout=60)


def run(capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    status = main(["boot", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_cat_only_with_q_and_actions_in_order(capsys):
    status, out, err = run(capsys, "-q", "--cmdline", 'splash a="b c"', "--cat", "/proc/cmdline",
                           "--cat", "/proc/1/cmdline", "--cat", "/proc/1/environ")
    assert status == EXIT_OK and err == ""
    assert out == 'splash a="b c"\n/sbin/init\0splash\0HOME=/\0TERM=linux\0a=b c\0'


def test_stdout_is_the_serial_console_then_cat_results_interleaved(capsys):
    status, out, _ = run(capsys, "--printk", "err:first", "--cat", "/proc/consoles",
                         "--printk", "second")
    assert status == EXIT_OK
    assert out.startswith("[    0.000000] Linux version 6.1.0-ksim ")
    first = out.index("] first\n")
    assert out.index("ttyS0                -W- (EC p a)    4:64\n") > first
    assert out.index("] second\n") > out.index("(EC p a)")


def test_printk_levels_follow_console_loglevel(capsys):
    status, out, _ = run(capsys, "-q", "--cmdline", "loglevel=4", "--printk", "err:shown",
                         "--printk", "info:hidden", "--printk", "7:debug", "--printk",
                         "bogus:as text", "--cat", "/dev/kmsg")
    assert status == EXIT_OK
    lines = out.splitlines()
    assert [line.split(";", 1)[1] for line in lines[-4:]] == [
        "shown", "hidden", "debug", "bogus:as text"]
    assert [line.split(",", 1)[0] for line in lines[-4:]] == ["3", "6", "7", "4"]


def test_write_then_cat_and_failed_actions_exit_1_but_continue(capsys):
    status, out, err = run(capsys, "-q", "--write", "/sys/module/kernel/parameters/panic=7",
                           "--cat", "/sys/module/kernel/parameters/panic",
                           "--write", "/proc/cmdline=x", "--cat", "/nonexistent",
                           "--write", "nonsense", "--cat", "/proc/sys/kernel/panic")
    assert status == EXIT_ACTION and out == "7\n7\n"
    assert err.splitlines() == ["ksim: write /proc/cmdline=x: Permission denied",
                                "ksim: cat /nonexistent: No such file or directory",
                                "ksim: --write 'nonsense': expected PATH=VALUE"]


def test_oops_kills_the_shell_and_carries_on(capsys):
    status, out, err = run(capsys, "--oops", "BUG: unable to handle page fault",
                           "--printk", "err:after")
    assert status == EXIT_OK and "Oops: 0002 [#1] PREEMPT SMP NOPTI" in out
    assert out.index("---[ end trace 0000000000000000 ]---") < out.index("] after\n")
    assert err == "ksim: --oops: the shell was sh killed by signal 11\n"


def test_panic_halts_with_status_3_and_stops_actions(capsys):
    status, out, err = run(capsys, "--panic", "boom", "--printk", "err:never")
    assert status == EXIT_HALTED and err == ""
    assert "Kernel panic - not syncing: boom\n" in out and "never" not in out
    assert out.endswith("---[ end Kernel panic - not syncing: boom ]---\n")


def test_oops_panic_and_panic_timeout_restart_with_status_4(capsys):
    status, out, err = run(capsys, "--cmdline", "oops=panic panic=1", "--oops", "BUG: x")
    assert status == EXIT_RESTARTED
    assert "Kernel panic - not syncing: Fatal exception" in out
    assert out.endswith("Rebooting in 1 seconds..\n")
    assert err.startswith("ksim: the machine restarted")


def test_boot_time_panic_is_reported_not_raised(capsys):
    status, out, _ = run(capsys, "-q", "--cmdline", "init=/nope", "--cat", "/proc/cmdline")
    assert status == EXIT_HALTED and out == ""


@pytest.mark.parametrize("args", [
    ["--ram", "12Q"], ["--ram", "0"], ["--cpus", "0"], ["--cpus", "x"], ["--seed", "1.5"],
    ["--bogus"], ["--plugin", "no_such_plugin"], ["--printk"], ["--initrd", "lots"],
    ["--firmware", "coreboot"], ["--kernel", "vmlinux"], ["--ram", "8M"],
    ["--initrd", "64M"], ["--ram", "64M", "--kernel", "debian"],
])
def test_bad_flags_are_one_line_and_status_2(capsys, args):
    status, out, err = run(capsys, *args)
    assert status == EXIT_USAGE and out == ""
    assert len(err.splitlines()) == 1 and err.startswith("ksim") and "Traceback" not in err


def test_ram_file_of_the_wrong_size_is_refused_untouched(capsys, tmp_path: Path):
    ram = tmp_path / "m.ram"
    ram.write_bytes(b"precious" * 100)
    before = (ram.read_bytes(), os.stat(ram).st_mtime_ns)
    status, out, err = run(capsys, "--ram", "64M", "--ram-file", str(ram))
    assert status == EXIT_USAGE and out == ""
    assert len(err.splitlines()) == 1 and str(ram) in err
    assert (ram.read_bytes(), os.stat(ram).st_mtime_ns) == before


def test_process_exit_statuses_and_no_tracebacks(tmp_path: Path):
    ok = ksim("boot", "-q", "--cat", "/proc/cmdline", "--cmdline", "x")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "x\n", "")
    halted = ksim("boot", "-q", "--panic", "boom")
    assert (halted.returncode, halted.stdout, halted.stderr) == (3, "", "")
    bad = ksim("boot", "--cpus", "x")
    assert bad.returncode == 2 and bad.stdout == ""
    assert bad.stderr.count("\n") == 1 and "Traceback" not in bad.stderr
    ram = tmp_path / "small.ram"
    ram.write_bytes(b"\xaa" * 4096)
    wrong = ksim("boot", "--ram", "8M", "--ram-file", str(ram))
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1
    assert ram.read_bytes() == b"\xaa" * 4096


def test_restart_exit_status_4_and_warm_ram_file(tmp_path: Path):
    ram = tmp_path / "m.ram"
    first = ksim("boot", "-q", "--ram", "64M", "--ram-file", str(ram), "--cmdline", "panic=-1",
                 "--panic", "again")
    assert first.returncode == 4 and "restarted" in first.stderr
    assert ram.stat().st_size == 64 << 20

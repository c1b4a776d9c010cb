"""``ksim boot`` and the conventions of every command, through the real console script.

Each test runs ``.venv/bin/ksim`` (the script pip installed beside the interpreter) as a user
would and checks what they see: stdout, stderr, the exit status.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

KSIM = str(Path(sys.executable).parent / "ksim")


def ksim(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KSIM, *args], capture_output=True, text=True, timeout=120,
                          **kw)  # type: ignore[call-overload]


def boot(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return ksim("boot", *args, **kw)


def one_error_line(proc: subprocess.CompletedProcess[str], prefix: str = "ksim boot: ") -> str:
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith(prefix), proc.stderr
    return proc.stderr


def test_the_console_script_and_python_m_say_the_version():
    import ksim
    script = ksim_version = ksim.__version__
    for cmd in ([KSIM, "--version"], [sys.executable, "-m", "ksim", "--version"]):
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert (proc.returncode, proc.stdout, proc.stderr) == (0, f"ksim {script}\n", "")
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert f'version = "{ksim_version}"' in pyproject


def test_cat_only_with_q_and_actions_in_order():
    proc = boot("-q", "--cmdline", 'splash a="b c"', "--cat", "/proc/cmdline",
                "--cat", "/proc/1/cmdline", "--cat", "/proc/1/environ")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout == 'splash a="b c"\n/sbin/init\0splash\0HOME=/\0TERM=linux\0a=b c\0'


def test_stdout_is_the_serial_console_then_cat_results_interleaved():
    proc = boot("--printk", "err:first", "--cat", "/proc/consoles", "--printk", "second")
    out = proc.stdout
    assert proc.returncode == 0
    assert out.startswith("[    0.000000] Linux version 6.1.0-ksim ")
    first = out.index("] first\n")
    assert out.index("ttyS0                -W- (EC p a)    4:64\n") > first
    assert out.index("] second\n") > out.index("(EC p a)")


def test_printk_levels_follow_console_loglevel_and_a_misspelt_level_is_warned():
    proc = boot("-q", "--cmdline", "loglevel=4", "--printk", "err:shown", "--printk",
                "info:hidden", "--printk", "7:debug", "--printk", "eror:disk",
                "--printk", "usb 1-1: new device", "--cat", "/dev/kmsg")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert [line.split(";", 1)[1] for line in lines[-5:]] == [
        "shown", "hidden", "debug", "eror:disk", "usb 1-1: new device"]
    assert [line.split(",", 1)[0] for line in lines[-5:]] == ["3", "6", "7", "4", "4"]
    warning = one_error_line(proc)
    assert warning.startswith("ksim boot: warning: --printk 'eror:disk': 'eror' is not a log "
                              "level (did you mean 'err'?)")


def test_write_then_cat_and_failed_actions_exit_1_but_continue():
    proc = boot("-q", "--write", "/sys/module/kernel/parameters/panic=7",
                "--cat", "/sys/module/kernel/parameters/panic",
                "--write", "/proc/cmdline=x", "--cat", "/nonexistent",
                "--cat", "/proc/sys/kernel/panic")
    assert (proc.returncode, proc.stdout) == (1, "7\n7\n")
    assert proc.stderr.splitlines() == [
        "ksim boot: --write '/proc/cmdline=x': Permission denied",
        "ksim boot: --cat '/nonexistent': No such file or directory"]


def test_a_write_without_a_value_is_a_usage_error_before_booting():
    proc = boot("--write", "nosuch", "--printk", "never")
    assert (proc.returncode, proc.stdout) == (2, "")
    assert one_error_line(proc) == "ksim boot: --write 'nosuch': expected PATH=VALUE\n"


def test_k5_oops_kills_the_shell_sh_and_carries_on():
    proc = boot("--oops", "BUG: unable to handle page fault", "--printk", "err:after")
    assert proc.returncode == 0 and "Oops: 0002 [#1] PREEMPT SMP NOPTI" in proc.stdout
    assert proc.stdout.index("---[ end trace 0000000000000000 ]---") < \
        proc.stdout.index("] after\n")
    assert proc.stderr == "ksim boot: --oops: the shell (sh) was killed by signal 11\n"


def test_panic_halts_with_status_3_and_says_which_actions_did_not_run():
    proc = boot("--panic", "boom", "--printk", "err:never", "--cat", "/proc/cmdline")
    assert proc.returncode == 3
    assert "Kernel panic - not syncing: boom\n" in proc.stdout and "never" not in proc.stdout
    assert proc.stdout.endswith("---[ end Kernel panic - not syncing: boom ]---\n")
    assert proc.stderr == ("ksim boot: not run (the kernel panicked): --printk 'err:never', "
                           "--cat '/proc/cmdline'\n")


def test_a_boot_time_panic_runs_no_action_and_says_so():
    proc = boot("-q", "--cmdline", "init=/nope", "--cat", "/proc/cmdline")
    assert (proc.returncode, proc.stdout) == (3, "")
    assert proc.stderr == "ksim boot: not run (the kernel panicked): --cat '/proc/cmdline'\n"


def test_a_restart_without_a_ram_file_does_not_ask_for_a_boot_on_it():
    proc = boot("--cmdline", "oops=panic panic=1", "--oops", "BUG: x")
    assert proc.returncode == 4
    assert "Kernel panic - not syncing: Fatal exception" in proc.stdout
    assert proc.stdout.endswith("Rebooting in 1 seconds..\n")
    assert proc.stderr == "ksim boot: the machine restarted; its RAM was not kept (no --ram-file)\n"


def test_a_restart_on_a_ram_file_says_to_boot_again_on_it(tmp_path: Path):
    ram = tmp_path / "m.ram"
    first = boot("-q", "--ram", "32M", "--ram-file", str(ram), "--cmdline", "panic=-1",
                 "--panic", "again")
    assert first.returncode == 4
    assert first.stderr == ("ksim boot: the machine restarted; boot again with the same "
                            "--ram-file for the next boot\n")
    assert ram.stat().st_size == 32 << 20


def test_a_hung_boot_exits_5_with_ksims_diagnostic():
    proc = boot("-q", "--plugin", "memconsole", "--cmdline", "memconsole=0", "--cat",
                "/proc/cmdline")
    assert proc.returncode == 5 and proc.stdout == ""
    assert "ksim:" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [
    ["--ram", "12Q"], ["--ram", "0"], ["--ram", "7M"], ["--ram", "100T"], ["--ram", "99999999T"],
    ["--cpus", "0"], ["--cpus", "x"], ["--cpus", "9000"], ["--cpus", "99999999999999999999"],
    ["--seed", "1.5"], ["--bogus"], ["--plugin", "no_such_plugin"], ["--printk"],
    ["--cmdline"], ["--initrd", "lots"], ["--firmware", "coreboot"], ["--kernel", "vmlinux"],
    ["--ram", "31M"], ["--initrd", "64M"], ["--ram", "64M", "--kernel", "debian"],
])
def test_bad_flags_are_one_line_and_status_2(args):
    proc = boot(*args)
    assert (proc.returncode, proc.stdout) == (2, "")
    one_error_line(proc)


def test_ram_and_cpus_follow_the_machine_limits_yaml_follows():
    """The CLI refuses what a scenario's ``machine:`` refuses, in the same words."""
    from ksim.units import check_cpus, parse_ram
    for ram in ("31M", "100T"):
        with pytest.raises(ValueError) as refused:
            parse_ram(ram)
        assert str(refused.value) in boot("--ram", ram).stderr
    cpus = boot("--cpus", "8193").stderr
    with pytest.raises(ValueError) as refused:
        check_cpus(8193)
    assert str(refused.value) in cpus and "NR_CPUS (8192)" in cpus
    # 8192 CPUs are a machine ksim builds; on 32M their percpu areas do not fit, as in Linux
    early = boot("-q", "--ram", "32M", "--cpus", "8192")
    assert early.returncode == 3 and early.stderr == (
        "ksim boot: the kernel panicked before any console was up: 'cannot initialize percpu "
        "area (err=-12)'\n")


def test_a_mapping_the_host_refuses_is_one_line_and_status_2():
    def limit_address_space() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (1 << 31, 1 << 31))

    proc = boot("-q", "--ram", "4G", preexec_fn=limit_address_space)
    assert proc.returncode == 2
    assert one_error_line(proc).startswith("ksim boot: cannot map 4G of address space for the "
                                           "machine's RAM")


def test_a_ram_file_of_the_wrong_size_is_refused_untouched(tmp_path: Path):
    ram = tmp_path / "m.ram"
    ram.write_bytes(b"precious" * 512)
    before = (ram.read_bytes(), os.stat(ram).st_mtime_ns)
    proc = boot("--ram", "64M", "--ram-file", str(ram))
    assert (proc.returncode, proc.stdout) == (2, "")
    assert str(ram) in one_error_line(proc)
    assert (ram.read_bytes(), os.stat(ram).st_mtime_ns) == before


def test_a_double_dash_value_is_the_text_double_dash():
    proc = boot("-q", "--cmdline=--", "--cat", "/proc/cmdline")
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "--\n", "")


def test_unknown_commands_and_options_get_a_did_you_mean():
    assert one_error_line(ksim("stres"), "ksim: ").startswith(
        "ksim: unknown command 'stres'; did you mean 'stress'?")
    assert one_error_line(boot("--plugins", "x")) == \
        "ksim boot: unknown option '--plugins'; did you mean '--plugin'?\n"
    assert one_error_line(ksim("stress", "--seeds=0..1", "--thread", "2"),
                          "ksim stress: ").startswith(
        "ksim stress: unknown option '--thread'; did you mean '--threads'?")
    assert one_error_line(ksim(), "ksim: ").startswith("ksim: expected a command")


def test_echoed_input_is_clipped():
    huge = "x" * 100_000  # near the kernel's 128 KiB limit on one argument
    for args in (["boot", "--ram", huge], ["boot", "--cpus", huge], [huge],
                 ["boot", "--" + huge], ["stress", "--strategy", huge],
                 ["stress", "--seeds", huge], ["boot", "--write", huge]):
        proc = ksim(*args)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1 and len(proc.stderr) < 500, args


def test_every_option_has_help_with_its_default_and_every_help_ends_with_exit_statuses():
    from ksim.cli import build_parser
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    for name, command in commands.items():
        for action in command._actions:
            assert action.help, (name, action.option_strings or action.dest)
            if name in ("boot", "stress", "plugins") and action.option_strings \
                    and action.nargs != 0 and action.default is not argparse.SUPPRESS \
                    and action.default != [] and type(action).__name__ != "_Action":
                assert "default" in action.help, (name, action.dest)  # said, even if none
        text = ksim(name, "--help").stdout
        tail = text.rstrip().split("\n\n")[-1]
        assert tail.startswith("exit status:") and "\n  0 " in tail, (name, tail)
    stress = " ".join(ksim("stress", "--help").stdout.split())
    assert "seeds 0..99, no plugin" in stress


def test_help_is_cheap_it_imports_no_simulator():
    code = ("import sys; from ksim.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in ('pytest', 'rich', 'trio', 'ksim.kernel', 'ruamel', 'cattrs')"
            " if m in sys.modules]\nprint(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.splitlines()[-1] == "[]", proc.stdout + proc.stderr
    assert ksim("--help").returncode == 0


def test_a_closed_stdout_keeps_the_exit_status():
    for command, status in ((f"'{KSIM}' boot --panic x", 3), (f"'{KSIM}' boot --oops x", 0)):
        proc = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -1"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == status, proc.stderr
        assert proc.stdout.count("\n") == 1 and "Traceback" not in proc.stderr


# Ctrl-C while the command line imports a module: the module whose import gets the SIGINT.
INTERRUPT_AT_IMPORT = """
import builtins, os, signal, sys
real_import = builtins.__import__
target = sys.argv[1]
def interrupting_import(name, *args, **kw):
    if name == target and name not in sys.modules:
        os.kill(os.getpid(), signal.SIGINT)
    return real_import(name, *args, **kw)
builtins.__import__ = interrupting_import
sys.argv = ["ksim", "boot", "-q", "--cat", "/proc/cmdline"]
from ksim.__main__ import run
run()
"""


@pytest.mark.parametrize("module", ["ksim.cli", "ksim.clitools", "ksim.vclock", "trio",
                                    "ksim.machine"])
def test_ctrl_c_during_imports_is_one_line_and_status_130(module: str):
    proc = subprocess.run([sys.executable, "-c", INTERRUPT_AT_IMPORT, module],
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout) == (130, ""), proc.stderr
    assert proc.stderr.endswith("interrupted\n") and proc.stderr.count("\n") == 1, proc.stderr


def test_ctrl_c_during_a_run_is_one_line_and_status_130():
    proc = subprocess.Popen([KSIM, "stress", "--seeds", "0..9999"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and err.count("\n") == 1, err
def test_restart_exit_status_4_and_warm_ram_file(tmp_path: Path):
    ram = tmp_path / "m.ram"
    first = ksim("boot", "-q", "--ram", "64M", "--ram-file", str(ram), "--cmdline", "panic=-1",
                 "--panic", "again")
    assert first.returncode == 4 and "restarted" in first.stderr
    assert ram.stat().st_size == 64 << 20


def test_the_parsers_firmware_and_kernel_names_are_the_machines():
    from ksim.cli import FIRMWARE_CHOICES, KERNEL_CHOICES
    from ksim.firmware import FIRMWARE_NAMES
    from ksim.vmlinux import IMAGE_NAMES
    assert (tuple(FIRMWARE_CHOICES), tuple(KERNEL_CHOICES)) == (tuple(FIRMWARE_NAMES),
                                                                tuple(IMAGE_NAMES))

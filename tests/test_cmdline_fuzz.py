"""Property-based tests of the command line (Hypothesis): any command line boots.

Linux never refuses a command line: a parser that does not like its value warns (or says
nothing) and the boot goes on, or the kernel reacts as it would to that setting (``mem=1M``
panics in early allocation, ``panic=`` sets the timeout).  So whatever ``Machine.boot`` is
given -- known parameters with values at their limits, Unicode digits (``²``), bytes that are
not UTF-8 (``quiet \\xff`` reaches ksim as the surrogate-escaped ``str`` Python makes of such
bytes), huge numbers -- the boot ends in an outcome, never a Python exception.  Sized to take a
few seconds; ``tools/fuzz.py --cmdlines N`` is the longer run of the same property.
"""

from __future__ import annotations

import pytest
import trio
from hypothesis import HealthCheck, given, settings

from ksim import Machine
from ksim.cli import main
from ksim.vclock import virtual_clock

from fuzz_cmdline import cmdlines

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow])


def boot_outcome(cmdline: str) -> str | None:
    async def main() -> str | None:
        machine = Machine("64M", cpus=2, seed=1)
        async with machine.boot(cmdline) as kernel:
            pass
        return kernel.outcome

    return trio.run(main, clock=virtual_clock())


@SETTINGS
@given(cmdlines())
def test_a_generated_command_line_never_aborts_the_boot(cmdline: str) -> None:
    boot_outcome(cmdline)  # an exception here is the failure


def test_a_unicode_digit_in_a_console_loglevel_is_ignored_as_linux_ignores_it() -> None:
    assert boot_outcome("console=ttyS0,115200/loglevel:\u00b2") == "shutdown"


def test_bytes_that_are_not_utf8_on_the_command_line_do_not_stop_the_boot() -> None:
    assert boot_outcome(b"quiet \xff".decode("utf-8", "surrogateescape")) == "shutdown"


def test_mem_below_the_kernel_image_panics_as_linux_does_instead_of_aborting() -> None:
    async def main() -> tuple[str | None, str]:
        machine = Machine("64M", cpus=1, seed=1)
        async with machine.boot("mem=1M") as kernel:
            pass
        return kernel.outcome, kernel.dmesg()

    outcome, dmesg = trio.run(main, clock=virtual_clock())
    assert outcome == "halt"
    assert "Kernel panic - not syncing" in dmesg


def test_four_billion_memtest_passes_log_the_last_ones_and_boot() -> None:
    async def main() -> str:
        machine = Machine("64M", cpus=1, seed=1)
        async with machine.boot("memtest=4294967295") as kernel:
            pass
        return kernel.dmesg()

    dmesg = trio.run(main, clock=virtual_clock())
    # the header line itself was overwritten in the log buffer by the passes' lines, as in Linux
    assert "pattern 0000000000000000" in dmesg
    assert "Run /sbin/init as init process" in dmesg


@pytest.mark.parametrize("cmdline", ["--", "console=ttyS0,115200/loglevel:\u00b2",
                                     b"quiet \xff".decode("utf-8", "surrogateescape"),
                                     "memtest=4294967295 quiet", "mem=1M"])
def test_the_cli_boots_any_command_line_without_a_traceback(cmdline: str, capsys) -> None:
    code = main(["boot", "-q", "--cmdline=" + cmdline, "--cat", "/proc/cmdline"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err
    assert code in (0, 3)  # 3: the kernel panicked (mem=1M), as Linux does
    assert len(err.splitlines()) <= 2

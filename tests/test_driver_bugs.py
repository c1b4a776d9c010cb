"""A driver bug is a kernel bug: a Python exception escaping plugin code is an Oops (K5).

Whatever a plugin raises in a console ``write``, a notifier, a ``__setup`` handler, its
``init``/``exit`` or its proc ops -- or a ``/proc`` read returning ``str``, or ``sys.exit`` --
the user sees what Linux shows for a bug in a driver: ``kernel BUG at file:line!``, an
``invalid opcode`` Oops whose call trace is the driver's Python frames, then the oops handled
as any oops (the task killed; init or the idle task killed, or ``oops=panic``: a panic).
Never a simulator traceback, never a silent exit 0.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from ksim import (
    CON_ENABLED, CON_PRINTBUFFER, KERN_INFO, Console, KernelModule, Machine, ProcOps,
    TaskKilled, atomic_notifier_chain_register, insmod, panic, panic_notifier_list, printk,
    proc_create, register_console, rmmod, setup,
)
from ksim.cli import main
from ksim.notifier import NotifierBlock

HERE = Path(__file__).name


class Buggy(KernelModule):
    """A driver with one bug, chosen by the class attribute ``bug``."""

    name = "buggy"
    bug = ""

    def __init__(self, kernel, builtin):  # type: ignore[no-untyped-def]
        super().__init__(kernel, builtin)
        self.console = Console(name="buggy", write=self.write,
                               flags=CON_ENABLED | CON_PRINTBUFFER, index=0)

    @setup("buggy=")
    async def buggy_setup(self, value: str) -> int:
        if self.bug == "setup":
            raise RuntimeError("setup bug")
        return 1

    async def write(self, con: Console, data: bytes) -> None:
        if self.bug == "write" and b"trigger" in data:
            raise ZeroDivisionError("write bug")

    async def proc_read(self, file, count: int, pos: int):  # type: ignore[no-untyped-def]
        if self.bug == "proc_str":
            return "a str, not bytes"
        if self.bug == "proc_raise":
            raise KeyError("proc bug")
        return b"ok\n"[pos:]

    async def on_panic(self, nb, val, v):  # type: ignore[no-untyped-def]
        raise AttributeError("notifier bug")

    async def init(self) -> int:
        if self.bug == "init":
            raise RuntimeError("init bug")
        if self.bug == "sys_exit":
            sys.exit(3)
        proc_create("buggy", 0o444, None, ProcOps(proc_read=self.proc_read))
        await register_console(self.console)
        if self.bug == "notifier":
            atomic_notifier_chain_register(panic_notifier_list, NotifierBlock(self.on_panic))
        return 0

    async def exit(self) -> None:
        if self.bug == "exit":
            raise RuntimeError("exit bug")


def buggy(bug: str) -> type[Buggy]:
    return type("Buggy", (Buggy,), {"bug": bug})


def assert_driver_oops(dmesg: str, message: str) -> None:
    assert "kernel BUG at tests/%s:" % HERE in dmesg
    assert message in dmesg
    assert "invalid opcode: 0000 [#1]" in dmesg
    trace = dmesg[dmesg.index("Call Trace:"):]
    assert "[tests/%s:" % HERE in trace  # the driver's own Python frame


@pytest.mark.parametrize("bug, message", [("init", "RuntimeError: init bug"),
                                          ("sys_exit", "SystemExit: 3")])
async def test_an_exception_in_a_builtin_init_oopses_and_kills_init(autojump_clock, bug,
                                                                     message):
    async with Machine("64M").boot("", [buggy(bug)]) as k:
        pass
    assert_driver_oops(k.dmesg(), message)
    assert "Kernel panic - not syncing: Attempted to kill init!" in k.dmesg()
    assert k.panicked


async def test_an_exception_in_a_setup_handler_kills_the_idle_task(autojump_clock):
    async with Machine("64M").boot("buggy=1", [buggy("setup")]) as k:
        pass
    assert_driver_oops(k.dmesg(), "RuntimeError: setup bug")
    assert "Kernel panic - not syncing: Attempted to kill the idle task!" in k.dmesg()


@pytest.mark.parametrize("bug, message", [("proc_raise", "KeyError: 'proc bug'"),
                                          ("proc_str", "returned str, not bytes")])
async def test_a_bad_proc_read_oopses_and_kills_the_reading_task(autojump_clock, bug, message):
    async with Machine("64M").boot("", [buggy(bug)]) as k:
        with pytest.raises(TaskKilled):
            await k.read_file("/proc/buggy")
    assert message in k.dmesg()
    assert "invalid opcode: 0000 [#1]" in k.dmesg()
    assert "D" in (await k.read_file("/proc/sys/kernel/tainted")).decode() or k.panic.taints


async def test_panic_on_oops_turns_a_driver_bug_into_a_panic(autojump_clock):
    async with Machine("64M").boot("oops=panic", [buggy("proc_raise")]) as k:
        await k.read_file("/proc/buggy")
    assert "Kernel panic - not syncing: Fatal exception" in k.dmesg()


async def test_an_exception_in_a_console_write_oopses(autojump_clock):
    async with Machine("64M").boot("", [buggy("write")]) as k:
        with pytest.raises(TaskKilled):
            await printk(KERN_INFO + "trigger\n")
    assert_driver_oops(k.dmesg(), "ZeroDivisionError: write bug")


async def test_an_exception_in_a_panic_notifier_oopses_and_the_panic_goes_on(autojump_clock):
    async with Machine("64M").boot("panic=0", [buggy("notifier")]) as k:
        await panic("test")
    dmesg = k.dmesg()
    assert "AttributeError: notifier bug" in dmesg
    assert "end Kernel panic" in dmesg


async def test_an_exception_in_module_exit_oopses_and_rmmod_still_unloads(autojump_clock):
    async with Machine("64M").boot("", [buggy("exit")], builtin=[]) as k:
        assert await insmod("buggy") == 0
        with pytest.raises(TaskKilled):
            await rmmod("buggy")
    assert_driver_oops(k.dmesg(), "RuntimeError: exit bug")


def test_the_cli_shows_the_oops_and_fails_the_action_instead_of_a_traceback(tmp_path, capsys):
    (tmp_path / "badproc.py").write_text(
        "from ksim import KernelModule, ProcOps, proc_create\n"
        "class Badproc(KernelModule):\n"
        "    name = 'badproc'\n"
        "    async def read(self, file, count, pos):\n"
        "        return 'text'\n"
        "    async def init(self):\n"
        "        proc_create('badproc', 0o444, None, ProcOps(proc_read=self.read))\n"
        "        return 0\n")
    code = main(["boot", "--plugin-path", str(tmp_path), "--plugin", "badproc",
                 "--cat", "/proc/badproc", "--cat", "/proc/cmdline"])
    out, err = capsys.readouterr()
    assert code == 1
    assert "returned str, not bytes" in out
    assert "Traceback" not in err
    assert "--cat '/proc/badproc': the shell was killed by signal 11" in err
    assert "not run (the shell was killed): --cat '/proc/cmdline'" in err
    assert os.path.exists(tmp_path / "badproc.py")

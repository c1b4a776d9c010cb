"""The plugin API: declaration, discovery, built-in vs loadable, insmod/rmmod, errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from ksim import (
    EEXIST, ENOENT, ENOMEM, KERN_INFO, KernelModule, Machine, early_param, insmod,
    module_param, printk, rmmod, setup,
)
from ksim.cli import main
from ksim.plugins import PluginError, discover, load_plugins

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"


class Demo(KernelModule):
    name = "demo"
    description = "a test module"
    debug = module_param("bool", False, 0o644, "chatty")
    count = module_param("int", 3, 0o444)
    secret = module_param("charp", None, 0)
    fail = module_param("int", 0, 0o444)

    def __init__(self, kernel, builtin):  # type: ignore[no-untyped-def]
        super().__init__(kernel, builtin)
        self.seen_setup: list[str] = []
        self.seen_early: list[str | None] = []
        self.exited = False

    @setup("demo=")
    async def demo_setup(self, value: str) -> int:
        self.seen_setup.append(value)
        return 1

    @early_param("demoearly")
    async def demo_early(self, value: str | None) -> int:
        self.seen_early.append(value)
        return 0

    async def init(self) -> int:
        await printk(KERN_INFO + "demo: count=%d debug=%d\n", self.count, self.debug)
        return self.fail

    async def exit(self) -> None:
        self.exited = True


async def test_p19_builtin_params_and_handlers_come_from_the_command_line(autojump_clock):
    async with Machine("64M").boot("demo=x demoearly=y demo.count=7 demo.debug", [Demo]) as k:
        mod = k.module.live["demo"]
        assert (mod.seen_setup, mod.seen_early, mod.count, mod.debug) == (["x"], ["y"], 7, True)
        assert "demo: count=7 debug=1" in k.dmesg()
        assert await k.read_file("/sys/module/demo/parameters/count") == b"7\n"
        assert not k.vfs.exists("/sys/module/demo/parameters/secret")  # perm 0: no file (P18)
    assert k.init.init_envp == ["HOME=/", "TERM=linux"]


async def test_p19_loadable_module_ignores_boot_line_and_takes_insmod_params(autojump_clock):
    async with Machine("64M").boot("demo=x demo.count=7", [Demo], builtin=[]) as k:
        assert "demo" not in k.module.live
        assert await insmod("demo", count=9, debug=True) == 0
        mod = k.module.live["demo"]
        assert (mod.seen_setup, mod.count, mod.debug) == ([], 9, True)
        assert await insmod("demo") == -EEXIST
        assert await rmmod("demo") == 0 and mod.exited
        assert not k.vfs.exists("/sys/module/demo/parameters/count")
        assert await rmmod("demo") == -ENOENT
        assert await insmod("nosuch") == -ENOENT
    # the words "demo=x" went to init's env: no __setup for a loadable module (P6)
    assert "demo=x" in k.init.init_envp


async def test_failing_init_returns_errno_and_leaves_no_trace(autojump_clock):
    async with Machine("64M").boot("", [Demo], builtin=[]) as k:
        assert await insmod("demo", fail=-ENOMEM) == -ENOMEM
        assert "demo" not in k.module.live
        assert not k.vfs.exists("/sys/module/demo/parameters/count")
        assert await insmod("demo") == 0


async def test_failing_builtin_init_is_silent_unless_initcall_debug(autojump_clock):
    async with Machine("64M").boot("demo.fail=-12", [Demo]) as k:
        assert "demo" not in k.module.live
        assert "initcall" not in k.dmesg()
    async with Machine("64M").boot("demo.fail=-12 initcall_debug", [Demo]) as k:
        assert "initcall demo_init+0x0/0x80 returned -12" in k.dmesg()


async def test_p17_bad_insmod_value_fails_and_unknown_name_warns(autojump_clock):
    async with Machine("64M").boot("", [Demo], builtin=[]) as k:
        assert await insmod("demo", count="abc") == -22
        assert "demo: `abc' invalid for parameter `count'" in k.dmesg()
        assert await insmod("demo", bogus=1) == 0
        assert "demo: unknown parameter 'bogus' ignored" in k.dmesg()


def test_p18_world_writable_param_is_refused_at_declaration():
    with pytest.raises(ValueError):
        class Bad(KernelModule):  # noqa: F841
            name = "bad"
            knob = module_param("int", 0, 0o666)


def test_entry_point_discovery_finds_memconsole():
    found = discover()
    assert found["memconsole"].origin == "entry point"
    (cls,) = load_plugins(["memconsole"])
    assert cls.name == "memconsole"


def test_plugin_path_and_did_you_mean(monkeypatch):
    (cls,) = load_plugins(["lastlog"], [EXAMPLES])
    assert cls.name == "lastlog"
    monkeypatch.setenv("KSIM_PLUGIN_PATH", str(EXAMPLES))
    assert "lastlog" in discover()
    with pytest.raises(PluginError, match="did you mean 'memconsole'"):
        load_plugins(["memconsol"])


def test_broken_plugin_is_one_clear_error(tmp_path: Path):
    (tmp_path / "broken.py").write_text("import ksim\ndef oops(:\n")
    proc = subprocess.run([sys.executable, "-m", "ksim", "boot", "--plugin-path", str(tmp_path),
                           "--plugin", "broken"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "plugin 'broken'" in proc.stderr and str(tmp_path / "broken.py") in proc.stderr
    assert "SyntaxError" in proc.stderr


HANGING_PLUGINS = {
    "spinimport": ("while True:\n    pass\n", "import", 1),
    "spininit": ("from ksim import KernelModule\n"
                 "class Spininit(KernelModule):\n"
                 "    name = 'spininit'\n"
                 "    async def init(self):\n"
                 "        while True:\n"
                 "            pass\n", "init", 5),
    # awaiting in a loop costs no virtual time and nothing else in a boot bounds it
    "yieldinit": ("import trio\nfrom ksim import KernelModule\n"
                  "class Yieldinit(KernelModule):\n"
                  "    name = 'yieldinit'\n"
                  "    async def init(self):\n"
                  "        while True:\n"
                  "            await trio.sleep(0)\n", "init", 6),
}


@pytest.mark.parametrize("plugin", sorted(HANGING_PLUGINS))
def test_a_plugin_that_never_returns_is_reported_after_the_wall_clock_budget(
        tmp_path: Path, monkeypatch, capsys, plugin):
    source, what, line = HANGING_PLUGINS[plugin]
    (tmp_path / f"{plugin}.py").write_text(source)
    monkeypatch.setenv("KSIM_PLUGIN_BUDGET", "0.2")
    assert main(["boot", "--plugin-path", str(tmp_path), "--plugin", plugin]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert (f"plugin '{plugin}' did not return from {what} within 0.2 s of wall time (at "
            f"{tmp_path / plugin}.py:{line}; KSIM_PLUGIN_BUDGET sets the budget)") in err


def test_the_plugin_budget_restores_the_alarm_it_borrowed(tmp_path: Path, monkeypatch):
    import signal

    def mine(signum, frame):  # type: ignore[no-untyped-def]
        raise AssertionError("not expected to fire")

    (tmp_path / "quick.py").write_text("X = 1\n")
    monkeypatch.setenv("KSIM_PLUGIN_BUDGET", "5")
    old = signal.signal(signal.SIGALRM, mine)
    try:
        signal.setitimer(signal.ITIMER_REAL, 100)
        with pytest.raises(PluginError, match="declares 0 kernel modules"):
            load_plugins(["quick"], [tmp_path])
        assert signal.getsignal(signal.SIGALRM) is mine
        assert 90 < signal.getitimer(signal.ITIMER_REAL)[0] <= 100
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_a_bad_plugin_budget_is_one_clear_error(tmp_path: Path, monkeypatch):
    (tmp_path / "quick.py").write_text("X = 1\n")
    monkeypatch.setenv("KSIM_PLUGIN_BUDGET", "soon")
    with pytest.raises(PluginError, match="KSIM_PLUGIN_BUDGET='soon' is not a number of seconds"):
        load_plugins(["quick"], [tmp_path])


def test_ksim_plugins_lists_parameters(capsys):
    assert main(["plugins", "--plugin-path", str(EXAMPLES)]) == 0
    out = capsys.readouterr().out
    assert "param reboot: bool, default True, mode 0644" in out
    assert "param lines: int, default 16, mode 0444" in out
    assert '__setup "memconsole=" (core)' in out


async def test_worked_example_lastlog(autojump_clock):
    """docs/plugins.md's example driver: replays the backlog, keeps the last N lines."""
    (lastlog,) = load_plugins(["lastlog"], [EXAMPLES])
    async with Machine("64M").boot("lastlog=4", [lastlog]) as k:
        for i in range(10):
            await printk("line %d\n", i)
        text = (await k.read_file("/proc/lastlog")).decode()
        assert text.count("\n") == 4 and text.endswith("line 9\n") and "line 5" not in text
        assert await rmmod("lastlog") == -16  # built in: cannot be unloaded
    async with Machine("64M").boot("", [lastlog], builtin=[]) as k:
        assert await insmod("lastlog", lines=0) == -22
        assert await insmod("lastlog", lines=50) == 0
        assert b"Kernel command line" in await k.read_file("/proc/lastlog")  # CON_PRINTBUFFER
        assert b"lastlog0" in await k.read_file("/proc/consoles")
        assert await rmmod("lastlog") == 0
        assert b"lastlog0" not in await k.read_file("/proc/consoles")


def test_same_plugin_name_in_two_folders_loads_each_file(tmp_path: Path):
    for folder, desc in (("a", "first"), ("b", "second")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "twin.py").write_text(
            "from ksim import KernelModule\n"
            f"class Twin(KernelModule):\n    name = 'twin'\n    description = '{desc}'\n")
    (first,) = load_plugins(["twin"], [tmp_path / "a"])
    (second,) = load_plugins(["twin"], [tmp_path / "b"])
    assert (first.description, second.description) == ("first", "second")

"""ksim.scenario.runner and expect: PASS/FAIL/ERROR, what a failure says, and the steps."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ksim.scenario.loader import load_text
from ksim.scenario.report import failure_text, result_line
from ksim.scenario.runner import ERROR, FAIL, PASS, run_scenario

PLUGINS = {
    "crashy.py": '''
from ksim import KernelModule
class Crashy(KernelModule):
    name = "crashy"
    async def init(self):
        raise RuntimeError("a bug in the plugin")
''',
    "hangs.py": '''
from ksim import KernelModule, DEFINE_SPINLOCK, spin_lock
class Hangs(KernelModule):
    name = "hangs"
    async def init(self):
        lock = DEFINE_SPINLOCK("hangs_lock")
        await spin_lock(lock)
        await spin_lock(lock)
''',
    "physres.py": '''
from ksim import KernelModule, setup, memblock_reserve
class Physres(KernelModule):
    name = "physres"
    base = 0x800000
    @setup("physres", core=True)
    async def physres_setup(self, value):
        self.phys = 0x800000          # a physical address, not a pointer
        memblock_reserve(0x800000, 0x2000)
        return 1
''',
}


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("plugins")
    for name, text in PLUGINS.items():
        (folder / name).write_text(text)
    return folder


def run(text: str, base: Path | None = None, seed: int | None = None):  # type: ignore[no-untyped-def]
    [sc] = load_text(textwrap.dedent(text), "s.yaml", base)
    return run_scenario(sc, seed)


def test_a_passing_scenario_checks_every_expectation() -> None:
    r = run("""\
        name: ok
        plugins: [memconsole]
        boots:
          - cmdline: "memconsole=8192 nokaslr"
            steps:
              - printk: {level: err, text: "disk on fire"}
              - panic: "Fatal exception"
            expect:
              - rebooted: true
              - panicked: true
              - file: /proc/memconsole
                contains: "disk on fire"
          - reboot: warm
            cmdline: "memconsole=8192 nokaslr"
            expect:
              - file: /proc/memconsole
                lines_in_order: ["disk on fire", "Kernel panic - not syncing: Fatal exception"]
              - console: memconsole0
                contains: "Run /sbin/init"
              - outcome: running
        """)
    assert r.status == FAIL  # the last one: a finished boot is shut down, not running
    assert r.checks == 6
    [failure] = r.failures
    assert str(failure.loc) == "s.yaml:20:9"
    assert failure.details[:2] == ("expected: running", "seen:     shutdown")
    assert result_line(r).startswith("FAIL  s.yaml: ok  (")


def test_failures_say_what_was_expected_and_seen() -> None:
    r = run("""\
        name: failing
        boots:
          - steps:
              - printk: {level: err, text: "disk on fire"}
              - printk: {level: err, text: "later line"}
            expect:
              - dmesg:
                  contains: "disk on fyre"
                  lines_in_order: ["later line", "disk on fire"]
                  count: {text: "disk on fire", equals: 2}
              - file: /proc/sys/kernel/printk
                equals: "4\\t4\\t1\\t7\\n"
              - file: /proc/nope
                contains: x
        """)
    assert r.status == FAIL
    text = failure_text(r)
    assert "s.yaml:8:11: boot 1: dmesg: contains" in text
    assert "expected to contain: 'disk on fyre'" in text
    assert "closest line" in text and "disk on fire" in text
    assert "missing [2] 'disk on fire' after line" in text
    assert "it appears earlier, at line" in text
    assert "expected the number of occurrences of 'disk on fire' == 2, saw 1" in text
    assert "-4\\t4\\t1\\t7" in text and "+7\\t4\\t1\\t7" in text  # the diff, tabs shown
    assert "cannot read /proc/nope: No such file or directory" in text


def test_a_crash_in_plugin_code_is_an_oops_the_scenario_can_expect(plugin_dir: Path) -> None:
    r = run(f"""\
        name: crashes
        plugin_path: {plugin_dir}
        plugins: [crashy]
        boots:
          - expect:
              - dmesg: {{contains: "RuntimeError: a bug in the plugin"}}
              - dmesg: {{contains: "Attempted to kill init!"}}
        """, plugin_dir)
    assert r.status == PASS, failure_text(r)
    assert run("name: fine\nboots: [{}]\n").status == PASS


def test_a_deadlock_hangs_the_boot_and_is_reported(plugin_dir: Path) -> None:
    r = run(f"""\
        name: hangs
        plugin_path: {plugin_dir}
        plugins: [hangs]
        boots:
          - expect:
              - outcome: hang
              - reports: deadlock
                contains: "BUG: spinlock recursion on CPU#0"
        """, plugin_dir)
    assert r.status == PASS, failure_text(r)


def test_virtual_time_limit() -> None:
    r = run("""\
        name: sleepy
        timeout: 60
        boots:
          - steps:
              - sleep: 30
              - sleep: 7200
        """)
    assert r.status == FAIL
    assert r.failures[0].title == ("the scenario ran out of virtual time in boot 1, during "
                                   "sleep 7200 (s.yaml:6:9)")
    assert 60 <= r.virtual < 61


def test_steps_that_cannot_run_are_failures() -> None:
    r = run("""\
        name: stops
        boots:
          - cmdline: "oops=panic"
            steps:
              - oops: "BUG: boom"
              - printk: "never"
          - reboot: warm
            cmdline: "console=ttyS1 a1 a2 a3 a4 a5 a6 a7 a8 a9 a10 a11 a12 a13 a14 a15 a16 a17 a18 a19 a20 a21 a22 a23 a24 a25 a26 a27 a28 a29 a30 a31 a32 a33"
            steps:
              - printk: "never either"
        """)
    titles = [f.title for f in r.failures]
    assert titles[0] == ("boot 1: 1 step(s) did not run: the kernel stopped (halt, panic: "
                         "'Fatal exception') during oops 'BUG: boom' at 5:9")
    assert titles[1].startswith("boot 2: 1 step(s) did not run: the kernel stopped (halt")
    assert titles[1].endswith("before init ran")


def test_write_insmod_and_errno_expectations() -> None:
    r = run("""\
        name: errnos
        plugins: [{name: memconsole, builtin: false}]
        boots:
          - cmdline: memconsole=8192
            steps:
              - write: {path: /proc/consoles, value: x, errno: EACCES}
              - write: {path: /proc/consoles, value: x}
              - insmod: {name: memconsole, errno: ENOENT}
              - rmmod: {name: memconsole, errno: ENOENT}
        """)
    titles = [f.title for f in r.failures]
    assert titles == [
        "boot 1: write /proc/consoles: write 'x' to /proc/consoles: Permission denied (EACCES)",
        "boot 1: insmod memconsole: expected to fail with ENOENT, but it succeeded",
        "boot 1: rmmod memconsole: expected to fail with ENOENT, but it succeeded",
    ]


def test_corrupt_finds_a_reservation_by_physical_address(plugin_dir: Path) -> None:
    r = run(f"""\
        name: corrupts
        plugin_path: {plugin_dir}
        plugins: [physres]
        boots:
          - cmdline: physres
          - reboot: warm
            before:
              - corrupt: {{reservation: physres, offset: 16, bytes: "4b 53 49 4d"}}
              - corrupt: {{reservation: physres, offset: 32, length: 4, fill: 0x41}}
              - corrupt: {{reservation: physres, offset: 64, length: 8, flips: 3}}
            cmdline: physres
        """, plugin_dir)
    assert r.status == PASS, failure_text(r)
    assert "wrote 4b 53 49 4d at 0x800010" in "\n".join(r.log)
    assert "filled 4 bytes at 0x800020 with 0x41" in "\n".join(r.log)
    assert "reservation physres [0x800000-0x801fff]: flipped bits 0x8000" in "\n".join(r.log)


def test_spawn_is_reproducible_per_seed() -> None:
    text = """\
        name: spawn
        seeds: [1, 2]
        boots:
          - steps:
              - spawn: {threads: 3, count: 20, text: "t{thread} m{i}", interval: 0}
              - cat: /dev/kmsg
        """
    a1, a2, b = run(text, seed=1), run(text, seed=1), run(text, seed=2)
    assert a1.status == PASS
    assert a1.log == a2.log
    assert sum("t2 m19" in line for line in a1.log) == 1
    assert a1.log != b.log

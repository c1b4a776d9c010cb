"""Scenarios under the deterministic scheduler: spawn and irq steps, checkers, validation."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ksim.scenario.loader import ScenarioInvalid, load_text
from ksim.scenario.report import failure_text
from ksim.scenario.runner import FAIL, PASS, run_scenario

VARIANTS = Path(__file__).resolve().parent / "stress_plugins"
PLUGINS = {
    # A /proc file whose write takes lock_a then lock_b, and whose read takes them the other
    # way round: lockdep's AB-BA, from the shell alone.
    "abba.py": '''
from ksim import DEFINE_SPINLOCK, KernelModule, ProcOps, proc_create, spin_lock, spin_unlock
class Abba(KernelModule):
    name = "abba"
    async def init(self):
        self.a, self.b = DEFINE_SPINLOCK("lock_a"), DEFINE_SPINLOCK("lock_b")
        proc_create("abba", 0o644, None, ProcOps(proc_read=self.read, proc_write=self.write))
        return 0
    async def write(self, file, data):
        await spin_lock(self.a); await spin_lock(self.b)
        spin_unlock(self.b); spin_unlock(self.a)
        return len(data)
    async def read(self, file, count, pos):
        await spin_lock(self.b); await spin_lock(self.a)
        spin_unlock(self.a); spin_unlock(self.b)
        return b""
''',
    # A console whose write keeps a mutex it never releases: the second thread to print
    # sleeps on it forever, holding the console lock; once the others finish, nothing can run.
    "stuck.py": '''
from ksim import CON_ENABLED, Console, DEFINE_MUTEX, KernelModule, mutex_lock, register_console
class Stuck(KernelModule):
    name = "stuck"
    async def init(self):
        self.m = DEFINE_MUTEX("stuck_mutex")
        self.con = Console(name="stuck", write=self.write, index=0, flags=CON_ENABLED)
        await register_console(self.con)
        return 0
    async def write(self, con, data):
        if b"worker" in data:
            await mutex_lock(self.m)
''',
}

SMP = """\
    name: smp
    machine: {{cpus: 4}}
    seeds: [1, 2, 3]
    strategy: {strategy}
    boots:
      - cmdline: "loglevel=8"
        steps:
          - spawn: {{threads: 6, count: 8, text: "t{{thread}} m{{i}}", wait: false}}
          - irq: {{count: 6, every: 10}}
          - cat: /dev/kmsg
    """


@pytest.fixture(scope="module")
def plugin_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("smp_plugins")
    for name, text in PLUGINS.items():
        (folder / name).write_text(text)
    return folder


def load(text: str, base: Path | None = None):  # type: ignore[no-untyped-def]
    [sc] = load_text(textwrap.dedent(text), "s.yaml", base)
    return sc


def run(text: str, base: Path | None = None, seed: int | None = None):  # type: ignore[no-untyped-def]
    return run_scenario(load(text, base), seed)


def kmsg(result) -> list[str]:  # type: ignore[no-untyped-def]
    """The text of each /dev/kmsg record a ``cat: /dev/kmsg`` step logged."""
    return [line.split(";", 1)[1] for line in result.log if line.startswith("  | ")]


def workers(lines: list[str]) -> list[str]:
    return [line for line in lines if re.fullmatch(r"t\d m\d+|irq \d+ on cpu \d", line)]


# -- determinism -------------------------------------------------------------------------------

def test_the_same_seed_gives_the_same_run_and_other_seeds_differ() -> None:
    text = SMP.format(strategy="random")
    a1, a2, b = run(text, seed=1), run(text, seed=1), run(text, seed=2)
    assert a1.status == PASS, failure_text(a1)
    assert kmsg(a1) == kmsg(a2)
    assert [line for line in a1.log if "scheduler" in line] == \
        [line for line in a2.log if "scheduler" in line]
    lines = workers(kmsg(a1))
    assert len(lines) == 6 * 8 + 6
    assert workers(kmsg(b)) != lines
    for t in range(6):  # each thread's messages in order, whatever the interleaving
        assert [m for m in lines if m.startswith(f"t{t} ")] == [f"t{t} m{i}" for i in range(8)]


def test_a_seed_replays_in_another_process_whatever_its_hash_seed(tmp_path: Path) -> None:
    file = tmp_path / "smp.yaml"
    file.write_text(textwrap.dedent(SMP.format(strategy="pct:3")))
    in_process = workers(kmsg(run_scenario(load_text(file.read_text(), str(file))[0], 2)))
    env = dict(os.environ, PYTHONHASHSEED="12345")
    proc = subprocess.run([sys.executable, "-m", "ksim", "run", "-v", "--seed", "2",
                           "--no-progress", str(file)], capture_output=True, text=True, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    other = [line.split("| ", 1)[1].split(";", 1)[1] for line in proc.stdout.splitlines()
             if "| " in line and ";" in line]
    assert workers(other) == in_process


def test_round_robin_ignores_the_seed_for_its_interleaving() -> None:
    text = SMP.format(strategy="rr")
    assert workers(kmsg(run(text, seed=1))) == workers(kmsg(run(text, seed=2)))
    assert workers(kmsg(run(text, seed=1))) != workers(kmsg(run(SMP.format(strategy="random"),
                                                                 seed=1)))


# -- spawn and irq semantics ---------------------------------------------------------------------

def test_spawn_pins_threads_to_the_cpu_asked() -> None:
    """cpu: any interrupts land on the CPU of the thread they interrupt: all on CPU 2 here."""
    r = run("""\
        name: pinned
        machine: {cpus: 4}
        boots:
          - cmdline: "loglevel=8"
            steps:
              - spawn: {threads: 3, count: 20, text: "t{thread} m{i}", cpu: 2, wait: false}
              - irq: {count: 6, every: 4}
              - cat: /dev/kmsg
        """)
    assert r.status == PASS, failure_text(r)
    irqs = [line for line in workers(kmsg(r)) if line.startswith("irq")]
    assert len(irqs) == 6 and all(line.endswith("on cpu 2") for line in irqs), irqs
    assert any("3 threads" in line for line in r.log), r.log


def test_irq_on_an_idle_machine_runs_in_order_round_robin_or_pinned() -> None:
    r = run("""\
        name: idle
        machine: {cpus: 3}
        boots:
          - steps:
              - irq: {count: 5, level: info}
              - irq: {count: 2, cpu: 2, text: "pinned {i} cpu {cpu}"}
              - cat: /dev/kmsg
        """)
    assert r.status == PASS, failure_text(r)
    lines = [line for line in kmsg(r) if line.startswith(("irq ", "pinned "))]
    assert lines == ["irq 0 on cpu 0", "irq 1 on cpu 1", "irq 2 on cpu 2", "irq 3 on cpu 0",
                     "irq 4 on cpu 1", "pinned 0 cpu 2", "pinned 1 cpu 2"]
    assert any("7 interrupts handled" in line for line in r.log)


def test_irqs_raised_while_threads_run_land_on_a_busy_cpu_and_interleave() -> None:
    r = run("""\
        name: busy
        machine: {cpus: 4}
        seed: 3
        boots:
          - cmdline: "loglevel=8"
            steps:
              - spawn: {threads: 2, count: 30, text: "t{thread} m{i}", wait: false}
              - irq: {count: 8, every: 5}
              - cat: /dev/kmsg
        """)
    assert r.status == PASS, failure_text(r)
    lines = workers(kmsg(r))
    irqs = [line for line in lines if line.startswith("irq")]
    assert len(irqs) == 8
    # cpu: any while threads run: the CPU of the thread at that point (threads on CPUs 0, 1)
    assert {line.rsplit(" ", 1)[1] for line in irqs} <= {"0", "1"}
    assert not lines[-1].startswith("irq")  # they arrived while the threads printed


def test_every_other_step_is_a_sync_point() -> None:
    r = run("""\
        name: sync
        machine: {cpus: 2}
        boots:
          - cmdline: "loglevel=8"
            steps:
              - irq: {count: 2, cpu: 1, text: "late {i}", wait: false}
              - spawn: {threads: 2, count: 5, cpu: 0, text: "t{thread} m{i}", wait: false}
              - printk: "shell"
              - cat: /dev/kmsg
        """)
    assert r.status == PASS, failure_text(r)
    lines = [line for line in kmsg(r) if re.fullmatch(r"t\d m\d|late \d|shell", line)]
    assert lines[-3:] == ["late 0", "late 1", "shell"]
    assert len(lines) == 13


def test_a_panic_step_is_a_sync_point_too() -> None:
    r = run("""\
        name: panic
        machine: {cpus: 2}
        boots:
          - cmdline: "panic=1"
            steps:
              - irq: {count: 3, wait: false}
              - panic: "boom"
            expect:
              - dmesg: {count: {text: "irq", equals: 3}}
              - rebooted: true
        """)
    assert r.status == PASS, failure_text(r)


# -- checkers and their subjects -----------------------------------------------------------------

def test_lockdep_catches_plain_spin_lock_in_proc_read_and_irqsave_passes() -> None:
    """L2: console writes run with interrupts off (C6), so a plain spin_lock in record_msg
    alone is silent; a reader taking the lock with interrupts on while an interrupt printks
    is the inconsistent state lockdep reports."""
    text = """\
        name: l2
        machine: {{cpus: 2}}
        plugin_path: {path}
        plugins: [{plugin}]
        boots:
          - cmdline: "memconsole=8192"
            steps:
              - spawn: {{threads: 2, count: 3, text: "t{{thread}}", wait: false}}
              {reader}
              - irq
            expect:
              - reports: {{kind: lockdep, count: {n}}}
              - reports: {{kind: data-race, count: 0}}
              - outcome: shutdown
        """
    reader = "- read: {path: /proc/memconsole, count: 3}"
    bad = run(text.format(path=VARIANTS, plugin="memconsole_spinlock", reader=reader, n=1))
    assert bad.status == PASS, failure_text(bad)
    writers_only = run(text.format(path=VARIANTS, plugin="memconsole_spinlock", reader="",
                                   n=0))
    assert writers_only.status == PASS, failure_text(writers_only)
    good = run(text.format(path=VARIANTS, plugin="memconsole", reader=reader, n=0))
    assert good.status == PASS, failure_text(good)


def test_data_races_are_the_readers_against_writers_unless_checkers_are_off() -> None:
    """Writers are serialized by the console lock, which the race detector sees: without
    buf_lock only a concurrent reader races them."""
    text = """\
        name: race
        machine: {{cpus: 2}}
        plugin_path: {path}
        plugins: [memconsole_nolock]
        boots:
          - cmdline: "memconsole=8192"
            {checkers}
            steps:
              - spawn: {{threads: 2, count: 3, text: "t{{thread}}", wait: false}}
              {reader}
            expect:
              - reports: {{kind: data-race, count: {{min: {n}, max: {m}}}}}
        """
    reader = "- read: {path: /proc/memconsole, count: 3}"
    on = run(text.format(path=VARIANTS, checkers="", reader=reader, n=1, m=99))
    assert on.status == PASS, failure_text(on)
    writers = run(text.format(path=VARIANTS, checkers="", reader="- expect: []", n=0, m=0))
    assert writers.status == PASS, failure_text(writers)
    off = run(text.format(path=VARIANTS, checkers="checkers: false", reader=reader, n=0, m=0))
    assert off.status == PASS, failure_text(off)


def test_checkers_true_watches_a_boot_without_threads(plugin_dir: Path) -> None:
    text = """\
        name: abba
        plugins: [abba]
        plugin_path: {path}
        boots:
          - checkers: {on}
            steps:
              - write: /proc/abba=1
              - cat: /proc/abba
            expect:
              - reports: {{kind: lockdep, count: {n}}}
        """
    r = run(text.format(path=plugin_dir, on="true", n=1))
    assert r.status == PASS, failure_text(r)
    r = run(text.format(path=plugin_dir, on="false", n=0))
    assert r.status == PASS, failure_text(r)
    failed = run(text.format(path=plugin_dir, on="true", n=0))
    assert failed.status == FAIL
    assert "possible circular locking dependency detected" in failure_text(failed)


def test_a_deadlock_in_a_console_write_ends_the_boot_as_a_hang_with_its_report(
        plugin_dir: Path) -> None:
    """The console's write takes a mutex it never releases.  The CPU that holds the console
    lock prints every worker's record (C6), so it is the one that takes the mutex again:
    recursive locking, and the machine hangs."""
    r = run(f"""\
        name: stuck
        machine: {{cpus: 2}}
        plugins: [stuck]
        plugin_path: {plugin_dir}
        boots:
          - cmdline: "loglevel=8"
            steps:
              - spawn: {{threads: 3, count: 1, text: "worker {{thread}}"}}
              - printk: never
            expect:
              - outcome: hang
              - reports: {{kind: deadlock, count: 1, contains: "possible recursive locking"}}
              - reports: {{kind: deadlock, contains: "stuck_mutex"}}
              - reports: {{kind: bug, contains: "sleeping function called from invalid context"}}
              - dmesg: {{not_contains: never}}
        """)
    assert r.status == FAIL  # the printk after the spawn never ran
    assert len(r.failures) == 1 and "did not run" in r.failures[0].title, failure_text(r)


# -- validation ------------------------------------------------------------------------------------

def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioInvalid) as info:
        load_text(textwrap.dedent(text), "t.yaml")
    return [str(p) for p in info.value.problems]


def test_bad_irq_spawn_strategy_and_checkers_are_located() -> None:
    found = problems("""\
        name: bad
        machine: {cpus: 2}
        strategy: pct:0
        boots:
          - checkers: "yes"
            steps:
              - irq: {count: -1, every: 0, cpu: "some"}
              - irq: {cpu: 2}
              - irq: {cpus: 1}
              - irq: {text: 5}
              - spawn: {text: x, threads: 0, cpu: 5}
              - spawn: {text: x, level: loud, wait: "no"}
        ---
        name: bad2
        strategy: randm
        boots: [{steps: [irq]}]
        """)
    expected = [
        "t.yaml:3:11: strategy: PCT depth must be at least 1, not 0",
        "t.yaml:5:15: checkers: expected true or false, got string 'yes'",
        "t.yaml:7:9: irq: count must be >= 0",
        "t.yaml:7:9: irq: cpu is 'any' or a CPU number, got 'some'",
        "t.yaml:7:9: irq: every must be >= 1",
        "t.yaml:8:9: irq: cpu 2 does not exist (the machine has 2)",
        "t.yaml:9:15: irq: unknown field 'cpus'; did you mean 'cpu'?",
        "t.yaml:10:21: irq: text: expected a string, got integer 5",
        "t.yaml:11:9: spawn: cpu 5 does not exist (the machine has 2)",
        "t.yaml:11:9: spawn: threads must be >= 1",
        "t.yaml:12:45: spawn: wait: expected true or false, got string 'no'",
        "t.yaml:15:11: strategy: unknown strategy 'randm'; did you mean 'random'?",
    ]
    assert len(found) == len(expected), "\n".join(found)
    for got, want in zip(found, expected):
        assert got.startswith(want), (got, want)


def test_the_report_kinds_include_the_checkers() -> None:
    for kind in ("lockdep", "data-race", "deadlock", "bug", "lockup", "warning", "oops", "any"):
        load_text(f"name: k\nboots: [{{expect: [{{reports: {{kind: {kind}, count: 0}}}}]}}]\n")
    assert "did you mean 'data-race'" in problems(
        "name: k\nboots: [{expect: [{reports: {kind: data-rase, count: 0}}]}]\n")[0]


# -- PCT's k and the step budget ---------------------------------------------------------------

def test_pct_change_points_fall_inside_a_scenario_run() -> None:
    """PCT draws its D-1 change points from the run's length k, measured by a round-robin
    first run (seed 0): on a ~300-point scenario every seed switches, and the first run's
    length is the k each seed's strategy got."""
    from ksim.scenario.runner import run_lengths
    sc = load(SMP.format(strategy="pct:3"))
    [k] = run_lengths(sc).values()
    assert 100 < k < 2000
    for seed in (1, 2, 3):
        result = run_scenario(sc, seed)
        assert result.status == PASS, failure_text(result)
        [line] = [ln for ln in result.log if "scheduler pct" in ln]
        switches = int(re.search(r"(\d+) switches", line).group(1))  # type: ignore[union-attr]
        assert switches >= 1, line


def test_a_thread_polling_forever_under_pct_ends_in_a_livelock_verdict() -> None:
    """Two threads each waiting, at their preemption points, for the other CPU to hold the
    console lock, once both have printed: neither ever will, yet both keep running. The boot
    stops at its step budget as a hang with a livelock report; the run never hangs (and its
    round-robin first run, cut short the same way, gives PCT no k)."""
    text = """\
        name: poll
        machine: {cpus: 2}
        strategy: pct:2
        boots:
          - steps:
              - spawn: {threads: 2, count: 1, text: "x", panic: "never",
                        until_held: console_sem}
            expect:
              - outcome: hang
              - reports: {kind: livelock, count: 1, contains: "did not end within"}
    """
    result = run(text)
    assert result.status == PASS, failure_text(result)

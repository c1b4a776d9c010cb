"""Scenario throughput, and the cost of one boot -> panic -> warm reboot -> read cycle (issue 5).

* Library: every scenario (and seed) of ``scenarios/``, run in process; scenarios/s.
* Cycle: a scenario of N crash-and-reboot cycles minus the same scenario with one cycle,
  divided by N-1: the marginal cost of booting with memconsole, printk-ing, panicking (which
  restarts the machine warm) and reading ``/proc/memconsole`` back on the next boot.  The
  baseline is measured in the same run: one plain boot of the same machine (the floor any
  cycle pays).  The reference the issue gives — a real 6.1 kernel with ramoops under QEMU,
  about 12 s a cycle on this machine — cannot be measured here; it is printed for scale.
"""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import trio
import trio.testing

from _common import best_of, now, report
from ksim import Machine
from ksim.scenario import load_paths, load_text, run_scenario

ROOT = Path(__file__).resolve().parent.parent
QEMU_SECONDS_PER_CYCLE = 12.0
CYCLES = 40


def cycle_scenario(cycles: int) -> str:
    boots = ['  - cmdline: "memconsole=8192 nokaslr"\n'
             '    steps:\n'
             '      - printk: {level: err, text: "crash %d"}\n'
             '      - panic: "Fatal exception"\n' % 0]
    for i in range(1, cycles):
        boots.append('  - reboot: warm\n'
                     '    cmdline: "memconsole=8192 nokaslr"\n'
                     '    steps:\n'
                     '      - expect:\n'
                     '          - file: /proc/memconsole\n'
                     '            contains: "crash %d"\n'
                     '      - printk: {level: err, text: "crash %d"}\n'
                     '      - panic: "Fatal exception"\n' % (i - 1, i))
    return ("name: crash cycles\nmachine: {ram: 64M}\nplugins: [memconsole]\nboots:\n"
            + "".join(boots))


def run_text(text: str) -> float:
    (scenario,) = load_text(text, "cycles.yaml", ROOT)
    start = now()
    result = run_scenario(scenario, 1)
    elapsed = now() - start
    assert result.status == "PASS", result.failures
    return elapsed


def plain_boot() -> float:
    async def main() -> float:
        machine = Machine("64M", seed=1)
        start = now()
        async with machine.boot(""):
            pass
        machine.close()
        return now() - start

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


def whole_command() -> float:
    """CPU seconds of ``ksim run scenarios/`` in a fresh interpreter: imports, plugin loading,
    YAML parsing and every run, what a user waits for."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([sys.executable, "-m", "ksim", "run", str(ROOT / "scenarios")],
                   stdout=subprocess.DEVNULL)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    seconds = best_of(2, whole_command)
    print(f"ksim run scenarios/ (fresh process: imports, YAML, every run): {seconds * 1000:.0f} ms "
          f"CPU")

    def library() -> float:
        start = now()
        scenarios = load_paths([ROOT / "scenarios"])  # YAML loading is part of the cost
        runs = [(sc, seed) for sc in scenarios for seed in sc.seeds]
        for sc, seed in runs:
            run_scenario(sc, seed)  # the verdicts are the tests' business, not the timing's
        return now() - start

    library()  # warm up imports and plugin loading
    seconds = best_of(3, library)
    runs = [(sc, seed) for sc in load_paths([ROOT / "scenarios"]) for seed in sc.seeds]
    print(f"scenario library: {len(runs)} runs in {seconds * 1000:.0f} ms: "
          f"{len(runs) / seconds:.0f} scenarios/s")
    many, one = cycle_scenario(CYCLES), cycle_scenario(1)
    per_cycle = (best_of(3, lambda: run_text(many)) - best_of(3, lambda: run_text(one))) \
        / (CYCLES - 1)
    floor = best_of(5, plain_boot)
    report("boot -> panic -> warm reboot -> read cycle", per_cycle * 1000, floor * 1000, "ms",
           "one plain boot", higher_is_better=False, below=12)
    report("the same cycle vs QEMU + ramoops", per_cycle * 1000, QEMU_SECONDS_PER_CYCLE * 1000,
           "ms", "the issue's QEMU + ramoops reference", higher_is_better=False, at_least=1000)


if __name__ == "__main__":
    main()

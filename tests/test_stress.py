"""``ksim stress`` acceptance (issue 4): broken memconsole variants are caught, the real one
passes 1,000 seeds, and a failing seed replays to the identical output."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from ksim.stress import StressConfig, check_text, run_seed, stress_message

VARIANTS = str(Path(__file__).resolve().parent / "stress_plugins")
SMALL = dict(cmdline="memconsole=8192", cpus=2, threads=3, messages=20, irq_printk=5,
             plugin_path=(VARIANTS,))


def config(plugin: str, **kw: object) -> StressConfig:
    return StressConfig(plugins=(plugin,), **{**SMALL, **kw})  # type: ignore[arg-type]


def first_failure(cfg: StressConfig, seeds: range):  # type: ignore[no-untyped-def]
    for seed in seeds:
        result = run_seed(cfg, seed)
        if not result.ok:
            return result
    return None


def test_check_text_finds_torn_and_reordered_lines():
    good = "".join("[    0.000000] %s\n" % stress_message("t00", i) for i in range(3))
    assert check_text(good, "x", partial_first=False) == []
    torn = good.replace("stress t00 m0001", "stress t00 m0001 xyz")
    assert "corrupted" in check_text(torn, "x", partial_first=False)[0] or \
        "not a whole" in check_text(torn, "x", partial_first=False)[0]
    lines = good.splitlines(keepends=True)
    assert "after" in check_text(lines[1] + lines[0], "x", partial_first=False)[0]
    assert "cut" in check_text(good[:-5], "x", partial_first=False)[0]
    many = "".join("[    0.000000] %s\n" % stress_message("t123", i) for i in (9999, 10000))
    assert check_text(many, "x", partial_first=False) == []  # 3-digit threads, 5-digit indices


def test_memconsole_without_its_lock_is_caught_within_100_seeds():
    failure = first_failure(config("memconsole_nolock"), range(100))
    assert failure is not None
    assert failure.schedule.startswith("ks2.")


def test_plain_spin_lock_is_caught_by_lockdep_in_a_single_run():
    """L2/L6: taken in hardirq context and elsewhere with interrupts on: lockdep-lite reports
    it from the acquisitions of one run, whether or not that run deadlocked."""
    result = run_seed(config("memconsole_spinlock", threads=2, messages=50, irq_printk=20), 2)
    assert any(v.startswith("lockdep: WARNING: inconsistent lock state") for v in result.violations)


def _seed_ok(seed: int) -> tuple[int, tuple[str, ...]]:
    result = run_seed(config("memconsole"), seed)
    return seed, result.violations


def test_real_memconsole_passes_1000_seeds():
    with ProcessPoolExecutor(max_workers=2) as pool:
        failures = [(seed, v) for seed, v in pool.map(_seed_ok, range(1000), chunksize=25) if v]
    assert failures == []


def test_a_failing_seed_replays_to_the_identical_output():
    cfg = config("memconsole_nolock")
    failure = first_failure(cfg, range(100))
    assert failure is not None
    again = run_seed(cfg, failure.seed, replay=failure.schedule)
    assert (again.digest, again.violations, again.schedule) == \
        (failure.digest, failure.violations, failure.schedule)


def test_cli_reports_seed_schedule_and_replay_command(tmp_path: Path):
    out = tmp_path / "r.json"
    trace = tmp_path / "t.json"
    base = [sys.executable, "-m", "ksim", "stress", "--plugin-path", VARIANTS, "--plugin",
            "memconsole_nolock", "--cmdline", "memconsole=8192", "--cpus", "2", "--threads",
            "3", "--messages", "20", "--irq-printk", "5"]
    proc = subprocess.run(base + ["--seeds", "0..99", "-j", "2", "--json", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    replay = next(line for line in proc.stdout.splitlines() if "replay:" in line)
    command = replay.split("replay:", 1)[1].strip()
    assert "--replay ks2." in command and "--seed" in command
    results = json.loads(out.read_text())
    assert len(results) == 100 and any(not r["ok"] for r in results)
    args = command.split()[2:]
    again = subprocess.run([sys.executable, "-m", "ksim", "stress", *args],
                           capture_output=True, text=True)
    assert again.returncode == 1 and "FAIL seed" in again.stdout
    real = [a if a != "memconsole_nolock" else "memconsole" for a in base[3:]]
    clean = subprocess.run([sys.executable, "-m", "ksim", *real, "--seed", "0", "--trace",
                            str(trace)], capture_output=True, text=True)
    assert clean.returncode == 0, clean.stdout
    events = json.loads(trace.read_text())["traceEvents"]
    assert {e.get("cat") for e in events} >= {"run", "lock", "irq"}


@pytest.mark.parametrize("bad", [["--seeds", "9..1"], ["--strategy", "nope"],
                                 ["--plugin", "nosuch"], ["--cpus", "0"]])
def test_cli_bad_input_is_one_line_and_status_2(bad):
    proc = subprocess.run([sys.executable, "-m", "ksim", "stress", *bad],
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1


def test_a_seed_gives_the_same_run_in_any_process():
    """Determinism does not rest on trio's run queue, hash seeds or memory addresses."""
    code = ("from ksim.stress import StressConfig, run_seed\n"
            "r = run_seed(StressConfig(plugins=('memconsole',), cmdline='memconsole=8192', "
            "cpus=3, threads=4, messages=30, irq_printk=8), 11)\n"
            "print(r.digest, r.schedule, r.points, r.ok)")
    outputs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              env={**os.environ, "PYTHONHASHSEED": str(h)}).stdout
               for h in (1, 2)}
    assert len(outputs) == 1 and outputs.pop().endswith("True\n")

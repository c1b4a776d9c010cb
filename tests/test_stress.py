"""``ksim stress`` acceptance (issue 4): broken memconsole variants are caught, the real one
passes 1,000 seeds, and a failing seed replays to the identical output."""

from __future__ import annotations

import json
import os
import random
import shlex
import signal
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from ksim.stress import LineCheck, StressConfig, check_text, run_seed, stress_message

VARIANTS = str(Path(__file__).resolve().parent / "stress_plugins")
KSIM = str(Path(sys.executable).parent / "ksim")
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
    base = [KSIM, "stress", "--plugin-path", VARIANTS, "--plugin",
            "memconsole_nolock", "--cmdline", "memconsole=8192", "--cpus", "2", "--threads",
            "3", "--messages", "20", "--irq-printk", "5"]
    proc = subprocess.run(base + ["--seeds", "0..99", "-j", "2", "--json", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 1, proc.stderr
    replay = next(line for line in proc.stdout.splitlines() if "replay:" in line)
    command = replay.split("replay:", 1)[1].strip()
    assert "--replay ks2." in command and "--seed" in command
    report = json.loads(out.read_text())
    assert report["complete"] and report["interrupted_by"] is None
    results = report["results"]
    assert [r["seed"] for r in results] == list(range(100)) and any(not r["ok"] for r in results)
    again = subprocess.run([KSIM, *shlex.split(command)[1:]], capture_output=True, text=True)
    assert again.returncode == 1 and "FAIL seed" in again.stdout


@pytest.mark.parametrize("bad", [["--seeds", "9..1"], ["--strategy", "nope"],
                                 ["--plugin", "nosuch"], ["--cpus", "0"], ["--cpus", "8193"],
                                 ["--threads", "99999999999999999999"], ["--replay", ""],
                                 ["--replay", "ks2.AAAA", "--seeds", "0..1"],
                                 ["--trace-seed", "3"], ["--seeds", "0..3", "--trace", "t.json",
                                                         "--trace-seed", "7"], ["-j", "0"]])
def test_cli_bad_input_is_one_line_and_status_2(bad):
    proc = subprocess.run([KSIM, "stress", *bad], capture_output=True, text=True)
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


def stress(*args: str, **kw: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KSIM, "stress", *args], capture_output=True, text=True,
                          timeout=300, **kw)  # type: ignore[call-overload]


SMALL_ARGS = ["--cmdline", "memconsole=8192", "--cpus", "2", "--threads", "3", "--messages",
              "20", "--irq-printk", "5"]


def test_strategy_syntax_is_explained():
    for spec, expected in (("pct:abc", "the PCT depth must be a whole number from 1 to 64, not "
                                       "'abc'"),
                           ("pct:99999999999999999999", "PCT depth must be at most 64, not "),
                           ("rnd", "expected random, pct, pct:DEPTH")):
        proc = stress("--strategy", spec)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1
        assert proc.stderr.startswith(f"ksim stress: --strategy '{spec}': {expected}")
    assert "did you mean 'random'?" in stress("--strategy", "rnd").stderr


def test_pct_seeds_that_hung_now_end_and_pass():
    """Issue 8: the reader busy-polled ahead of the writers under PCT forever; its work is
    bounded now, and these seeds end (and memconsole holds)."""
    cfg = StressConfig(plugins=("memconsole",), cmdline="memconsole=65536", strategy="pct:3")
    for seed in (26, 28, 38, 39):
        result = run_seed(cfg, seed)
        assert result.ok, (seed, result.violations)
        assert result.switches >= 1  # PCT's change points fell inside the run
    proc = stress("--plugin", "memconsole", "--cmdline", "memconsole=65536", "--seed", "26",
                  "--strategy", "pct:3")
    assert proc.returncode == 0, proc.stdout


def test_a_livelock_ends_with_a_verdict_naming_who_ran_and_who_starved():
    """A console that polls for something only a lower-priority thread does livelocks under
    PCT without change points; the step budget ends the run with a verdict and a replay."""
    args = ["--plugin-path", VARIANTS, "--plugin", "spin_until_read", "--cpus", "2",
            "--threads", "2", "--messages", "3", "--strategy", "pct:1"]
    proc = stress(*args, "--seeds", "0..3")
    assert proc.returncode == 1
    out = proc.stdout
    assert "FAIL seed 0: ksim: livelock: the run did not end within 10000 preemption points" \
        in out
    assert "  budget: 20 x the " in out
    assert "  ran:     stress/0 (cpu 0) 5000 of the last 5000 points" in out
    assert "  starved: reader/0 (cpu 1) runnable, never ran" in out
    replay = next(line for line in out.splitlines() if "replay:" in line)
    again = stress(*shlex.split(replay.split("replay:", 1)[1])[2:])
    assert again.returncode == 1 and "livelock" in again.stdout
    fair = stress(*args[:-2], "--strategy", "rr", "--seed", "0")
    assert fair.returncode == 0, fair.stdout


@pytest.mark.parametrize(("plugin", "violation"), [
    ("invariants_none", "invariants_none: check_invariants() must return a list of str, not "
                        "NoneType"),
    ("invariants_raise", "invariants_raise: check_invariants() raised KeyError: 'records'"),
])
def test_a_broken_check_invariants_is_a_violation_naming_the_plugin(plugin, violation):
    proc = stress("--plugin-path", VARIANTS, "--plugin", plugin, "--seeds", "0..1",
                  "--threads", "1", "--messages", "2")
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr
    assert f"FAIL seed 0: {violation}\n" in proc.stdout
    assert f"FAIL seed 1: {violation}\n" in proc.stdout


@pytest.mark.parametrize("strategy", ["random", "pct:2", "rr"])
def test_irq_printk_n_raises_exactly_n_interrupts_per_seed(tmp_path: Path, strategy: str):
    out = tmp_path / "r.json"
    proc = stress("--seeds", "0..4", "--irq-printk", "20", "--threads", "3", "--messages", "30",
                  "--strategy", strategy, "--json", str(out))
    assert proc.returncode == 0, proc.stdout
    assert [r["irqs"] for r in json.loads(out.read_text())["results"]] == [20] * 5


def test_c13_the_kernels_dropped_messages_line_is_a_whole_line(tmp_path: Path):
    dropped = "[    0.000001] %s\n** 161 printk messages dropped **\n[    0.000002] %s\n" % (
        stress_message("t00", 1), stress_message("t00", 200))
    assert check_text(dropped, "x", partial_first=False) == []
    assert check_text("** 161 printk messages dropped\n", "x", partial_first=False)
    report = tmp_path / "r.json"
    proc = stress("--plugin", "memconsole", "--cmdline", "memconsole=8192", "--threads", "32",
                  "--messages", "130", "--seed", "0", "--json", str(report))  # the log overflows
    assert proc.returncode == 0, proc.stdout
    assert json.loads(report.read_text())["results"][0]["dropped"] > 0


def test_each_problem_is_worded_with_its_own_line_number_however_often_the_line_recurs():
    good = "[    0.000000] %s\n" % stress_message("t00", 0)
    body = stress_message("t00", 1)
    corrupted = "[    0.000000] %s\n" % body.replace(" m0001 ", " m0001 x")
    bad = "[    0.000000] %sz\n" % body
    torn = body[:20] + "\n"
    text = good + corrupted + torn + bad + torn + "** 3 printk messages dropped **\n"
    check = LineCheck("ttyS0")
    check.feed(text)
    assert check.finish() == [
        f"ttyS0: line 2 is corrupted: {body.replace(' m0001 ', ' m0001 x')!r}",
        f"ttyS0: line 3 is torn: {body[:20]!r}",
        f"ttyS0: line 4 is not a whole message: {(body + 'z')!r}",
        f"ttyS0: line 5 is torn: {body[:20]!r}",  # the same text as line 3: its own number
    ]
    assert check.dropped == 3


def test_the_streaming_check_finds_what_the_whole_text_check_finds():
    lines = ["[    0.000000] %s\n" % stress_message("t%02d" % (i % 3), i // 3) for i in range(300)]
    lines[40] = lines[40][:30] + lines[41]  # torn
    lines[90], lines[93] = lines[93], lines[90]  # reordered
    text = "".join(lines) + "[    0.000000] cut"
    whole = check_text(text, "x", partial_first=False)
    assert len(whole) == 3
    rng = random.Random(8)
    for _ in range(20):
        check = LineCheck("x")
        pos = 0
        while pos < len(text):
            step = rng.randint(1, 200)
            check.feed(text[pos:pos + step])
            pos += step
        assert check.finish() == whole
    big = LineCheck("x")
    for i in range(20000):
        big.feed("[    0.000000] %s\n" % stress_message("t%02d" % (i % 8), i // 8))
    assert big.finish() == [] and len(big._last) == 8  # state per sender, not per message


def test_trace_runs_every_seed_and_traces_the_first_failing_one(tmp_path: Path):
    trace = tmp_path / "deep" / "er" / "t.json"  # missing folders are created
    report = tmp_path / "r.json"
    proc = stress("--plugin-path", VARIANTS, "--plugin", "memconsole_nolock", *SMALL_ARGS,
                  "--seeds", "0..9", "--trace", str(trace), "--json", str(report))
    results = json.loads(report.read_text())["results"]
    assert proc.returncode == 1 and len(results) == 10
    first = next(r["seed"] for r in results if not r["ok"])
    assert f"trace: seed {first} (the first failing seed) written to {trace}" in proc.stdout
    events = json.loads(trace.read_text())["traceEvents"]
    assert {e.get("cat") for e in events} >= {"run", "irq"}  # this variant takes no lock
    chosen = stress("--plugin-path", VARIANTS, "--plugin", "memconsole", *SMALL_ARGS,
                    "--seeds", "0..3", "--trace", str(trace), "--trace-seed", "2")
    assert chosen.returncode == 0
    assert f"trace: seed 2 (--trace-seed) written to {trace}" in chosen.stdout
    events = json.loads(trace.read_text())["traceEvents"]
    assert {e.get("cat") for e in events} >= {"run", "lock", "irq"}


def test_output_paths_are_checked_before_running(tmp_path: Path):
    afile = tmp_path / "afile"
    afile.write_text("precious\n")
    for option, path, message in (
            ("--trace", str(tmp_path), "is a folder"),
            ("--json", str(afile / "x.json"), "is a file, not a folder")):
        started = time.perf_counter()
        proc = stress("--seeds", "0..999", option, path)
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr.count("\n") == 1 and message in proc.stderr
        assert time.perf_counter() - started < 30  # refused, not run
    assert afile.read_text() == "precious\n"


def test_reports_are_written_atomically(tmp_path: Path, monkeypatch):
    from ksim import clitools
    target = tmp_path / "r.json"
    target.write_text("the previous report\n")

    def broken_replace(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(clitools.os, "replace", broken_replace)
    with pytest.raises(OSError):
        clitools.write_atomic(str(target), "x" * 100000)
    assert target.read_text() == "the previous report\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_a_replay_that_does_not_fit_the_configuration_is_one_line(tmp_path: Path):
    proc = stress("--plugin-path", VARIANTS, "--plugin", "memconsole_nolock", *SMALL_ARGS,
                  "--seeds", "0..3")
    replay = next(line for line in proc.stdout.splitlines() if "replay:" in line)
    schedule = shlex.split(replay.split("replay:", 1)[1])[-1]
    other = [a if a != "3" else "4" for a in SMALL_ARGS]  # four threads, not three
    mismatch = stress("--plugin-path", VARIANTS, "--plugin", "memconsole_nolock", *other,
                      "--seed", "0", "--replay", schedule)
    assert mismatch.returncode == 2 and mismatch.stdout == ""
    assert mismatch.stderr.startswith("ksim stress: --replay: this schedule does not fit this "
                                      "configuration (")
    assert mismatch.stderr.count("\n") == 1


def test_a_closed_stdout_never_turns_a_failure_into_success():
    command = shlex.join([KSIM, "stress", "--plugin-path", VARIANTS, "--plugin",
                          "memconsole_nolock", *SMALL_ARGS, "--seeds", "0..20"])
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; {command} | head -1"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1 and proc.stdout.startswith("FAIL seed ")
    assert "Traceback" not in proc.stderr


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize(("signum", "status", "twice"), [
    (signal.SIGINT, 130, False), (signal.SIGTERM, 143, False), (signal.SIGINT, 130, True)])
def test_a_signal_stops_the_workers_and_keeps_what_finished(tmp_path: Path, signum, status,
                                                            twice):
    report = tmp_path / "r.json"
    proc = subprocess.Popen([KSIM, "stress", "--seeds", "0..999", "-j", "2", "--json",
                             str(report)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.monotonic() + 60
    workers: set[int] = set()
    while len(workers) < 2 and time.monotonic() < deadline:
        workers = _children(proc.pid)
        time.sleep(0.05)
    time.sleep(1.5)  # let some seeds finish
    proc.send_signal(signum)
    if twice:  # an impatient user: the second Ctrl-C must not cut the clean-up short
        time.sleep(0.01)
        proc.send_signal(signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert err == f"ksim stress: stopped by {signal.Signals(signum).name}\n"
    assert f"(stopped by {signal.Signals(signum).name} after " in " ".join(out.split())
    data = json.loads(report.read_text())
    assert data["complete"] is False and data["interrupted_by"] == signal.Signals(signum).name
    assert 0 < len(data["results"]) < 1000
    assert all(r["ok"] for r in data["results"])
    assert len(workers) == 2 and not any(_alive(w) for w in workers)


def test_the_documented_lastlog_example_holds_its_invariants_under_stress():
    examples = str(Path(__file__).resolve().parents[1] / "docs" / "examples")
    proc = stress("--plugin-path", examples, "--plugin", "lastlog", "--seeds", "0..2",
                  "--threads", "3", "--messages", "30", "--irq-printk", "4")
    assert proc.returncode == 0, proc.stdout

"""Start-up: ``ksim boot -q --cat /proc/cmdline`` as a whole process, against a process that
only imports ksim's two core dependencies (``python -c "import trio, attrs"``).

Target (issue 8): within 1.5x.  Both run as fresh processes, interleaved, in the same run; the
figure is the median CPU time (user + system) of each, which a busy, shared machine disturbs
less than wall time (printed beside it).  The children may write bytecode caches, as a user's
first run does: the first of each is a warm-up.
"""

from __future__ import annotations

import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from _common import report

BIN = Path(sys.executable).parent
KSIM = [str(BIN / "ksim"), "boot", "-q", "--cat", "/proc/cmdline"]
BASELINE = [sys.executable, "-c", "import trio, attrs"]
TARGET = 1.5
RUNS = 15


def _child(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu, wall


def measure(runs: int = RUNS) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    for cmd in (KSIM, BASELINE):  # warm-up: bytecode caches, the page cache
        _child(cmd, env)
    ksim: list[tuple[float, float]] = []
    base: list[tuple[float, float]] = []
    for _ in range(runs):
        ksim.append(_child(KSIM, env))
        base.append(_child(BASELINE, env))
    return {"ksim_cpu": statistics.median(c for c, _ in ksim),
            "base_cpu": statistics.median(c for c, _ in base),
            "ksim_wall": statistics.median(w for _, w in ksim),
            "base_wall": statistics.median(w for _, w in base)}


def main() -> None:
    m = measure()
    report("ksim boot -q --cat /proc/cmdline, CPU", m["ksim_cpu"] * 1000, m["base_cpu"] * 1000,
           "ms", 'python -c "import trio, attrs"', higher_is_better=False, at_most=TARGET)
    print(f"  (wall: ksim {m['ksim_wall'] * 1000:.0f} ms, baseline {m['base_wall'] * 1000:.0f} "
          f"ms, {m['ksim_wall'] / m['base_wall']:.2f}x)")


if __name__ == "__main__":
    main()

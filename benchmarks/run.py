"""Run every benchmark: ``.venv/bin/python benchmarks/run.py [NAME...]``."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

BENCHMARKS = ["bench_printk", "bench_boot", "bench_sched", "bench_scenarios", "bench_startup",
              "bench_stress"]


def main(names: list[str]) -> None:
    for name in names or BENCHMARKS:
        print(f"== {name}")
        importlib.import_module(name if name.startswith("bench_") else "bench_" + name).main()


if __name__ == "__main__":
    main(sys.argv[1:])

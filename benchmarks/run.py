"""Run every benchmark: ``.venv/bin/python benchmarks/run.py [--json] [NAME...]``.

``--json`` prints the human lines to stderr and one JSON object to stdout: every figure with
its baseline, ratio, target and PASS/MISS verdict (``null`` where there is no target).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _common  # noqa: E402  (needs the path above)

BENCHMARKS = ["bench_targets", "bench_bounds", "bench_boot", "bench_scenarios",
              "bench_startup", "bench_stress"]


def main(args: list[str]) -> None:
    as_json = "--json" in args
    names = [a for a in args if a != "--json"]
    out = sys.stderr if as_json else sys.stdout
    with contextlib.redirect_stdout(out):
        for name in names or BENCHMARKS:
            print(f"== {name}")
            importlib.import_module(name if name.startswith("bench_") else "bench_" + name).main()
    if as_json:
        json.dump({"results": _common.RESULTS,
                   "missed": [r["name"] for r in _common.RESULTS if r["verdict"] == "MISS"]},
                  sys.stdout, indent=2)
        print()


if __name__ == "__main__":
    main(sys.argv[1:])

"""The ``ksim compare`` command: drivers x faults x seeds, the matrix, JSON and HTML.

Exit status: 0 the matrix was printed; 2 bad usage (an unknown driver or fault, a bad
``--seeds``; nothing run); 130 interrupted.  Importing this module is cheap: the simulator is
imported when the command runs.
"""

from __future__ import annotations

import argparse
import html
import json
import shlex
import signal
from collections.abc import Iterator
from typing import Any

from ksim.clitools import Stdout, UsageError, did_you_mean, prepare_output, shown, write_atomic

EXIT_STATUSES = """\
exit status:
  0    the matrix was printed
  2    bad usage or input (an unknown driver or fault, a bad --seeds): nothing was run
  130  interrupted (Ctrl-C)"""
MAX_SEEDS = 100_000
MAX_JOBS = 256
COLOURS = {"intact": "#b7e4b7", "flagged": "#ffe08a", "silent": "#f4a582", "lost": "#d6604d"}


def _count(low: int, high: int) -> Any:
    def convert(text: str) -> int:
        if not (text.isascii() and text.isdigit() and len(text) <= 12):
            raise argparse.ArgumentTypeError(f"expected a whole number, not {shown(text)}")
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is out of range: {low}..{high:,}")
        return value
    convert.__name__ = "number"
    return convert


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare", help="run named faults against crash-log drivers and print the matrix",
        description="Run each fault against each DRIVER (with the command line the plugin "
        "declares), seed after seed, and print for every (driver, fault) the fraction of seeds "
        "in which the last Oops was recovered intact, damaged but flagged, damaged silently, or "
        "lost, with the cost columns. Faults: docs/compare.md.",
        epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("drivers", nargs="+", metavar="DRIVER", help="a plugin that declares "
                   "crash_log_files (memconsole, ramoops, or your own)")
    p.add_argument("--faults", default=None, metavar="NAME,...",
                   help="the faults to run (default: all of them)")
    p.add_argument("--seeds", type=_count(1, MAX_SEEDS), default=10, metavar="N",
                   help="seeds 0..N-1 per fault (default 10)")
    p.add_argument("--seed", type=_count(0, 2 ** 63), default=None, metavar="N",
                   help="run seed N only and say why each cell is what it is (a cell's replay)")
    p.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                   help="also look for plugins in DIR (repeatable; also $KSIM_PLUGIN_PATH)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--html", metavar="FILE", help="also write one self-contained HTML page")
    p.add_argument("-j", "--jobs", type=_count(1, MAX_JOBS), default=1, metavar="N",
                   help="processes to spread the cells over (default 1)")
    p.set_defaults(handler=main)
    return p


def _replay(driver: str, fault: str, seed: int, plugin_path: list[str]) -> str:
    """The command that replays one cell's seed: every driver of the run (a fault may load
    them all at once), this fault, this seed; the cell is the row of ``driver``."""
    extra = "".join(f" --plugin-path {shlex.quote(d)}" for d in plugin_path)
    names = " ".join(shlex.quote(d.name) for d in _STATE["drivers"])
    return f"ksim compare {names} --faults {fault} --seed {seed}{extra}"


def _task(item: tuple[str, str, int]) -> Any:
    driver, fault, seed = item
    from ksim.compare import run_cell
    drivers = _STATE["drivers"]
    me = next(d for d in drivers if d.name == driver)
    return run_cell(me, [d for d in drivers if d is not me], fault, seed)


_STATE: dict[str, Any] = {}


def _results(items: list[tuple[str, str, int]], jobs: int) -> Iterator[Any]:
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            yield _task(item)
        return
    import multiprocessing
    ctx = multiprocessing.get_context("fork")  # the workers inherit the loaded drivers
    with ctx.Pool(min(jobs, len(items)), initializer=signal.signal,
                  initargs=(signal.SIGINT, signal.SIG_IGN)) as pool:
        yield from pool.imap(_task, items, chunksize=4)


def main(args: argparse.Namespace) -> int:
    from ksim.compare import CLASSES, FAULTS, cost, load_drivers
    from ksim.plugins import PluginError
    if args.faults is None:
        faults = list(FAULTS)
    else:
        faults = [f.strip() for f in args.faults.split(",") if f.strip()]
        if not faults:
            raise UsageError("ksim compare: --faults: expected NAME,... (faults: "
                             f"{', '.join(FAULTS)})")
        for f in faults:
            if f not in FAULTS:
                raise UsageError(f"ksim compare: --faults: unknown fault {shown(f)}"
                                 f"{did_you_mean(f, FAULTS)} (faults: {', '.join(FAULTS)})")
    if len(set(args.drivers)) != len(args.drivers):
        raise UsageError("ksim compare: a driver is named twice")
    outputs = {name: prepare_output(getattr(args, name), f"--{name}", "compare")
               for name in ("json", "html") if getattr(args, name) is not None}
    try:
        drivers = load_drivers(args.drivers, args.plugin_path)
    except (PluginError, ValueError) as exc:
        raise UsageError(f"ksim compare: {exc}") from None
    _STATE["drivers"] = drivers
    seeds = [args.seed] if args.seed is not None else list(range(args.seeds))
    items = [(d.name, f, s) for f in faults for d in drivers for s in seeds]
    cells: dict[tuple[str, str], list[Any]] = {}
    for r in _results(items, args.jobs):
        cells.setdefault((r.driver, r.fault), []).append(r)
    costs = {d.name: cost(d) for d in drivers}
    if args.seed is not None:
        for (driver, fault), rs in cells.items():
            r = rs[0]
            Stdout.write(f"{driver:12} {fault:20} seed {r.seed}: {r.verdict} ({r.why})\n")
    _table(drivers, faults, cells, costs, len(seeds))
    first = {key: {c: next((r.seed for r in rs if r.verdict == c), None) for c in CLASSES}
             for key, rs in cells.items()}
    if "json" in outputs:
        write_atomic(outputs["json"], json.dumps({
            "format": "ksim-compare", "version": 1,
            "drivers": [{"name": d.name, "cmdline": d.cmdline, "files": list(d.files),
                         "reserved_bytes": costs[d.name].reserved,
                         "printk_us": round(costs[d.name].printk_us, 2),
                         "printk_us_without_driver": round(costs[d.name].baseline_us, 2)}
                        for d in drivers],
            "faults": {f: (FAULTS[f].__doc__ or "").strip() for f in faults},
            "seeds": seeds,
            "cells": [{"driver": d.name, "fault": f,
                       "counts": {c: sum(r.verdict == c for r in cells[d.name, f])
                                  for c in CLASSES},
                       "replay": {c: _replay(d.name, f, s, args.plugin_path)
                                  for c, s in first[d.name, f].items() if s is not None},
                       "seeds": {str(r.seed): r.verdict for r in cells[d.name, f]}}
                      for f in faults for d in drivers],
        }, indent=1) + "\n")
    if "html" in outputs:
        write_atomic(outputs["html"], _html(drivers, faults, cells, costs, first,
                                            len(seeds), args.plugin_path))
    return 0


def _cell_text(rs: list[Any], n: int) -> str:
    from ksim.compare import CLASSES
    parts = [f"{c} {sum(r.verdict == c for r in rs)}/{n}" for c in CLASSES
             if any(r.verdict == c for r in rs)]
    return ", ".join(parts)


def _table(drivers: list[Any], faults: list[str], cells: dict[tuple[str, str], list[Any]],
           costs: dict[str, Any], n: int) -> None:
    lines = [f"ksim compare: {n} seed(s) per fault; the last Oops was ... on the next boot"]
    width = max(len(f) for f in faults)
    cw = max([len(d.name) for d in drivers] + [len(_cell_text(cells[d.name, f], n))
                                               for d in drivers for f in faults])
    lines.append(f"{'fault':{width}}  " + "  ".join(f"{d.name:{cw}}" for d in drivers))
    for f in faults:
        lines.append(f"{f:{width}}  " + "  ".join(f"{_cell_text(cells[d.name, f], n):{cw}}"
                                                  for d in drivers))
    lines.append(f"{'reserved':{width}}  " + "  ".join(
        f"{_size(costs[d.name].reserved):{cw}}" for d in drivers))
    lines.append(f"{'printk µs':{width}}  " + "  ".join(
        f"{costs[d.name].printk_us:.1f} (without: {costs[d.name].baseline_us:.1f})".ljust(cw)
        for d in drivers))
    lines.append("a cell alone: ksim compare " + " ".join(d.name for d in drivers) + " --faults FAULT --seed N (--json, --html: each cell's replay commands)")
    Stdout.write("\n".join(lines) + "\n")


def _size(n: int) -> str:
    if n and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def _html(drivers: list[Any], faults: list[str], cells: dict[tuple[str, str], list[Any]],
          costs: dict[str, Any], first: dict[Any, dict[str, int | None]], n: int,
          plugin_path: list[str]) -> str:
    from ksim.compare import CLASSES, FAULTS
    esc = html.escape
    rows = []
    for f in faults:
        tds = []
        for d in drivers:
            rs = cells[d.name, f]
            major = max(CLASSES, key=lambda c: sum(r.verdict == c for r in rs))
            links = "<br>".join(
                f'<span title="{esc(_replay(d.name, f, s, plugin_path))}">{c} '
                f'{sum(r.verdict == c for r in rs)}/{n}</span> '
                f'<code>{esc(_replay(d.name, f, s, plugin_path))}</code>'
                for c, s in first[d.name, f].items() if s is not None)
            tds.append(f'<td style="background:{COLOURS[major]}">{links}</td>')
        doc = esc((FAULTS[f].__doc__ or "").strip())
        rows.append(f'<tr><th title="{doc}">{esc(f)}</th>{"".join(tds)}</tr>')
    rows.append("<tr><th>reserved</th>" + "".join(
        f"<td>{_size(costs[d.name].reserved)}</td>" for d in drivers) + "</tr>")
    rows.append("<tr><th>printk µs</th>" + "".join(
        f"<td>{costs[d.name].printk_us:.1f} (without the driver: "
        f"{costs[d.name].baseline_us:.1f})</td>" for d in drivers) + "</tr>")
    head = "".join(f"<th>{esc(d.name)}<br><code>{esc(d.cmdline)}</code></th>" for d in drivers)
    legend = " ".join(f'<span style="background:{COLOURS[c]};padding:2px 6px">{c}</span>'
                      for c in CLASSES)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>ksim compare</title>
<style>body{{font-family:sans-serif}} td,th{{border:1px solid #999;padding:4px;vertical-align:top}}
table{{border-collapse:collapse}} code{{font-size:85%}}</style></head><body>
<h1>ksim compare: {n} seed(s) per fault</h1>
<p>What the next boot showed of the last Oops: {legend}. Each cell lists, per class, how many
seeds and the command that replays one seed of it. Hover a fault for what it does.</p>
<table><tr><th>fault</th>{head}</tr>
{chr(10).join(rows)}
</table></body></html>
"""

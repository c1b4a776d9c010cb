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
from collections.abc import Iterator, Sequence
from typing import Any

from ksim.clitools import Stdout, UsageError, prepare_output, shown, write_atomic
from ksim.sweep import RECOMPUTED, SUMMARIES, shard_items, shard_type

EXIT_STATUSES = """\
exit status:
  0    the matrix was printed
  2    bad usage or input (an unknown driver or fault, a bad --seeds): nothing was run
  130  interrupted (Ctrl-C)"""
MAX_SEEDS = 100_000
MAX_JOBS = 256
COLOURS = {"intact": "#b7e4b7", "flagged": "#ffe08a", "silent": "#f4a582", "lost": "#d6604d",
           "not-reached": "#d9d9d9"}


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
                   help="the faults to run (default: all of them): names, bitflips:RATE (a "
                        "flip probability per bit), or scenario files PATH.yaml")
    p.add_argument("--seeds", type=_count(1, MAX_SEEDS), default=10, metavar="N",
                   help="seeds 0..N-1 per fault (default 10)")
    p.add_argument("--seed", type=_count(0, 2 ** 63), default=None, metavar="N",
                   help="run seed N only and say why each cell is what it is (a cell's replay)")
    p.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                   help="also look for plugins in DIR (repeatable; also $KSIM_PLUGIN_PATH)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--html", metavar="FILE", help="also write one self-contained HTML page")
    p.add_argument("--shard", metavar="I/N", type=shard_type, default=None,
                   help="run only shard I of N of the cell seeds ((fault, driver, seed) k of "
                        "the whole run, from 0, goes to shard k mod N + 1); ksim merge joins "
                        "the shards' --json into the whole run's")
    p.add_argument("-j", "--jobs", type=_count(1, MAX_JOBS), default=1, metavar="N",
                   help="processes to spread the cells over (default 1)")
    p.set_defaults(handler=main)
    return p


def _replay(drivers: Sequence[str], fault: str, seed: int, plugin_path: Sequence[str]) -> str:
    """The command that replays one cell's seed: every driver of the run (a fault may load
    them all at once), this fault, this seed; the cell is the row of its driver."""
    extra = "".join(f" --plugin-path {shlex.quote(d)}" for d in plugin_path)
    names = " ".join(shlex.quote(d) for d in drivers)
    return f"ksim compare {names} --faults {shlex.quote(fault)} --seed {seed}{extra}"


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


def _faults(spec: str | None, drivers: list[Any]) -> list[str]:
    """The faults ``--faults`` names, each checked against every driver (a scenario file is
    loaded for each): UsageError, one line, for the first that cannot run."""
    from ksim.compare import FAULTS, FaultError, ScenarioFault, resolve_fault
    if spec is None:
        return list(FAULTS)
    faults = [f.strip() for f in spec.split(",") if f.strip()]
    if not faults:
        raise UsageError("ksim compare: --faults: expected NAME,... (faults: "
                         f"{', '.join(FAULTS)})")
    for f in faults:
        try:
            fn = resolve_fault(f)
            if isinstance(fn, ScenarioFault):
                for d in drivers:
                    fn.scenario(d)
        except FaultError as exc:
            raise UsageError(f"ksim compare: --faults: {exc}") from None
    if len(set(faults)) != len(faults):
        raise UsageError("ksim compare: --faults: a fault is named twice")
    return faults


def main(args: argparse.Namespace) -> int:
    from ksim.compare import FaultError, cost, load_drivers
    from ksim.plugins import PluginError
    if len(set(args.drivers)) != len(args.drivers):
        raise UsageError("ksim compare: a driver is named twice")
    if args.shard is not None and args.seed is not None:
        raise UsageError("ksim compare: --shard splits a campaign; --seed runs one seed")
    outputs = {name: prepare_output(getattr(args, name), f"--{name}", "compare")
               for name in ("json", "html") if getattr(args, name) is not None}
    try:
        drivers = load_drivers(args.drivers, args.plugin_path)
    except (PluginError, ValueError) as exc:
        raise UsageError(f"ksim compare: {exc}") from None
    faults = _faults(args.faults, drivers)
    _STATE["drivers"] = drivers
    seeds = [args.seed] if args.seed is not None else list(range(args.seeds))
    whole = [(d.name, f, s) for f in faults for d in drivers for s in seeds]
    shard = args.shard or (1, 1)
    items = list(shard_items(whole, shard))
    if not items:
        raise UsageError(f"ksim compare: --shard {shard[0]}/{shard[1]}: no cell seed of the "
                         f"{len(whole)} falls in this shard")
    results = []
    try:
        for r in _results(items, args.jobs):
            results.append(r)
    except FaultError as exc:
        raise UsageError(f"ksim compare: {exc}") from None
    costs = {d.name: cost(d) for d in drivers}
    doc = {"format": FORMAT, "version": 1,
           "drivers": [{"name": d.name, "cmdline": d.cmdline, "files": list(d.files),
                        "reserved_bytes": costs[d.name].reserved,
                        "printk_us": round(costs[d.name].printk_us, 2),
                        "printk_us_without_driver": round(costs[d.name].baseline_us, 2)}
                       for d in drivers],
           "faults": {f: _doc(f) for f in faults},
           "seeds": seeds, "plugin_path": list(args.plugin_path),
           "shard": {"index": shard[0], "count": shard[1], "items": len(whole)},
           "results": [{"driver": r.driver, "fault": r.fault, "seed": r.seed,
                        "verdict": r.verdict, "why": r.why} for r in results]}
    doc = summarize(doc, [doc])
    if args.seed is not None:
        for r in results:
            Stdout.write(f"{r.driver:12} {r.fault:20} seed {r.seed}: {r.verdict} ({r.why})\n")
    _table(doc)
    if "json" in outputs:
        write_atomic(outputs["json"], json.dumps(doc, indent=1) + "\n")
    if "html" in outputs:
        write_atomic(outputs["html"], _html(doc))
    return 0


FORMAT = "ksim-compare"


def _doc(fault: str) -> str:
    from ksim.compare import resolve_fault
    return " ".join((resolve_fault(fault).__doc__ or "").split())


def summarize(doc: dict[str, Any], shards: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``cells`` of a compare document from its ``results`` (per (driver, fault) in the
    faults' and drivers' order: the counts of each class, a replay command per class, each
    seed's class), and, merging shards (``ksim merge``), the drivers' cost columns: the
    memory figures must agree, the wall-clock printk costs are averaged over the shards."""
    from ksim.compare import CLASSES
    from ksim.sweep import MergeError
    names = [d["name"] for d in doc["drivers"]]
    if len(shards) > 1:
        drivers = []
        for i, d in enumerate(doc["drivers"]):
            each = [s["drivers"][i] for s in shards]
            for key in ("name", "cmdline", "files", "reserved_bytes"):
                if any(e.get(key) != d.get(key) for e in each):
                    raise MergeError(f"drivers: {key!r} of {d['name']} differs between the "
                                     "shards: not one run")
            drivers.append(dict(d, **{k: round(sum(e[k] for e in each) / len(each), 2)
                                      for k in ("printk_us", "printk_us_without_driver")}))
        doc["drivers"] = drivers
    by_cell: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in doc["results"]:
        by_cell.setdefault((r["driver"], r["fault"]), []).append(r)
    cells = []
    for f in doc["faults"]:
        for name in names:
            rs = by_cell.get((name, f), [])
            if not rs:
                continue
            first = {c: next((r["seed"] for r in rs if r["verdict"] == c), None)
                     for c in CLASSES}
            cells.append({"driver": name, "fault": f,
                          "counts": {c: sum(r["verdict"] == c for r in rs) for c in CLASSES},
                          "replay": {c: _replay(names, f, s, doc.get("plugin_path", []))
                                     for c, s in first.items() if s is not None},
                          "seeds": {str(r["seed"]): r["verdict"] for r in rs}})
    doc["cells"] = cells
    return doc


def _cell_text(cell: dict[str, Any]) -> str:
    n = sum(cell["counts"].values())
    return ", ".join(f"{c} {k}/{n}" for c, k in cell["counts"].items() if k)


def _table(doc: dict[str, Any]) -> None:
    names = [d["name"] for d in doc["drivers"]]
    cells = {(c["driver"], c["fault"]): c for c in doc["cells"]}
    faults = [f for f in doc["faults"] if any((n, f) in cells for n in names)]
    shard = doc["shard"]
    title = f"ksim compare: {len(doc['seeds'])} seed(s) per fault"
    if shard["count"] > 1:
        title += f" (shard {shard['index']}/{shard['count']}: {len(doc['results'])} cell seeds)"
    lines = [title + "; the last Oops was ... on the next boot"]
    text = {key: _cell_text(c) for key, c in cells.items()}
    costs = [f"{d['printk_us']:.1f} (without: {d['printk_us_without_driver']:.1f})"
             for d in doc["drivers"]]
    width = max(len(f) for f in [*faults, "printk µs"])
    cw = max([len(n) for n in names] + [len(t) for t in [*text.values(), *costs]])
    lines.append(f"{'fault':{width}}  " + "  ".join(f"{n:{cw}}" for n in names))
    for f in faults:
        lines.append(f"{f:{width}}  " + "  ".join(f"{text.get((n, f), '-'):{cw}}"
                                                  for n in names))
    lines.append(f"{'reserved':{width}}  " + "  ".join(
        f"{_size(d['reserved_bytes']):{cw}}" for d in doc["drivers"]))
    lines.append(f"{'printk µs':{width}}  " + "  ".join(c.ljust(cw) for c in costs))
    lines.append("a cell alone: ksim compare " + " ".join(names) + " --faults FAULT --seed N "
                 "(--json, --html: each cell's replay commands)")
    Stdout.write("\n".join(lines) + "\n")


def _size(n: int) -> str:
    if n and n % (1 << 20) == 0:
        return f"{n >> 20} MiB"
    if n and n % 1024 == 0:
        return f"{n >> 10} KiB"
    return f"{n} B"


def _html(doc: dict[str, Any]) -> str:
    esc = html.escape
    names = [d["name"] for d in doc["drivers"]]
    cells = {(c["driver"], c["fault"]): c for c in doc["cells"]}
    rows = []
    for f, fdoc in doc["faults"].items():
        tds = []
        for name in names:
            cell = cells.get((name, f))
            if cell is None:
                tds.append("<td>-</td>")
                continue
            counts = cell["counts"]
            n = sum(counts.values())
            major = max(counts, key=lambda c: counts[c])
            links = "<br>".join(
                f'<span title="{esc(cmd)}">{c} {counts[c]}/{n}</span> <code>{esc(cmd)}</code>'
                for c, cmd in cell["replay"].items())
            tds.append(f'<td style="background:{COLOURS[major]}">{links}</td>')
        rows.append(f'<tr><th title="{esc(fdoc)}">{esc(f)}</th>{"".join(tds)}</tr>')
    rows.append("<tr><th>reserved</th>" + "".join(
        f"<td>{_size(d['reserved_bytes'])}</td>" for d in doc["drivers"]) + "</tr>")
    rows.append("<tr><th>printk µs</th>" + "".join(
        f"<td>{d['printk_us']:.1f} (without the driver: "
        f"{d['printk_us_without_driver']:.1f})</td>" for d in doc["drivers"]) + "</tr>")
    n = len(doc["seeds"])
    legend = " ".join(f'<span style="background:{COLOURS[c]};padding:2px 6px">{c}</span>'
                      for c in COLOURS)
    head = "".join(f"<th>{esc(d['name'])}<br><code>{esc(d['cmdline'])}</code></th>"
                   for d in doc["drivers"])
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


SUMMARIES[FORMAT] = summarize
RECOMPUTED[FORMAT] = ("cells", "drivers")  # the drivers' printk costs are wall-clock times

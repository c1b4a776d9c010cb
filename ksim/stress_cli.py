"""The ``ksim stress`` command: seeds, jobs, progress, the summary table and replay lines.

Exit status: 0 every seed held every invariant; 1 a violation (its seed, schedule and replay
command are printed); 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor

import trio
import trio.testing

from ksim.stress import StressConfig, StressResult, replay_command, run_one, run_seed

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2


def parse_seeds(text: str) -> range:
    """``0..999`` (inclusive) or a single number."""
    first, sep, last = text.partition("..")
    try:
        if sep:
            start, stop = int(first), int(last)
            if stop < start:
                raise ValueError
            return range(start, stop + 1)
        return range(int(text), int(text) + 1)
    except ValueError:
        raise ValueError(f"--seeds {text!r}: expected N or A..B with A <= B") from None


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("stress", help="hammer the consoles from many threads and interrupts",
                       description="Run printk threads and interrupt handlers under the "
                       "deterministic scheduler, seed after seed, and check the invariants.")
    p.add_argument("--plugin", action="append", default=[], metavar="NAME")
    p.add_argument("--plugin-path", action="append", default=[], metavar="DIR")
    p.add_argument("--cmdline", default="")
    p.add_argument("--cpus", type=int, default=4)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--messages", type=int, default=200)
    p.add_argument("--irq-printk", type=int, default=0, metavar="N",
                   help="N interrupts whose handler printks, at random points")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", default=None, metavar="A..B")
    seeds.add_argument("--seed", type=int, default=None)
    p.add_argument("--strategy", default="random", help="random, pct[:DEPTH] or rr")
    p.add_argument("--replay", metavar="SCHEDULE", help="replay a schedule string (one seed)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="processes to spread seeds over")
    p.add_argument("--trace", metavar="FILE.json",
                   help="write a Chrome trace-event timeline of one seed (opens in Perfetto)")
    p.add_argument("--json", metavar="FILE", help="write every seed's result as JSON")


def _results(config: StressConfig, seeds: range, jobs: int) -> Iterator[StressResult]:
    if jobs <= 1 or len(seeds) == 1:
        for seed in seeds:
            yield run_seed(config, seed)
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(run_seed, [config] * len(seeds), seeds, chunksize=4)


def _progress(total: int):
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeRemainingColumn
    return Progress(TextColumn("stress"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"), TimeRemainingColumn(),
                    transient=True, console=_console(sys.stderr))


def _console(stream):
    from rich.console import Console
    return Console(file=stream)


def _summary(results: list[StressResult], config: StressConfig) -> None:
    from rich.table import Table
    failed = [r for r in results if not r.ok]
    table = Table(title="ksim stress")
    for column in ("seeds", "passed", "failed", "points", "switches", "irqs", "wall s"):
        table.add_column(column, justify="right")
    table.add_row(str(len(results)), str(len(results) - len(failed)), str(len(failed)),
                  f"{sum(r.points for r in results):,}", f"{sum(r.switches for r in results):,}",
                  f"{sum(r.irqs for r in results):,}", f"{sum(r.wall for r in results):.2f}")
    _console(sys.stdout).print(table)


def _trace_one(config: StressConfig, seed: int, replay: str | None, path: str) -> StressResult:
    from ksim.plugins import load_plugins
    from ksim.strategy import Replay, decode_schedule
    from ksim.trace import Trace
    trace = Trace()
    plugins = load_plugins(config.plugins, config.plugin_path)
    strategy = Replay(decode_schedule(replay)) if replay else None
    result = trio.run(run_one, config, seed, plugins, strategy, trace,
                      clock=trio.testing.MockClock(autojump_threshold=0))
    trace.write(path)
    return result


def main(args: argparse.Namespace) -> int:
    for name in ("cpus", "threads"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name} must be at least 1")
    if args.messages < 0 or args.irq_printk < 0 or args.jobs < 1:
        raise ValueError("--messages, --irq-printk must be >= 0 and -j >= 1")
    from ksim.strategy import make_strategy
    make_strategy(args.strategy, 0)  # validate early: a bad strategy is a usage error
    config = StressConfig(plugins=tuple(args.plugin), plugin_path=tuple(args.plugin_path),
                          cmdline=args.cmdline, cpus=args.cpus, threads=args.threads,
                          messages=args.messages, irq_printk=args.irq_printk,
                          strategy=args.strategy)
    from ksim.plugins import load_plugins
    load_plugins(config.plugins, config.plugin_path)  # an unknown plugin fails before any run
    if args.replay:
        from ksim.strategy import decode_schedule
        decode_schedule(args.replay)
        seeds = range(args.seed or 0, (args.seed or 0) + 1)
    elif args.seed is not None:
        seeds = range(args.seed, args.seed + 1)
    else:
        seeds = parse_seeds(args.seeds or "0..99")
    results: list[StressResult] = []
    if args.trace:
        results.append(_trace_one(config, seeds[0], args.replay, args.trace))
    elif args.replay:
        results.append(run_seed(config, seeds[0], args.replay))
    else:
        progress = _progress(len(seeds))
        if progress is not None:
            with progress:
                task = progress.add_task("stress", total=len(seeds), failed=0)
                for result in _results(config, seeds, args.jobs):
                    results.append(result)
                    progress.update(task, advance=1,
                                    failed=sum(not r.ok for r in results))
        else:
            results.extend(_results(config, seeds, args.jobs))
    failed = [r for r in results if not r.ok]
    for result in failed[:5]:
        print(f"FAIL seed {result.seed}: " + "; ".join(result.violations[:5]))
        print(f"  schedule: {result.schedule}")
        print(f"  replay:   {replay_command(config, result)}")
    if len(failed) > 5:
        print(f"... and {len(failed) - 5} more failing seeds")
    _summary(results, config)
    if args.json:
        with open(args.json, "w") as f:
            json.dump([{"seed": r.seed, "ok": r.ok, "violations": list(r.violations),
                        "schedule": r.schedule, "points": r.points, "switches": r.switches,
                        "irqs": r.irqs, "digest": r.digest} for r in results], f, indent=1)
    return EXIT_VIOLATION if failed else EXIT_OK


__all__ = ["add_parser", "main", "parse_seeds"]

"""The ``ksim stress`` command: seeds, jobs, progress, the summary table and replay lines.

Exit status: 0 every seed held every invariant; 1 a violation (its seed, schedule and replay
command are printed); 2 bad usage (nothing run); 130 / 143 stopped by SIGINT / SIGTERM (the
seeds that finished are summarised and in ``--json``).

Importing this module is cheap (``ksim --help`` builds its parser): the simulator is imported
when the command runs.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ksim.clitools import Stdout, UsageError, did_you_mean, exit_status_for, ignore_interrupts, \
    interruptible, interrupts_ignored, is_interrupt, prepare_output, shown, write_atomic
from ksim.sweep import RunRecord, shard_items, shard_type

if TYPE_CHECKING:
    from collections.abc import Callable
    from multiprocessing.connection import Connection

    from ksim.stress import StressConfig, StressResult

EXIT_OK, EXIT_VIOLATION, EXIT_USAGE = 0, 1, 2
DEFAULT_SEEDS = "0..99"
MAX_SEEDS = 10_000_000
MAX_THREADS = 32768  # PID_MAX_DEFAULT: more threads than a default kernel has pids
MAX_COUNT = 10_000_000
MAX_JOBS = 256
EXIT_STATUSES = """\
exit status:
  0    every seed held every invariant
  1    a violation: its seed, schedule and replay command are printed
  2    bad usage or input (one line on stderr; nothing was run)
  130  stopped by SIGINT (143: SIGTERM): the finished seeds are summarised and in --json"""


def parse_seeds(text: str) -> range:
    """``0..999`` (inclusive) or a single number."""
    first, sep, last = text.partition("..")
    bad = ValueError(f"--seeds {shown(text)}: expected N or A..B with 0 <= A <= B")
    parts = (first, last) if sep else (text,)
    if not all(p.isascii() and p.isdigit() and len(p) <= 20 for p in parts):
        raise bad
    start = int(first)
    stop = int(last) if sep else start
    if stop < start:
        raise bad
    if stop - start + 1 > MAX_SEEDS:
        raise ValueError(f"--seeds {shown(text)}: {stop - start + 1:,} seeds; at most "
                         f"{MAX_SEEDS:,} in one run")
    return range(start, stop + 1)


def _number(low: int, high: int, what: str = "") -> Any:
    """An argparse type: a whole number in ``low..high`` (the value is echoed clipped)."""

    def convert(text: str) -> int:
        if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 24):
            raise argparse.ArgumentTypeError(f"expected a whole number, not {shown(text)}")
        value = int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(
                f"{value if len(text) <= 12 else text[:12] + '...'} is out of range: "
                f"{low}..{high:,}{what}")
        return value

    convert.__name__ = "number"
    return convert


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from ksim.units import NR_CPUS
    p = sub.add_parser(
        "stress", help="hammer the consoles from many threads and interrupts",
        description="Run printk threads and interrupt handlers under the deterministic "
        "scheduler, seed after seed, and check the invariants. Without options: seeds "
        f"{DEFAULT_SEEDS}, no plugin (the core's consoles only), 4 CPUs, 8 threads of 200 "
        "messages, the random strategy.",
        epilog=EXIT_STATUSES, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--plugin", action="append", default=[], metavar="NAME",
                   help="build this plugin into the kernel (repeatable; default: none)")
    p.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                   help="also look for plugins in DIR (repeatable; also $KSIM_PLUGIN_PATH)")
    p.add_argument("--cmdline", default="", metavar='"..."',
                   help="the kernel command line (default: empty)")
    p.add_argument("--cpus", type=_number(1, NR_CPUS, " (NR_CPUS)"), default=4, metavar="N",
                   help="CPUs of the machine (default 4)")
    p.add_argument("--threads", type=_number(1, MAX_THREADS), default=8, metavar="N",
                   help="printk threads, round robin over the CPUs (default 8)")
    p.add_argument("--messages", type=_number(0, MAX_COUNT), default=200, metavar="N",
                   help="messages each thread prints (default 200)")
    p.add_argument("--irq-printk", type=_number(0, MAX_COUNT), default=0, metavar="N",
                   help="exactly N interrupts per seed whose handler printks, raised at random "
                        "points (default 0)")
    p.add_argument("--nmi", type=_number(0, MAX_COUNT), default=0, metavar="N",
                   help="exactly N NMIs per seed, raised at random points whatever the "
                        "interrupt flag; each handler printks from NMI context, where printk "
                        "only stores and irq_work prints later (default 0)")
    seeds = p.add_mutually_exclusive_group()
    seeds.add_argument("--seeds", default=None, metavar="A..B",
                       help=f"run seeds A to B inclusive (default {DEFAULT_SEEDS})")
    seeds.add_argument("--seed", type=_number(0, 2 ** 64 - 1), default=None, metavar="N",
                       help="run seed N only (default: the --seeds range)")
    p.add_argument("--strategy", default="random", metavar="NAME",
                   help="random, pct, pct:DEPTH (1-64; pct is pct:3) or rr (default random)")
    p.add_argument("--replay", metavar="SCHEDULE",
                   help="replay a schedule string printed by a failing seed (with its --seed "
                        "and options; default: none)")
    p.add_argument("-j", "--jobs", type=_number(1, MAX_JOBS), default=1, metavar="N",
                   help="processes to spread seeds over (default 1)")
    p.add_argument("--dask", metavar="ADDRESS",
                   help="run the seeds on the Dask cluster whose scheduler is at ADDRESS "
                        "(tcp://host:8786; pip install 'ksim[dask]'; the plugins must be at the "
                        "same paths on the workers): the same results as a serial run "
                        "(default: this machine, -j)")
    p.add_argument("--trace", metavar="FILE",
                   help="write a Perfetto timeline (Perfetto's protobuf format; a FILE ending "
                        "in .json gets Chrome trace-event JSON) of the first failing seed, or "
                        "of the first seed if none fails (default: none)")
    p.add_argument("--trace-seed", type=_number(0, 2 ** 64 - 1), default=None, metavar="N",
                   help="the seed --trace records (default: the first failing one)")
    p.add_argument("--json", metavar="FILE",
                   help="write every finished seed's result as JSON (default: none)")
    p.add_argument("--ktap", metavar="FILE",
                   help="also write the results as KTAP version 1 (as KUnit prints them; "
                        "kunit.py parse reads it): one suite, one test per seed (default: none)")
    p.add_argument("--shard", metavar="I/N", type=shard_type, default=None,
                   help="run only shard I of N of the seeds: seed k of the range (from 0) goes "
                        "to shard k mod N + 1, so shards 1..N are exactly the whole run; "
                        "'ksim merge' joins their --json files (default: 1/1)")
    p.add_argument("--shrink", action="store_true",
                   help="reduce the first failing seed's schedule to the fewest context "
                        "switches that still fail the same way; print its replay and a "
                        "timeline of the threads at the switches")
    p.add_argument("--record", metavar="FILE",
                   help="append each seed's start (seed, replay, command) before it runs and "
                        "its verdict and schedule after, one JSON line each, flushed: a harness "
                        "that dies loses no failure (default: none)")
    return p


# -- running seeds --------------------------------------------------------------------------
def _serial(config: StressConfig, seeds: range,
            on_start: Callable[[int], None]) -> Iterator[StressResult]:
    from ksim.stress import run_seed
    for seed in seeds:
        on_start(seed)
        yield run_seed(config, seed)


def _worker(config: StressConfig, conn: Connection) -> None:
    """A ``-j`` process: run each seed it is sent, send back the result; None ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it stops us with TERM
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    from ksim.stress import run_seed
    while True:
        seed = conn.recv()
        if seed is None:
            return
        try:
            conn.send(run_seed(config, seed))
        except Exception as exc:  # noqa: BLE001 - the parent reports it, as -j 1 would
            conn.send(exc)


class _Pool:
    """Seeds spread over ``jobs`` forked processes, one seed at a time each.

    The workers are forked when the pool is made, before any progress-bar thread exists.
    :meth:`results` yields in the order seeds finish; :meth:`close` (however the sweep ends:
    done, an interrupt, an error) terminates and reaps every worker still there.
    """

    def __init__(self, config: StressConfig, seeds: range, jobs: int,
                 on_start: Callable[[int], None]) -> None:
        import multiprocessing
        self._on_start = on_start
        ctx = multiprocessing.get_context("fork")  # the parent's imports and run-length memo
        self._todo = iter(seeds)
        self.workers: dict[Any, Any] = {}
        try:
            for _ in range(min(jobs, len(seeds))):
                parent, child = ctx.Pipe()
                proc = ctx.Process(target=_worker, args=(config, child), daemon=True)
                proc.start()
                child.close()
                self.workers[parent] = proc
                self._send(parent, next(self._todo))
        except BaseException:
            self.close()
            raise

    def results(self) -> Iterator[StressResult]:
        from multiprocessing.connection import wait
        workers = self.workers
        while workers:
            ready = wait(list(workers) + [p.sentinel for p in workers.values()])
            for conn in [c for c in workers if c in ready]:
                try:
                    result = conn.recv()
                except EOFError:
                    raise self._died(workers[conn]) from None
                if isinstance(result, BaseException):
                    raise result
                yield result
                nxt = next(self._todo, None)
                self._send(conn, nxt)
                if nxt is None:
                    workers.pop(conn).join()
            for conn, proc in list(workers.items()):
                if proc.sentinel in ready and not conn.poll():
                    raise self._died(proc)

    def _send(self, conn: Any, seed: int | None) -> None:
        if seed is not None:
            self._on_start(seed)
        conn.send(seed)

    @staticmethod
    def _died(proc: Any) -> RuntimeError:
        proc.join()
        return RuntimeError(f"a worker process died (exit status {proc.exitcode})")

    def close(self) -> None:
        for proc in self.workers.values():
            proc.terminate()
        for proc in self.workers.values():
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self.workers.clear()


def _progress(total: int) -> Any:
    if not sys.stderr.isatty():
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, \
        TimeRemainingColumn
    return Progress(TextColumn("stress"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("{task.fields[failed]} failed"), TimeRemainingColumn(),
                    transient=True, console=_console(sys.stderr))


def _console(stream: Any) -> Any:
    from rich.console import Console
    return Console(file=stream)


# -- the report -----------------------------------------------------------------------------
def _describe(config: StressConfig, seeds: range, replay: bool) -> str:
    plugins = ", ".join(config.plugins) or "no plugin"
    if replay:
        which = f"seed {seeds[0]} replayed"
    elif len(seeds) == 1:
        which = f"seed {seeds[0]}"
    else:
        which = f"seeds {seeds[0]}..{seeds[-1]}"
    return f"{which}, {plugins}, strategy {config.strategy}"


def _summary(results: list[StressResult], title: str) -> None:
    from rich.table import Table
    failed = [r for r in results if not r.ok]
    table = Table(title=title)
    nmis = sum(r.nmis for r in results)
    columns = ["seeds", "passed", "failed", "points", "switches", "irqs"] + (
        ["nmis"] if nmis else []) + ["wall s"]
    for column in columns:
        table.add_column(column, justify="right")
    table.add_row(str(len(results)), str(len(results) - len(failed)), str(len(failed)),
                  f"{sum(r.points for r in results):,}", f"{sum(r.switches for r in results):,}",
                  f"{sum(r.irqs for r in results):,}", *([f"{nmis:,}"] if nmis else []),
                  f"{sum(r.wall for r in results):.2f}")
    with Stdout.guard():
        if not Stdout.closed:
            _console(sys.stdout).print(table)


JSON_FORMAT, JSON_VERSION = "ksim-stress-results", 1


def result_json(result: StressResult) -> dict[str, Any]:
    """One seed's result as ``--json`` and ``--record`` write it (no wall time: the same seed
    gives the same JSON on every machine and in every shard)."""
    r = result
    return {"seed": r.seed, "ok": r.ok, "violations": list(r.violations),
            "details": list(r.details), "schedule": r.schedule, "points": r.points,
            "switches": r.switches, "irqs": r.irqs, "nmis": r.nmis, "dropped": r.dropped,
            "digest": r.digest}


def _report_json(config: StressConfig, whole: range, seeds: range, shard: tuple[int, int],
                 results: list[StressResult], interrupted: int | None) -> str:
    import attrs
    return json.dumps({
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "config": attrs.asdict(config),
        "seeds": [whole[0], whole[-1]],
        "shard": {"index": shard[0], "count": shard[1], "items": len(whole)},
        "complete": interrupted is None and len(results) == len(seeds),
        "interrupted_by": signal.Signals(interrupted).name if interrupted else None,
        "results": [result_json(r) for r in results],
    }, indent=1) + "\n"


def stress_ktap(config: StressConfig, seeds: range, results: list[StressResult],
                interrupted: int | None) -> str:
    """KTAP version 1 (Documentation/dev-tools/ktap.rst), as KUnit nests a suite: the run is
    one test with one subtest per seed; a failing seed's violations and replay command are
    diagnostic lines before its result line; seeds an interrupt kept from running are
    ``# SKIP``."""
    from ksim.scenario.report import KTAP_INDENT as sub
    from ksim.scenario.report import _ktap_diag, _ktap_name
    from ksim.stress import replay_command
    by_seed = {r.seed: r for r in results}
    name = _ktap_name("ksim stress: " + _describe(config, seeds, False))
    out = ["KTAP version 1", "1..1", f"{sub}KTAP version 1", f"{sub}# Subtest: {name}",
           f"{sub}1..{len(seeds)}"]
    counts = {"pass": 0, "fail": 0, "skip": 0}
    for case, seed in enumerate(seeds, start=1):
        r = by_seed.get(seed)
        if r is None:
            why = signal.Signals(interrupted).name if interrupted else "the run"
            out.append(f"{sub}ok {case} seed={seed} # SKIP not run (stopped by {why})")
            counts["skip"] += 1
        elif r.ok:
            out.append(f"{sub}ok {case} seed={seed}")
            counts["pass"] += 1
        else:
            out += _ktap_diag([*_leading(r.violations), *(d.strip() for d in r.details),
                               "replay: " + replay_command(config, r)], sub)
            out.append(f"{sub}not ok {case} seed={seed}")
            counts["fail"] += 1
    out.append(f"# {name}: pass:{counts['pass']} fail:{counts['fail']} skip:{counts['skip']} "
               f"total:{len(seeds)}")
    out.append(("not ok" if counts["fail"] else "ok") + f" 1 {name}")
    return "\n".join(out) + "\n"


def _trace(config: StressConfig, results: list[StressResult], wanted: int | None,
           path: str) -> str:
    """Run the chosen seed again, replaying its schedule, with a trace attached."""
    from ksim.stress import run_seed
    from ksim.trace import Trace
    if wanted is not None:
        chosen = next(r for r in results if r.seed == wanted)
        why = "--trace-seed"
    else:
        failing = [r for r in results if not r.ok]
        chosen = failing[0] if failing else results[0]
        why = "the first failing seed" if failing else "no seed failed: the first seed"
    trace = Trace()
    again = run_seed(config, chosen.seed, chosen.schedule or None, trace=trace)
    write_atomic(path, trace.dumps() if path.endswith(".json") else trace.dumps_proto())
    note = f"trace: seed {chosen.seed} ({why}) written to {path}"
    if again.digest != chosen.digest:
        note += " (warning: the traced run's output differs from the sweep's)"
    return note


def _leading(violations: tuple[str, ...]) -> list[str]:
    """The checker reports first (they name the racing functions), then the symptoms."""
    from ksim.harness import CHECKER_KINDS
    return sorted(violations, key=lambda v: v.partition(":")[0] not in CHECKER_KINDS)


def _shrink(config: StressConfig, result: StressResult) -> None:
    """``--shrink``: the first failing seed's schedule, shrunk (:mod:`ksim.shrink`)."""
    import attrs

    from ksim.shrink import shrink_stress_seed
    from ksim.stress import replay_command
    shrunk = shrink_stress_seed(config, result.seed, result.schedule)
    Stdout.write(f"shrunk seed {result.seed} to {shrunk.preemptions_after} preemption(s), "
                 f"{shrunk.switches_after} context switch(es) (from {shrunk.preemptions_before} "
                 f"and {shrunk.switches_before}; {shrunk.runs} runs), still failing with: "
                 f"{shrunk.target}\n")
    short = attrs.evolve(result, schedule=shrunk.schedule)
    Stdout.write(f"  replay:   {replay_command(config, short)}\n")
    for line in shrunk.timeline():
        Stdout.write(f"  {line}\n")


# -- the command ----------------------------------------------------------------------------
def _validate(args: argparse.Namespace) -> tuple[StressConfig, range, range]:
    """The configuration, the whole run's seeds and this shard's."""
    from ksim.strategy import decode_schedule, parse_strategy
    from ksim.stress import StressConfig
    try:
        parse_strategy(args.strategy)
    except ValueError as exc:
        name = args.strategy.partition(":")[0]
        hint = did_you_mean(name, ("random", "pct", "rr")) if name not in ("pct", "rr") else ""
        raise UsageError(f"ksim stress: --strategy {shown(args.strategy)}: {exc}{hint}") \
            from None
    if args.replay is not None:
        if args.seeds is not None:
            raise UsageError("ksim stress: --replay replays one seed: give it with --seed N, "
                             "not --seeds")
        if not args.replay.strip():
            raise UsageError("ksim stress: --replay: the schedule string is empty")
        try:
            decode_schedule(args.replay)
        except ValueError as exc:
            raise UsageError(f"ksim stress: --replay {shown(args.replay, 30)}: {exc}") from None
        seeds = range(args.seed or 0, (args.seed or 0) + 1)
    elif args.seed is not None:
        seeds = range(args.seed, args.seed + 1)
    else:
        try:
            seeds = parse_seeds(args.seeds or DEFAULT_SEEDS)
        except ValueError as exc:
            raise UsageError(f"ksim stress: {exc}") from None
    if args.dask is not None and (args.jobs > 1 or args.replay is not None):
        raise UsageError("ksim stress: --dask runs the seeds on a cluster: not with -j N "
                         "(the cluster's workers are the jobs) nor --replay (one seed)")
    whole = seeds
    if args.shard is not None:
        if args.replay is not None:
            raise UsageError("ksim stress: --shard splits a sweep; --replay runs one seed")
        seeds = shard_items(seeds, args.shard)  # type: ignore[assignment]
        if not seeds:
            raise UsageError(f"ksim stress: --shard {args.shard[0]}/{args.shard[1]}: no seed "
                             f"of the {len(whole)} falls in this shard")
    if args.trace is not None and not args.trace.endswith(".json"):
        import importlib.util
        if importlib.util.find_spec("perfetto") is None:
            raise UsageError(f"ksim stress: --trace {shown(args.trace)}: Perfetto's protobuf "
                             "format needs the perfetto package (pip install 'ksim[perfetto]'); "
                             "a file name ending in .json gets the Chrome JSON format")
    if args.trace_seed is not None:
        if args.trace is None:
            raise UsageError("ksim stress: --trace-seed needs --trace FILE")
        if args.trace_seed not in seeds:
            raise UsageError(f"ksim stress: --trace-seed {args.trace_seed} is not among the "
                             f"seeds run ({seeds[0]}..{seeds[-1]})")
    config = StressConfig(plugins=tuple(args.plugin), plugin_path=tuple(args.plugin_path),
                          cmdline=args.cmdline, cpus=args.cpus, threads=args.threads,
                          messages=args.messages, irq_printk=args.irq_printk,
                          nmi=args.nmi, strategy=args.strategy)
    return config, whole, seeds


def main(args: argparse.Namespace) -> int:
    config, whole, seeds = _validate(args)
    shard = args.shard or (1, 1)
    outputs = {name: prepare_output(getattr(args, name), f"--{name}", "stress")
               for name in ("json", "trace", "record", "ktap") if getattr(args, name) is not None}
    from ksim.plugins import load_plugins
    from ksim.stress import ReplayMismatch, replay_command, run_length, run_seed, \
        stress_command
    load_plugins(config.plugins, config.plugin_path)  # an unknown plugin fails before any run
    client = None
    if args.dask is not None:
        from ksim.sweep import dask_client
        try:
            client = dask_client(args.dask)
        except ValueError as exc:
            raise UsageError(f"ksim stress: {exc}") from None
    record = _open_record(outputs.get("record"), config, whole, shard)

    def on_start(seed: int) -> None:
        if record is not None:
            record.write(event="start", seed=seed, replay=args.replay,
                         command=stress_command(config, seed, args.replay))

    def on_done(result: StressResult) -> None:
        if record is not None:
            record.write(event="done", **result_json(result))

    results: list[StressResult] = []
    interrupted: int | None = None
    with interruptible() as received:
        try:
            run_length(config)  # the first run: once, before any worker forks
            if args.replay is not None:
                try:
                    on_start(seeds[0])
                    results.append(run_seed(config, seeds[0], args.replay))
                    on_done(results[-1])
                except ReplayMismatch as exc:
                    raise UsageError(
                        f"ksim stress: --replay: this schedule does not fit this configuration "
                        f"({exc}); replay it with the options and --seed printed beside it"
                    ) from None
            else:
                _sweep(config, seeds, args.jobs, results, on_start, on_done, client)
        except BaseException as exc:
            if not is_interrupt(exc):
                raise
            interrupted = received.signum or signal.SIGINT
        finally:
            if record is not None:
                record.close()
            if client is not None:
                with interrupts_ignored():
                    client.close()
    if interrupted is not None:
        ignore_interrupts()
    results.sort(key=lambda r: r.seed)
    failed = [r for r in results if not r.ok]
    for result in failed[:5]:
        Stdout.write(f"FAIL seed {result.seed}: " + "; ".join(_leading(result.violations)[:5])
                     + "\n")
        for line in result.details[:12]:
            Stdout.write(f"  {line.strip()}\n")
        Stdout.write(f"  replay:   {replay_command(config, result)}\n")  # the schedule, once
    if len(failed) > 5:
        Stdout.write(f"... and {len(failed) - 5} more failing seeds\n")
    if args.shrink and failed and interrupted is None:
        _shrink(config, failed[0])
    title = "ksim stress: " + _describe(config, whole, args.replay is not None)
    if args.shard is not None:
        title += f" (shard {shard[0]}/{shard[1]}: {len(seeds)} seeds)"
    if interrupted is not None:
        title += (f" (stopped by {signal.Signals(interrupted).name} after "
                  f"{len(results)} of {len(seeds)} seeds)")
    _summary(results, title)
    if "trace" in outputs and interrupted is None and results:
        Stdout.write(_trace(config, results, args.trace_seed, outputs["trace"]) + "\n")
    if "json" in outputs:
        write_atomic(outputs["json"], _report_json(config, whole, seeds, shard, results,
                                                   interrupted))
    if "ktap" in outputs:
        write_atomic(outputs["ktap"], stress_ktap(config, seeds, results, interrupted))
    if interrupted is not None:
        print(f"ksim stress: stopped by {signal.Signals(interrupted).name}", file=sys.stderr)
        return exit_status_for(interrupted)
    return EXIT_VIOLATION if failed else EXIT_OK


def _open_record(path: str | None, config: StressConfig, whole: range,
                 shard: tuple[int, int]) -> RunRecord | None:
    if path is None:
        return None
    import attrs
    try:
        record = RunRecord.open(path)
    except OSError as exc:
        raise UsageError(f"ksim stress: --record {shown(path)}: {exc.strerror or exc}") from None
    record.header(attrs.asdict(config), whole, shard)
    return record


def _sweep(config: StressConfig, seeds: range, jobs: int, results: list[StressResult],
           on_start: Callable[[int], None], on_done: Callable[[StressResult], None],
           client: Any = None) -> None:
    pool = _Pool(config, seeds, jobs, on_start) if jobs > 1 and len(seeds) > 1 \
        and client is None else None
    try:
        if client is not None:
            from ksim.stress import run_seed
            from ksim.sweep import dask_map
            source = dask_map(client, run_seed, [(config, seed) for seed in seeds], on_start)
        elif pool is not None:
            source = pool.results()
        else:
            source = _serial(config, seeds, on_start)
        progress = _progress(len(seeds))
        if progress is None:
            for result in source:
                results.append(result)
                on_done(result)
            return
        with progress:
            task = progress.add_task("stress", total=len(seeds), failed=0)
            for result in source:
                results.append(result)
                on_done(result)
                progress.update(task, advance=1, failed=sum(not r.ok for r in results))
    finally:
        if pool is not None:
            with interrupts_ignored():  # a second Ctrl-C must not leave workers behind
                pool.close()


__all__ = ["EXIT_STATUSES", "add_parser", "main", "parse_seeds"]

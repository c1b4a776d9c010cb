"""``ksim run`` and ``ksim schema``: registered on ``ksim``'s parser by :mod:`ksim.cli`.

Exit status of ``ksim run``: 0 every scenario passed; 1 some failed (or crashed inside ksim:
ERROR); 2 invalid input: a file that does not load or validate, a bad option, no scenario
selected — and then nothing runs.  Never a Python traceback.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import sys
import time
from typing import TextIO

from ksim.sweep import shard_items, shard_type

EXIT_PASS, EXIT_FAIL, EXIT_INVALID = 0, 1, 2


class _Stdout(io.TextIOBase):
    """stdout that survives its reader going away (``ksim run ... | head -1``).

    Once the pipe is closed, output is discarded (and fd 1 pointed at /dev/null, so the
    interpreter's last flush cannot fail either) while the run goes on to its real exit
    status: a closed stdout never turns a failure into success.
    """

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.closed_by_reader = False

    def _lost(self) -> None:
        self.closed_by_reader = True
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, io.UnsupportedOperation):
            pass

    def write(self, text: str) -> int:
        if not self.closed_by_reader:
            try:
                self.stream.write(text)
            except BrokenPipeError:
                self._lost()
        return len(text)

    def flush(self) -> None:
        if not self.closed_by_reader:
            try:
                self.stream.flush()
            except BrokenPipeError:
                self._lost()

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()


def add_parsers(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser(
        "run", help="run YAML scenarios and check their expectations",
        description="Run scenario files (folders are searched for *.yaml and *.yml). One "
                    "PASS/FAIL/ERROR line per scenario and seed; exit 0 all passed, 1 some "
                    "failed, 2 invalid input (nothing run).")
    run.add_argument("paths", nargs="+", metavar="PATH", help="scenario files or folders")
    run.add_argument("-k", dest="keyword", metavar="EXPR",
                     help="only scenarios whose file or name contains the words of EXPR "
                          "(case-insensitive; 'and', 'or', 'not' and parentheses as in pytest)")
    run.add_argument("--seed", type=int, metavar="N",
                     help="run every selected scenario with seed N only")
    run.add_argument("--junit", metavar="FILE", help="also write JUnit XML results to FILE")
    run.add_argument("--json", metavar="FILE", help="also write JSON results to FILE")
    run.add_argument("--ktap", metavar="FILE",
                     help="also write KTAP (version 1, as KUnit; kunit.py parse reads it) to "
                          "FILE; '-' writes it to stdout and the usual report to stderr")
    run.add_argument("--shard", metavar="I/N", type=shard_type,
                     help="run only shard I of N (1 <= I <= N) of the (scenario, seed) items: "
                          "item k of the run goes to shard k mod N + 1, so shards 1..N together "
                          "are exactly the whole run")
    run.add_argument("--shrink", action="store_true",
                     help="shrink the first failing concurrent scenario's schedule to the "
                          "fewest context switches that fail the same expectation; print it "
                          "and a timeline of the threads at the switches")
    run.add_argument("-v", "--verbose", action="store_true",
                     help="show what happened (boots, cat output) for passing scenarios too")
    run.add_argument("-x", "--exitfirst", action="store_true",
                     help="stop after the first scenario that does not pass")
    run.add_argument("--no-progress", action="store_true",
                     help="no progress bar, even on a terminal")
    run.add_argument("--ram-files-anywhere", action="store_true",
                     help="let a scenario's kept RAM file (machine.ram_file with "
                          "keep_ram_file: true) live outside the scenario's folder; a "
                          "'corrupt' step then writes wherever that file is")
    schema = sub.add_parser("schema", help="print the JSON Schema of the scenario format",
                            description="Print a JSON Schema (draft-07, what the YAML "
                                        "language server reads) of the scenario "
                                        "format, for editors to validate and complete.")
    schema.add_argument("--indent", type=int, default=2, help="indentation (default 2)")


_WORD = re.compile(r"\(|\)|[^\s()]+")


def keyword_matcher(expr: str):
    """pytest-style ``-k``: words are case-insensitive substrings; and/or/not/parentheses."""
    tokens = _WORD.findall(expr)
    words: list[str] = []
    code = []
    for tok in tokens:
        low = tok.lower()
        if low in ("and", "or", "not", "(", ")"):
            code.append(low)
        else:
            code.append(f"_w[{len(words)}]")
            words.append(low)
    source = " ".join(code) or "True"
    try:
        compiled = compile(source, "<-k>", "eval")
        eval(compiled, {"__builtins__": {}}, {"_w": [False] * len(words)})
    except SyntaxError:
        raise ValueError(f"-k: cannot parse {expr!r}") from None

    def match(text: str) -> bool:
        low = text.lower()
        return bool(eval(compiled, {"__builtins__": {}}, {"_w": [w in low for w in words]}))

    return match


def _check_output(path: str | None, option: str) -> str | None:
    if path is None:
        return None
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        return f"ksim run: {option} {path}: folder {folder} does not exist"
    if os.path.isdir(path):
        return f"ksim run: {option} {path}: is a folder"
    return None


def run_command(args: argparse.Namespace) -> int:
    from ksim.scenario.loader import ScenarioInvalid, load_paths
    for message in (_check_output(args.junit, "--junit"), _check_output(args.json, "--json"),
                    _check_output(None if args.ktap == "-" else args.ktap, "--ktap")):
        if message:
            print(message, file=sys.stderr)
            return EXIT_INVALID
    if args.seed is not None and args.seed < 0:
        print("ksim run: --seed: expected a non-negative integer", file=sys.stderr)
        return EXIT_INVALID
    try:
        match = keyword_matcher(args.keyword) if args.keyword else None
    except ValueError as exc:
        print(f"ksim run: {exc}", file=sys.stderr)
        return EXIT_INVALID
    try:
        scenarios = load_paths(args.paths, ram_files_anywhere=args.ram_files_anywhere)
    except ScenarioInvalid as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        n = len(exc.problems)
        print(f"ksim run: {n} problem{'s' if n != 1 else ''} found; nothing was run",
              file=sys.stderr)
        return EXIT_INVALID
    items = []
    for sc in scenarios:
        seeds = (args.seed,) if args.seed is not None else sc.seeds
        for seed in seeds:
            label = f"{sc.file}::{sc.name}" + (f"[seed={seed}]" if len(seeds) > 1 else "")
            if match is None or match(label):
                items.append((sc, seed))
    if not items:
        where = " ".join(args.paths)
        print(f"ksim run: no scenario selected in {where}"
              + (f" by -k {args.keyword!r}" if args.keyword else ""), file=sys.stderr)
        return EXIT_INVALID
    total = len(items)
    shard = args.shard or (1, 1)
    items = list(shard_items(items, shard))
    from ksim.scenario.report import Reporter, write_json, write_junit, write_ktap
    from ksim.scenario.runner import PASS, run_scenario
    human = sys.stderr if args.ktap == "-" else sys.stdout
    tty = human.isatty()
    reporter = Reporter(len(items), verbose=args.verbose, progress=tty and not args.no_progress,
                        table=tty, stream=_Stdout(human))
    if args.shard:
        reporter.note(f"shard {shard[0]}/{shard[1]}: {len(items)} of {total} items")
    start = time.perf_counter()
    contradicted = []
    try:
        for sc, seed in items:
            reporter.starting(sc.name)
            result = run_scenario(sc, seed, ram_files_anywhere=args.ram_files_anywhere)
            reporter.add(result)
            if args.exitfirst and result.status != PASS:
                break
        contradicted = reporter.verdict_failures()
    finally:
        wall = time.perf_counter() - start
        reporter.finish(wall)
    results = reporter.results
    if args.shrink:
        _shrink(results, human, args.ram_files_anywhere)
    try:
        if args.junit:
            write_junit(results, wall, args.junit)
        if args.json:
            write_json(results, wall, args.json, shard, total)
        if args.ktap:
            write_ktap(results, args.ktap, items[len(results):])
    except OSError as exc:
        print(f"ksim run: cannot write results: {exc}", file=sys.stderr)
        return EXIT_INVALID
    ok = all(r.status == PASS for r in results) and len(results) == len(items) \
        and not contradicted
    return EXIT_PASS if ok else EXIT_FAIL


def _shrink(results, stream: TextIO, ram_files_anywhere: bool) -> None:
    """``--shrink``: the first failing result with a concurrent boot (its last one)."""
    from ksim.scenario.runner import FAIL
    from ksim.shrink import shrink_scenario
    failing = next((r for r in results if r.status == FAIL and r.schedules), None)
    out = _Stdout(stream)
    if failing is None:
        out.write("shrink: no failing scenario ran under the scheduler: nothing to shrink\n")
        return
    boot = max(failing.schedules)
    shrunk = shrink_scenario(failing.scenario, failing.seed, boot, failing.schedules[boot],
                             ram_files_anywhere=ram_files_anywhere)
    out.write(f"shrunk {failing.id} boot {boot} to {shrunk.preemptions_after} preemption(s), "
              f"{shrunk.switches_after} context switch(es) (from {shrunk.preemptions_before} "
              f"and {shrunk.switches_before}; {shrunk.runs} runs), still failing: "
              f"{shrunk.target}\n  schedule: {shrunk.schedule}\n")
    for line in shrunk.timeline():
        out.write(f"  {line}\n")
    out.flush()


def schema_command(args: argparse.Namespace) -> int:
    from ksim.scenario.schema import schema
    out = _Stdout(sys.stdout)
    out.write(json.dumps(schema(), indent=args.indent) + "\n")
    out.flush()
    return EXIT_PASS


def main(args: argparse.Namespace) -> int:
    """Dispatch ``ksim run`` / ``ksim schema``; a bug here is one line on stderr, exit 2."""
    try:
        if args.command == "schema":
            return schema_command(args)
        return run_command(args)
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as exc:  # noqa: BLE001 - never a traceback from the CLI
        import traceback
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        print(f"ksim {args.command}: internal error: {type(exc).__name__}: {exc} "
              f"(at {frame.filename}:{frame.lineno})", file=sys.stderr)
        return EXIT_INVALID

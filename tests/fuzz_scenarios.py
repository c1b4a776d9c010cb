"""Fuzzing the scenario loader: mutants of the library's files must load or fail located.

The property, for any text: ``load_text`` either returns scenarios or raises
:class:`~ksim.scenario.loader.ScenarioInvalid` whose every problem is located in the file
(line and column within it, or 0 for the file as a whole) with a short message; it never
raises anything else, and never takes long (a watchdog turns a hang into a failure).

``tests/test_scenario_fuzz.py`` runs the property under Hypothesis, sized for the suite.
This script is the longer run::

    .venv/bin/python tests/fuzz_scenarios.py --mutants 10000 [--seed N] [--save DIR]

It prints how many mutants it tried, loaded, rejected (located problems) and failed, and
saves each failing mutant to DIR for ``ksim run`` to reproduce.
"""

from __future__ import annotations

import argparse
import random
import signal
import sys
import time
import traceback
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIBRARY = ROOT / "scenarios"
HANG_SECONDS = 30  # far beyond any load: a guard against hangs, not a speed target

# Words that steer a mutant into the loader's deeper passes, and values at its limits.
VOCABULARY = [
    "name", "description", "verdict", "question", "answer", "why", "observe", "assumes",
    "machine", "ram", "cpus", "ram_file", "keep_ram_file", "numa", "seed", "seeds", "plugins",
    "plugin_path", "boots", "strategy", "timeout", "reboot", "cmdline", "before", "steps",
    "expect", "checkers", "printk", "spawn", "irq", "oops", "panic", "write", "cat", "insmod",
    "rmmod", "corrupt", "sleep", "notifier", "sys_reboot", "file", "dmesg", "console",
    "panicked", "rebooted", "outcome", "reports", "contains", "not_contains", "matches",
    "not_matches", "equals", "lines_in_order", "count", "length", "exists", "holds", "fails",
    "partly", "measured", "warm", "cold", "memtest", "text", "level", "threads", "cpu",
    "every", "reservation", "offset", "flips", "fill", "bytes", "address", "chain",
    "priority", "returns", "mode", "errno", "path", "value", "duration", "kind", "min", "max",
    "0", "-1", "1", "8192", "8193", "64T", "65T", "1000T", "0x10000000", "1e999", ".nan",
    ".inf", "-.inf", "99999999999999999999999", "9" * 30, "INT_MIN-1", "pct:0", "pct:99999",
    "0..99999999", "true", "null", "~", "''", '""', "&a", "*a", "*undefined", "<<: *a",
    "!!python/object:os.system", "!!binary", "[", "]", "{", "}", ",", ":", "- ", "? ", "|",
    ">", "#", "%YAML 1.1", "---", "...", "\t", "\\x00", "../../../etc/passwd", "/proc/self/mem",
    "(unclosed", "*+", "\x01", "\x7f", "\u2028", "\ufeff",
]
ALPHABET = " \n\t:-[]{},#&*!|>'\"%@`?~.0123456789abcxyzAZ_/\\\x00\x07\x1b\x85\u00a0\u2028"

Op = tuple[Any, ...]


def library_texts() -> list[tuple[Path, str]]:
    return [(f, f.read_text()) for f in sorted(LIBRARY.rglob("*.yaml"))]


def apply(text: str, op: Op) -> str:
    """One mutation, fully described by ``op`` (so Hypothesis can shrink it)."""
    kind = op[0]
    n = max(len(text), 1)
    lines = text.split("\n")
    if kind == "delete":
        pos = op[1] % n
        return text[:pos] + text[pos + op[2]:]
    if kind == "insert":
        pos = op[1] % (len(text) + 1)
        return text[:pos] + op[2] + text[pos:]
    if kind == "word":
        pos = op[1] % (len(text) + 1)
        end = pos
        while end < len(text) and (text[end].isalnum() or text[end] in "_.-"):
            end += 1
        return text[:pos] + op[2] + text[end:]
    if kind == "dup_line":
        i = op[1] % len(lines)
        return "\n".join(lines[:i + 1] + lines[i:])
    if kind == "del_line":
        i = op[1] % len(lines)
        return "\n".join(lines[:i] + lines[i + 1:])
    if kind == "indent":
        i = op[1] % len(lines)
        line = lines[i]
        lines[i] = " " * op[2] + line if op[2] >= 0 else line[min(-op[2], len(line)
                                                                    - len(line.lstrip())):]
        return "\n".join(lines)
    if kind == "swap_lines":
        i, j = op[1] % len(lines), op[2] % len(lines)
        lines[i], lines[j] = lines[j], lines[i]
        return "\n".join(lines)
    if kind == "truncate":
        return text[:op[1] % n]
    if kind == "repeat":
        pos = op[1] % n
        return text[:pos] + text[pos:pos + op[2]] * op[3] + text[pos:]
    raise ValueError(kind)


def random_op(rng: random.Random) -> Op:
    kind = rng.choice(["delete", "insert", "word", "word", "word", "dup_line", "del_line",
                       "indent", "swap_lines", "truncate", "repeat"])
    pos = rng.randrange(1 << 20)
    if kind == "delete":
        return (kind, pos, rng.randint(1, 40))
    if kind == "insert":
        return (kind, pos, "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 12))))
    if kind == "word":
        return (kind, pos, rng.choice(VOCABULARY))
    if kind in ("dup_line", "del_line", "truncate"):
        return (kind, pos)
    if kind == "indent":
        return (kind, pos, rng.randint(-8, 8))
    if kind == "swap_lines":
        return (kind, pos, rng.randrange(1 << 20))
    return (kind, pos, rng.randint(1, 30), rng.randint(2, 50))


class Hang(Exception):
    pass


def _alarm(signum: int, frame: object) -> None:
    raise Hang(f"the load took more than {HANG_SECONDS} s")


def check(text: str, base_dir: Path) -> str | None:
    """None if the loader kept its promise on ``text``; else what went wrong."""
    return classify(text, base_dir)[1]


def classify(text: str, base_dir: Path) -> tuple[str, str | None]:
    """("loaded" | "rejected" | "failed", what went wrong if it failed)."""
    from ksim.scenario.loader import MAX_MESSAGE, ScenarioInvalid, load_text
    from ksim.scenario.model import Loc
    lines = text.count("\n") + 1
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                load_text(text, "m.yaml", base_dir)
            finally:
                # a Python warning reaches the user's terminal as ksim's own file:line
                leaked = [str(w.message) for w in caught]
        if leaked:
            return "failed", f"a Python warning escaped the loader: {leaked[0]}"
        return "loaded", None
    except ScenarioInvalid as exc:
        if leaked:
            return "failed", f"a Python warning escaped the loader: {leaked[0]}"
        if not exc.problems:
            return "failed", "ScenarioInvalid without a problem"
        for p in exc.problems:
            if not isinstance(p.loc, Loc) or p.loc.file != "m.yaml":
                return "failed", f"problem not located in the file: {p!r}"
            if not (0 <= p.loc.line <= lines + 1 and p.loc.col >= 0):
                return "failed", f"problem outside the file ({lines} lines): {p}"
            if not isinstance(p.message, str) or not p.message.strip():
                return "failed", f"problem without a message: {p!r}"
            if len(str(p)) > MAX_MESSAGE + 200:
                return "failed", f"problem echoes too much ({len(str(p))} characters)"
        return "rejected", None
    except BaseException:  # noqa: BLE001 - anything else breaks the promise
        return "failed", traceback.format_exc(limit=8)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def mutant(texts: Sequence[tuple[Path, str]], rng: random.Random) -> tuple[Path, str, list[Op]]:
    path, text = rng.choice(texts)
    ops = [random_op(rng) for _ in range(rng.randint(1, 4))]
    for op in ops:
        text = apply(text, op)
    return path, text, ops


def main(argv: Sequence[str] | None = None, out: Callable[[str], None] = print) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mutants", type=int, default=1000, help="how many (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="the mutation seed (default 0)")
    parser.add_argument("--save", metavar="DIR", help="save failing mutants here")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    texts = library_texts()
    rng = random.Random(args.seed)
    counts = {"loaded": 0, "rejected": 0, "failed": 0}
    start = time.perf_counter()
    slowest = 0.0
    for n in range(args.mutants):
        path, text, ops = mutant(texts, rng)
        t0 = time.perf_counter()
        verdict, problem = classify(text, path.parent)
        slowest = max(slowest, time.perf_counter() - t0)
        counts[verdict] += 1
        if problem is not None:
            out(f"mutant {n} of {path.relative_to(ROOT)} {ops}: {problem.splitlines()[-1]}")
            if args.save:
                Path(args.save).mkdir(parents=True, exist_ok=True)
                (Path(args.save) / f"mutant-{n}.yaml").write_text(text)
    wall = time.perf_counter() - start
    out(f"{args.mutants} mutants tried: {counts['loaded']} loaded, {counts['rejected']} "
        f"rejected with located problems, {counts['failed']} failed; {wall:.1f}s "
        f"(slowest load {slowest:.2f}s)")
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())

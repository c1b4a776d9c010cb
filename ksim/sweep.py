"""What every sweep shares: shards, the run record, and merging shards' JSON.

* **Shards** (``--shard I/N``): the items of a sweep (seeds of ``ksim stress``, (scenario, seed)
  items of ``ksim run``) are numbered from 0 in the order the whole run would take them; item
  ``k`` goes to shard ``k mod N + 1`` (:func:`shard_items`).  Shards 1..N together are exactly
  the whole run, and each item's result does not depend on which shard ran it (a seed's run
  depends on its seed and the configuration only).
* **Merging** (``ksim merge``, :func:`merge_documents`): a shard's JSON names its shard
  (``"shard": {"index": I, "count": N, "items": TOTAL}``) and lists its ``results`` in its
  own run order; the merge puts them back in the whole run's order (result ``j`` of shard
  ``I`` is item ``j * N + I - 1``), checks that every other field agrees across the shards,
  recomputes the format's summary (a hook per ``format``) and says shard 1/1.  The merge of
  shards 1/N..N/N of a run is the JSON a 1/1 run writes, field for field (wall-clock times,
  which no two runs share, aside: those fields are summed).  A format of another command
  (``ksim compare``, :func:`ksim.compare_cli.summarize`) reuses this by following the same
  three fields and registering its summary and the fields it recomputes.
* **The run record** (``--record FILE``, :class:`RunRecord`): JSON Lines, appended; one header
  line per invocation (the configuration), a ``start`` line per seed written and flushed
  *before* the seed runs (its seed, the schedule it replays if any, the command that
  reproduces it), and a ``done`` line with its verdict and schedule string once it finished.
  A harness that crashes or is killed loses no failure: a seed with a ``start`` line and no
  ``done`` line is the one that took the harness down, and its command reruns it.  Lines are
  flushed to the operating system (they survive the process, not a power cut).
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from typing import IO, Any, TypeVar

T = TypeVar("T")

SHARD_SYNTAX = "expected I/N with 1 <= I <= N"
RECORD_FORMAT = "ksim-stress-record"
RECORD_VERSION = 1


def parse_shard(text: str) -> tuple[int, int]:
    """``I/N`` (1 <= I <= N), as ``ksim run --shard`` takes it; ``ValueError`` otherwise."""
    m = re.fullmatch(r"\s*(\d{1,6})\s*/\s*(\d{1,6})\s*", text)
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise ValueError(f"{SHARD_SYNTAX}, got {text[:40]!r}")
    return int(m.group(1)), int(m.group(2))


def shard_type(text: str) -> tuple[int, int]:
    """:func:`parse_shard` as an argparse type."""
    try:
        return parse_shard(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def shard_items(items: Sequence[T], shard: tuple[int, int]) -> Sequence[T]:
    """Shard ``I/N`` of ``items``: item k goes to shard k mod N + 1 (a range stays a range)."""
    index, count = shard
    return items[index - 1::count]


# -- merging --------------------------------------------------------------------------------
class MergeError(ValueError):
    """The files are not the shards of one run."""


Summarize = Callable[[dict[str, Any], Sequence[dict[str, Any]]], dict[str, Any]]
SUMMARIES: dict[str, Summarize] = {}  # format -> (merged document, shard documents) -> summary
# format -> the fields its summary recomputes from the shards (which may differ between them)
RECOMPUTED: dict[str, tuple[str, ...]] = {}


def merge_documents(docs: Sequence[dict[str, Any]], names: Sequence[str] = ()) -> dict[str, Any]:
    """The whole run's document from its shards' (see the module docstring)."""
    names = list(names) or [f"document {i + 1}" for i in range(len(docs))]
    if not docs:
        raise MergeError("nothing to merge")
    for doc, name in zip(docs, names):
        shard = doc.get("shard") if isinstance(doc, dict) else None
        if not isinstance(shard, dict) or not isinstance(doc.get("results"), list) or \
                not all(isinstance(shard.get(k), int) for k in ("index", "count", "items")):
            raise MergeError(f"{name}: not a shard's results (no \"shard\" with index, count "
                             "and items, or no \"results\" list)")
    count = docs[0]["shard"]["count"]
    by_index: dict[int, tuple[dict[str, Any], str]] = {}
    for doc, name in zip(docs, names):
        shard = doc["shard"]
        if shard["count"] != count or shard["items"] != docs[0]["shard"]["items"]:
            raise MergeError(f"{name}: shard {shard['index']}/{shard['count']} of "
                             f"{shard['items']} items is not from the run of {names[0]} "
                             f"(shard {docs[0]['shard']['index']}/{count} of "
                             f"{docs[0]['shard']['items']} items)")
        if shard["index"] in by_index:
            raise MergeError(f"{name}: shard {shard['index']}/{count} again (also "
                             f"{by_index[shard['index']][1]})")
        by_index[shard["index"]] = (doc, name)
    missing = [i for i in range(1, count + 1) if i not in by_index]
    if missing:
        raise MergeError(f"shard{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(f'{i}/{count}' for i in missing)} missing")
    first = docs[0]
    fmt = first.get("format")
    for doc, name in zip(docs, names):
        for key in set(first) | set(doc):
            if key in ("shard", "results", "summary", "verdicts") or \
                    key in RECOMPUTED.get(fmt, ()):  # type: ignore[arg-type]
                continue
            if first.get(key) != doc.get(key):
                raise MergeError(f"{name}: {key!r} differs from {names[0]}'s: not one run")
    shards = [by_index[i][0]["results"] for i in range(1, count + 1)]
    total = first["shard"]["items"]
    results = []
    for k in range(sum(len(s) for s in shards)):
        column, row = k % count, k // count
        if row >= len(shards[column]):
            raise MergeError(f"shard {column + 1}/{count} stopped early: its results do not "
                             "fill the whole run")
        results.append(shards[column][row])
    merged = dict(first)
    merged["shard"] = {"index": 1, "count": 1, "items": total}
    merged["results"] = results
    summarize = SUMMARIES.get(fmt) if isinstance(fmt, str) else None
    if summarize is not None:
        merged = summarize(merged, [d for d, _ in by_index.values()])
    return merged


def _stress_summary(merged: dict[str, Any], docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    merged["complete"] = all(d.get("complete") for d in docs) and \
        len(merged["results"]) == merged["shard"]["items"]
    merged["interrupted_by"] = next((d["interrupted_by"] for d in docs
                                     if d.get("interrupted_by")), None)
    merged["results"].sort(key=lambda r: r["seed"])  # a stress report lists seeds in order
    return merged


def _scenario_summary(merged: dict[str, Any], docs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    results = merged["results"]
    wall = sum(d.get("summary", {}).get("wall_s") or 0.0 for d in docs)
    merged["summary"] = {
        "total": len(results),
        "passed": sum(1 for r in results if r["status"] == "PASS"),
        "failed": sum(1 for r in results if r["status"] == "FAIL"),
        "errors": sum(1 for r in results if r["status"] == "ERROR"),
        "wall_s": round(wall, 6),
        "scenarios_per_s": round(len(results) / wall, 3) if wall > 0 else None,
    }
    merged["verdicts"] = _merged_verdicts(merged["results"], docs)
    return merged


def _merged_verdicts(results: Sequence[dict[str, Any]],
                     docs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The shards' verdict tallies summed per scenario, in the order the scenarios first ran
    in the whole run, each judged again as :class:`ksim.scenario.report.VerdictTally` does."""
    from types import SimpleNamespace

    from ksim.scenario.model import Verdict
    tallies: dict[tuple[str, str], dict[str, Any]] = {}
    for doc in docs:
        for t in doc.get("verdicts", []):
            key = (t["file"], t["name"])
            if key in tallies:
                for field in ("run", "observed", "held"):
                    tallies[key][field] += t[field]
            else:
                tallies[key] = dict(t)
    order = list(dict.fromkeys((r["file"], r["name"]) for r in results))
    out = []
    for key in [k for k in order if k in tallies]:
        t = tallies[key]
        if t["observed"] == 0 or t["answer"] == "partly" and t["observed"] != t["seeds"]:
            t["agrees"] = None
        else:
            t["agrees"] = Verdict.agrees(SimpleNamespace(answer=t["answer"]),  # type: ignore[arg-type]
                                         t["held"], t["observed"])
        out.append(t)
    return out


SUMMARIES["ksim-stress-results"] = _stress_summary
SUMMARIES["ksim-scenario-results"] = _scenario_summary


def merge_files(paths: Sequence[str]) -> dict[str, Any]:
    docs = []
    for path in paths:
        try:
            with open(path, encoding="utf-8") as f:
                docs.append(json.load(f))
        except OSError as exc:
            raise MergeError(f"{path}: {exc.strerror or exc}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise MergeError(f"{path}: not JSON: {exc}") from None
    return merge_documents(docs, paths)


# -- the run record -------------------------------------------------------------------------
class RunRecord:
    """``--record FILE``: JSON Lines, each line flushed as it is written (module docstring)."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    @classmethod
    def open(cls, path: str) -> RunRecord:
        return cls(open(path, "a", encoding="utf-8"))  # noqa: SIM115 - closed by close()

    def write(self, **fields: Any) -> None:
        self.stream.write(json.dumps(fields, separators=(",", ":")) + "\n")
        self.stream.flush()

    def header(self, config: dict[str, Any], seeds: Sequence[int],
               shard: tuple[int, int]) -> None:
        self.write(format=RECORD_FORMAT, version=RECORD_VERSION, config=config,
                   seeds=[seeds[0], seeds[-1]] if seeds else [], shard=list(shard))

    def close(self) -> None:
        self.stream.close()


def read_record(path: str) -> list[dict[str, Any]]:
    """Every line of a run record (a torn last line, the harness killed mid-write, is left
    out)."""
    lines = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def unfinished(path: str) -> list[dict[str, Any]]:
    """The ``start`` lines of seeds that never got their ``done`` line."""
    started: dict[int, dict[str, Any]] = {}
    for line in read_record(path):
        if line.get("event") == "start":
            started[line["seed"]] = line
        elif line.get("event") == "done":
            started.pop(line["seed"], None)
    return list(started.values())


__all__ = ["MergeError", "RunRecord", "merge_documents", "merge_files", "parse_shard",
           "read_record", "shard_items", "shard_type", "unfinished"]


# -- ksim merge -----------------------------------------------------------------------------
def add_merge_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "merge", help="join the --json files of a run's shards into the whole run's",
        description="Join the --json results of shards 1/N..N/N of one run (ksim stress, "
                    "ksim run, ksim compare) into the JSON the whole run writes: the results "
                    "in the whole "
                    "run's order, the summary recomputed, shard 1/1.",
        epilog="exit status:\n  0    merged\n  2    the files are not the shards of one run "
               "(one line on stderr; nothing written)",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", metavar="FILE.json", help="one file per shard")
    p.add_argument("-o", "--output", metavar="FILE",
                   help="write the merged JSON to FILE (default: stdout)")
    return p


def merge_main(args: argparse.Namespace) -> int:
    from ksim.clitools import Stdout, UsageError, prepare_output, write_atomic
    output = prepare_output(args.output, "--output", "merge") if args.output else None
    try:
        merged = merge_files(args.files)
    except MergeError as exc:
        raise UsageError(f"ksim merge: {exc}") from None
    indent = 1 if merged.get("format") in ("ksim-stress-results", "ksim-compare") else 2
    text = json.dumps(merged, indent=indent) + "\n"
    if output is None:
        Stdout.write(text)
    else:
        write_atomic(output, text)
    return 0


# -- Dask -----------------------------------------------------------------------------------
def dask_client(address: str) -> Any:
    """A ``distributed.Client`` of the scheduler at ``address`` (``ValueError`` saying what
    is missing or unreachable)."""
    try:
        import distributed
    except ImportError:
        raise ValueError("--dask needs the dask extra: pip install 'ksim[dask]'") from None
    try:
        # The default client (distributed.as_completed looks for one); how long to try is
        # dask's own setting, distributed.comm.timeouts.connect (30 s;
        # $DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT).
        return distributed.Client(address)
    except (OSError, TimeoutError, ValueError) as exc:
        raise ValueError(f"--dask {address[:80]!r}: cannot reach the Dask scheduler: "
                         f"{exc}") from None


def dask_map(client: Any, fn: Callable[..., T], args: Sequence[Any],
             on_start: Callable[[Any], None]) -> Any:
    """``fn(*a)`` for each ``a`` of ``args`` on the cluster, yielded as they finish
    (``on_start(a[1])``, the seed, before each is submitted).  Each task is pure (a seed's run
    depends on its seed and configuration), so a worker lost and its task rerun elsewhere
    gives the same result; ``pure=False`` keeps Dask from merging two equal calls."""
    import distributed
    futures = []
    for a in args:
        on_start(a[1])
        futures.append(client.submit(fn, *a, pure=False))
    try:
        for future in distributed.as_completed(futures):
            yield future.result()
    finally:
        client.cancel(futures)

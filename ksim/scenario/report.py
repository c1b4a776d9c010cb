"""Reporting results: PASS/FAIL/ERROR lines, failure details, verdicts, JUnit XML, JSON, KTAP.

The same text is used by ``ksim run`` and by the pytest plugin, so a failure reads the same
whichever ran it.  A scenario's verdict is tallied over the seeds that ran
(:func:`tally_verdicts`): the question, the declared answer, and on how many seeds the
observation held; a tally that contradicts the answer is a failure of the run.
"""

from __future__ import annotations

import io
import json
import sys
import textwrap
import typing
from collections.abc import Sequence
from typing import Any, TextIO
from xml.etree import ElementTree as ET

import attrs

from ksim.scenario.model import Scenario, Verdict
from ksim.scenario.runner import ERROR, FAIL, PASS, Result

JSON_FORMAT = "ksim-scenario-results"
JSON_VERSION = 2  # 2: item ids, the shard, observations and verdict tallies


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms" if seconds < 10 else f"{seconds:.1f}s"


def result_line(r: Result) -> str:
    return (f"{r.status:<5} {r.scenario.file}: {r.label}  "
            f"({r.virtual:.3f}s virtual, {_ms(r.wall)} wall)")


def verdict_lines(r: Result) -> list[str]:
    """The verdict under a result's line (``-v``): the question, the answer, this seed."""
    v = r.scenario.verdict
    if v is None:
        return []
    seen = {True: "held on this seed", False: "did not hold on this seed",
            None: "not reached on this seed"}[r.observed]
    out = [f"    verdict: {v.question}", f"      answer: {v.answer} (the observation {seen})",
           f"      why: {v.why}"]
    out += [f"      assumes: {a}" for a in v.assumes]
    return out


def result_details(r: Result, verbose: bool = False) -> list[str]:
    """What to print under the line: failures, or the crash, then the run's log."""
    out: list[str] = []
    if r.status == ERROR:
        out.append(f"    {r.scenario.loc}: {r.error}")
        out += [f"        {line}" for line in r.error_detail]
    for failure in r.failures:
        out += failure.render("    ")
    if verbose:
        out += verdict_lines(r)
    if r.log and (verbose or r.status != PASS):
        out.append("    what happened:")
        out += [f"      {line}" for line in r.log]
    return out


def failure_text(r: Result) -> str:
    """The whole report of one result (the pytest plugin's failure text)."""
    return "\n".join([result_line(r)] + result_details(r))


# -- verdicts --------------------------------------------------------------------------------

@attrs.frozen
class VerdictTally:
    """A scenario's verdict against the seeds that ran: on how many the observation held."""

    scenario: Scenario
    verdict: Verdict
    run: int  # seeds that ran
    observed: int  # of those, seeds whose observation was reached
    held: int  # of those, seeds where it held

    @property
    def seeds(self) -> int:
        """The scenario's own seeds (a run may cover fewer: --seed, -k, --shard, -x)."""
        return len(self.scenario.seeds)

    @property
    def complete(self) -> bool:
        return self.observed == self.seeds

    @property
    def agrees(self) -> bool | None:
        """True: the observations bear the answer out; False: they contradict it; None: the
        seeds that ran cannot tell (``partly`` needs all of a scenario's seeds)."""
        if self.observed == 0:
            return None
        if self.verdict.answer == "partly" and not self.complete:
            return None
        return self.verdict.agrees(self.held, self.observed)

    def fraction(self) -> str:
        text = f"{self.held} of {self.observed}"
        if self.verdict.answer == "measured" and self.observed:
            text += f" ({100 * self.held / self.observed:.0f}%)"
        return text

    def problem(self) -> str | None:
        """Why the tally contradicts the answer (None: it does not)."""
        if self.agrees is not False:
            return None
        return (f"the answer is '{self.verdict.answer}' (the observation holds "
                f"{self.verdict.expected()}), but it held on {self.held} of {self.observed} "
                "seeds")

    def to_json(self) -> dict[str, Any]:
        v = self.verdict
        return {"file": self.scenario.file, "name": self.scenario.name,
                "location": str(v.loc), "question": v.question, "answer": v.answer,
                "why": v.why, "assumes": list(v.assumes), "seeds": self.seeds,
                "run": self.run, "observed": self.observed, "held": self.held,
                "agrees": self.agrees}


def tally_verdicts(results: Sequence[Result]) -> list[VerdictTally]:
    """One tally per scenario with a verdict, in the order the scenarios first ran."""
    groups: dict[int, list[Result]] = {}
    for r in results:
        if r.scenario.verdict is not None:
            groups.setdefault(id(r.scenario), []).append(r)
    out = []
    for rs in groups.values():
        sc = rs[0].scenario
        assert sc.verdict is not None
        observed = [r.observed for r in rs if r.observed is not None]
        out.append(VerdictTally(sc, sc.verdict, len(rs), len(observed), sum(observed)))
    return out


def contradicted(tallies: Sequence[VerdictTally]) -> list[VerdictTally]:
    return [t for t in tallies if t.agrees is False]


def verdict_table(tallies: Sequence[VerdictTally]) -> list[str]:
    """Question → answer, one line each, after the run."""
    if not tallies:
        return []
    bad = len(contradicted(tallies))
    head = f"verdicts: {len(tallies)} question{'s' if len(tallies) != 1 else ''}, " + (
        "every answer borne out by what ran" if not bad else f"{bad} contradicted")
    out = [head, f"  {'answer':<9} {'held on':<16} question"]
    for t in tallies:
        mark = {True: "", None: " (not judged: needs all the scenario's seeds)"
                if t.verdict.answer == "partly" else " (not reached)",
                False: "  <-- CONTRADICTED"}[t.agrees]
        seeds = t.fraction() + (f" (of {t.seeds})" if t.run < t.seeds else "")
        out.append(f"  {t.verdict.answer:<9} {seeds + ' seeds':<16} {t.verdict.question}{mark}")
    return out


def summary_line(results: Sequence[Result], wall: float) -> str:
    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, FAIL, ERROR)}
    rate = len(results) / wall if wall > 0 else 0.0
    virtual = sum(r.virtual for r in results)
    bad = len(contradicted(tally_verdicts(results)))
    return (f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[ERROR]} errors in "
            f"{wall:.2f}s wall ({rate:.1f} scenarios/s), {virtual:.2f}s virtual"
            + (f"; {bad} verdict{'s' if bad != 1 else ''} contradicted" if bad else ""))


# -- JSON and JUnit ----------------------------------------------------------------------------

def to_json(results: Sequence[Result], wall: float, shard: tuple[int, int] = (1, 1),
            total: int | None = None) -> dict:
    """The results; a shard's file carries what merging needs (item ids, the shard, tallies)."""
    tallies = tally_verdicts(results)
    return {
        "format": JSON_FORMAT,
        "version": JSON_VERSION,
        "shard": {"index": shard[0], "count": shard[1],
                  "items": len(results) if total is None else total},
        "summary": {
            "total": len(results),
            "passed": sum(1 for r in results if r.status == PASS),
            "failed": sum(1 for r in results if r.status == FAIL),
            "errors": sum(1 for r in results if r.status == ERROR),
            "wall_s": round(wall, 6),
            "scenarios_per_s": round(len(results) / wall, 3) if wall > 0 else None,
        },
        "results": [{
            "id": r.id,
            "file": r.scenario.file,
            "name": r.scenario.name,
            "seed": r.seed,
            "status": r.status,
            "virtual_s": round(r.virtual, 9),
            "wall_s": round(r.wall, 6),
            "checks": r.checks,
            "location": str(r.scenario.loc),
            "observed": r.observed,
            "failures": [{"location": str(f.loc), "title": f.title, "details": list(f.details)}
                         for f in r.failures],
            "error": r.error,
            "error_detail": r.error_detail,
            "log": r.log,
        } for r in results],
        "verdicts": [t.to_json() for t in tallies],
    }


def write_json(results: Sequence[Result], wall: float, path: str,
               shard: tuple[int, int] = (1, 1), total: int | None = None) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_json(results, wall, shard, total), f, indent=2)
        f.write("\n")


def _properties(parent: ET.Element, props: Sequence[tuple[str, str]]) -> None:
    if props:
        el = ET.SubElement(parent, "properties")
        for name, value in props:
            ET.SubElement(el, "property", {"name": name, "value": value})


def write_junit(results: Sequence[Result], wall: float, path: str) -> None:
    tallies = tally_verdicts(results)
    bad = contradicted(tallies)
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", {
        "name": "ksim scenarios",
        "tests": str(len(results) + len(bad)),
        "failures": str(sum(1 for r in results if r.status == FAIL) + len(bad)),
        "errors": str(sum(1 for r in results if r.status == ERROR)),
        "skipped": "0",
        "time": f"{wall:.3f}",
    })
    by_scenario = {id(t.scenario): t for t in tallies}
    for r in results:
        case = ET.SubElement(suite, "testcase", {
            "classname": _classname(r.scenario),
            "name": r.label,
            "file": r.scenario.file,
            "line": str(r.scenario.loc.line),
            "time": f"{r.wall:.4f}",
        })
        v = r.scenario.verdict
        if v is not None:
            t = by_scenario[id(r.scenario)]
            _properties(case, [("verdict.question", v.question), ("verdict.answer", v.answer),
                               ("verdict.why", v.why),
                               *[("verdict.assumes", a) for a in v.assumes],
                               ("verdict.observed", {True: "true", False: "false",
                                                     None: "unknown"}[r.observed]),
                               ("verdict.held", t.fraction() + " seeds"),
                               ("verdict.agrees", {True: "true", False: "false",
                                                   None: "unknown"}[t.agrees])])
        text = "\n".join(result_details(r))
        if r.status == FAIL:
            first = r.failures[0]
            el = ET.SubElement(case, "failure", {"message": f"{first.loc}: {first.title}",
                                                 "type": "ScenarioFailed"})
            el.text = text
        elif r.status == ERROR:
            el = ET.SubElement(case, "error", {"message": r.error or "", "type": "KsimCrash"})
            el.text = text
        out = ET.SubElement(case, "system-out")
        out.text = "\n".join(r.log)
    for t in bad:
        case = ET.SubElement(suite, "testcase", {
            "classname": _classname(t.scenario), "name": f"{t.scenario.name} [verdict]",
            "file": t.scenario.file, "line": str(t.verdict.loc.line), "time": "0"})
        el = ET.SubElement(case, "failure", {"message": f"{t.verdict.loc}: verdict: "
                                                        f"{t.problem()}",
                                             "type": "VerdictContradicted"})
        el.text = t.verdict.question
    ET.indent(suites)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


def _classname(sc: Scenario) -> str:
    return sc.file.removesuffix(".yaml").removesuffix(".yml").replace("/", ".")


# -- KTAP ---------------------------------------------------------------------------------

KTAP_INDENT = "    "  # one subtest level, as KUnit prints it (KUNIT_SUBTEST_INDENT)


def _ktap_name(text: str) -> str:
    """A KTAP description cannot hold '#' (it starts the directive) nor a line break."""
    return " ".join(text.replace("#", "_").split())


def _ktap_diag(lines: Sequence[str], indent: str) -> list[str]:
    return [f"{indent}# {line}".rstrip() for line in lines]


def to_ktap(results: Sequence[Result], not_run: Sequence[tuple[Scenario, int]] = ()) -> str:
    """The results as KTAP version 1 (Documentation/dev-tools/ktap.rst), read by ``kunit.py
    parse``: one test per scenario, with one subtest per seed; a failure's details, and a
    contradicted verdict, as diagnostic lines before the result line; seeds that did not run
    (``-x``) as ``ok N seed=S # SKIP``."""
    scenarios: dict[int, tuple[Scenario, list[tuple[int, Result | None]]]] = {}
    for res in results:
        scenarios.setdefault(id(res.scenario), (res.scenario, []))[1].append((res.seed, res))
    for sc, seed in not_run:
        scenarios.setdefault(id(sc), (sc, []))[1].append((seed, None))
    tallies = {id(t.scenario): t for t in tally_verdicts(results)}
    out = ["KTAP version 1", f"1..{len(scenarios)}"]
    sub = KTAP_INDENT
    for number, (key, (sc, seeds)) in enumerate(scenarios.items(), start=1):
        name = _ktap_name(f"{sc.file}: {sc.name}")
        out += [f"{sub}KTAP version 1", f"{sub}# Subtest: {name}", f"{sub}1..{len(seeds)}"]
        failed = 0
        counts = {"pass": 0, "fail": 0, "skip": 0}
        for case, (seed, r) in enumerate(seeds, start=1):
            if r is None:
                out.append(f"{sub}ok {case} seed={seed} # SKIP not run (the run stopped "
                           "early, -x)")
                counts["skip"] += 1
                continue
            if r.status == PASS:
                out.append(f"{sub}ok {case} seed={seed}")
                counts["pass"] += 1
                continue
            failed += 1
            counts["fail"] += 1
            details = textwrap.dedent("\n".join(result_details(r))).splitlines()
            out += _ktap_diag([line for line in details if line.strip()], sub)
            directive = f" # ERROR {_ktap_name(r.error or '')}" if r.status == ERROR else ""
            out.append(f"{sub}not ok {case} seed={seed}{directive}")
        tally = tallies.get(key)
        if tally is not None:
            out.append(f"# {name}: verdict: {tally.verdict.question} {tally.verdict.answer}, "
                       f"held on {tally.fraction()} seeds")
            if tally.agrees is False:
                failed += 1
                out.append(f"# {name}: verdict contradicted: {tally.problem()}")
        out.append(f"# {name}: pass:{counts['pass']} fail:{counts['fail']} "
                   f"skip:{counts['skip']} total:{len(seeds)}")
        all_skipped = counts["skip"] == len(seeds)
        out.append(("not ok" if failed else "ok") + f" {number} {name}"
                   + (" # SKIP not run" if all_skipped else ""))
    return "\n".join(out) + "\n"


def write_ktap(results: Sequence[Result], path: str,
               not_run: Sequence[tuple[Scenario, int]] = ()) -> None:
    text = to_ktap(results, not_run)
    if path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


# -- the terminal --------------------------------------------------------------------------

class Reporter:
    """Prints one line per result (details under failures); a progress bar on a terminal."""

    def __init__(self, total: int, *, verbose: bool = False, progress: bool = False,
                 table: bool = False, stream: TextIO | io.TextIOBase | None = None) -> None:
        self.total = total
        self.verbose = verbose
        self.table = table or verbose
        self.stream: TextIO | io.TextIOBase = stream or sys.stdout
        self.results: list[Result] = []
        self._progress: Any = None
        self._task: Any = None
        self._console: Any = None
        if progress:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)
            self._console = Console(file=typing.cast(TextIO, self.stream), highlight=False)
            self._progress = Progress(TextColumn("[bold]ksim run"), BarColumn(bar_width=24),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      TextColumn("{task.description}"),
                                      console=self._console, transient=True)
            self._task = self._progress.add_task("", total=total)
            self._progress.start()

    def note(self, line: str) -> None:
        self._print([line])

    def starting(self, label: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=label[:60])

    def _print(self, lines: list[str], style: str | None = None, styled: int = 0) -> None:
        if self._console is not None:
            from rich.text import Text
            for i, line in enumerate(lines):
                text = Text(line)
                if i == 0 and style:
                    text.stylize(style, 0, styled)
                self._console.print(text, soft_wrap=True)
        else:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def add(self, result: Result) -> None:
        self.results.append(result)
        lines = [result_line(result)]
        if result.status != PASS or self.verbose:
            lines += result_details(result, self.verbose)
        style = {PASS: "green", FAIL: "bold red", ERROR: "bold magenta"}[result.status]
        self._print(lines, style, len(result.status))
        if self._progress is not None:
            self._progress.advance(self._task)

    def verdict_failures(self) -> list[VerdictTally]:
        """Print a FAIL line per verdict the seeds together contradict; return them."""
        bad = [t for t in contradicted(tally_verdicts(self.results))
               if t.verdict.answer == "partly"]  # holds/fails: already a seed's failure
        for t in bad:
            self._print([f"FAIL  {t.scenario.file}: {t.scenario.name} [verdict]",
                         f"    {t.verdict.loc}: verdict: {t.problem()}"], "bold red", 4)
        return bad

    def finish(self, wall: float) -> None:
        if self._progress is not None:
            self._progress.stop()
        if self.table:
            table = verdict_table(tally_verdicts(self.results))
            if table:
                self.stream.write("\n".join(table) + "\n")
        self.stream.write(summary_line(self.results, wall) + "\n")
        self.stream.flush()

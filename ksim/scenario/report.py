"""Reporting results: PASS/FAIL/ERROR lines, failure details, JUnit XML and JSON.

The same text is used by ``ksim run`` and by the pytest plugin, so a failure reads the same
whichever ran it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TextIO
from xml.etree import ElementTree as ET

from ksim.scenario.runner import ERROR, FAIL, PASS, Result


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}ms" if seconds < 10 else f"{seconds:.1f}s"


def result_line(r: Result) -> str:
    return (f"{r.status:<5} {r.scenario.file}: {r.label}  "
            f"({r.virtual:.3f}s virtual, {_ms(r.wall)} wall)")


def result_details(r: Result, verbose: bool = False) -> list[str]:
    """What to print under the line: failures, or the crash, then the run's log."""
    out: list[str] = []
    if r.status == ERROR:
        out.append(f"    {r.scenario.loc}: {r.error}")
        out += [f"        {line}" for line in r.error_detail]
    for failure in r.failures:
        out += failure.render("    ")
    if r.log and (verbose or r.status != PASS):
        out.append("    what happened:")
        out += [f"      {line}" for line in r.log]
    return out


def failure_text(r: Result) -> str:
    """The whole report of one result (the pytest plugin's failure text)."""
    return "\n".join([result_line(r)] + result_details(r))


def summary_line(results: Sequence[Result], wall: float) -> str:
    counts = {s: sum(1 for r in results if r.status == s) for s in (PASS, FAIL, ERROR)}
    rate = len(results) / wall if wall > 0 else 0.0
    virtual = sum(r.virtual for r in results)
    return (f"{counts[PASS]} passed, {counts[FAIL]} failed, {counts[ERROR]} errors in "
            f"{wall:.2f}s wall ({rate:.1f} scenarios/s), {virtual:.2f}s virtual")


def to_json(results: Sequence[Result], wall: float) -> dict:
    return {
        "format": "ksim-scenario-results",
        "version": 1,
        "summary": {
            "total": len(results),
            "passed": sum(1 for r in results if r.status == PASS),
            "failed": sum(1 for r in results if r.status == FAIL),
            "errors": sum(1 for r in results if r.status == ERROR),
            "wall_s": round(wall, 6),
            "scenarios_per_s": round(len(results) / wall, 3) if wall > 0 else None,
        },
        "results": [{
            "file": r.scenario.file,
            "name": r.scenario.name,
            "seed": r.seed,
            "status": r.status,
            "virtual_s": round(r.virtual, 9),
            "wall_s": round(r.wall, 6),
            "checks": r.checks,
            "location": str(r.scenario.loc),
            "failures": [{"location": str(f.loc), "title": f.title, "details": list(f.details)}
                         for f in r.failures],
            "error": r.error,
            "error_detail": r.error_detail,
            "log": r.log,
        } for r in results],
    }


def write_json(results: Sequence[Result], wall: float, path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(to_json(results, wall), f, indent=2)
        f.write("\n")


def write_junit(results: Sequence[Result], wall: float, path: str) -> None:
    suites = ET.Element("testsuites")
    suite = ET.SubElement(suites, "testsuite", {
        "name": "ksim scenarios",
        "tests": str(len(results)),
        "failures": str(sum(1 for r in results if r.status == FAIL)),
        "errors": str(sum(1 for r in results if r.status == ERROR)),
        "skipped": "0",
        "time": f"{wall:.3f}",
    })
    for r in results:
        case = ET.SubElement(suite, "testcase", {
            "classname": r.scenario.file.removesuffix(".yaml").removesuffix(".yml")
            .replace("/", "."),
            "name": r.label,
            "file": r.scenario.file,
            "line": str(r.scenario.loc.line),
            "time": f"{r.wall:.4f}",
        })
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
    ET.indent(suites)
    ET.ElementTree(suites).write(path, encoding="utf-8", xml_declaration=True)


class Reporter:
    """Prints one line per result (details under failures); a progress bar on a terminal."""

    def __init__(self, total: int, *, verbose: bool = False, progress: bool = False,
                 stream: TextIO | None = None) -> None:
        self.total = total
        self.verbose = verbose
        self.stream = stream or sys.stdout
        self.results: list[Result] = []
        self._progress = None
        self._task = None
        self._console = None
        if progress:
            from rich.console import Console
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn)
            self._console = Console(file=self.stream, highlight=False)
            self._progress = Progress(TextColumn("[bold]ksim run"), BarColumn(bar_width=24),
                                      MofNCompleteColumn(), TimeElapsedColumn(),
                                      TextColumn("{task.description}"),
                                      console=self._console, transient=True)
            self._task = self._progress.add_task("", total=total)
            self._progress.start()

    def starting(self, label: str) -> None:
        if self._progress is not None:
            self._progress.update(self._task, description=label[:60])

    def add(self, result: Result) -> None:
        self.results.append(result)
        lines = [result_line(result)]
        if result.status != PASS or self.verbose:
            lines += result_details(result, self.verbose)
        if self._console is not None:
            from rich.text import Text
            style = {PASS: "green", FAIL: "bold red", ERROR: "bold magenta"}[result.status]
            head = Text(lines[0])
            head.stylize(style, 0, len(result.status))
            self._console.print(head, soft_wrap=True)
            for line in lines[1:]:
                self._console.print(Text(line), soft_wrap=True)
            self._progress.advance(self._task)  # type: ignore[union-attr]
        else:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()

    def finish(self, wall: float) -> None:
        if self._progress is not None:
            self._progress.stop()
        self.stream.write(summary_line(self.results, wall) + "\n")
        self.stream.flush()

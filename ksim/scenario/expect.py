"""Expectations: what a subject shows (:class:`Seen`) and whether each matcher holds.

A failure says what was checked, where it was written, what was expected and what was seen:
an excerpt of the text with the closest line for a missing string, a unified diff for
``equals``, the matched positions for ``lines_in_order``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any

import attrs

from ksim.scenario.model import Expectation, Loc, Matcher

MAX_SHOWN_LINES = 40
MAX_LINE = 200


@attrs.frozen
class Failure:
    """One expectation (or step) that did not hold."""

    loc: Loc
    title: str
    details: tuple[str, ...] = ()

    def render(self, indent: str = "") -> list[str]:
        out = [f"{indent}{self.loc}: {self.title}"]
        out += [f"{indent}    {line}" for line in self.details]
        return out


@attrs.define
class Seen:
    """A subject's value as observed: text (and raw bytes), a list of reports, or a scalar."""

    text: str | None = None
    data: bytes | None = None
    items: list[object] | None = None
    scalar: object = None
    error: str | None = None
    exists: bool = True
    label: str = ""  # e.g. "/proc/memconsole (812 bytes)"
    context: list[str] = attrs.Factory(list)


def _short(line: str) -> str:
    line = line.replace("\r", "\\r").replace("\t", "\\t")
    return line if len(line) <= MAX_LINE else line[:MAX_LINE - 3] + "..."


def excerpt(text: str, around: Sequence[int] = (), limit: int = MAX_SHOWN_LINES) -> list[str]:
    """Numbered lines of ``text`` (the whole text if short, else the ends and ``around``)."""
    lines = text.splitlines()
    if not lines:
        return ["  (empty)"]
    width = len(str(len(lines)))
    keep: set[int]
    if len(lines) <= limit:
        keep = set(range(len(lines)))
    else:
        keep = set(range(5)) | set(range(len(lines) - (limit - 15), len(lines)))
        for i in around:
            keep |= set(range(max(i - 2, 0), min(i + 3, len(lines))))
    out = []
    previous = -1
    for i in sorted(keep):
        if i != previous + 1:
            out.append(f"  {'.' * width} ({i - previous - 1} lines)")
        out.append(f"  {i + 1:>{width}} | {_short(lines[i])}")
        previous = i
    if previous != len(lines) - 1:
        out.append(f"  {'.' * width} ({len(lines) - 1 - previous} lines)")
    return out


def _closest(needle: str, lines: list[str]) -> tuple[int, str] | None:
    """The line most like ``needle`` (or containing the most of it), if any is close."""
    if not lines or "\n" in needle:
        return None
    best, best_ratio = -1, 0.0
    matcher = difflib.SequenceMatcher(autojunk=False)
    matcher.set_seq2(needle)
    for i, line in enumerate(lines):
        matcher.set_seq1(line)
        if matcher.real_quick_ratio() < best_ratio:
            continue
        # how much of the needle appears in order in the line
        blocks = matcher.get_matching_blocks()
        ratio = sum(b.size for b in blocks) / max(len(needle), 1)
        if ratio > best_ratio:
            best, best_ratio = i, ratio
    if best < 0 or best_ratio < 0.6:
        return None
    return best, lines[best]


def _seen_block(seen: Seen, around: Sequence[int] = ()) -> list[str]:
    text = seen.text or ""
    n = len(text.splitlines())
    head = f"seen{(' in ' + seen.label) if seen.label else ''} ({n} line{'s' if n != 1 else ''}, " \
           f"{len(text.encode())} bytes):"
    return [head] + excerpt(text, around) + seen.context


def _count(spec: dict, seen: Seen) -> tuple[int, str]:
    if "regex" in spec:
        return len(re.findall(spec["regex"], seen.text or "", re.MULTILINE)), \
            f"matches of /{spec['regex']}/"
    if "text" in spec:
        return (seen.text or "").count(spec["text"]), f"occurrences of {spec['text']!r}"
    if seen.items is not None:
        return len(seen.items), "reports"
    return len((seen.text or "").splitlines()), "lines"


def _bounds_ok(spec: dict, n: int) -> tuple[bool, str]:
    if "equals" in spec:
        return n == spec["equals"], f"== {spec['equals']}"
    parts = []
    ok = True
    if "min" in spec:
        ok &= n >= spec["min"]
        parts.append(f">= {spec['min']}")
    if "max" in spec:
        ok &= n <= spec["max"]
        parts.append(f"<= {spec['max']}")
    return ok, " and ".join(parts)


def check_matcher(exp: Expectation, m: Matcher, seen: Seen, where: str) -> Failure | None:
    """None if ``m`` holds on ``seen``, else the failure to report."""
    title = f"{where}: {exp.describe()}: {m.kind}"
    value: Any = m.value  # its shape is the matcher's (MatcherSpec.values), checked by the loader
    if m.kind == "exists":
        if seen.exists == value:
            return None
        return Failure(m.loc, title, (f"expected the file to {'exist' if value else 'be absent'}"
                                      f", but it {'does not exist' if not seen.exists else 'exists'}",))
    if seen.error is not None:
        return Failure(m.loc, title, (seen.error,))
    if seen.text is None and m.kind != "equals":
        return Failure(m.loc, title, (f"{exp.subject} has no text to check",))
    text = seen.text or ""
    lines = text.splitlines()
    if m.kind == "contains":
        missing = [s for s in value if s not in text]
        if not missing:
            return None
        details: list[str] = []
        around = []
        for s in missing:
            details.append(f"expected to contain: {s!r}")
            near = _closest(s, lines)
            if near is not None:
                around.append(near[0])
                details.append(f"  closest line {near[0] + 1}: {_short(near[1])!r}")
        return Failure(m.loc, title, tuple(details + _seen_block(seen, around)))
    if m.kind == "not_contains":
        found = [s for s in value if s in text]
        if not found:
            return None
        details = []
        around = []
        for s in found:
            index = next((i for i, line in enumerate(lines) if s in line), None)
            details.append(f"expected not to contain: {s!r}")
            if index is not None:
                around.append(index)
                details.append(f"  found at line {index + 1}: {_short(lines[index])!r}")
        return Failure(m.loc, title, tuple(details + _seen_block(seen, around)))
    if m.kind in ("matches", "not_matches"):
        details = []
        around = []
        for pattern in value:
            hit = re.search(pattern, text, re.MULTILINE)
            if m.kind == "matches" and hit is None:
                details.append(f"expected to match: /{pattern}/")
            elif m.kind == "not_matches" and hit is not None:
                index = text.count("\n", 0, hit.start())
                around.append(index)
                details.append(f"expected not to match: /{pattern}/")
                details.append(f"  matched at line {index + 1}: {hit.group(0)!r}")
        if not details:
            return None
        return Failure(m.loc, title, tuple(details + _seen_block(seen, around)))
    if m.kind == "equals":
        expected = value
        actual: Any = seen.scalar if seen.text is None else text
        if actual == expected:
            return None
        if seen.text is not None and isinstance(expected, str):
            diff = list(difflib.unified_diff(expected.splitlines(), actual.splitlines(),
                                             "expected", "seen", lineterm="", n=2))
            if not diff:  # differ only in a trailing newline
                diff = [f"expected {expected!r}", f"seen     {actual!r}"]
            shown = diff[:60] + ([f"... ({len(diff) - 60} more diff lines)"]
                                 if len(diff) > 60 else [])
            return Failure(m.loc, title, tuple(["text differs (- expected, + seen):"]
                                               + ["  " + _short(line) for line in shown]))
        word: dict[object, str] = {True: "true", False: "false"}
        return Failure(m.loc, title, tuple([f"expected: {word.get(expected, expected)}",
                                            f"seen:     {word.get(actual, actual)}"]
                                           + seen.context))
    if m.kind == "lines_in_order":
        position = -1
        in_order: list[str] = []
        for k, s in enumerate(value):
            index = next((i for i in range(position + 1, len(lines)) if s in lines[i]), None)
            if index is None:
                details = [f"found in order: {len(in_order)} of {len(value)}"]
                details += in_order
                after = f"after line {position + 1}" if position >= 0 else "anywhere"
                details.append(f"missing [{k + 1}] {s!r} {after}")
                around = [position] if position >= 0 else []
                earlier = next((i for i in range(0, position + 1) if s in lines[i]), None)
                if earlier is not None:
                    details.append(f"  it appears earlier, at line {earlier + 1}: out of order")
                    around.append(earlier)
                else:
                    near = _closest(s, lines[position + 1:])
                    if near is not None:
                        details.append(f"  closest line {near[0] + position + 2}: "
                                       f"{_short(near[1])!r}")
                        around.append(near[0] + position + 1)
                return Failure(m.loc, title, tuple(details + _seen_block(seen, around)))
            in_order.append(f"  [{k + 1}] {s!r} at line {index + 1}")
            position = index
        return None
    if m.kind == "count":
        n, what = _count(value, seen)
        ok, bound = _bounds_ok(value, n)
        if ok:
            return None
        return Failure(m.loc, title, tuple([f"expected the number of {what} {bound}, saw {n}"]
                                           + _seen_block(seen)))
    if m.kind == "length":
        n = len(seen.data) if seen.data is not None else len(text.encode())
        ok, bound = _bounds_ok(value, n)
        if ok:
            return None
        return Failure(m.loc, title, tuple([f"expected a length (bytes) {bound}, saw {n}"]
                                           + _seen_block(seen)))
    raise AssertionError(m.kind)


def check(exp: Expectation, seen: Seen, where: str) -> list[Failure]:
    out = []
    for m in exp.matchers:
        failure = check_matcher(exp, m, seen, where)
        if failure is not None:
            out.append(failure)
    return out

"""docs/linux-rules.md defines every Linux rule id the project cites, and is well-formed.

Code, tests, docs and scenarios justify behaviour by citing rule ids: ``(F2)``, ``C4h`` (item h
of C4), ``K2 step 12``, ranges such as ``F1..F13`` or ``K5-K7`` (every id in between counts),
and test names such as ``test_f4_...``.  These tests scan the tree for such citations and fail,
naming each file:line, when the document lacks the id, the item or the step; they also check
that the document has one entry per id, each naming a kernel source, with exactly the
reference's numbering (plus the ids ksim defines itself, in their own section).

What is not a citation: register names in oops output (``"R11"``, ``R12: ffff...``), flake8
codes after ``noqa``, ids glued to other letters or digits (``CR2``, ``HC0``, ``0xC6``), and
numbers with a leading zero (``R08``).  This file itself is not scanned: its self-tests cite
missing ids on purpose.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "linux-rules.md"
SCANNED = ("ksim", "plugins", "tests", "docs", "scenarios", "benchmarks", "README.md")
SCANNED_SUFFIXES = {".py", ".md", ".yaml", ".yml", ".txt", ".toml", ".rst", ".json"}
SKIPPED_DIRS = {"__pycache__", ".pytest_cache", ".mypy_cache"}

# The numbering of the project's Linux-semantics reference (shared/reference/linux-semantics.md):
# letter -> highest id.  A reference section of the document must hold exactly ids 1..n.
REFERENCE = {"N": 16, "P": 19, "C": 17, "K": 9, "R": 13, "M": 9, "L": 10, "F": 13}
# Entries whose lettered items are cited on their own (C4h, R2a): the items each must spell out.
ITEMS = {"C4": "abcdefghi", "R2": "abcde"}
# Entries whose numbered steps are cited (K2 step 12, P6 step 4): how many steps they list.
STEPS = {"K2": 15, "P6": 6, "P1": 5}

KSIM_SECTION = "Ids defined by ksim"
# Top-level directories of the kernel tree: a "Source:" line must name a path under one.
KERNEL_DIRS = {"Documentation", "arch", "block", "certs", "crypto", "drivers", "fs", "include",
               "init", "io_uring", "ipc", "kernel", "lib", "mm", "net", "rust", "samples",
               "scripts", "security", "sound", "tools", "usr", "virt"}
MAX_ENTRY_CHARS = 2600  # "a paragraph per rule": C4 and R1, the longest, fit with room to spare
RANGE_SEP = r"\s*(?:\.\.|–|—|-)\s*"


@attrs.frozen
class Entry:
    rule: str
    line: int
    section: str
    body: str


@attrs.frozen
class Doc:
    entries: dict[str, Entry]
    problems: list[str]

    @property
    def letters(self) -> str:
        return "".join(sorted(set(REFERENCE) | {rule[0] for rule in self.entries}))


@attrs.frozen
class Citation:
    rule: str
    where: str
    item: str | None = None
    step: int | None = None


# -- the document --------------------------------------------------------------------------------

def parse_doc(text: str) -> Doc:
    """Entries (``### X<n>`` headings) and every way the document breaks its own shape."""
    problems: list[str] = []
    entries: dict[str, Entry] = {}
    section = ""
    current: list[str] | None = None
    starts: list[tuple[str, int, str, list[str]]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.startswith("## "):
            section = line[3:].strip()
            current = None
        elif line.startswith("### "):
            rule = line[4:]
            if not re.fullmatch(r"[A-Z][1-9][0-9]?", rule):
                problems.append(f"line {lineno}: heading {line!r} is not of the form '### X<n>'")
                current = None
                continue
            current = []
            starts.append((rule, lineno, section, current))
        elif line.startswith("#"):
            current = None
        elif current is not None:
            current.append(line)
    for rule, lineno, sect, body_lines in starts:
        body = "\n".join(body_lines).strip()
        if rule in entries:
            problems.append(f"line {lineno}: {rule} is defined again (first at line {entries[rule].line})")
            continue
        entries[rule] = Entry(rule, lineno, sect, body)
        problems.extend(f"line {lineno}: {rule}: {p}" for p in _entry_problems(rule, sect, body))
    problems.extend(_numbering_problems(entries))
    return Doc(entries, problems)


def _entry_problems(rule: str, section: str, body: str) -> Iterator[str]:
    if not body:
        yield "empty entry"
        return
    if "\n\n" in body:
        yield "more than one paragraph"
    if not re.match(r"\*\*[^*\n]+\.\*\* \S", body):
        yield "does not open with a bold title ('**Title.** ...')"
    if len(body) > MAX_ENTRY_CHARS:
        yield f"{len(body)} characters; keep an entry under {MAX_ENTRY_CHARS}"
    sources = re.findall(r"^Sources?: (.*)$", body, re.M)
    paths = [p for s in sources for p in re.findall(r"`([^`\s]+/[^`\s]+)`", s)]
    if not any(p.split("/", 1)[0] in KERNEL_DIRS for p in paths):
        yield "no 'Source:' line naming a kernel source path in backquotes"
    if section == KSIM_SECTION:
        if rule[0] in REFERENCE:
            yield f"a ksim-defined id must not use the reference's letter {rule[0]}"
    elif not section.startswith(f"{rule[0]} — "):
        yield f"is under section {section!r}, not the section of letter {rule[0]}"
    for item in ITEMS.get(rule, ""):
        if f"({item})" not in body:
            yield f"does not spell out item ({item})"
    for step in range(1, STEPS.get(rule, 0) + 1):
        if f"({step})" not in body:
            yield f"does not spell out step ({step})"


def _numbering_problems(entries: dict[str, Entry]) -> Iterator[str]:
    for letter, last in REFERENCE.items():
        expected = [f"{letter}{n}" for n in range(1, last + 1)]
        found = [e.rule for e in entries.values() if e.rule[0] == letter and e.section != KSIM_SECTION]
        if found != expected:
            missing = sorted(set(expected) - set(found), key=_order)
            invented = sorted(set(found) - set(expected), key=_order)
            if missing:
                yield f"letter {letter}: reference ids missing: {', '.join(missing)}"
            if invented:
                yield f"letter {letter}: ids the reference does not define: {', '.join(invented)}"
            if not missing and not invented:
                yield f"letter {letter}: entries out of order: {', '.join(found)}"


def _order(rule: str) -> tuple[str, int]:
    return rule[0], int(rule[1:])


# -- citations -----------------------------------------------------------------------------------

def _citation_re(letters: str) -> re.Pattern[str]:
    one = rf"([{letters}])([1-9][0-9]?)([a-z])?(?![A-Za-z0-9])"
    return re.compile(
        rf"(?<![A-Za-z0-9_\\]){one}"
        rf"(?:{RANGE_SEP}{one})?"
        rf"(?:,?\s+steps?\s+([0-9]+)(?:{RANGE_SEP}([0-9]+))?(?![0-9]))?")


def _test_name_re(letters: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_])test_([{letters.lower()}])([1-9][0-9]?)([a-z])?(?=_|\b)")


_NOQA = re.compile(r"#\s*noqa\b.*$")
_REGISTER_VALUE = re.compile(r":\s*[0-9a-fA-F]{4,}")


def _is_register(line: str, start: int, end: int, letter: str, number: int, item: str | None) -> bool:
    """x86-64 R8..R15 as an oops prints or a test quotes them, not rules R8..R13."""
    if letter != "R" or not 8 <= number <= 15 or item:
        return False
    before = line[start - 1:start]
    quoted = before in ("'", '"') and line[end:end + 1] == before
    return quoted or bool(_REGISTER_VALUE.match(line, end))


def find_citations(text: str, path: str, letters: str) -> list[Citation]:
    """Every rule id *text* cites, ranges expanded, with item letters and step numbers."""
    cite, test_name = _citation_re(letters), _test_name_re(letters)
    found: list[Citation] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        where = f"{path}:{lineno}"
        line = _NOQA.sub("", raw)
        if line.startswith("### ") and path.endswith("linux-rules.md"):
            continue  # the document's own headings define, not cite
        for m in cite.finditer(line):
            l1, n1, i1, l2, n2, i2, s1, s2 = m.groups()
            if _is_register(line, m.start(), m.end(3) if i1 else m.end(2), l1, int(n1), i1):
                continue
            if l2 is None:
                steps = range(int(s1), int(s2 or s1) + 1) if s1 else [None]
                found.extend(Citation(f"{l1}{n1}", where, i1, step) for step in steps)
            elif l2 == l1 and n1 == n2 and i1 and i2:  # C4c–C4e
                found.extend(Citation(f"{l1}{n1}", where, chr(c)) for c in range(ord(i1), ord(i2) + 1))
            elif l2 == l1 and not i1 and not i2 and int(n1) < int(n2):  # F1..F13
                found.extend(Citation(f"{l1}{n}", where) for n in range(int(n1), int(n2) + 1))
            else:  # two separate ids that merely touch, e.g. "N14-K2"
                found += [Citation(f"{l1}{n1}", where, i1), Citation(f"{l2}{n2}", where, i2)]
        for m in test_name.finditer(line):
            letter, number, item = m.groups()
            found.append(Citation(f"{letter.upper()}{number}", where, item))
    return found


def check(citations: list[Citation], doc: Doc) -> list[str]:
    """One line per citation the document cannot answer."""
    problems = []
    for c in citations:
        entry = doc.entries.get(c.rule)
        if entry is None:
            problems.append(f"{c.where}: cites {c.rule}, which docs/linux-rules.md does not define")
        elif c.item and f"({c.item})" not in entry.body:
            problems.append(f"{c.where}: cites {c.rule}{c.item}, but {c.rule} has no item ({c.item})")
        elif c.step is not None and f"({c.step})" not in entry.body:
            problems.append(f"{c.where}: cites {c.rule} step {c.step}, but {c.rule} has no step ({c.step})")
    return problems


def scanned_files() -> Iterator[Path]:
    for name in SCANNED:
        top = ROOT / name
        if top.is_file():
            yield top
            continue
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(d for d in dirnames if d not in SKIPPED_DIRS and not d.startswith("."))
            for filename in sorted(filenames):
                path = Path(dirpath) / filename
                if path.suffix in SCANNED_SUFFIXES and path != Path(__file__).resolve():
                    yield path


def tree_citations(doc: Doc) -> list[Citation]:
    found = []
    for path in scanned_files():
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue
        found += find_citations(text, str(path.relative_to(ROOT)), doc.letters)
    return found


@pytest.fixture(scope="module")
def doc() -> Doc:
    return parse_doc(DOC.read_text(encoding="utf-8"))


# -- the real tree -------------------------------------------------------------------------------

def test_every_cited_rule_id_is_defined(doc: Doc) -> None:
    citations = tree_citations(doc)
    assert len({c.rule for c in citations}) > 50, "the scanner finds (almost) no citations: broken?"
    problems = check(citations, doc)
    assert not problems, "\n".join(problems)


def test_document_is_well_formed(doc: Doc) -> None:
    assert not doc.problems, "\n".join(doc.problems)
    assert len(doc.entries) >= sum(REFERENCE.values())


def test_document_numbering_matches_the_reference_when_available() -> None:
    """The numbering above is the reference's; re-derive it when the reference is at hand."""
    reference = Path(os.environ.get("KSIM_LINUX_REFERENCE", "/work/shared/reference/linux-semantics.md"))
    if not reference.is_file():
        pytest.skip(f"{reference} not available (set KSIM_LINUX_REFERENCE)")
    ids = re.findall(r"^\*\*([A-Z])([1-9][0-9]?) \(", reference.read_text(encoding="utf-8"), re.M)
    derived: dict[str, int] = {}
    for letter, number in ids:
        derived[letter] = max(derived.get(letter, 0), int(number))
    assert derived == REFERENCE
    assert len(ids) == sum(REFERENCE.values())  # each id once, none skipped


# -- the checker itself, on synthetic text ---------------------------------------------------------

def _rules(text: str) -> list[str]:
    return [c.rule + (c.item or "") + (f" step {c.step}" if c.step else "")
            for c in find_citations(text, "x.py", "".join(REFERENCE))]


def test_real_citation_forms_are_found() -> None:
    assert _rules("Verdict: FLAW (F5)") == ["F5"]
    assert _rules("# C4h: a real preferred console") == ["C4h"]
    assert _rules("flush (K2 step 12)") == ["K2 step 12"]
    assert _rules("K2 steps 10–12") == ["K2 step 10", "K2 step 11", "K2 step 12"]
    assert _rules('"""P11: prefix match"""') == ["P11"]
    assert _rules("N3/N4 and (P3, C4, M5, F9 ...)") == ["N3", "N4", "P3", "C4", "M5", "F9"]
    assert _rules("async def test_f4_conflict(): test_c4h_x test_r1_y test_k2") == ["F4", "C4h", "R1", "K2"]


def test_ranges_count_every_id_in_between() -> None:
    assert _rules("its known flaws (F1..F13)") == [f"F{n}" for n in range(1, 14)]
    assert _rules("rule ids (C8..C16)") == [f"C{n}" for n in range(8, 17)]
    assert _rules("K5-K7, F1–F3, N14 - N15") == ["K5", "K6", "K7", "F1", "F2", "F3", "N14", "N15"]
    assert _rules("(C4c–C4e)") == ["C4c", "C4d", "C4e"]


def test_non_citations_are_ignored() -> None:
    assert _rules('names = ["R08", "R09", "R10", "R11", "R12", "R13", "R14", "R15"]') == []
    assert _rules("R13: 0000000000000000 R14: ffff888003a1c018 R15: 0000000000000246") == []
    assert _rules("class Bad(KernelModule):  # noqa: F841 N801") == []
    assert _rules("CR2: 0000 HC0[0]:SC0[0] 0xC6 pytest -q -n 2 ttyS1 m0400") == []
    assert _rules("R11 (dumps) and R12: pstore") == ["R11", "R12"]


def test_a_missing_id_fails_with_its_location() -> None:
    doc = parse_doc("## N — notifier chains\n\n### N3\n\n**Ordering.** Text.\nSource: `kernel/notifier.c`.\n")
    text = "ok (N3)\nbut N4 is not defined\nnor test_c4h_console\n"
    problems = check(find_citations(text, "ksim/x.py", doc.letters), doc)
    assert problems == [
        "ksim/x.py:2: cites N4, which docs/linux-rules.md does not define",
        "ksim/x.py:3: cites C4, which docs/linux-rules.md does not define",
    ]


def test_a_missing_item_or_step_fails() -> None:
    doc = parse_doc("## K — panic\n\n### K2\n\n**Panic.** (1) one (2) two.\nSource: `kernel/panic.c`.\n")
    problems = check(find_citations("K2 step 2, K2 step 3, K2b", "a.md", doc.letters), doc)
    assert problems == ["a.md:1: cites K2 step 3, but K2 has no step (3)",
                        "a.md:1: cites K2b, but K2 has no item (b)"]


def test_a_malformed_document_is_caught() -> None:
    text = "\n".join([
        "## N — notifier chains",
        "### N1", "**Block.** Fine.", "Source: `include/linux/notifier.h`.",
        "### N1", "**Again.** Twice.", "Source: `kernel/notifier.c`.",
        "### N2", "No title and no source.",
        "### N17", "**Invented.** Not in the reference.", "Source: `kernel/notifier.c`.",
        "### N3 — ordering", "**Bad heading.** Source: `kernel/notifier.c`.",
        "## Ids defined by ksim",
        "### E1", "**The e820 map.** Fine.", "Source: `arch/x86/kernel/e820.c`.",
        "### P20", "**Reference letter.** Not allowed here.", "Source: `init/main.c`.",
    ])
    problems = "\n".join(parse_doc(text).problems)
    assert "N1 is defined again" in problems
    assert "N2: does not open with a bold title" in problems
    assert "N2: no 'Source:' line" in problems
    assert "ids the reference does not define: N17" in problems
    assert "reference ids missing: N3, N4" in problems
    assert "heading '### N3 — ordering' is not of the form" in problems
    assert "P20: a ksim-defined id must not use the reference's letter P" in problems
    assert "E1" not in problems
    assert parse_doc(text).letters == "CEFKLMNPR"  # E citations are now checked too

"""Verdicts: the question a scenario answers, and an answer that must follow from the run.

The observation is checked on every seed; ``holds`` must see it on all of them, ``fails`` on
none, ``partly`` on some but not all, ``measured`` reports the fraction.  A contradicted answer
is a failure; ``ksim run`` prints the table of questions and answers, and puts the verdicts in
``--json`` and JUnit ``<properties>``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from ksim.scenario.loader import ScenarioInvalid, load_paths, load_text
from ksim.scenario.report import tally_verdicts, verdict_table
from ksim.scenario.runner import FAIL, PASS, run_scenario

KSIM = str(Path(sys.executable).parent / "ksim")
LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"

# Seeded cold-boot garbage decides the first bytes of RAM: on some seeds the byte at 0x2000000
# is below 0x80, on others not, so "is it below 0x80?" holds on some seeds and not others.
SCENARIO = """\
name: {name}
verdict:
  question: "Does the warm reboot keep the word?"
  answer: {answer}
  why: "warm resets keep RAM"
  assumes: ["warm reboot keeps all RAM (ksim's machine model today)"]
  observe:
    - file: /proc/sys/kernel/printk
      equals: "{level}\\t4\\t1\\t7\\n"
seeds: "1..4"
boots:
  - cmdline: "loglevel={level}"
"""


def scenario(answer: str, level: int = 7, name: str = "v") -> str:
    return SCENARIO.format(name=name, answer=answer, level=level)


def run_all(text: str) -> list:  # type: ignore[type-arg]
    [sc] = load_text(text, "v.yaml")
    return [run_scenario(sc, seed) for seed in sc.seeds]


def ksim(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KSIM, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_holds_is_borne_out_by_every_seed() -> None:
    results = run_all(scenario("holds"))
    assert [r.status for r in results] == [PASS] * 4
    assert [r.observed for r in results] == [True] * 4
    [tally] = tally_verdicts(results)
    assert (tally.held, tally.observed, tally.agrees) == (4, 4, True)


def test_an_answer_the_observation_contradicts_fails_the_seed() -> None:
    # loglevel=5: the observation (the level is 7) fails on every seed, so 'holds' is wrong
    results = run_all(scenario("holds").replace("loglevel=7", "loglevel=5"))
    assert [r.status for r in results] == [FAIL] * 4
    failure = results[0].failures[0]
    assert str(failure.loc) == "v.yaml:2:1"
    assert failure.title == ("verdict: the answer is 'holds' (on every seed), but on this seed "
                             "the observation did not hold")
    assert any("text differs" in line for line in failure.details)
    results = run_all(scenario("fails"))
    assert [r.status for r in results] == [FAIL] * 4
    assert results[0].failures[0].title.startswith("verdict: the answer is 'fails'")
    assert [r.status for r in run_all(scenario("fails", level=7).replace("loglevel=7",
                                                                         "loglevel=3"))] \
        == [PASS] * 4


def test_partly_needs_some_seeds_but_not_all(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(scenario("partly"))
    proc = ksim("run", str(tmp_path / "p.yaml"), "--json", str(tmp_path / "r.json"))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"FAIL  {tmp_path}/p.yaml: v [verdict]" in proc.stdout
    assert (f"{tmp_path}/p.yaml:2:1: verdict: the answer is 'partly' (the observation holds "
            "on some seeds but not all), but it held on 4 of 4 seeds") in proc.stdout
    assert "1 verdict contradicted" in proc.stdout.splitlines()[-1]
    [verdict] = json.loads((tmp_path / "r.json").read_text())["verdicts"]
    assert (verdict["answer"], verdict["held"], verdict["agrees"]) == ("partly", 4, False)
    # one seed cannot tell whether 'partly' is right: it is not judged, and nothing fails
    assert ksim("run", str(tmp_path / "p.yaml"), "--seed", "2").returncode == 0


def test_measured_reports_the_fraction_and_never_fails(tmp_path: Path) -> None:
    text = scenario("measured")
    results = run_all(text)
    assert [r.status for r in results] == [PASS] * 4
    table = verdict_table(tally_verdicts(results))
    assert table[2] == "  measured  4 of 4 (100%) seeds Does the warm reboot keep the word?"


def test_the_table_on_a_terminal_and_with_v_and_each_verdict_under_its_line(
        tmp_path: Path) -> None:
    (tmp_path / "h.yaml").write_text(scenario("holds", name="keeps"))
    plain = ksim("run", str(tmp_path / "h.yaml"))
    assert plain.returncode == 0
    assert "verdicts:" not in plain.stdout  # a pipe, no -v: the PASS lines only
    verbose = ksim("run", str(tmp_path / "h.yaml"), "-v")
    lines = verbose.stdout.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("PASS")))
    assert lines[first + 1:first + 5] == [
        "    verdict: Does the warm reboot keep the word?",
        "      answer: holds (the observation held on this seed)",
        "      why: warm resets keep RAM",
        "      assumes: warm reboot keeps all RAM (ksim's machine model today)"]
    assert lines[-4:-1] == [
        "verdicts: 1 question, every answer borne out by what ran",
        "  answer    held on          question",
        "  holds     4 of 4 seeds     Does the warm reboot keep the word?"]
    # on a terminal (script(1) gives the command one) the table comes without -v
    tty = subprocess.run(["script", "-qec", f"{KSIM} run --no-progress {tmp_path}/h.yaml",
                          "/dev/null"], capture_output=True, text=True, timeout=120)
    assert "  holds     4 of 4 seeds     Does the warm reboot keep the word?" in tty.stdout


def test_junit_properties_carry_the_verdict(tmp_path: Path) -> None:
    (tmp_path / "h.yaml").write_text(scenario("holds"))
    assert ksim("run", str(tmp_path / "h.yaml"), "--junit", str(tmp_path / "j.xml")
                ).returncode == 0
    case = ET.parse(tmp_path / "j.xml").getroot().find("testsuite/testcase")
    assert case is not None
    props = {p.get("name"): p.get("value") for p in case.iter("property")}
    assert props["verdict.question"] == "Does the warm reboot keep the word?"
    assert props["verdict.answer"] == "holds"
    assert props["verdict.observed"] == "true"
    assert props["verdict.held"] == "4 of 4 seeds"
    assert props["verdict.assumes"] == "warm reboot keeps all RAM (ksim's machine model today)"


def test_a_bad_verdict_is_located_with_hints() -> None:
    with pytest.raises(ScenarioInvalid) as info:
        load_text(textwrap.dedent("""\
            name: x
            verdict:
              question: ""
              answer: hold
              wy: "typo"
              boot: 3
              observe:
                - dmesg: {contain: x}
            boots: [{}]
            ---
            name: y
            verdict: {question: q, answer: holds, why: w}
            boots: [{}]
            """), "t.yaml")
    assert [str(p) for p in info.value.problems] == [
        "t.yaml:2:1: verdict: 'why' is required: one line: why the answer is what it is",
        "t.yaml:3:13: verdict.question: expected a non-empty string, got string ''",
        "t.yaml:4:11: verdict.answer: 'hold' is not one of holds, fails, partly, measured; "
        "did you mean 'holds'?",
        "t.yaml:5:3: verdict: unknown verdict key 'wy'; did you mean 'why'? (expected one of: "
        "question, answer, why, observe, assumes, boot)",
        "t.yaml:6:9: verdict.boot: expected a boot number, 1 to 1, got integer 3",
        "t.yaml:8:15: unknown matcher 'contain'; did you mean 'contains'? (expected one of: "
        "contains, not_contains, matches, not_matches, equals, lines_in_order, count, length, "
        "exists)",
        "t.yaml:12:1: verdict: 'observe' is required: the expectation the answer follows from",
    ]


def test_every_library_scenario_answers_its_question() -> None:
    scenarios = load_paths([LIBRARY])
    assert len(scenarios) >= 30
    for sc in scenarios:
        assert sc.verdict is not None, sc.name
        assert sc.verdict.question.endswith("?"), sc.name
        assert "Verdict:" not in sc.description, sc.name  # stated once, in the verdict

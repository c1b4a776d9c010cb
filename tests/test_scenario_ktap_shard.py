"""``ksim run --ktap`` (KTAP version 1, as KUnit prints it) and ``--shard I/N``.

The KTAP output is checked against Documentation/dev-tools/ktap.rst's rules: a version line,
then a plan ``1..N`` and exactly N result lines ``ok|not ok <number> <description>``
numbered from 1, nested tests indented with their own version line (and KUnit's
``# Subtest: NAME`` line, whose NAME the parent's result line repeats), directives after
``#``, diagnostic lines starting with ``#``.  Shards split the (scenario, seed) items so that
together they are exactly the whole run, with the same results.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

KSIM = str(Path(sys.executable).parent / "ksim")
LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"
RESULT = re.compile(r"^(ok|not ok) ([0-9]+) ([^#]*?)(?: # (.*))?$")

TREE = {
    "a.yaml": """\
name: passes
seeds: [1, 2]
boots: [{steps: [{printk: "hello"}], expect: [{dmesg: {contains: hello}}]}]
---
name: "fails #2"
seeds: [1, 2]
boots: [{expect: [{dmesg: {contains: "not there"}}]}]
""",
    "b.yaml": """\
name: crashes
plugin_path: .
plugins: [crashyktap]
boots: [{}]
""",
    "crashyktap.py": """\
from ksim import KernelModule
class Crashy(KernelModule):
    name = "crashyktap"
    async def init(self):
        raise ValueError("boom")
""",
}


def parse_ktap(lines: list[str], indent: str = "") -> list[tuple[bool, str, list]]:
    """A strict reader of one KTAP level; returns (ok, description, subtests) per test."""
    assert lines.pop(0) == f"{indent}KTAP version 1"
    name = None
    if lines[0].startswith(f"{indent}# Subtest: "):
        name = lines.pop(0).removeprefix(f"{indent}# Subtest: ")
    plan = re.fullmatch(rf"{indent}1\.\.(\d+)", lines.pop(0))
    assert plan, "a plan line follows the version line"
    tests = []
    sub = indent + "    "
    while len(tests) < int(plan.group(1)):
        line = lines[0]
        if line == f"{sub}KTAP version 1":
            subtests, sub_name = parse_ktap(lines, sub), None
            while lines[0].startswith(f"{indent}#"):
                lines.pop(0)
            m = RESULT.match(lines.pop(0).removeprefix(indent))
            assert m and int(m.group(2)) == len(tests) + 1
            tests.append((m.group(1) == "ok", m.group(3), subtests))
            del sub_name
            continue
        lines.pop(0)
        if line.startswith(f"{indent}#"):
            continue  # a diagnostic line
        m = RESULT.match(line.removeprefix(indent))
        assert m, f"not a result line: {line!r}"
        assert int(m.group(2)) == len(tests) + 1, "results are numbered 1, 2, ..."
        assert "#" not in m.group(3)
        tests.append((m.group(1) == "ok", m.group(3) + (f" # {m.group(4)}" if m.group(4)
                                                        else ""), []))
    if name is not None:
        assert RESULT.match(lines[0].strip()) or lines[0].startswith("#"), lines[0]
    return tests


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    for name, text in TREE.items():
        (tmp_path / name).write_text(text)
    return tmp_path


def test_ktap_is_one_test_per_scenario_with_a_subtest_per_seed(tree: Path) -> None:
    proc = subprocess.run([KSIM, "run", str(tree), "--ktap", str(tree / "out.ktap")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    lines = (tree / "out.ktap").read_text().splitlines()
    assert lines[:5] == ["KTAP version 1", "1..3", "    KTAP version 1",
                         f"    # Subtest: {tree}/a.yaml: passes", "    1..2"]
    tests = parse_ktap(list(lines))
    assert [(ok, name) for ok, name, _ in tests] == [
        (True, f"{tree}/a.yaml: passes"), (False, f"{tree}/a.yaml: fails _2"),
        (False, f"{tree}/b.yaml: crashes")]
    assert [(ok, name) for ok, name, _ in tests[1][2]] == [(False, "seed=1"), (False, "seed=2")]
    assert tests[2][2][0][1].startswith("seed=0 # ERROR ksim crashed in boot 1: ValueError: boom")
    assert f"    # {tree}/a.yaml:7:28: boot 1: dmesg: contains" in lines
    assert "# " + f"{tree}/a.yaml: passes: pass:2 fail:0 skip:0 total:2" in lines


def test_ktap_to_stdout_sends_the_report_to_stderr_and_skips_what_did_not_run(
        tree: Path) -> None:
    proc = subprocess.run([KSIM, "run", str(tree / "a.yaml"), "--ktap", "-", "-x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stdout.startswith("KTAP version 1\n1..2\n")
    assert "FAIL  " in proc.stderr and "KTAP" not in proc.stderr
    tests = parse_ktap(proc.stdout.splitlines())
    assert [name for _, name, _ in tests[1][2]] == [
        "seed=1", "seed=2 # SKIP not run (the run stopped early, -x)"]


def _results(path: Path) -> dict[str, dict]:
    data = json.loads(path.read_text())
    assert (data["format"], data["version"]) == ("ksim-scenario-results", 2)
    out = {}
    for r in data["results"]:
        out[r["id"]] = {k: v for k, v in r.items() if k != "wall_s"}
    return out


def test_shards_together_are_exactly_the_whole_run(tmp_path: Path) -> None:
    whole = tmp_path / "whole.json"
    assert subprocess.run([KSIM, "run", str(LIBRARY), "--json", str(whole)],
                          capture_output=True, timeout=300).returncode == 0
    everything = _results(whole)
    union: dict[str, dict] = {}
    for i in (1, 2, 3):
        part = tmp_path / f"shard{i}.json"
        proc = subprocess.run([KSIM, "run", str(LIBRARY), "--shard", f"{i}/3", "--json",
                               str(part)], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert proc.stdout.startswith(f"shard {i}/3: ")
        data = json.loads(part.read_text())
        assert data["shard"] == {"index": i, "count": 3, "items": len(everything)}
        results = _results(part)
        assert not set(results) & set(union), "an item ran in two shards"
        union |= results
    assert union == everything  # the same items, with the same results
    assert max(len(_results(tmp_path / f"shard{i}.json")) for i in (1, 2, 3)) \
        - min(len(_results(tmp_path / f"shard{i}.json")) for i in (1, 2, 3)) <= 1


def test_a_bad_shard_is_invalid_input() -> None:
    for bad in ("0/3", "4/3", "1/0", "a/b", "1"):
        proc = subprocess.run([KSIM, "run", str(LIBRARY), "--shard", bad],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2, bad
        assert "--shard: expected I/N with 1 <= I <= N" in proc.stderr

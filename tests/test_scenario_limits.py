"""Scenario files within limits: every excess is a located error at load time, naming the limit.

A scenario file is untrusted input: a 480-byte "billion laughs", a 5,000-digit integer, 5,000
nested brackets, ``ram: 1000T`` or ``seeds: 0..300000000`` must not hang, exhaust memory or
crash ksim; a RAM file must not land outside the scenario's folder; and ``ksim run`` must not
echo a file that is not a scenario, nor read one without bound.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from ksim.scenario.loader import ScenarioInvalid, load_text
from ksim.scenario.model import MAX_FILE_BYTES

KSIM = str(Path(sys.executable).parent / "ksim")
LAUGHS = "".join(f"{c}: &{c} [" + ",".join([f"*{p}"] * 9) + "]\n"
                 for p, c in zip("abcdefgh", "bcdefghi"))


def problems(text: str) -> list[str]:
    with pytest.raises(ScenarioInvalid) as info:
        load_text(text, "t.yaml")
    return [str(p) for p in info.value.problems]


def ksim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([KSIM, *args], capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("text,expected", [
    ("x: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + LAUGHS
     + "name: x\nboots: [{steps: *i}]\n",
     "t.yaml:5:8: more than 10,000 YAML nodes once aliases are expanded (the limit)"),
    ("name: x\nboots: " + "[" * 5000 + "]" * 5000 + "\n",
     "t.yaml:2:72: nested more than 64 levels deep (the limit)"),
    ("name: x\nboots:\n" + "".join(" " * i + "- \n" for i in range(1, 80)),
     "t.yaml:66:65: nested more than 64 levels deep (the limit)"),
    ("name: x\nseed: " + "9" * 5000 + "\nboots: [{}]\n",
     "t.yaml:2:7: an integer of 5,000 characters: an integer here is at most "
     "18,446,744,073,709,551,615 (a 64-bit word, the limit)"),
    ("name: x\nboots: [{steps: [{sleep: .nan}]}]\n",
     "t.yaml:2:19: sleep: a duration is a finite number of seconds"),
    ("name: x\nboots: [{steps: [{sleep: 1e300}]}]\n",
     "t.yaml:2:19: sleep: a duration is at most 1e+09 virtual seconds (the limit)"),
    ("name: x\ntimeout: .inf\nboots: [{}]\n",
     "t.yaml:2:10: timeout: expected a positive number of virtual seconds, at most 1e+09 "
     "(the limit)"),
    ("name: x\nmachine: {ram: 1000T}\nboots: [{}]\n",
     "t.yaml:2:16: machine.ram: invalid size '1000T': at most 64T (x86-64's "
     "MAX_PHYSMEM_BITS, 46, is the limit)"),
    ("name: x\nmachine: {cpus: 300000000}\nboots: [{}]\n",
     "t.yaml:2:17: machine.cpus: at most 8192 CPUs (x86-64's NR_CPUS limit)"),
    ("name: x\nseeds: 0..300000000\nboots: [{}]\n",
     "t.yaml:2:8: seeds: '0..300000000' is 300,000,001 seeds: at most 100,000 per scenario "
     "(the limit)"),
    ("name: x\nboots: [{steps: [{printk: {text: a, count: 300000000}}]}]\n",
     "t.yaml:2:19: printk: count must be <= 100,000 (the limit)"),
    ("name: x\nboots: [{steps: [{irq: 300000000}]}]\n",
     "t.yaml:2:19: irq: count must be <= 100,000 (the limit)"),
    ("name: x\nboots: [{steps: [{spawn: {text: a, threads: 300000000}}]}]\n",
     "t.yaml:2:19: spawn: threads must be <= 1,024 (the limit)"),
    ("name: x\nboots: [{steps: [{spawn: {text: a, threads: 1000, count: 1000}}]}]\n",
     "t.yaml:2:19: spawn: 1000 threads x 1000 messages is more than 100,000 messages (the "
     "limit)"),
    ("name: x\nboots: [{steps: [{corrupt: {address: 0, length: 8, flips: 1000000000}}]}]\n",
     "t.yaml:2:19: corrupt: 1,000,000,000 flips in 8 bytes: at most 64, the region's bits "
     "(the limit)"),
    ("name: x\nboots: [{steps: [{corrupt: {address: 0x10000000, bytes: '00'}}]}]\n",
     "t.yaml:2:19: corrupt: address 0x10000000 is beyond the machine's RAM (64M)"),
    ("name: x\nstrategy: pct:300000\nboots: [{}]\n",
     "t.yaml:2:11: strategy: PCT depth 300,000: at most 1000 (the limit)"),
    ("name: x\nboots: [{steps: [" + ",".join(["oops"] * 5001) + "]}]\n",
     "t.yaml:2:17: steps: 5,001 steps: at most 5,000 per boot (the limit)"),
    ("name: x\nboots: [" + ",".join(["{}"] * 1001) + "]\n",
     "t.yaml:2:8: boots: 1,001 boots: at most 1,000 (the limit)"),
    ("name: x\n? [a]: 1\nboots: [{}]\n",  # found by tests/fuzz_scenarios.py: a TypeError
     "t.yaml:2:3: a key is a plain value, not a mapping or a list"),
    ("name: x\na: &a {b: 1}\n*a : 2\nboots: [{}]\n",
     "t.yaml:3:1: a key is a plain value, not a mapping or a list"),
])
def test_each_limit_is_a_located_error_that_names_it(text: str, expected: str) -> None:
    assert expected in problems(text)


def test_control_characters_are_located_at_their_line_and_column() -> None:
    assert problems("name: x\nboots:\n  - cmdline: \"a\x07b\x00\"\n") == [
        "t.yaml:3:16: control character U+0007 is not allowed in a YAML file (inside double "
        "quotes, write it as \\x07 if it is meant)",
        "t.yaml:3:18: control character U+0000 is not allowed in a YAML file (inside double "
        "quotes, write it as \\x00 if it is meant)"]


def test_an_echoed_value_is_cut_short() -> None:
    [found] = problems("name: x\n" + "k" * 1000 + "y: 1\nboots: [{}]\n")
    assert found.startswith("t.yaml:2:1: unknown scenario key 'kkk")
    assert len(found) < 400


RAM_FILE = """\
name: ram file
machine: {{ram: 64M, ram_file: "{path}", keep_ram_file: {keep}}}
boots:
  - steps:
      - corrupt: {{address: 0x100000, bytes: "4b 53 49 4d"}}
"""


def test_a_ram_file_stays_in_the_scenario_folder(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "escape.yaml").write_text(RAM_FILE.format(path="../../victim", keep="true"))
    (folder / "proc.yaml").write_text(RAM_FILE.format(path="/proc/self/mem", keep="false"))
    (folder / "link.img").symlink_to(tmp_path / "victim")
    (folder / "link.yaml").write_text(RAM_FILE.format(path="link.img", keep="true"))
    proc = ksim("run", str(folder))
    assert proc.returncode == 2 and proc.stdout == ""
    refusal = ("is outside the scenario's folder: a scenario's RAM file stays in its folder "
               "(ksim run --ram-files-anywhere lifts this)")
    assert f"{folder}/escape.yaml:2:31: machine.ram_file: '../../victim' {refusal}" in proc.stderr
    assert f"{folder}/link.yaml:2:31: machine.ram_file: 'link.img' {refusal}" in proc.stderr
    assert f"{folder}/proc.yaml:2:31: machine.ram_file: '/proc/self/mem' {refusal}" \
        in proc.stderr
    assert not (tmp_path / "victim").exists()


def test_ram_files_anywhere_lifts_the_confinement_for_the_cli_user(tmp_path: Path) -> None:
    folder = tmp_path / "scenarios"
    folder.mkdir()
    (folder / "outside.yaml").write_text(RAM_FILE.format(path="../ram.img", keep="true"))
    proc = ksim("run", "--ram-files-anywhere", str(folder / "outside.yaml"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "ram.img").stat().st_size == 64 << 20
    with open(tmp_path / "ram.img", "rb") as f:
        f.seek(0x100000)
        assert f.read(4) == b"KSIM"


def test_a_file_that_is_not_a_scenario_is_never_echoed(tmp_path: Path) -> None:
    secret = "root:$6$saltsalt$0123456789abcdefhash:19000:0:99999:7:::"
    (tmp_path / "shadow").write_text(secret + "\n")
    (tmp_path / "shadow.yaml").write_text(secret + "\n")
    (tmp_path / "netrc.yaml").write_text("machine: example\npassword: hunter2hunter2\n")
    for path in ("shadow", "shadow.yaml", "netrc.yaml"):
        proc = ksim("run", str(tmp_path / path))
        assert proc.returncode == 2
        assert "saltsalt" not in proc.stderr and "hunter2" not in proc.stderr, proc.stderr
    assert f"{tmp_path}/shadow: not a scenario file: its name does not end in .yaml or .yml" \
        in ksim("run", str(tmp_path / "shadow")).stderr
    assert "a scenario is a mapping with at least 'name' and 'boots'" in ksim(
        "run", str(tmp_path / "shadow.yaml")).stderr


def test_reads_are_bounded_and_only_of_regular_files(tmp_path: Path) -> None:
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    os.mkfifo(tmp_path / "fifo.yaml")
    (tmp_path / "big.yaml").write_text("name: big\n# " + "x" * MAX_FILE_BYTES + "\nboots: [{}]\n")
    proc = ksim("run", "/dev/zero", str(tmp_path / "zero.yaml"), str(tmp_path / "fifo.yaml"),
                str(tmp_path / "big.yaml"))
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[:4] == [
        "/dev/zero: not a scenario file: its name does not end in .yaml or .yml",
        f"{tmp_path}/zero.yaml: not a scenario file: not a regular file",
        f"{tmp_path}/fifo.yaml: not a scenario file: not a regular file",
        f"{tmp_path}/big.yaml: larger than 256 KiB (the limit for a scenario file)"]


def test_flips_beyond_a_reservation_are_a_step_failure() -> None:
    [sc] = load_text(textwrap.dedent("""\
        name: flips
        plugins: [memconsole]
        boots:
          - cmdline: memconsole=8192
          - reboot: warm
            cmdline: memconsole=8192
            before:
              - corrupt: {reservation: memconsole, offset: 8184, flips: 65}
        """), "f.yaml")
    from ksim.scenario.runner import FAIL, run_scenario
    r = run_scenario(sc)
    assert r.status == FAIL
    assert r.failures[0].title == ("boot 2: corrupt reservation memconsole+0x1ff8: 65 flips in "
                                   "8 bytes: at most 64, the region's bits")


def test_a_path_the_filesystem_refuses_is_a_located_error_not_a_crash(tmp_path: Path) -> None:
    # found by tools/fuzz.py (seed 2026): a mutant put a 400-character description where
    # plugin_path goes, and looking it up raised ENAMETOOLONG out of the loader
    long = "a" * 300
    (tmp_path / "plugins.yaml").write_text(f"name: x\nplugin_path: {long}\nboots: [{{}}]\n")
    (tmp_path / "ram.yaml").write_text(RAM_FILE.format(path=long, keep="true"))
    proc = ksim("run", str(tmp_path))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"plugins.yaml:2:14: plugin_path: '{long[:200]}' is not a folder" in proc.stderr
    assert (f"ram.yaml:2:31: machine.ram_file: '{long[:200]}' has a name longer than 250 "
            "bytes (the filesystem's NAME_MAX 255, less the journal's '.cold')") in proc.stderr


def test_a_ram_file_that_cannot_be_made_is_the_users_error_not_a_ksim_crash(
        tmp_path: Path) -> None:
    (tmp_path / "nowhere.yaml").write_text(
        RAM_FILE.format(path=str(tmp_path / "no" / "such" / "ram.img"), keep="true"))
    proc = ksim("run", "--ram-files-anywhere", str(tmp_path / "nowhere.yaml"))
    assert proc.returncode == 1
    assert "the RAM file cannot be used: cannot create RAM file" in proc.stdout, proc.stdout
    assert "ksim crashed" not in proc.stdout and "Traceback" not in proc.stdout + proc.stderr


def test_an_ambiguous_regular_expression_is_a_located_error_not_a_python_warning() -> None:
    # found by tools/fuzz.py (seed 2028): "[a-z--]" made re.compile() print a FutureWarning
    # ("Possible set difference") from ksim/scenario/loader.py onto the user's terminal
    text = "name: x\nboots:\n  - expect:\n      - dmesg: {matches: \"[a-z--]\"}\n"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert problems(text) == [
            "t.yaml:4:17: matches: ambiguous regular expression '[a-z--]': Possible set "
            "difference at position 4 (escape the character to mean it literally)"]

"""``ksim run`` and ``ksim schema``: exit statuses, outputs, filters; never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest

from ksim.cli import main
from ksim.scenario.cli import keyword_matcher

GOOD = """\
name: good one
seeds: [1, 2]
boots:
  - steps:
      - printk: {level: err, text: "hello"}
    expect:
      - dmesg: {contains: hello}
"""
BAD = """\
name: bad one
boots:
  - expect:
      - dmesg: {contains: "not there"}
"""
CRASH = """\
name: crashing one
plugin_path: .
plugins: [crashycli]
boots: [{}]
"""
# A plugin's own bug is an Oops (tests/test_driver_bugs.py); what still ends a run with
# ERROR is an exception of ksim's own escaping, as a KernelError outside any errno path.
CRASHY = """\
from ksim import KernelModule
from ksim.errno import EIO, KernelError
class Crashy(KernelModule):
    name = "crashycli"
    async def init(self):
        raise KernelError(EIO, "boom")
"""


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "bad.yml").write_text(BAD)
    (tmp_path / "crash").mkdir()
    (tmp_path / "crash" / "crash.yaml").write_text(CRASH)
    (tmp_path / "crash" / "crashycli.py").write_text(CRASHY)
    return tmp_path


def test_exit_0_when_all_pass(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tree / "good.yaml")]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"PASS  {tree}/good.yaml: good one [seed=1]  (")
    assert out[1].startswith(f"PASS  {tree}/good.yaml: good one [seed=2]  (")
    assert out[2].startswith("2 passed, 0 failed, 0 errors in ")


def test_exit_1_with_failures_and_errors_and_the_run_goes_on(
        tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    json_file, junit_file = tree / "r.json", tree / "r.xml"
    status = main(["run", str(tree), "--json", str(json_file), "--junit", str(junit_file)])
    out = capsys.readouterr().out
    assert status == 1
    assert f"ERROR {tree}/crash/crash.yaml: crashing one" in out
    assert "ksim crashed in boot 1: KernelError: boom" in out
    assert f"FAIL  {tree}/sub/bad.yml: bad one" in out
    assert f"{tree}/sub/bad.yml:4:17: boot 1: dmesg: contains" in out
    assert "Traceback" not in out
    assert "2 passed, 1 failed, 1 errors" in out
    data = json.loads(json_file.read_text())
    assert data["summary"] | {"wall_s": 0, "scenarios_per_s": 0} == {
        "total": 4, "passed": 2, "failed": 1, "errors": 1, "wall_s": 0, "scenarios_per_s": 0}
    assert [r["status"] for r in data["results"]] == ["ERROR", "PASS", "PASS", "FAIL"]
    assert data["results"][3]["failures"][0]["location"] == f"{tree}/sub/bad.yml:4:17"
    suite = ET.parse(junit_file).getroot().find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("errors")) == ("4", "1", "1")


def test_exit_2_on_invalid_input_and_nothing_runs(tree: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    (tree / "broken.yaml").write_text("name: x\nboots:\n  - steps: [{printf: hi}]\n")
    assert main(["run", str(tree)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert f"{tree}/broken.yaml:3:14: unknown step 'printf'; did you mean 'printk'?" in captured.err
    assert "1 problem found; nothing was run" in captured.err
    assert main(["run", str(tree / "missing.yaml")]) == 2
    assert "missing.yaml: no such file or folder" in capsys.readouterr().err
    assert main(["run", str(tree / "good.yaml"), "-k", "zebra"]) == 2
    assert "no scenario selected" in capsys.readouterr().err
    assert main(["run"]) == 2  # argparse: PATH is required
    assert main(["run", str(tree / "good.yaml"), "--json", str(tree / "no" / "r.json")]) == 2


def test_filter_and_seed_override(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tree), "-k", "good and not crash", "--seed", "7"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 2 and out[0].startswith(f"PASS  {tree}/good.yaml: good one [seed=7]")
    match = keyword_matcher("(memconsole or core) and not Slow")
    assert match("scenarios/core/x.yaml::a") and not match("scenarios/core/x.yaml::slow one")
    with pytest.raises(ValueError):
        keyword_matcher("a and (b")


def test_schema_is_json_and_lists_the_steps(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    steps = {key.removeprefix("step_") for key in schema["definitions"] if key.startswith("step_")}
    assert steps == {"printk", "spawn", "irq", "oops", "panic", "write", "cat", "insmod",
                     "rmmod", "corrupt", "sleep", "notifier", "sys_reboot", "expect",
                     "read", "nmi"}


def test_the_installed_command_never_prints_a_traceback(tree: Path) -> None:
    proc = subprocess.run([str(Path(sys.executable).parent / "ksim"), "run", str(tree)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "ERROR" in proc.stdout and "FAIL" in proc.stdout


def test_a_closed_stdout_never_turns_a_failure_into_success(tmp_path: Path) -> None:
    # enough output to fill the pipe after head has gone: every later write finds it closed
    (tmp_path / "many.yaml").write_text(
        "name: fails\nseeds: \"1..300\"\nboots:\n  - steps: [{printk: {text: \"line {i} "
        + "." * 40 + "\", count: 30}}]\n    expect: [{dmesg: {contains: nope}}]\n")
    ksim = Path(sys.executable).parent / "ksim"
    proc = subprocess.run(["bash", "-c", f"set -o pipefail; '{ksim}' run '{tmp_path}/many.yaml'"
                           " | head -1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert proc.stdout.startswith(f"FAIL  {tmp_path}/many.yaml: fails [seed=1]")
    assert proc.stderr == ""  # no BrokenPipeError, no "Exception ignored"


RAM_FILE = """\
name: ram file
machine: {{ram: 64M, ram_file: "ram-{{seed}}.img"{keep}}}
seeds: [1, 2]
boots:
  - steps: [{{printk: {{level: err, text: "disk on fire"}}}}]
  - reboot: cold
"""


def test_ram_files_go_to_a_temporary_folder_unless_kept(tmp_path: Path) -> None:
    ksim = str(Path(sys.executable).parent / "ksim")
    (tmp_path / "temp.yaml").write_text(RAM_FILE.format(keep=""))
    proc = subprocess.run([ksim, "run", "-v", str(tmp_path / "temp.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "RAM file ram-1.img in a temporary folder (removed after the run" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["temp.yaml"]  # nothing left beside
    (tmp_path / "kept.yaml").write_text(RAM_FILE.format(keep=", keep_ram_file: true"))
    proc = subprocess.run([ksim, "run", str(tmp_path / "kept.yaml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "kept.yaml", "ram-1.img", "ram-1.img.cold", "ram-2.img", "ram-2.img.cold", "temp.yaml"]
    assert (tmp_path / "ram-1.img").stat().st_size == 64 << 20
    assert (tmp_path / "ram-1.img.cold").read_text().startswith("ksim-ram-journal 2 67108864\n")


def test_the_machine_keys_name_the_machines_firmware_and_kernels() -> None:
    from typing import get_args

    from ksim.firmware import FIRMWARE_NAMES
    from ksim.scenario.model import Firmware, KernelBuild
    from ksim.vmlinux import IMAGE_NAMES
    assert get_args(Firmware) == tuple(FIRMWARE_NAMES)
    assert get_args(KernelBuild) == tuple(IMAGE_NAMES)

"""``ksim compare``: memconsole and ramoops through the same crash and faults (issue 12).

Each experiment is two or three boots of a 512 MiB sparse machine (cheap: a few seeds only).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ksim.compare import classify, marker, panic_text, run_cell
from ksim.compare_cli import parse_seeds

PANIC = "Kernel panic - not syncing: " + panic_text(3)


@pytest.mark.parametrize("driver", ["memconsole", "ramoops"])
def test_a_warm_reboot_after_a_panic_shows_the_oops_intact(driver):
    """R1 (memconsole under its own assumptions) and ramoops' dumper: the clean case."""
    assert run_cell(driver, "clean", 0).outcome == "intact"


def test_kaslr_makes_memconsole_reset_its_log_with_a_warning_but_ramoops_keeps_it():
    """D6/F6: memconsole's header holds a virtual pointer the next boot's direct map moved;
    ramoops addresses its region physically."""
    assert run_cell("memconsole", "kaslr", 1).outcome == "flagged"
    assert run_cell("ramoops", "kaslr", 1).outcome == "intact"


def test_a_second_panic_before_reading_overwrites_ramoops_first_record():
    """ramoops' dump_write_cnt starts at 0 every boot: the second boot's panic is written over
    dmesg-ramoops-0 (fs/pstore/ram.c); memconsole's ring keeps both boots' text."""
    assert run_cell("ramoops", "second-panic", 0).outcome == "lost"
    assert run_cell("memconsole", "second-panic", 0).outcome == "intact"


def test_bit_flips_in_the_region_are_corrected_by_ramoops_ecc():
    assert [run_cell("ramoops", "bitflips", s).outcome for s in (0, 1)] == ["intact", "intact"]


def test_f7_memconsole_serves_flipped_data_silently_and_resets_on_a_flipped_header():
    """F7: no checksum on the data; the header check catches a flip in the header only.
    Seeds 20 (a flip in the header) and 22 (one in the marker line) of ``--faults bitflips``;
    ramoops' ECC repairs both."""
    assert run_cell("memconsole", "bitflips", 20).outcome == "flagged"
    assert run_cell("memconsole", "bitflips", 22).outcome == "silent"
    assert run_cell("ramoops", "bitflips", 22).outcome == "intact"


def test_a_firmware_that_clears_ram_loses_ramoops_records_without_a_word():
    """pc-bios clears RAM at a reset: ramoops finds empty zones, which it does not report."""
    assert run_cell("ramoops", "firmware-pc-bios", 0).outcome == "lost"
    assert run_cell("memconsole", "firmware-pc-bios", 0).outcome == "flagged"


def test_outcomes_follow_what_the_recovered_text_and_the_driver_say():
    text = f"<0>[ 1.0] {marker(3)}\n<0>[ 1.0] {PANIC}\n"
    flags = [r"isn't valid"]
    assert classify(text, "", 3, flags) == "intact"
    damaged = text.replace("marker", "markEr")
    assert classify(damaged, "", 3, flags) == "silent"
    assert classify(damaged, "memory for memconsole isn't valid", 3, flags) == "flagged"
    assert classify("nothing here\n", "", 3, flags) == "lost"


def test_every_fault_implemented_is_documented_for_help_and_no_other():
    from ksim.compare import FAULTS
    from ksim.compare_cli import FAULT_DOCS
    assert list(FAULTS) == list(FAULT_DOCS)


def test_seeds_are_a_count_or_an_inclusive_range():
    assert parse_seeds("3") == (0, 1, 2)
    assert parse_seeds("5..6") == (5, 6)
    for bad in ("0", "x", "4..2", "-1"):
        with pytest.raises(ValueError):
            parse_seeds(bad)


def ksim(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ksim", *args], capture_output=True,
                          text=True, timeout=300)


def _matrix(report: dict[str, Any]) -> dict[str, Any]:
    return {d: v["cells"] for d, v in report["drivers"].items()}


def test_jobs_give_the_same_matrix_json_and_html_with_replay_commands(tmp_path: Path):
    base = ["compare", "memconsole", "ramoops", "--faults", "clean,kaslr", "--seeds", "2"]
    one = ksim(*base, "--json", str(tmp_path / "1.json"))
    two = ksim(*base, "-j", "2", "--json", str(tmp_path / "2.json"),
               "--html", str(tmp_path / "r.html"))
    assert one.returncode == two.returncode == 0, one.stderr + two.stderr
    matrix = one.stdout.split("\ncost")[0]
    assert matrix == two.stdout.split("\ncost")[0]
    r1 = json.loads((tmp_path / "1.json").read_text())
    r2 = json.loads((tmp_path / "2.json").read_text())
    assert _matrix(r1) == _matrix(r2)
    mc = r1["drivers"]["memconsole"]
    assert mc["cells"]["kaslr"]["fractions"]["flagged"] == 1.0
    assert mc["reserved_bytes"] == 8192 and mc["printk_us_per_record"] > 0
    assert r1["drivers"]["ramoops"]["reserved_bytes"] == 0x100000
    page = (tmp_path / "r.html").read_text()
    assert "ksim compare memconsole --faults kaslr --seeds 0..0" in page
    assert "<script" not in page and "http" not in page  # self-contained


@pytest.mark.parametrize("args, message", [
    (["nosuch"], "unknown plugin 'nosuch'"),
    (["memconsole", "--faults", "clen"], "did you mean 'clean'"),
    (["memconsole", "--faults", "torn-reset"], "'torn-reset' (not implemented)"),
    (["memconsole", "--seeds", "x"], "expected N or A..B"),
])
def test_bad_drivers_faults_and_seeds_are_one_line_and_status_2(args, message):
    proc = ksim("compare", *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.splitlines()) == 1 and not proc.stdout

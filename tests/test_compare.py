"""ksim compare: the same faults against memconsole and ramoops, classified from what the next
boot shows (docs/compare.md)."""

from __future__ import annotations

import json

from ksim.cli import main
from ksim.compare import classify, load_drivers, run_cell


def _cell(driver: str, fault: str, seed: int = 0) -> str:
    drivers = load_drivers(["memconsole", "ramoops"])
    me = next(d for d in drivers if d.name == driver)
    return run_cell(me, [d for d in drivers if d is not me], fault, seed).verdict


def test_kaslr_hides_memconsoles_virtual_header_but_not_ramoops_physical_zones() -> None:
    assert _cell("memconsole", "kaslr") == "lost"
    assert _cell("ramoops", "kaslr") == "intact"


def test_ramoops_saves_the_old_log_before_the_next_boot_writes() -> None:
    # memconsole's one-page ring is overwritten by 5 KiB of the next boot (F9); ramoops copies
    # the old zone out at boot (persistent_ram_save_old, R7) and dumps only on Oops/panic
    assert _cell("memconsole", "next-boot-5k") == "lost"
    assert _cell("ramoops", "next-boot-5k") == "intact"


def test_a_clean_warm_reboot_keeps_both_logs() -> None:
    assert _cell("memconsole", "warm-reboot") == "intact"
    assert _cell("ramoops", "warm-reboot") == "intact"


def test_f7_bit_flips_pass_memconsoles_header_check_but_ramoops_ecc_repairs_them() -> None:
    # F7: memconsole checks its header only, so flipped log bytes are served as the log; the
    # same 8 flips in ramoops' zones are corrected by Reed-Solomon and the Oops is whole
    memconsole = {_cell("memconsole", "bitflips", s) for s in range(4)}
    assert "silent" in memconsole
    assert {_cell("ramoops", "bitflips", s) for s in range(4)} == {"intact"}


def test_damage_is_flagged_only_when_the_driver_says_so() -> None:
    truth = ["BUG: kernel NULL pointer dereference", "RIP: 0010:sysrq_handle_crash"]
    torn = b"BUG: kernel NULL pointer dereference\nRIP: 0010:sysrq_handXe_crash\n"
    assert classify(truth, {"/proc/memconsole": torn})[0] == "silent"
    ecc = torn + b"\nECC: 3 Corrected bytes, 1 unrecoverable blocks\n"
    ramoops = load_drivers(["ramoops"])[0].module.crash_log_flags
    assert classify(truth, {"/sys/fs/pstore/dmesg-ramoops-0": ecc}, ramoops)[0] == "flagged"
    assert classify(truth, {"/sys/fs/pstore/dmesg-ramoops-0.enc.z": b"x\x9c"},
                    ramoops)[0] == "flagged"
    whole = b"<0>[    1.000000] " + b"\n<0>[    1.000000] ".join(t.encode() for t in truth)
    assert classify(truth, {"/sys/fs/pstore/dmesg-ramoops-0": whole}, ramoops)[0] == "intact"
    assert classify(truth, {"/proc/memconsole": b"other text\n"})[0] == "lost"


def test_compare_json_is_the_same_on_every_run(tmp_path, capsys) -> None:
    outs = []
    for name in ("a.json", "b.json"):
        assert main(["compare", "memconsole", "ramoops", "--faults", "initramfs-growth,kaslr",
                     "--seeds", "2", "--json", str(tmp_path / name)]) == 0
        data = json.loads((tmp_path / name).read_text())
        outs.append([(c["driver"], c["fault"], c["seeds"]) for c in data["cells"]])
    assert outs[0] == outs[1]
    table = capsys.readouterr().out
    assert "initramfs-growth" in table and "lost 2/2" in table and "intact 2/2" in table
    cell = next(c for c in data["cells"] if c["driver"] == "memconsole" and c["fault"] == "kaslr")
    assert cell["replay"]["lost"] == "ksim compare memconsole ramoops --faults kaslr --seed 0"


def test_compare_html_is_one_page_with_each_cells_replay(tmp_path) -> None:
    page = tmp_path / "m.html"
    assert main(["compare", "memconsole", "--faults", "page-offset", "--seeds", "1",
                 "--html", str(page)]) == 0
    text = page.read_text()
    assert text.startswith("<!DOCTYPE html>") and "<script" not in text and "http" not in text
    assert "ksim compare memconsole --faults page-offset --seed 0" in text


def test_compare_refuses_unknown_drivers_faults_and_seed_counts(capsys) -> None:
    assert main(["compare", "memconsole", "--faults", "kasl"]) == 2
    assert "unknown fault 'kasl'; did you mean 'kaslr'?" in capsys.readouterr().err
    assert main(["compare", "memconsol"]) == 2
    assert "did you mean 'memconsole'?" in capsys.readouterr().err
    assert main(["compare", "memconsole", "--seeds", "0"]) == 2
    assert "out of range" in capsys.readouterr().err

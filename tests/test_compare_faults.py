"""ksim compare's faults built on the scenario runner and the store watch (SMP panics, an NMI
in the driver's write, a reset at a seeded store, bit flips at a rate, a user's scenario file),
and --shard with ksim merge of its JSON (docs/compare.md)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import trio
import trio.testing

from ksim.cli import main
from ksim.compare import CLASSES, FAULT_DIR, Run, load_drivers, resolve_fault, run_cell
from ksim.scenario.loader import ScenarioInvalid, load_text

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / \
    "compare-fault-memtest.yaml"


def _run(driver: str, fault: str, seed: int = 0):
    drivers = load_drivers(["memconsole", "ramoops"])
    me = next(d for d in drivers if d.name == driver)
    return run_cell(me, [d for d in drivers if d is not me], fault, seed)


def _crash(driver: str, fault: str, seed: int = 0) -> Run:
    """The fault's run as run_cell makes it: the crash boot's dmesg, what the last boot showed."""
    drivers = load_drivers(["memconsole", "ramoops"])
    me = next(d for d in drivers if d.name == driver)
    run = Run(me, [d for d in drivers if d is not me], seed, random.Random(f"compare {fault} {seed}"))

    async def main() -> None:
        try:
            await resolve_fault(fault)(run)
        finally:
            if run.machine is not None:
                run.machine.close()
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return run


@pytest.mark.parametrize("fault", ["panic-driver-lock", "panic-console-lock", "nmi-in-write",
                                   "panic-during-oops", "panic-console-held",
                                   "reset-while-printing", "bitflips:1e-3"])
def test_each_new_fault_is_deterministic_per_seed(fault: str) -> None:
    for driver in ("memconsole", "ramoops"):
        first, again = _run(driver, fault, 3), _run(driver, fault, 3)
        assert first == again
        assert first.verdict in CLASSES


def test_g1_a_reset_between_memconsoles_two_header_stores_loses_the_whole_log() -> None:
    # record_msg stores buf_ptr, then buf_len (offset 8): a reset just before the buf_len
    # store, before the ring wrapped, leaves a header the check rejects, and buf_init resets
    # the buffer: nothing of the crash is shown, not only the line being written (G1)
    torn = [r for r in (_run("memconsole", "reset-while-printing", s) for s in range(12))
            if "(offset 0x8, 4 bytes)" in r.why]
    assert torn
    assert {r.verdict for r in torn} == {"lost"}


def test_a_reset_while_printing_is_classified_by_what_the_reader_shows() -> None:
    # the seeds land the reset at different stores: the line being stored is missing and
    # nothing says so (silent), or the header is torn (lost), or the Oops was complete
    verdicts = {_run("memconsole", "reset-while-printing", s).verdict for s in range(8)}
    assert {"silent", "lost"} <= verdicts


def test_a_fault_in_which_no_boot_panicked_is_not_reached_rather_than_lost() -> None:
    # ramoops takes psinfo->buf_lock only inside pstore_dump (6.1's pstore console does not
    # take it), and in this fault CPU 1 only prints: no other CPU ever holds it, in 6.1 too,
    # and the panic of the fault never happens
    r = _run("ramoops", "panic-driver-lock")
    assert r.verdict == "not-reached"
    assert "no other CPU ever held 'psinfo->buf_lock'" in r.why
    assert _run("memconsole", "panic-driver-lock").verdict != "not-reached"


DUMP_SKIPPED = "pstore: dump skipped in Panic path because of concurrent dump"


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_s3_a_panic_during_ramoops_oops_dump_stops_cpu1_only_once_the_dump_is_written(
        seed: int) -> None:
    # CPU 0 panics while CPU 1 holds psinfo->buf_lock (caught at a cache line of its zone
    # copy); CPU 1 holds it with interrupts off, so smp_send_stop's IPI waits until it lets
    # go: its Oops dump is whole and the panic's own trylock succeeds, the next dump zone
    run = _crash("ramoops", "panic-during-oops", seed)
    assert "Kernel panic - not syncing: Oops on CPU0" in run.crash_dmesg
    assert DUMP_SKIPPED not in run.crash_dmesg
    assert sorted(run.shown) == ["/sys/fs/pstore/dmesg-ramoops-0",
                                 "/sys/fs/pstore/dmesg-ramoops-1"]
    assert run.shown["/sys/fs/pstore/dmesg-ramoops-0"].startswith(b"Oops#1 Part1\n")
    assert run.shown["/sys/fs/pstore/dmesg-ramoops-1"].startswith(b"Panic#2 Part1\n")
    assert _run("ramoops", "panic-during-oops", seed).verdict == "intact"


def test_s3_with_crash_kexec_post_notifiers_the_panic_dump_is_skipped_and_the_oops_torn(
        tmp_path) -> None:
    # crash_smp_send_stop() shoots CPU 1 down with an NMI at once, inside its dump: the lock
    # stays held, pstore_dump(PANIC) cannot wait (pstore_cannot_block_path) and says so, and
    # the zone CPU 1 had zapped holds no valid header: the next boot shows no record at all
    fault = tmp_path / "post-notifiers.yaml"
    fault.write_text((FAULT_DIR / "panic-during-oops.yaml").read_text().replace(
        'panic=-1 loglevel=8"', 'panic=-1 loglevel=8 crash_kexec_post_notifiers"'))
    run = _crash("ramoops", str(fault))
    assert DUMP_SKIPPED in run.crash_dmesg
    assert run.crash_dmesg.index("Kernel Offset: disabled") < run.crash_dmesg.index(DUMP_SKIPPED)
    assert run.shown == {}
    assert _run("ramoops", str(fault)).verdict == "lost"


def test_k2_the_panic_dump_does_not_need_the_console_lock_a_notifier_restart_does() -> None:
    # CPU 1 holds console_sem (printing under console_lock(), as VT code does) when CPU 0
    # panics: kmsg_dump(PANIC) reads the log without the console lock, so ramoops stores the
    # panic whole; memconsole only gets lines when a console flush reaches it, and its
    # panic notifier restarts the machine before console_flush_on_panic() would print them
    run = _crash("ramoops", "panic-console-held")
    assert "Kernel panic - not syncing: Oops on CPU0" in run.crash_dmesg
    assert run.shown["/sys/fs/pstore/dmesg-ramoops-0"].startswith(b"Panic#1 Part1\n")
    assert _run("ramoops", "panic-console-held").verdict == "intact"
    lost = _run("memconsole", "panic-console-held")
    assert (lost.verdict, lost.why) == ("lost", "none of the 8 lines of the Oops")


def test_a_spawned_thread_ends_in_a_panic_or_an_oops_not_both() -> None:
    with pytest.raises(ScenarioInvalid, match="a thread ends in a panic or an oops, not both"):
        load_text("name: x\nmachine: {cpus: 2}\nboots:\n  - steps:\n      - spawn: "
                  "{text: t, panic: p, oops: o}\n", "s.yaml")


def test_bit_flips_at_every_bit_leave_nothing_of_memconsoles_log() -> None:
    assert _run("memconsole", "bitflips:1").verdict == "lost"


def test_a_users_fault_file_runs_against_each_driver() -> None:
    # memtest writes patterns over the free pages on the boot in between: memconsole's
    # bootmem block is free on that boot, ramoops' memmap=$ region is not RAM to memblock
    assert _run("memconsole", str(EXAMPLE)).verdict == "lost"
    assert _run("ramoops", str(EXAMPLE)).verdict == "intact"


@pytest.mark.parametrize(("spec", "message"), [
    ("bitflips:abc", "ksim compare: --faults: bitflips:'abc': expected a flip probability per "
                     "bit in (0, 1], e.g. bitflips:1e-4"),
    ("bitflips:0", "bitflips:'0': expected a flip probability"),
    ("bitflips:nan", "bitflips:'nan': expected a flip probability"),
    ("no/such/fault.yaml", "no/such/fault.yaml: cannot read: No such file or directory"),
])
def test_fault_syntax_errors_are_one_located_line(spec: str, message: str, capsys) -> None:
    assert main(["compare", "memconsole", "--faults", spec]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_fault_file_with_plugins_or_bad_yaml_is_refused_at_its_line(tmp_path, capsys) -> None:
    text = EXAMPLE.read_text()
    with_plugins = tmp_path / "p.yaml"
    with_plugins.write_text(text.replace("machine: {ram: 512M}\n",
                                         "machine: {ram: 512M}\nplugins: [memconsole]\n"))
    assert main(["compare", "memconsole", "--faults", str(with_plugins)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"{with_plugins}:9:1: plugins: ksim compare loads the compared driver" in err
    broken = tmp_path / "b.yaml"
    broken.write_text(text.replace("    steps:\n", "    steps: [\n", 1))
    assert main(["compare", "memconsole", "--faults", str(broken)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"{broken}:" in err and "invalid YAML" in err


def _without_wall_clock(doc: dict) -> dict:
    for d in doc["drivers"]:
        del d["printk_us"], d["printk_us_without_driver"]
    return doc


def test_merged_shards_are_the_serial_run(tmp_path, capsys) -> None:
    run = ["compare", "memconsole", "ramoops", "--faults", "reset-while-printing,kaslr",
           "--seeds", "3"]
    assert main([*run, "--json", str(tmp_path / "whole.json")]) == 0
    for i in (1, 2, 3):
        assert main([*run, "--shard", f"{i}/3", "--json", str(tmp_path / f"s{i}.json")]) == 0
    # given out of order: the merge puts each result back where the whole run had it
    assert main(["merge", str(tmp_path / "s3.json"), str(tmp_path / "s1.json"),
                 str(tmp_path / "s2.json"), "-o", str(tmp_path / "merged.json")]) == 0
    whole = json.loads((tmp_path / "whole.json").read_text())
    merged = json.loads((tmp_path / "merged.json").read_text())
    assert _without_wall_clock(merged) == _without_wall_clock(whole)
    assert len(whole["results"]) == 12 and whole["shard"] == {"index": 1, "count": 1,
                                                              "items": 12}


def test_merge_refuses_shards_of_two_campaigns(tmp_path, capsys) -> None:
    for i, fault in ((1, "kaslr"), (2, "warm-reboot")):
        assert main(["compare", "memconsole", "--faults", fault, "--seeds", "2", "--shard",
                     f"{i}/2", "--json", str(tmp_path / f"s{i}.json")]) == 0
    capsys.readouterr()
    assert main(["merge", str(tmp_path / "s1.json"), str(tmp_path / "s2.json")]) == 2
    assert "'faults' differs" in capsys.readouterr().err


def test_r11_the_first_of_two_unread_crashes_is_lost_by_ramoops_as_its_counter_restarts() -> None:
    first = _run("ramoops", "first-of-two-panics", 1)
    assert first.verdict == "lost", first.why
    assert _run("ramoops", "second-panic", 1).verdict == "intact"


def test_an_oops_headline_is_part_of_the_oops_so_two_oopses_differ() -> None:
    from ksim.compare import oops_lines
    dmesg = "\n".join(["[    1.000000] BUG: kernel NULL pointer dereference, address: 0000000000000010",
                       "[    1.000000] #PF: supervisor write access in kernel mode",
                       "[    1.000000] PGD 0 P4D 0 ",
                       "[    1.000000] Oops: 0002 [#1] PREEMPT SMP NOPTI",
                       "[    1.000000] RIP: 0010:sysrq_handle_crash+0x16/0x20",
                       "[    1.000000] Kernel panic - not syncing: Fatal exception"])
    assert oops_lines(dmesg)[0].endswith("address: 0000000000000010")
    assert len(oops_lines(dmesg)) == 5

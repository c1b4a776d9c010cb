"""``ksim compare``: the same crash, the same faults, several log-keeping drivers, one table.

Each (driver, fault, seed) is one small experiment on one :class:`~ksim.machine.Machine`
(512 MiB, the oracle's machine, seeded with the seed):

1. boot 1, with the driver's own command line (``KernelModule.compare_cmdline``): printk the
   Oops marker ``Oops: ksim compare marker S`` at KERN_EMERG, then ``panic("ksim compare
   fatal S")``;
2. the fault acts (between the boots, or on the next boot before the log is read);
3. the reading boot reads ``KernelModule.compare_log`` (a file, or every file matching a
   pattern in a folder).

The outcome is classified:

* **intact**: the marker line and ``Kernel panic - not syncing: ksim compare fatal S`` are both
  in the recovered text, unchanged;
* **flagged** (damaged but flagged): not intact, but one of the driver's ``compare_flags``
  regexes matches the recovered text or the dmesg of a boot after the crash;
* **silent** (damaged silently): not intact, not flagged, but a line resembling one of the two
  (difflib ratio >= 0.7 on the line's tail) survives;
* **lost**: nothing of it, and no word from the driver.

Cost columns: the driver's reserved bytes (``compare_region()`` of boot 1 of the first seed of
the first fault run) and printk cost per record with the driver built in, wall clock,
measured in this run (the one figure that differs between runs).

Faults not implemented yet (named so no cell is faked): ``page-offset``, ``lock-held``,
``nmi-in-write``, ``torn-reset``, ``both-drivers``, user fault files.
"""

from __future__ import annotations

import difflib
import fnmatch
import html
import random
import re
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import attrs

from ksim.compare_cli import FAULT_DOCS, NOT_IMPLEMENTED
from ksim.errno import KernelError
from ksim.kern_levels import KERN_EMERG, KERN_INFO
from ksim.module import KernelModule, module_param

if TYPE_CHECKING:
    from ksim.kernel import Kernel

# The simulator (trio, the kernel) is imported when an experiment runs, not when the command
# line is built: ``ksim --help`` stays cheap (tests/test_cli.py).

RAM = "512M"  # the oracle's machine: ramoops' usual region at 256 MiB lies in RAM
OUTCOMES = ("intact", "flagged", "silent", "lost")
PRINTK_RECORDS = 200  # records timed for the printk-cost column


def marker(seed: int) -> str:
    return f"Oops: ksim compare marker {seed}"


def panic_text(seed: int) -> str:
    return f"ksim compare fatal {seed}"


def _drop(word: str) -> Callable[[str], str]:
    return lambda cmdline: " ".join(w for w in cmdline.split() if w != word)


def _add(words: str) -> Callable[[str], str]:
    return lambda cmdline: f"{cmdline} {words}".strip()


def _same(cmdline: str) -> str:
    return cmdline


@attrs.frozen
class Fault:
    """A template: what differs from a clean warm reboot after the panic."""

    name: str
    first: Callable[[str], str] = _same  # boot 1's command line from the driver's
    later: Callable[[str], str] = _same  # the later boots'
    firmware: str = "seabios"
    power: str = "warm"  # how the boot after the crash starts
    initrd: tuple[int, int] = (0, 0)  # initramfs size of boot 1, of the later boots
    flips: int = 0  # seeded bit flips in the driver's region between the boots
    noise: int = 0  # bytes the reading boot prints before the log is read
    second_panic: bool = False  # boot 2 panics before reading; boot 3 reads
    early_panic: bool = False  # boot 1 panics at an early initcall, before the driver's


MIB = 1 << 20
FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("clean"),
    Fault("next-boot-5k", noise=5120),
    Fault("second-panic", second_panic=True),
    Fault("kaslr", first=_drop("nokaslr"), later=_drop("nokaslr")),
    Fault("initrd-growth", initrd=(40 * MIB, 60 * MIB)),
    Fault("mem-change", later=_add("mem=256M")),
    Fault("bitflips", flips=8),
    *(Fault(f"firmware-{fw}", firmware=fw) for fw in ("seabios", "pc-bios", "uefi", "ecc-scrub")),
    Fault("cold-boot", power="cold"),
    Fault("panic-before-init", early_panic=True),
)}


class EarlyPanic(KernelModule):
    """A built-in module whose early initcall oopses and panics: the crash of
    ``panic-before-init``, before any later-level driver initialised."""

    name = "ksim_compare_early_panic"
    initcall = "early"
    seed = module_param("int", 0, 0o444, "the seed the marker names")

    async def init(self) -> int:
        from ksim.panic import panic
        from ksim.printk import printk
        await printk(KERN_EMERG + marker(self.seed) + "\n")
        await panic(panic_text(self.seed))
        return 0


@attrs.frozen
class Cell:
    driver: str
    fault: str
    seed: int
    outcome: str
    reserved: int


async def _read_log(kernel: Kernel, where: str) -> str:
    folder, _, pattern = where.rpartition("/")
    if not any(c in pattern for c in "*?["):
        try:
            return (await kernel.read_file(where)).decode("latin-1")
        except KernelError:
            return ""
    try:
        names = sorted(n for n in kernel.list_dir(folder) if fnmatch.fnmatch(n, pattern))
    except KernelError:
        return ""
    parts = []
    for name in names:
        data = await kernel.read_file(f"{folder}/{name}")
        parts.append(f"==> {name} <==\n" + data.decode("latin-1"))
    return "\n".join(parts)


def _resembles(text: str, expected: str) -> bool:
    if expected[:-2] in text:  # cut short (memconsole's ring) but not altered
        return True
    for line in text.splitlines():
        tail = line[-len(expected) - 2:]
        m = difflib.SequenceMatcher(None, expected, tail)
        if m.real_quick_ratio() >= 0.7 and m.quick_ratio() >= 0.7 and m.ratio() >= 0.7:
            return True
    return False


def classify(text: str, dmesgs: str, seed: int, flags: Sequence[str]) -> str:
    want = (marker(seed), "Kernel panic - not syncing: " + panic_text(seed))
    if all(w in text for w in want):
        return "intact"
    if any(re.search(f, text) or re.search(f, dmesgs) for f in flags):
        return "flagged"
    if any(_resembles(text, w) for w in want):
        return "silent"
    return "lost"


async def _experiment(driver: type[KernelModule], fault: Fault, seed: int) -> Cell:
    from ksim.machine import Machine
    from ksim.panic import panic
    from ksim.printk import printk
    plugins: list[type[KernelModule]] = [driver]
    cmdline = driver.compare_cmdline
    first, later = fault.first(cmdline), fault.later(cmdline)
    with Machine(RAM, seed=seed, firmware=fault.firmware) as m:
        if fault.early_panic:
            early = f"{first} {EarlyPanic.name}.seed={seed}"
            async with m.boot(early, [driver, EarlyPanic], initrd=fault.initrd[0]) as k1:
                pass
        else:
            async with m.boot(first, plugins, initrd=fault.initrd[0]) as k1:
                await printk(KERN_EMERG + marker(seed) + "\n")
                await panic(panic_text(seed))
        mod = k1.module.instances.get(driver.name)
        region = mod.compare_region() if mod is not None else None
        if fault.flips and region is not None:
            rng = random.Random(f"ksim compare bitflips {seed}")
            start, size = region
            for _ in range(fault.flips):
                at = start + rng.randrange(size)
                m.mem.write(at, bytes([m.mem.read(at, 1)[0] ^ (1 << rng.randrange(8))]))
        dmesgs = []
        if fault.second_panic:
            async with m.boot(later, plugins, power=fault.power, initrd=fault.initrd[1]) as k:
                await printk(KERN_EMERG + "BUG: an unrelated second crash\n")
                await panic("unrelated second panic")
            dmesgs.append(k.dmesg())
        power = "warm" if fault.second_panic else fault.power
        async with m.boot(later, plugins, power=power, initrd=fault.initrd[1]) as k2:
            for i in range(fault.noise // 64):
                await printk(KERN_INFO + "ksim noise %04d " % i + "." * 47 + "\n")
            text = await _read_log(k2, driver.compare_log)
        dmesgs.append(k2.dmesg())
    outcome = classify(text, "\n".join(dmesgs), seed, driver.compare_flags)
    return Cell(driver.name, fault.name, seed, outcome, region[1] if region else 0)


def run_cell(driver_name: str, fault_name: str, seed: int,
             plugin_path: tuple[str, ...] = ()) -> Cell:
    """One experiment in its own trio run: the unit of work of ``-j``."""
    from ksim.plugins import load_plugins
    from ksim.vclock import run_virtual
    driver = load_plugins([driver_name], plugin_path)[0]
    return run_virtual(_experiment, driver, FAULTS[fault_name], seed)


async def _printk_cost(driver: type[KernelModule]) -> float:
    from ksim.machine import Machine
    from ksim.printk import printk
    with Machine(RAM, seed=0) as m:
        async with m.boot(driver.compare_cmdline, [driver]):
            t0 = time.perf_counter()
            for i in range(PRINTK_RECORDS):
                await printk(KERN_INFO + "ksim compare cost %04d\n", i)
            return (time.perf_counter() - t0) / PRINTK_RECORDS * 1e6


def printk_cost_us(driver_name: str, plugin_path: tuple[str, ...] = ()) -> float:
    from ksim.plugins import load_plugins
    from ksim.vclock import run_virtual
    return run_virtual(_printk_cost, load_plugins([driver_name], plugin_path)[0])


@attrs.frozen
class Report:
    drivers: tuple[str, ...]
    faults: tuple[str, ...]
    seeds: tuple[int, ...]
    cells: tuple[Cell, ...]
    cmdlines: dict[str, str]
    cost_us: dict[str, float]

    def cell(self, driver: str, fault: str) -> list[Cell]:
        return [c for c in self.cells if c.driver == driver and c.fault == fault]

    def reserved(self, driver: str) -> int:
        return max((c.reserved for c in self.cells if c.driver == driver), default=0)

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"seeds": list(self.seeds), "faults": list(self.faults),
                                  "not_implemented": list(NOT_IMPLEMENTED), "drivers": {}}
        drivers: dict[str, object] = {}
        for d in self.drivers:
            cells: dict[str, object] = {}
            for f in self.faults:
                cs = self.cell(d, f)
                counts = {o: sum(c.outcome == o for c in cs) for o in OUTCOMES}
                cells[f] = {"fractions": {o: counts[o] / len(cs) for o in OUTCOMES},
                            "counts": counts,
                            "example_seed": {o: min(c.seed for c in cs if c.outcome == o)
                                             for o in OUTCOMES if counts[o]},
                            "seeds": {str(c.seed): c.outcome for c in cs}}
            drivers[d] = {"cmdline": self.cmdlines[d], "reserved_bytes": self.reserved(d),
                          "printk_us_per_record": round(self.cost_us[d], 3), "cells": cells}
        out["drivers"] = drivers
        return out

    def table(self) -> str:
        width = max(len(f) for f in self.faults)
        lines = [f"seeds {_seeds_text(self.seeds)}; fraction of seeds per outcome"]
        for d in self.drivers:
            lines.append(f"\n{d}  ({self.cmdlines[d]})")
            lines.append(f"  {'fault':<{width}}  " + "  ".join(f"{o:>7}" for o in OUTCOMES))
            for f in self.faults:
                cs = self.cell(d, f)
                fr = [sum(c.outcome == o for c in cs) / len(cs) for o in OUTCOMES]
                lines.append(f"  {f:<{width}}  " + "  ".join(f"{x:7.2f}" for x in fr))
        lines.append("\ncost (printk: wall clock, measured in this run, "
                     f"{PRINTK_RECORDS} records with the driver built in)")
        lines.append(f"  {'driver':<12} {'reserved bytes':>15} {'printk us/record':>17}")
        for d in self.drivers:
            lines.append(f"  {d:<12} {self.reserved(d):>15} {self.cost_us[d]:>17.1f}")
        lines.append("not implemented: " + ", ".join(NOT_IMPLEMENTED))
        return "\n".join(lines) + "\n"

    def html(self) -> str:
        colours = {"intact": (46, 160, 67), "flagged": (219, 171, 9), "silent": (207, 34, 46),
                   "lost": (110, 118, 129)}
        rows = []
        head = "".join(f"<th>{html.escape(f)}</th>" for f in self.faults)
        for d in self.drivers:
            tds = []
            for f in self.faults:
                cs = self.cell(d, f)
                parts = []
                for o in OUTCOMES:
                    n = sum(c.outcome == o for c in cs)
                    if not n:
                        continue
                    s = min(c.seed for c in cs if c.outcome == o)
                    cmd = f"ksim compare {d} --faults {f} --seeds {s}..{s}"
                    parts.append(f'<div title="{html.escape(cmd)}">{o} {n / len(cs):.2f}'
                                 f'<br><code>{html.escape(cmd)}</code></div>')
                top = max(OUTCOMES, key=lambda o: sum(c.outcome == o for c in cs))
                r, g, b = colours[top]
                tds.append(f'<td style="background:rgba({r},{g},{b},0.35)">'
                           + "".join(parts) + "</td>")
            rows.append(f"<tr><th>{html.escape(d)}<br><small>{html.escape(self.cmdlines[d])}"
                        f"</small></th>{''.join(tds)}<td>{self.reserved(d)}</td>"
                        f"<td>{self.cost_us[d]:.1f}</td></tr>")
        return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>ksim compare</title>"
                "<style>table{border-collapse:collapse;font-family:sans-serif;font-size:12px}"
                "td,th{border:1px solid #999;padding:4px;vertical-align:top}"
                "code{font-size:10px}</style></head><body>"
                f"<h1>ksim compare</h1><p>seeds {_seeds_text(self.seeds)}; each cell: the "
                "fraction of seeds per outcome (intact, flagged = damaged but flagged, silent "
                "= damaged silently, lost) and the command that replays a seed showing it; the "
                "colour is the commonest outcome. printk us/record: wall clock, this run.</p>"
                f"<table><tr><th>driver</th>{head}<th>reserved bytes</th>"
                f"<th>printk us/record</th></tr>{''.join(rows)}</table>"
                f"<p>not implemented: {html.escape(', '.join(NOT_IMPLEMENTED))}</p>"
                "</body></html>\n")


def _seeds_text(seeds: tuple[int, ...]) -> str:
    return f"{seeds[0]}..{seeds[-1]}" if len(seeds) > 1 else str(seeds[0])


def compare(drivers: Sequence[type[KernelModule]], faults: Sequence[str], seeds: Sequence[int],
            jobs: int = 1, plugin_path: tuple[str, ...] = ()) -> Report:
    tasks = [(d.name, f, s, plugin_path) for d in drivers for f in faults for s in seeds]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(jobs) as pool:
            cells = list(pool.map(run_cell, *zip(*tasks), chunksize=4))
    else:
        cells = [run_cell(*t) for t in tasks]
    return Report(tuple(d.name for d in drivers), tuple(faults), tuple(seeds), tuple(cells),
                  {d.name: d.compare_cmdline for d in drivers},
                  {d.name: printk_cost_us(d.name, plugin_path) for d in drivers})

"""``ksim compare``: the same faults against several crash-log drivers, one table.

Each driver is a plugin that declares, through the plugin API (:class:`ksim.module.KernelModule`),
its ``usual_cmdline`` and the ``crash_log_files`` in which the next boot shows the saved log.
Each fault is a scenario template (:data:`FAULTS`, each function's docstring says what it does):
a machine, a crashing boot and the boots after it, built on the machine model (firmware
profiles, KASLR, the initramfs, ``mem=``, ``ksim.page_offset=``), or a scenario file run by
the scenario runner (:class:`ScenarioFault`: the SMP and NMI faults in ``compare_faults/``,
and a user's own ``PATH.yaml``).  For every (driver, fault)
and seed, the last Oops the machine printed (its dmesg lines, from the Oops headline to
the panic it led to) is looked for in what the next boot shows:

* **intact**: every line of the Oops is there;
* **flagged**: some lines are missing or changed, and the driver's files said so (its
  ``crash_log_flags``: ramoops' ECC line with unrecoverable blocks, a record left
  compressed as ``.enc.z``);
* **silent**: some lines are missing or changed and nothing says so;
* **lost**: no line of the Oops is there;
* **not-reached**: the fault did not happen (no boot of a fault scenario panicked).

The cost columns: the memory the driver takes from the page allocator (the ``Memory:`` line's
available figure without the driver minus with it, both booted ``nokaslr``) and the wall-clock
cost of one printk with the driver loaded (µs, measured in the same run; reported, never used
for a verdict).

Everything but the printk cost is deterministic per seed: a cell's command
(``ksim compare DRIVER --faults FAULT --seed N``) replays it alone.  The core loads drivers only
through :mod:`ksim.plugins`; it knows none by name.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio
import trio.testing

from ksim.errno import KernelError
from ksim.kernel import Kernel
from ksim.machine import Machine
from ksim.memory import PhysMem
from ksim.module import KernelModule
from ksim.panic import TaskKilled, die, panic
from ksim.printk import KERN_ERR, printk, record_print_text
from ksim.scenario.loader import Problem, ScenarioInvalid, load_text, read_scenario_file
from ksim.scenario.model import Boot, Loc, PluginRef, Scenario
from ksim.scenario.runner import ERROR, Result, ScenarioRun, _run, read_file

__all__ = ["CLASSES", "FAULTS", "CellResult", "Driver", "FaultError", "ScenarioFault", "classify",
           "cost", "load_drivers", "resolve_fault", "run_cell"]

# not-reached: the fault did not happen (a fault scenario in which no boot panicked)
CLASSES = ("intact", "flagged", "silent", "lost", "not-reached")
RAM = "512M"  # room for ramoops' usual region at 256 MiB; RAM is sparse
# panic=-1: restart at once after a panic (a driver without a reboot notifier needs it);
# oops=panic: the Oops is the crash
BASE_CMDLINE = "nokaslr panic=-1 oops=panic"
OOPS = "BUG: kernel NULL pointer dereference, address: 0000000000000008"
FIRST_OOPS = "BUG: kernel NULL pointer dereference, address: 0000000000000010"
PANIC_LINE = "Kernel panic - not syncing"
_TIMESTAMP = re.compile(r"^(?:<\d>)?\[\s*\d+\.\d+\] ?")
_DUMP_STACK = ("CPU: ", "Hardware name: ", "Call Trace:", " ")  # dump_stack_lvl()'s lines


@attrs.frozen
class Driver:
    name: str
    module: type[KernelModule]
    cmdline: str
    files: tuple[str, ...]


def load_drivers(names: Sequence[str], plugin_path: Sequence[str] = ()) -> list[Driver]:
    """The drivers named, through the plugin mechanism; ValueError for one that cannot be
    compared (it declares no crash-log files)."""
    from ksim.plugins import load_plugins
    out = []
    for name, cls in zip(names, load_plugins(names, plugin_path)):
        if not cls.crash_log_files:
            raise ValueError(f"plugin {name!r} declares no crash_log_files, so ksim compare "
                             "cannot read its log back (docs/compare.md)")
        out.append(Driver(name, cls, cls.usual_cmdline, tuple(cls.crash_log_files)))
    return out


class _EarlyPanic(KernelModule):
    """A built-in module that panics at the first initcall level, before any driver's init."""

    name = "early_panic"
    initcall = "early"

    async def init(self) -> int:
        await panic("Fatal exception in early initcall")
        return 0


@attrs.define
class Run:
    """One (driver, fault, seed): the machine, the driver(s), what each boot left."""

    driver: Driver
    others: list[Driver]
    seed: int
    rng: random.Random
    machine: Machine | None = None
    crash_dmesg: str = ""  # the dmesg of the last boot that crashed
    # a later crash's dmesg whose Oops lines do not count as evidence for this one's
    distinct_from: str = ""
    region: tuple[int, int] | None = None  # the driver's log RAM in the last boot that crashed
    shown: dict[str, bytes] = attrs.Factory(dict)  # file -> bytes, on the reading boot
    dmesg: str = ""  # the reading boot's
    note: str = ""  # what the fault did on this seed, for the cell's why

    def new_machine(self, **kw: Any) -> Machine:
        self.machine = Machine(kw.pop("ram", RAM), seed=self.seed, **kw)
        return self.machine

    def cmdline(self, extra: str = "", base: str = BASE_CMDLINE, both: bool = False) -> str:
        drivers = [self.driver] + (self.others if both else [])
        return " ".join(p for p in [*(d.cmdline for d in drivers), base, extra] if p)

    def modules(self, both: bool = False) -> list[type[KernelModule]]:
        return [d.module for d in [self.driver] + (self.others if both else [])]

    async def crash(self, extra: str = "", *, initrd: int | None = None, both: bool = False,
                    before_oops: Callable[[Kernel], None] | None = None,
                    oops: str = OOPS) -> Kernel:
        """A boot that logs an error and oopses with headline ``oops`` (oops=panic: the Oops
        is the panic); ``before_oops(kernel)`` is called between the two."""
        assert self.machine is not None
        async with self.machine.boot(self.cmdline(extra, both=both), self.modules(both),
                                     initrd=initrd) as k:
            if k.outcome == "running":
                await printk(KERN_ERR + "compare: disk on fire (seed %d)\n", self.seed)
                if before_oops is not None:
                    before_oops(k)
                try:
                    await die(oops)
                except TaskKilled:  # without oops=panic (a fault's own command line)
                    pass
        self.crash_dmesg = k.dmesg()
        mod = k.module.instances.get(self.driver.name)
        self.region = mod.crash_log_region() if mod is not None else None
        return k

    async def read_back(self, extra: str = "", *, initrd: int | None = None,
                        both: bool = False, power: str | None = None,
                        before: Callable[[Kernel], Awaitable[None]] | None = None) -> None:
        """The next boot: (optionally do something first, then) read the driver's files."""
        assert self.machine is not None
        async with self.machine.boot(self.cmdline(extra, both=both), self.modules(both),
                                     initrd=initrd, power=power) as k:
            if k.outcome == "running" and before is not None:
                await before(k)
            if k.outcome == "running":
                self.shown = await _read_files(k, self.driver.files)
        self.dmesg = k.dmesg()


async def _read_files(k: Kernel, paths: Sequence[str], live: bool = True) -> dict[str, bytes]:
    """Every crash-log file (a directory: each file in it); a stopped kernel's (``live``
    false, a fault scenario's last boot) are read as a debugger would, with a time limit."""
    shown: dict[str, bytes] = {}
    for path in paths:
        names = k.vfs.listdir(path)
        files = [f"{path.rstrip('/')}/{n}" for n in names] if names else [path]
        for f in files:
            try:
                shown[f] = await read_file(k, f, live)
            except KernelError:
                continue
    return shown


def oops_lines(dmesg: str, *, cut: bool = False) -> list[str]:
    """The last Oops of a boot's dmesg: the message texts from the Oops headline to the line
    before the panic it led to (a dump taken at the Oops cannot hold that line); for a panic
    without an Oops, the panic line and the stack dump panic() prints right after it (to its
    ``</TASK>``: before the notifiers and kmsg_dump(), so every design can hold it).
    ``cut``: the dmesg stops where the machine was reset, so an Oops without its panic yet
    runs to the end."""
    texts = [_TIMESTAMP.sub("", line) for line in dmesg.splitlines()]
    end = max((i for i, t in enumerate(texts) if t.startswith(PANIC_LINE)), default=None)
    if end is None and cut:
        start = max((i for i, t in enumerate(texts) if t.startswith("BUG:")
                     or t.startswith("Oops:")), default=None)
        return [] if start is None else [t for t in texts[_headline(texts, start):] if t.strip()]
    if end is None:
        return []
    start = max((i for i, t in enumerate(texts[:end]) if t.startswith("BUG:")
                 or t.startswith("Oops:")), default=end)
    start = _headline(texts, start) if start < end else start
    if start == end:
        stop = next((i + 1 for i in range(end + 1, len(texts)) if texts[i] == " </TASK>"),
                    end + 1)
        # dump_stack()'s lines only: another CPU's messages stored meanwhile are not the panic's
        return [texts[end]] + [t for t in texts[end + 1:stop] if t.startswith(_DUMP_STACK)]
    return [t for t in texts[start:end] if t.strip()]


_PREAMBLE = ("BUG:", "#PF:", "PGD ")


def _headline(texts: Sequence[str], start: int) -> int:
    """Where the Oops at line ``start`` begins: a page fault's ``Oops:`` line follows its
    ``BUG: ...`` headline, ``#PF:`` lines and the page walk (page_fault_oops()), which belong
    to it -- the headline is what tells one Oops from another."""
    while start > 0 and texts[start - 1].startswith(_PREAMBLE) \
            and not texts[start].startswith("BUG:"):
        start -= 1
    return start


def _no_flags(shown: Mapping[str, bytes]) -> list[str]:
    return []


def classify(truth: Sequence[str], shown: dict[str, bytes],
             flagged: Callable[[Mapping[str, bytes]], list[str]] = _no_flags,
             ) -> tuple[str, str]:
    """(class, why) for the Oops lines ``truth`` against the files the next boot showed."""
    if not truth:
        return "lost", "the crashing boot printed no Oops"
    lines = set()
    for data in shown.values():
        for line in data.decode("utf-8", errors="replace").splitlines():
            lines.add(_TIMESTAMP.sub("", line).rstrip())
    found = sum(1 for t in truth if t.rstrip() in lines)
    flags = flagged(shown)  # the driver's own words (KernelModule.crash_log_flags)
    if found == len(truth):
        return "intact", f"all {found} lines of the Oops"
    if found == 0 and not flags:
        return "lost", f"none of the {len(truth)} lines of the Oops"
    why = f"{found} of {len(truth)} lines of the Oops"
    if flags:
        return "flagged", why + "; " + "; ".join(flags)
    return "silent", why + ", nothing says so"


# -- the faults -----------------------------------------------------------------------------
Fault = Callable[[Run], Awaitable[None]]
FAULTS: dict[str, Fault] = {}


def fault(name: str) -> Callable[[Fault], Fault]:
    def register(fn: Fault) -> Fault:
        FAULTS[name] = fn
        return fn
    return register


@fault("warm-reboot")
async def _warm_reboot(run: Run) -> None:
    """Crash, warm reset (RAM kept, QEMU's SeaBIOS), the same kernel and command line."""
    run.new_machine()
    await run.crash()
    await run.read_back()


@fault("next-boot-5k")
async def _next_boot_5k(run: Run) -> None:
    """Warm reset; the next boot prints 5 KiB (80 lines of 64 bytes) before the log is read."""
    run.new_machine()
    await run.crash()

    async def chatter(k: Kernel) -> None:
        for i in range(80):
            await printk(KERN_ERR + "next boot line %02d %s\n", i, "." * 45)
    await run.read_back(before=chatter)


@fault("second-panic")
async def _second_panic(run: Run) -> None:
    """Warm reset; the next boot oopses too before the log is read; the boot after reads.
    The last Oops is the second one."""
    run.new_machine()
    await run.crash()
    await run.crash()
    await run.read_back()


@fault("first-of-two-panics")
async def _first_of_two_panics(run: Run) -> None:
    """The boots of ``second-panic``, asking about the *first* Oops: is a crash that nobody
    read before the machine crashed again still there?  Its fault address differs from the
    second's, and only the lines the second Oops does not also print count as evidence."""
    run.new_machine()
    await run.crash(oops=FIRST_OOPS)
    first = run.crash_dmesg, run.region
    await run.crash()
    run.distinct_from = run.crash_dmesg
    run.crash_dmesg, run.region = first
    await run.read_back()


@fault("page-offset")
async def _page_offset(run: Run) -> None:
    """Warm reset into a kernel with another direct-map base (PAGE_OFFSET 0xffff880000000000,
    the pre-4.20 x86-64 one: another build of the kernel)."""
    run.new_machine()
    await run.crash()
    await run.read_back("ksim.page_offset=0xffff880000000000")


@fault("kaslr")
async def _kaslr(run: Run) -> None:
    """Both boots with KASLR (the default; the seed draws each boot's offsets)."""
    run.new_machine()
    base = BASE_CMDLINE.replace("nokaslr", "").strip()
    assert run.machine is not None
    async with run.machine.boot(run.cmdline(base=base), run.modules()) as k:
        if k.outcome == "running":
            await printk(KERN_ERR + "compare: disk on fire (seed %d)\n", run.seed)
            await die(OOPS)
    run.crash_dmesg = k.dmesg()
    async with run.machine.boot(run.cmdline(base=base), run.modules()) as k:
        if k.outcome == "running":
            run.shown = await _read_files(k, run.driver.files)
    run.dmesg = k.dmesg()


@fault("initramfs-growth")
async def _initramfs_growth(run: Run) -> None:
    """An initramfs of 30-80 MB (drawn per seed) at the crash, grown by 1-8 MB at the next boot
    (an update): every top-down early allocation moves down by the growth."""
    size = run.rng.randrange(30, 81) << 20
    run.new_machine(initrd=size)
    await run.crash()
    await run.read_back(initrd=size + (run.rng.randrange(1, 9) << 20))


@fault("mem-change")
async def _mem_change(run: Run) -> None:
    """The next boot is given ``mem=`` (288-480 MiB, drawn per seed): the top of memory moves."""
    run.new_machine()
    await run.crash()
    await run.read_back(f"mem={run.rng.randrange(288, 481, 16)}M")


BITFLIPS = 8


@fault("bitflips")
async def _bitflips(run: Run) -> None:
    """Warm reset; between the boots 8 bits flip in the driver's log RAM (its
    ``crash_log_region()``), at places and bits drawn per seed (decaying or disturbed DRAM)."""
    await _crash_flip_read(run, lambda size: (run.rng.randrange(size) * 8
                                              + run.rng.randrange(8) for _ in range(BITFLIPS)))


async def _crash_flip_read(run: Run, flips: Callable[[int], Iterable[int]]) -> None:
    """Crash, flip the bits ``flips(size)`` names (bit numbers from the start of the
    driver's log RAM, ``size`` bytes), warm reset, read back."""
    run.new_machine()
    await run.crash()
    assert run.machine is not None
    if run.region is not None:
        start, size = run.region
        mem = run.machine.mem
        for bit in flips(size):
            at = start + bit // 8
            mem.write(at, bytes([mem.read(at, 1)[0] ^ (1 << bit % 8)]))
    await run.read_back()


def _flipped_bits(rng: random.Random, bits: int, rate: float) -> Iterator[int]:
    """The bits of ``bits`` that flip when each flips alone with probability ``rate``: the
    gaps between flips are geometric, so the cost is the flips', not the region's."""
    if rate >= 1.0:
        yield from range(bits)
        return
    log_q = math.log1p(-rate)
    at = -1
    while True:
        at += 1 + int(math.log(1.0 - rng.random()) / log_q)
        if at >= bits:
            return
        yield at


def _bitflips_at(rate: float) -> Fault:
    async def fn(run: Run) -> None:
        await _crash_flip_read(run, lambda size: _flipped_bits(run.rng, size * 8, rate))
    fn.__doc__ = (f"Warm reset; between the boots each bit of the driver's log RAM "
                  f"(``crash_log_region()``) flips with probability {rate:g}, independently, "
                  "at places drawn per seed (decaying or disturbed DRAM).")
    return fn


class _WatchedMem(PhysMem):
    """PhysMem that notes every store into a watched range (``reset-while-printing``).

    The machine's PhysMem is switched to this class (no new slots, so ``__class__`` can be
    assigned) only for the boot that is watched: the hot store path of every other run keeps
    no check.  The watch itself lives in :data:`_WATCHES`, by the memory's id."""

    __slots__ = ()

    def _note(self, addr: int, data: bytes) -> None:
        w = _WATCHES.get(id(self))
        if w is None:
            return
        lo, hi = max(addr, w.start), min(addr + len(data), w.end)
        if lo < hi:
            w.stores.append((lo - w.start, data[lo - addr:hi - addr], w.kernel.printk.log.next_seq))

    def write(self, addr: int, data: Any) -> None:
        self._note(addr, bytes(data))
        super().write(addr, data)

    def memset(self, addr: int, byte: int, n: int) -> None:
        self._note(addr, bytes([byte]) * n)
        super().memset(addr, byte, n)

    def memcpy(self, dst: int, src: int, n: int) -> None:
        self._note(dst, self.read(src, n))
        super().memcpy(dst, src, n)


def _int_store(width: int) -> Callable[[_WatchedMem, int, int], None]:
    name = f"write_u{width * 8}"
    plain = getattr(PhysMem, name)

    def store(self: _WatchedMem, addr: int, value: int) -> None:
        self._note(addr, value.to_bytes(width, "little"))
        plain(self, addr, value)
    store.__name__ = name
    return store


for _width in (1, 2, 4, 8):
    setattr(_WatchedMem, f"write_u{_width * 8}", _int_store(_width))


@attrs.define
class _Watch:
    start: int
    end: int
    kernel: Kernel
    # (offset in the range, the bytes stored there, the log's next sequence number then)
    stores: list[tuple[int, bytes, int]] = attrs.Factory(list)


_WATCHES: dict[int, _Watch] = {}


@fault("reset-while-printing")
async def _reset_while_printing(run: Run) -> None:
    """A warm reset (RAM kept) at a random instant of the crash: just before one of the
    stores the driver makes into its log RAM (``crash_log_region()``) from the Oops on,
    drawn per seed uniformly among them, so a header updated by two stores can be torn.
    The last Oops is what the kernel's log held at that instant (lines the driver had not
    finished storing are missing); RAM outside the driver's region is left as the boot left
    it (only the driver reads it back)."""
    run.new_machine()
    assert run.machine is not None
    mem = run.machine.mem
    watch: list[_Watch] = []
    snapshot = b""

    def start_watching(k: Kernel) -> None:
        nonlocal snapshot
        mod = k.module.instances.get(run.driver.name)
        region = mod.crash_log_region() if mod is not None else None
        if region is None:
            return
        snapshot = mem.read(*region)
        watch.append(_Watch(region[0], region[0] + region[1], k))
        _WATCHES[id(mem)] = watch[0]
        mem.__class__ = _WatchedMem

    try:
        k = await run.crash(before_oops=start_watching)
    finally:
        _WATCHES.pop(id(mem), None)
        mem.__class__ = PhysMem
    if watch and watch[0].stores:
        w = watch[0]
        at = run.rng.randrange(len(w.stores))
        ram = bytearray(snapshot)
        for off, data, _ in w.stores[:at]:
            ram[off:off + len(data)] = data
        mem.write(w.start, ram)
        cut = w.stores[at][2]
        run.crash_dmesg = "".join(record_print_text(r) for r in k.printk.log if r.seq < cut)
        run.note = (f"reset before store {at + 1} of {len(w.stores)} into the driver's RAM "
                    f"(offset {w.stores[at][0]:#x}, {len(w.stores[at][1])} bytes)")
    else:
        run.note = "the driver stored nothing from the Oops on: reset at the end of the boot"
    await run.read_back()


def _firmware(profile: str, doc: str) -> Fault:
    async def fn(run: Run) -> None:
        run.new_machine(firmware=profile)
        await run.crash()
        await run.read_back()
    fn.__doc__ = doc
    return fn


fault("firmware-pc-bios")(_firmware(
    "pc-bios", "Warm reset on a PC BIOS, which clears RAM unless the warm-boot flag is set "
    "(Linux sets it only with reboot=warm)."))
fault("firmware-uefi")(_firmware(
    "uefi", "Warm reset on OVMF (UEFI): its boot-services regions are written at every reset."))
fault("firmware-ecc-scrub")(_firmware(
    "ecc-scrub", "Warm reset on firmware that scrubs RAM at every reset (ECC servers)."))


@fault("cold-boot")
async def _cold_boot(run: Run) -> None:
    """Crash, then a power cycle: the next boot finds cold RAM (seeded garbage)."""
    run.new_machine()
    await run.crash()
    await run.read_back(power="cold")


@fault("early-panic")
async def _early_panic(run: Run) -> None:
    """A clean boot, warm reset, then a boot that panics in an early initcall, before any
    driver's init ran; the boot after it reads.  The last Oops is the early panic."""
    run.new_machine()
    assert run.machine is not None
    async with run.machine.boot(run.cmdline(), run.modules()):
        await printk(KERN_ERR + "compare: a clean boot (seed %d)\n", run.seed)
    async with run.machine.boot(run.cmdline(), [_EarlyPanic, *run.modules()],
                                power="warm") as k:
        pass
    run.crash_dmesg = k.dmesg()
    await run.read_back(power="warm")


@fault("both-drivers")
async def _both_drivers(run: Run) -> None:
    """Every driver of the comparison loaded at once (each with its usual command line): a
    driver's panic notifier that restarts the machine (memconsole's reboot=1) runs before
    kmsg_dump(), so a dumper loaded beside it never runs.  Warm reset, read back."""
    run.new_machine()
    await run.crash(both=True)
    await run.read_back(both=True)


# -- faults from scenario files -------------------------------------------------------------
FAULT_DIR = Path(__file__).with_name("compare_faults")  # the built-in scenario templates
PLACEHOLDERS = ("{driver}", "{driver_cmdline}", "{driver_lock}")
SCENARIO_SUFFIXES = (".yaml", ".yml")


class FaultError(ValueError):
    """A fault that cannot be run: an unknown name, a bad parameter, a scenario file that is
    not a fault (the message is one line, located when it is about a file)."""


def _substitute(text: str, driver: Driver) -> str:
    lock = driver.module.crash_log_lock or ""
    return (text.replace("{driver_cmdline}", driver.cmdline)
            .replace("{driver_lock}", lock).replace("{driver}", driver.name))


class ScenarioFault:
    """A fault written as a scenario (docs/compare.md): its boots run as ``ksim run`` runs
    them, with the compared driver loaded on every boot and ``{driver}``,
    ``{driver_cmdline}`` and ``{driver_lock}`` replaced by its name, usual command line and
    lock; the last Oops is that of the last boot that panicked, and the last boot's
    crash-log files are what is shown."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text
        self.__doc__ = _description(text)  # what the JSON and the HTML report show
        self._scenarios: dict[str, Scenario] = {}  # per driver: a fault runs many seeds

    @classmethod
    def load(cls, path: str) -> ScenarioFault:
        try:
            text = read_scenario_file(Path(path))
        except ScenarioInvalid as exc:
            raise FaultError(str(exc.problems[0])) from None
        return cls(path, text)

    def scenario(self, driver: Driver) -> Scenario:
        """The scenario for ``driver``; :class:`FaultError` for a file that is not a fault."""
        if driver.name not in self._scenarios:
            self._scenarios[driver.name] = self._load(driver)
        return self._scenarios[driver.name]

    def _load(self, driver: Driver) -> Scenario:
        base = Path(self.path).resolve().parent
        try:
            scenarios = load_text(_substitute(self.text, driver), self.path, base)
        except ScenarioInvalid as exc:
            raise FaultError(str(exc.problems[0])) from None

        def bad(loc: Loc, message: str) -> FaultError:
            return FaultError(str(Problem(loc, message)))
        if len(scenarios) != 1:
            raise bad(scenarios[1].loc, "a fault is one scenario: this file holds "
                                        f"{len(scenarios)}")
        sc = scenarios[0]
        if sc.plugins or any(boot.plugins is not None for boot in sc.boots):
            raise bad(sc.loc, "plugins: ksim compare loads the compared driver on every boot "
                              "of a fault; leave plugins out")
        if sc.strategy.startswith("pct"):
            raise bad(sc.loc, "strategy: pct needs a measuring first run per scenario; a "
                              "fault uses random (the default) or rr")
        if "{driver_lock}" in self.text and not driver.module.crash_log_lock:
            raise bad(sc.loc, f"{{driver_lock}}: {driver.name} declares no crash_log_lock")
        # ksim's checkers (lockdep-lite, the console-driver rule) print their reports into
        # dmesg, which the real kernel would not: off, unless the file turns them on
        boots = tuple(b if b.checkers is not None else attrs.evolve(b, checkers=False)
                      for b in sc.boots)
        return attrs.evolve(sc, plugins=(PluginRef(name=driver.name),), verdict=None,
                            boots=boots)

    async def __call__(self, run: Run) -> None:
        sc = self.scenario(run.driver)
        result = Result(sc, run.seed)
        await _run(sc, run.seed, result, False, runner=_FaultRun(sc, run.seed, result, run))
        if result.status == ERROR:
            raise FaultError(f"{self.path}: {result.error}")
        # a step that could not do its job (a lock nobody took): the cell's why says so
        if result.failures:
            run.note = result.failures[0].title


class _FaultRun(ScenarioRun):
    """A fault scenario's run: the compared driver is every boot's plugin, and what the
    compare reads is kept as the boots end (the last boot's files before its RAM closes)."""

    def __init__(self, sc: Scenario, seed: int, result: Result, run: Run) -> None:
        super().__init__(sc, seed, result)
        self.compare = run

    def plugin_classes(self, refs: tuple[PluginRef, ...]) -> list[type]:
        return list(self.compare.modules())

    async def run_boot(self, boot: Boot) -> None:
        await super().run_boot(boot)
        k = self.prev_kernel
        if k.panicked:
            self.compare.crash_dmesg = k.dmesg()
        if boot.index == len(self.sc.boots):
            self.compare.shown = await _read_files(k, self.compare.driver.files, live=False)
            self.compare.dmesg = k.dmesg()


def _description(text: str) -> str:
    """A fault file's ``description:`` (the scenario's own, read with placeholders blanked),
    "" when the file does not load: its problem is reported when it runs."""
    blank = text.replace("{driver_cmdline}", "").replace("{driver_lock}", "lock") \
        .replace("{driver}", "driver")
    try:
        scenarios = load_text(blank, "<fault>")
    except ScenarioInvalid:
        return ""
    return " ".join(scenarios[0].description.split())


_FILE_FAULTS: dict[str, ScenarioFault] = {}


def resolve_fault(spec: str) -> Fault:
    """The fault ``spec`` names: a built-in name, ``bitflips:RATE`` or a scenario file
    (``PATH.yaml``); :class:`FaultError` otherwise."""
    if spec in FAULTS:
        return FAULTS[spec]
    name, colon, arg = spec.partition(":")
    if colon and name == "bitflips":
        try:
            rate = float(arg)
        except ValueError:
            rate = math.nan
        if not 0.0 < rate <= 1.0:  # also refuses nan
            raise FaultError(f"bitflips:{arg[:40]!r}: expected a flip probability per bit in "
                             "(0, 1], e.g. bitflips:1e-4")
        return _bitflips_at(rate)
    if spec.endswith(SCENARIO_SUFFIXES) or "/" in spec:
        # loaded once per process: each of its cells would otherwise parse the file again
        if spec not in _FILE_FAULTS:
            _FILE_FAULTS[spec] = ScenarioFault.load(spec)
        return _FILE_FAULTS[spec]
    from ksim.clitools import did_you_mean, shown
    raise FaultError(f"unknown fault {shown(spec)}{did_you_mean(spec, FAULTS)} (faults: "
                     f"{', '.join(FAULTS)}; or bitflips:RATE, or a scenario file PATH.yaml)")


# -- running --------------------------------------------------------------------------------
@attrs.frozen
class CellResult:
    driver: str
    fault: str
    seed: int
    verdict: str
    why: str


def run_cell(driver: Driver, others: Sequence[Driver], fault_name: str,
             seed: int) -> CellResult:
    """One seed of one (driver, fault), on virtual time."""
    run = Run(driver, list(others), seed, random.Random(f"compare {fault_name} {seed}"))
    fn = resolve_fault(fault_name)

    async def main() -> None:
        try:
            await fn(run)
        finally:
            if run.machine is not None:
                run.machine.close()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    if isinstance(fn, ScenarioFault) and not run.crash_dmesg:
        verdict, why = "not-reached", "no boot of the fault panicked"
    else:
        truth = oops_lines(run.crash_dmesg, cut=fn is _reset_while_printing)
        if run.distinct_from:
            later = set(oops_lines(run.distinct_from))
            truth = [t for t in truth if t not in later]
        verdict, why = classify(truth, run.shown, driver.module.crash_log_flags)
    return CellResult(driver.name, fault_name, seed, verdict,
                      why + (f" ({run.note})" if run.note else ""))


@attrs.frozen
class Cost:
    reserved: int  # bytes the page allocator lost to the driver
    printk_us: float  # wall clock per printk with the driver loaded
    baseline_us: float  # the same without it


_AVAILABLE = re.compile(r"Memory: (\d+)K/(\d+)K available")
COST_RECORDS = 300


def cost(driver: Driver) -> Cost:
    """The driver's cost columns, measured now."""
    out: dict[str, tuple[int, float]] = {}

    async def measure(key: str, cmdline: str, modules: list[type[KernelModule]]) -> None:
        m = Machine(RAM, seed=0)
        try:
            async with m.boot(cmdline, modules) as k:
                start = time.perf_counter()
                for i in range(COST_RECORDS):
                    await printk(KERN_ERR + "compare: cost record %d %s\n", i, "." * 40)
                wall = (time.perf_counter() - start) / COST_RECORDS
            found = _AVAILABLE.search(k.dmesg())
            out[key] = (int(found.group(1)) << 10 if found else 0, wall)
        finally:
            m.close()

    async def main() -> None:
        await measure("without", "nokaslr", [])
        await measure("with", driver.cmdline + " nokaslr", [driver.module])

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return Cost(reserved=out["without"][0] - out["with"][0], printk_us=out["with"][1] * 1e6,
                baseline_us=out["without"][1] * 1e6)


for _path in sorted(FAULT_DIR.glob("*.yaml")):  # the scenario-template faults, by file name
    FAULTS[_path.stem] = ScenarioFault.load(str(_path))

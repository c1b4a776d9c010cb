"""``ksim compare``: the same faults against several crash-log drivers, one table.

Each driver is a plugin that declares, through the plugin API (:class:`ksim.module.KernelModule`),
its ``usual_cmdline`` and the ``crash_log_files`` in which the next boot shows the saved log.
Each fault is a scenario template (:data:`FAULTS`, each function's docstring says what it does):
a machine, a crashing boot and the boots after it, built on the machine model (firmware
profiles, KASLR, the initramfs, ``mem=``, ``ksim.page_offset=``).  For every (driver, fault)
and seed, the last Oops the machine printed (its dmesg lines, from the Oops headline to
the panic it led to) is looked for in what the next boot shows:

* **intact**: every line of the Oops is there;
* **flagged**: some lines are missing or changed, and the driver said so (an ECC line with
  unrecoverable blocks, a record left compressed: ``.enc.z``);
* **silent**: some lines are missing or changed and nothing says so;
* **lost**: no line of the Oops is there.

The cost columns: the memory the driver takes from the page allocator (the ``Memory:`` line's
available figure without the driver minus with it, both booted ``nokaslr``) and the wall-clock
cost of one printk with the driver loaded (µs, measured in the same run; reported, never used
for a verdict).

Everything but the printk cost is deterministic per seed: a cell's command
(``ksim compare DRIVER --faults FAULT --seed N``) replays it alone.  The core loads drivers only
through :mod:`ksim.plugins`; it knows none by name.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs
import trio
import trio.testing

from ksim.errno import KernelError
from ksim.kernel import Kernel
from ksim.machine import Machine
from ksim.module import KernelModule
from ksim.panic import TaskKilled, die, panic
from ksim.printk import KERN_ERR, printk

__all__ = ["CLASSES", "FAULTS", "CellResult", "Driver", "classify", "cost", "load_drivers",
           "run_cell"]

CLASSES = ("intact", "flagged", "silent", "lost")
RAM = "512M"  # room for ramoops' usual region at 256 MiB; RAM is sparse
# panic=-1: restart at once after a panic (a driver without a reboot notifier needs it);
# oops=panic: the Oops is the crash
BASE_CMDLINE = "nokaslr panic=-1 oops=panic"
OOPS = "BUG: kernel NULL pointer dereference, address: 0000000000000008"
PANIC_LINE = "Kernel panic - not syncing"
_TIMESTAMP = re.compile(r"^(?:<\d>)?\[\s*\d+\.\d+\] ?")
_UNRECOVERABLE = re.compile(rb"ECC: \d+ Corrected bytes, ([1-9]\d*) unrecoverable blocks")


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
    region: tuple[int, int] | None = None  # the driver's log RAM in the last boot that crashed
    shown: dict[str, bytes] = attrs.Factory(dict)  # file -> bytes, on the reading boot
    dmesg: str = ""  # the reading boot's

    def new_machine(self, **kw: Any) -> Machine:
        self.machine = Machine(kw.pop("ram", RAM), seed=self.seed, **kw)
        return self.machine

    def cmdline(self, extra: str = "", base: str = BASE_CMDLINE, both: bool = False) -> str:
        drivers = [self.driver] + (self.others if both else [])
        return " ".join(p for p in [*(d.cmdline for d in drivers), base, extra] if p)

    def modules(self, both: bool = False) -> list[type[KernelModule]]:
        return [d.module for d in [self.driver] + (self.others if both else [])]

    async def crash(self, extra: str = "", *, initrd: int | None = None, both: bool = False,
                    before: Callable[[], Awaitable[None]] | None = None) -> None:
        """A boot that logs an error and oopses (oops=panic: the Oops is the panic)."""
        assert self.machine is not None
        async with self.machine.boot(self.cmdline(extra, both=both), self.modules(both),
                                     initrd=initrd) as k:
            if k.outcome == "running":
                if before is not None:
                    await before()
                await printk(KERN_ERR + "compare: disk on fire (seed %d)\n", self.seed)
                try:
                    await die(OOPS)
                except TaskKilled:  # without oops=panic (a fault's own command line)
                    pass
        self.crash_dmesg = k.dmesg()
        mod = k.module.instances.get(self.driver.name)
        self.region = mod.crash_log_region() if mod is not None else None

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


async def _read_files(k: Kernel, paths: Sequence[str]) -> dict[str, bytes]:
    shown: dict[str, bytes] = {}
    for path in paths:
        names = k.vfs.listdir(path)
        files = [f"{path.rstrip('/')}/{n}" for n in names] if names else [path]
        for f in files:
            try:
                shown[f] = await k.read_file(f)
            except KernelError:
                continue
    return shown


def oops_lines(dmesg: str) -> list[str]:
    """The last Oops of a boot's dmesg: the message texts from the Oops headline to the line
    before the panic it led to (a dump taken at the Oops cannot hold that line); for a panic
    without an Oops, the panic line."""
    texts = [_TIMESTAMP.sub("", line) for line in dmesg.splitlines()]
    end = max((i for i, t in enumerate(texts) if t.startswith(PANIC_LINE)), default=None)
    if end is None:
        return []
    start = max((i for i, t in enumerate(texts[:end]) if t.startswith("BUG:")
                 or t.startswith("Oops:")), default=end)
    stop = end + 1 if start == end else end
    return [t for t in texts[start:stop] if t.strip()]


def classify(truth: Sequence[str], shown: dict[str, bytes]) -> tuple[str, str]:
    """(class, why) for the Oops lines ``truth`` against the files the next boot showed."""
    if not truth:
        return "lost", "the crashing boot printed no Oops"
    lines = set()
    for data in shown.values():
        for line in data.decode("utf-8", errors="replace").splitlines():
            lines.add(_TIMESTAMP.sub("", line).rstrip())
    found = sum(1 for t in truth if t.rstrip() in lines)
    flags = [f"{name}: {m.group(0).decode()}" for name, data in shown.items()
             for m in [_UNRECOVERABLE.search(data)] if m]
    flags += [f"{name}: left compressed" for name in shown if name.endswith(".enc.z")]
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
    run.new_machine()
    await run.crash()
    assert run.machine is not None
    if run.region is not None:
        start, size = run.region
        mem = run.machine.mem
        for _ in range(BITFLIPS):
            at = start + run.rng.randrange(size)
            mem.write(at, bytes([mem.read(at, 1)[0] ^ (1 << run.rng.randrange(8))]))
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

    async def main() -> None:
        try:
            await FAULTS[fault_name](run)
        finally:
            if run.machine is not None:
                run.machine.close()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    verdict, why = classify(oops_lines(run.crash_dmesg), run.shown)
    return CellResult(driver.name, fault_name, seed, verdict, why)


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

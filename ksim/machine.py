"""The simulated machine: RAM that outlives a kernel, CPUs, a serial port, firmware, a boot loader
and a power switch.

A :class:`Machine` is booted many times; each boot is a :class:`~ksim.kernel.Kernel` living in
``async with machine.boot(...) as kernel``.  What carries over from one boot to the next is
exactly what carries over on hardware: the RAM, according to the power model and what runs
before the kernel —

* ``cold``: power was cut; RAM becomes seeded garbage (lazily, page by page);
* ``warm``: a reset; RAM is kept (M9), except what the firmware's POST writes (its profile,
  :mod:`ksim.firmware`: ``seabios`` by default, ``pc-bios``, ``uefi``, ``ecc-scrub``);
* then, at every boot, QEMU's loader copies the setup code, the command line, the compressed
  kernel and the initramfs (``initrd=SIZE``, :mod:`ksim.bootloader`), and the decompressor
  writes the kernel image where KASLR puts it (:mod:`ksim.kaslr`, :mod:`ksim.vmlinux`);
* the kernel's own early allocations and a ``memtest`` boot parameter overwrite more during the
  boot itself (see :mod:`ksim.setup`).

Each boot's randomness (KASLR, the firmware) is drawn from the machine seed and the boot's
number; with a RAM file the boot count lives in its journal, so the next ``ksim boot`` process
on the same file continues the sequence.  The first boot of a machine is cold, unless its RAM
file already existed: then the previous process's RAM is still there, and the boot is warm.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import trio

from ksim.bootloader import load_linux
from ksim.cpu import boot_random
from ksim.current import reset_current, set_current
from ksim.e820 import E820_TYPE_RAM, E820Entry
from ksim.firmware import FIRMWARE, FIRMWARE_NAMES, qemu_pc_below_4g
from ksim.kaslr import choose_random_location
from ksim.kernel import Kernel
from ksim.main import start_kernel
from ksim.memory import PhysMem
from ksim.module import KernelModule
from ksim.reboot import MachineStop
from ksim.units import parse_size
from ksim.vmlinux import IMAGE_NAMES, IMAGES, extract_kernel, zo_range

POWER_KINDS = ("cold", "warm")


class KernelDoesNotFit(ValueError):
    """The decompressed kernel needs RAM the machine lacks: a real PC resets before the kernel
    prints anything (the oracle's 64 MiB machine with Debian's kernel)."""


def _size(value: str | int, what: str) -> int:
    size = parse_size(value) if isinstance(value, str) else int(value)
    if size < 0:
        raise ValueError(f"{what} {value!r} is negative")
    return size


class Machine:
    """``Machine(ram="64M", cpus=1, ram_file=None, seed=0, firmware="seabios", initrd=0,
    kernel="ksim", pmu=False)``; use as a context manager or close().

    *firmware* names a profile of :data:`ksim.firmware.FIRMWARE`; *initrd* is the initramfs's
    size in bytes (or ``"40M"``), 0 for none; *kernel* names a :data:`ksim.vmlinux.IMAGES`
    build; *pmu* gives the CPUs a performance-monitoring unit, which the NMI watchdog's
    hard-lockup detector needs (QEMU under TCG, the machine ksim is calibrated against, has
    none; real x86 hardware has one).
    """

    def __init__(self, ram: str | int = "64M", cpus: int = 1,
                 ram_file: str | os.PathLike[str] | None = None, seed: int = 0, *,
                 numa: bool = True, serial_sink: Callable[[bytes], None] | None = None,
                 record_consoles: bool = False, firmware: str = "seabios",
                 initrd: str | int = 0, kernel: str = "ksim", pmu: bool = False) -> None:
        size = _size(ram, "RAM size")
        if cpus < 1:
            raise ValueError(f"a machine needs at least one CPU, not {cpus}")
        if firmware not in FIRMWARE:
            raise ValueError(f"unknown firmware {firmware!r}: one of {', '.join(FIRMWARE_NAMES)}")
        if kernel not in IMAGES:
            raise ValueError(f"unknown kernel {kernel!r}: one of {', '.join(IMAGE_NAMES)}")
        self.ram_size = size
        self.cpus = cpus
        self.seed = seed
        self.numa = numa
        # a performance-monitoring unit: what the NMI watchdog's hard-lockup detector needs
        # (QEMU's TCG, the oracle, has none; real x86 hardware has one)
        self.pmu = pmu
        self.firmware = FIRMWARE[firmware]
        self.image = IMAGES[kernel]
        self.initrd = _size(initrd, "initrd size")
        self.serial_sink = serial_sink
        self.record_consoles = record_consoles  # keep what each console receives (Console.received)
        existed = ram_file is not None and os.path.exists(ram_file)
        self.mem = PhysMem(size, ram_file=ram_file, seed=seed, below_4g=qemu_pc_below_4g(size))
        self.boot_count = self.mem.boots
        self._next_power = "warm" if existed else "cold"
        self.last_kernel: Kernel | None = None

    def close(self) -> None:
        self.mem.close()

    def __enter__(self) -> Machine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def power_cycle(self) -> None:
        """Cut the power: the next boot starts from cold RAM."""
        self._next_power = "cold"

    def _check_fit(self, e820: tuple[E820Entry, ...], base: int) -> None:
        image = self.image
        needs = [(base, base + image.needed_size), zo_range(image)]
        for start, end in needs:
            if not any(e.type == E820_TYPE_RAM and e.addr <= start and end <= e.addr + e.size
                       for e in e820):
                raise KernelDoesNotFit(
                    f"the {image.name} kernel needs RAM at {start:#x}-{end - 1:#x} to decompress, "
                    f"which this {self.ram_size >> 20} MiB machine lacks (a real PC resets before "
                    "the kernel prints anything)")

    @asynccontextmanager
    async def boot(self, cmdline: str = "", plugins: Iterable[type[KernelModule]] = (),
                   builtin: Iterable[str] | None = None, power: str | None = None,
                   initrd: str | int | None = None) -> AsyncIterator[Kernel]:
        """Boot a kernel; yields it once init runs (or once it stopped trying).

        ``plugins`` are the modules present on this boot; ``builtin`` names those built in
        (default: all of them), the rest can be loaded with ``insmod``.  ``power`` overrides
        how this boot starts: ``"cold"`` or ``"warm"`` (default: cold for a new machine,
        warm after a reboot).  ``initrd`` is this boot's initramfs size (default: the
        machine's).  The block runs as a shell task of the booted system; when it ends, or
        when the kernel stops (panic, reboot), every kernel thread is cancelled.
        """
        kind = power or self._next_power
        if kind not in POWER_KINDS:
            raise ValueError(f"power must be one of {POWER_KINDS}, not {kind!r}")
        size = self.initrd if initrd is None else _size(initrd, "initrd size")
        index = self.boot_count
        if kind == "cold":
            self.mem.cold_boot(self.seed * 1_000_003 + index)
        self.firmware.post(self.mem, warm=kind == "warm",
                           rng=boot_random(self.seed, index, "firmware"))
        bp = load_linux(self.mem, self.image, cmdline, size, self.firmware.e820(self.mem))
        kaslr = choose_random_location(bp, self.image, cmdline, self.seed, index)
        self._check_fit(bp.e820_table, kaslr.phys_base)
        extract_kernel(self.mem, self.image, kaslr.phys_base)
        self.boot_count += 1
        self.mem.record_boot(self.boot_count)
        self._next_power = "warm"
        plugins = list(plugins)
        names = {p.name for p in plugins} if builtin is None else set(builtin)
        kernel = Kernel(self, cmdline, kind, plugins, names, boot_params=bp, kaslr=kaslr,
                        boot_index=index)
        self.last_kernel = kernel

        stops: list[MachineStop] = []
        yielded = False
        token = set_current(kernel.idle_task)
        try:
            try:
                async with trio.open_nursery() as nursery:
                    kernel._nursery = nursery
                    kernel._clock = trio.lowlevel.current_clock()
                    kernel._t0 = kernel._clock.current_time()
                    await start_kernel(kernel)
                    set_current(kernel.new_task("sh"))
                    yielded = True
                    yield kernel
                    nursery.cancel_scope.cancel()  # the block is done: shut the kernel down
            except BaseExceptionGroup as group:
                _split_stops(group, stops)
            except MachineStop as stop:
                stops.append(stop)
            kernel._nursery = None
            self._finish(kernel, stops[0] if stops else None)
            if not yielded:
                yield kernel  # stopped before init ran: the caller can still read its log
        finally:
            reset_current(token)

    def _finish(self, kernel: Kernel, stop: MachineStop | None) -> None:
        kernel.outcome = "shutdown" if stop is None else stop.how
        kernel.outcome_detail = "" if stop is None else stop.detail
        kernel.init.system_state = kernel.outcome
        if kernel.outcome == "power_off":
            self._next_power = "cold"
        kernel.printk.flush_partial()


def _split_stops(group: BaseExceptionGroup, stops: list[MachineStop]) -> None:
    """Keep the MachineStops of a nursery's group; re-raise anything else, unwrapped if single.

    A test's ``assert`` inside ``async with machine.boot()`` should fail as an AssertionError,
    not as a group around one.
    """
    matched, rest = group.split(MachineStop)
    if matched is not None:
        stops.extend(exc for exc in exception_leaves(matched)
                     if isinstance(exc, MachineStop))
    if rest is not None:
        leaves = exception_leaves(rest)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise rest


def exception_leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or ``[exc]`` itself."""
    if not isinstance(exc, BaseExceptionGroup):
        return [exc]
    out: list[BaseException] = []
    for inner in exc.exceptions:
        out.extend(exception_leaves(inner))
    return out

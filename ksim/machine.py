"""The simulated machine: RAM that outlives a kernel, CPUs, a serial port and a power switch.

A :class:`Machine` is booted many times; each boot is a :class:`~ksim.kernel.Kernel` living in
``async with machine.boot(...) as kernel``.  What carries over from one boot to the next is
exactly what carries over on hardware: the RAM, according to the power model —

* ``warm``: a reset; RAM is kept as it was (the memconsole assumption, M9);
* ``cold``: power was cut; RAM becomes seeded garbage (lazily, page by page);
* a ``memtest`` boot parameter scrubs free RAM during the next boot (see :mod:`ksim.main`).

The first boot of a machine is cold, unless its RAM file already existed: then the previous
process's RAM is still there, and the boot is warm.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager

import trio

from ksim.current import reset_current, set_current
from ksim.kernel import Kernel
from ksim.main import start_kernel
from ksim.memory import PhysMem
from ksim.module import KernelModule
from ksim.reboot import MachineStop
from ksim.units import parse_size

POWER_KINDS = ("cold", "warm")


class Machine:
    """``Machine(ram="64M", cpus=1, ram_file=None, seed=0)``; use as a context manager or close()."""

    def __init__(self, ram: str | int = "64M", cpus: int = 1,
                 ram_file: str | os.PathLike[str] | None = None, seed: int = 0, *,
                 numa: bool = True, serial_sink: Callable[[bytes], None] | None = None,
                 record_consoles: bool = False) -> None:
        size = parse_size(ram) if isinstance(ram, str) else int(ram)
        if cpus < 1:
            raise ValueError(f"a machine needs at least one CPU, not {cpus}")
        self.ram_size = size
        self.cpus = cpus
        self.seed = seed
        self.numa = numa
        self.serial_sink = serial_sink
        self.record_consoles = record_consoles  # keep what each console receives (Console.received)
        existed = ram_file is not None and os.path.exists(ram_file)
        self.mem = PhysMem(size, ram_file=ram_file, seed=seed)
        self.boot_count = 0
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

    @asynccontextmanager
    async def boot(self, cmdline: str = "", plugins: Iterable[type[KernelModule]] = (),
                   builtin: Iterable[str] | None = None,
                   power: str | None = None) -> AsyncIterator[Kernel]:
        """Boot a kernel; yields it once init runs (or once it stopped trying).

        ``plugins`` are the modules present on this boot; ``builtin`` names those built in
        (default: all of them), the rest can be loaded with ``insmod``.  ``power`` overrides
        how this boot starts: ``"cold"`` or ``"warm"`` (default: cold for a new machine,
        warm after a reboot).  The block runs as a shell task of the booted system; when it
        ends, or when the kernel stops (panic, reboot), every kernel thread is cancelled.
        """
        kind = power or self._next_power
        if kind not in POWER_KINDS:
            raise ValueError(f"power must be one of {POWER_KINDS}, not {kind!r}")
        if kind == "cold":
            self.mem.cold_boot(self.seed * 1_000_003 + self.boot_count)
        self._next_power = "warm"
        plugins = list(plugins)
        names = {p.name for p in plugins} if builtin is None else set(builtin)
        kernel = Kernel(self, cmdline, kind, plugins, names)
        self.boot_count += 1
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

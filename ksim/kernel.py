"""One boot of a simulated machine: the kernel's state and lifetime.

A :class:`Kernel` is created by :meth:`ksim.machine.Machine.boot` and lives inside a trio
nursery: every kernel thread is a task of that nursery, so when the kernel stops (shutdown,
panic, reboot) every thread ends with it, and nothing outlives the ``async with`` block.
The boot sequence itself is in :mod:`ksim.main` (init/main.c).

A kernel *composes* the state of its subsystems, each defined by the module named after the
kernel file that owns it in Linux and written only there: ``printk`` (kernel/printk/printk.c),
``panic`` (kernel/panic.c), ``init`` (init/main.c), ``smp`` (kernel/smp.c), ``e820``,
``memtest``, ``kaslr``, ``memblock``, ``layout`` and ``setup`` (the memory map), ``module``
(kernel/module/main.c), ``locking`` and ``mm`` (the checkers' hooks), ``sched`` (the
scheduler backend), ``hangcheck`` and ``watchdog`` (kernel/watchdog.c's lockup detectors and
the simulator's early-boot hang detector), ``nmi`` (arch/x86/kernel/nmi.c's knobs),
``early_printk``, ``reboot`` (kernel/reboot.c).  What the machine handed the kernel is
``boot_params`` (the boot loader's), ``image`` (the build) and ``boot_index`` (the boot's
number, which seeds its randomness).  The attributes are declared (``__slots__``): an
undeclared one is an error, so no module can grow the kernel a field behind the others' backs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import trio

from ksim.bootloader import BootParams
from ksim.bug import Report
from ksim.cpu import CPU
from ksim.current import Task, maybe_current_kernel, reset_current, set_current
from ksim.e820 import E820State
from ksim.early_printk import EarlyPrintkState
from ksim.errno import ENOENT, KernelError
from ksim.fs import VFS
from ksim.init import bind_core_params
from ksim.kaslr import KaslrState
from ksim.locking.common import LockState
from ksim.main import COMMAND_LINE_SIZE, InitState
from ksim.memblock import Memblock
from ksim.memory import MemoryLayout, PhysMem
from ksim.memtest import MemtestState
from ksim.mm import MmState
from ksim.module_loader import ModuleState
from ksim.nmi import NmiState
from ksim.notifier import StandardChains
from ksim.panic import PanicState, driver_bug
from ksim.params import KernelParam
from ksim.printk import Printk
from ksim.reboot import RebootState
from ksim.sched import SchedCoreState, TrioBackend
from ksim.serial import SerialPorts
from ksim.setup import SetupState
from ksim.smp import SmpState
from ksim.vsprintf import Formatter
from ksim.vmlinux import KernelImage
from ksim.watchdog import HangCheck, WatchdogState

if TYPE_CHECKING:
    from ksim.machine import Machine
    from ksim.module import KernelModule
    from ksim.scheduler import Scheduler

__all__ = ["Kernel", "RELEASE"]

RELEASE = "6.1.0-ksim"


class _NoClock:
    """Before the boot starts its trio run: time zero."""

    @staticmethod
    def current_time() -> float:
        return 0.0


_NO_CLOCK = _NoClock()


class Kernel:
    """The state of one running (or stopped) simulated kernel."""

    __slots__ = ("machine", "mem", "seed", "boot_kind", "printk", "vsprintf", "serial",
                 "chains", "vfs", "reports", "panic", "init", "smp", "e820", "memtest", "kaslr",
                 "layout", "memblock", "module", "locking", "mm", "sched", "sched_core", "params",
                 "hangcheck",
                 "nmi", "boot_params", "image", "boot_index", "setup", "early_printk",
                 "watchdog", "reboot",
                 "_next_pid", "idle_task", "init_task", "outcome", "outcome_detail",
                 "_nursery", "_t0", "_clock", "work_ns")

    release = RELEASE

    def __init__(self, machine: Machine, cmdline: str, boot_kind: str,
                 modules: list[type[KernelModule]], builtin: set[str], *,
                 boot_params: BootParams | None = None, kaslr: KaslrState | None = None,
                 boot_index: int = 0) -> None:
        self.machine = machine
        self.mem: PhysMem = machine.mem
        self.seed = machine.seed
        self.boot_kind = boot_kind
        self.image: KernelImage = machine.image
        # what the boot loader left (None: a kernel that was never loaded, for unit tests)
        self.boot_params = boot_params or BootParams((), 0, len(cmdline), 0, 0, type_of_loader=0)
        self.boot_index = boot_index  # this boot's number on the machine: seeds its randomness
        self.setup = SetupState()
        self.vsprintf = Formatter(hash_key=machine.seed * 2654435761 + 1)
        self.printk = Printk(self.local_clock)
        self.printk.record = machine.record_consoles
        self.serial = SerialPorts(1, machine.serial_sink)
        self.chains = StandardChains()
        self.vfs = VFS()
        self.reports: list[Report] = []
        self.panic = PanicState()
        # copy_bootdata(): COMMAND_LINE_SIZE bytes from where the loader put the command line
        raw: bytes | str = cmdline
        if boot_params is not None and boot_params.cmd_line_ptr:
            raw = self.mem.read(boot_params.cmd_line_ptr, COMMAND_LINE_SIZE)
        self.init = InitState.from_command_line(raw, COMMAND_LINE_SIZE)  # P1
        self.smp = SmpState.for_machine(machine.cpus)
        self.e820 = E820State()
        self.memtest = MemtestState()
        self.kaslr = kaslr or KaslrState()
        self.layout: MemoryLayout | None = None  # set by setup_arch, once mem= is known
        self.memblock: Memblock | None = None
        self.module = ModuleState({cls.name: cls for cls in modules}, builtin)
        self.locking = LockState()
        self.mm = MmState(numa=machine.numa)
        self.sched: TrioBackend | Scheduler = TrioBackend(self)
        # Every kernel_param this boot knows: the core's, then built-in modules' (P5).
        self.params: list[KernelParam] = bind_core_params(self)
        self.hangcheck = HangCheck(self)
        self.nmi = NmiState()
        self.early_printk = EarlyPrintkState()
        self.watchdog = WatchdogState(nmi_watchdog_available=machine.pmu)
        self.reboot = RebootState()
        self.sched_core = SchedCoreState()
        self._next_pid = 0
        self.idle_task = self.new_task("swapper")  # "swapper/0" from sched_init() on
        self.init_task = self.idle_task  # pid 1 once rest_init() runs
        self.outcome: str = "running"
        self.outcome_detail = ""
        self._nursery: trio.Nursery | None = None
        self._t0 = 0.0
        self._clock: Any = _NO_CLOCK
        # Modelled CPU time: virtual time stands still while simulated CPUs compute, so the
        # scheduler adds a fixed cost per preemption point (see ksim.scheduler.POINT_NS).
        self.work_ns = 0

    # -- time and tasks ------------------------------------------------------------------------
    def local_clock(self) -> int:
        """Nanoseconds of virtual time since this boot started (printk's timestamp)."""
        return int((self._clock.current_time() - self._t0) * 1e9 + 0.5) + self.work_ns

    @property
    def cpus(self) -> list[CPU]:
        return self.smp.cpus

    def new_task(self, comm: str, cpu: int = 0) -> Task:
        """A task on ``cpu`` (taken modulo the CPUs brought up: ``maxcpus=``/``nr_cpus=``)."""
        task = Task(pid=self._next_pid, comm=comm,
                    cpu=self.smp.cpus[cpu % self.smp.nr_online], kernel=self)
        self._next_pid += 1
        return task

    def spawn_thread(self, fn: Callable[..., Awaitable[object]], *args: object, name: str,
                     cpu: int | None = None) -> Task:
        """``kthread_run``: a task of the kernel's nursery, with its own ``current``."""
        if self._nursery is None:
            raise RuntimeError("the kernel is not running")
        return self.sched.spawn(fn, *args, name=name, cpu=cpu or 0)

    def use_scheduler(self, sched: Scheduler) -> None:
        """Let the deterministic scheduler drive this kernel's threads from now on."""
        self.sched = sched

    # -- files ------------------------------------------------------------------------------
    @contextmanager
    def as_current(self) -> Iterator[None]:
        """Run code as this kernel's own when called from outside it.

        After a boot ended (a panic, say), its files are still read the way a debugger
        reads a dead kernel's memory: the handlers need *this* kernel as ``current``.
        """
        if maybe_current_kernel() is self:
            yield
            return
        token = set_current(self.idle_task)
        try:
            yield
        finally:
            reset_current(token)

    async def driver_bug(self, exc: BaseException, where: str) -> None:
        """A Python exception escaped driver code: :func:`ksim.panic.driver_bug` (the core
        modules that call drivers reach it through the kernel, below ksim.panic)."""
        await driver_bug(exc, where)

    async def read_file(self, path: str, pos: int = 0, count: int | None = None) -> bytes:
        with self.as_current():
            return await self.vfs.read(path, pos, count)

    async def unlink_file(self, path: str) -> None:
        with self.as_current():
            await self.vfs.unlink(path)

    def list_dir(self, path: str) -> list[str]:
        """The names under ``path``, sorted (``ls``); ENOENT if there are none."""
        names = self.vfs.listdir(path)
        if not names:
            raise KernelError(ENOENT, f"{path}: No such file or directory")
        return names

    async def write_file(self, path: str, data: str | bytes) -> int:
        with self.as_current():
            return await self.vfs.write(path, data.encode() if isinstance(data, str) else data)

    # -- results ----------------------------------------------------------------------------
    def dmesg(self) -> str:
        return self.printk.dmesg()

    @property
    def panic_message(self) -> str | None:
        return self.panic.panic_message

    @property
    def panicked(self) -> bool:
        return self.panic.panic_message is not None

    @property
    def rebooted(self) -> bool:
        return self.outcome == "restart"

    def serial_output(self, port: int = 0) -> str:
        return self.serial.output[port].decode(errors="replace")

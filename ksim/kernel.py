"""One boot of a simulated machine: the kernel's state and lifetime.

A :class:`Kernel` is created by :meth:`ksim.machine.Machine.boot` and lives inside a trio
nursery: every kernel thread is a task of that nursery, so when the kernel stops (shutdown,
panic, reboot) every thread ends with it, and nothing outlives the ``async with`` block.
The boot sequence itself is in :mod:`ksim.main` (init/main.c); this module holds what the
running kernel *is*: its log, consoles, notifier chains, files, modules and outcome.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import trio

from ksim.bug import Report
from ksim.console import ConsoleRegistry
from ksim.cpu import CPU
from ksim.current import Task, maybe_current_kernel, reset_current, set_current
from ksim.fs import VFS
from ksim.memblock import Memblock
from ksim.memory import MemoryLayout, PhysMem
from ksim.notifier import StandardChains
from ksim.params import KernelParam
from ksim.printk import Printk
from ksim.reboot import SYSTEM_BOOTING
from ksim.serial import SerialPorts
from ksim.vsprintf import Formatter

if TYPE_CHECKING:
    from ksim.machine import Machine
    from ksim.module import KernelModule
    from ksim.scheduler import Scheduler

RELEASE = "6.1.0-ksim"


class _NoClock:
    """Before the boot starts its trio run: time zero."""

    @staticmethod
    def current_time() -> float:
        return 0.0


_NO_CLOCK = _NoClock()
KERNEL_IMAGE_START = 0x100000  # 1 MiB, the classic CONFIG_PHYSICAL_START of small kernels
KERNEL_IMAGE_SIZE = 0x300000  # 3 MiB of text, data and bss


class Kernel:
    """The state of one running (or stopped) simulated kernel."""

    release = RELEASE

    def __init__(self, machine: Machine, cmdline: str, boot_kind: str,
                 modules: list[type[KernelModule]], builtin: set[str]) -> None:
        self.machine = machine
        self.mem: PhysMem = machine.mem
        self.seed = machine.seed
        self.boot_kind = boot_kind
        self.boot_command_line = cmdline[:2047]  # COMMAND_LINE_SIZE (P1)
        self.cpus = [CPU(i) for i in range(machine.cpus)]
        self.nr_cpu_ids = machine.cpus  # possible CPUs (nr_cpus=)
        self.nr_online = machine.cpus  # CPUs brought up at boot (maxcpus=)
        self.printk = Printk(self.local_clock, Formatter(hash_key=machine.seed * 2654435761 + 1))
        self.consoles = ConsoleRegistry(self.printk)
        self.consoles.record = machine.record_consoles
        self.serial = SerialPorts(1, machine.serial_sink)
        self.chains = StandardChains()
        self.vfs = VFS()
        self.reports: list[Report] = []
        self.taints = ""
        self.system_state = SYSTEM_BOOTING
        self.lock_observers: list[object] = []
        self.mem_observers: list[object] = []
        self.locks_seen: list[object] = []  # every lock acquired once: /proc/lock_stat
        # The lock_stat sysctl: collect wait/hold times (the deterministic scheduler turns it
        # on; outside it virtual time rarely moves while a lock is held).
        self.lock_stat = False
        self.sched: Scheduler | None = None  # a deterministic scheduler, when one drives threads
        self.dumpers: list[Callable[[str], Awaitable[None] | None]] = []
        # panic / oops state (K1, K2, K4)
        self.panic_timeout = 0
        self.panic_on_oops = False
        self.panic_message: str | None = None
        self.panic_depth = 0
        self.oops_count = 0
        self.oops_in_progress = 0
        # memory (M1..M8); the layout is fixed in setup_arch once mem= is known
        self.page_offset: int | None = None
        self.mem_limit: int | None = None
        self.memtest_patterns = 0
        self.numa = machine.numa
        self.layout: MemoryLayout | None = None
        self.memblock: Memblock | None = None
        # command line (P1..P19)
        self.kernel_params: list[KernelParam] = []
        self.setup_handlers: list[tuple[str, Callable[[str], object], str]] = []
        self.early_handlers: list[tuple[str, Callable[[str | None], object], str]] = []
        self.argv_init: list[str] = ["init"]
        self.envp_init: list[str] = ["HOME=/", "TERM=linux"]
        self.execute_command: str | None = None
        self.ramdisk_execute_command: str | None = None
        self.panic_later: str | None = None
        self.panic_param: str | None = None
        self.initcall_debug = False
        self.init_argv: list[str] = []
        self.init_envp: list[str] = []
        # modules: every plugin present on this boot, and those loaded (live)
        self.module_classes = {cls.name: cls for cls in modules}
        self.builtin = builtin
        self.modules: dict[str, KernelModule] = {}
        self.module_instances: dict[str, KernelModule] = {}
        self.loading_module: str | None = None  # whose init is running (owns new /proc files)
        # tasks
        self._next_pid = 0
        self.idle_task = self.new_task("swapper/0")
        self.init_task = self.idle_task  # pid 1 once rest_init() runs
        self.outcome: str = "running"
        self.outcome_detail = ""
        self._nursery: trio.Nursery | None = None
        self._t0 = 0.0
        self._clock: trio.abc.Clock = _NO_CLOCK
        # Modelled CPU time: virtual time stands still while simulated CPUs compute, so the
        # scheduler adds a fixed cost per preemption point (see ksim.scheduler.POINT_NS).
        self.work_ns = 0

    # -- time and tasks ------------------------------------------------------------------------
    def local_clock(self) -> int:
        """Nanoseconds of virtual time since this boot started (printk's timestamp)."""
        return int((self._clock.current_time() - self._t0) * 1e9 + 0.5) + self.work_ns

    def new_task(self, comm: str, cpu: int = 0) -> Task:
        """A task on ``cpu`` (taken modulo the CPUs brought up: ``maxcpus=``/``nr_cpus=``)."""
        task = Task(pid=self._next_pid, comm=comm, cpu=self.cpus[cpu % self.nr_online],
                    kernel=self)
        self._next_pid += 1
        return task

    def spawn_thread(self, fn: Callable[..., Awaitable[object]], *args: object, name: str,
                     cpu: int | None = None) -> Task:
        """``kthread_run``: a task of the kernel's nursery, with its own ``current``."""
        if self._nursery is None:
            raise RuntimeError("the kernel is not running")
        if self.sched is not None:
            return self.sched.spawn(fn, *args, name=name, cpu=cpu or 0).task
        task = self.new_task(name, cpu or 0)

        async def thread_main() -> None:
            token = set_current(task)
            try:
                await fn(*args)
            finally:
                reset_current(token)

        self._nursery.start_soon(thread_main, name=f"ksim:{name}")
        return task

    def stop_other_cpus(self) -> None:
        """``smp_send_stop``: other CPUs stop taking work (single CPU until SMP lands)."""
        for cpu in self.cpus[1:]:
            cpu.online = False

    # -- logging helpers ---------------------------------------------------------------------
    def log(self, level: int, text: str) -> None:
        """Store a line at ``level`` without printing now (for synchronous code paths)."""
        self.printk.vprintk_store(0, level, text + "\n", "T%d" % 0)

    def dmesg(self) -> str:
        return self.printk.dmesg()

    def reports_oops(self, title: str, lines: list[str]) -> None:
        self.reports.append(Report("oops", title, "\n".join(lines)))

    async def kmsg_dump(self, reason: str) -> None:
        """``kmsg_dump(reason)``: let registered dumpers save the log (R2a)."""
        for dumper in list(self.dumpers):
            result = dumper(reason)
            if result is not None:
                await result

    def module_names(self) -> list[str]:
        """Loadable modules currently loaded, as ``Modules linked in:`` lists them."""
        return [name for name, mod in self.modules.items() if not mod.builtin]

    def param(self, name: str) -> KernelParam:
        for kp in self.kernel_params:
            if kp.name == name:
                return kp
        raise KeyError(name)

    def params_changed(self) -> None:
        """Copy core parameter values to where the hot paths read them."""
        self.panic_timeout = self.param("panic").value
        self.initcall_debug = self.param("initcall_debug").value
        self.printk.printk_time = self.param("printk.time").value
        self.printk.ignore_loglevel = self.param("printk.ignore_loglevel").value

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

    async def read_file(self, path: str, pos: int = 0, count: int | None = None) -> bytes:
        with self.as_current():
            return await self.vfs.read(path, pos, count)

    async def write_file(self, path: str, data: str | bytes) -> int:
        with self.as_current():
            return await self.vfs.write(path, data.encode() if isinstance(data, str) else data)

    # -- results ----------------------------------------------------------------------------
    @property
    def panicked(self) -> bool:
        return self.panic_message is not None

    @property
    def rebooted(self) -> bool:
        return self.outcome == "restart"

    def serial_output(self, port: int = 0) -> str:
        return self.serial.output[port].decode(errors="replace")


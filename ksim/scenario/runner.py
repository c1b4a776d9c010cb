"""Running a scenario: a machine, its boots, their steps and expectations, on virtual time.

One scenario with one seed is one ``trio.run`` with an autojumping MockClock: nothing waits for
the wall clock, and a scenario that would sleep forever ends at its virtual ``timeout``.  A boot
with ``spawn`` or ``irq`` steps runs under the deterministic scheduler
(:mod:`ksim.scenario.concurrency`): the seed, not trio's run queue, fixes every interleaving.

What a run produces is a :class:`Result`: PASS, FAIL (expectations or steps that did not
hold, each with its location) or ERROR (ksim itself crashed: the exception and where; the
other scenarios go on).  A kernel *dying* is not an error: a panic ends the boot, an oops
kills the shell (the next step runs in a new one), a deadlock hangs the CPU (the boot's
outcome is ``hang``, as the core names a stuck machine); expectations then look at what it left.
"""

from __future__ import annotations

import random
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import attrs
import trio
import trio.testing

from ksim.bug import short_path
from ksim.current import set_current
from ksim.errno import EAGAIN, ENOENT, KernelError, errorcode
from ksim.harness import Checker, attach_checkers, detach_checkers
from ksim.locking import Deadlock
from ksim.machine import Machine, exception_leaves
from ksim.memory import RamFileError
from ksim.module_loader import insmod, rmmod, strerror
from ksim.notifier import (
    NOTIFY_BAD, NOTIFY_DONE, NOTIFY_OK, NOTIFY_STOP, NotifierBlock, atomic_notifier_chain_register,
)
from ksim.panic import TaskKilled, die, die_chain, panic, panic_notifier_list
from ksim.plugins import load_plugins
from ksim.printk import KERN_SOH, level_from_name, printk
from ksim.reboot import kernel_halt, kernel_power_off, kernel_restart, register_reboot_notifier
from ksim.scenario.concurrency import BootConcurrency, ConcurrencyError, boot_seed
from ksim.scenario.expect import Failure, Seen, check
from ksim.scenario.loader import ram_file_problem
from ksim.scenario.model import (
    Boot, CatStep, CorruptStep, ExpectStep, Expectation, InsmodStep, IrqStep, MachineSpec, NmiStep,
    NotifierStep, OopsStep, PanicStep, PluginRef, PrintkStep, ReadStep, RmmodStep, Scenario,
    SleepStep, SpawnStep, Step, SysRebootStep, WriteStep, corrupt_bytes, parse_duration,
    parse_priority,
)
from ksim.strategy import parse_strategy
from ksim.stress import FIRST_RUN_POINTS, LIVELOCK_FACTOR, MIN_BUDGET

PASS, FAIL, ERROR = "PASS", "FAIL", "ERROR"
READ_TIMEOUT = 1.0  # virtual seconds a read of a stopped kernel's file may block


@attrs.define
class Result:
    scenario: Scenario
    seed: int
    status: str = PASS
    failures: list[Failure] = attrs.Factory(list)
    error: str | None = None
    error_detail: list[str] = attrs.Factory(list)
    virtual: float = 0.0
    wall: float = 0.0
    log: list[str] = attrs.Factory(list)
    checks: int = 0
    observed: bool | None = None  # whether the verdict's observation held (None: not reached)
    observation: list[Failure] = attrs.Factory(list)  # why it did not hold
    schedules: dict[int, str] = attrs.Factory(dict)  # concurrent boot -> its schedule string

    @property
    def id(self) -> str:
        """A stable name of this (scenario, seed) item: ``FILE::NAME[seed=N]``."""
        return item_id(self.scenario, self.seed)

    @property
    def label(self) -> str:
        seeds = self.scenario.seeds
        return self.scenario.name + (f" [seed={self.seed}]" if len(seeds) > 1 else "")


def item_id(sc: Scenario, seed: int) -> str:
    return f"{sc.file}::{sc.name}[seed={seed}]"


# -- plugins ---------------------------------------------------------------------------------

_plugin_cache: dict[tuple[str, tuple[str, ...]], type] = {}


def _plugin_classes(refs: tuple[PluginRef, ...], path: tuple[str, ...]) -> list[type]:
    out = []
    for ref in refs:
        key = (ref.name, path)
        if key not in _plugin_cache:
            _plugin_cache[key] = load_plugins([ref.name], path)[0]
        out.append(_plugin_cache[key])
    return out


def _received(kernel, name: str) -> bytes | None:
    """What console ``name`` (``memconsole0``, or just ``memconsole``) was given this boot."""
    recorded = kernel.printk.recorded
    for con in recorded:
        if con.label == name:
            return bytes(con.received)
    for con in recorded:
        if con.name == name:
            return bytes(con.received)
    return None


# -- reading a stopped kernel ----------------------------------------------------------------

async def read_file(kernel, path: str, live: bool) -> bytes:
    """Read ``path``; a stopped kernel's file is read as a debugger would, with a time limit.

    File handlers reach their kernel through ``current``; Kernel.read_file binds it when
    called from outside (``Kernel.as_current``).  A handler blocked on a lock the dead
    kernel still holds gives up after READ_TIMEOUT virtual seconds.
    """
    if live:
        return await kernel.read_file(path)
    with trio.move_on_after(READ_TIMEOUT):
        return await kernel.read_file(path)
    raise KernelError(EAGAIN, f"{path}: the read blocked (on a lock the stopped kernel "
                              "holds?)")


# -- the steps, by type -------------------------------------------------------------------

_S = TypeVar("_S", bound=Step)
_Executor = Callable[[Any, Any, Any, str], Awaitable[None]]
_EXECUTORS: dict[type[Step], _Executor] = {}


def executes(cls: type[_S]) -> Callable[[_Executor], _Executor]:
    """Register the method that runs steps of type ``cls`` (one per step type)."""
    def register(fn: _Executor) -> _Executor:
        assert cls not in _EXECUTORS, f"two executors for {cls.__name__}"
        _EXECUTORS[cls] = fn
        return fn
    return register


# -- one boot --------------------------------------------------------------------------------

class _RamFileRefused(Exception):
    """The scenario's RAM file would be outside the places a scenario may write to."""


class _Stop(Exception):
    """A step could not do its job: a failure, and the boot's remaining steps go on."""


@attrs.define
class _BootRun:
    boot: Boot
    kernel: Any = None  # the boot's Kernel
    outcome: str = "running"
    step_index: int | None = None  # the step running when the kernel stopped
    finished: bool = False
    conc: BootConcurrency | None = None  # the scheduler and interrupt queue of spawn/irq steps


class ScenarioRun:
    def __init__(self, scenario: Scenario, seed: int, result: Result, *,
                 ram_files_anywhere: bool = False, lengths: dict[int, int] | None = None) -> None:
        self.sc = scenario
        self.seed = seed
        self.result = result
        self.ram_files_anywhere = ram_files_anywhere
        # PCT's k per concurrent boot (run_lengths), and the preemption points each one made
        self.lengths = lengths
        self.points: dict[int, int] = {}
        self.machine: Any = None  # the Machine, while run() runs
        self.prev_kernel: Any = None
        self.current_step: tuple[int, Step] | None = None
        self.current_boot = 0
        self.strategies: dict[int, Any] = {}  # boot -> the thread choices to use (ksim.shrink)

    def plugin_classes(self, refs: tuple[PluginRef, ...]) -> list[type]:
        """The module classes of a boot's plugins (``ksim compare`` gives its own drivers)."""
        return _plugin_classes(refs, self.sc.plugin_path)

    def fail(self, loc, title: str, *details: str) -> None:
        self.result.failures.append(Failure(loc, title, tuple(details)))

    def log(self, line: str) -> None:
        self.result.log.append(line)

    @contextmanager
    def ram_file(self) -> Iterator[str | None]:
        """Where this run's RAM lives: nowhere (anonymous), or a file and its ``.cold`` journal.

        Without ``keep_ram_file`` the file is made in a temporary folder and removed with its
        journal after the run; with it, the file stays in the scenario's folder (and an
        existing one makes the first boot warm).  A kept file must resolve inside that folder
        unless the caller lifts the confinement (``ksim run --ram-files-anywhere``).
        """
        spec = self.sc.machine
        if not spec.ram_file:
            yield None
            return
        name = spec.ram_file.replace("{seed}", str(self.seed))
        if spec.keep_ram_file:
            base = Path(self.sc.file).resolve().parent
            problem = None if self.ram_files_anywhere else ram_file_problem(
                spec.ram_file, self.seed, base)
            if problem is not None:
                raise _RamFileRefused(f"machine.ram_file: {problem}")
            path = base / name
            self.log(f"RAM file {path} (kept, with its journal {path.name}.cold)")
            yield str(path)
            return
        with tempfile.TemporaryDirectory(prefix="ksim-ram-") as folder:
            self.log(f"RAM file {Path(name).name} in a temporary folder (removed after the run;"
                     " keep_ram_file: true keeps it beside the scenario)")
            yield str(Path(folder) / Path(name).name)

    async def run(self) -> None:
        spec = self.sc.machine
        try:
            with self.ram_file() as ram_file:
                await self.run_machine(spec, ram_file)
        except _RamFileRefused as exc:
            self.fail(self.sc.loc, str(exc))

    async def run_machine(self, spec: MachineSpec, ram_file: str | None) -> None:
        self.machine = Machine(spec.ram, cpus=spec.cpus, ram_file=ram_file, seed=self.seed,
                               numa=spec.numa, record_consoles=self.sc.records_consoles(),
                               firmware=spec.firmware, initrd=spec.initrd, kernel=spec.kernel,
                               pmu=spec.pmu)
        try:
            with trio.move_on_after(self.sc.timeout) as scope:
                for boot in self.sc.boots:
                    await self.run_boot(boot)
            if scope.cancelled_caught:
                where = ""
                if self.current_step is not None:
                    number, step = self.current_step
                    where = f" in boot {number}, during {step.describe()} ({step.loc})"
                self.fail(self.sc.loc, f"the scenario ran out of virtual time{where}",
                          f"timeout: {self.sc.timeout:g} virtual seconds (raise it with "
                          "'timeout:')")
        finally:
            self.machine.close()

    async def run_boot(self, boot: Boot) -> None:
        machine = self.machine
        sc = self.sc
        refs = boot.plugins if boot.plugins is not None else sc.plugins
        classes = self.plugin_classes(refs)
        builtin = [r.name for r in refs if r.builtin]
        where = f"boot {boot.index}"
        self.current_boot = boot.index
        self.current_step = None
        for step in boot.before:
            self.current_step = (boot.index, step)
            try:
                self.corrupt(step, self.prev_kernel, where)  # type: ignore[arg-type]
            except _Stop as exc:
                self.fail(step.loc, f"{where}: {step.describe()}: {exc}")
        power = None if boot.index == 1 or boot.reboot is None else (
            "cold" if boot.reboot == "cold" else "warm")
        cmdline = boot.cmdline
        if boot.reboot == "memtest" and "memtest" not in cmdline.split():
            cmdline = (cmdline + " memtest").strip()
        run = _BootRun(boot)
        checkers: list[Checker] = []
        try:
            async with machine.boot(cmdline, classes, builtin=builtin, power=power,
                                    initrd=boot.initrd) as k:
                run.kernel = k
                if k.outcome == "running":
                    if boot.concurrent:
                        steps = (self.lengths or {}).get(boot.index)
                        run.conc = BootConcurrency(k, sc.strategy,
                                                   boot_seed(self.seed, boot.index),
                                                   steps=steps, budget=boot_budget(boot, steps),
                                                   inner=self.strategies.get(boot.index))
                    if boot.checked:
                        checkers = attach_checkers(k)
                    for i, step in enumerate(boot.steps):
                        if not step.concurrent:
                            # A sync point; what is in flight belongs to the steps before.
                            await self.settle(run, step, where)
                        run.step_index = i
                        self.current_step = (boot.index, step)
                        await self.execute(step, run, where)
                    if boot.steps:
                        await self.settle(run, boot.steps[-1], where)
                    run.step_index = None
                    run.finished = True
                    self.current_step = None
        except Deadlock:
            run.outcome = "hang"
            run.kernel = run.kernel or machine.last_kernel
        finally:
            detach_checkers(checkers)  # a debugger's reads of the stopped kernel are not checked
        k = run.kernel if run.kernel is not None else machine.last_kernel
        run.kernel = k
        if run.outcome != "hang":
            run.outcome = k.outcome
        self.log_boot(run, cmdline)
        if run.conc is not None:
            self.result.schedules[boot.index] = run.conc.sched.schedule_string()
            if run.conc.sched.verdict is None:  # a run cut short by a verdict measures nothing
                self.points[boot.index] = run.conc.sched.points
            self.log(f"{where}: {run.conc.summary()}")
        if not run.finished and boot.steps:
            self.report_unrun(run, where)
        for exp in boot.expect:
            self.current_step = None
            await self.expect(exp, run, where, live=False)
        verdict = sc.verdict
        if verdict is not None and boot.index == (verdict.boot or len(sc.boots)):
            await self.observe_verdict(run, where)
        self.prev_kernel = k

    async def observe_verdict(self, run: _BootRun, where: str) -> None:
        """Check the verdict's observation; it fails the run only if it contradicts the answer.

        ``holds`` is contradicted by one seed where the observation does not hold, ``fails``
        by one where it does; ``partly`` only by all the seeds together (the caller's tally).
        """
        verdict = self.sc.verdict
        assert verdict is not None
        failures: list[Failure] = []
        for exp in verdict.observe:
            failures += check(exp, await self.observe(exp, run, live=False), f"{where} (verdict)")
        self.result.observed = not failures
        self.result.observation = failures
        if verdict.answer == "holds" and failures:
            self.fail(verdict.loc, "verdict: the answer is 'holds' (on every seed), but on this "
                                   "seed the observation did not hold",
                      *[line for f in failures for line in f.render()])
        elif verdict.answer == "fails" and not failures:
            self.fail(verdict.loc, "verdict: the answer is 'fails' (on no seed), but on this "
                                   "seed the observation held")

    def log_boot(self, run: _BootRun, cmdline: str) -> None:
        k = run.kernel
        how = run.boot.reboot or ("cold" if run.boot.index == 1 else "(machine default)")
        detail = f", panic: {k.panic_message!r}" if k.panicked else ""
        self.log(f"boot {run.boot.index} ({k.boot_kind}, reboot: {how}) cmdline {cmdline!r}: "
                 f"{run.outcome}{detail}")

    def report_unrun(self, run: _BootRun, where: str) -> None:
        steps = run.boot.steps
        k = run.kernel
        why = f"the kernel stopped ({run.outcome}"
        why += f", panic: {k.panic_message!r})" if k.panicked else ")"
        if run.step_index is None:
            self.fail(steps[0].loc, f"{where}: {len(steps)} step(s) did not run: {why} "
                                    "before init ran")
            return
        rest = steps[run.step_index + 1:]
        if rest:
            stopper = steps[run.step_index]
            self.fail(rest[0].loc, f"{where}: {len(rest)} step(s) did not run: {why} during "
                                   f"{stopper.describe()} at {stopper.loc.line}:{stopper.loc.col}")

    # -- expectations ------------------------------------------------------------------------
    async def expect(self, exp: Expectation, run: _BootRun, where: str, live: bool) -> None:
        seen = await self.observe(exp, run, live)
        self.result.checks += 1
        self.result.failures.extend(check(exp, seen, where))

    async def observe(self, exp: Expectation, run: _BootRun, live: bool) -> Seen:
        k = run.kernel
        outcome = k.outcome if live else run.outcome
        context = [f"the boot's outcome: {outcome}"
                   + (f" (panic: {k.panic_message!r})" if k.panicked else "")]
        subject = exp.subject
        if subject == "file":
            try:
                data = await read_file(k, exp.target or "", live)
            except KernelError as exc:
                return Seen(error=f"cannot read {exp.target}: {strerror(exc.errno)}"
                                  + (f" ({exc.message})" if exc.errno not in (-ENOENT,) and
                                     exc.message and "No such" not in exc.message else ""),
                            exists=exc.errno != -ENOENT)
            return Seen(text=data.decode("utf-8", errors="replace"), data=data,
                        label=exp.target or "")
        if subject == "dmesg":
            return Seen(text=k.dmesg(), label="dmesg")
        if subject == "reads":
            reads = run.conc.reads.get(exp.target or "", []) if run.conc is not None else []
            # a read that ends inside a line says so, as diff does: a torn read is visible
            text = "".join("--- read %d by %s ---\n%s%s" % (
                i, name, data.decode("utf-8", errors="replace"),
                "" if data.endswith(b"\n") or not data else "\n\\ No newline at end of read\n")
                for i, (name, data) in enumerate(reads, 1))
            return Seen(text=text, label=f"reads of {exp.target}", items=list(reads),
                        context=[f"{len(reads)} read(s) of {exp.target} on this boot"])
        if subject == "console":
            name = exp.target or ""
            if name.startswith("ttyS") and name[4:].isdigit() or name == "ttyS":
                port = int(name[4:] or 0)
                if port < len(k.serial.output):
                    return Seen(text=k.serial_output(port), label=name)
                return Seen(text="", label=name, context=[f"the machine has no {name}"])
            received = _received(k, name)
            if received is None:
                names = [con.label for con in k.printk.recorded]
                return Seen(text="", label=f"console {name}", context=[
                    f"console {name!r} was never registered on this boot (consoles that "
                    f"were: {', '.join(names) or 'none'})"])
            return Seen(text=received.decode("utf-8", errors="replace"), data=received,
                        label=f"console {name}")
        if subject == "panicked":
            return Seen(scalar=k.panicked, context=context)
        if subject == "rebooted":
            return Seen(scalar=outcome == "restart", context=context)
        if subject == "outcome":
            return Seen(scalar=outcome, context=context)
        if subject == "reports":
            reports = [r for r in k.reports if exp.target in (None, "any", r.kind)]
            kinds = sorted({r.kind for r in k.reports})
            return Seen(text="\n".join(r.text for r in reports), items=list(reports),
                        label=f"{exp.target} reports",
                        context=[f"report kinds on this boot: {', '.join(kinds) or 'none'}"])
        raise AssertionError(subject)

    # -- steps -----------------------------------------------------------------------------
    async def settle(self, run: _BootRun, step: Step, where: str) -> None:
        """A sync point: wait for the threads and interrupts in flight (if any)."""
        if run.conc is None:
            return
        try:
            await run.conc.settle()
        except ConcurrencyError as exc:
            self.fail(step.loc, f"{where}: {step.describe()}: {exc}")

    async def execute(self, step: Step, run: _BootRun, where: str) -> None:
        try:
            await self._execute(step, run, where)
        except _Stop as exc:
            self.fail(step.loc, f"{where}: {step.describe()}: {exc}")

    def _errno_check(self, step, ret: int, what: str) -> None:
        expected = step.errno.upper().lstrip("-") if step.errno else None
        if ret >= 0:
            if expected:
                raise _Stop(f"expected to fail with {expected}, but it succeeded")
            return
        name = errorcode.get(-ret, str(ret))
        if expected is None:
            raise _Stop(f"{what}: {strerror(ret)} ({name})")
        if name != expected:
            raise _Stop(f"expected to fail with {expected}, failed with {name} "
                        f"({strerror(ret)})")

    async def _execute(self, step: Step, run: _BootRun, where: str) -> None:
        await _EXECUTORS[type(step)](self, step, run, where)

    @executes(PrintkStep)
    async def printk(self, step: PrintkStep, run: _BootRun, where: str) -> None:
        prefix = _level_prefix(step.level)
        end = "\n" if step.newline else ""
        for i in range(step.count):
            await printk(prefix + "%s" + end, step.text.replace("{i}", str(i)))

    @executes(SpawnStep)
    async def spawn(self, step: SpawnStep, run: _BootRun, where: str) -> None:
        assert run.conc is not None
        run.conc.spawn(step, _level_prefix(step.level))
        if step.wait:
            await self.settle(run, step, where)

    @executes(ReadStep)
    async def read(self, step: ReadStep, run: _BootRun, where: str) -> None:
        assert run.conc is not None
        run.conc.read(step)
        if step.wait:
            await self.settle(run, step, where)

    @executes(IrqStep)
    async def irq(self, step: IrqStep, run: _BootRun, where: str) -> None:
        assert run.conc is not None
        run.conc.queue_irqs(step, _level_prefix(step.level))
        if step.wait:
            await self.settle(run, step, where)

    @executes(NmiStep)
    async def nmi(self, step: NmiStep, run: _BootRun, where: str) -> None:
        assert run.conc is not None
        run.conc.queue_nmis(step)
        if step.wait:
            await self.settle(run, step, where)

    @executes(OopsStep)
    async def oops(self, step: OopsStep, run: _BootRun, where: str) -> None:
        k = run.kernel
        try:
            await die(step.message, step.err, function=step.function)
        except TaskKilled as exc:
            self.log(f"{where}: oops: {exc}; the next steps run in a new shell")
            set_current(k.new_task("sh"))

    @executes(PanicStep)
    async def panic(self, step: PanicStep, run: _BootRun, where: str) -> None:
        await panic("%s", step.message)

    @executes(WriteStep)
    async def write(self, step: WriteStep, run: _BootRun, where: str) -> None:
        k = run.kernel
        value = step.value
        text = ("1" if value else "0") if isinstance(value, bool) else str(value)
        try:
            await k.write_file(step.path, text + ("\n" if step.newline else ""))
            ret = 0
        except KernelError as exc:
            ret = exc.errno
        self._errno_check(step, ret, f"write {text!r} to {step.path}")

    @executes(CatStep)
    async def cat(self, step: CatStep, run: _BootRun, where: str) -> None:
        k = run.kernel
        try:
            data = await k.read_file(step.path)
            ret = 0
        except KernelError as exc:
            data, ret = b"", exc.errno
        self._errno_check(step, ret, f"cat {step.path}")
        if ret >= 0:
            text = data.decode("utf-8", errors="replace")
            self.log(f"{where}: cat {step.path} ({len(data)} bytes):")
            self.result.log.extend("  | " + line for line in text.splitlines())

    @executes(InsmodStep)
    async def insmod(self, step: InsmodStep, run: _BootRun, where: str) -> None:
        ret = await insmod(step.name, dict(step.params))
        self._errno_check(step, ret, f"insmod: ERROR: could not insert module {step.name}.ko")

    @executes(RmmodStep)
    async def rmmod(self, step: RmmodStep, run: _BootRun, where: str) -> None:
        ret = await rmmod(step.name)
        self._errno_check(step, ret, f"rmmod: ERROR: could not remove module {step.name}")

    @executes(CorruptStep)
    async def corrupt_step(self, step: CorruptStep, run: _BootRun, where: str) -> None:
        self.corrupt(step, run.kernel, where)

    @executes(SleepStep)
    async def sleep(self, step: SleepStep, run: _BootRun, where: str) -> None:
        await trio.sleep(parse_duration(step.duration))

    @executes(SysRebootStep)
    async def sys_reboot(self, step: SysRebootStep, run: _BootRun, where: str) -> None:
        if step.mode == "restart":
            await kernel_restart(step.cmd)
        elif step.mode == "halt":
            await kernel_halt()
        else:
            await kernel_power_off()

    @executes(ExpectStep)
    async def expect_now(self, step: ExpectStep, run: _BootRun, where: str) -> None:
        for exp in step.expectations:
            await self.expect(exp, run, f"{where}, {step.loc.line}:{step.loc.col}", live=True)

    @executes(NotifierStep)
    async def notifier(self, step: NotifierStep, run: _BootRun, where: str) -> None:
        code = {"done": NOTIFY_DONE, "ok": NOTIFY_OK, "stop": NOTIFY_STOP,
                "bad": NOTIFY_BAD}[step.returns]
        prefix = _level_prefix(step.level)

        async def call(nb, action, data):
            await printk(prefix + "notifier %s called (%s, action %d)\n", step.name,
                              step.chain, action)
            return code

        nb = NotifierBlock(notifier_call=call, priority=parse_priority(step.priority))
        if step.chain == "panic":
            ret = atomic_notifier_chain_register(panic_notifier_list, nb)
        elif step.chain == "die":
            ret = atomic_notifier_chain_register(die_chain, nb)
        else:
            ret = await register_reboot_notifier(nb)
        if ret:
            raise _Stop(f"registration returned {ret} ({errorcode.get(-ret, '?')})")

    def corrupt(self, step: CorruptStep, kernel, where: str) -> None:
        mem = self.machine.mem
        if step.reservation is not None:
            base, size = find_reservation(kernel, step.reservation)
            what = f"reservation {step.reservation} [{base:#x}-{base + size - 1:#x}]"
            if step.offset >= size:
                raise _Stop(f"offset {step.offset:#x} is beyond the {what} ({size} bytes)")
        else:
            assert step.address is not None  # the loader requires address or reservation
            base, size = step.address, mem.size - step.address
            what = f"address {base:#x}"
        start = base + step.offset
        length: int
        if step.bytes is not None:
            data = corrupt_bytes(step.bytes)
            length = len(data)
        else:
            length = step.length if step.length is not None else size - step.offset
        if start < 0 or start + length > mem.size:
            raise _Stop(f"[{start:#x}, {start + length:#x}) is outside the machine's RAM "
                        f"({mem.size:#x} bytes)")
        if step.bytes is not None:
            mem.write(start, data)
            self.log(f"{where}: corrupt {what}: wrote {data.hex(' ')} at {start:#x}")
        elif step.fill is not None:
            mem.memset(start, step.fill, length)
            self.log(f"{where}: corrupt {what}: filled {length} bytes at {start:#x} with "
                     f"{step.fill:#04x}")
        else:
            seed = self.seed if step.seed is None else step.seed
            rng = random.Random(f"{seed}:{step.loc.line}:{step.loc.col}")
            if step.flips > length * 8:  # type: ignore[operator]
                raise _Stop(f"{step.flips:,} flips in {length} bytes: at most {length * 8:,}, "
                            "the region's bits")
            bits = rng.sample(range(length * 8), step.flips)  # type: ignore[arg-type]
            flipped = []
            for bit in sorted(bits):
                addr = start + bit // 8
                byte = mem.read(addr, 1)[0] ^ (1 << (bit % 8))
                mem.write(addr, bytes([byte]))
                flipped.append(f"{addr:#x}.{bit % 8}")
            self.log(f"{where}: corrupt {what}: flipped bits {', '.join(flipped)}")


def _level_prefix(level: str | int | None) -> str:
    if level is None:
        return ""
    return KERN_SOH + str(level_from_name(level))


def find_reservation(kernel, name: str) -> tuple[int, int]:
    """The boot-memory region module ``name`` reserved on ``kernel``: (base, size).

    Found generically: the memblock reservation (other than page 0 and the kernel image) that
    contains an address the module instance holds, as a virtual (direct-map) or physical
    address.  Nothing here knows which attribute a given module uses.
    """
    if kernel is None:
        raise _Stop("there is no earlier boot")
    mod = kernel.module.instances.get(name)
    if mod is None:
        raise _Stop(f"no module '{name}' on boot {kernel.machine.boot_count}")
    memblock, layout = kernel.memblock, kernel.layout
    if memblock is None or layout is None:
        raise _Stop("the kernel stopped before it set up memory")
    # each reservation as made (memblock merges neighbours), not page 0 or the kernel image
    image = kernel.kaslr.phys_base
    regions = [r for r in memblock.requests() if not r.base <= 0 < r.end
               and not r.base <= image < r.end]
    values = [v for v in vars(mod).values() if isinstance(v, int) and not isinstance(v, bool)]
    # pointers first (what a driver keeps), then plain physical addresses
    candidates = [layout.virt_to_phys(v) for v in values if v >= layout.page_offset]
    candidates += [v for v in values if v < layout.page_offset]
    for addr in candidates:
        for r in regions:
            if r.base <= addr < r.end:
                return r.base, r.size
    raise _Stop(f"module '{name}' holds no address inside a boot-memory reservation (did its "
                "reservation fail on that boot?)")


def _crash_summary(exc: BaseException) -> list[str]:
    frames = traceback.extract_tb(exc.__traceback__)
    return [f"at {short_path(fr.filename)}:{fr.lineno} in {fr.name}" for fr in frames[-6:]]


def boot_budget(boot: Boot, steps: int | None) -> int:
    """The step budget of a concurrent boot (past it the boot ends with a livelock verdict):
    :data:`~ksim.stress.LIVELOCK_FACTOR` times its length when the length is known (PCT),
    else :data:`~ksim.stress.FIRST_RUN_POINTS` per message, read and interrupt its steps
    ask for, generously: no run of the library comes near either."""
    if steps:
        return max(LIVELOCK_FACTOR * steps, MIN_BUDGET)
    work = 1
    for step in boot.steps:
        if isinstance(step, (SpawnStep, ReadStep)):
            work += step.threads * step.count
        elif isinstance(step, (IrqStep, NmiStep)):
            work += step.count
    return max(FIRST_RUN_POINTS * work, 10 * MIN_BUDGET)


_RUN_LENGTHS: dict[str, dict[int, int]] = {}


def run_lengths(sc: Scenario) -> dict[int, int]:
    """PCT's k for each concurrent boot of ``sc``: the preemption points that boot made in a
    round-robin run with seed 0 (memoised per scenario and process, so it is the same k on
    every machine and for every seed, whichever seeds are run).  The first run keeps no RAM
    file and checks no verdict: it only measures."""
    key = repr(sc)
    if key not in _RUN_LENGTHS:
        first = attrs.evolve(sc, strategy="rr", verdict=None,
                             machine=attrs.evolve(sc.machine, keep_ram_file=False))
        points: dict[int, int] = {}
        trio.run(_run, first, 0, Result(first, 0), False, None, points,
                 clock=trio.testing.MockClock(autojump_threshold=0))
        _RUN_LENGTHS[key] = points
    return _RUN_LENGTHS[key]


async def _run(sc: Scenario, seed: int, result: Result, ram_files_anywhere: bool,
               lengths: dict[int, int] | None = None,
               points: dict[int, int] | None = None,
               strategies: dict[int, Any] | None = None,
               runner: ScenarioRun | None = None) -> None:
    """Run ``sc`` (with ``runner``, a :class:`ScenarioRun` made for it, if given: ``ksim
    compare``'s) into ``result``; a crash inside ksim is the result's ERROR."""
    t0 = trio.current_time()
    runner = runner or ScenarioRun(sc, seed, result, ram_files_anywhere=ram_files_anywhere,
                                   lengths=lengths)
    runner.strategies = strategies or {}
    if points is not None:
        runner.points = points
    try:
        await runner.run()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - a crash inside ksim is this scenario's ERROR
        leaves = [e for e in exception_leaves(exc) if not isinstance(e, trio.Cancelled)] or [exc]
        if any(isinstance(e, (KeyboardInterrupt, SystemExit)) for e in leaves):
            raise
        first = leaves[0]
        where = ""
        if runner.current_step is not None:
            number, step = runner.current_step
            where = f" in boot {number}, during {step.describe()} ({step.loc})"
        elif runner.current_boot:
            where = f" in boot {runner.current_boot}"
        result.status = ERROR
        if isinstance(first, RamFileError):
            # the machine could not be built as asked (disk full, permissions, a name the
            # filesystem refuses): the user's problem, said as such, not a crash of ksim
            result.error = f"the RAM file cannot be used{where}: {first}"
        else:
            result.error = f"ksim crashed{where}: {type(first).__name__}: {first}"
            result.error_detail = _crash_summary(first)
    finally:
        result.virtual = trio.current_time() - t0


def run_scenario(sc: Scenario, seed: int | None = None, *,
                 ram_files_anywhere: bool = False,
                 strategies: dict[int, Any] | None = None) -> Result:
    """Run one scenario with one seed (default: its first) and say how it went.

    ``ram_files_anywhere`` lets a kept RAM file live outside the scenario's folder;
    ``strategies`` gives concurrent boots (by number) their thread choices (a shrink).
    """
    seed = sc.seeds[0] if seed is None else seed
    result = Result(sc, seed)
    start = time.perf_counter()
    clock = trio.testing.MockClock(autojump_threshold=0)
    lengths = run_lengths(sc) if parse_strategy(sc.strategy)[0] == "pct" else None
    try:
        trio.run(_run, sc, seed, result, ram_files_anywhere, lengths, None, strategies,
                 clock=clock)
    finally:
        result.wall = time.perf_counter() - start
    if result.status != ERROR and result.failures:
        result.status = FAIL
    return result

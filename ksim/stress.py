"""``ksim stress``: many printk threads and interrupt handlers against the consoles.

One run = one seed: a machine with ``cpus`` CPUs boots with the plugins built in, the
deterministic scheduler (:mod:`ksim.scheduler`) takes over, ``threads`` kernel threads each
printk ``messages`` self-checking messages, exactly ``irq_printk`` interrupts printk from
hardirq context and exactly ``nmi`` NMIs from NMI context (where printk only stores, and the
output waits for irq_work), and a reader thread per plugin ``/proc`` file reads it while they
run.
Afterwards the invariants are checked:

* every message is intact: each line on every console and in every read is a whole kernel
  line (the kernel's own ``** N printk messages dropped **`` line included), and each stress
  message carries a checksum of its own text;
* each console and each read saw every thread's messages in order;
* the driver's own invariants hold (:meth:`ksim.module.KernelModule.check_invariants`);
* no checker fired (lockdep-lite, the data-race detector, BUGs), and the run neither
  deadlocked nor livelocked.

**Bounded work.**  A reader reads at most ``1 + (threads * messages + irq_printk) // 8`` times
(about twice what a random walk leaves it time for) and stops early once every writer is done,
so under PCT a top-priority reader cannot poll ahead of the writers forever.

**The run's length and the step budget.**  :func:`run_length` is the number of preemption points
of a first run of the same configuration (seed 0, round-robin, so it is the same on every machine
and for every seed).  It is PCT's ``k`` (its change points fall inside the run) and the span the
interrupts are spread over.  :func:`step_budget` is ``LIVELOCK_FACTOR`` (20) times that, at least
``MIN_BUDGET``: a run that passes it ends with a livelock verdict.  The first run itself runs under
``FIRST_RUN_POINTS`` (1,000) points per message and per read.

**Memory.**  Console output is checked as it is written (a streaming line checker on the serial
port's sink) and digested incrementally; what is kept per message is the kernel's own state.

A violation comes with the seed and the schedule string: :func:`replay_command` rebuilds the
exact command that reproduces it.
"""

from __future__ import annotations

import hashlib
import re
import shlex
import time
import zlib
from collections.abc import Sequence
from functools import lru_cache

import attrs

from ksim.errno import KernelError
from ksim.harness import attach_checkers, check_invariants, checker_violations, \
    install_scheduler
from ksim.machine import Machine
from ksim.module import KernelModule
from ksim.plugins import load_plugins
from ksim.printk import KERN_INFO, printk
from ksim.scheduler import Scheduler
from ksim.strategy import Replay, ReplayDivergence, RoundRobin, Strategy, decode_schedule, \
    make_strategy
from ksim.vclock import run_virtual

LINE = re.compile(r"^\[\s*\d+\.\d{6}\] (.*)$")
DROPPED = re.compile(r"^\*\* (\d+) printk messages dropped \*\*$")  # console_emit_next_record()
STRESS = re.compile(r"^stress (t\d{2,}|irq|nmi) (m\d{4,}) ([a-z]+) #([0-9a-f]{4})$")
READ_EVERY = 16  # a reader reads again after this many preemption points of its own
READ_SIZE = 1 << 20  # one read(2) of up to this many bytes: one consistent snapshot
READS_PER_MESSAGE = 8  # a reader reads at most once per this many messages (plus one)
MAX_PROBLEMS = 20  # per console or read: the first ones say enough
LIVELOCK_FACTOR = 20
MIN_BUDGET = 10_000
FIRST_RUN_POINTS = 1_000


class ReplayMismatch(ValueError):
    """``--replay`` with a schedule recorded under another configuration."""


@attrs.frozen
class StressConfig:
    plugins: tuple[str, ...] = ()
    plugin_path: tuple[str, ...] = ()
    cmdline: str = ""
    cpus: int = 4
    threads: int = 8
    messages: int = 200
    irq_printk: int = 0
    nmi: int = 0
    strategy: str = "random"
    ram: str = "64M"
    checkers: bool = True
    readers: bool = True


@attrs.frozen
class StressResult:
    seed: int
    violations: tuple[str, ...]
    schedule: str
    points: int
    switches: int
    irqs: int
    digest: str
    wall: float
    details: tuple[str, ...] = ()  # the lines of a deadlock or livelock verdict
    dropped: int = 0  # messages ttyS0 reported dropped (** N printk messages dropped **)
    nmis: int = 0

    @property
    def ok(self) -> bool:
        return not self.violations


def _payload(tag: str, index: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    n = zlib.crc32(f"{tag}{index}".encode())
    return "".join(letters[(n >> (i % 27)) % 26] for i in range(12 + n % 12))


# The /proc reader re-reads the whole ring and checks every line it sees against the message
# it must be; a bounded cache spares recomputing the same few hundred (the ring's worth) on
# every read, without keeping anything per message.
@lru_cache(maxsize=2048)
def stress_message(tag: str, index: int) -> str:
    body = "%s m%04d %s" % (tag, index, _payload(tag, index))
    return "stress %s #%04x" % (body, zlib.crc32(body.encode()) & 0xFFFF)


class LineCheck:
    """The line invariants over a stream of console text, fed in any chunks.

    Keeps the unfinished last line, each sender's last message index and the first
    ``MAX_PROBLEMS`` problems: nothing per message.
    """

    def __init__(self, where: str, *, partial_first: bool = False) -> None:
        self.where = where
        self.problems: list[str] = []
        self._skip_first = partial_first
        self._tail = ""
        self._number = 0
        self._last: dict[str, int] = {}
        self.dropped = 0  # messages the console said it dropped

    def _problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(f"{self.where}: {text}")

    def feed(self, text: str) -> None:
        lines = (self._tail + text).split("\n")
        self._tail = lines.pop()
        for line in lines:
            if self._skip_first:
                self._skip_first = False
                continue
            self._number += 1
            self._line(line)

    def finish(self) -> list[str]:
        if self._tail:
            self._problem(f"the last line is cut: {self._tail[-60:]!r}")
            self._tail = ""
        return self.problems

    def _line(self, line: str) -> None:
        kind, text, number = _classify(line)
        if kind == _SENDER:
            last = self._last.get(text, -1)
            if number <= last:
                self._problem(f"{text} m{number:04d} after m{last:04d}")
            self._last[text] = number
        elif kind == _DROPPED:
            self.dropped += number
        elif kind != _OTHER:
            self._problem(f"line {self._number} {kind}: {text!r}")


# What a console line is, whoever sees it: every line is parsed again by each /proc read that
# still holds it (the ring's worth), so the parse is cached by the line's text.
_SENDER, _DROPPED, _OTHER = "sender", "dropped", "other"


@lru_cache(maxsize=4096)
def _classify(line: str) -> tuple[str, str, int]:
    """A sender's message (_SENDER, its tag, its index), a drop count (_DROPPED, "", N),
    another line (_OTHER, "", 0), or a problem (its words, the text to quote, 0)."""
    m = LINE.match(line)
    if m is None:
        dropped = DROPPED.match(line)
        if dropped is None:
            return "is torn", line[:80], 0
        return _DROPPED, "", int(dropped.group(1))
    body = m.group(1)
    if not body.startswith("stress "):
        return _OTHER, "", 0
    s = STRESS.match(body)
    if s is None:
        return "is not a whole message", body[:80], 0
    tag, index = s.group(1), int(s.group(2)[1:])
    if tag == "irq":
        return _OTHER, "", 0
    if stress_message(tag, index) != body:
        return "is corrupted", body[:80], 0
    return _SENDER, tag, index


def check_text(text: str, where: str, *, partial_first: bool) -> list[str]:
    """Whole lines, intact stress messages, each sender's messages in order."""
    check = LineCheck(where, partial_first=partial_first)
    check.feed(text)
    return check.finish()


def max_reads(config: StressConfig) -> int:
    """How many times a reader reads, at most (see the module docstring)."""
    return 1 + (config.threads * config.messages + config.irq_printk + config.nmi) \
        // READS_PER_MESSAGE


_PLUGINS: dict[tuple[tuple[str, ...], tuple[str, ...]], list[type[KernelModule]]] = {}


def _plugins(config: StressConfig) -> list[type[KernelModule]]:
    """The configuration's plugin classes, found once per process: a seed is often shorter
    than the search of the plugin folders and entry points (2 ms), and a module once imported
    is the same class for every seed anyway."""
    key = (config.plugins, config.plugin_path)
    plugins = _PLUGINS.get(key)
    if plugins is None:
        plugins = _PLUGINS[key] = load_plugins(config.plugins, config.plugin_path)
    return plugins


_RUN_LENGTHS: dict[StressConfig, int] = {}


def run_length(config: StressConfig) -> int:
    """Preemption points of a round-robin run of ``config`` with seed 0 (memoised): the
    run's length k for PCT and for the interrupt plan (see the module docstring)."""
    key = attrs.evolve(config, strategy="rr")
    if key not in _RUN_LENGTHS:
        plugins = _plugins(config)
        # Checkers observe and add no preemption point: the first run goes without them.
        first = run_virtual(run_one, attrs.evolve(key, checkers=False), 0, plugins,
                            RoundRobin(), None, 0)
        _RUN_LENGTHS[key] = max(first.points, 1)
    return _RUN_LENGTHS[key]


def step_budget(config: StressConfig, length: int) -> int:
    return max(LIVELOCK_FACTOR * length, MIN_BUDGET)


def _first_run_budget(config: StressConfig) -> int:
    work = config.threads * config.messages + config.irq_printk + config.nmi + max_reads(config)
    return max(FIRST_RUN_POINTS * work, MIN_BUDGET)


async def run_one(config: StressConfig, seed: int, plugins: Sequence[type[KernelModule]],
                  strategy: Strategy | None = None, trace: object = None,
                  length: int | None = None) -> StressResult:
    """One seed (inside trio, on virtual time).  ``length`` is :func:`run_length` (0: this
    is the first run that measures it)."""
    started = time.perf_counter()
    digest = hashlib.blake2b(digest_size=8)
    serial = LineCheck("ttyS0")

    def sink(data: bytes) -> None:
        digest.update(data)
        serial.feed(data.decode(errors="replace"))

    machine = Machine(config.ram, cpus=config.cpus, seed=seed, serial_sink=sink)
    violations: list[str] = []
    details: list[str] = []
    sched: Scheduler | None = None
    crashed = False
    try:
        try:
            async with machine.boot(config.cmdline, list(plugins)) as kernel:
                if kernel.outcome != "running":
                    violations.append(f"the boot did not complete: {kernel.outcome} "
                                      f"{kernel.panic_message or ''}".rstrip())
                else:
                    if config.checkers:
                        attach_checkers(kernel)
                    if strategy is None:
                        strategy = make_strategy(config.strategy, seed, irqs=config.irq_printk,
                                                 nmis=config.nmi, steps=length)

                    async def irq_handler(number: int, cpu: int) -> None:
                        await printk(KERN_INFO + "%s\n", stress_message("irq", number))

                    async def nmi_handler(number: int, cpu: int) -> None:
                        # a claimed NMI that reports, as nmi_cpu_backtrace() does
                        await printk(KERN_INFO + "%s\n", stress_message("nmi", number))

                    sched = install_scheduler(kernel, strategy, irq_budget=config.irq_printk,
                                              irq_handler=irq_handler, trace=trace)
                    sched.nmi_budget = config.nmi
                    sched.nmi_handler = nmi_handler
                    if length:
                        sched.step_budget = step_budget(config, length)
                        sched.budget_note = (f"{LIVELOCK_FACTOR} x the {length} points of this "
                                             "configuration's first (round-robin) run, at "
                                             f"least {MIN_BUDGET}")
                    else:
                        sched.step_budget = _first_run_budget(config)
                        sched.budget_note = (f"{FIRST_RUN_POINTS} points per message and per "
                                             "read (the first, round-robin run)")
                    await _run_threads(kernel, sched, config, violations)
        except ReplayDivergence as exc:
            raise ReplayMismatch(str(exc)) from None
        except Exception as exc:  # noqa: BLE001 - a seed that crashes is a failing seed
            if machine.last_kernel is None:
                raise
            crashed = True
            violations.append(f"the run raised {type(exc).__name__}: {str(exc)[:200]} (a bug in "
                              "a plugin or in ksim)")
            details += _frames(exc)
            kernel = machine.last_kernel
        violations += await _findings(kernel, sched, serial, details, crashed)
        digest.update(kernel.dmesg().encode())
    finally:
        machine.close()
    return StressResult(seed, tuple(dict.fromkeys(violations)),
                        sched.schedule_string() if sched else "",
                        sched.points if sched else 0, sched.switches if sched else 0,
                        sched.irqs_delivered if sched else 0, digest.hexdigest(),
                        time.perf_counter() - started, tuple(details), serial.dropped,
                        sched.nmis_delivered if sched else 0)


async def _findings(kernel, sched: Scheduler | None, serial: LineCheck, details: list[str],
                    crashed: bool) -> list[str]:
    """What the scheduler, the checkers, the console stream and the drivers found (while the
    machine's RAM is still mapped: the drivers' invariants read it)."""
    found: list[str] = []
    verdict = sched.verdict if sched is not None else None
    if verdict:
        found.append(verdict)
        details += next((r.text.splitlines()[1:] for r in kernel.reports if r.title == verdict),
                        [])
    found += [v for v in checker_violations(kernel) if verdict is None or not v.endswith(verdict)]
    found += serial.finish()
    if kernel.outcome in ("shutdown", "running") and not crashed:
        found += await check_invariants(kernel)
    return found


def _frames(exc: BaseException) -> list[str]:
    import traceback
    frames = traceback.extract_tb(exc.__traceback__)[-4:]
    return [f" at {f.filename}:{f.lineno} in {f.name}" for f in frames]


async def _run_threads(kernel, sched: Scheduler, config: StressConfig,
                       violations: list[str]) -> None:
    writers_done = {"n": 0}
    reads_allowed = max_reads(config)

    async def writer(tid: int) -> None:
        tag = "t%02d" % tid
        for index in range(config.messages):
            await printk(KERN_INFO + "%s\n", stress_message(tag, index))
        writers_done["n"] += 1

    async def reader(path: str) -> None:
        reads = 0
        while reads < reads_allowed and (writers_done["n"] < config.threads or reads == 0):
            try:
                data = await kernel.read_file(path, 0, READ_SIZE)  # one read(2): a snapshot
            except KernelError as exc:
                violations.append(f"{path}: read failed: {exc}")
                return
            reads += 1
            violations.extend(check_text(data.decode(errors="replace"), f"{path} (read {reads})",
                                         partial_first=True))
            for _ in range(READ_EVERY):
                await sched.preempt_point()

    for tid in range(config.threads):
        kernel.spawn_thread(writer, tid, name="stress/%d" % tid, cpu=tid % config.cpus)
    if config.readers:
        for index, path in enumerate(p for p in kernel.vfs.paths()
                                     if kernel.vfs.lookup(p).owner_module):
            kernel.spawn_thread(reader, path, name="reader/%d" % index,
                                cpu=(config.cpus - 1 - index) % config.cpus)
    await sched.join()
    await _deliver_the_rest(kernel, sched, config, violations)


async def _deliver_the_rest(kernel, sched: Scheduler, config: StressConfig,
                            violations: list[str]) -> None:
    """``--irq-printk N`` and ``--nmi N`` mean N: interrupts and NMIs the run ended before
    raising are raised now, in turn over the CPUs, and each CPU's pending ones (and the
    irq_work that prints what its NMIs stored) are taken by its idle task."""
    ncpus = len(sched.pending_irqs)
    for i in range(sched.irq_budget):
        sched.pending_irqs[i % ncpus] += 1
    sched.irq_budget = 0
    for i in range(sched.nmi_budget):
        sched.raise_nmi(i % ncpus)
    sched.nmi_budget = 0
    for cpu_id in range(ncpus):
        pending = sched.pending_irqs[cpu_id] + len(sched.pending_nmis[cpu_id])
        if not pending and not sched.pending_core_irqs[cpu_id]:
            continue

        async def idle(cpu_id: int = cpu_id, pending: int = pending) -> None:
            for _ in range(pending + 1):  # the last point takes the NMIs' irq_work
                await sched.preempt_point()

        kernel.spawn_thread(idle, name=f"swapper/{cpu_id}", cpu=cpu_id)
        await sched.join()
        if sched.pending_irqs[cpu_id]:
            violations.append(f"{sched.pending_irqs[cpu_id]} interrupt(s) raised on CPU "
                              f"{cpu_id} were never handled: its interrupts stay disabled")
            sched.pending_irqs[cpu_id] = 0


def run_seed(config: StressConfig, seed: int, replay: str | None = None,
             trace: object = None) -> StressResult:
    """One seed in its own trio run (the unit of work of ``-j``)."""
    plugins = _plugins(config)
    length = run_length(config)
    strategy = None
    if replay:
        # Past the schedule's end the seed's own strategy goes on (ksim.strategy.Replay).
        strategy = Replay(decode_schedule(replay),
                          then=make_strategy(config.strategy, seed, irqs=config.irq_printk,
                                             nmis=config.nmi, steps=length))
    return run_virtual(run_one, config, seed, plugins, strategy, trace, length)


def replay_command(config: StressConfig, result: StressResult) -> str:
    return stress_command(config, result.seed, result.schedule)


def stress_command(config: StressConfig, seed: int, schedule: str | None = None) -> str:
    """The ``ksim stress`` command that runs ``seed`` of ``config`` (replaying ``schedule``)."""
    words = ["ksim", "stress"]
    for name in config.plugins:
        words += ["--plugin", name]
    for path in config.plugin_path:
        words += ["--plugin-path", path]
    if config.cmdline:
        words += ["--cmdline", config.cmdline]
    words += ["--cpus", str(config.cpus), "--threads", str(config.threads),
              "--messages", str(config.messages)]
    if config.irq_printk:
        words += ["--irq-printk", str(config.irq_printk)]
    if config.nmi:
        words += ["--nmi", str(config.nmi)]
    words += ["--seed", str(seed), "--strategy", config.strategy]
    if schedule:
        words += ["--replay", schedule]
    return shlex.join(words)

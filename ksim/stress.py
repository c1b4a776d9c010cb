"""``ksim stress``: many printk threads and interrupt handlers against the consoles.

One run = one seed: a machine with ``cpus`` CPUs boots with the plugins built in, the
deterministic scheduler (:mod:`ksim.scheduler`) takes over, ``threads`` kernel threads each
printk ``messages`` self-checking messages, ``irq_printk`` interrupts printk from hardirq
context, and a reader thread per plugin ``/proc`` file reads it while they run.  Afterwards
the invariants are checked:

* every message is intact: each line on every console and in every read is a whole kernel
  line, and each stress message carries a checksum of its own text;
* each console and each read saw every thread's messages in order;
* the driver's own invariants hold (:meth:`ksim.module.KernelModule.check_invariants`);
* no checker fired (lockdep-lite, the data-race detector, BUGs), and the run did not
  deadlock.

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

import attrs
import trio
import trio.testing

from ksim.errno import KernelError
from ksim.harness import attach_checkers, check_invariants, checker_violations, \
    install_scheduler
from ksim.machine import Machine
from ksim.module import KernelModule
from ksim.plugins import load_plugins
from ksim.printk import KERN_INFO, printk
from ksim.scheduler import Scheduler
from ksim.strategy import Replay, Strategy, decode_schedule, make_strategy

LINE = re.compile(r"^\[\s*\d+\.\d{6}\] (.*)$")
STRESS = re.compile(r"^stress (t\d{2,}|irq) (m\d{4,}) ([a-z]+) #([0-9a-f]{4})$")
READ_EVERY = 16  # a reader reads again after this many preemption points of its own
READ_SIZE = 1 << 20  # one read(2) of up to this many bytes: one consistent snapshot


@attrs.frozen
class StressConfig:
    plugins: tuple[str, ...] = ()
    plugin_path: tuple[str, ...] = ()
    cmdline: str = ""
    cpus: int = 4
    threads: int = 8
    messages: int = 200
    irq_printk: int = 0
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

    @property
    def ok(self) -> bool:
        return not self.violations


def _payload(tag: str, index: int) -> str:
    letters = "abcdefghijklmnopqrstuvwxyz"
    n = zlib.crc32(f"{tag}{index}".encode())
    return "".join(letters[(n >> (i % 27)) % 26] for i in range(12 + n % 12))


def stress_message(tag: str, index: int) -> str:
    body = "%s m%04d %s" % (tag, index, _payload(tag, index))
    return "stress %s #%04x" % (body, zlib.crc32(body.encode()) & 0xFFFF)


def check_text(text: str, where: str, *, partial_first: bool) -> list[str]:
    """Whole lines, intact stress messages, each sender's messages in order."""
    problems: list[str] = []
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        problems.append(f"{where}: the last line is cut: {lines[-1][-60:]!r}")
        lines.pop()
    if partial_first and lines:
        lines.pop(0)
    last: dict[str, int] = {}
    for number, line in enumerate(lines, 1):
        m = LINE.match(line)
        if m is None:
            problems.append(f"{where}: line {number} is torn: {line[:80]!r}")
            continue
        body = m.group(1)
        if not body.startswith("stress "):
            continue
        s = STRESS.match(body)
        if s is None:
            problems.append(f"{where}: line {number} is not a whole message: {body[:80]!r}")
            continue
        tag, index = s.group(1), int(s.group(2)[1:])
        if tag != "irq" and stress_message(tag, index) != body:
            problems.append(f"{where}: line {number} is corrupted: {body[:80]!r}")
            continue
        if tag != "irq":
            if index <= last.get(tag, -1):
                problems.append(f"{where}: {tag} m{index:04d} after m{last[tag]:04d}")
            last[tag] = index
    return problems[:20]


async def run_one(config: StressConfig, seed: int, plugins: Sequence[type[KernelModule]],
                  strategy: Strategy | None = None, trace: object = None) -> StressResult:
    """One seed (inside trio, on a MockClock)."""
    started = time.perf_counter()
    machine = Machine(config.ram, cpus=config.cpus, seed=seed)
    violations: list[str] = []
    sched: Scheduler | None = None
    try:
        async with machine.boot(config.cmdline, list(plugins)) as kernel:
            if kernel.outcome != "running":
                violations.append(f"the boot did not complete: {kernel.outcome} "
                                  f"{kernel.panic_message or ''}".rstrip())
            else:
                if config.checkers:
                    attach_checkers(kernel)
                if strategy is None:
                    # Raise the interrupts over roughly the first half of the run.
                    points = max(config.threads * config.messages * 6, 1)
                    rate = min(2 * config.irq_printk / points, 0.5)
                    strategy = make_strategy(config.strategy, seed, irq_rate=rate)

                async def irq_handler(number: int, cpu: int) -> None:
                    await printk(KERN_INFO + "%s\n", stress_message("irq", number))

                sched = install_scheduler(kernel, strategy, irq_budget=config.irq_printk,
                                          irq_handler=irq_handler, trace=trace)
                await _run_threads(kernel, sched, config, violations)
        if sched is not None and sched.verdict:
            violations.append(sched.verdict)
        violations += checker_violations(kernel)
        violations += check_text(kernel.serial_output(), "ttyS0", partial_first=False)
        if kernel.outcome in ("shutdown", "running"):
            violations += await check_invariants(kernel)
    finally:
        machine.close()
    digest = hashlib.blake2b((kernel.dmesg() + kernel.serial_output()).encode(),
                             digest_size=8).hexdigest()
    return StressResult(seed, tuple(dict.fromkeys(violations)),
                        sched.schedule_string() if sched else "",
                        sched.points if sched else 0, sched.switches if sched else 0,
                        sched.irqs_delivered if sched else 0, digest,
                        time.perf_counter() - started)


async def _run_threads(kernel, sched: Scheduler, config: StressConfig,
                       violations: list[str]) -> None:
    writers_done = {"n": 0}

    async def writer(tid: int) -> None:
        tag = "t%02d" % tid
        for index in range(config.messages):
            await printk(KERN_INFO + "%s\n", stress_message(tag, index))
        writers_done["n"] += 1

    async def reader(path: str) -> None:
        reads = 0
        while writers_done["n"] < config.threads or reads == 0:
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


def run_seed(config: StressConfig, seed: int, replay: str | None = None) -> StressResult:
    """One seed in its own trio run (the unit of work of ``-j``)."""
    plugins = load_plugins(config.plugins, config.plugin_path)
    strategy = Replay(decode_schedule(replay)) if replay else None
    return trio.run(run_one, config, seed, plugins, strategy,
                    clock=trio.testing.MockClock(autojump_threshold=0))


def replay_command(config: StressConfig, result: StressResult) -> str:
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
    words += ["--seed", str(result.seed), "--strategy", config.strategy,
              "--replay", result.schedule]
    return shlex.join(words)


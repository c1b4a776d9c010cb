"""The scenario format as attrs classes: what a loaded, validated scenario *is*.

The loader (:mod:`ksim.scenario.loader`) turns YAML into these; the runner
(:mod:`ksim.scenario.runner`) executes them; the JSON Schema (:mod:`ksim.scenario.schema`) is
generated from them.  So each fact is stated once, here:

* a step's fields, their types and defaults, the field a scalar shorthand fills (``printk:
  "text"`` is ``printk: {text: "text"}``) and a one-line description;
* the words a field accepts, as ``Literal`` types (cattrs rejects any other, the schema lists
  them as an ``enum``, the loader names them with a did-you-mean hint);
* the constraints on a value, as attrs validators (:class:`Range`, :class:`Check`): they run
  when a step is built in Python; the loader runs them all with construction-time validation
  off, so every problem of a step is reported, and the schema reads their bounds;
* what needs more than one field or the rest of the scenario (a CPU the machine has, a plugin
  the boot lists), in each step's :meth:`Step.check`;
* the subjects and matchers of expectations (:data:`SUBJECTS`, :data:`MATCHERS`), and the
  limits no sensible scenario reaches (the ``MAX_*`` constants, each named in its error).

Every object that can be wrong carries a :class:`Loc` (file, line, column, 1-based) so a
failure points at the YAML that asked for it.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar, Literal, get_args

import attrs

from ksim.errno import errorcode
from ksim.memory import PAGE_SIZE
from ksim.printk import LEVEL_NAMES
from ksim.units import format_size, parse_ram, parse_size

Chain = Literal["panic", "reboot", "die"]
NotifyReturn = Literal["done", "ok", "stop", "bad"]
RebootMode = Literal["restart", "halt", "power_off"]
Firmware = Literal["seabios", "pc-bios", "uefi", "ecc-scrub"]  # ksim.firmware.FIRMWARE_NAMES
KernelBuild = Literal["ksim", "debian"]  # ksim.vmlinux.IMAGE_NAMES
RebootKind = Literal["cold", "warm", "memtest"]
Outcome = Literal["shutdown", "restart", "halt", "power_off", "hang", "running"]
Answer = Literal["holds", "fails", "partly", "measured"]

LEVELS: tuple[str, ...] = tuple(LEVEL_NAMES)
CHAINS: tuple[str, ...] = get_args(Chain)
NOTIFY_RETURNS: tuple[str, ...] = get_args(NotifyReturn)
REBOOT_MODES: tuple[str, ...] = get_args(RebootMode)
REBOOT_KINDS: tuple[str, ...] = get_args(RebootKind)
OUTCOMES: tuple[str, ...] = get_args(Outcome)
ANSWERS: tuple[str, ...] = get_args(Answer)
ERRNO_NAMES: tuple[str, ...] = tuple(dict.fromkeys(errorcode.values()))

Scalar = str | int | float | bool

# -- limits --------------------------------------------------------------------------------
# Values no sensible scenario reaches; past them a file is rejected when loading, with the
# limit named, instead of hanging, exhausting memory or crashing ksim later.
MAX_CPUS = 8192  # NR_CPUS_RANGE_END on x86-64 (MAXSMP, CPUMASK_OFFSTACK)
MAX_SEEDS = 100_000  # seeds of one scenario
MAX_SEED = (1 << 64) - 1
MAX_COUNT = 100_000  # messages of one printk/spawn step (threads x count), interrupts of an irq
MAX_THREADS = 1024  # threads of one spawn step
MAX_BOOTS = 1000  # boots of one scenario
MAX_STEPS = 5_000  # steps of one boot
MAX_SECONDS = 1e9  # virtual seconds of a sleep or a timeout (about 31 years)
MAX_INT = (1 << 64) - 1  # an integer in a scenario is at most a 64-bit word
MAX_PCT_DEPTH = 1000
MAX_FILE_BYTES = 256 << 10  # a scenario file (the largest in the library is 6K)
MAX_NESTING = 64  # nested YAML collections
MAX_NODES = 10_000  # YAML nodes once aliases are expanded (the library's largest file has 496)
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s)?\s*$")


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    if len(word) > 100:  # nothing is that long; and difflib would be slow on a huge word
        return ""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def quoted(value: object, limit: int = 60) -> str:
    """``repr`` of a value a user wrote, shortened: an error never echoes a whole file."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


@attrs.frozen
class Loc:
    """Where something was written: ``FILE:LINE:COL`` (1-based, as editors count)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = Loc("<scenario>", 0, 0)


# -- validators: the constraints on one value ----------------------------------------------

@attrs.frozen
class Range:
    """An attrs validator: ``min <= value <= max`` (None passes); the schema reads the bounds."""

    min: int | float | None = None
    max: int | float | None = None
    below: str | None = None  # the message under min (default "NAME must be >= MIN")
    above: str | None = None  # the message over max (default "NAME must be <= MAX (the limit)")

    def problem(self, name: str, value: object) -> str | None:
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return f"{name} must be a finite number"
        if self.min is not None and value < self.min:
            return self.below or f"{name} must be >= {self.min}"
        if self.max is not None and value > self.max:
            return self.above or f"{name} must be <= {self.max:,} (the limit)"
        return None

    def __call__(self, inst: object, attribute: attrs.Attribute, value: object) -> None:
        message = self.problem(attribute.name, value)
        if message is not None:
            raise ValueError(message)


@attrs.frozen
class Check:
    """An attrs validator from a function returning a problem (or None); ``schema`` for editors."""

    fn: Callable[[Any], str | None]
    schema: dict[str, Any] | None = None

    def problem(self, name: str, value: object) -> str | None:
        return None if value is None else self.fn(value)

    def __call__(self, inst: object, attribute: attrs.Attribute, value: object) -> None:
        message = self.problem(attribute.name, value)
        if message is not None:
            raise ValueError(message)


def field_problems(obj: Any) -> Iterator[tuple[str, str]]:
    """(field, problem) for every validator of ``obj``'s fields that its value breaks."""
    for f in attrs.fields(type(obj)):
        validator = f.validator
        checks = getattr(validator, "_validators", None) or ([validator] if validator else [])
        for v in checks:
            if isinstance(v, (Range, Check)):
                message = v.problem(f.name, getattr(obj, f.name))
                if message is not None:
                    yield f.name, message


def level_problem(level: object, what: str = "level") -> str | None:
    if isinstance(level, int):
        return None if 0 <= level <= 7 else f"{what} {level} is outside 0..7"
    key = str(level).lower().removeprefix("kern_")
    if key == "warning":
        key = "warn"
    if key in LEVELS or (len(key) == 1 and "0" <= key <= "7"):
        return None
    return (f"unknown {what} '{_short(str(level))}'{did_you_mean(key, LEVELS)} (expected "
            f"{', '.join(LEVELS)} or 0-7)")


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def errno_problem(name: str) -> str | None:
    key = name.upper().lstrip("-")
    if key in ERRNO_NAMES:
        return None
    return (f"unknown errno '{_short(name)}'{did_you_mean(key, ERRNO_NAMES)} (known: "
            f"{', '.join(ERRNO_NAMES)})")


def absolute_path_problem(path: str) -> str | None:
    return None if path.startswith("/") else f"the path must be absolute, got '{_short(path)}'"


def parse_duration(value: float | str) -> float:
    """Seconds of virtual time: a number, or ``"500ms"``, ``"2s"``, ``"10us"``, ``"5ns"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        m = DURATION_RE.match(str(value))
        if not m:
            raise ValueError(f"invalid duration '{_short(str(value))}': expected seconds or a "
                             "number with ns, us, ms or s")
        scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, None: 1.0}[m.group(2)]
        seconds = float(m.group(1)) * scale
    if not math.isfinite(seconds):
        raise ValueError("a duration is a finite number of seconds")
    if seconds < 0:
        raise ValueError("a duration is not negative")
    if seconds > MAX_SECONDS:
        raise ValueError(f"a duration is at most {MAX_SECONDS:.0e} virtual seconds (the limit)")
    return seconds


def duration_problem(value: float | str) -> str | None:
    try:
        parse_duration(value)
    except ValueError as exc:
        return str(exc)
    return None


INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1
PRIORITY_RE = re.compile(r"^\s*(INT_MIN|INT_MAX)\s*(?:([+-])\s*(\d{1,12}))?\s*$")


def parse_priority(value: int | str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT_MIN <= value <= INT_MAX:
            raise ValueError(f"{value} does not fit an int")
        return value
    m = PRIORITY_RE.match(str(value))
    if not m:
        raise ValueError(f"expected an integer, INT_MIN or INT_MAX (optionally +N/-N), got "
                         f"{quoted(value)}")
    base = INT_MIN if m.group(1) == "INT_MIN" else INT_MAX
    delta = int(m.group(3) or 0) * (-1 if m.group(2) == "-" else 1)
    result = base + delta
    if not INT_MIN <= result <= INT_MAX:
        raise ValueError(f"{value} does not fit an int")
    return result


def priority_problem(value: int | str) -> str | None:
    try:
        parse_priority(value)
    except ValueError as exc:
        return f"priority: {exc}"
    return None


def corrupt_bytes(value: str | list[int]) -> bytes:
    """``"de ad be ef"`` / ``"deadbeef"`` / ``[222, 173]`` → bytes."""
    if isinstance(value, list):
        if not all(isinstance(b, int) and 0 <= b <= 255 for b in value):
            raise ValueError("each byte must be an integer 0..255")
        return bytes(value)
    text = re.sub(r"[\s:,_]", "", value).removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"expected hex bytes such as 'de ad be ef', got "
                         f"{quoted(value)}") from None


def bytes_problem(value: str | list[int]) -> str | None:
    try:
        if not corrupt_bytes(value):
            raise ValueError("no bytes given")
    except ValueError as exc:
        return f"bytes: {exc}"
    return None


def initrd_problem(initrd: str) -> str | None:
    try:
        parse_size(initrd)
    except ValueError as exc:
        return str(exc)
    return None


def ram_problem(ram: str) -> str | None:
    """The machine's RAM rule, ksim.units.parse_ram's: the same words as ``ksim boot --ram``."""
    try:
        parse_ram(ram)
    except ValueError as exc:
        return str(exc)
    return None


LEVEL_SCHEMA = {"anyOf": [{"enum": list(LEVELS) + ["warning"]},
                          {"type": "integer", "minimum": 0, "maximum": 7}],
                "description": "a log level: a name or 0-7"}
LEVEL = Check(level_problem, LEVEL_SCHEMA)
ERRNO = Check(errno_problem, {"type": "string", "pattern": "^-?[A-Za-z][A-Za-z0-9]*$"})
ABSOLUTE = Check(absolute_path_problem, {"type": "string", "pattern": "^/"})
CPU = Check(lambda cpu: None if not isinstance(cpu, str) or cpu == "any" else
            f"cpu is 'any' or a CPU number, got '{_short(cpu)}'",
            {"anyOf": [{"enum": ["any"]}, {"type": "integer", "minimum": 0,
                                          "maximum": MAX_CPUS - 1}]})
WORD = Range(min=0, max=MAX_INT)  # an address, offset or length: a 64-bit unsigned word


# -- steps -------------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class StepContext:
    """What a step's meaning depends on beyond its own fields."""

    cpus: int = 1
    ram: int = 64 << 20
    boot_plugins: frozenset[str] = frozenset()  # the plugins of the step's boot
    scenario_plugins: frozenset[str] = frozenset()  # every plugin the scenario names


@attrs.frozen(kw_only=True)
class Step:
    """Base of every step.  ``kind`` is the YAML key; ``shorthand`` the field a scalar fills."""

    kind: ClassVar[str] = ""
    shorthand: ClassVar[str | None] = None
    doc: ClassVar[str] = ""
    machine: ClassVar[bool] = False  # may run while the machine is off (a boot's ``before``)
    ends_boot: ClassVar[bool] = False  # no step after it can run
    # runs under the deterministic scheduler and may stay in flight (not a sync point)
    concurrent: ClassVar[bool] = False
    loc: Loc = NOWHERE

    def describe(self) -> str:
        return self.kind

    @classmethod
    def from_shorthand(cls, value: object) -> dict[str, object]:
        """The fields a scalar written as the step's value stands for."""
        assert cls.shorthand is not None
        return {cls.shorthand: value}

    def check(self, ctx: StepContext) -> Iterator[str]:
        """Problems that need more than one field or the scenario: full messages."""
        return iter(())


def _cpu_exists(step: SpawnStep | ReadStep | IrqStep | NmiStep, ctx: StepContext) -> Iterator[str]:
    if isinstance(step.cpu, int) and not 0 <= step.cpu < ctx.cpus:
        yield f"{step.kind}: cpu {step.cpu} does not exist (the machine has {ctx.cpus})"


COUNT = Range(min=0, max=MAX_COUNT)


@attrs.frozen(kw_only=True)
class PrintkStep(Step):
    kind: ClassVar[str] = "printk"
    shorthand: ClassVar[str | None] = "text"
    doc: ClassVar[str] = ("printk TEXT (a newline is added) at LEVEL, COUNT times; {i} in the "
                          "text is the repetition number")
    text: str
    level: str | int | None = attrs.field(default=None, validator=LEVEL)
    count: int = attrs.field(default=1, validator=COUNT)
    newline: bool = True

    def describe(self) -> str:
        return f"printk {self.text!r}" + (f" x{self.count}" if self.count != 1 else "")


@attrs.frozen(kw_only=True)
class SpawnStep(Step):
    kind: ClassVar[str] = "spawn"
    doc: ClassVar[str] = ("start THREADS kernel threads under the deterministic scheduler, each "
                          "printing COUNT messages ({thread} and {i} are replaced), on CPU "
                          "thread mod ncpus (cpu: any) or on CPU N, and then calling "
                          "panic(PANIC) if panic is given (with until_held: LOCK, only once "
                          "another CPU holds the lock of that name, waited for at the "
                          "thread's preemption points), or oopsing with OOPS as the headline "
                          "if oops is given (the thread is killed, or the kernel panics with "
                          "oops=panic); with console_lock, each thread prints under "
                          "console_lock() (its messages are stored, console_unlock() prints "
                          "them); wait for them (and every queued interrupt) unless wait is "
                          "false")
    concurrent: ClassVar[bool] = True
    text: str
    threads: int = attrs.field(default=1, validator=Range(min=1, max=MAX_THREADS))
    count: int = attrs.field(default=1, validator=COUNT)
    level: str | int | None = attrs.field(default=None, validator=LEVEL)
    cpu: str | int = attrs.field(default="any", validator=CPU)
    interval: float = attrs.field(default=0.0, validator=Range(min=0, max=MAX_SECONDS))
    panic: str | None = None
    until_held: str | None = None
    oops: str | None = None
    console_lock: bool = False
    wait: bool = True

    def describe(self) -> str:
        return (f"spawn {self.threads} threads x {self.count} printk"
                + (" under console_lock" if self.console_lock else "")
                + (f", then panic {self.panic!r}" if self.panic is not None else "")
                + (f", then oops {self.oops!r}" if self.oops is not None else "")
                + (f" once another CPU holds {self.until_held}" if self.until_held else ""))

    def check(self, ctx: StepContext) -> Iterator[str]:
        yield from _cpu_exists(self, ctx)
        if self.until_held is not None and self.panic is None:
            yield "spawn: until_held says when to panic: give panic too"
        if self.panic is not None and self.oops is not None:
            yield "spawn: a thread ends in a panic or an oops, not both: give one of them"
        if self.threads * self.count > MAX_COUNT:
            yield (f"spawn: {self.threads} threads x {self.count} messages is more than "
                   f"{MAX_COUNT:,} messages (the limit)")


@attrs.frozen(kw_only=True)
class ReadStep(Step):
    kind: ClassVar[str] = "read"
    shorthand: ClassVar[str | None] = "path"
    doc: ClassVar[str] = ("start THREADS reader threads under the deterministic scheduler, each "
                          "reading PATH COUNT times (one read(2) of SIZE bytes at offset 0 each "
                          "time), on CPU (thread + 1) mod ncpus from the last (cpu: any) or on "
                          "CPU N, while the other threads run; every read is kept for the "
                          "'reads' subject; wait for them unless wait is false")
    concurrent: ClassVar[bool] = True
    path: str = attrs.field(validator=ABSOLUTE)
    threads: int = attrs.field(default=1, validator=Range(min=1, max=MAX_THREADS))
    count: int = attrs.field(default=10, validator=COUNT)
    size: int = attrs.field(default=4096, validator=Range(min=1, max=1 << 24))
    cpu: str | int = attrs.field(default="any", validator=CPU)
    interval: float = attrs.field(default=0.0, validator=Range(min=0, max=MAX_SECONDS))
    wait: bool = True

    def describe(self) -> str:
        return f"read {self.path} x{self.count} by {self.threads} thread(s)"

    def check(self, ctx: StepContext) -> Iterator[str]:
        yield from _cpu_exists(self, ctx)
        if self.threads * self.count > MAX_COUNT:
            yield (f"read: {self.threads} threads x {self.count} reads is more than "
                   f"{MAX_COUNT:,} reads (the limit)")


@attrs.frozen(kw_only=True)
class IrqStep(Step):
    kind: ClassVar[str] = "irq"
    shorthand: ClassVar[str | None] = "count"
    doc: ClassVar[str] = ("queue COUNT interrupts whose handler printks TEXT ({i} and {cpu} are "
                          "replaced) at LEVEL, raised at the running threads' preemption points "
                          "(on average once every EVERY points) or, with no thread left, on an "
                          "idle CPU; wait until all are handled unless wait is false")
    concurrent: ClassVar[bool] = True
    count: int = attrs.field(default=1, validator=COUNT)
    text: str = "irq {i} on cpu {cpu}"
    level: str | int | None = attrs.field(default=None, validator=LEVEL)
    cpu: str | int = attrs.field(default="any", validator=CPU)
    every: int = attrs.field(default=50, validator=Range(
        min=1, max=MAX_INT, below="every must be >= 1 (preemption points per interrupt)"))
    wait: bool = True

    def describe(self) -> str:
        return f"irq x{self.count}"

    def check(self, ctx: StepContext) -> Iterator[str]:
        return _cpu_exists(self, ctx)


NmiReason = Literal["unknown", "iochk"]


@attrs.frozen(kw_only=True)
class NmiStep(Step):
    kind: ClassVar[str] = "nmi"
    shorthand: ClassVar[str | None] = "count"
    doc: ClassVar[str] = ("queue COUNT NMIs, raised like irq's interrupts (on average once every "
                          "EVERY preemption points of the running threads) but taken even with "
                          "interrupts disabled: with TEXT, a handler claims each and printks "
                          "TEXT ({i} and {cpu} are replaced) from NMI context (stored, printed "
                          "later from irq_work); without, nobody claims it and the kernel "
                          "handles an NMI of REASON (unknown: 'Uhhuh. NMI received for unknown "
                          "reason', a panic with unknown_nmi_panic; iochk: an I/O check error, "
                          "a panic with panic_on_io_nmi); wait until all are handled unless "
                          "wait is false")
    concurrent: ClassVar[bool] = True
    count: int = attrs.field(default=1, validator=COUNT)
    text: str | None = None
    reason: NmiReason | None = None  # None: unknown, unless text makes it a claimed NMI
    cpu: str | int = attrs.field(default="any", validator=CPU)
    every: int = attrs.field(default=50, validator=Range(
        min=1, max=MAX_INT, below="every must be >= 1 (preemption points per NMI)"))
    wait: bool = True

    def describe(self) -> str:
        return f"nmi x{self.count}"

    def check(self, ctx: StepContext) -> Iterator[str]:
        yield from _cpu_exists(self, ctx)
        if self.text is not None and self.reason is not None:
            yield ("nmi: give text (an NMI a handler claims and printks from) or reason (an "
                   "NMI nobody claims), not both")


@attrs.frozen(kw_only=True)
class OopsStep(Step):
    kind: ClassVar[str] = "oops"
    shorthand: ClassVar[str | None] = "message"
    doc: ClassVar[str] = ("an Oops with MESSAGE as its headline (K5): the shell is killed, or the "
                          "kernel panics with oops=panic")
    message: str = "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    err: int = attrs.field(default=2, validator=Range(min=0, max=MAX_INT))
    function: str = "sysrq_handle_crash"

    def describe(self) -> str:
        return f"oops {self.message!r}"


@attrs.frozen(kw_only=True)
class PanicStep(Step):
    kind: ClassVar[str] = "panic"
    shorthand: ClassVar[str | None] = "message"
    doc: ClassVar[str] = "panic(MESSAGE): ends the boot (restart, or halt with panic=0)"
    ends_boot: ClassVar[bool] = True
    message: str

    def describe(self) -> str:
        return f"panic {self.message!r}"


@attrs.frozen(kw_only=True)
class WriteStep(Step):
    kind: ClassVar[str] = "write"
    shorthand: ClassVar[str | None] = "path"
    doc: ClassVar[str] = ("write VALUE to a proc/sysfs file as `echo VALUE > PATH` does (the "
                          "shorthand is \"PATH=VALUE\"); errno names the error the write must "
                          "fail with (EACCES...)")
    path: str = attrs.field(validator=ABSOLUTE)
    value: Scalar = ""
    newline: bool = True
    errno: str | None = attrs.field(default=None, validator=ERRNO)

    def describe(self) -> str:
        return f"write {self.path}"

    @classmethod
    def from_shorthand(cls, value: object) -> dict[str, object]:
        if isinstance(value, str) and "=" in value:
            path, _, data = value.partition("=")
            return {"path": path, "value": data}
        return {"path": value}


@attrs.frozen(kw_only=True)
class CatStep(Step):
    kind: ClassVar[str] = "cat"
    shorthand: ClassVar[str | None] = "path"
    doc: ClassVar[str] = "read a file into the scenario's log (shown with -v and on failure)"
    path: str = attrs.field(validator=ABSOLUTE)
    errno: str | None = attrs.field(default=None, validator=ERRNO)

    def describe(self) -> str:
        return f"cat {self.path}"


def _among_plugins(step: InsmodStep | RmmodStep, ctx: StepContext) -> Iterator[str]:
    if step.name not in ctx.boot_plugins:
        yield (f"{step.kind} {step.name}: '{step.name}' is not among this boot's plugins"
               + (" (list it with builtin: false to load it with insmod)"
                  if step.kind == "insmod" else ""))


@attrs.frozen(kw_only=True)
class InsmodStep(Step):
    kind: ClassVar[str] = "insmod"
    shorthand: ClassVar[str | None] = "name"
    doc: ClassVar[str] = ("load a loadable plugin's module with PARAMS; errno names the error "
                          "the load must fail with")
    name: str
    params: dict[str, Scalar] = attrs.Factory(dict)
    errno: str | None = attrs.field(default=None, validator=ERRNO)

    def describe(self) -> str:
        return f"insmod {self.name}"

    def check(self, ctx: StepContext) -> Iterator[str]:
        return _among_plugins(self, ctx)


@attrs.frozen(kw_only=True)
class RmmodStep(Step):
    kind: ClassVar[str] = "rmmod"
    shorthand: ClassVar[str | None] = "name"
    doc: ClassVar[str] = "unload a module"
    name: str
    errno: str | None = attrs.field(default=None, validator=ERRNO)

    def describe(self) -> str:
        return f"rmmod {self.name}"

    def check(self, ctx: StepContext) -> Iterator[str]:
        return _among_plugins(self, ctx)


_NOT_NEGATIVE = "addresses and offsets are not negative"


@attrs.frozen(kw_only=True)
class CorruptStep(Step):
    kind: ClassVar[str] = "corrupt"
    doc: ClassVar[str] = ("change RAM: BYTES (hex), FILL a LENGTH, or FLIPS seeded bit flips in "
                          "LENGTH bytes, at ADDRESS or OFFSET into a module's RESERVATION")
    machine: ClassVar[bool] = True
    address: int | None = attrs.field(default=None, validator=Range(
        min=0, max=MAX_INT, below=_NOT_NEGATIVE))
    reservation: str | None = None
    offset: int = attrs.field(default=0, validator=Range(min=0, max=MAX_INT, below=_NOT_NEGATIVE))
    length: int | None = attrs.field(default=None, validator=Range(min=1, max=MAX_INT))
    bytes: str | list[int] | None = attrs.field(default=None, validator=Check(bytes_problem))
    fill: int | None = attrs.field(default=None, validator=Range(
        min=0, max=255, below="fill must be a byte, 0..255", above="fill must be a byte, 0..255"))
    flips: int | None = attrs.field(default=None, validator=Range(min=1, max=MAX_INT))
    seed: int | None = attrs.field(default=None, validator=Range(min=0, max=MAX_SEED))

    def describe(self) -> str:
        where = f"reservation {self.reservation}" if self.reservation else f"{self.address:#x}"
        return f"corrupt {where}+{self.offset:#x}"

    def check(self, ctx: StepContext) -> Iterator[str]:
        if (self.address is None) == (self.reservation is None):
            yield "corrupt: give exactly one of 'address' and 'reservation'"
        if sum(getattr(self, k) is not None for k in ("bytes", "fill", "flips")) != 1:
            yield "corrupt: give exactly one of 'bytes', 'fill' and 'flips'"
        if self.fill is not None and self.length is None:
            yield "corrupt: fill needs a length"
        if self.flips is not None and self.reservation is None and self.length is None:
            yield "corrupt: flips at an address need a length"
        if self.flips is not None and self.length is not None and self.length > 0 \
                and self.flips > self.length * 8:
            yield (f"corrupt: {self.flips:,} flips in {self.length} bytes: at most "
                   f"{self.length * 8:,}, the region's bits (the limit)")
        if self.length is not None and self.length > ctx.ram:
            yield (f"corrupt: length {self.length:,} is more than the machine's RAM "
                   f"({format_size(ctx.ram)})")
        if self.address is not None and 0 <= self.address and self.address + self.offset \
                >= ctx.ram:
            yield (f"corrupt: address {self.address + self.offset:#x} is beyond the machine's "
                   f"RAM ({format_size(ctx.ram)})")
        if self.reservation is not None and self.reservation not in ctx.scenario_plugins:
            yield (f"corrupt: reservation '{self.reservation}': no plugin of that name in this "
                   "scenario" + did_you_mean(self.reservation, ctx.scenario_plugins))


@attrs.frozen(kw_only=True)
class SleepStep(Step):
    kind: ClassVar[str] = "sleep"
    shorthand: ClassVar[str | None] = "duration"
    doc: ClassVar[str] = "let virtual time pass: seconds, or a string such as 500ms, 2s, 10us"
    duration: float | str = attrs.field(validator=Check(duration_problem, {"anyOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_SECONDS},
        {"type": "string", "pattern": DURATION_RE.pattern}]}))

    def describe(self) -> str:
        return f"sleep {self.duration}"


@attrs.frozen(kw_only=True)
class NotifierStep(Step):
    kind: ClassVar[str] = "notifier"
    doc: ClassVar[str] = ("register a notifier block NAME on the panic, reboot or die chain at "
                          "PRIORITY; when called it printks `notifier NAME called (CHAIN, action "
                          "N)` and returns RETURNS")
    chain: Chain
    name: str
    priority: int | str = attrs.field(default=0, validator=Check(priority_problem, {"anyOf": [
        {"type": "integer", "minimum": INT_MIN, "maximum": INT_MAX},
        {"type": "string", "pattern": PRIORITY_RE.pattern}]}))
    returns: NotifyReturn = "done"
    level: str | int | None = attrs.field(default="info", validator=LEVEL)

    def describe(self) -> str:
        return f"notifier {self.name} on {self.chain}"


@attrs.frozen(kw_only=True)
class SysRebootStep(Step):
    kind: ClassVar[str] = "sys_reboot"
    shorthand: ClassVar[str | None] = "mode"
    doc: ClassVar[str] = ("reboot(2): restart, halt or power_off, through the reboot notifiers "
                          "(N15); ends the boot")
    ends_boot: ClassVar[bool] = True
    mode: RebootMode
    cmd: str | None = None

    def describe(self) -> str:
        return f"sys_reboot {self.mode}"


@attrs.frozen(kw_only=True)
class ExpectStep(Step):
    kind: ClassVar[str] = "expect"
    doc: ClassVar[str] = "check expectations now, on the running kernel"
    expectations: tuple[Expectation, ...] = ()

    def describe(self) -> str:
        return "expect"


STEP_TYPES: dict[str, type[Step]] = {cls.kind: cls for cls in (
    PrintkStep, SpawnStep, ReadStep, IrqStep, NmiStep, OopsStep, PanicStep, WriteStep, CatStep, InsmodStep,
    RmmodStep, CorruptStep, SleepStep, NotifierStep, SysRebootStep, ExpectStep)}
# Steps that may run while the machine is off (a boot's ``before`` list).
MACHINE_STEPS = tuple(kind for kind, cls in STEP_TYPES.items() if cls.machine)


# -- expectations ------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class Matcher:
    """One check on a subject: ``kind`` is the YAML key, ``value`` what it was given."""

    kind: str
    value: object
    loc: Loc = NOWHERE


@attrs.frozen
class MatcherSpec:
    """A matcher: what its value is (``values``) and what it holds for (``doc``).

    ``values``: ``strings`` (a string or a non-empty list), ``patterns`` (the same, regular
    expressions), ``string``, ``bool``, or ``bounds`` (an integer, or {equals | min, max};
    with ``occurrences`` also {text | regex}).
    """

    doc: str
    values: Literal["strings", "patterns", "string", "bool", "bounds"]
    occurrences: bool = False


MATCHERS: dict[str, MatcherSpec] = {
    "contains": MatcherSpec("the text contains each string", "strings"),
    "not_contains": MatcherSpec("the text contains none of the strings", "strings"),
    "matches": MatcherSpec("each regular expression matches somewhere (Python re, MULTILINE)",
                           "patterns"),
    "not_matches": MatcherSpec("no regular expression matches", "patterns"),
    "equals": MatcherSpec("the value is exactly this (text is compared whole, with a diff on "
                          "failure)", "string"),
    "lines_in_order": MatcherSpec("each string is found in a line after the line that matched "
                                  "the previous", "strings"),
    "count": MatcherSpec("an integer: the number of lines (text) or reports; or {text|regex, "
                         "equals|min|max}: occurrences", "bounds", occurrences=True),
    "length": MatcherSpec("the text's length in bytes: an integer or {min, max}", "bounds"),
    "exists": MatcherSpec("whether the file exists (file subject only)", "bool"),
}
TEXT_MATCHERS = tuple(k for k in MATCHERS if k != "exists")
# Report kinds the core files today (ksim.bug.Report.kind); another lower-case word is
# accepted too (a kind a newer core or a plugin files) unless it looks like a typo of these.
REPORT_KINDS = ("any", "lockdep", "data-race", "console", "deadlock", "livelock", "bug", "lockup",
                "warning", "oops", "hang")
REPORT_KIND_RE = re.compile(r"[a-z][a-z0-9_-]*")


@attrs.frozen
class SubjectSpec:
    """An expectation subject: what it looks at and which matchers apply.

    ``values``: ``text`` (text matchers), ``bool`` (``- panicked: true``) or ``outcome``
    (one of OUTCOMES).  ``target``: the key naming what to look at (``file: PATH``), and
    whether it must be given (``example`` shows how).
    """

    doc: str
    values: Literal["text", "bool", "outcome"] = "text"
    target: str | None = None
    target_required: bool = False
    example: str = ""
    matchers: tuple[str, ...] = TEXT_MATCHERS


SUBJECTS: dict[str, SubjectSpec] = {
    "file": SubjectSpec("a file's content (procfs, sysfs); a stopped kernel's files are read as "
                        "a debugger would", target="path", target_required=True,
                        example="'- file: /proc/memconsole'", matchers=tuple(MATCHERS)),
    "dmesg": SubjectSpec("the kernel log, as dmesg prints it"),
    "reads": SubjectSpec("every read the boot's 'read' steps made of PATH, in the order they "
                         "were made, each after a line '--- read N by THREAD ---' and, if it "
                         "ended inside a line, followed by '\\ No newline at end of read'",
                         target="path", target_required=True,
                         example="'- reads: /proc/memconsole'"),
    "console": SubjectSpec("what console NAME (ttyS0, memconsole0, or a name without index) "
                           "received", target="name", target_required=True,
                           example="'- console: ttyS0'"),
    "panicked": SubjectSpec("whether the kernel panicked (true/false)", "bool"),
    "rebooted": SubjectSpec("whether the boot ended in a restart (true/false)", "bool"),
    "outcome": SubjectSpec("how the boot ended: " + ", ".join(OUTCOMES), "outcome"),
    "reports": SubjectSpec("checker reports of a kind (lockdep, data-race, console, deadlock, "
                           "bug, lockup, warning, oops, hang; or any)", target="kind"),
}


def target_problem(subject: str, target: str) -> str | None:
    """What is wrong with the target of ``subject`` (None: nothing)."""
    if subject == "file" and not target.startswith("/"):
        return f"file: the path must be absolute, got '{_short(target)}'"
    if subject == "reports":
        hint = did_you_mean(target, REPORT_KINDS)
        if target not in REPORT_KINDS and (hint or not REPORT_KIND_RE.fullmatch(target)):
            return (f"reports: unknown kind '{_short(target)}'{hint} (known: "
                    f"{', '.join(REPORT_KINDS)})")
    return None


@attrs.frozen(kw_only=True)
class Expectation:
    subject: str
    target: str | None = None
    matchers: tuple[Matcher, ...] = ()
    loc: Loc = NOWHERE

    def describe(self) -> str:
        return self.subject + (f" {self.target}" if self.target else "")


# -- the verdict ---------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class Verdict:
    """The question a scenario answers, and an answer that follows from what the run observes.

    ``observe`` is checked on every seed, after boot ``boot`` (default: the last), on the
    state that boot left, without failing the run by itself; the runner counts the seeds on
    which it held.  The declared ``answer`` must agree: ``holds`` on every seed, ``fails`` on
    none, ``partly`` on some but not all, ``measured`` whatever the fraction (the fraction is
    the answer).  ``assumes`` names what the answer rests on: anything that, changed, would
    change the answer.
    """

    question: str
    answer: Answer
    why: str
    observe: tuple[Expectation, ...]
    assumes: tuple[str, ...] = ()
    boot: int | None = None  # 1-based; None: the last boot
    loc: Loc = NOWHERE

    def agrees(self, held: int, seeds: int) -> bool | None:
        """Whether ``held`` of ``seeds`` observations bear the answer out (None: not decided)."""
        if self.answer == "holds":
            return held == seeds
        if self.answer == "fails":
            return held == 0
        if self.answer == "partly":
            return 0 < held < seeds if seeds > 1 else None
        return True

    def expected(self) -> str:
        return {"holds": "on every seed", "fails": "on no seed",
                "partly": "on some seeds but not all", "measured": "on any number of seeds"
                }[self.answer]


VERDICT_KEYS = {
    "question": "the question the scenario answers (the 2009 proposal's or the core rule's)",
    "answer": "holds, fails, partly or measured (the fraction of seeds is the answer)",
    "why": "one line: why the answer is what it is",
    "observe": "the expectation (or list) that is the question's property, checked on every "
               "seed without failing the run; the answer must agree with how many it held on",
    "assumes": "what the answer rests on: the assumptions that, changed, would change it",
    "boot": "after which boot to observe (default: the last)",
}


# -- scenario ----------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class MachineSpec:
    ram: str = attrs.field(default="64M", validator=Check(ram_problem, {
        "type": "string", "pattern": r"^[0-9]+([KkMmGgTt]([Ii]?[Bb])?|[Bb])?$"}))
    cpus: int = attrs.field(default=1, validator=Range(
        min=1, max=MAX_CPUS, below="a machine needs at least one CPU",
        above=f"at most {MAX_CPUS} CPUs (x86-64's NR_CPUS limit)"))
    ram_file: str | None = None
    keep_ram_file: bool = False
    numa: bool = True
    firmware: Firmware = "seabios"
    initrd: str = attrs.field(default="0", validator=Check(initrd_problem, {
        "type": "string", "pattern": r"^[0-9]+([KkMmGgTt]([Ii]?[Bb])?|[Bb])?$"}))
    kernel: KernelBuild = "ksim"
    pmu: bool = False

    @property
    def ram_bytes(self) -> int:
        return parse_size(self.ram)


@attrs.frozen(kw_only=True)
class PluginRef:
    name: str
    builtin: bool = True
    loc: Loc = NOWHERE


@attrs.frozen(kw_only=True)
class Boot:
    index: int  # 1-based
    reboot: RebootKind | None = None
    cmdline: str = ""
    initrd: str | None = None  # None: the machine's initramfs size
    plugins: tuple[PluginRef, ...] | None = None  # None: the scenario's plugins
    before: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()
    expect: tuple[Expectation, ...] = ()
    checkers: bool | None = None  # None: on when the boot spawns threads or raises interrupts
    loc: Loc = NOWHERE

    @property
    def concurrent(self) -> bool:
        """Whether the boot runs under the deterministic scheduler (it spawns or raises irqs)."""
        return any(s.concurrent for s in self.steps)

    @property
    def checked(self) -> bool:
        """Whether lockdep-lite and the data-race detector watch the boot's steps."""
        return self.concurrent if self.checkers is None else self.checkers


@attrs.frozen(kw_only=True)
class Scenario:
    name: str
    description: str = ""
    machine: MachineSpec = MachineSpec()
    seeds: tuple[int, ...] = (0,)
    plugins: tuple[PluginRef, ...] = ()
    plugin_path: tuple[str, ...] = ()
    boots: tuple[Boot, ...] = ()
    strategy: str = "random"  # the scheduler's strategy: random, pct[:DEPTH] or rr
    timeout: float = 3600.0  # virtual seconds for the whole scenario
    verdict: Verdict | None = None
    file: str = "<scenario>"
    loc: Loc = NOWHERE

    def records_consoles(self) -> bool:
        """Whether an expectation looks at a console other than the serial port."""
        def walk(expectations: tuple[Expectation, ...]) -> bool:
            return any(e.subject == "console" and not (e.target or "").startswith("ttyS")
                       for e in expectations)
        if self.verdict is not None and walk(self.verdict.observe):
            return True
        for boot in self.boots:
            if walk(boot.expect):
                return True
            for step in boot.steps:
                if isinstance(step, ExpectStep) and walk(step.expectations):
                    return True
        return False

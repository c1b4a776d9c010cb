"""The scenario format as attrs classes: what a loaded, validated scenario *is*.

The loader (:mod:`ksim.scenario.loader`) turns YAML into these; the runner
(:mod:`ksim.scenario.runner`) executes them; the JSON Schema (:mod:`ksim.scenario.schema`) is
generated from them.  So each step and matcher is declared once, here: its fields (with types
and defaults), the field a scalar shorthand fills (``printk: "text"`` is ``printk: {text:
"text"}``) and a one-line description.

Every object that can be wrong carries a :class:`Loc` (file, line, column, 1-based) so a
failure points at the YAML that asked for it.
"""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs

LEVELS = ("emerg", "alert", "crit", "err", "warn", "notice", "info", "debug")
REBOOT_KINDS = ("cold", "warm", "memtest")
CHAINS = ("panic", "reboot", "die")
NOTIFY_RETURNS = ("done", "ok", "stop", "bad")
REBOOT_MODES = ("restart", "halt", "power_off")
OUTCOMES = ("shutdown", "restart", "halt", "power_off", "hang", "running")

Scalar = str | int | float | bool


@attrs.frozen
class Loc:
    """Where something was written: ``FILE:LINE:COL`` (1-based, as editors count)."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = Loc("<scenario>", 0, 0)


# -- steps -------------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class Step:
    """Base of every step.  ``kind`` is the YAML key; ``shorthand`` the field a scalar fills."""

    kind: ClassVar[str] = ""
    shorthand: ClassVar[str | None] = None
    doc: ClassVar[str] = ""
    loc: Loc = NOWHERE

    def describe(self) -> str:
        return self.kind

    @classmethod
    def from_shorthand(cls, value: object) -> dict[str, object]:
        """The fields a scalar written as the step's value stands for."""
        assert cls.shorthand is not None
        return {cls.shorthand: value}


@attrs.frozen(kw_only=True)
class PrintkStep(Step):
    kind: ClassVar[str] = "printk"
    shorthand: ClassVar[str | None] = "text"
    doc: ClassVar[str] = ("printk TEXT (a newline is added) at LEVEL, COUNT times; {i} in the "
                          "text is the repetition number")
    text: str
    level: str | int | None = None
    count: int = 1
    newline: bool = True

    def describe(self) -> str:
        return f"printk {self.text!r}" + (f" x{self.count}" if self.count != 1 else "")


@attrs.frozen(kw_only=True)
class SpawnStep(Step):
    kind: ClassVar[str] = "spawn"
    doc: ClassVar[str] = ("start THREADS kernel threads under the deterministic scheduler, each "
                          "printing COUNT messages ({thread} and {i} are replaced), on CPU "
                          "thread mod ncpus (cpu: any) or on CPU N; wait for them (and every "
                          "queued interrupt) unless wait is false")
    text: str
    threads: int = 1
    count: int = 1
    level: str | int | None = None
    cpu: str | int = "any"
    interval: float = 0.0
    wait: bool = True

    def describe(self) -> str:
        return f"spawn {self.threads} threads x {self.count} printk"


@attrs.frozen(kw_only=True)
class IrqStep(Step):
    kind: ClassVar[str] = "irq"
    shorthand: ClassVar[str | None] = "count"
    doc: ClassVar[str] = ("queue COUNT interrupts whose handler printks TEXT ({i} and {cpu} are "
                          "replaced) at LEVEL, raised at the running threads' preemption points "
                          "(on average once every EVERY points) or, with no thread left, on an "
                          "idle CPU; wait until all are handled unless wait is false")
    count: int = 1
    text: str = "irq {i} on cpu {cpu}"
    level: str | int | None = None
    cpu: str | int = "any"
    every: int = 50
    wait: bool = True

    def describe(self) -> str:
        return f"irq x{self.count}"


@attrs.frozen(kw_only=True)
class OopsStep(Step):
    kind: ClassVar[str] = "oops"
    shorthand: ClassVar[str | None] = "message"
    doc: ClassVar[str] = ("an Oops with MESSAGE as its headline (K5): the shell is killed, or the "
                          "kernel panics with oops=panic")
    message: str = "BUG: kernel NULL pointer dereference, address: 0000000000000000"
    err: int = 2
    function: str = "sysrq_handle_crash"

    def describe(self) -> str:
        return f"oops {self.message!r}"


@attrs.frozen(kw_only=True)
class PanicStep(Step):
    kind: ClassVar[str] = "panic"
    shorthand: ClassVar[str | None] = "message"
    doc: ClassVar[str] = "panic(MESSAGE): ends the boot (restart, or halt with panic=0)"
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
    path: str
    value: Scalar = ""
    newline: bool = True
    errno: str | None = None

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
    path: str
    errno: str | None = None

    def describe(self) -> str:
        return f"cat {self.path}"


@attrs.frozen(kw_only=True)
class InsmodStep(Step):
    kind: ClassVar[str] = "insmod"
    shorthand: ClassVar[str | None] = "name"
    doc: ClassVar[str] = ("load a loadable plugin's module with PARAMS; errno names the error "
                          "the load must fail with")
    name: str
    params: dict[str, Scalar] = attrs.Factory(dict)
    errno: str | None = None

    def describe(self) -> str:
        return f"insmod {self.name}"


@attrs.frozen(kw_only=True)
class RmmodStep(Step):
    kind: ClassVar[str] = "rmmod"
    shorthand: ClassVar[str | None] = "name"
    doc: ClassVar[str] = "unload a module"
    name: str
    errno: str | None = None

    def describe(self) -> str:
        return f"rmmod {self.name}"


@attrs.frozen(kw_only=True)
class CorruptStep(Step):
    kind: ClassVar[str] = "corrupt"
    doc: ClassVar[str] = ("change RAM: BYTES (hex), FILL a LENGTH, or FLIPS seeded bit flips in "
                          "LENGTH bytes, at ADDRESS or OFFSET into a module's RESERVATION")
    address: int | None = None
    reservation: str | None = None
    offset: int = 0
    length: int | None = None
    bytes: str | list[int] | None = None
    fill: int | None = None
    flips: int | None = None
    seed: int | None = None

    def describe(self) -> str:
        where = f"reservation {self.reservation}" if self.reservation else f"{self.address:#x}"
        return f"corrupt {where}+{self.offset:#x}"


@attrs.frozen(kw_only=True)
class SleepStep(Step):
    kind: ClassVar[str] = "sleep"
    shorthand: ClassVar[str | None] = "duration"
    doc: ClassVar[str] = "let virtual time pass: seconds, or a string such as 500ms, 2s, 10us"
    duration: float | str

    def describe(self) -> str:
        return f"sleep {self.duration}"


@attrs.frozen(kw_only=True)
class NotifierStep(Step):
    kind: ClassVar[str] = "notifier"
    doc: ClassVar[str] = ("register a notifier block NAME on the panic, reboot or die chain at "
                          "PRIORITY; when called it printks `notifier NAME called (CHAIN, action "
                          "N)` and returns RETURNS")
    chain: str
    name: str
    priority: int | str = 0
    returns: str = "done"
    level: str | int | None = "info"

    def describe(self) -> str:
        return f"notifier {self.name} on {self.chain}"


@attrs.frozen(kw_only=True)
class SysRebootStep(Step):
    kind: ClassVar[str] = "sys_reboot"
    shorthand: ClassVar[str | None] = "mode"
    doc: ClassVar[str] = ("reboot(2): restart, halt or power_off, through the reboot notifiers "
                          "(N15); ends the boot")
    mode: str
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
    PrintkStep, SpawnStep, IrqStep, OopsStep, PanicStep, WriteStep, CatStep, InsmodStep,
    RmmodStep, CorruptStep, SleepStep, NotifierStep, SysRebootStep, ExpectStep)}
# Steps that may run while the machine is off (a boot's ``before`` list).
MACHINE_STEPS = ("corrupt",)


# -- expectations ------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class Matcher:
    """One check on a subject: ``kind`` is the YAML key, ``value`` what it was given."""

    kind: str
    value: object
    loc: Loc = NOWHERE


MATCHERS: dict[str, str] = {
    "contains": "the text contains each string",
    "not_contains": "the text contains none of the strings",
    "matches": "each regular expression matches somewhere (Python re, MULTILINE)",
    "not_matches": "no regular expression matches",
    "equals": "the value is exactly this (text is compared whole, with a diff on failure)",
    "lines_in_order": "each string is found in a line after the line that matched the previous",
    "count": ("an integer: the number of lines (text) or reports; or {text|regex, equals|min|"
              "max}: occurrences"),
    "length": "the text's length in bytes: an integer or {min, max}",
    "exists": "whether the file exists (file subject only)",
}

SUBJECTS: dict[str, str] = {
    "file": "a file's content (procfs, sysfs); a stopped kernel's files are read as a debugger would",
    "dmesg": "the kernel log, as dmesg prints it",
    "console": "what console NAME (ttyS0, memconsole0, or a name without index) received",
    "panicked": "whether the kernel panicked (true/false)",
    "rebooted": "whether the boot ended in a restart (true/false)",
    "outcome": "how the boot ended: " + ", ".join(OUTCOMES),
    "reports": ("checker reports of a kind (lockdep, data-race, deadlock, bug, lockup, "
                "warning, oops, hang; or any)"),
}
TEXT_SUBJECTS = ("file", "dmesg", "console", "reports")
# Report kinds the core files today (ksim.bug.Report.kind); another lower-case word is
# accepted too (a kind a newer core or a plugin files) unless it looks like a typo of these.
REPORT_KINDS = ("any", "lockdep", "data-race", "deadlock", "bug", "lockup", "warning", "oops",
                "hang")


@attrs.frozen(kw_only=True)
class Expectation:
    subject: str
    target: str | None = None
    matchers: tuple[Matcher, ...] = ()
    loc: Loc = NOWHERE

    def describe(self) -> str:
        return self.subject + (f" {self.target}" if self.target else "")


# -- scenario ----------------------------------------------------------------------------------

@attrs.frozen(kw_only=True)
class MachineSpec:
    ram: str = "64M"
    cpus: int = 1
    ram_file: str | None = None
    numa: bool = True


@attrs.frozen(kw_only=True)
class PluginRef:
    name: str
    builtin: bool = True
    loc: Loc = NOWHERE


@attrs.frozen(kw_only=True)
class Boot:
    index: int  # 1-based
    reboot: Literal["cold", "warm", "memtest"] | None = None
    cmdline: str = ""
    plugins: tuple[PluginRef, ...] | None = None  # None: the scenario's plugins
    before: tuple[Step, ...] = ()
    steps: tuple[Step, ...] = ()
    expect: tuple[Expectation, ...] = ()
    checkers: bool | None = None  # None: on when the boot spawns threads or raises interrupts
    loc: Loc = NOWHERE

    @property
    def concurrent(self) -> bool:
        """Whether the boot runs under the deterministic scheduler (it spawns or raises irqs)."""
        return any(isinstance(s, (SpawnStep, IrqStep)) for s in self.steps)

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
    file: str = "<scenario>"
    loc: Loc = NOWHERE

    @property
    def ident(self) -> str:
        return f"{self.file}::{self.name}"

    def records_consoles(self) -> bool:
        """Whether an expectation looks at a console other than the serial port."""
        def walk(expectations: tuple[Expectation, ...]) -> bool:
            return any(e.subject == "console" and not (e.target or "").startswith("ttyS")
                       for e in expectations)
        for boot in self.boots:
            if walk(boot.expect):
                return True
            for step in boot.steps:
                if isinstance(step, ExpectStep) and walk(step.expectations):
                    return True
        return False

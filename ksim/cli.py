"""The ``ksim`` command line: ``ksim boot``, ``ksim stress``, ``ksim run``, ``ksim plugins``.

Exit status of ``ksim boot`` (also in the README and at the end of ``ksim boot --help``):

* 0 — the boot ran every action;
* 1 — an action failed (a file that does not exist, a write the mode forbids, ...);
* 2 — bad usage or input: a flag, a size, a plugin, a RAM file, a resource the host refused;
* 3 — the kernel panicked and halted (``panic=0``, the default);
* 4 — the machine restarted (``panic=N``, a reboot, memconsole's notifier);
* 5 — the machine hung (a boot option's handler looped forever, no CPU can make progress):
  ksim's diagnostic is printed on stderr;
* 130 — interrupted (Ctrl-C).

Errors are one line on stderr, ``ksim COMMAND: message``, never a traceback; a closed stdout
(``ksim boot | head -1``) changes nothing but what is printed.  Importing this module is cheap:
each command imports the simulator when it runs, so ``ksim --help`` does not pay for it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from ksim import __version__
from ksim.clitools import Stdout, UsageError, did_you_mean, is_interrupt, one_line, \
    resume_gc, shown

EXIT_OK, EXIT_ACTION, EXIT_USAGE, EXIT_HALTED, EXIT_RESTARTED, EXIT_HUNG = 0, 1, 2, 3, 4, 5
EXIT_INTERRUPTED = 130

EPILOGS = {
    "boot": """\
exit status:
  0    every action ran
  1    an action failed (a missing file, a write the mode forbids); the others still ran
  2    bad usage or input (one line on stderr, nothing booted)
  3    the kernel panicked and halted (panic=0, the default)
  4    the machine restarted (panic=N, a reboot): with --ram-file, boot again for the next boot
  5    the machine hung (ksim's diagnostic, marked "ksim:", is on stderr)
  130  interrupted (Ctrl-C)""",
    "run": """\
exit status:
  0    every scenario passed
  1    a scenario failed or crashed inside ksim (ERROR)
  2    invalid input: a file that does not load or validate, a bad option (nothing run)""",
    "schema": """\
exit status:
  0    the schema was printed
  2    bad usage""",
    "plugins": """\
exit status:
  0    the plugins were listed (one that cannot be imported says so on its line)
  2    bad usage (a --plugin-path that is not a folder)""",
}
LEVELS = "emerg, alert, crit, err, warn, notice, info, debug or 0-7"


class _Exit(Exception):
    """argparse finished the command itself (``--help``, ``--version``)."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


class _Action(argparse.Action):
    """Collects the ordered ``--printk/--cat/--ls/--rm/--write/--oops/--panic`` actions."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        actions = getattr(namespace, "actions", None) or []
        actions.append((self.dest, "--" if values == [] else values))
        namespace.actions = actions


_CHOICE = re.compile(r"argument (\S+): invalid choice: '(.*)' \(choose from (.*)\)$", re.S)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        m = _CHOICE.match(message)
        if m is not None and m.group(1) == "COMMAND":
            word = m.group(2)
            commands = [c.strip(" '") for c in m.group(3).split(",")]
            message = (f"unknown command {shown(word)}{did_you_mean(word, commands)} "
                       f"(commands: {', '.join(commands)})")
        elif message.startswith("the following arguments are required: COMMAND"):
            message = ("expected a command: boot, stress, merge, run, schema or plugins "
                       "(ksim --help says more)")
        raise UsageError(f"{self.prog}: {message}")

    def _print_message(self, message: str, file: Any = None) -> None:
        if message and (file is None or file is sys.stdout):
            Stdout.write(message)  # --help | head -1 is still a success
        elif message:
            file.write(message)

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            print(message, end="", file=sys.stderr)
        raise _Exit(status)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        namespace, extras = super().parse_known_args(args, namespace)
        _restore_double_dash(self, namespace)
        return namespace, extras


def _restore_double_dash(parser: argparse.ArgumentParser, namespace: argparse.Namespace) -> None:
    """argparse (3.11) drops a value ``--`` given as ``--cmdline=--`` and stores ``[]``; the
    user meant the text ``--`` (a kernel command line may be just that)."""
    for action in parser._actions:
        if action.nargs is not None or not action.option_strings or action.type is not None:
            continue
        value = getattr(namespace, action.dest, None)
        if value == [] and action.default != []:
            setattr(namespace, action.dest, "--")
        elif isinstance(value, list):
            setattr(namespace, action.dest, ["--" if v == [] else v for v in value])


def _whole(text: str) -> int:
    if not (text.isascii() and text.lstrip("-").isdigit() and len(text) <= 24):
        raise argparse.ArgumentTypeError(f"expected a whole number, not {shown(text)}")
    return int(text)


def _cpus(text: str) -> int:
    from ksim.units import check_cpus
    try:
        return check_cpus(_whole(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _size(text: str) -> int:
    from ksim.units import parse_size
    try:
        return parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# ksim.firmware's and ksim.vmlinux's names, spelled out so that building the parser imports
# neither (tests/test_cli.py checks they agree)
FIRMWARE_CHOICES = ("seabios", "pc-bios", "uefi", "ecc-scrub")
KERNEL_CHOICES = ("ksim", "debian")


def _ram(text: str) -> str:
    from ksim.units import parse_ram
    try:
        parse_ram(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def _add_boot(sub: argparse._SubParsersAction) -> None:
    boot = sub.add_parser("boot", help="boot a machine, run actions, print its serial console",
                          description="Boot a simulated machine and run ACTIONs in order once "
                          "boot completes; stdout is its serial console (ttyS0) and the --cat "
                          "results.", allow_abbrev=False)
    boot.add_argument("--ram", default="64M", type=_ram, metavar="SIZE",
                      help="RAM size: 8M to 64T, sparse, e.g. 64M, 4G (default 64M; the ksim "
                           "kernel needs about 27M to boot, the debian one about 96M)")
    boot.add_argument("--ram-file", metavar="PATH",
                      help="keep RAM in this file, so it survives the process as RAM survives "
                           "a warm reboot (default: none, RAM ends with the process)")
    boot.add_argument("--cpus", type=_cpus, default=1, metavar="N",
                      help="number of CPUs, at most NR_CPUS 8192 (default 1)")
    boot.add_argument("--seed", type=_whole, default=0, metavar="N",
                      help="seed for everything random: cold-RAM garbage, KASLR (default 0)")
    boot.add_argument("--cmdline", default="", metavar='"..."',
                      help="the kernel command line (default: empty)")
    boot.add_argument("--firmware", default="seabios", choices=FIRMWARE_CHOICES,
                      metavar="NAME",
                      help="what a reset keeps and where the firmware's regions are: seabios "
                           "(QEMU's BIOS), pc-bios (a PC BIOS that clears RAM unless the warm "
                           "flag is set), uefi, ecc-scrub (RAM scrubbed at every reset); "
                           "docs/survival.md (default seabios)")
    boot.add_argument("--initrd", default="0", type=_size, metavar="SIZE",
                      help="an initramfs of SIZE bytes (e.g. 40M) that the boot loader copies "
                           "to the top of low RAM at every boot (default: none)")
    boot.add_argument("--kernel", default="ksim", choices=KERNEL_CHOICES, metavar="NAME",
                      help="the kernel build: ksim (small) or debian (Debian's 6.1 image, "
                           "which needs about 96M of RAM) (default ksim)")
    boot.add_argument("--pmu", action="store_true",
                      help="give the CPUs a performance-monitoring unit, as real x86 hardware "
                           "has (QEMU's TCG has none): the NMI watchdog's hard-lockup detector "
                           "then runs (default: no PMU)")
    boot.add_argument("--plugin", action="append", default=[], metavar="NAME",
                      help="build this plugin into the kernel (repeatable; default: none)")
    boot.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                      help="also look for plugins in DIR (repeatable; also $KSIM_PLUGIN_PATH)")
    boot.add_argument("-q", "--quiet", action="store_true",
                      help="print only the --cat results, not the serial console (default: "
                           "print both)")
    acts = boot.add_argument_group("actions, done in the order given once boot completes "
                                   "(repeatable)")
    acts.add_argument("--printk", action=_Action, metavar="[LEVEL:]TEXT",
                      help=f"printk TEXT, at LEVEL ({LEVELS}) if given, else the default "
                           "level")
    acts.add_argument("--cat", action=_Action, metavar="PATH", help="print a file")
    acts.add_argument("--ls", action=_Action, metavar="DIR",
                      help="print the names in a directory, one a line, as ls -1 DIR")
    acts.add_argument("--rm", action=_Action, metavar="PATH",
                      help="remove a file, as rm PATH (pstore: erase the record)")
    acts.add_argument("--write", action=_Action, metavar="PATH=VALUE",
                      help="write VALUE to a file, as echo VALUE > PATH")
    acts.add_argument("--oops", action=_Action, metavar="TEXT",
                      help="oops with TEXT: the shell is killed (or panic_on_oops panics)")
    acts.add_argument("--panic", action=_Action, metavar="TEXT", help="panic with TEXT")
    boot.set_defaults(actions=[])


def _add_stress(sub: argparse._SubParsersAction) -> None:
    from ksim import stress_cli
    stress_cli.add_parser(sub)


def _add_compare(sub: argparse._SubParsersAction) -> None:
    from ksim import compare_cli
    compare_cli.add_parser(sub)


def _add_merge(sub: argparse._SubParsersAction) -> None:
    from ksim import sweep
    sweep.add_merge_parser(sub)


def _add_run_and_schema(sub: argparse._SubParsersAction) -> None:
    from ksim.scenario import cli as scenario_cli
    scenario_cli.add_parsers(sub)


def _add_plugins(sub: argparse._SubParsersAction) -> None:
    plugins = sub.add_parser("plugins", help="list the plugins ksim can find",
                             description="List the plugins found (the ksim.plugins entry "
                             "points, --plugin-path folders, $KSIM_PLUGIN_PATH) with their "
                             "parameters.", allow_abbrev=False)
    plugins.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                         help="also look for plugins in DIR (repeatable; also "
                              "$KSIM_PLUGIN_PATH)")


# ksim's commands in --help's order, with what adds each one's parser (a command's module is
# imported only to add it: ``ksim boot`` imports none of the others')
_COMMANDS: tuple[tuple[tuple[str, ...], Callable[[argparse._SubParsersAction], None]], ...] = (
    (("boot",), _add_boot), (("stress",), _add_stress), (("compare",), _add_compare),
    (("merge",), _add_merge), (("run", "schema"), _add_run_and_schema),
    (("plugins",), _add_plugins))
BUILTIN_COMMANDS = tuple(name for names, _ in _COMMANDS for name in names)


def build_parser(plugin_command: Any = None, only: str | None = None) -> argparse.ArgumentParser:
    """The parser; ``plugin_command`` is a plugin's subcommand module to add (its
    ``add_parser(subparsers)``), found by :func:`parse` when the command is not ksim's own.
    With ``only`` (one of ksim's commands), that command's parser is the only one added:
    enough to parse a command line that starts with it (:func:`parse`)."""
    parser = _Parser(prog="ksim", description="Simulate the Linux console/printk, notifier "
                     "and boot-parameter machinery.", allow_abbrev=False)
    parser.add_argument("--version", action="version", version=f"ksim {__version__}",
                        help="print ksim's version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for names, add in _COMMANDS:
        if only is None or only in names:
            add(sub)
    if plugin_command is not None:
        plugin_command.add_parser(sub)
        for command in sub.choices.values():
            if command.get_default("plugin_main") is None and \
                    command.prog.split()[-1] not in BUILTIN_COMMANDS:
                command.set_defaults(plugin_main=plugin_command.main)
    for name, command in sub.choices.items():
        command.allow_abbrev = False  # a mistyped option gets a did-you-mean, not a guess
        if not command.epilog and name in EPILOGS:
            command.epilog = EPILOGS[name]
        command.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


def _subcommand(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            return action.choices[name]
    return parser


def _plugin_command(argv: Sequence[str]) -> Any:
    """The plugin module providing the command ``argv`` names, if ksim has no such command.

    Only then are the ``ksim.commands`` entry points looked up (importlib.metadata costs
    tens of milliseconds, which ksim's own commands do not pay)."""
    word = next((a for a in argv if not a.startswith("-")), None)
    if word is None or word in BUILTIN_COMMANDS or any(a in ("-h", "--help", "--version")
                                                         for a in argv[:argv.index(word)]):
        return None
    from ksim.plugins import load_command
    return load_command(word)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse ``argv``; an unknown option or a stray argument is a :class:`UsageError` with a
    did-you-mean from the subcommand's own options.  A command ksim does not have may come
    from a plugin (the ``ksim.commands`` entry points, :func:`ksim.plugins.load_command`)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    # A command line that starts with one of ksim's commands needs only that command's parser
    # (anything else, --help or a mistyped command, may need them all: their list).
    only = argv[0] if argv and argv[0] in BUILTIN_COMMANDS else None
    parser = build_parser(_plugin_command(argv), only)
    args, extras = parser.parse_known_args(argv)
    if extras:
        command = _subcommand(parser, getattr(args, "command", None))
        word = extras[0]
        if word.startswith("-"):
            options = [o for a in command._actions for o in a.option_strings]
            hint = did_you_mean(word.split("=", 1)[0], options)
            raise UsageError(f"{command.prog}: unknown option {shown(word)}{hint}")
        raise UsageError(f"{command.prog}: unexpected argument {shown(word)}")
    return args


# -- ksim boot ------------------------------------------------------------------------------
def _split_level(text: str) -> tuple[str, str, str | None]:
    """``(prefix, text, warning)``: a ``LEVEL:`` head becomes a KERN_<LEVEL> prefix; a head that
    looks like a level but is not one is printed as text, with a warning."""
    from ksim.kern_levels import LEVEL_NAMES, level_from_name
    from ksim.printk import KERN_SOH
    head, sep, rest = text.partition(":")
    if not sep:
        return "", text, None
    try:
        return KERN_SOH + str(level_from_name(head)), rest, None
    except ValueError:
        pass
    if re.fullmatch(r"[A-Za-z_]{1,12}|[0-9]{1,3}", head):
        names = list(LEVEL_NAMES) + ["warning"]
        hint = did_you_mean(head.lower(), names).removeprefix("; ")
        return "", text, (f"--printk {shown(text)}: {head!r} is not a log level"
                          + (f" ({hint})" if hint else "") + " and is printed as text, at the "
                          f"default level (levels: {LEVELS})")
    return "", text, None


class _Out:
    """stdout as bytes, flushed at once so a killed process loses nothing it printed."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def serial(self, data: bytes) -> None:
        if not self.quiet:
            Stdout.write(data)

    def cat(self, data: bytes) -> None:
        Stdout.write(data)


def _check_actions(actions: list[tuple[str, str]]) -> None:
    for kind, value in actions:
        if kind == "write" and "=" not in value:
            raise UsageError(f"ksim boot: --write {shown(value)}: expected PATH=VALUE")
        if kind == "printk":
            warning = _split_level(value)[2]
            if warning:
                print(f"ksim boot: warning: {warning}", file=sys.stderr)


async def _run_actions(kernel: Any, actions: list[tuple[str, str]], out: _Out,
                       started: list[int]) -> int:
    from ksim.current import current
    from ksim.errno import KernelError
    from ksim.panic import TaskKilled, die, panic
    from ksim.printk import printk
    status = EXIT_OK
    for kind, value in actions:
        started[0] += 1
        try:
            if kind == "printk":
                prefix, text, _ = _split_level(value)
                await printk(prefix + "%s\n", text)
            elif kind == "cat":
                out.cat(await kernel.read_file(value))
            elif kind == "ls":
                out.cat("".join(name + "\n" for name in kernel.list_dir(value)).encode())
            elif kind == "rm":
                await kernel.unlink_file(value)
            elif kind == "write":
                path, _, data = value.partition("=")
                await kernel.write_file(path, data + "\n")
            elif kind == "oops":
                comm = current().comm
                try:
                    await die(value)
                except TaskKilled as exc:
                    print(f"ksim boot: --oops: the shell ({comm}) was killed by signal "
                          f"{exc.signal}", file=sys.stderr)
            elif kind == "panic":
                await panic("%s", value)
        except KernelError as exc:
            print(f"ksim boot: --{kind} {shown(value)}: {os.strerror(-exc.errno)}",
                  file=sys.stderr)
            status = EXIT_ACTION
        except TaskKilled as exc:  # an oops in driver code the action ran: the shell is dead
            print(f"ksim boot: --{kind} {shown(value)}: the shell was killed by signal "
                  f"{exc.signal} (an oops: see the console)", file=sys.stderr)
            _not_run(actions[started[0]:], "the shell was killed")
            return EXIT_ACTION
    return status


def _not_run(actions: list[tuple[str, str]], why: str) -> None:
    if not actions:
        return
    listed = ", ".join(f"--{kind} {shown(value, 30)}" for kind, value in actions[:4])
    more = f" and {len(actions) - 4} more" if len(actions) > 4 else ""
    print(f"ksim boot: not run ({why}): {listed}{more}", file=sys.stderr)


async def _boot(args: argparse.Namespace) -> int:
    from ksim.machine import Machine
    from ksim.memory import RamFileError
    from ksim.units import format_size, parse_ram
    size = parse_ram(args.ram)
    plugins = []
    if args.plugin:
        from ksim.plugins import load_plugins
        plugins = load_plugins(args.plugin, args.plugin_path)
    out = _Out(args.quiet)
    try:
        machine = Machine(size, cpus=args.cpus, ram_file=args.ram_file, seed=args.seed,
                          serial_sink=out.serial, firmware=args.firmware, initrd=args.initrd,
                          kernel=args.kernel, pmu=args.pmu)
    except RamFileError as exc:
        raise UsageError(f"ksim boot: --ram-file: {exc}") from None
    except ValueError as exc:  # a machine that cannot be built as asked
        raise UsageError(f"ksim boot: {exc}") from None
    except (OSError, OverflowError, MemoryError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise UsageError(f"ksim boot: cannot map {format_size(size)} of address space for the "
                         f"machine's RAM: {reason} (the host refused a mapping that large)") \
            from None
    actions = args.actions
    started = [0]
    try:
        status = EXIT_OK
        async with machine.boot(args.cmdline, plugins) as kernel:
            if kernel.outcome == "running":
                status = await _run_actions(kernel, actions, out, started)
        skipped = actions[started[0]:]
        if kernel.outcome == "restart":
            _not_run(skipped, "the machine restarted")
            if args.ram_file:
                print("ksim boot: the machine restarted; boot again with the same --ram-file "
                      "for the next boot", file=sys.stderr)
            else:
                print("ksim boot: the machine restarted; its RAM was not kept (no --ram-file)",
                      file=sys.stderr)
            return EXIT_RESTARTED
        if kernel.outcome in ("halt", "power_off"):
            _not_run(skipped, "the kernel panicked" if kernel.panicked
                     else f"the machine stopped ({kernel.outcome})")
            if kernel.panicked and "Kernel panic - not syncing" not in kernel.serial_output(0):
                # no console was up to say it (an early panic): the simulator says it
                print(f"ksim boot: the kernel panicked before any console was up: "
                      f"{shown(kernel.panic_message or '', 200)}", file=sys.stderr)
            return EXIT_HALTED
        if kernel.outcome == "hang":
            _not_run(skipped, "the machine hung")
            print(kernel.outcome_detail or "ksim: the machine hung", file=sys.stderr)
            return EXIT_HUNG
        return status
    finally:
        machine.close()


def _boot_command(args: argparse.Namespace) -> int:
    from ksim.vclock import run_virtual
    _check_actions(args.actions)
    # the simulator _boot runs: imported while the collector still waits (clitools.pause_gc)
    import ksim.machine  # noqa: F401
    resume_gc()
    return run_virtual(_boot, args)


# -- ksim plugins ---------------------------------------------------------------------------
def _plugins(args: argparse.Namespace) -> int:
    from ksim.plugins import PluginError, discover, load
    found = discover(args.plugin_path)
    if not found:
        Stdout.write("no plugins found\n")
        return EXIT_OK
    for name, spec in sorted(found.items()):
        try:
            cls = load(spec)
        except PluginError as exc:
            Stdout.write(f"{name}  [cannot load: {exc}]\n")
            continue
        lines = [f"{name}  ({spec.origin}: {spec.target})"]
        if cls.description:
            lines.append(f"    {cls.description}")
        lines.append(f"    author: {cls.author or '-'}  license: {cls.license}  initcall: "
                     f"{cls.initcall}")
        for p in cls.module_params():
            lines.append(f"    param {p.name}: {p.type_name}, default {p.default!r}, "
                         f"mode {p.perm:04o}" + (f" - {p.desc}" if p.desc else ""))
        for h in cls.boot_handlers():
            kind = "early_param" if h.early else "__setup"
            lines.append(f"    {kind} \"{h.name}\"" + (" (core)" if h.core else ""))
        Stdout.write("\n".join(lines) + "\n")
    return EXIT_OK


# -- dispatch -------------------------------------------------------------------------------
def _dispatch(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)  # a command that names its own main
    if handler is not None:
        status_: int = handler(args)
        return status_
    plugin_main = getattr(args, "plugin_main", None)
    if plugin_main is not None:
        status: int = plugin_main(args)
        return status
    if args.command == "stress":
        from ksim import stress_cli
        return stress_cli.main(args)
    if args.command == "merge":
        from ksim import sweep
        return sweep.merge_main(args)
    if args.command in ("run", "schema"):
        from ksim.scenario import cli as scenario_cli
        return scenario_cli.main(args)
    if args.command == "plugins":
        return _plugins(args)
    return _boot_command(args)


def _error(message: str) -> None:
    print(one_line(message), file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    command = "ksim"
    try:
        args = parse(argv)
        command = f"ksim {args.command}"
        if args.command != "boot":
            resume_gc()  # ksim boot resumes it once it has imported the simulator
        return _dispatch(args)
    except _Exit as exc:
        return exc.status
    except UsageError as exc:
        _error(str(exc))
        return EXIT_USAGE
    except BrokenPipeError:
        Stdout.close()
        return EXIT_ACTION  # the command did not finish: never report success
    except BaseException as exc:
        if is_interrupt(exc):
            _error(f"{command}: interrupted")
            return EXIT_INTERRUPTED
        if isinstance(exc, (SystemExit, GeneratorExit)):
            raise
        return _unexpected(command, exc)


def _unexpected(command: str, exc: BaseException) -> int:
    from ksim.plugins import PluginError
    if isinstance(exc, (PluginError, ValueError)):
        _error(f"{command}: {exc}")  # a plugin, a RAM file, a value the simulator refused
        return EXIT_USAGE
    if isinstance(exc, BaseExceptionGroup) and len(exc.exceptions) == 1:
        return _unexpected(command, exc.exceptions[0])
    import traceback
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    _error(f"{command}: internal error: {type(exc).__name__}: {exc}{where}")
    return EXIT_USAGE


def run() -> None:
    sys.exit(main())

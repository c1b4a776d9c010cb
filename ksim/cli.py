"""The ``ksim`` command line: ``ksim boot`` and ``ksim plugins``.

Exit status of ``ksim boot`` (also in the README):

* 0 — the boot ran every action;
* 1 — an action failed (a file that does not exist, a write the mode forbids, ...);
* 2 — bad usage or input: a flag, a size, a plugin, a RAM file;
* 3 — the kernel panicked and halted (``panic=0``, the default);
* 4 — the machine restarted (``panic=N``, a reboot, memconsole's notifier): boot again on the
  same ``--ram-file`` for the next boot;
* 5 — the machine hung (a boot option's handler looped forever, no CPU can make progress):
  ksim's diagnostic is printed on stderr.

Errors are one line on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

import trio
import trio.testing

from ksim import stress_cli
from ksim.scenario import cli as scenario_cli
from ksim.errno import KernelError
from ksim.firmware import FIRMWARE, FIRMWARE_NAMES
from ksim.machine import Machine
from ksim.memory import RamFileError
from ksim.panic import TaskKilled, die, panic
from ksim.plugins import PluginError, discover, load, load_plugins
from ksim.printk import KERN_SOH, level_from_name, printk
from ksim.units import parse_size
from ksim.vmlinux import IMAGE_NAMES

EXIT_OK, EXIT_ACTION, EXIT_USAGE, EXIT_HALTED, EXIT_RESTARTED, EXIT_HUNG = 0, 1, 2, 3, 4, 5


class UsageError(Exception):
    """Bad input from the user: reported as ``ksim: message`` with exit status 2."""


class _Action(argparse.Action):
    """Collects the ordered ``--printk/--cat/--write/--oops/--panic`` actions."""

    def __call__(self, parser, namespace, values, option_string=None):
        actions = getattr(namespace, "actions", None) or []
        actions.append((self.dest, values))
        namespace.actions = actions


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="ksim", description="Simulate the Linux console/printk, notifier "
                     "and boot-parameter machinery.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    boot = sub.add_parser("boot", help="boot a machine, run actions, print its serial console",
                          description="Boot a simulated machine and run ACTIONs in order.")
    boot.add_argument("--ram", default="64M", help="RAM size, e.g. 64M, 4G (default 64M)")
    boot.add_argument("--ram-file", help="keep RAM in this file, so it survives the process")
    boot.add_argument("--cpus", type=int, default=1, help="number of CPUs (default 1)")
    boot.add_argument("--seed", type=int, default=0, help="seed for everything random")
    boot.add_argument("--cmdline", default="", help="the kernel command line")
    boot.add_argument("--firmware", default="seabios", choices=FIRMWARE_NAMES,
                      help="what a reset keeps: " + "; ".join(
                          f"{fw.name}: {fw.description}" for fw in FIRMWARE.values())
                      + " (default seabios)")
    boot.add_argument("--initrd", default="0", metavar="SIZE",
                      help="an initramfs of SIZE bytes (e.g. 40M) that the boot loader copies "
                      "to the top of low RAM at every boot (default: none)")
    boot.add_argument("--kernel", default="ksim", choices=IMAGE_NAMES,
                      help="the kernel build: ksim (small, the default) or debian (Debian's "
                      "6.1 image, which needs about 96M of RAM)")
    boot.add_argument("--plugin", action="append", default=[], metavar="NAME",
                      help="build this plugin into the kernel (repeatable)")
    boot.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                      help="also look for plugins in DIR (repeatable; also $KSIM_PLUGIN_PATH)")
    boot.add_argument("-q", "--quiet", action="store_true",
                      help="print only the --cat results, not the serial console")
    acts = boot.add_argument_group("actions, done in the order given once boot completes")
    acts.add_argument("--printk", action=_Action, metavar="[LEVEL:]TEXT",
                      help="printk TEXT, at LEVEL (emerg..debug or 0-7) if given")
    acts.add_argument("--cat", action=_Action, metavar="PATH", help="print a file")
    acts.add_argument("--write", action=_Action, metavar="PATH=VALUE",
                      help="write VALUE to a file, as echo VALUE > PATH")
    acts.add_argument("--oops", action=_Action, metavar="TEXT", help="oops with TEXT")
    acts.add_argument("--panic", action=_Action, metavar="TEXT", help="panic with TEXT")
    boot.set_defaults(actions=[])

    stress_cli.add_parser(sub)
    scenario_cli.add_parsers(sub)  # ksim run, ksim schema

    plugins = sub.add_parser("plugins", help="list the plugins ksim can find")
    plugins.add_argument("--plugin-path", action="append", default=[], metavar="DIR")
    return parser


def _split_level(text: str) -> tuple[str, str]:
    head, sep, rest = text.partition(":")
    if sep:
        try:
            return KERN_SOH + str(level_from_name(head)), rest
        except ValueError:
            pass
    return "", text


class _Out:
    """stdout as bytes, flushed at once so a killed process loses nothing it printed."""

    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet
        self.buffer = sys.stdout.buffer

    def serial(self, data: bytes) -> None:
        if not self.quiet:
            self.buffer.write(data)
            self.buffer.flush()

    def cat(self, data: bytes) -> None:
        self.buffer.write(data)
        self.buffer.flush()


async def _run_actions(kernel, actions, out: _Out) -> int:
    status = EXIT_OK
    for kind, value in actions:
        try:
            if kind == "printk":
                prefix, text = _split_level(value)
                await printk(prefix + "%s\n", text)
            elif kind == "cat":
                out.cat(await kernel.read_file(value))
            elif kind == "write":
                path, sep, data = value.partition("=")
                if not sep:
                    print(f"ksim: --write {value!r}: expected PATH=VALUE", file=sys.stderr)
                    status = EXIT_ACTION
                    continue
                await kernel.write_file(path, data + "\n")
            elif kind == "oops":
                try:
                    await die(value)
                except TaskKilled as exc:
                    print(f"ksim: --oops: the shell was {exc}", file=sys.stderr)
            elif kind == "panic":
                await panic("%s", value)
        except KernelError as exc:
            print(f"ksim: {kind} {value}: {os.strerror(-exc.errno)}", file=sys.stderr)
            status = EXIT_ACTION
    return status


async def _boot(args: argparse.Namespace) -> int:
    try:
        size = parse_size(args.ram)
    except ValueError as exc:
        raise UsageError(f"ksim boot: --ram: {exc}") from None
    if args.cpus < 1:
        raise UsageError(f"ksim boot: --cpus: a machine needs at least one CPU, not {args.cpus}")
    try:
        initrd = parse_size(args.initrd)
    except ValueError as exc:
        raise UsageError(f"ksim boot: --initrd: {exc}") from None
    plugins = load_plugins(args.plugin, args.plugin_path)
    out = _Out(args.quiet)
    machine = Machine(size, cpus=args.cpus, ram_file=args.ram_file, seed=args.seed,
                      serial_sink=out.serial, firmware=args.firmware, initrd=initrd,
                      kernel=args.kernel)
    try:
        status = EXIT_OK
        async with machine.boot(args.cmdline, plugins) as kernel:
            if kernel.outcome == "running":
                status = await _run_actions(kernel, args.actions, out)
        if kernel.outcome == "restart":
            print("ksim: the machine restarted; boot again with the same --ram-file for the "
                  "next boot", file=sys.stderr)
            return EXIT_RESTARTED
        if kernel.outcome in ("halt", "power_off"):
            return EXIT_HALTED
        if kernel.outcome == "hang":
            print(kernel.outcome_detail or "ksim: the machine hung", file=sys.stderr)
            return EXIT_HUNG
        return status
    finally:
        machine.close()


def _plugins(args: argparse.Namespace) -> int:
    found = discover(args.plugin_path)
    if not found:
        print("no plugins found")
        return EXIT_OK
    for name, spec in sorted(found.items()):
        try:
            cls = load(spec)
        except PluginError as exc:
            print(f"{name}  [cannot load: {exc}]")
            continue
        print(f"{name}  ({spec.origin}: {spec.target})")
        if cls.description:
            print(f"    {cls.description}")
        print(f"    author: {cls.author or '-'}  license: {cls.license}  initcall: "
              f"{cls.initcall}")
        for p in cls.module_params():
            print(f"    param {p.name}: {p.type_name}, default {p.default!r}, "
                  f"mode {p.perm:04o}" + (f" - {p.desc}" if p.desc else ""))
        for h in cls.boot_handlers():
            kind = "early_param" if h.early else "__setup"
            print(f"    {kind} \"{h.name}\"" + (" (core)" if h.core else ""))
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        if args.command == "stress":
            return stress_cli.main(args)
        if args.command in ("run", "schema"):
            return scenario_cli.main(args)
        if args.command == "plugins":
            return _plugins(args)
        return trio.run(_boot, args, clock=trio.testing.MockClock(autojump_threshold=0))
    except UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except (PluginError, RamFileError, ValueError) as exc:
        print(f"ksim: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ksim: interrupted", file=sys.stderr)
        return 130
    except BaseExceptionGroup as group:
        interrupted, rest = group.split(KeyboardInterrupt)
        if rest is None:
            print("ksim: interrupted", file=sys.stderr)
            return 130
        raise
    except BrokenPipeError:
        return EXIT_OK


def run() -> None:
    sys.exit(main())

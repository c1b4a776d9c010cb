"""The ``ksim compare`` command line: options, fault names, usage errors (docs/compare.md).

Kept apart from :mod:`ksim.compare` so that building ``ksim``'s parser imports no simulator
(tests/test_startup.py); the experiments are imported when the command runs.
"""

from __future__ import annotations

import argparse
import json
import re

# The faults ksim.compare implements, in table order, with what each changes.
FAULT_DOCS: dict[str, str] = {
    "clean": "a warm reboot (the panic's own reset), nothing else",
    "next-boot-5k": "the reading boot prints 5 KiB before the log is read",
    "second-panic": "the next boot panics too before the log is read; the third reads (the "
                    "first Oops is looked for)",
    "kaslr": "the default KASLR: nokaslr dropped from every boot",
    "initrd-growth": "the initramfs grows from 40M to 60M between the boots",
    "mem-change": "mem=256M on the boot after the crash",
    "bitflips": "8 seeded bit flips in the driver's region between the boots",
    **{f"firmware-{fw}": f"the {fw} firmware profile's warm reset"
       for fw in ("seabios", "pc-bios", "uefi", "ecc-scrub")},
    "cold-boot": "power cut between the boots: RAM is garbage",
    "panic-before-init": "boot 1 panics at an early initcall, before the driver's init",
}
NOT_IMPLEMENTED = ("page-offset", "lock-held", "nmi-in-write", "torn-reset", "both-drivers",
                   "user fault files")


def parse_seeds(text: str) -> tuple[int, ...]:
    """``N`` (seeds 0..N-1) or ``A..B`` (inclusive); ValueError otherwise."""
    m = re.fullmatch(r"(\d+)\.\.(\d+)|(\d+)", text.strip())
    if m is None:
        raise ValueError(f"--seeds {text!r}: expected N or A..B")
    if m.group(3) is not None:
        n = int(m.group(3))
        if n < 1:
            raise ValueError("--seeds: at least 1")
        return tuple(range(n))
    a, b = int(m.group(1)), int(m.group(2))
    if b < a:
        raise ValueError(f"--seeds {text!r}: the range is empty")
    return tuple(range(a, b + 1))


EPILOG = ("faults:\n" + "".join(f"  {name:<19} {doc}\n" for name, doc in FAULT_DOCS.items())
          + "not implemented: " + ", ".join(NOT_IMPLEMENTED) + "\n\nexit status:\n  0 done\n"
          "  2 bad usage: unknown driver or fault, bad --seeds or -j, an output path that is a "
          "folder")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "compare", help="run named faults against log-keeping drivers, count what survives",
        description="Crash, apply a fault, read the log on the next boot; for every (driver, "
        "fault) the fraction of seeds in which the Oops was recovered intact, damaged but "
        "flagged, damaged silently or lost, plus reserved bytes and printk cost. "
        "docs/compare.md.", epilog=EPILOG, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("drivers", nargs="+", metavar="DRIVER",
                   help="plugins declaring compare_cmdline (e.g. memconsole ramoops)")
    p.add_argument("--faults", default=",".join(FAULT_DOCS), metavar="NAME,...",
                   help="comma-separated faults (default: all implemented)")
    p.add_argument("--seeds", default="10", metavar="N|A..B",
                   help="seeds 0..N-1, or A..B inclusive (default 10)")
    p.add_argument("--json", metavar="F", help="write the results as JSON to F (atomic)")
    p.add_argument("--html", metavar="F", help="write a self-contained HTML page to F (atomic)")
    p.add_argument("-j", "--jobs", type=int, default=1, metavar="N",
                   help="worker processes (default 1; the output is the same)")
    p.add_argument("--plugin-path", action="append", default=[], metavar="DIR",
                   help="also look for plugins in DIR (repeatable; also $KSIM_PLUGIN_PATH)")
    p.set_defaults(plugin_main=main)
    return p


def main(args: argparse.Namespace) -> int:
    from ksim.clitools import Stdout, UsageError, did_you_mean, prepare_output, write_atomic
    from ksim.plugins import PluginError, load_plugins
    try:
        seeds = parse_seeds(args.seeds)
    except ValueError as exc:
        raise UsageError(f"ksim compare: {exc}") from None
    faults = [f for f in args.faults.split(",") if f]
    for f in faults:
        if f not in FAULT_DOCS:
            why = " (not implemented)" if f in NOT_IMPLEMENTED else did_you_mean(f, FAULT_DOCS)
            raise UsageError(f"ksim compare: unknown fault {f!r}{why}; faults: "
                             + ", ".join(FAULT_DOCS))
    if not faults:
        raise UsageError("ksim compare: --faults names no fault")
    if args.jobs < 1:
        raise UsageError(f"ksim compare: -j {args.jobs}: at least 1")
    path = tuple(args.plugin_path)
    try:
        drivers = load_plugins(args.drivers, path)
    except PluginError as exc:
        raise UsageError(f"ksim compare: {exc}") from None
    for d in drivers:
        if not d.compare_cmdline or not d.compare_log:
            raise UsageError(f"ksim compare: plugin {d.name!r} declares no compare_cmdline/"
                             "compare_log (docs/plugins.md)")
    outputs = {opt: prepare_output(getattr(args, opt), f"--{opt}", "compare")
               for opt in ("json", "html") if getattr(args, opt)}
    from ksim.compare import compare
    report = compare(drivers, faults, seeds, args.jobs, path)
    Stdout.write(report.table())
    if "json" in outputs:
        write_atomic(outputs["json"], json.dumps(report.to_json(), indent=1) + "\n")
    if "html" in outputs:
        write_atomic(outputs["html"], report.html())
    return 0

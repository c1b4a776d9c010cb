"""Fuzzing the command line: any generated command line boots to an outcome.

The property: ``Machine(...).boot(cmdline)`` ends (shutdown, halt, restart ...) and never
raises.  Command lines are built from the parameters ksim knows, with values drawn from
numbers at and past their limits, Unicode digits, separators, quotes and bytes that are not
UTF-8 (surrogate-escaped, as Python hands such bytes over).

``tests/test_cmdline_fuzz.py`` runs the property under Hypothesis, sized for the suite.  This
script is the longer run::

    .venv/bin/python tests/fuzz_cmdline.py --cmdlines 1000000 [--seed N]

It prints how many command lines it tried and how many failed, with the first failures.
"""

from __future__ import annotations

import argparse
import random
import sys
import traceback

from hypothesis import strategies as st

PARAMS = ("console", "earlyprintk", "loglevel", "quiet", "debug", "ignore_loglevel",
          "log_buf_len", "keep_bootcon", "mem", "memmap", "memtest", "maxcpus", "nr_cpus",
          "panic", "panic_on_warn", "pause_on_oops", "oops", "reboot", "init", "rdinit",
          "crashkernel", "nmi_watchdog", "softlockup_panic", "watchdog_thresh", "nowatchdog",
          "nokaslr", "printk.time", "printk.ignore_loglevel", "panic.panic_timeout",
          "initcall_debug", "no_hash_pointers", "name", "unknown", "ksim.page_offset", "--")
VALUES = ("", "0", "1", "-1", "7", "8", "0x10", "4294967295", "4294967296",
          "99999999999999999999", "1M", "3M", "1G", "64T", "1000T", "ttyS0", "ttyS0,115200",
          "ttyS0,115200/loglevel:\u00b2", "tty\u00b2", "\u00b2", "\u0663", "ttyS0/loglevel:9",
          "serial,ttyS0,keep", "ttyS\u00b2", "s\u00b2", "w", "panic_warm", "16M@0",
          "64K$0x100000", "1M#0x100000", "1M!0x100000", "on", "off", "y", "n", "\"a b\"",
          "\"", "=", ",", "/", "\xff", "\udcff", "\udc80\udcfe", "\x00", "\t", "a" * 300)

# Sizes and ranges around and past the fuzzed machine's 64 MiB: RAM that memmap= or mem= names
# but the machine lacks (D11), drawn for half of the mem= and memmap= words.
MEMORY_VALUES = ("128M@64M", "1G@0x4000000", "64M@512M", "4M@1G", "2M@0x3e00000", "1M@63M",
                 "4G@4G", "16M@0xd0000000", "64M", "65M", "128M", "1G", "64M$0", "128M#64M",
                 "64M@0,128M@64M", "exactmap,640K@0,128M@1M")


def generate(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(0, 8)):
        name = rng.choice(PARAMS)
        kind = rng.random()
        if name in ("mem", "memmap") and rng.random() < 0.5:
            words.append(f"{name}={rng.choice(MEMORY_VALUES)}")
        elif kind < 0.2:
            words.append(name)
        elif kind < 0.85:
            words.append(f"{name}={rng.choice(VALUES)}")
        else:
            words.append(f"{name}={rng.choice(VALUES)}{rng.choice(VALUES)}")
    return rng.choice((" ", "  ", "\t")).join(words)


def cmdlines() -> st.SearchStrategy[str]:
    return st.randoms(use_true_random=False).map(generate)


def main(argv: list[str] | None = None) -> int:
    from test_cmdline_fuzz import boot_outcome

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cmdlines", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    failed = 0
    for _ in range(args.cmdlines):
        cmdline = generate(rng)
        try:
            boot_outcome(cmdline)
        except BaseException as exc:  # noqa: BLE001 - every exception is a finding
            if isinstance(exc, KeyboardInterrupt):
                raise
            failed += 1
            if failed <= 5:
                print(f"FAIL {cmdline!r}: {type(exc).__name__}: {exc}"[:500])
                traceback.print_exc(limit=3)
    print(f"command lines: tried {args.cmdlines}, failed {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

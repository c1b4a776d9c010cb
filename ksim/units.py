"""Strict parsing and formatting of user-facing sizes.

This is the size syntax of ksim's *own* interface (the CLI, ``Machine(ram="64M")``), not of the simulated
kernel: kernel parameters keep the kernel's lax parsers (``memparse``, P14, or ``simple_strtoul`` for the
2009 ``memconsole=``, F1), because reproducing their quirks is the point of the simulation.  Here a typo
must be an error, never a silently different machine, so the grammar is small and closed:

    size   := digits [ suffix ]
    digits := one or more ASCII decimal digits
    suffix := ( "K" | "M" | "G" | "T" ) [ "B" | "iB" ]   (case-insensitive)
            | "B"

Multiples are always binary (K = 2**10 ... T = 2**40), as in memparse; the optional ``B``/``iB`` is
decoration only, so ``64M``, ``64MB`` and ``64MiB`` all mean 64 * 2**20 and ``512B`` means 512.  Signs,
hex, fractions, embedded or surrounding whitespace and unknown suffixes are rejected.

The machine's own limits are checked here too, once for every front-end (``ksim boot --ram``,
``ksim stress``, a scenario's ``machine: {ram, cpus}``, ``Machine(...)``), so the command line and
YAML refuse the same things with the same words:

* :func:`parse_ram`: RAM is a whole number of 4 KiB pages, at least ``MIN_RAM`` (32 MiB: the
  kernel is loaded at 16 MiB, x86's ``LOAD_PHYSICAL_ADDR``, and the ksim build needs about 11
  MiB more to decompress; the debian build needs more, which the boot itself reports) and at most ``MAX_RAM`` (64 TiB: x86-64 with 4-level paging,
  ``MAX_PHYSMEM_BITS`` = 46, the size of the direct map ksim models);
* :func:`check_cpus`: at least one CPU and at most ``NR_CPUS`` (8192, x86-64's
  ``CONFIG_NR_CPUS`` maximum).  Linux boots with NR_CPUS of them and ignores the rest
  ("APIC: NR_CPUS/possible_cpus limit of 8192 reached"); ksim refuses the machine instead,
  since a simulated machine with CPUs the kernel never uses is a typo, not a test.
"""

from __future__ import annotations

import re

__all__ = ["MAX_RAM", "MIN_RAM", "NR_CPUS", "check_cpus", "format_size", "parse_ram",
           "parse_size"]

PAGE_SIZE = 4096  # ksim.memory.PAGE_SIZE (memory imports this module, not the reverse)
MIN_RAM = 32 << 20
MAX_RAM = 1 << 46  # MAX_PHYSMEM_BITS on x86-64 with 4-level paging
NR_CPUS = 8192
_MAX_DIGITS = 24  # more digits than any size or count below can have: refused unread

_MULTIPLIERS: dict[str, int] = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

# [0-9] rather than \d: \d would accept non-ASCII digits such as "٦٤".
_SIZE_RE = re.compile(r"([0-9]+)(?:([KMGT])(?:I?B)?|B)?", re.IGNORECASE)


def parse_size(text: str) -> int:
    """Return the number of bytes *text* denotes; raise ``ValueError`` naming *text* otherwise."""
    if not isinstance(text, str):
        raise TypeError(f"size must be a str, not {type(text).__name__}")
    match = _SIZE_RE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"invalid size {text!r}: expected a number with an optional K, M, G or T suffix"
        )
    digits, suffix = match.groups()
    if len(digits.lstrip("0")) > _MAX_DIGITS:
        raise ValueError(f"invalid size {_clip(text)}: {len(digits)} digits is no size")
    return int(digits) * _MULTIPLIERS[(suffix or "").upper()]


def _clip(text: str, limit: int = 40) -> str:
    return repr(text) if len(text) <= limit else repr(text[:limit] + "...")


def parse_ram(value: str | int) -> int:
    """The machine's RAM in bytes from ``"64M"`` (or a byte count); ``ValueError`` naming the
    value and the limit it breaks (see the module docstring)."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ValueError(f"invalid RAM size {value!r}: expected a size such as 64M")
    size = parse_size(value) if isinstance(value, str) else value
    text = _clip(value) if isinstance(value, str) else str(value)
    if size <= 0 or size % PAGE_SIZE:
        raise ValueError(f"invalid size {text}: RAM must be a positive multiple of {PAGE_SIZE}")
    if size < MIN_RAM:
        raise ValueError(f"invalid size {text}: the kernel is loaded at 16M and decompresses "
                         "above it; give the machine at least 32M")
    if size > MAX_RAM:
        raise ValueError(f"invalid size {text}: at most {format_size(MAX_RAM)} (x86-64's "
                         "MAX_PHYSMEM_BITS, 46, is the limit)")
    return size


def check_cpus(cpus: int) -> int:
    """``cpus`` if a machine may have that many CPUs; ``ValueError`` otherwise."""
    if isinstance(cpus, bool) or not isinstance(cpus, int):
        raise ValueError(f"invalid CPU count {cpus!r}: expected a whole number")
    if cpus < 1:
        raise ValueError(f"a machine needs at least one CPU, not {cpus}")
    if cpus > NR_CPUS:
        shown = str(cpus) if len(str(cpus)) <= 24 else f"{str(cpus)[:24]}..."
        raise ValueError(f"{shown} CPUs is more than NR_CPUS ({NR_CPUS}): Linux would ignore "
                         f"all but {NR_CPUS} of them (\"APIC: NR_CPUS/possible_cpus limit of "
                         f"{NR_CPUS} reached\")")
    return cpus


def format_size(n: int) -> str:
    """Format *n* bytes with the largest suffix that divides it exactly.

    Exactness keeps ``parse_size(format_size(n)) == n`` for every n, so formatted sizes can be pasted
    back into a command line (65536 -> "64K", 1536 -> "1536", 0 -> "0").
    """
    if n < 0:
        raise ValueError(f"invalid size {n}: sizes are not negative")
    for suffix in ("T", "G", "M", "K"):
        multiplier = _MULTIPLIERS[suffix]
        if n and n % multiplier == 0:
            return f"{n // multiplier}{suffix}"
    return str(n)

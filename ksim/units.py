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
"""

from __future__ import annotations

import re

__all__ = ["format_size", "parse_size"]

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
    return int(digits) * _MULTIPLIERS[(suffix or "").upper()]


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

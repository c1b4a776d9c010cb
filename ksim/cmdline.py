"""Command-line primitives: a port of lib/cmdline.c, lib/kstrtox.c and simple_strto*().

Everything that turns boot-line text into names, values and numbers lives here, with the
kernel's quirks intact, because those quirks are observable: ``memconsole=1M`` is one byte under
``simple_strtoul`` (F1) but a mebibyte under :func:`memparse` (P14); ``foo="a b"`` reaches init
as ``foo=a b`` (P2, P6); ``panic=10x`` is an error for ``kstrtoint`` but ``10`` for the 2009
parsers (P16).  Rule ids (P2, P14 ...) refer to ``linux-semantics.md``.

Three families of number parsers coexist, as in the kernel:

* ``simple_strto*`` (lib/vsprintf.c): lax, stop at the first non-digit, never fail, wrap on
  overflow.  What 2009 code (and still memparse/get_option) uses.
* ``kstrto*`` (lib/kstrtox.c): strict, the whole string must be a number (one trailing newline
  allowed, because sysfs writes usually end in one), overflow is ``-ERANGE``.  What modern
  parameter types use (P16).
* :func:`memparse` / :func:`get_option` / :func:`get_options` (lib/cmdline.c): lax helpers for
  sizes and integer lists on top of ``simple_strtoull``.

C functions that return a value through ``char **endp`` return ``(value, rest)`` here, where
*rest* is the unparsed tail (what ``*endp`` would point at).  Failures of the ``kstrto*``
family raise :class:`~ksim.errno.KernelError` carrying the kernel's negative errno.
"""

from __future__ import annotations

import attrs

from ksim.errno import EINVAL, ERANGE, KernelError

__all__ = [
    "Token",
    "get_option",
    "get_options",
    "kstrtobool",
    "kstrtoint",
    "kstrtol",
    "kstrtoll",
    "kstrtos16",
    "kstrtos8",
    "kstrtou16",
    "kstrtou8",
    "kstrtouint",
    "kstrtoul",
    "kstrtoull",
    "memparse",
    "next_arg",
    "parameq",
    "parameqn",
    "repair_env_string",
    "simple_strtol",
    "simple_strtoul",
    "simple_strtoull",
    "split_args",
]

# The kernel's isspace() (lib/ctype.c): the six ASCII white-space characters plus Latin-1 NBSP.
# Not str.isspace(), which also splits on the ASCII separators \x1c-\x1f and Unicode spaces that
# no kernel would treat as a token boundary.
_SPACES = frozenset(" \t\n\v\f\r\xa0")

_DIGITS = {c: i for i, c in enumerate("0123456789abcdef")} | {
    c: 10 + i for i, c in enumerate("ABCDEF")
}

_U64_MASK = (1 << 64) - 1


def _wrap_signed(value: int, bits: int) -> int:
    """Reinterpret the low *bits* of *value* as two's complement, as a C cast to a signed type."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


# --- Tokenizer (P2) ---------------------------------------------------------------------------


@attrs.frozen
class Token:
    """One ``name[=value]`` word of a command line, as ``next_arg()`` splits it (P2).

    ``value`` is ``None`` for a bare word (no ``=``) and ``""`` for ``name=``; the kernel keeps
    that distinction (a NULL value selects NOARG handling, P5).  ``raw`` is the word exactly as
    it appears on the line, quotes included, for messages that echo the original text.
    """

    name: str
    value: str | None
    raw: str


def _skip_spaces(line: str, pos: int) -> int:
    while pos < len(line) and line[pos] in _SPACES:
        pos += 1
    return pos


def next_arg(line: str, pos: int) -> tuple[Token, int] | None:
    """Parse the word starting at *pos*; return it and the position of the next word.

    A port of lib/cmdline.c ``next_arg()`` (modern, P2), returning ``None`` once only
    separators are left.  The rules, all of them consequences of that small C function:

    * separators are the kernel's ``isspace()`` characters, and runs of them are one separator;
    * every ``"`` toggles quoting, quoted separators do not end the word, and there is no
      escape character, so an unterminated quote swallows the rest of the line;
    * the first ``=`` at an index > 0 splits name from value (an ``=`` at index 0 is kept in
      the name, but a later one still splits); further ``=`` stay in the value;
    * a word starting with ``"`` loses that quote, and its final ``"`` if it has one: that is
      how ``"a b=c"`` yields the name ``a b``;
    * a value starting with ``"`` loses that quote and the word's final ``"``: ``foo="a b"``
      yields ``a b``, while ``foo=a"b c"d`` keeps its inner quotes literally.
    """
    start = _skip_spaces(line, pos)
    if start == len(line):
        return None
    quoted = line[start] == '"'
    body_start = start + 1 if quoted else start
    in_quote = quoted
    equals = 0  # 0 doubles as "not found", which is why an '=' at index 0 cannot split
    end = body_start
    while end < len(line):
        c = line[end]
        if c in _SPACES and not in_quote:
            break
        if equals == 0 and c == "=":
            equals = end - body_start
        if c == '"':
            in_quote = not in_quote
        end += 1
    body = line[body_start:end]
    name, value = body, None
    # The C code NULs out the word's last character at most once; remember whether it did.
    last_cut = False
    if equals:
        name, value = body[:equals], body[equals + 1 :]
        if value.startswith('"'):
            value = value[1:]
            if body.endswith('"'):
                value, last_cut = value[:-1], True
    if quoted and not last_cut and body.endswith('"'):
        if value is None:
            name = name[:-1]
        else:
            value = value[:-1]
    # The separator that ended the word is consumed with it, then any that follow.
    next_pos = _skip_spaces(line, end + 1) if end < len(line) else end
    return Token(name, value, line[start:end]), next_pos


def split_args(line: str) -> list[Token]:
    """Every word of *line*, in order (repeated :func:`next_arg`)."""
    tokens: list[Token] = []
    pos = 0
    while (step := next_arg(line, pos)) is not None:
        token, pos = step
        tokens.append(token)
    return tokens


def repair_env_string(tok: Token) -> str:
    """The single string init receives for *tok*: ``name=value``, or ``name`` when bare.

    Port of init/main.c ``repair_env_string()``.  next_arg() wrote a NUL over the ``=`` (and,
    for ``name="value"``, the value starts one character later, after the opening quote); the
    repair puts the ``=`` back and, in the quoted case, moves the value left over the quote.
    The closing quote stays cut, so ``foo="a b"`` reaches init as ``foo=a b`` and ``"a b=c"``
    as ``a b=c`` (P6 step 1).

    init/main.c ``set_init_arg()`` runs the same repair on every word after ``--`` (P4), so
    this function also gives the argv strings of those words; note that the quotes are *not*
    restored there either.
    """
    if tok.value is None:
        return tok.name
    return f"{tok.name}={tok.value}"


# --- Names (P3) -------------------------------------------------------------------------------


def _dash2underscore(s: str) -> str:
    return s.replace("-", "_")


def parameqn(a: str, b: str, n: int) -> bool:
    """True if the first *n* characters of *a* and *b* match, ``-`` equal to ``_`` (P3).

    C strings end in a NUL that takes part in the comparison, so a string shorter than *n*
    only matches one that ends at the same place: ``parameqn("ab", "abc", 3)`` is false.
    """
    return _dash2underscore(a[:n]).ljust(n, "\0") == _dash2underscore(b[:n]).ljust(n, "\0")


def parameq(a: str, b: str) -> bool:
    """Whole-name equality with ``-`` equal to ``_`` on both sides (P3, modern).

    Case still matters: ``Quiet`` is not ``quiet``.
    """
    return parameqn(a, b, len(a) + 1)


# --- simple_strto* (lib/vsprintf.c) -----------------------------------------------------------


def _has_hex_prefix(s: str) -> bool:
    return s[:1] == "0" and s[1:2] in ("x", "X")


def _fixup_radix(s: str, base: int) -> tuple[int, int]:
    """Pick the base and skip a ``0x`` prefix: ``_parse_integer_fixup_radix()``.

    Returns the base and the index where digits start.  Base 0 guesses: ``0x`` followed by a
    hex digit is hex, any other leading ``0`` octal, else decimal.  ``0x`` is skipped whenever
    the base ends up 16, even with no digit after it, which is why ``kstrtouint("0x", 16)``
    fails while ``simple_strtoul("0xg", 16)`` returns 0 and leaves ``g``.
    """
    if base == 0:
        if s[:1] != "0":
            base = 10
        elif s[1:2] in ("x", "X") and s[2:3] in _DIGITS:
            base = 16
        else:
            base = 8
    return base, 2 if base == 16 and _has_hex_prefix(s) else 0


def _parse_integer(s: str, start: int, base: int) -> tuple[int, int, bool]:
    """Accumulate digits of *base* from *start*: ``_parse_integer()``.

    Returns (value wrapped to 64 bits, number of digits, whether it overflowed).  The value
    keeps wrapping after an overflow, so callers that ignore the flag (simple_strtoull) see
    the truncated C result.
    """
    value, i, overflow = 0, start, False
    while i < len(s):
        digit = _DIGITS.get(s[i])
        if digit is None or digit >= base:
            break
        value = value * base + digit
        if value > _U64_MASK:
            overflow, value = True, value & _U64_MASK
        i += 1
    return value, i - start, overflow


def simple_strtoull(s: str, base: int = 0) -> tuple[int, str]:
    """Parse an unsigned number from the start of *s*; return it and the unparsed rest.

    lib/vsprintf.c semantics (same in 2009 and today): no leading white space or sign is
    skipped, parsing stops at the first character that is not a digit of the base, no digit at
    all yields 0 with *s* untouched, and overflow silently wraps modulo 2**64.
    """
    base, start = _fixup_radix(s, base)
    value, ndigits, _ = _parse_integer(s, start, base)
    return value, s[start + ndigits :]


def simple_strtoul(s: str, base: int = 0) -> tuple[int, str]:
    """:func:`simple_strtoull` for ``unsigned long``, which is 64 bits on x86-64."""
    return simple_strtoull(s, base)


def simple_strtol(s: str, base: int = 0) -> tuple[int, str]:
    """Signed :func:`simple_strtoul`: a leading ``-`` negates (``+`` is not accepted).

    The result is the C ``long``: the unsigned value, negated if needed, reinterpreted as 64-bit
    two's complement, so ``"18446744073709551615"`` gives -1.
    """
    if s[:1] == "-":
        value, rest = simple_strtoull(s[1:], base)
        return _wrap_signed(-value, 64), rest
    value, rest = simple_strtoull(s, base)
    return _wrap_signed(value, 64), rest


# --- lib/cmdline.c ----------------------------------------------------------------------------

_MEM_SHIFTS = {"k": 10, "m": 20, "g": 30, "t": 40, "p": 50, "e": 60}


def memparse(s: str) -> tuple[int, str]:
    """Parse a size such as ``64M`` or ``0x1000``; return it and the unparsed rest (P14).

    A base-0 :func:`simple_strtoull` followed by at most one K/M/G/T/P/E suffix (any case),
    each a power of 2**10.  Nothing past the suffix is looked at: ``1KB`` is 1024 with ``B``
    left over, ``1.5G`` is 1 with ``.5G`` left over.  The suffix is honoured even without
    digits (``K`` is 0), and a decimal number may end in ``e`` (``1e`` is 2**60) because the
    hex digit ``e`` is not a decimal digit.  Overflow wraps modulo 2**64, undetected.
    """
    value, rest = simple_strtoull(s)
    shift = _MEM_SHIFTS.get(rest[:1].lower())
    if shift is None:
        return value, rest
    return (value << shift) & _U64_MASK, rest[1:]


def get_option(s: str) -> tuple[int, int, str]:
    """Parse one ``int`` from an option list; return (code, value, rest) (P15).

    Codes: 0 no number, 1 number at the end of the list, 2 number followed by ``,`` (consumed),
    3 number followed by ``-`` (a range; the ``-`` is left for :func:`get_options`).  A leading
    ``-`` negates (modern; 2009 used simple_strtol, same results for valid input).  The value is
    a C ``int``, so large numbers wrap to 32 bits.  Quirk kept from the C code: a lone ``-``
    is consumed even when no digit follows, so ``"-x"`` returns (0, 0, ``"x"``).
    """
    if not s:
        return 0, 0, s
    negative = s[0] == "-"
    cur = s[1:] if negative else s
    magnitude, rest = simple_strtoull(cur)
    value = _wrap_signed(-magnitude if negative else magnitude, 32)
    if len(rest) == len(cur):
        return 0, value, rest
    if rest[:1] == ",":
        return 2, value, rest[1:]
    if rest[:1] == "-":
        return 3, value, rest
    return 1, value, rest


def get_options(s: str, nints: int) -> list[int]:
    """Parse a list such as ``1,3-5,9`` into integers, expanding ranges (P15).

    *nints* is the size of the kernel's ``int ints[]`` array, whose slot 0 holds the count, so
    at most ``nints - 1`` values are returned.  Parsing stops at the first element that is not
    a number, after a number not followed by ``,``, or at a descending range (``9-7`` stores
    nothing).  A range ``a-b`` stores ``a .. b-1`` and then reparses ``b`` as the next element,
    exactly as lib/cmdline.c ``get_range()`` does.  The kernel's count can exceed the array when
    a range overflows it; only the values actually stored are returned.  The kernel's
    "validate" mode (``nints == 0``, count only) has no use in Python and is not ported.
    """
    if nints < 1:
        raise ValueError(f"get_options: nints must be at least 1, got {nints}")
    ints = [0] * nints
    i = 1
    while i < nints:
        code, ints[i], s = get_option(s)
        if code == 0:
            break
        if code == 3:
            s = s[1:]
            lower, upper = ints[i], _wrap_signed(simple_strtol(s)[0], 32)
            for k, x in enumerate(range(lower, upper)[: nints - i]):
                ints[i + k] = x
            if upper < lower:
                break
            # upper itself is left for the next get_option() call, hence the -1.
            i += upper - lower - 1
        i += 1
        if code == 1:
            break
    return ints[1 : min(i, nints)]


# --- kstrtox (P16) ----------------------------------------------------------------------------


def _kstrtoull(s: str, base: int) -> int:
    base, start = _fixup_radix(s, base)
    value, ndigits, overflow = _parse_integer(s, start, base)
    # Overflow is reported before trailing junk: "99999999999999999999x" is -ERANGE.
    if overflow:
        raise KernelError(-ERANGE)
    if ndigits == 0:
        raise KernelError(-EINVAL)
    end = start + ndigits
    # One newline is tolerated because `echo 5 > /sys/...` writes "5\n".
    if s[end : end + 1] == "\n":
        end += 1
    if end != len(s):
        raise KernelError(-EINVAL)
    return value


def kstrtoull(s: str, base: int = 0) -> int:
    """Strict ``unsigned long long`` parse (P16): whole string, one optional ``+``, no ``-``.

    Base 0 auto-detects ``0x`` (hex) and a leading ``0`` (octal).  Raises ``KernelError`` with
    ``-EINVAL`` for an empty string, junk or a ``-`` sign, ``-ERANGE`` beyond 2**64 - 1.
    """
    return _kstrtoull(s[1:] if s[:1] == "+" else s, base)


def kstrtoll(s: str, base: int = 0) -> int:
    """Strict ``long long`` parse (P16): as :func:`kstrtoull`, plus one leading ``-``."""
    if s[:1] == "-":
        magnitude = _kstrtoull(s[1:], base)
        if magnitude > 1 << 63:
            raise KernelError(-ERANGE)
        return -magnitude
    value = kstrtoull(s, base)
    if value >= 1 << 63:
        raise KernelError(-ERANGE)
    return value


def _ranged(value: int, lo: int, hi: int) -> int:
    if not lo <= value <= hi:
        raise KernelError(-ERANGE)
    return value


def kstrtoul(s: str, base: int = 0) -> int:
    """``unsigned long`` (64 bits on x86-64), as :func:`kstrtoull`."""
    return kstrtoull(s, base)


def kstrtol(s: str, base: int = 0) -> int:
    """``long`` (64 bits on x86-64), as :func:`kstrtoll`."""
    return kstrtoll(s, base)


def kstrtouint(s: str, base: int = 0) -> int:
    """``unsigned int``: :func:`kstrtoull`, then ``-ERANGE`` above 2**32 - 1."""
    return _ranged(kstrtoull(s, base), 0, (1 << 32) - 1)


def kstrtoint(s: str, base: int = 0) -> int:
    """``int``: :func:`kstrtoll`, then ``-ERANGE`` outside -2**31 .. 2**31 - 1."""
    return _ranged(kstrtoll(s, base), -(1 << 31), (1 << 31) - 1)


def kstrtou16(s: str, base: int = 0) -> int:
    """``u16``: :func:`kstrtoull`, then ``-ERANGE`` above 65535."""
    return _ranged(kstrtoull(s, base), 0, 0xFFFF)


def kstrtos16(s: str, base: int = 0) -> int:
    """``s16``: :func:`kstrtoll`, then ``-ERANGE`` outside -32768 .. 32767."""
    return _ranged(kstrtoll(s, base), -0x8000, 0x7FFF)


def kstrtou8(s: str, base: int = 0) -> int:
    """``u8``: :func:`kstrtoull`, then ``-ERANGE`` above 255."""
    return _ranged(kstrtoull(s, base), 0, 0xFF)


def kstrtos8(s: str, base: int = 0) -> int:
    """``s8``: :func:`kstrtoll`, then ``-ERANGE`` outside -128 .. 127."""
    return _ranged(kstrtoll(s, base), -0x80, 0x7F)


def kstrtobool(s: str) -> bool:
    """Parse a boolean the way every bool parameter does (P16, modern 6.x).

    Only the first character decides (two for ``on``/``off``), so ``yes``, ``Yellow`` and
    ``1000`` are all true: ``y Y t T 1`` → true, ``n N f F 0`` → false, ``o``/``O`` followed
    by ``n``/``N`` → true or by ``f``/``F`` → false.  Anything else, including the empty string
    (``foo=``), raises ``KernelError(-EINVAL)``.  (``t``/``f`` arrived in 5.x; 2009 knew only
    ``yYnN01``.)
    """
    first, second = s[:1], s[1:2]
    if first and first in "yYtT1":
        return True
    if first and first in "nNfF0":
        return False
    if first in ("o", "O") and second and second in "nNfF":
        return second in "nN"
    raise KernelError(-EINVAL)

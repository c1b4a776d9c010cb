"""C format strings for printk (lib/vsprintf.c), so ported driver code keeps its formats.

``printk("reserve bootmem for memconsole %u@%p\\n", size, start)`` must work unchanged.  The
length modifiers (``l``, ``ll``, ``z``, ``h``...) only say how wide the C argument is; Python
integers need no such hint, so they are parsed and dropped, except that ``%x``/``%u`` of a
negative number wraps to the modifier's width as C would.

Pointers follow modern Linux: plain ``%p`` prints a *hashed* value (so a log never leaks a
kernel address) unless the boot used ``no_hash_pointers``; ``%px`` prints the raw address;
``%pa`` a phys_addr_t.  The hash is keyed by the boot's seed, so it is stable per boot and
deterministic per seed, as the kernel's siphash key is stable per boot.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Sequence
from typing import SupportsInt, cast

from ksim.current import current_kernel
from ksim.init import early_param
from ksim.kern_levels import LOGLEVEL_WARNING

_SPEC = re.compile(r"%(?P<flags>[-+ #0]*)(?P<width>\*|\d+)?(?:\.(?P<prec>\*|\d+))?"
                   r"(?P<len>hh|h|ll|l|z|t|j|L)?(?P<conv>[diouxXcsp%])(?P<ext>[xaSsFfBbK]?)")

_WIDTH_BITS = {"hh": 8, "h": 16, None: 32, "l": 64, "ll": 64, "z": 64, "t": 64, "j": 64, "L": 64}


def hash_pointer(ptr: int, key: int) -> str:
    """The kernel's ``%p`` output on 64-bit: a 32-bit keyed hash, zero-padded to 16 digits."""
    digest = hashlib.blake2b(ptr.to_bytes(8, "little"), digest_size=4,
                             key=key.to_bytes(8, "little", signed=False)).digest()
    return "%016x" % int.from_bytes(digest, "little")


def _int(arg: object) -> int:
    """An integer conversion's argument as C would read it (Python ints, bools, floats)."""
    return int(cast(SupportsInt, arg))


class Formatter:
    """Formats C format strings; one per kernel boot (it holds the pointer-hash key)."""

    __slots__ = ("_cache", "_fast", "hash_key", "hash_pointers")

    def __init__(self, hash_key: int = 0, hash_pointers: bool = True) -> None:
        self.hash_key = hash_key & 0xFFFFFFFFFFFFFFFF
        self.hash_pointers = hash_pointers
        self._cache: dict[str, list[str | tuple[str, ...]]] = {}
        # fmt -> (Python %-format, per-argument kind) for formats Python can do itself
        self._fast: dict[str, tuple[str, str] | None] = {}

    def format(self, fmt: str, args: Sequence[object]) -> str:
        if not args and "%" not in fmt:
            return fmt
        try:
            fast = self._fast[fmt]
        except KeyError:
            fast = self._fast[fmt] = _python_format(fmt)
        if fast is not None:
            kinds = fast[1]
            if kinds == "i" and len(args) == 1 and type(args[0]) is int:  # the usual "%d"
                return fast[0] % (args[0],)
            if _fits(kinds, args):
                return fast[0] % tuple(args)
        parts = self._cache.get(fmt)
        if parts is None:
            parts = self._cache[fmt] = _compile(fmt)
        out: list[str] = []
        it = iter(args)
        for part in parts:
            if isinstance(part, str):
                out.append(part)
            else:
                out.append(self._convert(part, it))
        return "".join(out)

    def _convert(self, spec: tuple[str, ...], it: Iterator[object]) -> str:
        flags, width, prec, length, conv, ext = spec
        if conv == "%":
            return "%"
        if width == "*":
            width = str(next(it))
        if prec == "*":
            prec = str(next(it))
        arg = next(it)
        if conv == "p":
            return self._pointer(arg, ext, flags, width)
        pyflags = flags
        if conv in "di":
            text = ("%" + pyflags + (width or "") + ("." + prec if prec else "") + "d") % _int(arg)
        elif conv in "ouxX":
            value = _int(arg)
            if value < 0:
                value &= (1 << _WIDTH_BITS[length or None]) - 1
            pyconv = "d" if conv == "u" else conv
            if conv == "o" and "#" in pyflags:
                # C's alternate octal form is a leading 0 (none added to a 0), not 0o.
                digits = ("%" + ("." + prec if prec else "") + "o") % value
                if not digits.startswith("0"):
                    digits = "0" + digits
                pad = int(width or 0) - len(digits)
                if pad <= 0:
                    return digits + ext
                if "-" in pyflags:
                    return digits + " " * pad + ext
                return ("0" if "0" in pyflags and not prec else " ") * pad + digits + ext
            text = ("%" + pyflags + (width or "") + ("." + prec if prec else "") + pyconv) % value
        elif conv == "c":
            text = ("%" + pyflags.replace("0", "") + (width or "") + "c") % (
                chr(arg) if isinstance(arg, int) else str(arg))
        else:  # s
            string = "(null)" if arg is None else (arg.decode(errors="replace") if isinstance(
                arg, (bytes, bytearray)) else str(arg))
            text = ("%" + pyflags.replace("0", "") + (width or "") + ("." + prec if prec else "")
                    + "s") % string
        return text + ext

    def _pointer(self, arg: object, ext: str, flags: str, width: str | None) -> str:
        if arg is None or arg == 0:
            value = 0
        elif callable(arg):
            value = None
        else:
            value = int(arg)  # type: ignore[call-overload]
        if ext in ("S", "s", "F", "f"):  # symbolic: ksim has no symbol table, print the name
            return getattr(arg, "__qualname__", str(arg))
        if value is None:
            value = id(arg)
        if ext == "x":
            return "%016x" % (value & 0xFFFFFFFFFFFFFFFF)
        if ext == "a":
            return "0x%016x" % value
        rest = ext  # an unknown extension is printed after the pointer, as %p<letter> misuse would
        value &= 0xFFFFFFFFFFFFFFFF
        if not self.hash_pointers:
            return "%016x" % value + rest
        if value == 0 or value >= (1 << 64) - 4095:
            # ptr_to_id(): NULL and ERR_PTR values are not addresses, so they print raw.
            return "%016x" % value + rest
        return hash_pointer(value, self.hash_key) + rest


def _compile(fmt: str) -> list[str | tuple[str, ...]]:
    parts: list[str | tuple[str, ...]] = []
    pos = 0
    for m in _SPEC.finditer(fmt):
        if m.start() > pos:
            parts.append(fmt[pos:m.start()])
        ext = m["ext"] if m["conv"] == "p" else ""
        parts.append((m["flags"], m["width"], m["prec"], m["len"], m["conv"], ext))
        if m["conv"] != "p" and m["ext"]:
            parts.append(m["ext"])
        pos = m.end()
    if pos < len(fmt):
        parts.append(fmt[pos:])
    return parts


_FAST_CONV = {"d": "i", "i": "i", "u": "u", "x": "u", "X": "u", "o": "u", "s": "s"}


def _python_format(fmt: str) -> tuple[str, str] | None:
    """The printk hot path: a C format that Python's ``%`` renders identically, given
    non-negative ints for the unsigned conversions and str for ``%s`` (checked per call)."""
    out: list[str] = []
    kinds: list[str] = []
    pos = 0
    for m in _SPEC.finditer(fmt):
        conv = m["conv"]
        if conv == "%":
            out.append(fmt[pos:m.end()])
            pos = m.end()
            continue
        kind = _FAST_CONV.get(conv)
        if kind is None or m["width"] == "*" or m["prec"] == "*" or "#" in m["flags"]:
            return None
        out.append(fmt[pos:m.start()].replace("%", "%%"))
        out.append("%" + m["flags"] + (m["width"] or "") + ("." + m["prec"] if m["prec"] else "")
                   + ("d" if conv == "u" else conv) + m["ext"].replace("%", "%%"))
        kinds.append(kind)
        pos = m.end()
    out.append(fmt[pos:].replace("%", "%%"))
    return "".join(out), "".join(kinds)


def _fits(kinds: str, args: Sequence[object]) -> bool:
    if len(kinds) != len(args):
        return False
    for kind, arg in zip(kinds, args):
        if kind == "s":
            if type(arg) is not str:
                return False
        elif type(arg) is not int or (kind == "u" and arg < 0):
            return False
    return True


_plain = Formatter(hash_pointers=False)


def sprintf(fmt: str, *args: object) -> str:
    """``sprintf`` for code without a kernel at hand (raw pointers)."""
    return _plain.format(fmt, args)



_NO_HASH_POINTERS_BANNER = (
    "**********************************************************",
    "**   NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE   **",
    "**                                                      **",
    "** This system shows unhashed kernel memory addresses   **",
    "** via the console, logs, and other interfaces. This    **",
    "** might reduce the security of your system.            **",
    "**                                                      **",
    "** If you see this message and you are not debugging    **",
    "** the kernel, report this immediately to your system   **",
    "** administrator!                                       **",
    "**                                                      **",
    "**   NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE NOTICE   **",
    "**********************************************************",
)


@early_param("no_hash_pointers")
async def no_hash_pointers_enable(val: str | None) -> int:
    """``no_hash_pointers``: ``%p`` prints raw addresses, announced by a banner."""
    kernel = current_kernel()
    kernel.vsprintf.hash_pointers = False
    for line in _NO_HASH_POINTERS_BANNER:
        kernel.printk.log_line(LOGLEVEL_WARNING, line)
    return 0

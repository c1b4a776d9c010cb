"""``crashkernel=`` (kernel/crash_core.c, 6.1): where the kdump kernel's memory is asked for.

The syntax is ``crashkernel=SIZE[@OFFSET]``, the extended ``crashkernel=RANGE:SIZE[,RANGE:SIZE...]
[@OFFSET]`` (a range is ``START-[END]`` of system RAM, rounded up to 128 MiB), and the
``,high`` and ``,low`` forms; the *last* ``crashkernel=`` of the command line counts, found by
plain substring search as ``get_last_crashkernel`` does.  The reservation itself is the
architecture's (:func:`ksim.setup.reserve_crashkernel`, E7).  The option is an early parameter
that does nothing, so it is never passed to init.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ksim.cmdline import memparse
from ksim.init import early_param
from ksim.kern_levels import LOGLEVEL_INFO, LOGLEVEL_WARNING

if TYPE_CHECKING:
    from ksim.printk import Printk

__all__ = ["parse_crashkernel"]

SZ_128M = 128 << 20
_SUFFIXES = (",high", ",low")


@early_param("crashkernel")
async def parse_crashkernel_dummy(val: str | None) -> int:
    return 0


def _last(cmdline: str, suffix: str | None) -> str | None:
    found = None
    name = "crashkernel="
    pos = cmdline.find(name)
    while pos >= 0:
        value = cmdline[pos + len(name):].split(" ", 1)[0]
        if suffix is None:
            if not any(value.endswith(s) for s in _SUFFIXES):
                found = cmdline[pos + len(name):]
        elif value.endswith(suffix):
            found = cmdline[pos + len(name):]
        pos = cmdline.find(name, pos + 1)
    return found


def _mem(ck: str, system_ram: int, log: Printk) -> tuple[int, int] | None:
    total = -(-system_ram // SZ_128M) * SZ_128M
    cur = ck
    size = 0
    while True:
        start, rest = memparse(cur)
        if rest == cur:
            log.log_line(LOGLEVEL_WARNING, "crashkernel: Memory value expected")
            return None
        if rest[:1] != "-":
            log.log_line(LOGLEVEL_WARNING, "crashkernel: '-' expected")
            return None
        cur = rest[1:]
        end = (1 << 64) - 1
        if cur[:1] != ":":
            end, rest = memparse(cur)
            if rest == cur:
                log.log_line(LOGLEVEL_WARNING, "crashkernel: Memory value expected")
                return None
            cur = rest
            if end <= start:
                log.log_line(LOGLEVEL_WARNING, "crashkernel: end <= start")
                return None
        if cur[:1] != ":":
            log.log_line(LOGLEVEL_WARNING, "crashkernel: ':' expected")
            return None
        cur = cur[1:]
        value, rest = memparse(cur)
        if rest == cur:
            log.log_line(LOGLEVEL_WARNING, "Memory value expected")
            return None
        cur = rest
        if value >= total:
            log.log_line(LOGLEVEL_WARNING, "crashkernel: invalid size")
            return None
        if start <= total < end:
            size = value
            break
        if cur[:1] != ",":
            cur = cur[1:]
            break
        cur = cur[1:]
    base = 0
    if size > 0:
        while cur and cur[0] not in " @":
            cur = cur[1:]
        if cur[:1] == "@":
            base, rest = memparse(cur[1:])
            if rest == cur[1:]:
                log.log_line(LOGLEVEL_WARNING, "Memory value expected after '@'")
                return None
    else:
        log.log_line(LOGLEVEL_INFO, "crashkernel size resulted in zero bytes")
    return size, base


def parse_crashkernel(cmdline: str, system_ram: int, log: Printk,
                      suffix: str | None = None) -> tuple[int, int] | None:
    """``parse_crashkernel``/``_high``/``_low``: (size, base), or None (absent or malformed)."""
    ck = _last(cmdline, suffix)
    if ck is None:
        return None
    if suffix is not None:
        size, rest = memparse(ck)
        if rest == ck or not rest.startswith(suffix):
            return None
        return size, 0
    first = ck.split(" ", 1)[0]
    if ":" in first:
        return _mem(ck, system_ram, log)
    size, rest = memparse(ck)
    if rest == ck:
        log.log_line(LOGLEVEL_WARNING, "crashkernel: memory value expected")
        return None
    base = 0
    if rest[:1] == "@":
        base, _ = memparse(rest[1:])
    elif rest[:1] not in (" ", ""):
        log.log_line(LOGLEVEL_WARNING, "crashkernel: unrecognized char: %s" % rest[0])
        return None
    return size, base

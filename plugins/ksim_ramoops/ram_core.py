"""Persistent RAM zones (fs/pstore/ram_core.c, include/linux/pstore_ram.h), byte for byte as Linux 6.1.

A *zone* is a circular byte buffer in RAM that survives a warm reboot.  Its layout (R3, R4, R8)::

    +0  u32 sig      PERSISTENT_RAM_SIG ^ zone_sig  ("DBGC" in memory for sig 0)
    +4  u32 start    next write offset into data[]
    +8  u32 size     number of valid bytes in data[]
    +12 data[buffer_size]
        parity of data block i at par_buffer + i * ecc_size      (ECC only)
        parity of the 12-byte header at par_header                 (ECC only)

all little-endian, as on x86.  The old contents read back at boot are ``data[start:size]`` followed
by ``data[:start]`` (R6).  With ECC every 128-byte block of ``data`` (the last one shortened to
what is left before the parity area) and the header carry 16 Reed-Solomon parity bytes
(:mod:`ksim.reed_solomon`); at boot the header and the blocks that cover the used bytes are
corrected *in RAM*, and the counts end up in the ``ECC:`` line pstore appends to the file.

Model
-----
A zone works on any memory that can ``read(addr, n)`` and ``write(addr, data)`` at physical
addresses (:class:`RamAccess`): ksim's :class:`ksim.memory.PhysMem` for a running kernel, or an
:class:`ImageMem` over a raw image for decoding without booting.  :class:`RamMap` plays the part
of ``persistent_ram_vmap()``: zone offsets are relative to the zone's first byte.  Every header
field is read from and written to RAM at the moment the C code does, so a crash between two
steps leaves the bytes Linux would leave.

Function names, arguments and messages are the kernel's.  Kernel messages go to a
:class:`RamLog` (``pr_info("ramoops: ...")`` and friends) so the offline decoder can report what
Linux would have logged and the plugin can forward them to printk.  ``pr_debug``/``pr_devel``
lines are not kept: a default kernel does not print them.

Deviations
----------
* ``buffer_lock`` is not taken here: these functions are the bodies the lock protects, and the
  kernel plugin serialises callers itself.  ``PRZ_FLAG_NO_LOCK`` is kept as a flag only.
* ``persistent_ram_new`` returns a negative errno (the ``ERR_PTR`` value) instead of raising,
  so a C caller's ``IS_ERR`` check reads the same; mapping the memory never fails (there is no
  ``request_mem_region`` or ``vmap`` here).  ``memtype`` is recorded but has no effect.
* A zone smaller than its 12-byte header is refused with -ENOMEM; the kernel would map it and
  then read and write past its end (ramoops only builds such a zone from absurd sizes).
* ``pr_info_ratelimited`` allows the default burst of 10 messages per :class:`RamLog` (one boot)
  and suppresses the rest; there is no clock, so the 5 s interval never expires.
"""

from __future__ import annotations

import struct
from collections.abc import Coroutine
from typing import Any, Final, Protocol, TypeAlias, TypeVar

import attrs

from ksim.errno import EINVAL, ENOMEM
from ksim.reed_solomon import RSControl, decode_rs8, encode_rs8, init_rs

__all__ = [
    "PERSISTENT_RAM_SIG",
    "PRZ_FLAG_NO_LOCK",
    "PRZ_FLAG_ZAP_OLD",
    "PersistentRamEccInfo",
    "PersistentRamZone",
    "ImageMem",
    "RamAccess",
    "RamLog",
    "RamMap",
    "buffer_size",
    "buffer_start",
    "persistent_ram_ecc_string",
    "persistent_ram_free",
    "persistent_ram_free_old",
    "persistent_ram_new",
    "persistent_ram_old",
    "persistent_ram_old_size",
    "persistent_ram_save_old",
    "persistent_ram_write",
    "persistent_ram_zap",
    "run_to_end",
]

PERSISTENT_RAM_SIG: Final = 0x43474244  # DBGC
# sizeof(struct persistent_ram_buffer): sig, start, size.
PERSISTENT_RAM_BUFFER_SIZE: Final = 12
PRZ_FLAG_NO_LOCK: Final = 1 << 0
PRZ_FLAG_ZAP_OLD: Final = 1 << 1

_SIG_OFF: Final = 0
_START_OFF: Final = 4
_SIZE_OFF: Final = 8
_DATA_OFF: Final = PERSISTENT_RAM_BUFFER_SIZE
U32_MASK: Final = 0xFFFFFFFF
Buffer: TypeAlias = "bytes | bytearray | memoryview"
# include/linux/ratelimit_types.h: DEFAULT_RATELIMIT_BURST
_RATELIMIT_BURST: Final = 10


class RamAccess(Protocol):
    """Byte access at physical addresses (what :class:`ksim.memory.PhysMem` offers), and the
    ``memcpy_toio`` a zone write copies its bytes with: in a running kernel another CPU can
    run (and stop this one) between two of its cache lines, as on real hardware."""

    def read(self, addr: int, n: int) -> bytes: ...

    def write(self, addr: int, data: Buffer) -> None: ...

    async def memcpy_toio(self, addr: int, data: Buffer) -> None: ...


@attrs.define
class ImageMem:
    """A raw memory image whose first byte sits at physical address ``base``.

    The offline decoder works on one of these; writes (ECC corrections, zaps, new signatures)
    change ``image`` in place, as the kernel would have changed the RAM.
    """

    image: bytearray
    base: int = 0

    def _check(self, addr: int, n: int) -> int:
        off = addr - self.base
        if off < 0 or n < 0 or off + n > len(self.image):
            raise ValueError(
                f"access 0x{n:x}@0x{addr:x} outside the image "
                f"0x{len(self.image):x}@0x{self.base:x}"
            )
        return off

    def read(self, addr: int, n: int) -> bytes:
        off = self._check(addr, n)
        return bytes(self.image[off:off + n])

    def write(self, addr: int, data: Buffer) -> None:
        raw = memoryview(data).cast("B")
        off = self._check(addr, len(raw))
        self.image[off:off + len(raw)] = raw

    async def memcpy_toio(self, addr: int, data: Buffer) -> None:
        # Nothing else runs on an image: the copy is one write and never waits.
        self.write(addr, data)


_T = TypeVar("_T")


def run_to_end(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a zone write on an :class:`ImageMem` (whose copies never wait) to its end, outside
    any kernel: what the region builders and the offline tests write with."""
    try:
        coro.send(None)
    except StopIteration as done:
        return done.value
    coro.close()
    raise RuntimeError("a zone write waited: its memory is not an image")


@attrs.define
class RamMap:
    """The zone's mapping (``prz->vaddr``): offsets relative to the zone's physical start."""

    mem: RamAccess
    paddr: int
    size: int

    def read(self, off: int, n: int) -> bytes:
        return self.mem.read(self.paddr + off, n)

    def write(self, off: int, data: Buffer) -> None:
        self.mem.write(self.paddr + off, data)

    async def memcpy_toio(self, off: int, data: Buffer) -> None:
        await self.mem.memcpy_toio(self.paddr + off, data)

    def read_u32(self, off: int) -> int:
        value: int = struct.unpack("<I", self.mem.read(self.paddr + off, 4))[0]
        return value

    def write_u32(self, off: int, value: int) -> None:
        self.mem.write(self.paddr + off, struct.pack("<I", value & U32_MASK))


@attrs.define
class RamLog:
    """Where the zone code's ``pr_*`` lines go: ``(loglevel, text)`` pairs, prefix included."""

    messages: list[tuple[int, str]] = attrs.field(factory=list)
    _ratelimit: dict[str, int] = attrs.field(factory=dict)

    def pr(self, level: int, text: str) -> None:
        self.messages.append((level, text))

    def pr_ratelimited(self, site: str, level: int, text: str) -> None:
        seen = self._ratelimit.get(site, 0)
        self._ratelimit[site] = seen + 1
        if seen < _RATELIMIT_BURST:
            self.pr(level, text)

    def lines(self) -> list[str]:
        return [text for _level, text in self.messages]


# Log levels, as in include/linux/kern_levels.h.
KERN_ERR: Final = 3
KERN_WARNING: Final = 4
KERN_INFO: Final = 6
_PR_FMT: Final = "ramoops: "  # KBUILD_MODNAME: ram_core.o is linked into ramoops.ko


@attrs.define
class PersistentRamEccInfo:
    """``struct persistent_ram_ecc_info``; zeros mean "the default" to persistent_ram_init_ecc."""

    block_size: int = 0
    ecc_size: int = 0
    symsize: int = 0
    poly: int = 0
    par: list[int] | None = None


@attrs.define(eq=False)
class PersistentRamZone:
    """``struct persistent_ram_zone``."""

    paddr: int
    size: int
    vaddr: RamMap
    label: str
    flags: int
    log: RamLog
    type: int = 0  # enum pstore_type_id, set by ramoops_init_prz(s)
    memtype: int = 0
    buffer_size: int = 0
    par_buffer: int = 0  # zone offsets, standing in for the C pointers
    par_header: int = 0
    rs_decoder: RSControl | None = None
    corrected_bytes: int = 0
    bad_blocks: int = 0
    ecc_info: PersistentRamEccInfo = attrs.field(factory=PersistentRamEccInfo)
    old_log: bytes | None = None
    old_log_size: int = 0

    def pr(self, level: int, fmt: str) -> None:
        self.log.pr(level, _PR_FMT + fmt)


def buffer_size(prz: PersistentRamZone) -> int:
    return prz.vaddr.read_u32(_SIZE_OFF)


def buffer_start(prz: PersistentRamZone) -> int:
    return prz.vaddr.read_u32(_START_OFF)


def buffer_start_add(prz: PersistentRamZone, a: int) -> int:
    """Increase and wrap the start pointer, returning the old value."""
    old = prz.vaddr.read_u32(_START_OFF)
    new = old + a
    while new >= prz.buffer_size:
        new -= prz.buffer_size
    prz.vaddr.write_u32(_START_OFF, new)
    return old


def buffer_size_add(prz: PersistentRamZone, a: int) -> None:
    """Increase the size counter until it hits the maximum size."""
    old = prz.vaddr.read_u32(_SIZE_OFF)
    if old == prz.buffer_size:
        return
    new = old + a
    if new > prz.buffer_size:
        new = prz.buffer_size
    prz.vaddr.write_u32(_SIZE_OFF, new)


def _rs(prz: PersistentRamZone) -> RSControl:
    assert prz.rs_decoder is not None, "ECC used before persistent_ram_init_ecc"
    return prz.rs_decoder


def persistent_ram_encode_rs8(prz: PersistentRamZone, data: Buffer, length: int, ecc: int) -> None:
    """Parity of ``data[:length]`` into the zone's RAM at offset ``ecc``."""
    par = prz.ecc_info.par
    assert par is not None
    par[:] = [0] * prz.ecc_info.ecc_size  # initialise the parity buffer
    encode_rs8(_rs(prz), memoryview(data).cast("B"), length, par, 0)
    prz.vaddr.write(ecc, bytes(p & 0xFF for p in par))


def persistent_ram_decode_rs8(prz: PersistentRamZone, data: bytearray, length: int, ecc: bytes) -> int:
    """Correct ``data`` (a copy of the block) against the parity ``ecc``; the parity stays as it is."""
    par = prz.ecc_info.par
    assert par is not None
    par[:] = ecc[:prz.ecc_info.ecc_size]
    return decode_rs8(_rs(prz), data, par, length, None, 0, None, 0, None)


def persistent_ram_update_ecc(prz: PersistentRamZone, start: int, count: int) -> None:
    """Re-encode every block touched by ``data[start:start + count]``."""
    ecc_block_size = prz.ecc_info.block_size
    ecc_size = prz.ecc_info.ecc_size
    size = ecc_block_size
    if not ecc_size:
        return
    buffer_end = _DATA_OFF + prz.buffer_size
    block = _DATA_OFF + (start & ~(ecc_block_size - 1))
    par = prz.par_buffer + (start // ecc_block_size) * ecc_size
    while True:
        if block + ecc_block_size > buffer_end:
            size = buffer_end - block
        persistent_ram_encode_rs8(prz, prz.vaddr.read(block, size), size, par)
        block += ecc_block_size
        par += ecc_size
        if not block < _DATA_OFF + start + count:
            break


def persistent_ram_update_header_ecc(prz: PersistentRamZone) -> None:
    if not prz.ecc_info.ecc_size:
        return
    persistent_ram_encode_rs8(
        prz, prz.vaddr.read(0, PERSISTENT_RAM_BUFFER_SIZE), PERSISTENT_RAM_BUFFER_SIZE, prz.par_header
    )


def persistent_ram_ecc_old(prz: PersistentRamZone) -> None:
    """Correct, in RAM, every block that covers a used byte; count what was fixed and what was not."""
    if not prz.ecc_info.ecc_size:
        return
    block_size = prz.ecc_info.block_size
    ecc_size = prz.ecc_info.ecc_size
    used_end = buffer_size(prz)
    # One read of the data and parity areas; corrected blocks are written back one by one.
    data = bytearray(prz.vaddr.read(_DATA_OFF, prz.buffer_size))
    parity = prz.vaddr.read(prz.par_buffer, prz.par_header - prz.par_buffer)
    block = 0
    par = 0
    while block < used_end:
        size = block_size
        if block + size > prz.buffer_size:
            size = prz.buffer_size - block
        chunk = data[block:block + size]
        numerr = persistent_ram_decode_rs8(prz, chunk, size, parity[par:par + ecc_size])
        if numerr > 0:
            prz.vaddr.write(_DATA_OFF + block, chunk)
            prz.corrected_bytes += numerr
        elif numerr < 0:
            prz.bad_blocks += 1
        block += block_size
        par += ecc_size


def persistent_ram_init_ecc(prz: PersistentRamZone, ecc_info: PersistentRamEccInfo | None) -> int:
    if ecc_info is None or not ecc_info.ecc_size:
        return 0
    prz.ecc_info.block_size = ecc_info.block_size or 128
    prz.ecc_info.ecc_size = ecc_info.ecc_size or 16
    prz.ecc_info.symsize = ecc_info.symsize or 8
    prz.ecc_info.poly = ecc_info.poly or 0x11D

    ecc_size = prz.ecc_info.ecc_size
    # DIV_ROUND_UP on size_t: a negative numerator wraps to a huge count, caught just below.
    numerator = (prz.buffer_size - ecc_size) % (1 << 64)
    ecc_blocks = -(-numerator // (prz.ecc_info.block_size + ecc_size))
    ecc_total = (ecc_blocks + 1) * ecc_size
    if ecc_total >= prz.buffer_size:
        prz.pr(
            KERN_ERR,
            f"persistent_ram_init_ecc: invalid ecc_size {ecc_size} "
            f"(total {ecc_total}, buffer size {prz.buffer_size})",
        )
        return -EINVAL

    prz.buffer_size -= ecc_total
    prz.par_buffer = _DATA_OFF + prz.buffer_size
    prz.par_header = prz.par_buffer + ecc_blocks * ecc_size

    # first consecutive root is 0, primitive element to generate roots = 1
    prz.rs_decoder = init_rs(prz.ecc_info.symsize, prz.ecc_info.poly, 0, 1, ecc_size)
    if prz.rs_decoder is None:
        prz.pr(KERN_INFO, "init_rs failed")
        return -EINVAL

    prz.ecc_info.par = [0] * ecc_size
    prz.corrected_bytes = 0
    prz.bad_blocks = 0

    header = bytearray(prz.vaddr.read(0, PERSISTENT_RAM_BUFFER_SIZE))
    numerr = persistent_ram_decode_rs8(
        prz, header, PERSISTENT_RAM_BUFFER_SIZE, prz.vaddr.read(prz.par_header, ecc_size)
    )
    if numerr > 0:
        prz.vaddr.write(0, header)
        prz.pr(KERN_INFO, f"error in header, {numerr}")
        prz.corrected_bytes += numerr
    elif numerr < 0:
        prz.log.pr_ratelimited(
            "persistent_ram_init_ecc", KERN_INFO, _PR_FMT + "uncorrectable error in header"
        )
        prz.bad_blocks += 1
    return 0


def persistent_ram_ecc_string(prz: PersistentRamZone) -> str:
    """The notice pstore appends to the record ("" without ECC)."""
    if not prz.ecc_info.ecc_size:
        return ""
    if prz.corrected_bytes or prz.bad_blocks:
        return f"\nECC: {prz.corrected_bytes} Corrected bytes, {prz.bad_blocks} unrecoverable blocks\n"
    return "\nECC: No errors detected\n"


async def persistent_ram_update(prz: PersistentRamZone, s: bytes, start: int, count: int) -> None:
    await prz.vaddr.memcpy_toio(_DATA_OFF + start, s[:count])
    persistent_ram_update_ecc(prz, start, count)


def persistent_ram_save_old(prz: PersistentRamZone) -> None:
    """Copy the zone's contents out in chronological order (ECC-corrected first, once)."""
    size = buffer_size(prz)
    start = buffer_start(prz)
    if not size:
        return
    # A copy of another size (a dump taken since) is thrown away and taken again.
    if prz.old_log is not None and prz.old_log_size != size:
        persistent_ram_free_old(prz)
    if prz.old_log is None:
        persistent_ram_ecc_old(prz)
    prz.old_log_size = size
    # memcpy_fromio(old_log, &data[start], size - start) then (old_log + size - start, &data[0], start)
    prz.old_log = prz.vaddr.read(_DATA_OFF + start, size - start) + prz.vaddr.read(_DATA_OFF, start)


async def persistent_ram_write(prz: PersistentRamZone, s: bytes, count: int) -> int:
    """Append ``s[:count]`` to the ring (only the last ``buffer_size`` bytes if it is longer)."""
    c = count
    if c > prz.buffer_size:
        s = s[c - prz.buffer_size:]
        c = prz.buffer_size
    buffer_size_add(prz, c)
    start = buffer_start_add(prz, c)
    rem = prz.buffer_size - start
    if rem < c:
        await persistent_ram_update(prz, s, start, rem)
        s = s[rem:]
        c -= rem
        start = 0
    await persistent_ram_update(prz, s, start, c)
    persistent_ram_update_header_ecc(prz)
    return count


def persistent_ram_old_size(prz: PersistentRamZone) -> int:
    return prz.old_log_size


def persistent_ram_old(prz: PersistentRamZone) -> bytes | None:
    return prz.old_log


def persistent_ram_free_old(prz: PersistentRamZone) -> None:
    prz.old_log = None
    prz.old_log_size = 0


def persistent_ram_zap(prz: PersistentRamZone) -> None:
    """Empty the zone (start = size = 0); the data bytes stay in RAM."""
    prz.vaddr.write_u32(_START_OFF, 0)
    prz.vaddr.write_u32(_SIZE_OFF, 0)
    persistent_ram_update_header_ecc(prz)


def persistent_ram_buffer_map(
    start: int, size: int, prz: PersistentRamZone, memtype: int
) -> int:
    prz.paddr = start
    prz.size = size
    prz.memtype = memtype
    prz.buffer_size = size - PERSISTENT_RAM_BUFFER_SIZE
    return 0


def persistent_ram_post_init(prz: PersistentRamZone, sig: int, ecc_info: PersistentRamEccInfo | None) -> int:
    """Boot-time validation (R7): keep, save or reset what the zone holds."""
    zap = bool(prz.flags & PRZ_FLAG_ZAP_OLD)
    ret = persistent_ram_init_ecc(prz, ecc_info)
    if ret:
        prz.pr(KERN_WARNING, f"ECC failed {prz.label}")
        return ret

    sig = (sig ^ PERSISTENT_RAM_SIG) & U32_MASK
    if prz.vaddr.read_u32(_SIG_OFF) == sig:
        if buffer_size(prz) == 0 and buffer_start(prz) == 0:
            return 0  # found existing empty buffer
        if buffer_size(prz) > prz.buffer_size or buffer_start(prz) > buffer_size(prz):
            prz.pr(
                KERN_INFO,
                f"found existing invalid buffer, size {buffer_size(prz)}, start {buffer_start(prz)}",
            )
            zap = True
        else:
            persistent_ram_save_old(prz)
    else:
        # no valid data in buffer: claim it
        prz.vaddr.write_u32(_SIG_OFF, sig)
        zap = True

    if zap:  # reset a missing, invalid or single-use area
        persistent_ram_zap(prz)
    return 0


def persistent_ram_free(prz: PersistentRamZone | None) -> None:
    if prz is None:
        return
    prz.rs_decoder = None
    prz.ecc_info.par = None
    persistent_ram_free_old(prz)


def persistent_ram_new(
    start: int,
    size: int,
    sig: int,
    ecc_info: PersistentRamEccInfo | None,
    memtype: int,
    flags: int,
    label: str,
    *,
    mem: RamAccess,
    log: RamLog,
) -> PersistentRamZone | int:
    """Attach a zone at ``start`` and validate what it holds; a negative errno on failure."""
    if size < PERSISTENT_RAM_BUFFER_SIZE:
        # The kernel would read a header that is not all there; nothing sane can follow.
        return -ENOMEM
    prz = PersistentRamZone(
        paddr=start, size=size, vaddr=RamMap(mem, start, size), label=label, flags=flags, log=log
    )
    ret = persistent_ram_buffer_map(start, size, prz, memtype)
    if ret:
        return ret
    ret = persistent_ram_post_init(prz, sig, ecc_info)
    if ret:
        persistent_ram_free(prz)
        return ret
    return prz

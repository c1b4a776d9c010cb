"""Physical RAM, page math and the direct map (include/linux/pfn.h, arch/x86/include/asm/page*.h).

The memconsole patch only works if RAM outlives the kernel that wrote it, so RAM here is a first-class
object with a power model:

* A **warm** reboot keeps RAM exactly as it is; there is nothing to call.  Whether the next kernel finds
  its old data depends only on what firmware, boot loader and early boot overwrite (M9).
* A **cold** boot (:meth:`PhysMem.cold_boot`) loses power: every page becomes deterministic garbage.
* **memtest** (:meth:`PhysMem.scrub`) overwrites the ranges it tests, ending with pattern 0.

* **Overwrites** (:meth:`PhysMem.fill`): what firmware, the boot loader and the next kernel write over large
  regions (an initramfs copy, the decompressed kernel, its early allocations) become deterministic garbage
  keyed by a name, so that what they destroy is destroyed without writing every byte.

All fills are lazy: a simulated 64 GiB machine must cost only the pages it touches, so a fill is recorded
and each page is *materialised* (its garbage or pattern actually written) on its first access afterwards.
With a ``ram_file`` the RAM is a shared file mapping and the pending fills live in a sidecar journal, so a
later process (even after SIGKILL) sees the same RAM a rebooted machine would; the journal also keeps the
machine's boot count, which seeds each boot's randomness (KASLR, the firmware).

**Physical addresses.** RAM is not one range from 0 on a PC with more than 3.5 GiB: QEMU's ``pc`` machine
puts the first 3 GiB at physical 0 and the rest at 4 GiB, leaving the PCI hole between (``below_4g``).  The
RAM file holds the RAM in that order (as QEMU's memory backend does): file offset = physical address below
4 GiB, and ``below_4g + (phys - 4 GiB)`` above.  An access into the hole is a :class:`PhysAddrError`.
"""

from __future__ import annotations

import bisect
import fcntl
import hashlib
import mmap
import os
import stat
import struct
from collections.abc import Callable, Iterable
from operator import itemgetter
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from ksim.units import format_size

__all__ = [
    "PAGE_ALIGN",
    "PAGE_MASK",
    "PAGE_OFFSET_DEFAULT",
    "PAGE_SHIFT",
    "PAGE_SIZE",
    "PFN_DOWN",
    "PFN_PHYS",
    "PFN_UP",
    "DirectMapHole",
    "MemoryLayout",
    "PageFault",
    "PhysAddrError",
    "PhysMem",
    "RamFileError",
]

# -- page math (M1) ----------------------------------------------------------------------------------------

PAGE_SHIFT: Final = 12
PAGE_SIZE: Final = 1 << PAGE_SHIFT
# Python ints are unbounded, so ~(PAGE_SIZE - 1) == -4096 masks any width exactly like the C constant.
PAGE_MASK: Final = ~(PAGE_SIZE - 1)

# x86-64 direct-map base since 4.20 (0xffff880000000000 before); KASLR would move it per boot (M3).
PAGE_OFFSET_DEFAULT: Final = 0xFFFF888000000000


def PAGE_ALIGN(x: int) -> int:
    """Round *x* up to a page boundary (M1).

    Pure arithmetic: C's ``ALIGN`` wraps in the width of its argument (an ``unsigned int`` near 4 GiB
    aligns to 0); a caller emulating such a variable must mask the result itself (F1).
    """
    return (x + PAGE_SIZE - 1) & PAGE_MASK


def PFN_UP(x: int) -> int:
    """The first pfn at or above physical address *x* (M1)."""
    return (x + PAGE_SIZE - 1) >> PAGE_SHIFT


def PFN_DOWN(x: int) -> int:
    """The pfn containing physical address *x* (M1)."""
    return x >> PAGE_SHIFT


def PFN_PHYS(pfn: int) -> int:
    """The physical address of page frame *pfn* (M1)."""
    return pfn << PAGE_SHIFT


# -- the direct map (M2, M3) -------------------------------------------------------------------------------

_ULONG_MASK: Final = (1 << 64) - 1
FOUR_GIB: Final = 1 << 32


@attrs.frozen
class DirectMapHole:
    """Virtual ``[start, end)`` of the direct map that is not present: the page table that should
    map it was put where there is no RAM, so the stores that filled it were lost (setup.py's
    ``_DirectMap``).  ``walk`` is dump_pagetable()'s line for an address inside."""

    start: int
    end: int
    walk: str


@attrs.frozen
class MemoryLayout:
    """One boot's pfn bounds (M2, E5) and direct-map base (M3, D6).

    setup_arch computes them from the e820 map (:mod:`ksim.setup`): on x86-64 ``min_low_pfn`` is never set
    and stays 0, and ``max_low_pfn`` equals ``max_pfn`` once the direct map covers all RAM (E5).  A layout
    belongs to one kernel and one configuration: virtual addresses computed with it mean nothing to the next
    boot, which is exactly why a persisted virtual pointer breaks (F6).
    """

    page_offset: int
    min_low_pfn: int
    max_low_pfn: int
    max_pfn: int
    holes: tuple[DirectMapHole, ...] = ()

    def __attrs_post_init__(self) -> None:
        if not 0 <= self.min_low_pfn <= self.max_low_pfn <= self.max_pfn:
            raise ValueError(
                f"inconsistent pfn bounds: need 0 <= min_low_pfn ({self.min_low_pfn:#x}) <= "
                f"max_low_pfn ({self.max_low_pfn:#x}) <= max_pfn ({self.max_pfn:#x})"
            )

    def phys_to_virt(self, phys: int) -> int:
        """``__va(phys)``: *phys* + PAGE_OFFSET in ``unsigned long`` arithmetic (M3).

        Unchecked, like the kernel's macro: on x86-64 the direct map covers all RAM, not just pfns below
        max_low_pfn, and the 2009 patch calls it on whatever candidate it settled on.  A bogus result
        surfaces where it is dereferenced (:class:`PhysAddrError`), as a bad pointer would.
        """
        return (phys + self.page_offset) & _ULONG_MASK

    def virt_to_phys(self, virt: int) -> int:
        """``__pa(virt)``, the unchecked inverse of :meth:`phys_to_virt` (M3)."""
        return (virt - self.page_offset) & _ULONG_MASK

    def translate(self, virt: int, size: int, write: bool) -> int:
        """The MMU's walk for a kernel access of *size* bytes at *virt*: its physical address,
        or :class:`PageFault` where the direct map is not present (D11)."""
        for hole in self.holes:
            if virt < hole.end and virt + size > hole.start:
                raise PageFault(max(virt, hole.start), write, hole.walk)
        return (virt - self.page_offset) & _ULONG_MASK


# -- errors ------------------------------------------------------------------------------------------------


class PhysAddrError(ValueError):
    """An access reaches outside physical RAM.  Raised by :class:`PhysMem`; where the kernel made
    the access it becomes a page fault Oops (:func:`ksim.panic.page_fault_oops`, docs/linux-rules.md
    D11); anywhere else (the firmware, the loader, a test poking RAM) it stays an error.  *write*
    says whether it was a store."""

    def __init__(self, addr: int, size: int, ram_size: int, high_end: int = 0, *,
                 write: bool = False) -> None:
        self.addr = addr
        self.size = size
        self.ram_size = ram_size
        self.write = write
        where = f"[0, {ram_size:#x})"
        if high_end:
            where = f"[0, {ram_size:#x}) or [{FOUR_GIB:#x}, {high_end:#x})"
        super().__init__(f"physical access of {size} bytes at {addr:#x} is outside RAM {where}")


class PageFault(Exception):
    """A kernel access through a not-present page-table entry (D11): *address* is what CR2 holds,
    *walk* dump_pagetable()'s line.  Kernel code turns it into an Oops
    (:func:`ksim.panic.page_fault_oops`)."""

    def __init__(self, address: int, write: bool, walk: str) -> None:
        super().__init__(f"unable to handle page fault for address: {address:016x}")
        self.address = address
        self.write = write
        self.walk = walk


class RamFileError(ValueError):
    """The RAM file or its journal cannot be used as asked; nothing on disk was changed."""


# -- fills: what a cold boot or memtest leaves in RAM ------------------------------------------------------

_range_start = itemgetter(0)


@attrs.frozen
class _ColdFill:
    """Power loss: every page becomes garbage determined by (seed, epoch, pfn).

    SHAKE-128 is specified bit for bit (FIPS 202) and produces a page in one C call, so the garbage is
    stable across machines and Python versions and costs ~15 us a page; ``hash()`` is salted per process
    and ``random.Random`` is slower to seed.
    """

    seed: int
    epoch: int

    def covers_page(self, pfn: int) -> bool:
        return True

    def apply(self, ram: mmap.mmap, pfn: int) -> bool:
        base = pfn << PAGE_SHIFT
        key = b"ksim-cold %d %d %d" % (self.seed, self.epoch, pfn)
        ram[base:base + PAGE_SIZE] = hashlib.shake_128(key).digest(PAGE_SIZE)
        return True

    def record(self) -> str:
        return f"cold {self.seed} {self.epoch}\n"


class _RangeFill:
    """A fill over *ranges*: sorted, disjoint, half-open byte ranges of the RAM file."""

    ranges: tuple[tuple[int, int], ...]

    def _pieces(self, pfn: int) -> list[tuple[int, int]]:
        base = pfn << PAGE_SHIFT
        end = base + PAGE_SIZE
        pieces: list[tuple[int, int]] = []
        i = bisect.bisect_left(self.ranges, end, key=_range_start)
        while i > 0:
            i -= 1
            r_start, r_end = self.ranges[i]
            if r_end <= base:
                break
            pieces.append((max(r_start, base), min(r_end, end)))
        return pieces

    def covers_page(self, pfn: int) -> bool:
        return self._pieces(pfn) == [(pfn << PAGE_SHIFT, (pfn + 1) << PAGE_SHIFT)]

    def _spans(self) -> str:
        return " ".join(f"{start:x}-{end:x}" for start, end in self.ranges)


@attrs.frozen
class _ScrubFill(_RangeFill):
    """memtest's effect (or a firmware that zeroes memory): *ranges* hold *pattern*."""

    pattern: int
    ranges: tuple[tuple[int, int], ...]

    def apply(self, ram: mmap.mmap, pfn: int) -> bool:
        pieces = self._pieces(pfn)
        for start, end in pieces:
            ram[start:end] = bytes((self.pattern,)) * (end - start)
        return bool(pieces)

    def record(self) -> str:
        return f"scrub {self.pattern:x} {self._spans()}\n"


@attrs.frozen
class _DataFill(_RangeFill):
    """Something was written over *ranges* (an initramfs, a kernel image): garbage keyed by (*key*, pfn).

    The bytes mean nothing; what matters is that whatever was there before is gone, reproducibly.
    """

    key: str
    ranges: tuple[tuple[int, int], ...]

    def apply(self, ram: mmap.mmap, pfn: int) -> bool:
        pieces = self._pieces(pfn)
        if pieces:
            base = pfn << PAGE_SHIFT
            page = hashlib.shake_128(b"ksim-data %s %d" % (self.key.encode(), pfn)).digest(PAGE_SIZE)
            for start, end in pieces:
                ram[start:end] = page[start - base:end - base]
        return bool(pieces)

    def record(self) -> str:
        return f"data {self.key} {self._spans()}\n"


_Fill: TypeAlias = "_ColdFill | _ScrubFill | _DataFill"

# A fill key is one word of the journal.
_KEY_CHARS: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/+-")


def _merge_ranges(ranges: Iterable[tuple[int, int]], ram_size: int) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if start > end:
            raise ValueError(f"invalid range [{start:#x}, {end:#x}): start above end")
        if start < 0 or end > ram_size:
            raise PhysAddrError(start, end - start, ram_size)
        if start == end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return tuple(merged)


# -- the sidecar journal -----------------------------------------------------------------------------------

_JOURNAL_MAGIC: Final = "ksim-ram-journal"
_JOURNAL_VERSION: Final = 2
_JOURNAL_VERSIONS: Final = (1, 2)  # what load() accepts; version 1 is upgraded in place


def _write_all(fd: int, data: bytes, path: Path) -> None:
    view = memoryview(data)
    try:
        while view:
            view = view[os.write(fd, view):]
    except OSError as exc:
        # A torn last line is dropped on load, so what is on disk stays a journal of the past.
        raise RamFileError(f"cannot write RAM journal {path}: {exc.strerror} (the run stops "
                           "here; the RAM file and its journal hold every store made before)") \
            from None


# The RAM file's blocks are allocated (posix_fallocate) a chunk at a time before the first store
# to it: a store to a hole of a sparse file on a full filesystem would otherwise kill the process
# with SIGBUS, without a message.
_BACKING_CHUNK_SHIFT: Final = 16


class _Journal:
    """``<ram_file>.cold``: the pending fills of a file-backed RAM and the machine's boot count.

    Text, one record a line::

        ksim-ram-journal 2 <ram size>      header (version 1: no ``data`` or ``boots`` records)
        boots <n>                          the machine has booted n times (the last such line counts)
        cold <seed> <epoch>                a cold boot (decimal); the journal is rewritten to start here
        scrub <pattern> <s>-<e> ...        a memtest pass over half-open hex byte ranges of the RAM file
        data <key> <s>-<e> ...             garbage keyed by <key> was written over those ranges
        p <pfn>                            page <pfn> (hex) was materialised under the fills above it

    A page is materialised into RAM *first* and journaled *second*, and only then does the access that
    caused it proceed.  Materialising is a pure function of the fills, so if the process dies between the
    two steps the next one redoes it identically, and no caller data can have been written yet; a record
    always precedes any data written after it, so the journal can never make written data disappear.
    A torn last line is such an unfinished step and is dropped on load.  A version-1 journal (written
    before ``data`` and ``boots`` existed) means the same under version 2: load() rewrites its header,
    atomically, before anything is appended.
    """

    def __init__(self, path: Path, ram_size: int) -> None:
        self.path = path
        self._ram_size = ram_size
        self._fd: int | None = None
        self.boots = 0

    def load(self) -> tuple[list[_Fill], dict[int, int]]:
        """Replay the journal; no journal means no pending fills and no boots."""
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CLOEXEC)
        except FileNotFoundError:
            return [], {}
        except OSError as exc:
            raise RamFileError(f"cannot open RAM journal {self.path} read-write: {exc.strerror}") from None
        try:
            with open(fd, "rb", closefd=False) as f:
                data = f.read()
            complete = data[:data.rfind(b"\n") + 1]
            fills, page_gen, version = self._parse(complete)
            if complete != data:  # drop the torn record so the next append starts on a fresh line
                os.ftruncate(fd, len(complete))
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        if version != _JOURNAL_VERSION:
            body = complete.decode("ascii").split("\n", 1)[1]
            self.rewrite(body, with_boots=False)
        return fills, page_gen

    def _parse(self, data: bytes) -> tuple[list[_Fill], dict[int, int], int]:
        fills: list[_Fill] = []
        page_gen: dict[int, int] = {}
        try:
            lines = data.decode("ascii").splitlines()
        except UnicodeDecodeError:
            raise self._corrupt(0, "not ASCII text") from None
        headers = {f"{_JOURNAL_MAGIC} {v} {self._ram_size}": v for v in _JOURNAL_VERSIONS}
        version = headers.get(lines[0]) if lines else None
        if version is None:
            raise self._corrupt(1, f"expected header '{_JOURNAL_MAGIC} {_JOURNAL_VERSION} {self._ram_size}'")
        for number, line in enumerate(lines[1:], start=2):
            kind, _, rest = line.partition(" ")
            try:
                if kind == "p":
                    pfn = int(rest, 16)
                    if not 0 <= pfn < self._ram_size >> PAGE_SHIFT:
                        raise ValueError("pfn outside RAM")
                    page_gen[pfn] = len(fills)
                elif kind == "cold":
                    seed, epoch = rest.split(" ")
                    # A cold boot supersedes everything before it, including materialised pages.
                    fills = [_ColdFill(int(seed), int(epoch))]
                    page_gen.clear()
                elif kind == "scrub":
                    pattern, *spans = rest.split(" ")
                    if not 0 <= int(pattern, 16) <= 0xFF:
                        raise ValueError("pattern is not a byte")
                    fills.append(_ScrubFill(int(pattern, 16), self._spans(spans)))
                elif kind == "data" and version >= 2:
                    key, *spans = rest.split(" ")
                    if not key or not set(key) <= _KEY_CHARS:
                        raise ValueError("bad key")
                    fills.append(_DataFill(key, self._spans(spans)))
                elif kind == "boots" and version >= 2:
                    boots = int(rest, 10)
                    if boots < 0:
                        raise ValueError("negative boot count")
                    self.boots = boots
                else:
                    raise ValueError(f"unknown record {kind!r}")
            except ValueError as exc:
                raise self._corrupt(number, f"{line!r}: {exc}") from None
        return fills, page_gen, version

    def _spans(self, spans: list[str]) -> tuple[tuple[int, int], ...]:
        pairs = (span.split("-") for span in spans)
        return _merge_ranges(((int(s, 16), int(e, 16)) for s, e in pairs), self._ram_size)

    def _corrupt(self, line: int, why: str) -> RamFileError:
        return RamFileError(
            f"RAM journal {self.path} is corrupt (line {line}: {why}); the RAM file was not touched. "
            "Deleting the journal forgets the pending cold-boot/memtest state and the boot count."
        )

    def append(self, text: str) -> None:
        if self._fd is None:
            self.rewrite(text)
        else:
            _write_all(self._fd, text.encode("ascii"), self.path)

    def rewrite(self, records: str, *, with_boots: bool = True) -> None:
        """Replace the whole journal atomically, so a kill leaves either the old or the new one.

        The boot count is kept: a cold boot forgets RAM, not how often the machine booted.
        """
        boots = f"boots {self.boots}\n" if with_boots and self.boots else ""
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise RamFileError(f"cannot write RAM journal {tmp}: {exc.strerror}") from None
        try:
            header = f"{_JOURNAL_MAGIC} {_JOURNAL_VERSION} {self._ram_size}\n"
            _write_all(fd, f"{header}{boots}{records}".encode("ascii"), self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)  # the old journal stays whole: no half state
            raise
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.close()
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


# -- RAM ---------------------------------------------------------------------------------------------------

# Python 3.11's mmap module lacks MAP_NORESERVE; without it a 64 GiB private mapping may be refused.
_MAP_NORESERVE: Final = getattr(mmap, "MAP_NORESERVE", 0x4000)
_MEMSET_CHUNK: Final = 1 << 20

Buffer: TypeAlias = "bytes | bytearray | memoryview"


def _open_ram_file(path: Path, size: int) -> tuple[int, bool]:
    """Open (or create, sparse) the RAM file read-write; return the fd and whether it was created.

    An existing file is never truncated, resized or written here: a size mismatch most likely means the
    user pointed a differently sized machine at a RAM image they still want.
    """
    try:
        return os.open(path, os.O_RDWR | os.O_CLOEXEC), False
    except FileNotFoundError:
        pass
    except IsADirectoryError:
        raise RamFileError(f"RAM file {path} is a directory") from None
    except OSError as exc:
        raise RamFileError(f"cannot open RAM file {path} read-write: {exc.strerror}") from None
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    except FileNotFoundError:
        raise RamFileError(
            f"cannot create RAM file {path}: directory {path.parent} does not exist"
        ) from None
    except OSError as exc:
        raise RamFileError(f"cannot create RAM file {path}: {exc.strerror}") from None
    try:
        os.ftruncate(fd, size)
    except OSError as exc:
        os.close(fd)
        os.unlink(path)
        raise RamFileError(f"cannot size new RAM file {path} to {size} bytes: {exc.strerror}") from None
    return fd, True


def _check_ram_file(fd: int, path: Path, size: int) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise RamFileError(f"RAM file {path} is not a regular file")
    if st.st_size != size:
        raise RamFileError(
            f"RAM file {path} is {st.st_size} bytes ({format_size(st.st_size)}) but the machine has "
            f"{size} bytes ({format_size(size)}) of RAM; an existing RAM file is never resized"
        )
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        # Two PhysMems on one file would each keep their own view of the pending fills.
        raise RamFileError(f"RAM file {path} is in use by another PhysMem") from None


class PhysMem:
    """The machine's physical RAM: *size* bytes, the first *below_4g* of them at physical 0, the rest at 4 GiB.

    Anonymous by default (lost with the process).  With *ram_file* the RAM is that file mapped shared, so
    it survives the process like RAM survives a warm reboot; the file is created sparse if missing, and
    its pending fills and the boot count are kept in ``<ram_file>.cold`` (see :class:`_Journal`).  A journal
    found next to a RAM file this call had to create describes RAM that no longer exists and is removed.

    *seed* makes this machine's cold-boot garbage differ from another machine's (M9: what survives is
    hardware-specific).  All accessors take physical addresses and raise :class:`PhysAddrError` outside
    RAM (below 0, past the low part, in the hole under 4 GiB, past the high part); multi-byte integers are
    little-endian, as on x86.
    """

    __slots__ = ("_backed", "_fd", "_fills", "_high_end", "_journal", "_low", "_map", "_page_gen", "_ram_file", "_seed",
                 "_size", "_boots")

    def __init__(self, size: int, *, ram_file: str | os.PathLike[str] | None = None, seed: int = 0,
                 below_4g: int | None = None) -> None:
        if size <= 0 or size % PAGE_SIZE:
            raise ValueError(f"RAM size {size} is not a positive multiple of PAGE_SIZE ({PAGE_SIZE})")
        low = size if below_4g is None else below_4g
        if not 0 < low <= size or low % PAGE_SIZE or (low < size and low > FOUR_GIB):
            raise ValueError(f"RAM below 4 GiB ({low:#x}) must be whole pages, at most 4 GiB and at most "
                             f"the RAM size ({size:#x})")
        self._size = size
        self._low = low
        self._high_end = FOUR_GIB + size - low if low < size else 0
        self._seed = seed
        self._boots = 0
        # _fills: pending fills, oldest first.  _page_gen[pfn] = len(_fills) when pfn was last brought up
        # to date; a page is current iff its entry equals len(_fills).  Both in RAM-file offsets.
        self._fills: list[_Fill] = []
        self._page_gen: dict[int, int] = {}
        self._journal: _Journal | None = None
        self._fd: int | None = None
        self._backed: set[int] | None = None  # RAM file: chunks whose blocks are allocated
        self._ram_file = None if ram_file is None else Path(ram_file)
        if self._ram_file is None:
            self._map = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | _MAP_NORESERVE)
            return
        path = self._ram_file
        fd, created = _open_ram_file(path, size)
        journal = _Journal(path.with_name(path.name + ".cold"), size)
        try:
            _check_ram_file(fd, path, size)
            if created:
                # A new RAM file gets its journal at once: a RAM file without one would be
                # taken for a machine that booted before, warm, on zeros.
                journal.path.unlink(missing_ok=True)
                journal.rewrite("")
            self._fills, self._page_gen = journal.load()
            self._map = mmap.mmap(fd, size, flags=mmap.MAP_SHARED)
        except BaseException:
            journal.close()
            os.close(fd)
            if created:
                path.unlink(missing_ok=True)
            raise
        self._fd = fd
        self._backed = set()
        self._journal = journal
        self._boots = journal.boots

    @property
    def size(self) -> int:
        return self._size

    @property
    def below_4g(self) -> int:
        """How much of the RAM sits at physical 0 (the rest is at 4 GiB)."""
        return self._low

    def ram_ranges(self) -> list[tuple[int, int]]:
        """The half-open physical ranges holding RAM."""
        ranges = [(0, self._low)]
        if self._high_end:
            ranges.append((FOUR_GIB, self._high_end))
        return ranges

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def ram_file(self) -> Path | None:
        return self._ram_file

    @property
    def journal_file(self) -> Path | None:
        return None if self._journal is None else self._journal.path

    @property
    def boots(self) -> int:
        """How often the machine owning this RAM booted (kept in the journal with a RAM file)."""
        return self._boots

    def record_boot(self, boots: int) -> None:
        """The machine booted: it has now booted *boots* times (persisted before the boot runs)."""
        self._boots = boots
        if self._journal is not None:
            self._journal.boots = boots
            self._journal.append(f"boots {boots}\n")

    def __repr__(self) -> str:
        backing = "anonymous" if self._ram_file is None else f"ram_file={str(self._ram_file)!r}"
        return f"<PhysMem {format_size(self._size)} {backing}>"

    # -- physical addresses --------------------------------------------------------------------------------

    def _offset(self, addr: int, n: int, write: bool = False) -> int:
        """The RAM-file offset of the *n* bytes at physical *addr* (which is not below ``below_4g``... or
        is: this is the slow path the accessors take for anything outside the low part)."""
        if 0 <= addr and addr + n <= self._low and n >= 0:
            return addr
        if self._high_end and FOUR_GIB <= addr and addr + n <= self._high_end and n >= 0:
            return addr - FOUR_GIB + self._low
        raise PhysAddrError(addr, n, self._low, self._high_end, write=write)

    def contains(self, addr: int, n: int) -> bool:
        """Whether the *n* bytes at physical *addr* are all RAM."""
        return any(start <= addr and addr + n <= end for start, end in self.ram_ranges())

    def _offset_ranges(self, ranges: Iterable[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
        out = []
        for start, end in ranges:
            if start > end:
                raise ValueError(f"invalid range [{start:#x}, {end:#x}): start above end")
            if start == end:
                continue
            base = self._offset(start, end - start, write=True)
            out.append((base, base + end - start))
        return _merge_ranges(out, self._size)

    # -- power model ---------------------------------------------------------------------------------------

    def cold_boot(self, epoch_seed: int) -> None:
        """Power was cut: every page becomes garbage determined by (seed, *epoch_seed*, pfn), lazily."""
        fill = _ColdFill(self._seed, epoch_seed)
        if self._journal is not None:
            self._journal.rewrite(fill.record())
        self._fills = [fill]
        self._page_gen.clear()

    def scrub(self, ranges: Iterable[tuple[int, int]], pattern: int = 0) -> None:
        """memtest ran over *ranges* (half-open physical ``(start, end)`` ranges): they now hold *pattern*.

        memtest's last pattern is 0, hence the default.  Takes :meth:`Memblock.free_ranges` output as is.
        """
        if not 0 <= pattern <= 0xFF:
            raise ValueError(f"scrub pattern {pattern:#x} is not a byte")
        self._add_fill(lambda merged: _ScrubFill(pattern, merged), ranges)

    def fill(self, ranges: Iterable[tuple[int, int]], key: str) -> None:
        """Something overwrote *ranges* (half-open physical ranges) with data: from now on they hold
        garbage determined by (*key*, page), lazily.  *key* is one word of ``[A-Za-z0-9._:/+-]``."""
        if not key or not set(key) <= _KEY_CHARS:
            raise ValueError(f"fill key {key!r} is not one word of [A-Za-z0-9._:/+-]")
        self._add_fill(lambda merged: _DataFill(key, merged), ranges)

    def _add_fill(self, make: Callable[[tuple[tuple[int, int], ...]], _Fill],
                  ranges: Iterable[tuple[int, int]]) -> None:
        merged = self._offset_ranges(ranges)
        if not merged:
            return
        fill = make(merged)
        if self._journal is not None:
            self._journal.append(fill.record())
        self._fills.append(fill)

    def _back(self, start: int, end: int) -> None:
        """Allocate the RAM file's blocks under ``[start, end)`` (offsets) before a store."""
        assert self._backed is not None and self._fd is not None
        backed = self._backed
        for chunk in range(start >> _BACKING_CHUNK_SHIFT, ((end - 1) >> _BACKING_CHUNK_SHIFT) + 1):
            if chunk in backed:
                continue
            offset = chunk << _BACKING_CHUNK_SHIFT
            try:
                os.posix_fallocate(self._fd, offset, min(1 << _BACKING_CHUNK_SHIFT, self._size - offset))
            except OSError as exc:
                raise RamFileError(
                    f"cannot store to RAM file {self._ram_file}: {exc.strerror} (the run stops "
                    "here; the file holds every store made before)") from None
            backed.add(chunk)

    def _settle(self, start: int, end: int) -> None:
        """Materialise the pages of ``[start, end)`` that a fill has not reached yet."""
        first = start >> PAGE_SHIFT
        last = (end - 1) >> PAGE_SHIFT
        gen = len(self._fills)
        if first == last:  # most accesses stay within one page: skip building a list
            if self._page_gen.get(first) != gen and start < end:
                self._materialise([first], gen)
            return
        get = self._page_gen.get
        stale = [pfn for pfn in range(first, last + 1) if get(pfn) != gen]
        if stale:
            self._materialise(stale, gen)

    def _materialise(self, pfns: list[int], gen: int) -> None:
        fills = self._fills
        written = []
        for pfn in pfns:
            if self._backed is not None:
                self._back(pfn << PAGE_SHIFT, (pfn + 1) << PAGE_SHIFT)
            pending = fills[self._page_gen.get(pfn, 0):]
            # Only the newest fill covering the whole page and those after it can show through.
            first = next((i for i in range(len(pending) - 1, 0, -1) if pending[i].covers_page(pfn)), 0)
            # A list, not a generator: every fill must be applied, not just the first that writes.
            if any([fill.apply(self._map, pfn) for fill in pending[first:]]):
                written.append(pfn)
        if written and self._journal is not None:
            self._journal.append("".join(f"p {pfn:x}\n" for pfn in written))
        # Only now: were the journal write to fail, the pages must be redone, not trusted.
        self._page_gen.update(dict.fromkeys(pfns, gen))

    # -- access (hot: memconsole writes every console record through here) ---------------------------------

    def read(self, addr: int, n: int) -> bytes:
        end = addr + n
        if addr < 0 or n < 0 or end > self._low:
            addr = self._offset(addr, n)
            end = addr + n
        fills = self._fills
        if fills and not (addr >> PAGE_SHIFT == (end - 1) >> PAGE_SHIFT
                          and self._page_gen.get(addr >> PAGE_SHIFT) == len(fills)):
            self._settle(addr, end)
        return self._map[addr:end]

    def write(self, addr: int, data: Buffer) -> None:
        """Store *data* (bytes-like with 1-byte items) at *addr*."""
        end = addr + len(data)
        if addr < 0 or end > self._low:
            addr = self._offset(addr, len(data), write=True)
            end = addr + len(data)
        fills = self._fills
        if fills and not (addr >> PAGE_SHIFT == (end - 1) >> PAGE_SHIFT
                          and self._page_gen.get(addr >> PAGE_SHIFT) == len(fills)):
            self._settle(addr, end)
        if self._backed is not None and end > addr:
            self._back(addr, end)
        self._map[addr:end] = data

    def memset(self, addr: int, byte: int, n: int) -> None:
        addr = self._offset(addr, n, write=True)
        end = addr + n
        if not 0 <= byte <= 0xFF:
            raise ValueError(f"memset value {byte:#x} is not a byte")
        # Chunked, so clearing gigabytes never builds a gigabyte-sized temporary.
        chunk = bytes((byte,)) * min(n, _MEMSET_CHUNK)
        for pos in range(addr, end, _MEMSET_CHUNK):
            stop = min(pos + _MEMSET_CHUNK, end)
            if self._fills:
                self._settle(pos, stop)
            if self._backed is not None:
                self._back(pos, stop)
            self._map[pos:stop] = chunk[:stop - pos]

    def memcpy(self, dst: int, src: int, n: int) -> None:
        """Copy *n* bytes; overlapping ranges behave like memmove (in C that would be undefined)."""
        src = self._offset(src, n)
        dst = self._offset(dst, n, write=True)
        if self._fills:
            self._settle(src, src + n)
            self._settle(dst, dst + n)
        if self._backed is not None and n:
            self._back(dst, dst + n)
        self._map.move(dst, src, n)

    if TYPE_CHECKING:  # generated below, one per width
        def read_u8(self, addr: int) -> int: ...
        def read_u16(self, addr: int) -> int: ...
        def read_u32(self, addr: int) -> int: ...
        def read_u64(self, addr: int) -> int: ...
        def write_u8(self, addr: int, value: int) -> None: ...
        def write_u16(self, addr: int, value: int) -> None: ...
        def write_u32(self, addr: int, value: int) -> None: ...
        def write_u64(self, addr: int, value: int) -> None: ...

    # -- lifetime ------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Flush a file-backed RAM to its file and unmap; idempotent."""
        if self._map.closed:
            return
        if self._ram_file is not None:
            self._map.flush()
        self._map.close()
        if self._journal is not None:
            self._journal.close()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> PhysMem:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _int_accessors(bits: int, fmt: str) -> None:
    """Install ``read_u<bits>``/``write_u<bits>`` on PhysMem: the same lean path as read()/write()."""
    codec = struct.Struct(fmt)
    width = codec.size
    unpack_from = codec.unpack_from
    pack_into = codec.pack_into
    limit = 1 << bits

    def read_uN(self: PhysMem, addr: int) -> int:
        if addr < 0 or addr + width > self._low:
            addr = self._offset(addr, width)
        fills = self._fills
        if fills and (self._page_gen.get(addr >> PAGE_SHIFT) != len(fills)
                      or addr & ~PAGE_MASK > PAGE_SIZE - width):  # may cross into the next page
            self._settle(addr, addr + width)
        value: int = unpack_from(self._map, addr)[0]
        return value

    def write_uN(self: PhysMem, addr: int, value: int) -> None:
        if addr < 0 or addr + width > self._low:
            addr = self._offset(addr, width, write=True)
        if not 0 <= value < limit:
            raise ValueError(f"{value:#x} does not fit in u{bits}")
        fills = self._fills
        if fills and (self._page_gen.get(addr >> PAGE_SHIFT) != len(fills)
                      or addr & ~PAGE_MASK > PAGE_SIZE - width):  # may cross into the next page
            self._settle(addr, addr + width)
        if self._backed is not None:
            self._back(addr, addr + width)
        pack_into(self._map, addr, value)

    for function, name, doc in (
        (read_uN, f"read_u{bits}", f"Load a little-endian u{bits} from *addr*."),
        (write_uN, f"write_u{bits}", f"Store *value* as a little-endian u{bits} at *addr*."),
    ):
        function.__name__ = name
        function.__qualname__ = f"PhysMem.{name}"
        function.__doc__ = doc
        setattr(PhysMem, name, function)


for _bits, _fmt in ((8, "<B"), (16, "<H"), (32, "<I"), (64, "<Q")):
    _int_accessors(_bits, _fmt)
del _bits, _fmt

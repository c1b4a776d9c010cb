"""The printk ring buffer: whole records, oldest dropped first (kernel/printk/printk_ringbuffer.c).

A leaf: it stores records and hands them out by sequence number, and knows nothing of
levels, consoles or formats (those are printk's, :mod:`ksim.printk`).

Linux 5.10+'s lockless ring buffer keeps a descriptor ring and a data ring; ksim keeps whole
records in a deque and charges each its UTF-8 text length plus a fixed header against the
byte capacity, so ``log_buf_len=`` has the effect it has on Linux: how *much text* survives,
not how many lines (C12, C13).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import NamedTuple

__all__ = ["LOG_BUF_LEN_DEFAULT", "LOG_CONT", "LOG_NEWLINE", "LogBuffer", "PrintkRecord",
           "RECORD_OVERHEAD", "TRUNC_MSG"]

# Record flags (C12).
LOG_NEWLINE = 2
LOG_CONT = 8

LOG_BUF_LEN_DEFAULT = 1 << 17  # CONFIG_LOG_BUF_SHIFT=17
RECORD_OVERHEAD = 16  # bytes of the 3.5-5.9 record header; ksim charges it per record (C13)
TRUNC_MSG = "<truncated>"


class PrintkRecord(NamedTuple):
    """One finalized record of the ring buffer (C12).

    A NamedTuple rather than an attrs class: it is immutable all the same, and building one
    is the single hottest allocation of printk.
    """

    seq: int
    ts_nsec: int
    level: int
    text: str
    facility: int = 0
    flags: int = LOG_NEWLINE
    caller_id: str = ""


_new_record = tuple.__new__  # PrintkRecord(...) without the generated __new__'s extra call


class LogBuffer:
    """The printk ring buffer: whole records, oldest dropped first when full (C12, C13).

    Capacity is in bytes, each record costing its UTF-8 text length plus a fixed header, so
    ``log_buf_len=`` has the effect it has on Linux: how *much text* survives, not how many
    lines.
    """

    __slots__ = ("size", "_records", "_used", "first_seq", "next_seq")

    def __init__(self, size: int = LOG_BUF_LEN_DEFAULT) -> None:
        self.size = size
        self._records: deque[tuple[PrintkRecord, int]] = deque()
        self._used = 0
        self.first_seq = 0
        self.next_seq = 0

    def store(self, ts_nsec: int, level: int, text: str, facility: int = 0,
              flags: int = LOG_NEWLINE, caller_id: str = "") -> PrintkRecord:
        cost = RECORD_OVERHEAD + (len(text) if text.isascii() else len(text.encode()))
        if cost > self.size:
            # C13: a message that could never fit is cut to a quarter of the buffer.
            keep = max(self.size // 4 - RECORD_OVERHEAD - len(TRUNC_MSG), 0)
            text = text.encode()[:keep].decode(errors="ignore") + TRUNC_MSG
            cost = RECORD_OVERHEAD + len(text.encode())
        records = self._records
        while records and self._used + cost > self.size:
            _, old_cost = records.popleft()
            self._used -= old_cost
            self.first_seq += 1
        record = _new_record(PrintkRecord,
                             (self.next_seq, ts_nsec, level, text, facility, flags, caller_id))
        records.append((record, cost))
        self._used += cost
        self.next_seq += 1
        return record

    def get(self, seq: int) -> PrintkRecord | None:
        index = seq - self.first_seq
        if 0 <= index < len(self._records):
            return self._records[index][0]
        return None

    def records_from(self, seq: int) -> Iterator[PrintkRecord]:
        start = max(seq - self.first_seq, 0)
        for index in range(start, len(self._records)):
            yield self._records[index][0]

    def __iter__(self) -> Iterator[PrintkRecord]:
        return (record for record, _ in self._records)

    def __len__(self) -> int:
        return len(self._records)

    @property
    def used(self) -> int:
        return self._used

    def resize(self, size: int) -> None:
        """Grow to ``size`` bytes, keeping every record (setup_log_buf copies the early log)."""
        self.size = max(size, self.size)

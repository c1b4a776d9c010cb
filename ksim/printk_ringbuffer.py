"""The printk ring buffer: whole records, oldest dropped first (kernel/printk/printk_ringbuffer.c).

A leaf: it stores records and hands them out by sequence number, and knows nothing of
levels, consoles or formats (those are printk's, :mod:`ksim.printk`).

Linux 5.10+'s lockless ring buffer keeps a descriptor ring and a data ring; ksim keeps whole
records in a list (oldest first, from a moving head) and charges each its UTF-8 text length plus a fixed header against the
byte capacity, so ``log_buf_len=`` has the effect it has on Linux: how *much text* survives,
not how many lines (C12, C13).
"""

from __future__ import annotations

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

# Dropped records are cut off the front of the list only once this many have accumulated
# (and they are at least half the list), so dropping stays O(1) amortized.
_COMPACT_AFTER = 4096


class LogBuffer:
    """The printk ring buffer: whole records, oldest dropped first when full (C12, C13).

    Capacity is in bytes, each record costing its UTF-8 text length plus a fixed header, so
    ``log_buf_len=`` has the effect it has on Linux: how *much text* survives, not how many
    lines.
    """

    __slots__ = ("size", "_records", "_costs", "_head", "_used", "first_seq", "next_seq")

    def __init__(self, size: int = LOG_BUF_LEN_DEFAULT) -> None:
        self.size = size
        # A list indexed by seq - first_seq + _head: O(1) by sequence number wherever the
        # record is (a deque's indexing walks from its nearer end: quadratic over a big log).
        # The entries before _head are dropped records not yet cut off.  The list is
        # replaced, never cut in place, so an iterator over it keeps its snapshot.  Each
        # record's charge is in _costs at the same index (no pair to build per record).
        self._records: list[PrintkRecord] = []
        self._costs: list[int] = []
        self._head = 0
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
        costs = self._costs
        if self._used + cost > self.size:
            head = self._head
            used = self._used
            while head < len(costs) and used + cost > self.size:
                used -= costs[head]
                head += 1
            self.first_seq += head - self._head
            self._used = used
            if head >= _COMPACT_AFTER and head * 2 >= len(records):
                records = self._records = records[head:]
                costs = self._costs = costs[head:]
                head = 0
            self._head = head
        record = _new_record(PrintkRecord,
                             (self.next_seq, ts_nsec, level, text, facility, flags, caller_id))
        records.append(record)
        costs.append(cost)
        self._used += cost
        self.next_seq += 1
        return record

    def get(self, seq: int) -> PrintkRecord | None:
        index = seq - self.first_seq
        if 0 <= index < self.next_seq - self.first_seq:
            return self._records[self._head + index]
        return None

    def records_from(self, seq: int) -> Iterator[PrintkRecord]:
        """The records from ``seq`` on, as the buffer holds them now."""
        records = self._records
        start = self._head + max(seq - self.first_seq, 0)
        return (records[index] for index in range(start, len(records)))

    def __iter__(self) -> Iterator[PrintkRecord]:
        return self.records_from(self.first_seq)

    def __len__(self) -> int:
        return self.next_seq - self.first_seq

    @property
    def used(self) -> int:
        return self._used

    def resize(self, size: int) -> None:
        """Grow to ``size`` bytes, keeping every record (setup_log_buf copies the early log)."""
        self.size = max(size, self.size)

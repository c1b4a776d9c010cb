"""The wall clock (kernel/time/timekeeping.c): ``ktime_get_real_fast_ns``.

ksim's machines have no battery-backed RTC to read.  The wall clock of a boot is a fixed
epoch (2009-06-13 00:00:00 UTC, the date in ksim's ``Linux version`` banner) plus one hour
per earlier boot of the machine (``boot_index``) plus the virtual time since this boot
started, so it is the same on every host, and a later boot of the same machine always reads
a later time than an earlier one (as long as a boot lasts less than an hour of virtual time).
pstore stamps its dumps with it; nothing else in ksim reads it.
"""

from __future__ import annotations

from typing import Final

from ksim.current import current_kernel

__all__ = ["KSIM_RTC_EPOCH", "ktime_get_real_fast_ns"]

KSIM_RTC_EPOCH: Final = 1244851200  # 2009-06-13 00:00:00 UTC, in seconds
_NSEC_PER_SEC: Final = 1_000_000_000
_BOOT_SPACING: Final = 3600 * _NSEC_PER_SEC


def ktime_get_real_fast_ns() -> int:
    """CLOCK_REALTIME in nanoseconds; safe from any context (NMI included), as in Linux."""
    kernel = current_kernel()
    return KSIM_RTC_EPOCH * _NSEC_PER_SEC + kernel.boot_index * _BOOT_SPACING + kernel.local_clock()

"""Property-based test of the memconsole block (Hypothesis): no corruption crashes the reader.

Whatever a corruption of the 8 KiB block does (random bytes, bit flips, one header field
rewritten, the torn header of G1 among them), the next boot's ``/proc/memconsole`` neither
raises nor returns more than the buffer.  Sized to take about a second; ``tools/fuzz.py
--blocks N`` is the longer run of the same property.
"""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))

from fuzz import fuzz_blocks  # noqa: E402


@settings(max_examples=8, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0, max_value=1 << 32))
def test_no_corruption_of_the_block_crashes_the_next_boot(seed: int) -> None:
    report: list[str] = []
    failed, _shown = fuzz_blocks(25, seed, report)
    assert failed == 0, report


def test_the_block_fuzzer_sees_the_old_log_when_the_header_survives() -> None:
    # not vacuous: data-only corruptions leave the header valid and the old log shown (F7)
    failed, shown = fuzz_blocks(40, 1, [])
    assert failed == 0 and 0 < shown < 40

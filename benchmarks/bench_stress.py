"""``ksim stress``: memory per message, against the bytes of the messages themselves.

Issue 14 measured 0.27 KB of growth per message (121 MB at 300,000 messages): the checks kept
every console line.  They now read console output as it is written and keep only what the
invariants need (each sender's last index, the first problems).  The figure is the growth of
the traced Python heap from a run of 8 threads x 1,000 messages to one of 8 x 4,000, per extra
message; the baseline is the size of one message's console line (what keeping the transcript
costs, and what ksim/serial.py still keeps of ttyS0).  Target: under 0.1 KB per message.
"""

from __future__ import annotations

import tracemalloc

from _common import report
from ksim import stress
from ksim.stress import StressConfig, run_length, run_one, stress_message
from ksim.vclock import run_virtual

TARGET_KB = 0.1


def heap_after_run(messages: int) -> int:
    config = StressConfig(threads=8, messages=messages, cpus=4)
    length = run_length(config)
    # The bounded caches of message texts and parsed lines start empty in both runs, so
    # their filling is not counted as growth of one run over the other.
    stress.stress_message.cache_clear()
    stress._classify.cache_clear()
    tracemalloc.start()
    try:
        run_virtual(run_one, config, 0, [], None, None, length)
        return tracemalloc.get_traced_memory()[1]  # the peak, while the run's state lives
    finally:
        tracemalloc.stop()


def main() -> None:
    small, large = heap_after_run(1000), heap_after_run(4000)
    per_message = (large - small) / (8 * 3000) / 1024
    line = len("[    0.000000] " + stress_message("t00", 1000) + "\n") / 1024
    report("ksim stress heap growth per message", per_message, line, "KB", "one console line",
           multiple=True, below=TARGET_KB, digits=3)


if __name__ == "__main__":
    main()

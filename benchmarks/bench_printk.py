"""printk throughput: records/s through the log buffer and one console, against stdlib logging.

Baseline (issue 2): a stdlib ``logging`` handler that appends each formatted record to a
64 KiB bytearray ring under the handler's lock, i.e. the same work as printk: format, stamp,
copy into a ring.  Two ksim figures: the serial console ``ttyS0`` alone, and memconsole
(issue 3), whose every write copies into simulated RAM under a spinlock.
"""

from __future__ import annotations

import logging

import trio
import trio.testing

from _common import now, report
from ksim import Machine, printk
from ksim.plugins import load_plugins

N = 20_000


class RingHandler(logging.Handler):
    def __init__(self, size: int = 65536) -> None:
        super().__init__()
        self.ring = bytearray(size)
        self.pos = 0

    def emit(self, record: logging.LogRecord) -> None:
        data = (self.format(record) + "\n").encode()
        ring, pos, size = self.ring, self.pos, len(self.ring)
        n = min(len(data), size - pos)
        ring[pos:pos + n] = data[:n]
        if n < len(data):
            ring[0:len(data) - n] = data[n:]
        self.pos = (pos + len(data)) % size


def stdlib_seconds() -> float:
    logger = logging.getLogger("bench")
    logger.handlers[:] = [RingHandler()]
    logger.handlers[0].setFormatter(logging.Formatter("[%(relativeCreated)12.6f] %(message)s"))
    logger.propagate = False
    logger.setLevel(logging.INFO)
    start = now()
    for i in range(N):
        logger.error("message number %d from the benchmark", i)
    return now() - start


def ksim_seconds(cmdline: str, plugins: list[str]) -> float:
    classes = load_plugins(plugins)

    async def main() -> float:
        async with Machine("64M").boot(cmdline, classes):
            start = now()
            for i in range(N):
                await printk("\x013message number %d from the benchmark\n", i)
            return now() - start

    return trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))


CASES = [("printk -> ttyS0", "", [], ">= 2.0x"),
         ("printk -> ttyS0 + memconsole", "memconsole=8192", ["memconsole"], ""),
         ("printk -> memconsole only", "memconsole=8192 console=memconsole", ["memconsole"], "")]


def main() -> None:
    # Interleave the runs (baseline, then each case, five rounds) and keep each one's best:
    # a shared machine's noise then hits both sides alike.
    base, best = float("inf"), [float("inf")] * len(CASES)
    for _ in range(5):
        base = min(base, stdlib_seconds())
        for i, (_, cmdline, plugins, _) in enumerate(CASES):
            best[i] = min(best[i], ksim_seconds(cmdline, plugins))
    for (name, _, _, target), seconds in zip(CASES, best):
        report(name, N / seconds, N / base, "records/s", "stdlib logging", target=target)


if __name__ == "__main__":
    main()

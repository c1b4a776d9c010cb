"""The 8250 UART console ``ttyS`` (drivers/tty/serial/8250/8250_core.c).

The simulated machine has one UART, ``ttyS0``; what the kernel writes to it is the machine's
serial output (``ksim boot`` prints it on stdout).  ``console=ttyS1`` names a port that does
not exist, so its setup fails and the console stays disabled, as on a one-port PC.
"""

from __future__ import annotations

from collections.abc import Callable

from ksim.console import CON_ANYTIME, CON_PRINTBUFFER, Console
from ksim.errno import ENODEV

TTY_MAJOR = 4
TTYS_MINOR_BASE = 64


class SerialPorts:
    """The machine's UARTs: bytes written to port N go to ``output[N]`` and to ``sink``."""

    def __init__(self, nr_ports: int = 1, sink: Callable[[bytes], None] | None = None) -> None:
        self.output = [bytearray() for _ in range(nr_ports)]
        self.sink = sink

    async def setup(self, con: Console, options: str | None) -> int:
        return 0 if 0 <= con.index < len(self.output) else -ENODEV

    def write_nowait(self, con: Console, data: bytes) -> None:
        """serial8250_console_write(): the bytes go out; a UART write never waits."""
        self.output[con.index] += data
        if self.sink is not None:
            self.sink(data)

    async def write(self, con: Console, data: bytes) -> None:
        self.write_nowait(con, data)

    @staticmethod
    async def device(con: Console) -> tuple[int, int]:
        return TTY_MAJOR, TTYS_MINOR_BASE + con.index

    def console(self) -> Console:
        """``univ8250_console``: index -1, replays the log when registered (C4g)."""
        return Console(name="ttyS", write=self.write, flags=CON_PRINTBUFFER | CON_ANYTIME,
                       index=-1, setup=self.setup, device=self.device,
                       write_nowait=self.write_nowait)

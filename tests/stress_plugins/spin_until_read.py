"""A console that busy-waits: each stress line waits until its /proc file has been read.

The wait polls (``preempt_point()`` in a loop) for something only another thread does.  Under a
fair interleaving the reader runs and the wait ends; under PCT without change points
(``pct:1``), a writer of higher priority than the reader polls forever: a livelock, which ksim
stress must end with a verdict instead of hanging.
"""

from ksim import CON_ENABLED, Console, KernelModule, ProcOps, preempt_point, proc_create, \
    register_console


class SpinUntilRead(KernelModule):
    name = "spin_until_read"

    def __init__(self, kernel, builtin: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(kernel, builtin)
        self.was_read = False
        self.console = Console(name="spin", write=self.write, flags=CON_ENABLED, index=0)

    async def write(self, con: Console, msg: bytes) -> None:
        if b"stress t" in msg:
            while not self.was_read:
                await preempt_point()

    async def read(self, file: object, count: int, off: int) -> bytes:
        self.was_read = True
        return b""

    async def init(self) -> int:
        proc_create("spin_until_read", 0o444, None, ProcOps(proc_read=self.read))
        await register_console(self.console)
        return 0

"""lastlog: a minimal third-party console driver for ksim (the worked example of docs/plugins.md).

It keeps the last ``lines`` console lines in memory and shows them in ``/proc/lastlog``.
Load it with ``ksim boot --plugin-path docs/examples --plugin lastlog --cat /proc/lastlog``.
"""

from __future__ import annotations

from collections import deque

from ksim import (
    CON_ENABLED, CON_PRINTBUFFER, EINVAL, KERN_INFO, Console, DEFINE_SPINLOCK, KernelModule,
    ProcOps, module_param, printk, proc_create, register_console, remove_proc_entry, setup,
    spin_lock_irqsave, spin_unlock_irqrestore, unregister_console,
)


class Lastlog(KernelModule):
    name = "lastlog"
    description = "keep the last console lines in /proc/lastlog"
    author = "ksim example"
    license = "GPL"

    lines = module_param("int", 16, 0o444, "how many lines to keep")

    def __init__(self, kernel, builtin: bool) -> None:  # type: ignore[no-untyped-def]
        super().__init__(kernel, builtin)
        self.ring: deque[bytes] = deque()
        self.lock = DEFINE_SPINLOCK("lastlog_lock")
        # CON_PRINTBUFFER: replay what was logged before the driver registered.
        self.console = Console(name="lastlog", write=self.write,
                               flags=CON_ENABLED | CON_PRINTBUFFER, index=0)

    @setup("lastlog=")
    async def lastlog_setup(self, value: str) -> int:
        """``lastlog=N`` on the boot line, for the built-in driver."""
        if value.isdigit():
            self.lines = int(value)
        return 1  # consumed: not passed to init

    async def write(self, con: Console, data: bytes) -> None:
        flags = await spin_lock_irqsave(self.lock)
        for line in data.splitlines(keepends=True):
            self.ring.append(line)
            while len(self.ring) > self.lines:
                self.ring.popleft()
        spin_unlock_irqrestore(self.lock, flags)

    async def proc_read(self, file: object, count: int, pos: int) -> bytes:
        return b"".join(self.ring)[pos:pos + count]

    async def init(self) -> int:
        if self.lines <= 0:
            return -EINVAL
        if proc_create("lastlog", 0o444, None, ProcOps(proc_read=self.proc_read)) is None:
            return -EINVAL
        await register_console(self.console)
        await printk(KERN_INFO + "lastlog: keeping %d lines\n", self.lines)
        return 0

    async def check_invariants(self) -> list[str]:
        """For ``ksim stress``: the ring keeps at most ``lines`` lines, each a whole line."""
        problems = []
        flags = await spin_lock_irqsave(self.lock)
        if len(self.ring) > self.lines:
            problems.append(f"the ring holds {len(self.ring)} lines, more than lines={self.lines}")
        if any(not line.endswith(b"\n") for line in self.ring):
            problems.append("a kept line is not a whole line")
        spin_unlock_irqrestore(self.lock, flags)
        return problems

    async def exit(self) -> None:
        await unregister_console(self.console)
        remove_proc_entry("lastlog", None)

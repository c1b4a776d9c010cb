"""A test helper shared by the checker tests: run a function as a kernel thread on a CPU."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import trio

from ksim.kernel import Kernel


async def on_cpu(kernel: Kernel, cpu: int, fn: Callable[[], Awaitable[None]],
                 name: str = "") -> int:
    """Run ``fn`` as a kernel thread bound to ``cpu``, wait for it; returns its pid."""
    done = trio.Event()

    async def thread() -> None:
        try:
            await fn()
        finally:
            done.set()

    task = kernel.spawn_thread(thread, name=name or "t%d" % cpu, cpu=cpu)
    await done.wait()
    return task.pid

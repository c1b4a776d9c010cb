"""A timeline of a scheduled run as Chrome trace-event JSON (opens in Perfetto, chrome://tracing).

Lanes: one per CPU for the thread running on it and its interrupt handlers, one per CPU for
the spinlocks held there (with contention as a separate slice).  The time axis is the
scheduler's step count — one preemption point is one microsecond on the axis — because
virtual time stands still while simulated CPUs compute; it is the order of events that
matters, and it is exact.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from ksim.current import current

if TYPE_CHECKING:
    from ksim.kernel import Kernel
    from ksim.scheduler import SimThread

PID = 1


class Trace:
    def __init__(self) -> None:
        self.events: list[dict[str, object]] = []
        self.kernel: Kernel | None = None
        self._slices: dict[int, tuple[str, int]] = {}  # cpu -> (thread name, start)
        self._locks: dict[tuple[int, int], int] = {}  # (cpu, lock id) -> start
        self._waits: dict[tuple[int, int], int] = {}

    def attach(self, kernel: Kernel) -> None:
        self.kernel = kernel
        kernel.locking.observers.append(self)
        for cpu in kernel.cpus:
            self._meta(cpu.id * 2, f"CPU{cpu.id}")
            self._meta(cpu.id * 2 + 1, f"CPU{cpu.id} locks")

    def _meta(self, tid: int, name: str) -> None:
        self.events.append({"ph": "M", "pid": PID, "tid": tid, "name": "thread_name",
                            "args": {"name": name}})

    def _now(self) -> int:
        return getattr(self.kernel.sched, "points", 0) if self.kernel is not None else 0

    def _complete(self, tid: int, name: str, start: int, cat: str, **args: object) -> None:
        end = self._now()
        self.events.append({"ph": "X", "pid": PID, "tid": tid, "name": name, "cat": cat,
                            "ts": start, "dur": max(end - start, 1), "args": args})

    # scheduler hooks
    def run(self, thread: SimThread, previous: SimThread | None) -> None:
        cpu = thread.task.cpu.id
        current_slice = self._slices.get(cpu)
        if current_slice is not None and current_slice[0] == thread.task.comm:
            return
        if current_slice is not None:
            self._complete(cpu * 2, current_slice[0], current_slice[1], "run")
        self._slices[cpu] = (thread.task.comm, self._now())

    def irq_begin(self, cpu: int, number: int) -> None:
        self.events.append({"ph": "B", "pid": PID, "tid": cpu * 2, "name": f"irq {number}",
                            "cat": "irq", "ts": self._now()})

    def irq_end(self, cpu: int, number: int) -> None:
        self.events.append({"ph": "E", "pid": PID, "tid": cpu * 2, "ts": self._now()})

    # lock observer
    def lock_event(self, event: str, lock: object, flags: int = 0) -> None:
        cpu = current().cpu.id
        key = (cpu, id(lock))
        name = getattr(lock, "name", "lock")
        if event == "contended":
            self._waits[key] = self._now()
        elif event == "acquired":
            start = self._waits.pop(key, None)
            if start is not None:
                self._complete(cpu * 2 + 1, f"wait {name}", start, "contention")
            self._locks[key] = self._now()
        elif event == "release":
            start = self._locks.pop(key, None)
            if start is not None:
                self._complete(cpu * 2 + 1, name, start, "lock")

    def dumps(self) -> str:
        """The trace-event JSON (closing the slices still open)."""
        for cpu, (name, start) in sorted(self._slices.items()):
            self._complete(cpu * 2, name, start, "run")
        self._slices.clear()
        return json.dumps({"traceEvents": self.events, "displayTimeUnit": "ns",
                           "otherData": {"time axis": "scheduler steps (1 step = 1 us)"}})

    def write(self, path: str) -> None:
        with open(path, "w") as f:
            f.write(self.dumps())

"""A timeline of a scheduled run, for Perfetto: its own protobuf format, or Chrome JSON.

Lanes (tracks): one per CPU for the thread running on it and its interrupt and NMI handlers
(nested slices on top of the thread's), one per CPU for the spinlocks held there, with
contention as a ``wait LOCK`` slice.  A contention is a *flow* too: an arrow from the hold
slice of the CPU that had the lock to the wait slice of the CPU that waited for it.  The time
axis is the scheduler's step count — one preemption point is one microsecond on the axis —
because virtual time stands still while simulated CPUs compute; it is the order of events
that matters, and it is exact.

:meth:`Trace.dumps_proto` writes Perfetto's protobuf trace (``TracePacket`` messages of track
descriptors and ``TrackEvent`` slices, built with the official ``perfetto`` package's
``TraceProtoBuilder``: ``pip install ksim[perfetto]``); :meth:`Trace.dumps` the Chrome
trace-event JSON Perfetto calls legacy (flows as ``s``/``f`` events).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

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
        self._flows: dict[int, int] = {}  # lock id -> the flow of its first waiter
        self._next_flow = 0

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

    def _complete(self, tid: int, name: str, start: int, cat: str, flow: int | None = None,
                  flow_end: bool = False) -> None:
        end = self._now()
        event: dict[str, object] = {"ph": "X", "pid": PID, "tid": tid, "name": name,
                                    "cat": cat, "ts": start, "dur": max(end - start, 1),
                                    "args": {}}
        if flow is not None:
            event["flow"] = (flow, flow_end)
        self.events.append(event)

    # scheduler hooks
    def run(self, thread: SimThread, previous: SimThread | None) -> None:
        cpu = thread.task.cpu.id
        current_slice = self._slices.get(cpu)
        if current_slice is not None and current_slice[0] == thread.task.comm:
            return
        if current_slice is not None:
            self._complete(cpu * 2, current_slice[0], current_slice[1], "run")
        self._slices[cpu] = (thread.task.comm, self._now())

    def irq_begin(self, cpu: int, number: int, nmi: bool = False) -> None:
        kind = "nmi" if nmi else "irq"
        self.events.append({"ph": "B", "pid": PID, "tid": cpu * 2, "name": f"{kind} {number}",
                            "cat": kind, "ts": self._now()})

    def irq_end(self, cpu: int, number: int) -> None:
        self.events.append({"ph": "E", "pid": PID, "tid": cpu * 2, "ts": self._now()})

    # lock observer
    def lock_event(self, event: str, lock: object, flags: int = 0) -> None:
        cpu = current().cpu.id
        key = (cpu, id(lock))
        name = getattr(lock, "name", "lock")
        if event == "contended":
            self._waits[key] = self._now()
            if id(lock) not in self._flows:  # the holder's release starts this waiter's flow
                self._next_flow += 1
                self._flows[id(lock)] = self._next_flow
        elif event == "acquired":
            start = self._waits.pop(key, None)
            if start is not None:
                flow = self._flows.pop(id(lock), None)
                self._complete(cpu * 2 + 1, f"wait {name}", start, "contention", flow, True)
            self._locks[key] = self._now()
        elif event == "release":
            start = self._locks.pop(key, None)
            if start is not None:
                self._complete(cpu * 2 + 1, name, start, "lock", self._flows.get(id(lock)))

    def _close(self) -> None:
        for cpu, (name, start) in sorted(self._slices.items()):
            self._complete(cpu * 2, name, start, "run")
        self._slices.clear()

    def dumps(self) -> str:
        """The trace-event JSON (closing the slices still open)."""
        self._close()
        events: list[dict[str, object]] = []
        for e in self.events:
            flow = e.get("flow")
            e = {k: v for k, v in e.items() if k != "flow"}
            events.append(e)
            if isinstance(flow, tuple):  # a flow event bound to the slice just emitted
                flow_id, end = flow
                events.append({"ph": "f" if end else "s", "bp": "e", "id": flow_id,
                               "pid": PID, "tid": e["tid"], "name": "contention",
                               "cat": "contention", "ts": e["ts"]})
        return json.dumps({"traceEvents": events, "displayTimeUnit": "ns",
                           "otherData": {"time axis": "scheduler steps (1 step = 1 us)"}})

    def slices(self) -> list[tuple[Any, ...]]:
        """Every slice as (lane, start, end, name, category, flow), interrupts paired."""
        self._close()
        out: list[tuple[Any, ...]] = []
        open_: dict[Any, list[tuple[int, str, str]]] = {}
        for e in self.events:
            ev: dict[str, Any] = e
            ph, lane = ev["ph"], ev.get("tid")
            if ph == "X":
                out.append((lane, ev["ts"], ev["ts"] + ev["dur"], ev["name"], ev["cat"],
                            ev.get("flow")))
            elif ph == "B":
                open_.setdefault(lane, []).append((ev["ts"], ev["name"], ev["cat"]))
            elif ph == "E" and open_.get(lane):
                start, name, cat = open_[lane].pop()
                out.append((lane, start, max(ev["ts"], start + 1), name, cat, None))
        return out

    def lanes(self) -> dict[int, str]:
        meta: list[dict[str, Any]] = [e for e in self.events if e["ph"] == "M"]
        return {e["tid"]: e["args"]["name"] for e in meta}

    def dumps_proto(self) -> bytes:
        """The trace in Perfetto's protobuf format (see the module docstring)."""
        from perfetto.protos.perfetto.trace.perfetto_trace_pb2 import TrackEvent
        from perfetto.trace_builder.proto_builder import TraceProtoBuilder
        builder = TraceProtoBuilder()
        process_uuid = 1
        packet = builder.add_packet()
        packet.track_descriptor.uuid = process_uuid
        packet.track_descriptor.process.pid = PID
        packet.track_descriptor.process.process_name = "ksim"
        lanes = self.lanes()
        for lane, name in sorted(lanes.items()):
            packet = builder.add_packet()
            packet.track_descriptor.uuid = 100 + lane
            packet.track_descriptor.parent_uuid = process_uuid
            packet.track_descriptor.name = name
            packet.track_descriptor.sibling_order_rank = lane
        # Begin and end events in time order; at one instant ends first, inner ones first,
        # then begins, outer ones first, so every track's slices nest.
        marks = []
        for lane, start, end, name, cat, flow in self.slices():
            marks.append((start, 1, -end, lane, True, name, cat, flow))
            marks.append((end, 0, -start, lane, False, name, cat, None))
        marks.sort(key=lambda m: m[:3])
        for ts, _, _, lane, begin, name, cat, flow in marks:
            packet = builder.add_packet()
            packet.timestamp = ts * 1000  # 1 step = 1 us
            packet.trusted_packet_sequence_id = 1
            event = packet.track_event
            event.track_uuid = 100 + lane
            if begin:
                event.type = TrackEvent.TYPE_SLICE_BEGIN
                event.name = name
                event.categories.append(cat)
                if flow is not None:
                    flow_id, last = flow
                    (event.terminating_flow_ids if last else event.flow_ids).append(flow_id)
            else:
                event.type = TrackEvent.TYPE_SLICE_END
        return builder.serialize()

    def write(self, path: str) -> None:
        """Protobuf unless the file name ends in ``.json``."""
        if path.endswith(".json"):
            with open(path, "w") as f:
                f.write(self.dumps())
        else:
            with open(path, "wb") as f:
                f.write(self.dumps_proto())

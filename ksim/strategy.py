"""Scheduling strategies and the schedule string (after AWS Shuttle, CHESS and PCT).

At every preemption point the scheduler asks its strategy which runnable thread runs next,
and (when interrupts are being injected) whether to raise one.  The strategies:

* :class:`RandomWalk` — uniform choice among the candidates, seeded;
* :class:`PCT` — probabilistic concurrency testing (Burckhardt et al., ASPLOS 2010): random
  distinct thread priorities, the highest-priority runnable thread always runs, and ``depth -
  1`` change points, drawn uniformly from the run's ``k`` preemption points, lower the thread
  running there below everyone; a bug of depth d is found with probability at least
  1/(n·k^(d-1)).  The guarantee needs k: a change point drawn beyond the run's end never
  happens, so the caller passes ``steps`` (``ksim stress`` measures it with a first,
  round-robin run of the same configuration: :func:`ksim.stress.run_length`);
* :class:`RoundRobin` — switch to the next candidate at every point.

Interrupt injection: a seeded strategy given ``irqs=N`` and ``steps=k`` raises exactly N
interrupts, at N points drawn uniformly from 1..k (round-robin: one every k/N points); those a
shorter run never reached are the caller's to raise at its end.  ``irq_rate`` instead raises
one with that probability at every point (no count promised).  ``nmis=N`` does the same for
NMIs, from a generator of its own (an NMI is taken whatever the interrupt flag).

Every decision is recorded.  :func:`encode_schedule` packs the decisions into a compact
string and :class:`Replay` feeds them back, so a failing run reproduces event for event on
any machine, whatever trio's own run-queue order.
"""

from __future__ import annotations

import base64
import bisect
import operator
import random
import zlib
from collections.abc import Sequence
from typing import Protocol, TypeVar

SCHEDULE_VERSION = "ks2"
PCT_MAX_DEPTH = 64  # d - 1 change points: real bugs have small depth, and each costs a factor k
DEFAULT_STEPS = 20000  # k when the caller cannot say (a scenario): see the module docstring
STRATEGY_SYNTAX = ("expected random, pct, pct:DEPTH (DEPTH a whole number from 1 to "
                   f"{PCT_MAX_DEPTH}) or rr")
# An interrupt decision records the CPU and the preemption point it was raised at (ks1 had only
# the CPU, so a replay could not tell an irq of this point from one a few points on).
IRQ_CPU_SPAN = 8192  # NR_CPUS on x86-64


class Candidate(Protocol):
    tid: int


C = TypeVar("C", bound=Candidate)
_TID = operator.attrgetter("tid")


class Strategy:
    """Base class: ``pick`` returns one of ``candidates``; ``irq`` an injection decision.

    ``point`` is the scheduler's preemption-point counter at the decision (the recorder and
    the replay need it; other strategies may ignore it).
    """

    name = "strategy"
    point = 0

    def pick(self, candidates: Sequence[C], running: C | None) -> C:
        raise NotImplementedError

    def irq(self, nr_cpus: int) -> int | None:
        """The CPU to raise an interrupt on at this point, or None (no interrupt)."""
        return None

    def nmi(self, nr_cpus: int) -> int | None:
        """The CPU to raise an NMI on at this point, or None."""
        return None

    def new_thread(self, tid: int) -> None:
        """A thread was created (PCT gives it a priority)."""


class _Seeded(Strategy):
    def __init__(self, seed: int, irq_rate: float = 0.0, *, irqs: int = 0, nmis: int = 0,
                 steps: int | None = None) -> None:
        self.rng = random.Random(seed)
        self.irq_rate = irq_rate
        # Exactly ``irqs`` interrupts and ``nmis`` NMIs at points drawn from 1..steps (their
        # own generators, so the thread choices of a seed do not depend on how many
        # interrupts it raises, nor its interrupts on its NMIs).
        span = max(steps or DEFAULT_STEPS, 1)
        plan = random.Random(f"ksim-irq:{seed}")
        self.irq_points = sorted(plan.randint(1, span) for _ in range(irqs))
        self.irq_cpus = plan
        nmi_plan = random.Random(f"ksim-nmi:{seed}")
        self.nmi_points = sorted(nmi_plan.randint(1, span) for _ in range(nmis))
        self.nmi_cpus = nmi_plan

    def irq(self, nr_cpus: int) -> int | None:
        points = self.irq_points
        if points:
            if self.point < points[0]:
                return None
            points.pop(0)
            return self.irq_cpus.randrange(nr_cpus)
        if self.irq_rate and self.rng.random() < self.irq_rate:
            return self.rng.randrange(nr_cpus)
        return None

    def nmi(self, nr_cpus: int) -> int | None:
        points = self.nmi_points
        if points and self.point >= points[0]:
            points.pop(0)
            return self.nmi_cpus.randrange(nr_cpus)
        return None


class RandomWalk(_Seeded):
    name = "random"

    def pick(self, candidates: Sequence[C], running: C | None) -> C:
        if len(candidates) == 1:
            return candidates[0]
        return candidates[self.rng.randrange(len(candidates))]


class PCT(_Seeded):
    """PCT with bug depth ``depth`` over an estimated ``steps`` scheduling points."""

    name = "pct"

    def __init__(self, seed: int, depth: int = 3, steps: int = DEFAULT_STEPS,
                 irq_rate: float = 0.0, *, irqs: int = 0, nmis: int = 0) -> None:
        super().__init__(seed, irq_rate, irqs=irqs, nmis=nmis, steps=steps)
        self.depth = depth
        self.steps = steps
        self.priority: dict[int, float] = {}
        # The d-1 change points, distinct preemption points of 1..k (k >= d-1 is the caller's
        # promise; a shorter k keeps as many as fit).
        steps = max(steps, 1)
        self.change_points = sorted(self.rng.sample(range(1, steps + 1),
                                                    min(max(depth - 1, 0), steps)))
        self._next_low = 0  # priorities below every initial one, d-1 .. 1

    def new_thread(self, tid: int) -> None:
        # Initial priorities are distinct and above the change-point priorities.
        self.priority[tid] = self.depth + self.rng.random()

    def pick(self, candidates: Sequence[C], running: C | None) -> C:
        # A change point at point i lowers the thread that ran up to it (at the first decision
        # from there on: a point where no one else could run asks nothing).
        if running is not None and self.change_points and self.point >= self.change_points[0]:
            self.change_points.pop(0)
            self._next_low -= 1
            self.priority[running.tid] = self._next_low
        return max(candidates, key=lambda c: self.priority.get(c.tid, 0.0))


class RoundRobin(Strategy):
    name = "rr"

    def __init__(self, irq_every: int = 0, *, irqs: int = 0, nmis: int = 0,
                 steps: int | None = None) -> None:
        if irqs and not irq_every:
            irq_every = max((steps or DEFAULT_STEPS) // irqs, 1)
        self.irq_every = irq_every
        self.nmi_every = max((steps or DEFAULT_STEPS) // nmis, 1) if nmis else 0
        self._points = 0
        self._nmi_points = 0
        self._next_cpu = 0
        self._next_nmi_cpu = 0

    def pick(self, candidates: Sequence[C], running: C | None) -> C:
        if running is not None:  # the first candidate after it in tid order, else the first
            i = bisect.bisect_right(candidates, running.tid, key=_TID)
            if i < len(candidates):
                return candidates[i]
        return candidates[0]

    def irq(self, nr_cpus: int) -> int | None:
        self._points += 1
        if self.irq_every and self._points % self.irq_every == 0:
            self._next_cpu = (self._next_cpu + 1) % nr_cpus
            return self._next_cpu
        return None

    def nmi(self, nr_cpus: int) -> int | None:
        self._nmi_points += 1
        if self.nmi_every and self._nmi_points % self.nmi_every == 0:
            self._next_nmi_cpu = (self._next_nmi_cpu + 1) % nr_cpus
            return self._next_nmi_cpu
        return None


def _shown(text: str, limit: int = 40) -> str:
    return repr(text if len(text) <= limit else text[:limit] + "...")


def parse_strategy(spec: str) -> tuple[str, int]:
    """``(name, depth)`` of a strategy spec (depth 0 unless PCT); ``ValueError`` saying the
    syntax otherwise."""
    name, sep, arg = spec.partition(":")
    if name == "pct":
        if not sep:
            return name, 3
        if arg.isascii() and arg.isdigit():
            depth = int(arg) if len(arg) <= 6 else PCT_MAX_DEPTH + 1
            if depth < 1:
                raise ValueError(f"PCT depth must be at least 1, not {depth}")
            if depth > PCT_MAX_DEPTH:
                raise ValueError(f"PCT depth must be at most {PCT_MAX_DEPTH}, not {_shown(arg)}")
            return name, depth
        raise ValueError(f"the PCT depth must be a whole number from 1 to {PCT_MAX_DEPTH}, not "
                         f"{_shown(arg)} ({STRATEGY_SYNTAX})")
    if name in ("random", "rr") and not sep:
        return name, 0
    raise ValueError(STRATEGY_SYNTAX)


def make_strategy(spec: str, seed: int, irq_rate: float = 0.0, *, irqs: int = 0,
                  nmis: int = 0, steps: int | None = None) -> Strategy:
    """``random``, ``pct`` or ``pct:DEPTH``, ``rr`` (see :func:`parse_strategy`).

    ``steps`` is the run's expected length in preemption points (PCT's k, and the span the
    ``irqs`` interrupts are spread over); ``irqs`` the number of interrupts to raise.
    """
    name, depth = parse_strategy(spec)
    if name == "random":
        return RandomWalk(seed, irq_rate, irqs=irqs, nmis=nmis, steps=steps)
    if name == "pct":
        return PCT(seed, depth, steps or DEFAULT_STEPS, irq_rate, irqs=irqs, nmis=nmis)
    return RoundRobin(irq_every=int(1 / irq_rate) if irq_rate else 0, irqs=irqs, nmis=nmis,
                      steps=steps)


class ReplayDivergence(Exception):
    """The replayed program made a choice the recording does not allow."""


def encode_irq(cpu: int, point: int, nmi: bool = False) -> int:
    return -1 - ((cpu + IRQ_CPU_SPAN * point) * 2 + nmi)


def decode_irq(value: int) -> tuple[int, int, bool]:
    """``(cpu, point, is_nmi)`` of an interrupt decision."""
    rest, nmi = divmod(-1 - value, 2)
    point, cpu = divmod(rest, IRQ_CPU_SPAN)
    return cpu, point, bool(nmi)


class Recorder(Strategy):
    """Wraps a strategy and records each decision: thread ids, and for an irq
    :func:`encode_irq` of its CPU and preemption point.

    ``chain`` is the wrapped strategy and every strategy it wraps in turn, each told the
    point before a decision.  The scheduler makes the pick of a preemption point itself as
    :meth:`pick` does (a frame fewer at nearly every point): tell ``chain`` the point, ask
    ``inner``, append the thread id to ``decisions``.
    """

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.name = inner.name
        self.decisions: list[int] = []
        # The chain of wrapping strategies (each keeps the one it wraps in ``inner``, set when
        # it is made): PCT and the interrupt plans count preemption points, not decisions.
        chain: list[Strategy] = []
        target: object = inner
        while isinstance(target, Strategy):
            chain.append(target)
            target = getattr(target, "inner", None)
        self.chain = tuple(chain)

    def _tell_point(self) -> None:
        point = self.point
        for target in self.chain:
            target.point = point

    def pick(self, candidates: Sequence[C], running: C | None) -> C:
        self._tell_point()
        chosen = self.inner.pick(candidates, running)
        self.decisions.append(chosen.tid)
        return chosen

    def irq(self, nr_cpus: int) -> int | None:
        self._tell_point()
        cpu = self.inner.irq(nr_cpus)
        if cpu is not None:
            self.decisions.append(encode_irq(cpu, self.point))
        return cpu

    def nmi(self, nr_cpus: int) -> int | None:
        self.inner.point = self.point
        cpu = self.inner.nmi(nr_cpus)
        if cpu is not None:
            self.decisions.append(encode_irq(cpu, self.point, nmi=True))
        return cpu

    def new_thread(self, tid: int) -> None:
        self.inner.new_thread(tid)


class Replay(Strategy):
    """Feeds recorded decisions back; any mismatch is a :class:`ReplayDivergence`.

    Past the end of the recording: with ``then`` (a strategy), the run goes on with it, so a
    prefix of a schedule replays that prefix and continues as ``then`` decides (``ksim stress``
    passes the seed's own strategy, built afresh from the seed: deterministic); without it,
    the end is a :class:`ReplayDivergence`.
    """

    name = "replay"

    def __init__(self, decisions: Sequence[int], then: Strategy | None = None) -> None:
        self.decisions = list(decisions)
        self.pos = 0
        self.then = then

    def new_thread(self, tid: int) -> None:
        if self.then is not None:
            self.then.new_thread(tid)

    def _continuing(self) -> Strategy | None:
        """The continuation strategy, once the recording is used up."""
        then = self.then
        if then is not None and self.pos >= len(self.decisions):
            then.point = self.point
            return then
        return None

    def _peek(self) -> int | None:
        return self.decisions[self.pos] if self.pos < len(self.decisions) else None

    def irq(self, nr_cpus: int) -> int | None:
        then = self._continuing()
        return then.irq(nr_cpus) if then is not None else self._interrupt(False)

    def nmi(self, nr_cpus: int) -> int | None:
        then = self._continuing()
        return then.nmi(nr_cpus) if then is not None else self._interrupt(True)

    def _interrupt(self, nmi: bool) -> int | None:
        nxt = self._peek()
        if nxt is not None and nxt < 0:
            cpu, point, is_nmi = decode_irq(nxt)
            if point == self.point and is_nmi == nmi:
                self.pos += 1
                return cpu
        return None

    def pick(self, candidates: Sequence[C], running: C | None) -> C:
        then = self._continuing()
        if then is not None:
            return then.pick(candidates, running)
        nxt = self._peek()
        if nxt is None:
            raise ReplayDivergence(f"the schedule ended after {self.pos} decisions")
        self.pos += 1
        for cand in candidates:
            if cand.tid == nxt:
                return cand
        raise ReplayDivergence(f"decision {self.pos}: thread {nxt} is not runnable "
                               f"(runnable: {sorted(c.tid for c in candidates)})")


def _varint(n: int, out: bytearray) -> None:
    n = (n << 1) ^ (n >> 63)  # zigzag: irq decisions are negative
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def encode_schedule(decisions: Sequence[int]) -> str:
    """``ks2.<base64url(zlib(varints))>``: run-length pairs (decision, repeat count)."""
    raw = bytearray()
    i = 0
    while i < len(decisions):
        j = i
        while j < len(decisions) and decisions[j] == decisions[i]:
            j += 1
        _varint(decisions[i], raw)
        _varint(j - i, raw)
        i = j
    packed = base64.urlsafe_b64encode(zlib.compress(bytes(raw), 9)).decode().rstrip("=")
    return f"{SCHEDULE_VERSION}.{packed}"


def decode_schedule(text: str) -> list[int]:
    version, _, packed = text.strip().partition(".")
    if version == "ks1" and packed:
        raise ValueError("a ks1 schedule string comes from an older ksim, whose interrupt "
                         "decisions cannot be replayed exactly; run the seed again for a "
                         f"{SCHEDULE_VERSION} string")
    if version != SCHEDULE_VERSION or not packed:
        raise ValueError(f"not a ksim schedule string (expected {SCHEDULE_VERSION}.…)")
    try:
        raw = zlib.decompress(base64.urlsafe_b64decode(packed + "=" * (-len(packed) % 4)))
    except Exception as exc:
        raise ValueError(f"corrupt schedule string: {exc}") from None
    values: list[int] = []
    n = shift = 0
    for byte in raw:
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            values.append((n >> 1) ^ -(n & 1))
            n = shift = 0
    if len(values) % 2:
        raise ValueError("corrupt schedule string: odd number of values")
    decisions: list[int] = []
    for k in range(0, len(values), 2):
        decisions.extend([values[k]] * values[k + 1])
    return decisions

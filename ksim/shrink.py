"""Schedule shrinking: a failing schedule reduced to the fewest context switches that still fail.

A schedule is seen as its *directives*: the decisions where the strategy did something other
than the default policy, which is non-preemptive — the running thread goes on while it can;
when it blocks or ends, the next runnable thread after it in tid order takes over.  A
directive is keyed by the preemption point it was made at (and its rank among the decisions
made at that point), so it still means "here" when the directives before it are gone.  A
directive whose thread cannot run there is ignored (the default decides).

Interrupts and NMIs stay where the failing run raised them (at their preemption points), so
an interrupt-context bug keeps its interrupt.

The shrink, after dejafu's (Walker & Runciman): first fewer *preemptions* (a switch away from
a thread that could have gone on): delta debugging (Zeller's ddmin) over the preemption
directives, the forced choices kept; then ddmin over every directive left.  Each candidate
is a whole run of the seed; it "still fails" when the run reports the same failure as the
original — the same first checker report (or, without one, the same first violation), its
numbers and quoted text aside.  The result is 1-minimal: no single directive left can go.

The shrunk run is recorded like any run, so its schedule string is an ordinary ``ks2`` string
for ``--replay`` (short: a non-preemptive run is long runs of the same thread, which the
string's run-length coding folds).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TypeVar

import attrs

from ksim.harness import CHECKER_KINDS
from ksim.strategy import C, Replay, Strategy, decode_irq, decode_schedule

Key = tuple[int, int]  # (preemption point, rank among the decisions at that point)
T = TypeVar("T")
MAX_RUNS = 3000  # a shrink stops trying after this many runs (what it has is still a failure)
INFRASTRUCTURE = ("ksim/scheduler.py", "ksim/strategy.py", "ksim/current.py", "ksim/preempt.py",
                  "ksim/shrink.py")


def default_pick(candidates: Sequence[C], running: C | None) -> C:
    """The non-preemptive policy (see the module docstring)."""
    if running is not None:
        for cand in candidates:
            if cand is running:
                return cand
        for cand in candidates:
            if cand.tid > running.tid:
                return cand
    return candidates[0]


def _shown(names: list[str]) -> str:
    """The innermost two functions, ``inner<caller``."""
    return "<".join(names[-1:-3:-1]) or "-"


def where(thread: object) -> str:
    """Where the suspended ``thread`` is: its coroutine chain, outermost first, the
    scheduler's own frames left out."""
    coro = getattr(thread, "coro", None)
    names = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None and not frame.f_code.co_filename.endswith(INFRASTRUCTURE):
            names.append(frame.f_code.co_name)
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return _shown(names)


def where_running() -> str:
    """Where the running thread is: the strategy is asked from inside its call stack (a
    running coroutine has no ``cr_await`` to follow)."""
    import sys
    names: list[str] = []
    frame = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.endswith(INFRASTRUCTURE):
        frame = frame.f_back  # type: ignore[assignment]
    while frame is not None and len(names) < 2:
        if not frame.f_code.co_filename.endswith(INFRASTRUCTURE):
            names.insert(0, frame.f_code.co_name)
        frame = frame.f_back  # type: ignore[assignment]
    return _shown(names)


@attrs.frozen
class Decision:
    point: int
    rank: int
    running: int | None  # the thread that ran up to here (None: it just blocked or ended)
    could_go_on: bool  # the running thread was among the candidates
    chosen: int
    default: int
    left: str = ""  # where the running thread was (a switch only)
    entered: str = ""  # where the chosen thread resumes (a switch only)
    previous: int | None = None  # the thread chosen at the decision before

    @property
    def key(self) -> Key:
        return (self.point, self.rank)

    @property
    def preemption(self) -> bool:
        return self.could_go_on and self.chosen != self.running

    @property
    def switch(self) -> bool:
        """Another thread runs from here (after a preemption, a block or an exit)."""
        was = self.running if self.running is not None else self.previous
        return was is not None and self.chosen != was

    @property
    def was(self) -> int | None:
        return self.running if self.running is not None else self.previous


class Steered(Strategy):
    """Follows ``directives`` (key → tid) and the default policy elsewhere, raising the
    ``interrupts`` (ks2 interrupt decisions) at their points; logs every decision.  With
    ``inner``, follows that strategy instead (to log a recorded run)."""

    name = "shrink"

    def __init__(self, directives: dict[Key, int], interrupts: Sequence[int] = (),
                 inner: Strategy | None = None, names: bool = False) -> None:
        self.directives = directives
        self.inner = inner
        self.log: list[Decision] = []
        self.thread_names: dict[int, str] = {}
        self._names = names
        self._last_point = -1
        self._rank = 0
        plans: tuple[list[tuple[int, int]], list[tuple[int, int]]] = ([], [])
        for value in interrupts:
            cpu, point, nmi = decode_irq(value)
            plans[nmi].append((point, cpu))
        self._irqs, self._nmis = plans

    def new_thread(self, tid: int) -> None:
        if self.inner is not None:
            self.inner.new_thread(tid)

    def pick(self, candidates: Sequence[C], running: C | None) -> C:
        if self.point != self._last_point:
            self._last_point, self._rank = self.point, 0
        key = (self.point, self._rank)
        self._rank += 1
        default = default_pick(candidates, running)
        if self.inner is not None:
            self.inner.point = self.point
            chosen = self.inner.pick(candidates, running)
        else:
            wanted = self.directives.get(key)
            chosen = next((c for c in candidates if c.tid == wanted), default)
        if self._names:
            for c in candidates:
                self.thread_names.setdefault(c.tid, str(getattr(c, "name", c.tid)))
        could = running is not None and any(c is running for c in candidates)
        switch = running is not None and chosen is not running
        previous = self.log[-1].chosen if self.log else None
        self.log.append(Decision(
            self.point, key[1], running.tid if running is not None else None, could,
            chosen.tid, default.tid,
            where_running() if switch and self._names else "",
            where(chosen) if self._names and chosen.tid != previous else "", previous))
        return chosen

    def _interrupt(self, plan: list[tuple[int, int]]) -> int | None:
        if plan and plan[0][0] <= self.point:
            return plan.pop(0)[1]
        return None

    def irq(self, nr_cpus: int) -> int | None:
        if self.inner is not None:
            self.inner.point = self.point
            return self.inner.irq(nr_cpus)
        return self._interrupt(self._irqs)

    def nmi(self, nr_cpus: int) -> int | None:
        if self.inner is not None:
            self.inner.point = self.point
            return self.inner.nmi(nr_cpus)
        return self._interrupt(self._nmis)


def directives_of(log: Sequence[Decision]) -> dict[Key, int]:
    return {d.key: d.chosen for d in log if d.chosen != d.default}


def failure_key(violation: str) -> str:
    """A violation with its numbers and quoted text left out (what "the same failure" is)."""
    return re.sub(r"\d+", "N", re.sub(r"'[^']*'|\"[^\"]*\"", "'…'", violation))


def leading_failure(violations: Sequence[str]) -> str:
    """The failure a shrink keeps: the first checker report, else the first violation."""
    checkers = [v for v in violations if v.partition(":")[0] in CHECKER_KINDS]
    return (checkers or list(violations))[0]


def ddmin(items: Sequence[T], fails: Callable[[Sequence[T]], bool]) -> list[T]:
    """Zeller's ddmin: a 1-minimal sublist of ``items`` (which fails) that still fails."""
    items = list(items)
    n = 2
    while len(items) >= 2:
        chunk = max(len(items) // n, 1)
        subsets = [items[i:i + chunk] for i in range(0, len(items), chunk)]
        reduced = False
        for subset in subsets:
            if fails(subset):
                items, n, reduced = subset, 2, True
                break
        if not reduced:
            for i in range(len(subsets)):
                complement = [x for j, s in enumerate(subsets) if j != i for x in s]
                if fails(complement):
                    items, n, reduced = complement, max(n - 1, 2), True
                    break
        if not reduced:
            if chunk == 1:
                break
            n = min(n * 2, len(items))
    if len(items) == 1 and fails([]):
        return []
    return items


@attrs.frozen
class Shrunk:
    target: str  # the failure kept (failure_key of it)
    schedule: str  # the shrunk run's ks2 schedule string
    violations: tuple[str, ...]
    log: tuple[Decision, ...]  # the shrunk run's decisions
    names: dict[int, str]  # thread id -> name
    kept: frozenset[Key]  # its directives
    preemptions_before: int
    preemptions_after: int
    switches_before: int
    switches_after: int
    runs: int

    def timeline(self, around: int = 1, width: int = 22) -> list[str]:
        """The threads side by side at the switches that matter (the directives kept, and
        ``around`` switches either side of each)."""
        switches = [d for d in self.log if d.switch]
        wanted: set[int] = set()
        for i, d in enumerate(switches):
            if d.key in self.kept:
                wanted.update(range(max(i - around, 0), min(i + around + 1, len(switches))))
        if not wanted:
            wanted = set(range(min(len(switches), 12)))
        rows = [switches[i] for i in wanted]
        tids = sorted({d.was for d in rows if d.was is not None} | {d.chosen for d in rows})
        names = self.names
        head = f"{'point':>7}  " + "".join(f"{names.get(t, str(t))[:width - 1]:<{width}}"
                                            for t in tids)
        lines = [head.rstrip()]
        last = -1
        for i in sorted(wanted):
            if last >= 0 and i != last + 1:
                lines.append(f"{'...':>7}")
            last = i
            d = switches[i]
            cells = []
            for t in tids:
                if t == d.was:
                    cell = f"{d.left} |" if d.running is not None else "(ended)"
                elif t == d.chosen:
                    cell = f"-> {d.entered}"
                else:
                    cell = ""
                cells.append(f"{cell[:width - 1]:<{width}}")
            mark = "  preempted" if d.preemption else "" if d.running is None else "  blocked"
            lines.append((f"{d.point:>7}  " + "".join(cells)).rstrip() + mark)
        return lines


def shrink(run: Callable[[Strategy], tuple[Sequence[str], str]], schedule: str,
           max_runs: int = MAX_RUNS, *, picks_only: bool = False,
           key: Callable[[str], str] = failure_key) -> Shrunk:
    """Shrink the failing ``schedule``.  ``run(strategy)`` runs the seed under ``strategy``
    and returns (violations, schedule string).  ``picks_only``: the strategy makes the thread
    choices only (a scenario's irq steps raise their own interrupts); ``key``: what makes two
    violations the same failure."""
    recorded = decode_schedule(schedule)
    interrupts = [] if picks_only else [v for v in recorded if v < 0]
    original = Steered({}, inner=Replay([v for v in recorded if v >= 0] if picks_only
                                        else recorded))
    violations, _ = run(original)
    if not violations:
        raise ValueError("the schedule does not fail: nothing to shrink")
    target = key(leading_failure(violations))
    runs = 1

    def fails(directives: dict[Key, int]) -> bool:
        nonlocal runs
        if runs >= max_runs:
            return False
        runs += 1
        found, _ = run(Steered(directives, interrupts))
        return any(key(v) == target for v in found)

    log = original.log
    everything = directives_of(log)
    preemptive = {d.key for d in log if d.preemption}
    forced = {k: v for k, v in everything.items() if k not in preemptive}
    kept_p = ddmin(sorted(k for k in everything if k in preemptive),
                   lambda keys: fails({**forced, **{k: everything[k] for k in keys}}))
    stage = {**forced, **{k: everything[k] for k in kept_p}}
    kept = ddmin(sorted(stage), lambda keys: fails({k: stage[k] for k in keys}))
    final = Steered({k: stage[k] for k in kept}, interrupts, names=True)
    found, shrunk_schedule = run(final)
    if not any(key(v) == target for v in found):  # the run budget ran out midway
        final = Steered(everything, interrupts, names=True)
        found, shrunk_schedule = run(final)
        kept = sorted(everything)
    return Shrunk(target, shrunk_schedule, tuple(found), tuple(final.log),
                  dict(final.thread_names), frozenset(kept),
                  sum(d.preemption for d in log), sum(d.preemption for d in final.log),
                  sum(d.switch for d in log), sum(d.switch for d in final.log), runs)




def shrink_stress_seed(config: object, seed: int, schedule: str,
                       max_runs: int = MAX_RUNS) -> Shrunk:
    """:func:`shrink` over runs of ``ksim stress``'s ``seed`` of ``config`` (a
    :class:`ksim.stress.StressConfig`)."""
    from ksim.plugins import load_plugins
    from ksim.stress import StressConfig, run_length, run_one
    from ksim.vclock import run_virtual
    assert isinstance(config, StressConfig)
    plugins = load_plugins(config.plugins, config.plugin_path)
    length = run_length(config)

    def run(strategy: Strategy) -> tuple[Sequence[str], str]:
        result = run_virtual(run_one, config, seed, plugins, strategy, None, length)
        return result.violations, result.schedule

    return shrink(run, schedule, max_runs)




def shrink_scenario(scenario: object, seed: int, boot: int, schedule: str,
                    max_runs: int = MAX_RUNS, **options: object) -> Shrunk:
    """:func:`shrink` over runs of a scenario's ``seed``, steering concurrent boot ``boot``;
    "the same failure" is the same expectation (its location and title) failing again."""
    from ksim.scenario.runner import run_scenario

    def run(strategy: Strategy) -> tuple[Sequence[str], str]:
        result = run_scenario(scenario, seed, strategies={boot: strategy},  # type: ignore[arg-type]
                              **options)  # type: ignore[arg-type]
        found = [f"{f.loc}: {f.title}" for f in result.failures]
        if result.error:
            found.append(result.error)
        return found, result.schedules.get(boot, "")

    return shrink(run, schedule, max_runs, picks_only=True, key=lambda v: v)


__all__ = ["Shrunk", "Steered", "ddmin", "default_pick", "failure_key", "shrink",
           "leading_failure", "shrink_scenario", "shrink_stress_seed"]

"""What the concurrency front-ends share: checkers, the scheduler, the driver's invariants.

``ksim stress`` (:mod:`ksim.stress`) and the scenario runner's ``spawn``/``irq`` steps
(:mod:`ksim.scenario.concurrency`) both put a booted kernel under the deterministic
scheduler, attach lockdep-lite and the data-race detector, and afterwards ask what the
checkers and the drivers found.  That glue lives here once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from ksim.kcsan import RaceDetector
from ksim.locking.consolecheck import ConsoleWriteCheck
from ksim.locking.lockdep import Lockdep
from ksim.scheduler import Scheduler
from ksim.strategy import Strategy

if TYPE_CHECKING:
    from ksim.kernel import Kernel

__all__ = ["CHECKER_KINDS", "Checker", "attach_checkers", "check_invariants", "checker_violations",
           "detach_checkers", "install_scheduler"]

# Report kinds that mean a checker (or the kernel itself) found something wrong.
CHECKER_KINDS = ("lockdep", "data-race", "console", "deadlock", "livelock", "bug", "lockup",
                 "warning", "oops", "hang")


class Checker(Protocol):
    def detach(self) -> None: ...


def attach_checkers(kernel: Kernel) -> list[Checker]:
    """lockdep-lite, the data-race detector and the console-driver checker on ``kernel``;
    returns them (to detach)."""
    return [Lockdep.attach(kernel), RaceDetector.attach(kernel), ConsoleWriteCheck.attach(kernel)]


def detach_checkers(checkers: list[Checker]) -> None:
    for checker in checkers:
        checker.detach()


def install_scheduler(kernel: Kernel, strategy: Strategy, *, irq_budget: int = 0,
                      irq_handler: Callable[[int, int], Awaitable[None]] | None = None,
                      trace: object = None) -> Scheduler:
    """Let the deterministic scheduler drive ``kernel``'s threads from now on."""
    sched = Scheduler(kernel, strategy, irq_budget=irq_budget, irq_handler=irq_handler)
    if trace is not None:
        sched.trace = trace
        trace.attach(kernel)  # type: ignore[attr-defined]
    kernel.sched = sched
    return sched


def checker_violations(kernel: Kernel) -> list[str]:
    """``kind: title`` of every report a checker (or the kernel) filed on this boot."""
    return [f"{r.kind}: {r.title}" for r in kernel.reports if r.kind in CHECKER_KINDS]


async def check_invariants(kernel: Kernel) -> list[str]:
    """Every live module's :meth:`~ksim.module.KernelModule.check_invariants`, as kernel
    code; a wrong return or an exception is itself a violation naming the plugin."""
    problems: list[str] = []
    for mod in list(kernel.module.live.values()):
        with kernel.as_current():
            try:
                found = await mod.check_invariants()
            except Exception as exc:  # noqa: BLE001 - a driver bug is reported, not raised
                problems.append(f"{mod.name}: check_invariants() raised "
                                f"{type(exc).__name__}: {exc}")
                continue
        if not isinstance(found, list) or not all(isinstance(v, str) for v in found):
            problems.append(f"{mod.name}: check_invariants() must return a list of str, "
                            f"not {type(found).__name__}")
            continue
        problems += [f"{mod.name}: {v}" for v in found]
    return problems

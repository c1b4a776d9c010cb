"""The deterministic scheduler: switches per second against bare trio checkpoints, and stress
throughput (issue 4).

Baseline: the same number of trio tasks each looping on ``trio.lowlevel.checkpoint()``, every
checkpoint a trio reschedule.  ksim: as many simulated threads on as many CPUs, each looping
on ``preempt_point()`` with round-robin (a switch at every point).  Target: >= 0.5x.
"""

from __future__ import annotations

import trio
import trio.testing

from _common import best_of, now, report
from ksim import Machine, preempt_point
from ksim.scheduler import Scheduler
from ksim.strategy import RoundRobin
from ksim.stress import StressConfig, run_seed

TASKS = 8
LOOPS = 5000


def bare_rate() -> float:
    async def main() -> float:
        async def spin() -> None:
            for _ in range(LOOPS):
                await trio.lowlevel.checkpoint()

        start = now()
        async with trio.open_nursery() as nursery:
            for _ in range(TASKS):
                nursery.start_soon(spin)
        return TASKS * LOOPS / (now() - start)

    return max(trio.run(main) for _ in range(3))


def ksim_rate() -> float:
    async def main() -> float:
        async with Machine("64M", cpus=TASKS).boot("") as k:
            sched = k.sched = Scheduler(k, RoundRobin())

            async def spin() -> None:
                for _ in range(LOOPS):
                    await preempt_point()

            start = now()
            for i in range(TASKS):
                k.spawn_thread(spin, name=f"spin{i}", cpu=i)
            await sched.join()
            return sched.switches / (now() - start)

    return max(trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
               for _ in range(3))


def main() -> None:
    report("scheduler switches", ksim_rate(), bare_rate(), "switches/s",
           "bare trio checkpoints", target=">= 0.5x")
    config = StressConfig(plugins=("memconsole",), cmdline="memconsole=8192", cpus=4,
                          threads=8, messages=200, irq_printk=20)
    seconds = best_of(3, lambda: _one(config))
    print(f"stress throughput (4 CPUs x 8 threads x 200 messages, memconsole, 20 irqs): "
          f"{1 / seconds:.2f} seeds/s ({seconds * 1000:.0f} ms a seed)")


def _one(config: StressConfig) -> float:
    start = now()
    result = run_seed(config, 1)
    assert result.ok, result.violations
    return now() - start


if __name__ == "__main__":
    main()

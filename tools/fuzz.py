"""The long fuzz run of issue 14: command lines, memconsole block corruptions, scenario mutants.

Three properties, each counted as tried / failed:

``cmdline``
    ``Machine(...).boot(cmdline)`` ends in an outcome for any generated command line
    (``tests/fuzz_cmdline.py``: known parameters, values past their limits, Unicode digits,
    bytes that are not UTF-8); an exception is a failure.
``block``
    A memconsole block (8 KiB, after a boot that logged and panicked) is corrupted -- random
    bytes, bit flips or one header field rewritten -- and the next boot reads
    ``/proc/memconsole``: it must not raise and must return at most the buffer's size.
``scenario``
    A mutant of a library scenario file loads or fails with located problems
    (``tests/fuzz_scenarios.py``).

The suite runs the same properties under Hypothesis, sized to seconds
(``tests/test_cmdline_fuzz.py``, ``tests/test_memconsole_fuzz.py``,
``tests/test_scenario_fuzz.py``).  The documented long run (about 75 minutes of CPU: 37 minutes with ``--jobs 2`` on two idle cores)::

    .venv/bin/python tools/fuzz.py --cmdlines 1000000 --blocks 100000 --mutants 10000 --jobs 2

``--jobs N`` splits each count into N shares, each with a seed derived from ``--seed`` and
its share number, run in N processes.  A scaled-down run: ``--cmdlines 2000 --blocks 2000 --mutants 500``.  Exit status 1 if any
property failed; the first failures of each class are printed.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fuzz_cmdline import generate  # noqa: E402
from test_cmdline_fuzz import boot_outcome  # noqa: E402

from ksim import Machine  # noqa: E402
from ksim.plugins import load_plugins  # noqa: E402
from ksim.vclock import virtual_clock  # noqa: E402

BLOCK = 8192
HEADER = 16  # struct buf_header on x86-64: buf_ptr (8), buf_len (4), padding (4)


def corrupt(rng: random.Random, block: bytearray, buf_virt: int) -> None:
    """One corruption of the block, in place: bytes, flips, or a header field."""
    kind = rng.randrange(4)
    if kind == 0:  # random bytes somewhere, header included
        at = rng.randrange(BLOCK)
        n = rng.randint(1, 64)
        block[at:at + n] = rng.randbytes(min(n, BLOCK - at))
    elif kind == 1:  # bit flips
        for _ in range(rng.randint(1, 32)):
            bit = rng.randrange(BLOCK * 8)
            block[bit // 8] ^= 1 << bit % 8
    elif kind == 2:  # buf_ptr alone: anywhere, near the buffer, or at its edges
        ptr = rng.choice((rng.getrandbits(64), buf_virt + rng.randrange(-64, BLOCK + 64),
                          buf_virt + HEADER, buf_virt + BLOCK, buf_virt + BLOCK - 1))
        block[0:8] = (ptr & (1 << 64) - 1).to_bytes(8, "little")
    else:  # buf_len alone (a torn header, G1, among others)
        length = rng.choice((0, 1, rng.getrandbits(32), BLOCK - HEADER, BLOCK - HEADER + 1,
                             rng.randrange(BLOCK)))
        block[8:12] = length.to_bytes(4, "little")


def fuzz_blocks(count: int, seed: int, report: list[str]) -> tuple[int, int]:
    """(failed, shown): how many corruptions broke the property, and after how many the
    crashed boot's log was still shown (the header check passed)."""
    memconsole = load_plugins(["memconsole"])
    cmdline = "memconsole=%d nokaslr loglevel=4" % BLOCK

    async def main() -> tuple[int, int]:
        machine = Machine("64M", cpus=1, seed=1)
        async with machine.boot(cmdline, memconsole) as kernel:
            from ksim import KERN_ERR, panic, printk
            for i in range(40):
                await printk(KERN_ERR + "message %d of the crashed boot\n", i)
            from ksim.mm import virt_to_phys
            start = kernel.module.live["memconsole"].memconsole_mem_start  # type: ignore
            phys = virt_to_phys(start)
            await panic("Fatal exception")
        snapshot = machine.mem.read(phys, BLOCK)
        rng = random.Random(seed)
        failed = shown = 0
        for _ in range(count):
            block = bytearray(snapshot)
            corrupt(rng, block, start)
            machine.mem.write(phys, bytes(block))
            try:
                async with machine.boot(cmdline, memconsole, power="warm") as kernel:
                    text = await kernel.read_file("/proc/memconsole")
                if len(text) > BLOCK - HEADER:
                    raise AssertionError(f"/proc/memconsole returned {len(text)} bytes")
                shown += b"of the crashed boot" in text
            except Exception as exc:  # noqa: BLE001 - every exception is a finding
                failed += 1
                if failed <= 3:
                    report.append(f"block: {type(exc).__name__}: {exc}"[:300])
        return failed, shown

    return trio.run(main, clock=virtual_clock())


def fuzz_cmdlines(count: int, seed: int, report: list[str]) -> int:
    rng = random.Random(seed)
    failed = 0
    for _ in range(count):
        cmdline = generate(rng)
        try:
            boot_outcome(cmdline)
        except Exception as exc:  # noqa: BLE001 - every exception is a finding
            failed += 1
            if failed <= 3:
                report.append(f"cmdline {cmdline!r}: {type(exc).__name__}: {exc}"[:300])
    return failed


def fuzz_scenarios(count: int, seed: int, report: list[str]) -> int:
    import fuzz_scenarios as fs
    texts = fs.library_texts()
    rng = random.Random(seed)
    failed = 0
    for _ in range(count):
        path, text, _ops = fs.mutant(texts, rng)
        problem = fs.check(text, path.parent)
        if problem is not None:
            failed += 1
            if failed <= 3:
                report.append(f"scenario mutant of {path.name}: {problem}"[:300])
    return failed


def run_share(share: tuple[str, int, int, int]) -> tuple[str, int, int, int, list[str]]:
    """One job's share of one property: (property, tried, failed, shown, first failures)."""
    name, count, seed, _job = share
    report: list[str] = []
    shown = 0
    if name == "block":
        failed, shown = fuzz_blocks(count, seed, report) if count else (0, 0)
    elif name == "cmdline":
        failed = fuzz_cmdlines(count, seed, report)
    else:
        failed = fuzz_scenarios(count, seed, report)
    return name, count, failed, shown, report


def shares(counts: dict[str, int], seed: int, jobs: int) -> list[tuple[str, int, int, int]]:
    """Each property's count split over ``jobs`` shares, each with its own seed.

    The split depends on ``jobs`` alone (never on timing), so a run is reproduced by the same
    ``--seed`` and ``--jobs``; ``--jobs 1`` is the serial run of earlier versions.
    """
    out = []
    for name, count in counts.items():
        for job in range(jobs):
            part = count // jobs + (job < count % jobs)
            if part:
                out.append((name, part, seed if jobs == 1 else seed * 1009 + job, job))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cmdlines", type=int, default=1000)
    parser.add_argument("--blocks", type=int, default=1000)
    parser.add_argument("--mutants", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="worker processes; each share gets its own seed (default 1)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    counts = {"cmdline": args.cmdlines, "block": args.blocks, "scenario": args.mutants}
    work = shares(counts, args.seed, args.jobs)
    if args.jobs == 1:
        results = [run_share(share) for share in work]
    else:
        import multiprocessing
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            results = pool.map(run_share, work, chunksize=1)
    totals = {name: [0, 0, 0] for name in counts}
    report: list[str] = []
    for name, tried, failed, shown, lines in results:
        totals[name][0] += tried
        totals[name][1] += failed
        totals[name][2] += shown
        report.extend(lines)
    for line in report:
        print("FAIL " + line)
    for name, (tried, failed, shown) in totals.items():
        print(f"{name:9} tried {tried:8d}  failed {failed:6d}"
              + (f"  (old log still shown after {shown})" if name == "block" else ""))
    return 1 if any(failed for _, failed, _ in totals.values()) else 0


if __name__ == "__main__":
    sys.exit(main())

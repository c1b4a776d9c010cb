"""The simulator's time base: one ``trio.run`` on virtual time.

Every front-end (``ksim boot``, ``ksim stress``, the scenario runner) runs the simulated machine
in a ``trio.run`` whose clock is trio's ``MockClock`` with ``autojump_threshold=0``: when no task
can run, time jumps to the next deadline, so a ten-second ``msleep`` costs nothing and nothing
depends on the host's speed.

The class is imported from ``trio._core``, where it is defined, rather than from ``trio.testing``:
importing ``trio.testing`` imports pytest when pytest is installed (for ``RaisesGroup``), which
would cost every ``ksim`` command a tenth of a second for nothing.  It is the same class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import trio

try:
    from trio._core import MockClock
except ImportError:  # pragma: no cover - a trio that moved it: the public path still works
    from trio.testing import MockClock

__all__ = ["MockClock", "run_virtual", "virtual_clock"]

T = TypeVar("T")


def virtual_clock() -> MockClock:
    """A fresh autojumping virtual clock, starting at 0."""
    return MockClock(autojump_threshold=0)


def run_virtual(fn: Callable[..., Awaitable[T]], *args: object) -> T:
    """``trio.run(fn, *args)`` on a fresh :func:`virtual_clock`."""
    return trio.run(fn, *args, clock=virtual_clock())

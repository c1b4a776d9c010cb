"""Shared fixtures: every test runs on trio's virtual clock (no wall-clock sleeps)."""

from __future__ import annotations

import pytest
import trio.testing


@pytest.fixture
def autojump_clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)

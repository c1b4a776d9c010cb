"""YAML scenarios: a machine, its boots, steps and expectations, run on virtual time.

``load_paths`` / ``load_file`` / ``load_text`` read and validate scenarios (every problem as
``FILE:LINE:COL: message``, :class:`ScenarioInvalid`); ``run_scenario`` runs one with one seed
and returns a :class:`Result`.  The format is documented in ``docs/scenarios.md``; ``ksim
run`` and ``ksim schema`` are in :mod:`ksim.scenario.cli`; the pytest plugin (entry point
``pytest11``) in :mod:`ksim.scenario.pytest_plugin`.

Names are imported lazily, so ``ksim boot`` (whose parser registers ``run``) and every pytest
session (which loads the plugin) do not pay for YAML and cattrs until a scenario is loaded.
"""

from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "Problem": "loader", "ScenarioInvalid": "loader", "load_file": "loader",
    "load_paths": "loader", "load_text": "loader", "Scenario": "model",
    "ERROR": "runner", "FAIL": "runner", "PASS": "runner", "Result": "runner",
    "run_scenario": "runner",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module(f"ksim.scenario.{_NAMES[name]}"), name)
    raise AttributeError(f"module 'ksim.scenario' has no attribute {name!r}")

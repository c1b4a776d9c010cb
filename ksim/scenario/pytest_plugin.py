"""The pytest plugin (entry point ``pytest11``): scenarios as test items, and fixtures.

``pytest scenarios/`` collects each scenario file as one item per scenario, and per seed when
a scenario lists several (``name[seed=3]``); a failure reads as ``ksim run`` prints it.  Items
are plain and deterministic, so ``pytest -n auto`` (pytest-xdist) spreads them over workers.
A YAML file is taken for a scenario file when it has a top-level ``boots:`` key, so other
YAML in a project is left alone.  ``--ksim-seed N`` runs every scenario with seed N only.

Fixtures for Python tests:

* ``machine``: a 64M, 1-CPU :class:`ksim.Machine` (seed 0), closed afterwards;
* ``kernel``: that machine booted (async), yielded while it runs, shut down afterwards.

``@pytest.mark.ksim(ram="64M", cpus=1, seed=0, cmdline="", plugins=[...])`` configures both.
A test using ``kernel`` runs on virtual time (an autojumping MockClock) unless it asks for a
clock fixture itself.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

_SCENARIO_RE = re.compile(rb"^boots\s*:", re.MULTILINE)


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("ksim", "ksim scenarios")
    group.addoption("--ksim-seed", type=int, default=None, metavar="N",
                    help="run every collected ksim scenario with seed N only")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "ksim(ram='64M', cpus=1, seed=0, cmdline='', plugins=()): configure the "
                   "machine and kernel fixtures")


def _is_scenario_file(path: Path) -> bool:
    if path.suffix not in (".yaml", ".yml") or not path.is_file():  # never open a FIFO
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(1 << 16)
    except OSError:
        return False
    return _SCENARIO_RE.search(head) is not None


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if _is_scenario_file(file_path):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioInvalidError(Exception):
    pass


class ScenarioFailed(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


def _rel(path: Path, config: pytest.Config) -> str:
    try:
        return str(path.relative_to(config.rootpath))
    except ValueError:
        return str(path)


class ScenarioFile(pytest.File):
    def collect(self) -> Iterator[pytest.Item]:
        from ksim.scenario.loader import ScenarioInvalid, load_text, read_scenario_file
        try:
            text = read_scenario_file(self.path)
            scenarios = load_text(text, _rel(self.path, self.config), self.path.parent)
        except ScenarioInvalid as exc:
            raise ScenarioInvalidError("\n".join(str(p) for p in exc.problems)) from None
        override = self.config.getoption("ksim_seed", None)
        for sc in scenarios:
            seeds = (override,) if override is not None else sc.seeds
            name = sc.name.replace("::", ": ")
            for seed in seeds:
                label = name + (f"[seed={seed}]" if len(seeds) > 1 else "")
                yield ScenarioItem.from_parent(self, name=label, scenario=sc, seed=seed)
            if sc.verdict is not None and sc.verdict.answer == "partly" and override is None:
                yield VerdictItem.from_parent(self, name=f"{name}[verdict]", scenario=sc)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):  # type: ignore[no-untyped-def,override]
        if isinstance(excinfo.value, ScenarioInvalidError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class ScenarioItem(pytest.Item):
    # pytest-trio's trio_mode looks at every item's ``obj`` for a coroutine function to mark.
    obj = None

    def __init__(self, *, scenario: Any, seed: int, **kw: Any) -> None:
        super().__init__(**kw)
        self.scenario = scenario
        self.seed = seed

    def runtest(self) -> None:
        from ksim.scenario.report import failure_text
        from ksim.scenario.runner import PASS, run_scenario
        result = run_scenario(self.scenario, self.seed)
        self.config.stash.setdefault(_RESULTS, {})[(id(self.scenario), self.seed)] = result
        self.user_properties.append(("virtual_s", result.virtual))
        verdict = self.scenario.verdict
        if verdict is not None:
            self.user_properties += [("verdict.question", verdict.question),
                                     ("verdict.answer", verdict.answer),
                                     ("verdict.observed", result.observed)]
        if result.status != PASS:
            raise ScenarioFailed(failure_text(result))

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):  # type: ignore[no-untyped-def,override]
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.text
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.loc.line - 1, f"scenario: {self.name}"


_RESULTS = pytest.StashKey[dict]()


class VerdictItem(pytest.Item):
    """A ``partly`` verdict, judged on all the scenario's seeds together.

    It uses the seed items' results when they ran in this process, and runs the seeds that
    did not (under pytest-xdist they may have run on another worker).
    """

    obj = None

    def __init__(self, *, scenario: Any, **kw: Any) -> None:
        super().__init__(**kw)
        self.scenario = scenario

    def runtest(self) -> None:
        from ksim.scenario.report import tally_verdicts
        from ksim.scenario.runner import run_scenario
        done = self.config.stash.get(_RESULTS, {})
        results = [done.get((id(self.scenario), seed)) or run_scenario(self.scenario, seed)
                   for seed in self.scenario.seeds]
        [tally] = tally_verdicts(results)
        self.user_properties += [("verdict.question", tally.verdict.question),
                                 ("verdict.answer", tally.verdict.answer),
                                 ("verdict.held", tally.fraction())]
        problem = tally.problem()
        if problem is not None:
            raise ScenarioFailed(f"FAIL  {self.scenario.file}: {self.scenario.name} [verdict]\n"
                                 f"    {tally.verdict.loc}: verdict: {problem}")

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):  # type: ignore[no-untyped-def,override]
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.text
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.loc.line - 1, f"verdict: {self.name}"


# -- fixtures for Python tests ---------------------------------------------------------------

def _config(request: pytest.FixtureRequest) -> dict[str, Any]:
    conf: dict[str, Any] = {"ram": "64M", "cpus": 1, "seed": 0, "cmdline": "", "plugins": ()}
    marker = request.node.get_closest_marker("ksim")
    if marker is not None:
        unknown = set(marker.kwargs) - set(conf)
        if unknown:
            raise pytest.UsageError(f"@pytest.mark.ksim: unknown argument(s) "
                                    f"{', '.join(sorted(unknown))}")
        conf.update(marker.kwargs)
    return conf


@pytest.fixture
def machine(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A :class:`ksim.Machine` configured by ``@pytest.mark.ksim`` (default 64M, 1 CPU)."""
    from ksim import Machine
    conf = _config(request)
    m = Machine(conf["ram"], cpus=conf["cpus"], seed=conf["seed"])
    try:
        yield m
    finally:
        m.close()


def _kernel_fixture() -> Any:
    from pytest_trio import trio_fixture

    @trio_fixture
    async def kernel(machine: Any, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
        """``machine`` booted with the marker's cmdline and plugins; ``current`` is its shell."""
        from ksim.plugins import load_plugins
        conf = _config(request)
        plugins = load_plugins(list(conf["plugins"]))
        async with machine.boot(conf["cmdline"], plugins) as k:
            yield k

    return kernel


try:
    kernel = _kernel_fixture()
except ImportError:  # pytest-trio missing: the machine fixture still works
    pass


def _run_on_virtual_time(fn: Any, *, clock: Any = None, instruments: Any = ()) -> Any:
    import trio
    import trio.testing
    if clock is None:
        clock = trio.testing.MockClock(autojump_threshold=0)
    return trio.run(fn, clock=clock, instruments=instruments)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use ``kernel`` and no clock of their own run on virtual time."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "kernel" not in names:
            continue
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        fixdefs = defs.get("kernel", ())
        if not fixdefs or getattr(fixdefs[-1].func, "__module__", None) != __name__:
            continue  # a project fixture named kernel shadows ours
        if any(n in names for n in ("autojump_clock", "mock_clock")):
            continue
        if any(m.kwargs.get("run") for m in item.iter_markers("trio")):
            continue
        item.add_marker(pytest.mark.trio(run=functools.partial(_run_on_virtual_time)))

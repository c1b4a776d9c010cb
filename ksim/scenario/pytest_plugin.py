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

import attrs
import pytest

from ksim.plugins import load_plugins

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

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
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

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
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

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style=None):
        if isinstance(excinfo.value, ScenarioFailed):
            return excinfo.value.text
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Path, int, str]:
        return self.path, self.scenario.loc.line - 1, f"verdict: {self.name}"


# -- fixtures for Python tests ---------------------------------------------------------------

_MARKER_DEFAULTS: dict[str, Any] = {"ram": "64M", "cpus": 1, "seed": 0, "cmdline": "",
                                    "plugins": (), "plugin_path": (), "outcome": None}


def _config(node: pytest.Item | pytest.Collector) -> dict[str, Any]:
    conf = dict(_MARKER_DEFAULTS)
    marker = node.get_closest_marker("ksim")
    if marker is not None:
        unknown = set(marker.kwargs) - set(conf)
        if unknown:
            raise pytest.UsageError(f"@pytest.mark.ksim: unknown argument(s) "
                                    f"{', '.join(sorted(unknown))}")
        conf.update(marker.kwargs)
    if isinstance(conf["plugin_path"], (str, Path)):
        conf["plugin_path"] = (conf["plugin_path"],)
    # a relative plugin folder is relative to the test's file, as a scenario's plugin_path is
    here = Path(str(getattr(node, "path", "."))).parent
    conf["plugin_path"] = tuple(str(here / p) for p in conf["plugin_path"])
    return conf


@pytest.fixture
def machine(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A :class:`ksim.Machine` configured by ``@pytest.mark.ksim`` (default 64M, 1 CPU)."""
    from ksim import Machine
    conf = _config(request.node)
    m = Machine(conf["ram"], cpus=conf["cpus"], seed=conf["seed"])
    try:
        yield m
    finally:
        m.close()


@attrs.define
class _Boot:
    """What the ``kernel`` fixture and the test share about the boot the test runs on."""

    kernel: Any = None
    done: Any = None  # trio.Event: the test has ended
    stop: BaseException | None = None  # the MachineStop that ended the test body, if any
    scope: Any = None  # the test body's cancel scope, for a stop from a kernel thread
    stopped_under_test: bool = False


_BOOT = pytest.StashKey[_Boot]()


def _kernel_fixture() -> Any:
    from pytest_trio import trio_fixture  # type: ignore[import-untyped]

    @trio_fixture
    async def kernel(machine: Any, request: pytest.FixtureRequest) -> AsyncIterator[Any]:
        """``machine`` booted with the marker's cmdline and plugins; ``current`` is its shell.

        The boot runs in a task of its own, as ``async with machine.boot()``: when the kernel
        stops during the test (a panic in the test or in a kernel thread, a reboot), the
        test body ends as that block would, and the outcome is the test's to expect
        (``@pytest.mark.ksim(outcome="halt")``).
        """
        import trio

        from ksim.current import reset_current, set_current
        conf = _config(request.node)
        plugins = load_plugins(list(conf["plugins"]), conf["plugin_path"])
        boot = request.node.stash.setdefault(_BOOT, _Boot())
        boot.done = trio.Event()

        async def run_boot(*, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
            async with machine.boot(conf["cmdline"], plugins) as k:
                boot.kernel = k
                task_status.started(current())
                await boot.done.wait()
                if boot.stop is not None:
                    raise boot.stop  # the test's panic: machine.boot records the outcome
            if not boot.done.is_set() and boot.scope is not None:
                boot.stopped_under_test = True  # a kernel thread stopped the kernel
                boot.scope.cancel()

        from ksim.current import current
        async with trio.open_nursery() as nursery:
            shell = await nursery.start(run_boot)
            token = set_current(shell)
            try:
                yield boot.kernel
            finally:
                reset_current(token)
                boot.done.set()

    return kernel


try:
    kernel = _kernel_fixture()
except ImportError:  # pytest-trio missing: the machine fixture still works
    pass


def _stops_as_outcomes(fn: Any, item: pytest.Item) -> Any:
    """The test function, with a stop of its kernel turned into the outcome it can expect."""
    from ksim.reboot import MachineStop

    @functools.wraps(fn)
    async def test(*args: Any, **kwargs: Any) -> Any:
        __tracebackhide__ = True
        import trio
        boot = item.stash.setdefault(_BOOT, _Boot())
        expected = _config(item)["outcome"]
        outcome = None
        with trio.CancelScope() as scope:
            boot.scope = scope
            try:
                await fn(*args, **kwargs)
            except MachineStop as stop:
                boot.stop = stop
                outcome = stop.how
        if boot.stopped_under_test:
            outcome = boot.kernel.outcome
        detail = ""
        if outcome is not None and boot.kernel is not None and boot.kernel.panicked:
            detail = f" (panic: {boot.kernel.panic_message!r})"
        elif boot.stop is not None and str(boot.stop) not in ("", outcome):
            detail = f" ({boot.stop})"
        if outcome is None:
            if expected not in (None, "shutdown"):
                pytest.fail(f"expected the kernel to stop with outcome {expected!r}, but the "
                            "test ended with it running", pytrace=False)
            return
        if expected is None:
            pytest.fail(f"the kernel stopped during the test: {outcome}{detail}; a test that "
                        f"expects it says @pytest.mark.ksim(outcome={outcome!r})",
                        pytrace=False)
        if outcome != expected:
            pytest.fail(f"expected the kernel to stop with outcome {expected!r}, but it "
                        f"stopped with {outcome!r}{detail}", pytrace=False)

    return test


def _run_on_virtual_time(fn: Any, *, clock: Any = None, instruments: Any = ()) -> Any:
    """trio.run for a kernel test: virtual time unless the test asks for a clock of its own,
    and a failure reported as itself rather than inside a one-exception group."""
    __tracebackhide__ = True
    import trio
    import trio.testing

    from ksim.machine import exception_leaves
    if clock is None:
        clock = trio.testing.MockClock(autojump_threshold=0)
    try:
        return trio.run(fn, clock=clock, instruments=instruments)
    except BaseExceptionGroup as group:
        leaves = exception_leaves(group)
        if len(leaves) == 1:
            raise leaves[0] from None
        raise


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that use ``kernel`` run on virtual time (unless they bring a clock), and a stop
    of their kernel is an outcome they can expect."""
    for item in items:
        names = getattr(item, "fixturenames", ())
        if "kernel" not in names:
            continue
        defs = getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {})
        fixdefs = defs.get("kernel", ())
        if not fixdefs or getattr(fixdefs[-1].func, "__module__", None) != __name__:
            continue  # a project fixture named kernel shadows ours
        if isinstance(item, pytest.Function):
            item.obj = _stops_as_outcomes(item.obj, item)
        if any(m.kwargs.get("run") for m in item.iter_markers("trio")):
            continue
        item.add_marker(pytest.mark.trio(run=functools.partial(_run_on_virtual_time)))

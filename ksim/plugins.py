"""Finding plugins: the ``ksim.plugins`` entry-point group and plugin folders.

A plugin is a Python module or package that defines one :class:`~ksim.module.KernelModule`
subclass (or names it ``MODULE``).  Installed plugins register an entry point in the group
``ksim.plugins``; uninstalled ones are found in folders given by ``--plugin-path`` or the
``KSIM_PLUGIN_PATH`` environment variable (``os.pathsep``-separated), one ``NAME.py`` file or
``NAME/`` package per plugin.  The core knows no plugin by name.

A plugin's import and its module's ``init`` run under a wall-clock budget
(:func:`wall_budget`, :data:`DEFAULT_BUDGET` seconds, ``KSIM_PLUGIN_BUDGET`` to change it, 0
for none): code that never returns is ended with a :class:`PluginHang` naming the plugin, the
budget and where it was.  That covers a busy loop (which nothing else interrupts) and an init
looping through awaits (virtual time only: trio's clock jumps, and nothing in ``ksim boot``
bounds it, as nothing bounds a real initcall that sleeps forever but the hung-task warnings
ksim does not model).  A SIGALRM timer does it, so only in the main thread and where the
platform has ``setitimer``; a loop inside C code (``time.sleep``, a regex) is interrupted only
when it returns to Python, as any signal is.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import math
import os
import signal
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType, ModuleType

import attrs

from ksim.bug import is_runtime_file, short_path
from ksim.module import KernelModule

ENTRY_POINT_GROUP = "ksim.plugins"
# Subcommands a plugin adds to the ``ksim`` command line (``ksim pstore`` comes from ramoops):
# an entry point naming a module with ``add_parser(subparsers)`` and ``main(args) -> int``.
COMMAND_GROUP = "ksim.commands"
PATH_ENV = "KSIM_PLUGIN_PATH"
BUDGET_ENV = "KSIM_PLUGIN_BUDGET"
DEFAULT_BUDGET = 10.0  # seconds of wall time: a plugin's import or init takes milliseconds
MAX_BUDGET = 86400.0
# When the timer fires inside trio's scheduler or the import machinery, where an exception
# would break more than the plugin: look again this soon.
_RETRY = 0.001


class PluginError(Exception):
    """A plugin that is missing or cannot be imported; the message names it and its file."""


class PluginHang(PluginError):
    """A plugin's import or init did not return within the wall-clock budget."""


def plugin_budget() -> float:
    """The budget in seconds (0: none), from ``KSIM_PLUGIN_BUDGET`` or the default."""
    raw = os.environ.get(BUDGET_ENV)
    if raw is None:
        return DEFAULT_BUDGET
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_BUDGET:
        raise PluginError(f"{BUDGET_ENV}={raw[:40]!r} is not a number of seconds from 0 (no "
                          f"budget) to {MAX_BUDGET:g}")
    return value


def _runtime_frame(frame: FrameType, package: str) -> bool:
    """A frame of the runtime (the stdlib, trio, attrs, generated code) rather than of the
    simulation or of the plugin (its own ``package``, wherever it is installed)."""
    if str(frame.f_globals.get("__name__", "")).partition(".")[0] == package:
        return False
    path = frame.f_code.co_filename
    return path.startswith("<") or is_runtime_file(path)


def _interruptible(frame: FrameType, package: str) -> bool:
    """Whether an exception raised in ``frame`` unwinds only simulated code before it reaches
    the runtime: between the frame and the first runtime frame lies a coroutine (a trio task
    running the kernel) or a module body (the plugin's import), not a callback trio's run
    loop makes (the virtual clock, outcome's attrs validators) or the inside of a library."""
    in_code = False
    walk: FrameType | None = frame
    while walk is not None:
        if _runtime_frame(walk, package):
            return in_code
        in_code = in_code or bool(walk.f_code.co_flags & inspect.CO_COROUTINE) \
            or walk.f_code.co_name == "<module>"
        walk = walk.f_back
    return True


def _plugin_location(frame: FrameType) -> str:
    """``file:line`` of the innermost frame of plugin code (not ksim's, not the runtime's)
    on the interrupted stack; the interrupted frame itself if there is none."""
    walk: FrameType | None = frame
    while walk is not None:
        path = walk.f_code.co_filename
        if not path.startswith("<") and not is_runtime_file(path) \
                and not short_path(path).startswith("ksim/"):
            break
        walk = walk.f_back
    found = walk or frame
    return f"{short_path(found.f_code.co_filename)}:{found.f_lineno}"


@contextmanager
def wall_budget(name: str, what: str, module: str) -> Iterator[None]:
    """Run plugin ``name``'s ``what`` (``import``, ``init``), Python module ``module``, for at
    most the budget of wall time, then raise :class:`PluginHang` where it is (see the module
    docstring for the limits).  The previous SIGALRM handler and timer are restored after."""
    package = module.partition(".")[0]
    seconds = plugin_budget()
    if not seconds or not hasattr(signal, "setitimer") \
            or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum: int, frame: FrameType | None) -> None:
        if frame is None or not _interruptible(frame, package):
            signal.setitimer(signal.ITIMER_REAL, _RETRY)
            return
        raise PluginHang(f"plugin '{name}' did not return from {what} within {seconds:g} s "
                         f"of wall time (at {_plugin_location(frame)}; {BUDGET_ENV} sets the "
                         "budget)")

    started = time.monotonic()
    old_handler = signal.signal(signal.SIGALRM, expired)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay:  # someone else's timer: what is left of it (at once if it is due)
            left = max(old_delay - (time.monotonic() - started), 1e-6)
            signal.setitimer(signal.ITIMER_REAL, left, old_interval)


@attrs.frozen
class PluginSpec:
    """Where a plugin can be loaded from, before importing it."""

    name: str
    origin: str  # "entry point" or the folder it was found in
    target: str  # "module[:attr]" for entry points, a file path for folders


def _module_from(obj: object, name: str, where: str) -> type[KernelModule]:
    if inspect.isclass(obj) and issubclass(obj, KernelModule):
        return obj
    if isinstance(obj, ModuleType):
        declared = getattr(obj, "MODULE", None)
        if inspect.isclass(declared) and issubclass(declared, KernelModule):
            return declared
        found = [v for v in vars(obj).values() if inspect.isclass(v)
                 and issubclass(v, KernelModule) and v is not KernelModule and v.name]
        by_name = [v for v in found if v.name == name]
        if len(by_name) == 1:
            return by_name[0]
        if len(found) == 1:
            return found[0]
        raise PluginError(f"plugin '{name}' ({where}) declares {len(found)} kernel modules; "
                          "name the one to load MODULE")
    raise PluginError(f"plugin '{name}' ({where}) is not a module or a KernelModule subclass")


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SyntaxError):
        return f"SyntaxError: {exc.msg} (line {exc.lineno})"
    return f"{type(exc).__name__}: {exc}"


def plugin_path(extra: Iterable[str | os.PathLike[str]] = ()) -> list[Path]:
    dirs = [Path(p) for p in extra]
    env = os.environ.get(PATH_ENV, "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    return dirs


def discover(extra_path: Iterable[str | os.PathLike[str]] = ()) -> dict[str, PluginSpec]:
    """Every plugin on offer: path folders first (so a checkout can shadow an install)."""
    found: dict[str, PluginSpec] = {}
    for folder in plugin_path(extra_path):
        if not folder.is_dir():
            raise PluginError(f"plugin path '{folder}' is not a folder")
        for entry in sorted(folder.iterdir()):
            if entry.suffix == ".py" and entry.stem != "__init__":
                found.setdefault(entry.stem, PluginSpec(entry.stem, str(folder), str(entry)))
            elif entry.is_dir() and (entry / "__init__.py").exists():
                found.setdefault(entry.name, PluginSpec(entry.name, str(folder),
                                                        str(entry / "__init__.py")))
    from importlib.metadata import entry_points  # 30 ms: only when plugins are looked for
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, PluginSpec(ep.name, "entry point", ep.value))
    return found


def load(spec: PluginSpec) -> type[KernelModule]:
    """Import a plugin; any failure is a :class:`PluginError` naming plugin and file."""
    if spec.origin == "entry point":
        module_name, _, attr = spec.target.partition(":")
        where = module_name
        try:
            with wall_budget(spec.name, "import", module_name):
                obj: object = importlib.import_module(module_name)
            where = getattr(obj, "__file__", None) or module_name
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin '{spec.name}' ({where}) failed to import: "
                              f"{_describe(exc)}") from exc
        return _module_from(obj, spec.name, str(where))
    path = Path(spec.target)
    # One import per file: two folders may both offer a plugin of the same name.
    digest = hashlib.blake2b(str(path.resolve()).encode(), digest_size=4).hexdigest()
    module_name = f"ksim_plugin_{spec.name}_{digest}"
    try:
        if module_name in sys.modules:
            obj = sys.modules[module_name]
        else:
            location = path.parent if path.name == "__init__.py" else None
            ispec = importlib.util.spec_from_file_location(
                module_name, path,
                submodule_search_locations=[str(location)] if location else None)
            if ispec is None or ispec.loader is None:
                raise ImportError(f"cannot load {path}")
            obj = importlib.util.module_from_spec(ispec)
            sys.modules[module_name] = obj
            try:
                with wall_budget(spec.name, "import", module_name):
                    ispec.loader.exec_module(obj)
            except BaseException:
                del sys.modules[module_name]
                raise
    except PluginError:
        raise
    except Exception as exc:
        raise PluginError(f"plugin '{spec.name}' ({path}) failed to import: "
                          f"{_describe(exc)}") from exc
    return _module_from(obj, spec.name, str(path))


def plugin_commands() -> dict[str, str]:
    """The subcommands installed plugins offer: name -> ``module`` (nothing is imported)."""
    from importlib.metadata import entry_points
    return {ep.name: ep.value for ep in entry_points(group=COMMAND_GROUP)}


def load_command(name: str) -> ModuleType | None:
    """Import the module of plugin subcommand ``name``; None if no plugin offers it."""
    target = plugin_commands().get(name)
    if target is None:
        return None
    try:
        module = importlib.import_module(target)
    except Exception as exc:
        raise PluginError(f"command '{name}' ({target}) failed to import: "
                          f"{_describe(exc)}") from exc
    for attr in ("add_parser", "main"):
        if not callable(getattr(module, attr, None)):
            raise PluginError(f"command '{name}' ({target}) has no {attr}()")
    return module


def load_plugins(names: Iterable[str],
                 extra_path: Iterable[str | os.PathLike[str]] = ()) -> list[type[KernelModule]]:
    """Resolve plugin names to module classes, with a did-you-mean for a misspelt name."""
    available = discover(extra_path)
    out = []
    for name in names:
        spec = available.get(name)
        if spec is None:
            import difflib
            close = difflib.get_close_matches(name, list(available), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            known = ", ".join(sorted(available)) or "none"
            raise PluginError(f"unknown plugin '{name}' (available: {known}){hint}")
        out.append(load(spec))
    return out

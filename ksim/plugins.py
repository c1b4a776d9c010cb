"""Finding plugins: the ``ksim.plugins`` entry-point group and plugin folders.

A plugin is a Python module or package that defines one :class:`~ksim.module.KernelModule`
subclass (or names it ``MODULE``).  Installed plugins register an entry point in the group
``ksim.plugins``; uninstalled ones are found in folders given by ``--plugin-path`` or the
``KSIM_PLUGIN_PATH`` environment variable (``os.pathsep``-separated), one ``NAME.py`` file or
``NAME/`` package per plugin.  The core knows no plugin by name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

import attrs

from ksim.module import KernelModule

ENTRY_POINT_GROUP = "ksim.plugins"
# Subcommands a plugin adds to the ``ksim`` command line (``ksim pstore`` comes from ramoops):
# an entry point naming a module with ``add_parser(subparsers)`` and ``main(args) -> int``.
COMMAND_GROUP = "ksim.commands"
PATH_ENV = "KSIM_PLUGIN_PATH"


class PluginError(Exception):
    """A plugin that is missing or cannot be imported; the message names it and its file."""


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
            obj: object = importlib.import_module(module_name)
            where = getattr(obj, "__file__", None) or module_name
            for part in filter(None, attr.split(".")):
                obj = getattr(obj, part)
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
                ispec.loader.exec_module(obj)
            except BaseException:
                del sys.modules[module_name]
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

"""Loading scenarios: YAML with positions → validated :mod:`ksim.scenario.model` objects.

Four passes, and every problem of every pass is collected, so one run reports them all as
``FILE:LINE:COL: message`` (nothing runs while any is left):

0. **Limits**, before anything is built: a file is read only if it is a regular ``.yaml`` or
   ``.yml`` file of at most :data:`~ksim.scenario.model.MAX_FILE_BYTES`; control characters
   are reported at their line and column; one pass over ruamel's parse events (a state
   machine, no recursion) bounds the nesting depth, the nodes once aliases are expanded (a
   "billion laughs" is a few hundred bytes) and the digits of an integer.
1. **YAML**, with ruamel.yaml's round-trip loader: its nodes carry the line and column of each
   key and value, and it rejects duplicate keys (PyYAML's ``safe_load`` keeps neither).
2. **Shape**: known top-level keys, step names and expectation subjects and matchers, each
   unknown word with a did-you-mean hint.  Step names are checked *before* structuring:
   structuring a misspelt step would only say "required field missing".
3. **Types and meaning**: each step's fields are structured into its attrs class by cattrs
   (strict: ``"2"`` is not an integer, ``1`` is not a string; a ``Literal`` field takes only
   its words), then the model's validators and the step's own :meth:`~ksim.scenario.model.
   Step.check` say what types cannot (a size, a log level, an errno name, a CPU the machine
   has, a plugin that exists, a step after a panic that can never run).

The loader states no value list and no constraint of its own: those are the model's.  A file
that is not a scenario at all is never echoed back: its content could be anything.
"""

from __future__ import annotations

import os
import re
import stat
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import cache
from pathlib import Path
from typing import Any, Literal

import attrs
import cattrs
from cattrs.strategies import configure_union_passthrough

from ksim.plugins import discover, load
from ksim.scenario import model
from ksim.scenario.model import (
    ANSWERS, MACHINE_STEPS, MATCHERS, MAX_BOOTS, MAX_FILE_BYTES, MAX_INT, MAX_NESTING,
    MAX_NODES, MAX_PCT_DEPTH, MAX_SECONDS, MAX_SEED, MAX_SEEDS, MAX_STEPS, OUTCOMES,
    REBOOT_KINDS, STEP_TYPES, SUBJECTS, VERDICT_KEYS, Boot, CorruptStep, ExpectStep,
    Expectation, Loc, MachineSpec, Matcher, PluginRef, Scenario, Step, StepContext, Verdict,
    did_you_mean, field_problems, initrd_problem, target_problem,
)
from ksim.strategy import make_strategy
from ksim.units import parse_size

# Kept importable from here: the runner and older callers use them.
corrupt_bytes = model.corrupt_bytes
parse_duration = model.parse_duration
parse_priority = model.parse_priority

SCENARIO_KEYS = {
    "name": "a short title (required)",
    "description": "what the scenario shows",
    "verdict": "the question it answers and the answer: {question, answer, why, observe, "
               "assumes, boot}",
    "machine": "{ram, cpus, ram_file, keep_ram_file, numa, firmware, initrd, kernel, pmu}",
    "seed": "the machine seed (default 0)",
    "seeds": "several seeds: a list, or \"FIRST..LAST\"",
    "plugins": "plugins present on every boot: names, or {name, builtin}",
    "plugin_path": "folders (relative to the file) to find plugins in",
    "boots": "the boots, in order (required)",
    "strategy": "how the scheduler interleaves spawn threads: random (default), pct[:DEPTH] "
                "or rr",
    "timeout": "virtual seconds the whole scenario may take (default 3600)",
}
BOOT_KEYS = {
    "reboot": "how this boot starts: warm, cold or memtest (the first boot is cold)",
    "cmdline": "the kernel command line",
    "initrd": "this boot's initramfs size (e.g. 44M; default: the machine's initrd)",
    "plugins": "this boot's plugins, instead of the scenario's",
    "before": "machine steps (corrupt) done while the machine restarts, before this boot",
    "steps": "what the shell does once the kernel is up",
    "expect": "expectations checked once the steps are done, on the state the boot left",
    "checkers": "watch the steps with lockdep-lite and the data-race detector (default: when "
                "the boot has spawn or irq steps)",
}
MACHINE_KEYS = {f.name for f in attrs.fields(MachineSpec)}
PLUGIN_KEYS = ("name", "builtin")
SEED_RANGE_RE = re.compile(r"^\s*(\d{1,20})\s*\.\.\s*(\d{1,20})\s*$")
STRATEGY_RE = re.compile(r"^(random|rr|pct(:\d{1,6})?)$")
SCENARIO_SUFFIXES = (".yaml", ".yml")
MAX_MESSAGE = 2000  # characters of one problem's message
MAX_INT_DIGITS = 20  # 2**64 has 20 digits
NAME_MAX = 255  # bytes in one path component on Linux filesystems (limits.h)
# What YAML forbids in a file (YAML 1.2 c-printable), except the tab, CR and LF it allows.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ud800-\udfff\ufffe\uffff]")
_YAML_INT = re.compile(r"[-+]?(0[xXoObB])?[0-9a-fA-F_]+")


@attrs.frozen
class Problem:
    loc: Loc
    message: str

    def __str__(self) -> str:
        message = self.message
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE] + f"... ({len(message) - MAX_MESSAGE:,} more characters)"
        if self.loc.line <= 0:
            return f"{self.loc.file}: {message}"
        return f"{self.loc}: {message}"


class ScenarioInvalid(Exception):
    """One or more problems in scenario files; nothing may run."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# -- cattrs: strict primitives, Literal words ---------------------------------------------

class _StrictTypeError(TypeError):
    pass


class _NotOneOf(ValueError):
    def __init__(self, value: object, choices: tuple[str, ...]) -> None:
        super().__init__(f"is not one of {', '.join(choices)}"
                         + (did_you_mean(value, choices) if isinstance(value, str) else ""))


_TYPE_WORDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
               type(None): "null", list: "a list", dict: "a mapping", tuple: "a list"}


def _describe_value(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    if len(text) > 40:
        text = text[:37] + "..."
    kind = {int: "integer", float: "number", str: "string"}.get(type(value), type(value).__name__)
    return f"{kind} {text}"


def _strict(t: type) -> Any:
    word = _TYPE_WORDS[t]

    def hook(value: object, _: object) -> object:
        ok = (isinstance(value, t) and not (t in (int, float) and isinstance(value, bool))) \
            or (t is float and isinstance(value, int) and not isinstance(value, bool))
        if not ok:
            raise _StrictTypeError(f"expected {word}, got {_describe_value(value)}")
        return t(value)

    return hook


def _literal(value: object, t: object) -> object:
    choices = typing.get_args(t)
    if isinstance(value, str) and value in choices:
        return value
    raise _NotOneOf(value, choices)


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
    for t in (int, float, str, bool):
        conv.register_structure_hook(t, _strict(t))
    conv.register_structure_hook_func(lambda t: typing.get_origin(t) is Literal, _literal)
    configure_union_passthrough(str | int | float | bool | None, conv)
    return conv


CONVERTER = _converter()


def _type_words(t: object) -> str:
    args = getattr(t, "__args__", None)
    if args and type(t).__name__ in ("UnionType", "_UnionGenericAlias"):
        words = [_type_words(a) for a in args]
        return ", ".join(words[:-1]) + " or " + words[-1]
    origin = getattr(t, "__origin__", None)
    if origin is not None:
        return _TYPE_WORDS.get(origin, str(t))
    return _TYPE_WORDS.get(t, getattr(t, "__name__", str(t)))  # type: ignore[call-overload]


_PATH_TOKEN = re.compile(r"\.(\w+)|\[(\d+)\]|\['((?:[^'\\]|\\.)*)'\]")


def _parse_path(path: str) -> list[str | int]:
    out: list[str | int] = []
    for m in _PATH_TOKEN.finditer(path.removeprefix("$")):
        if m.group(1) is not None:
            out.append(m.group(1))
        elif m.group(2) is not None:
            out.append(int(m.group(2)))
        else:
            out.append(m.group(3))
    return out


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, vars(model))


def _value_problems(cls: type, payload: dict[str, object]) -> Iterator[tuple[str, str]]:
    """The model's validators on each field of ``payload`` that has the field's type.

    Run field by field, so a wrong type in one field (reported by cattrs) does not hide a bad
    value in another.
    """
    hints = _hints(cls)
    for f in attrs.fields(cls):
        if f.name not in payload or f.validator is None:
            continue
        try:
            with attrs.validators.disabled():
                value = CONVERTER.structure(payload[f.name], hints[f.name])
        except Exception:  # noqa: BLE001 - a type error: _structure reports it
            continue
        checks = getattr(f.validator, "_validators", None) or [f.validator]
        for v in checks:
            if isinstance(v, (model.Range, model.Check)):
                message = v.problem(f.name, value)
                if message is not None:
                    yield f.name, message


# -- positions --------------------------------------------------------------------------------

class _Doc:
    """Positions in one file: ruamel keeps 0-based (line, col) on every container."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def loc(self, line: int, col: int) -> Loc:
        return Loc(self.file, line + 1, col + 1)

    def node_loc(self, node: object, fallback: Loc | None = None) -> Loc:
        lc = getattr(node, "lc", None)
        if lc is None or lc.line is None:
            return fallback or Loc(self.file, 1, 1)
        return self.loc(lc.line, lc.col)

    def key_loc(self, node: object, key: object) -> Loc:
        try:
            line, col = node.lc.key(key)  # type: ignore[attr-defined]
            return self.loc(line, col)
        except Exception:
            return self.node_loc(node)

    def value_loc(self, node: object, key: object) -> Loc:
        try:
            line, col = node.lc.value(key)  # type: ignore[attr-defined]
            return self.loc(line, col)
        except Exception:
            return self.key_loc(node, key)

    def item_loc(self, node: object, index: int) -> Loc:
        try:
            line, col = node.lc.item(index)  # type: ignore[attr-defined]
            return self.loc(line, col)
        except Exception:
            return self.node_loc(node)

    def child_loc(self, node: object, key: str | int) -> Loc:
        if isinstance(node, list):
            return self.item_loc(node, key)  # type: ignore[arg-type]
        return self.value_loc(node, key)

    def error(self, loc: Loc, message: str) -> None:
        self.problems.append(Problem(loc, message))


def _plain(node: object) -> Any:
    """ruamel's round-trip types → plain Python (HexInt → int, CommentedMap → dict...)."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, str):
        return str(node)
    return node


def _unknown(d: _Doc, node: object, key: str, what: str, known: Iterable[str],
             prefix: str = "") -> None:
    known = list(known)
    shown = key if len(key) <= 60 else key[:57] + "..."
    d.error(d.key_loc(node, key), f"{prefix}unknown {what} '{shown}'{did_you_mean(key, known)} "
                                  f"(expected one of: {', '.join(known)})")


def _loc_str(loc: Loc) -> str:
    return f"{loc.line}:{loc.col}"


# -- structuring helpers -----------------------------------------------------------------------

def _structure(d: _Doc, payload: dict[str, object], cls: type, node: object, at: Loc,
               prefix: str = "", words_only: list[bool] | None = None) -> Any:
    """cattrs structuring of ``payload`` into ``cls``; errors become located problems.

    The model's validators do not run here.  ``words_only`` collects, per problem, whether it
    was a word outside a ``Literal`` (a value error rather than a type error).
    """
    try:
        with attrs.validators.disabled():
            return CONVERTER.structure(payload, cls)
    except Exception as exc:  # cattrs' ClassValidationError (an ExceptionGroup)
        def fmt(e: BaseException, t: object) -> str:
            if isinstance(e, (_StrictTypeError, _NotOneOf)):
                return str(e)
            if isinstance(e, KeyError):
                return "required field missing"
            if isinstance(e, cattrs.ForbiddenExtraKeysError):
                return "unknown field(s): " + ", ".join(sorted(e.extra_fields))
            return f"expected {_type_words(t)}"

        for message in cattrs.transform_error(exc, path="$", format_exception=fmt):
            text, _, path = message.rpartition(" @ ")
            if words_only is not None:
                words_only.append(text.startswith("is not one of"))
            parts = _parse_path(path)
            loc = at
            value: object = payload
            target = node
            for part in parts:
                if isinstance(target, (dict, list)):
                    try:
                        loc = d.child_loc(target, part)
                        target = target[part]  # type: ignore[index]
                    except (KeyError, IndexError, TypeError):
                        target = None
                try:
                    value = value[part]  # type: ignore[index]
                except (KeyError, IndexError, TypeError):
                    value = None
            field = ".".join(str(p) for p in parts) or cls.__name__
            if text == "required field missing":
                d.error(at, f"{prefix}'{field}' is required")
                continue
            if text.startswith("is not one of"):
                shown = f"'{value}'" if isinstance(value, str) and len(value) <= 60 \
                    else _describe_value(value)
                d.error(loc, f"{prefix}{field} {shown} {text}")
                continue
            if text.startswith("expected") and "got" not in text:
                text += f", got {_describe_value(value)}"
            d.error(loc, f"{prefix}{field}: {text}")
        return None


# -- the loader -------------------------------------------------------------------------------

class _PluginIndex:
    """Plugins that exist, per plugin_path (discovery is cached: it reads entry points)."""

    _cache: dict[tuple[str, ...], dict[str, object]] = {}

    @classmethod
    def available(cls, path: tuple[str, ...]) -> dict[str, object]:
        if path not in cls._cache:
            cls._cache[path] = dict(discover(path))
        return cls._cache[path]


def _inside(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _stat_kind(path: Path) -> str | None:
    """"dir", "file", "other", or None when nothing can be found at ``path``.

    A scenario names paths the OS may refuse to look up at all (a name past NAME_MAX, a NUL
    byte): that is a path that names nothing, not an error of the loader.
    """
    try:
        if path.is_dir():
            return "dir"
        if path.is_file():
            return "file"
        return "other" if path.exists() else None
    except (OSError, ValueError):
        return None


def ram_file_problem(template: str, seed: int, base_dir: Path) -> str | None:
    """Why RAM file ``template`` (for ``seed``) may not be used: it must stay in ``base_dir``."""
    name = template.replace("{seed}", str(seed))
    if not name or name.endswith("/"):
        return f"'{template}' names no file"
    path = Path(name)
    if any(len(os.fsencode(part)) > NAME_MAX - len(".cold") for part in path.parts):
        # the journal beside the file is named FILE.cold, so FILE itself must leave room
        return (f"'{template[:200]}' has a name longer than {NAME_MAX - len('.cold')} bytes "
                f"(the filesystem's NAME_MAX {NAME_MAX}, less the journal's '.cold')")
    try:
        full = (base_dir / path).resolve()
    except (OSError, ValueError):
        return f"'{template[:200]}' is not a usable file name"
    if path.is_absolute() or not _inside(full, base_dir.resolve()):
        return (f"'{template[:200]}' is outside the scenario's folder: a scenario's RAM file "
                "stays in its folder (ksim run --ram-files-anywhere lifts this)")
    if _stat_kind(full) in ("dir", "other"):
        return f"'{template[:200]}' exists and is not a regular file"
    return None


class _Loader:
    def __init__(self, d: _Doc, base_dir: Path, ram_files_anywhere: bool = False) -> None:
        self.d = d
        self.base_dir = base_dir
        self.ram_files_anywhere = ram_files_anywhere
        self.plugin_names: set[str] = set()
        self.cpus = 1
        self.ram = 64 << 20

    # top level ----------------------------------------------------------------------------
    def scenario(self, node: object, doc_loc: Loc) -> Scenario | None:
        d = self.d
        if not isinstance(node, dict) or not any(k in SCENARIO_KEYS for k in node):
            # Possibly not a scenario file at all: say so without echoing what it holds.
            d.error(d.node_loc(node, doc_loc),
                    "a scenario is a mapping with at least 'name' and 'boots'"
                    + ("" if not isinstance(node, dict) else
                       " (this one has none of the scenario keys)"))
            return None
        for key in node:
            if key not in SCENARIO_KEYS:
                _unknown(d, node, str(key), "scenario key", SCENARIO_KEYS)
        start = d.node_loc(node, doc_loc)
        name = node.get("name")
        if not isinstance(name, str) or not name.strip():
            d.error(d.value_loc(node, "name") if "name" in node else start,
                    "'name' is required: a non-empty string")
            name = "<unnamed>"
        description = node.get("description", "")
        if not isinstance(description, str):
            d.error(d.value_loc(node, "description"), "description: expected a string")
            description = ""
        seeds = self.seeds(node)
        machine = self.machine(node, seeds[0])
        plugin_path = self.plugin_path(node)
        plugins = self.plugins(node, "plugins", plugin_path) if "plugins" in node else ()
        strategy = self.strategy(node)
        timeout = self.timeout(node)
        boots: list[Boot] = []
        raw_boots = node.get("boots")
        if raw_boots is None:
            d.error(start, "'boots' is required: a list of boots")
        elif not isinstance(raw_boots, list) or not raw_boots:
            d.error(d.value_loc(node, "boots"), "boots: expected a non-empty list of boots")
        elif len(raw_boots) > MAX_BOOTS:
            d.error(d.value_loc(node, "boots"), f"boots: {len(raw_boots):,} boots: at most "
                                                f"{MAX_BOOTS:,} (the limit)")
        else:
            for i, raw in enumerate(raw_boots):
                boot = self.boot(raw_boots, i, plugins, plugin_path)
                if boot is not None:
                    boots.append(boot)
        verdict = self.verdict(node, len(raw_boots) if isinstance(raw_boots, list) else 0)
        return Scenario(name=name.strip(), description=description.strip(), machine=machine,
                        seeds=seeds, plugins=plugins, plugin_path=plugin_path,
                        boots=tuple(boots), strategy=strategy, timeout=timeout,
                        verdict=verdict, file=d.file, loc=start)

    def timeout(self, node: dict) -> float:
        timeout = node.get("timeout", 3600.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) \
                or not 0 < timeout <= MAX_SECONDS:
            self.d.error(self.d.value_loc(node, "timeout"),
                         "timeout: expected a positive number of virtual seconds"
                         + (f", at most {MAX_SECONDS:.0e} (the limit)"
                            if isinstance(timeout, (int, float)) and timeout > 0 else ""))
            return 3600.0
        return float(timeout)

    def machine(self, node: dict, seed: int) -> MachineSpec:
        d = self.d
        raw = node.get("machine")
        if raw is None:
            return MachineSpec()
        if not isinstance(raw, dict):
            d.error(d.value_loc(node, "machine"), "machine: expected a mapping {ram, cpus, ...}")
            return MachineSpec()
        for key in raw:
            if key not in MACHINE_KEYS:
                _unknown(d, raw, str(key), "machine key", sorted(MACHINE_KEYS))
        payload = {k: v for k, v in _plain(raw).items() if k in MACHINE_KEYS}
        if isinstance(payload.get("ram"), int) and not isinstance(payload.get("ram"), bool):
            payload["ram"] = str(payload["ram"])
        bad = False
        for field, message in _value_problems(MachineSpec, payload):
            d.error(d.value_loc(raw, field), f"machine.{field}: {message}")
            bad = True
        spec = _structure(d, payload, MachineSpec, raw, d.value_loc(node, "machine"),
                          "machine.")
        if spec is None or bad:
            return MachineSpec()
        if spec.ram_file is not None and not self.ram_files_anywhere:
            problem = ram_file_problem(spec.ram_file, seed, self.base_dir)
            if problem:
                d.error(d.value_loc(raw, "ram_file"), f"machine.ram_file: {problem}")
        self.cpus = spec.cpus
        self.ram = spec.ram_bytes
        return spec

    def strategy(self, node: dict) -> str:
        d = self.d
        raw = node.get("strategy", "random")
        expected = "expected random, pct, pct:DEPTH (DEPTH >= 1) or rr"
        if not isinstance(raw, str):
            message = f"{expected}, got {_describe_value(_plain(raw))}"
        elif not STRATEGY_RE.match(raw):
            message = (f"unknown strategy '{raw[:60]}'{did_you_mean(raw, ('random', 'pct', 'rr'))}"
                       f" ({expected})")
        elif raw.startswith("pct:") and int(raw[4:]) > MAX_PCT_DEPTH:
            message = f"PCT depth {int(raw[4:]):,}: at most {MAX_PCT_DEPTH} (the limit)"
        else:
            try:
                make_strategy(raw, 0)
                return raw
            except ValueError as exc:
                message = str(exc)
        d.error(d.value_loc(node, "strategy"), f"strategy: {message}")
        return "random"

    def seeds(self, node: dict) -> tuple[int, ...]:
        d = self.d
        if "seed" in node and "seeds" in node:
            d.error(d.key_loc(node, "seeds"), "give either 'seed' or 'seeds', not both")
        if "seed" in node:
            seed = node["seed"]
            if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
                d.error(d.value_loc(node, "seed"), "seed: expected a non-negative integer"
                        + (f" up to 2**64-1 (the limit)" if isinstance(seed, int)
                           and not isinstance(seed, bool) and seed > 0 else "")
                        + f", got {_describe_value(_plain(seed))}")
                return (0,)
            return (int(seed),)
        if "seeds" in node:
            raw = node["seeds"]
            if isinstance(raw, str):
                m = SEED_RANGE_RE.match(raw)
                if m and int(m.group(1)) <= int(m.group(2)) <= MAX_SEED:
                    first, last = int(m.group(1)), int(m.group(2))
                    if last - first + 1 > MAX_SEEDS:
                        d.error(d.value_loc(node, "seeds"),
                                f"seeds: {raw!r} is {last - first + 1:,} seeds: at most "
                                f"{MAX_SEEDS:,} per scenario (the limit)")
                        return (first,)
                    return tuple(range(first, last + 1))
                d.error(d.value_loc(node, "seeds"),
                        f"seeds: expected a list of integers or \"FIRST..LAST\", got "
                        f"{model.quoted(raw)}")
                return (0,)
            if not isinstance(raw, list) or not raw:
                d.error(d.value_loc(node, "seeds"), "seeds: expected a non-empty list of "
                                                    "integers or \"FIRST..LAST\"")
                return (0,)
            if len(raw) > MAX_SEEDS:
                d.error(d.value_loc(node, "seeds"), f"seeds: {len(raw):,} seeds: at most "
                                                    f"{MAX_SEEDS:,} per scenario (the limit)")
                return (0,)
            out: list[int] = []
            seen: set[int] = set()
            for i, s in enumerate(raw):
                if isinstance(s, bool) or not isinstance(s, int) or not 0 <= s <= MAX_SEED:
                    d.error(d.item_loc(raw, i), "seeds: expected a non-negative integer, got "
                                                + _describe_value(_plain(s)))
                elif int(s) in seen:
                    d.error(d.item_loc(raw, i), f"seeds: {s} is listed twice")
                else:
                    out.append(int(s))
                    seen.add(int(s))
            return tuple(out) or (0,)
        return (0,)

    def plugin_path(self, node: dict) -> tuple[str, ...]:
        d = self.d
        raw = node.get("plugin_path")
        if raw is None:
            return ()
        if isinstance(raw, str):
            raw_list: list = [raw]
        elif isinstance(raw, list):
            raw_list = raw
        else:
            d.error(d.value_loc(node, "plugin_path"), "plugin_path: expected a folder or a list")
            return ()
        out = []
        for i, p in enumerate(raw_list):
            if not isinstance(p, str):
                d.error(d.item_loc(raw, i) if isinstance(raw, list) else
                        d.value_loc(node, "plugin_path"), "plugin_path: expected a folder name")
                continue
            try:
                folder = (self.base_dir / p).resolve()
            except (OSError, ValueError):
                folder = self.base_dir / p
            if _stat_kind(folder) != "dir":
                loc = d.item_loc(raw, i) if isinstance(raw, list) else d.value_loc(
                    node, "plugin_path")
                d.error(loc, f"plugin_path: '{p[:200]}' is not a folder (relative to "
                             f"{self.base_dir})")
                continue
            out.append(str(folder))
        return tuple(out)

    def plugins(self, node: dict, key: str, plugin_path: tuple[str, ...]) -> tuple[PluginRef, ...]:
        d = self.d
        raw = node[key]
        if raw is None:
            return ()
        if not isinstance(raw, list):
            d.error(d.value_loc(node, key), f"{key}: expected a list of plugin names")
            return ()
        try:
            available = _PluginIndex.available(plugin_path)
        except Exception as exc:
            d.error(d.value_loc(node, key), f"{key}: {exc}")
            return ()
        out: list[PluginRef] = []
        for i, item in enumerate(raw):
            loc = d.item_loc(raw, i)
            if isinstance(item, str):
                ref = PluginRef(name=item, builtin=True, loc=loc)
            elif isinstance(item, dict):
                for k in item:
                    if k not in PLUGIN_KEYS:
                        _unknown(d, item, str(k), "plugin key", PLUGIN_KEYS)
                payload = {k: v for k, v in _plain(item).items() if k in PLUGIN_KEYS}
                ref = _structure(d, payload, PluginRef, item, loc, f"{key}[{i}].")
                if ref is None:
                    continue
                ref = attrs.evolve(ref, loc=loc)
            else:
                d.error(loc, f"{key}: expected a plugin name or {{name, builtin}}, got "
                             + _describe_value(_plain(item)))
                continue
            if ref.name not in available:
                known = ", ".join(sorted(available)) or "none"
                d.error(loc, f"unknown plugin '{ref.name[:60]}'"
                             f"{did_you_mean(ref.name, available)} (available: {known})")
                continue
            if any(r.name == ref.name for r in out):
                d.error(loc, f"plugin '{ref.name}' is listed twice")
                continue
            try:
                load(available[ref.name])  # type: ignore[arg-type]
            except Exception as exc:
                d.error(loc, str(exc))
                continue
            self.plugin_names.add(ref.name)
            out.append(ref)
        return tuple(out)

    # boots --------------------------------------------------------------------------------
    def boot(self, seq: list, index: int, default_plugins: tuple[PluginRef, ...],
             plugin_path: tuple[str, ...]) -> Boot | None:
        d = self.d
        node = seq[index]
        loc = d.item_loc(seq, index)
        number = index + 1
        if not isinstance(node, dict):
            d.error(loc, f"boot {number}: expected a mapping with cmdline, steps, expect...")
            return None
        for key in node:
            if key not in BOOT_KEYS:
                if key in STEP_TYPES:
                    d.error(d.key_loc(node, key), f"'{key}' is a step: put it in this boot's "
                                                  "'steps' list")
                elif key in SUBJECTS:
                    d.error(d.key_loc(node, key), f"'{key}' is an expectation: put it in this "
                                                  "boot's 'expect' list")
                else:
                    _unknown(d, node, str(key), "boot key", BOOT_KEYS)
        reboot = node.get("reboot")
        if reboot is not None and reboot not in REBOOT_KINDS:
            d.error(d.value_loc(node, "reboot"), f"reboot: expected one of "
                    f"{', '.join(REBOOT_KINDS)}, got {_describe_value(_plain(reboot))}"
                    + (did_you_mean(reboot, REBOOT_KINDS) if isinstance(reboot, str) else ""))
            reboot = None
        if index == 0 and reboot not in (None, "cold"):
            d.error(d.value_loc(node, "reboot"), f"the first boot of a machine is cold; "
                                                 f"'reboot: {reboot}' needs a boot before it")
        cmdline = node.get("cmdline", "")
        if cmdline is None:
            cmdline = ""
        if not isinstance(cmdline, str):
            d.error(d.value_loc(node, "cmdline"), "cmdline: expected a string, got "
                                                  + _describe_value(_plain(cmdline)))
            cmdline = ""
        initrd = node.get("initrd")
        if initrd is not None:
            problem = (initrd_problem(initrd) if isinstance(initrd, str) else
                       "expected a size such as 40M, got " + _describe_value(_plain(initrd)))
            if problem is not None:
                d.error(d.value_loc(node, "initrd"), f"initrd: {problem}")
                initrd = None
        plugins = default_plugins
        own_plugins = None
        if "plugins" in node:
            own_plugins = self.plugins(node, "plugins", plugin_path)
            plugins = own_plugins
        before = self.steps(node, "before", number, plugins, machine_only=True, first=index == 0)
        steps = self.steps(node, "steps", number, plugins)
        expect = self.expectations(node, "expect")
        checkers = node.get("checkers")
        if checkers is not None and not isinstance(checkers, bool):
            d.error(d.value_loc(node, "checkers"), "checkers: expected true or false, got "
                                                   + _describe_value(_plain(checkers)))
            checkers = None
        return Boot(index=number, reboot=reboot, cmdline=cmdline, initrd=initrd,
                    plugins=own_plugins,
                    before=tuple(before), steps=tuple(steps), expect=tuple(expect),
                    checkers=checkers, loc=loc)

    # steps --------------------------------------------------------------------------------
    def steps(self, node: dict, key: str, boot: int, plugins: tuple[PluginRef, ...], *,
              machine_only: bool = False, first: bool = False) -> list[Step]:
        d = self.d
        raw = node.get(key)
        if raw is None:
            return []
        if not isinstance(raw, list):
            d.error(d.value_loc(node, key), f"{key}: expected a list of steps")
            return []
        if len(raw) > MAX_STEPS:
            d.error(d.value_loc(node, key), f"{key}: {len(raw):,} steps: at most {MAX_STEPS:,} "
                                            "per boot (the limit)")
            return []
        ctx = StepContext(cpus=self.cpus, ram=self.ram,
                          boot_plugins=frozenset(p.name for p in plugins),
                          scenario_plugins=frozenset(self.plugin_names))
        out: list[Step] = []
        ender: Step | None = None
        for i, item in enumerate(raw):
            step = self.step(raw, i, boot, ctx)
            if step is None:
                continue
            if machine_only and step.kind not in MACHINE_STEPS:
                d.error(step.loc, f"'{step.kind}' cannot run in 'before': the machine is "
                                  f"restarting (only {', '.join(MACHINE_STEPS)} can)")
                continue
            if machine_only and first and isinstance(step, CorruptStep) and step.reservation:
                d.error(step.loc, "corrupt: 'reservation' in the first boot's 'before': there "
                                  "is no earlier boot whose reservation it could mean")
            if ender is not None:
                d.error(step.loc, f"this step never runs: the {ender.kind} at "
                                  f"{_loc_str(ender.loc)} ends the boot")
            if step.ends_boot and ender is None:
                ender = step
            out.append(step)
        return out

    def step(self, seq: list, index: int, boot: int, ctx: StepContext) -> Step | None:
        d = self.d
        item = seq[index]
        loc = d.item_loc(seq, index)
        siblings: dict = {}
        container: Any = None
        if isinstance(item, str):
            name, value = item, None
        elif isinstance(item, dict) and item:
            names = [k for k in item if k in STEP_TYPES]
            if len(names) > 1:
                d.error(loc, f"one step per list item: found {', '.join(names)} (start each "
                             "with '- ')")
                return None
            if not names:
                first_key = next(iter(item))
                if first_key in SUBJECTS:
                    d.error(d.key_loc(item, first_key), f"'{first_key}' is an expectation: "
                            "check it in an 'expect' step (- expect: {...}) or the boot's "
                            "'expect' list")
                else:
                    _unknown(d, item, str(first_key), "step", STEP_TYPES)
                return None
            name = names[0]
            value = item[name]
            loc = d.key_loc(item, name)
            siblings = {k: v for k, v in item.items() if k != name}
            container = item
        else:
            d.error(loc, "a step is a mapping such as {printk: TEXT} or a step name, got "
                         + _describe_value(_plain(item)))
            return None
        if name not in STEP_TYPES:
            shown = name if len(name) <= 60 else name[:57] + "..."
            d.error(loc, f"unknown step '{shown}'{did_you_mean(name, STEP_TYPES)} "
                         f"(expected one of: {', '.join(STEP_TYPES)})")
            return None
        cls = STEP_TYPES[name]
        if cls is ExpectStep:
            return self.expect_step(container, name, value, siblings, loc)
        field_names = [f.name for f in attrs.fields(cls) if f.name != "loc"]
        payload: dict[str, object] = {}
        payload_node: object = container
        if value is None:
            pass
        elif isinstance(value, dict):
            payload_node = value
            for k in value:
                if k not in field_names:
                    _unknown(d, value, str(k), "field", field_names, f"{name}: ")
            payload.update({k: v for k, v in _plain(value).items() if k in field_names})
        elif isinstance(value, list):
            d.error(d.value_loc(container, name), f"{name}: expected "
                    + ("a value or " if cls.shorthand else "") + "a mapping of fields ("
                    + ", ".join(field_names) + "), got a list")
            return None
        else:
            if cls.shorthand is None:
                d.error(d.value_loc(container, name), f"{name}: expected a mapping of fields "
                        f"({', '.join(field_names)})")
                return None
            payload.update(cls.from_shorthand(_plain(value)))
        if siblings:
            if isinstance(value, dict):
                for k in siblings:
                    d.error(d.key_loc(container, k), f"{name}: '{k}' is beside a mapping of "
                                                     "fields; move it inside")
            else:
                for k, v in siblings.items():
                    if k not in field_names:
                        _unknown(d, container, str(k), "field", field_names, f"{name}: ")
                    else:
                        payload[k] = _plain(v)
        words_only: list[bool] = []
        step = _structure(d, payload, cls, payload_node, loc, f"{name}: ", words_only)
        if step is None:
            if words_only and all(words_only):  # only unknown words: the values still count
                for _, message in _value_problems(cls, payload):
                    d.error(loc, f"{name}: {message}")
            return None
        with attrs.validators.disabled():  # a bad value is reported, and the step kept
            step = attrs.evolve(step, loc=loc)
        for message in step.check(ctx):
            d.error(loc, message)
        for _, message in field_problems(step):
            d.error(loc, f"{name}: {message}")
        return step

    def expect_step(self, container: Any, name: str, value: object, siblings: dict,
                    loc: Loc) -> Step | None:
        d = self.d
        for k in siblings:
            d.error(d.key_loc(container, k), f"expect: unexpected key '{k}' beside the step "
                                             "(indent it under 'expect')")
        if isinstance(value, dict):
            exps = self.expectations({"expect": [value]}, "expect", real=(container, name))
        else:
            exps = self.expectations(container if container is not None else {}, name)
        if not exps:
            if value is None:
                d.error(loc, "expect: expected a list of expectations")
            return None
        return ExpectStep(expectations=tuple(exps), loc=loc)

    # the verdict ---------------------------------------------------------------------------
    def verdict(self, node: dict, boots: int) -> Verdict | None:
        d = self.d
        if "verdict" not in node:
            return None
        raw = node["verdict"]
        at = d.key_loc(node, "verdict")
        if not isinstance(raw, dict):
            d.error(d.value_loc(node, "verdict"), "verdict: expected a mapping {question, "
                    "answer, why, observe, assumes}, got " + _describe_value(_plain(raw)))
            return None
        for key in raw:
            if key not in VERDICT_KEYS:
                _unknown(d, raw, str(key), "verdict key", VERDICT_KEYS, "verdict: ")
        texts: dict[str, str] = {}
        for key in ("question", "why"):
            value = raw.get(key)
            if value is None:
                d.error(at, f"verdict: '{key}' is required: {VERDICT_KEYS[key]}")
            elif not isinstance(value, str) or not value.strip():
                d.error(d.value_loc(raw, key), f"verdict.{key}: expected a non-empty string, "
                                               f"got {_describe_value(_plain(value))}")
            else:
                texts[key] = " ".join(value.split())
        answer = raw.get("answer")
        if answer is None:
            d.error(at, f"verdict: 'answer' is required: {', '.join(ANSWERS)}")
        elif answer not in ANSWERS:
            d.error(d.value_loc(raw, "answer"), "verdict.answer: "
                    + (f"'{answer[:60]}'" if isinstance(answer, str) else
                       _describe_value(_plain(answer)))
                    + f" is not one of {', '.join(ANSWERS)}"
                    + (did_you_mean(answer, ANSWERS) if isinstance(answer, str) else ""))
            answer = None
        assumes = raw.get("assumes", [])
        if isinstance(assumes, str):
            assumes = [assumes]
        if not isinstance(assumes, list) or not all(isinstance(a, str) and a.strip()
                                                    for a in assumes):
            d.error(d.value_loc(raw, "assumes"), "verdict.assumes: expected a list of "
                                                 "non-empty strings (the assumptions)")
            assumes = []
        boot = raw.get("boot")
        if boot is not None and (isinstance(boot, bool) or not isinstance(boot, int)
                                 or not 1 <= boot <= max(boots, 1)):
            d.error(d.value_loc(raw, "boot"), f"verdict.boot: expected a boot number, 1 to "
                    f"{max(boots, 1)}, got {_describe_value(_plain(boot))}")
            boot = None
        observe: list[Expectation] = []
        if "observe" not in raw:
            d.error(at, "verdict: 'observe' is required: the expectation the answer follows "
                        "from")
        else:
            value = raw["observe"]
            if isinstance(value, dict):
                observe = self.expectations({"observe": [value]}, "observe",
                                            real=(raw, "observe"))
            else:
                observe = self.expectations(raw, "observe")
                if value is None or (isinstance(value, list) and not value):
                    d.error(d.value_loc(raw, "observe"), "verdict.observe: expected an "
                                                         "expectation or a list of them")
        if len(texts) < 2 or answer is None or not observe:
            return None
        return Verdict(question=texts["question"], answer=answer, why=texts["why"],
                       observe=tuple(observe), assumes=tuple(" ".join(a.split())
                                                             for a in assumes),
                       boot=boot, loc=at)

    # expectations --------------------------------------------------------------------------
    def expectations(self, node: dict, key: str,
                     real: tuple[object, str] | None = None) -> list[Expectation]:
        d = self.d
        raw = node.get(key)
        if raw is None:
            return []
        if real is not None:  # a single mapping given to an expect step
            container, name = real
            items = [(raw[0], d.value_loc(container, name))]
        elif isinstance(raw, list):
            items = [(item, d.item_loc(raw, i)) for i, item in enumerate(raw)]
        else:
            d.error(d.value_loc(node, key), f"{key}: expected a list of expectations")
            return []
        out = []
        for item, loc in items:
            exp = self.expectation(item, loc)
            if exp is not None:
                out.append(exp)
        return out

    def expectation(self, item: object, loc: Loc) -> Expectation | None:
        d = self.d
        if not isinstance(item, dict) or not item:
            d.error(loc, "an expectation is a mapping such as {dmesg: {contains: TEXT}}, got "
                         + _describe_value(_plain(item)))
            return None
        subjects = [k for k in item if k in SUBJECTS]
        if len(subjects) > 1:
            d.error(loc, f"one subject per expectation: found {', '.join(subjects)} (start "
                         "each with '- ')")
            return None
        if not subjects:
            for k in item:
                if k not in MATCHERS:
                    _unknown(d, item, str(k), "expectation subject", SUBJECTS)
                    return None
            d.error(loc, "expectation without a subject: say what to check ("
                         + ", ".join(SUBJECTS) + ")")
            return None
        subject = subjects[0]
        spec = SUBJECTS[subject]
        loc = d.key_loc(item, subject)
        value = item[subject]
        matcher_node: dict = {k: v for k, v in item.items() if k != subject}
        if spec.values != "text":
            return self.scalar_expectation(item, subject, value, matcher_node, loc)
        holder: object = item
        target: object = None
        target_key = spec.target
        if isinstance(value, dict):
            if matcher_node:
                for k in matcher_node:
                    d.error(d.key_loc(item, k), f"{subject}: '{k}' is beside a mapping of "
                                                "matchers; move it inside")
                return None
            matcher_node = dict(value)
            holder = value
            if target_key and target_key in value:
                target = value[target_key]
                del matcher_node[target_key]
        elif value is None:
            pass
        elif isinstance(value, str) and target_key:
            target = value
        else:
            d.error(d.value_loc(item, subject), f"{subject}: expected "
                    + (f"a {target_key} or " if target_key else "") + "a mapping of matchers, got "
                    + _describe_value(_plain(value)))
            return None
        if spec.target_required and not isinstance(target, str):
            d.error(loc, f"{subject}: expected a {target_key}, e.g. {spec.example}")
            return None
        if target_key and not spec.target_required:
            target = "any" if target is None else str(target)
        if isinstance(target, str):
            problem = target_problem(subject, target)
            if problem is not None:
                if spec.target_required:
                    d.error(d.value_loc(item, subject), problem)
                else:
                    d.error(loc, problem)
                    return None
        matchers = []
        for k, v in matcher_node.items():
            mloc = d.key_loc(holder, k)
            if k not in MATCHERS:
                _unknown(d, holder, str(k), "matcher", MATCHERS)
                continue
            m = self.matcher(subject, str(k), _plain(v), mloc)
            if m is not None:
                matchers.append(m)
        if not matcher_node:
            d.error(loc, f"{subject}: nothing to check; add a matcher ("
                         + ", ".join(MATCHERS) + ")")
        return Expectation(subject=subject, target=target if isinstance(target, str) else None,
                           matchers=tuple(matchers), loc=loc)

    def scalar_expectation(self, item: dict, subject: str, value: object, rest: dict,
                           loc: Loc) -> Expectation | None:
        """``- panicked: true``, ``- outcome: halt``: one value, compared with ``equals``."""
        d = self.d
        if SUBJECTS[subject].values == "bool":
            if not isinstance(value, bool):
                d.error(d.value_loc(item, subject), f"{subject}: expected true or false, got "
                                                    + _describe_value(_plain(value)))
                return None
            if rest:
                d.error(loc, f"{subject}: takes only true or false")
                return None
        elif value not in OUTCOMES:
            d.error(d.value_loc(item, subject), f"{subject}: expected one of "
                    f"{', '.join(OUTCOMES)}, got {_describe_value(_plain(value))}")
            return None
        return Expectation(subject=subject, matchers=(Matcher(kind="equals", value=value,
                                                              loc=loc),), loc=loc)

    def matcher(self, subject: str, kind: str, value: object, loc: Loc) -> Matcher | None:
        if kind not in SUBJECTS[subject].matchers:
            self.d.error(loc, f"{kind}: only a file can be checked for existence, not {subject}"
                         if kind == "exists" else f"{kind}: does not apply to {subject}")
            return None
        parsed = _MATCHER_VALUES[MATCHERS[kind].values](self, kind, value, loc)
        return None if parsed is None else Matcher(kind=kind, value=parsed, loc=loc)

    def _strings(self, kind: str, value: object, loc: Loc) -> list[str] | None:
        if isinstance(value, str):
            return [value]
        if isinstance(value, list) and value and all(isinstance(x, str) for x in value):
            return list(value)
        self.d.error(loc, f"{kind}: expected a string or a non-empty list of strings, got "
                          f"{_describe_value(value)}")
        return None

    def _patterns(self, kind: str, value: object, loc: Loc) -> list[str] | None:
        patterns = self._strings(kind, value, loc)
        for pattern in patterns or ():
            if not self._regex_ok(kind, pattern, loc):
                return None
        return patterns

    def _regex_ok(self, what: str, pattern: str, loc: Loc) -> bool:
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                re.compile(pattern, re.MULTILINE)
        except (re.error, RecursionError, OverflowError) as exc:
            self.d.error(loc, f"{what}: bad regular expression {model.quoted(pattern)}: {exc}")
            return False
        for w in caught:
            # e.g. "Possible set difference": a character class Python will read another way
            # (escape the '-', '&', '~', '|' or '[' to keep today's meaning)
            self.d.error(loc, f"{what}: ambiguous regular expression {model.quoted(pattern)}: "
                              f"{w.message} (escape the character to mean it literally)")
            return False
        return True

    def _string(self, kind: str, value: object, loc: Loc) -> str | None:
        if isinstance(value, str):
            return value
        self.d.error(loc, f"{kind}: expected a string, got {_describe_value(value)}")
        return None

    def _bool(self, kind: str, value: object, loc: Loc) -> bool | None:
        if isinstance(value, bool):
            return value
        self.d.error(loc, f"{kind}: expected true or false, got {_describe_value(value)}")
        return None

    def _bounds(self, kind: str, value: object, loc: Loc) -> dict[str, object] | None:
        d = self.d
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                d.error(loc, f"{kind}: expected a non-negative integer")
                return None
            return {"equals": value}
        if not isinstance(value, dict):
            d.error(loc, f"{kind}: expected an integer or a mapping, got {_describe_value(value)}")
            return None
        allowed = ["equals", "min", "max"] + (["text", "regex"] if MATCHERS[kind].occurrences
                                              else [])
        spec: dict[str, object] = {}
        for k, v in value.items():
            if k not in allowed:
                d.error(loc, f"{kind}: unknown key '{k[:60]}'{did_you_mean(k, allowed)} "
                             f"(expected {', '.join(allowed)})")
                return None
            if k in ("text", "regex"):
                if not isinstance(v, str):
                    d.error(loc, f"{kind}.{k}: expected a string, got {_describe_value(v)}")
                    return None
                if k == "regex" and not self._regex_ok(f"{kind}.regex", v, loc):
                    return None
            elif isinstance(v, bool) or not isinstance(v, int) or v < 0:
                d.error(loc, f"{kind}.{k}: expected a non-negative integer, got "
                             f"{_describe_value(v)}")
                return None
            spec[k] = v
        if "text" in spec and "regex" in spec:
            d.error(loc, f"{kind}: give 'text' or 'regex', not both")
            return None
        if not any(k in spec for k in ("equals", "min", "max")):
            d.error(loc, f"{kind}: give equals, min or max")
            return None
        if "equals" in spec and ("min" in spec or "max" in spec):
            d.error(loc, f"{kind}: give equals, or min/max, not both")
            return None
        return spec


_MATCHER_VALUES: dict[str, Callable[[_Loader, str, object, Loc], object]] = {
    "strings": _Loader._strings, "patterns": _Loader._patterns, "string": _Loader._string,
    "bool": _Loader._bool, "bounds": _Loader._bounds,
}
assert set(_MATCHER_VALUES) == set(typing.get_args(typing.get_type_hints(
    model.MatcherSpec)["values"]))


# -- limits before and while parsing ------------------------------------------------------

class _TooBig(Exception):
    """A limit of the YAML itself, found while parsing: stops the load at once."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(str(problem))
        self.problem = problem


def _prescan(text: str, file: str) -> list[Problem]:
    """Problems that must stop a file before ruamel reads it: size, characters, flow depth."""
    if len(text) > MAX_FILE_BYTES:
        return [Problem(Loc(file, 0, 0), f"larger than {MAX_FILE_BYTES >> 10} KiB (the limit "
                                         "for a scenario file)")]
    problems = []
    for m in _CONTROL.finditer(text):
        line, col = _line_col(text, m.start())
        code = ord(m.group())
        problems.append(Problem(Loc(file, line, col), (
            f"control character U+{code:04X} is not allowed in a YAML file (inside double "
            f"quotes, write it as \\x{code:02x} if it is meant)") if code < 0x100 else
            f"character U+{code:04X} is not allowed in a YAML file"))
        if len(problems) >= 10:
            break
    if problems:
        return problems
    # ruamel's scanner reads a run of opening brackets ahead in quadratic time, so flow
    # nesting is bounded on the text (outside quotes and comments) before it sees it.
    if text.count("[") + text.count("{") > MAX_NESTING:
        at = _flow_too_deep(text)
        if at is not None:
            line, col = _line_col(text, at)
            return [Problem(Loc(file, line, col), f"nested more than {MAX_NESTING} levels deep "
                                                  "(the limit)")]
    return []


def _line_col(text: str, offset: int) -> tuple[int, int]:
    return text.count("\n", 0, offset) + 1, offset - (text.rfind("\n", 0, offset) + 1) + 1


_FLOW_TOKEN = re.compile(r"""'(?:[^']|'')*'?|"(?:[^"\\]|\\.)*"?|(?:^|(?<=\s))#[^\n]*|[\[{\]}]""",
                         re.MULTILINE)


def _flow_too_deep(text: str) -> int | None:
    """The offset of the first bracket nested deeper than MAX_NESTING, if any."""
    depth = 0
    for m in _FLOW_TOKEN.finditer(text):
        c = m.group()
        if c in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return m.start()
        elif c in "]}":
            depth = max(depth - 1, 0)
    return None


def _checking_parser(file: str) -> type:
    """ruamel's round-trip parser, checking each event as the composer takes it.

    It bounds the nesting depth, the nodes once aliases are expanded, and the digits of an
    integer (Python refuses to convert 4,300 and more) in the same pass that builds the
    document: a limit stops the load at the event that crossed it, located.
    """
    from ruamel.yaml.events import (
        AliasEvent, CollectionEndEvent, CollectionStartEvent, DocumentStartEvent,
        MappingStartEvent, ScalarEvent,
    )
    from ruamel.yaml.parser import RoundTripParser

    class CheckingParser(RoundTripParser):
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.ksim_stack: list[list[Any]] = []  # the open collections
            self.ksim_sizes: dict[str, int] = {}
            self.ksim_total = 0

        def get_event(self) -> Any:
            event = super().get_event()
            self.ksim_check(event)
            return event

        def ksim_stop(self, event: Any, message: str) -> None:
            mark = event.start_mark
            raise _TooBig(Problem(Loc(file, mark.line + 1, mark.column + 1), message))

        def ksim_check(self, event: Any) -> None:
            stack = self.ksim_stack
            if isinstance(event, DocumentStartEvent):
                self.ksim_total = 0
                return
            key = bool(stack) and stack[-1][2] and stack[-1][3]  # this node is a mapping key
            if isinstance(event, CollectionStartEvent):
                if len(stack) >= MAX_NESTING:
                    self.ksim_stop(event, f"nested more than {MAX_NESTING} levels deep (the "
                                          "limit)")
                if key:
                    self.ksim_stop(event, "a key is a plain value, not a mapping or a list")
                # [nodes so far, anchor, is a mapping, expecting its next key]
                stack.append([1, event.anchor, isinstance(event, MappingStartEvent), True])
                size = 1
            elif isinstance(event, CollectionEndEvent):
                count, anchor, _, _ = stack.pop()
                if anchor is not None:
                    self.ksim_sizes[anchor] = count
                if stack:
                    stack[-1][0] += count
                    stack[-1][3] = not stack[-1][3]
                return  # its nodes were counted as they came
            elif isinstance(event, ScalarEvent):
                size = 1
                if event.anchor is not None:
                    self.ksim_sizes[event.anchor] = 1
                value = event.value
                if event.style is None and event.tag is None and len(value) > MAX_INT_DIGITS \
                        and _YAML_INT.fullmatch(value) and any(c.isdigit() for c in value):
                    self.ksim_stop(event, f"an integer of {len(value):,} characters: an integer "
                                          f"here is at most {MAX_INT:,} (a 64-bit word, the "
                                          "limit)")
            elif isinstance(event, AliasEvent):
                size = self.ksim_sizes.get(event.anchor, 1)
                if key and size > 1:
                    self.ksim_stop(event, "a key is a plain value, not a mapping or a list")
            else:
                return
            if stack and not isinstance(event, CollectionStartEvent):
                stack[-1][0] += size
                stack[-1][3] = not stack[-1][3]
            self.ksim_total += size
            if self.ksim_total > MAX_NODES:
                self.ksim_stop(event, f"more than {MAX_NODES:,} YAML nodes once aliases are "
                                      "expanded (the limit)")

    return CheckingParser


# -- entry points ------------------------------------------------------------------------------

def _yaml(file: str = "<scenario>") -> Any:
    from ruamel.yaml import YAML
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    yaml.Parser = _checking_parser(file)
    return yaml


def load_text(text: str, file: str = "<scenario>", base_dir: Path | None = None, *,
              ram_files_anywhere: bool = False) -> list[Scenario]:
    """Every scenario in ``text`` (one per YAML document); raises :class:`ScenarioInvalid`."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    d = _Doc(file)
    problems = _prescan(text, file)
    if problems:
        raise ScenarioInvalid(problems)
    try:
        docs = list(_yaml(file).load_all(text))
    except _TooBig as exc:
        raise ScenarioInvalid([exc.problem]) from None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = d.loc(mark.line, mark.column) if mark else Loc(file, 1, 1)
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context_mark is not None \
                and exc.context_mark is not mark:
            message = f"{message} ({exc.context} at line {exc.context_mark.line + 1})"
        message = message.replace("found duplicate key", "duplicate key")
        raise ScenarioInvalid([Problem(loc, f"invalid YAML: {message}")]) from None
    except (YAMLError, ValueError, TypeError, RecursionError) as exc:
        # ValueError: a value ruamel cannot convert; TypeError: an unhashable key it let by
        raise ScenarioInvalid([Problem(Loc(file, 1, 1), f"invalid YAML: {str(exc)[:200]}")]) \
            from None
    loader = _Loader(d, base_dir or Path(file).resolve().parent, ram_files_anywhere)
    scenarios = []
    docs = [doc for doc in docs if doc is not None]
    if not docs:
        raise ScenarioInvalid([Problem(Loc(file, 1, 1), "no scenario in this file")])
    names: dict[str, Loc] = {}
    try:
        for doc in docs:
            sc = loader.scenario(doc, Loc(file, 1, 1))
            if sc is not None:
                if sc.name in names:
                    d.error(sc.loc, f"two scenarios named '{sc.name}' in this file (the other "
                                    f"at {_loc_str(names[sc.name])})")
                names[sc.name] = sc.loc
                scenarios.append(sc)
    except RecursionError:  # the prescan bounds nesting; this is the last line of defence
        raise ScenarioInvalid([Problem(Loc(file, 1, 1), "nested too deeply")]) from None
    if d.problems:
        raise ScenarioInvalid(sorted(d.problems, key=lambda p: (p.loc.line, p.loc.col)))
    return scenarios


def read_scenario_file(path: Path) -> str:
    """The text of scenario file ``path``, read bounded; :class:`ScenarioInvalid` if it is not one.

    A file that is not named like a scenario is not read at all (``ksim run /etc/shadow``), a
    file that is not a regular file is not opened for reading (``/dev/zero``, a FIFO), and no
    more than :data:`MAX_FILE_BYTES` are read.
    """
    where = Loc(str(path), 0, 0)
    if path.suffix not in SCENARIO_SUFFIXES:
        raise ScenarioInvalid([Problem(where, "not a scenario file: its name does not end in "
                                              ".yaml or .yml")])
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ScenarioInvalid([Problem(where, f"cannot read: {exc.strerror}")]) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ScenarioInvalid([Problem(where, "not a scenario file: not a regular file")])
        with os.fdopen(fd, "rb", closefd=False) as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise ScenarioInvalid([Problem(where, f"cannot read: {exc.strerror}")]) from None
    finally:
        os.close(fd)
    if len(data) > MAX_FILE_BYTES:
        raise ScenarioInvalid([Problem(where, f"larger than {MAX_FILE_BYTES >> 10} KiB (the "
                                              "limit for a scenario file)")])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ScenarioInvalid([Problem(Loc(str(path), line, col),
                                       "not UTF-8 text: a scenario file is UTF-8")]) from None


def load_file(path: str | Path, *, ram_files_anywhere: bool = False) -> list[Scenario]:
    path = Path(path)
    text = read_scenario_file(path)
    return load_text(text, str(path), path.resolve().parent,
                     ram_files_anywhere=ram_files_anywhere)


def find_files(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Scenario files under ``paths`` (files as given, folders recursively, sorted)."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            yield from sorted(f for f in path.rglob("*") if f.suffix in SCENARIO_SUFFIXES
                              and f.is_file() and not any(part.startswith(".")
                                                          for part in f.relative_to(path).parts))
        else:
            yield path


def load_paths(paths: Iterable[str | Path], *,
               ram_files_anywhere: bool = False) -> list[Scenario]:
    """Load every scenario under ``paths``; all problems of all files in one exception."""
    problems: list[Problem] = []
    out: list[Scenario] = []
    for file in find_files(paths):
        if not file.exists() and not file.is_symlink():
            problems.append(Problem(Loc(str(file), 0, 0), "no such file or folder"))
            continue
        try:
            out.extend(load_file(file, ram_files_anywhere=ram_files_anywhere))
        except ScenarioInvalid as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioInvalid(problems)
    return out

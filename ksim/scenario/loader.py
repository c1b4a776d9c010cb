"""Loading scenarios: YAML with positions → validated :mod:`ksim.scenario.model` objects.

Three passes, and every problem of every pass is collected, so one run reports them all as
``FILE:LINE:COL: message`` (nothing runs while any is left):

1. **YAML**, with ruamel.yaml's round-trip loader: its nodes carry the line and column of each
   key and value, and it rejects duplicate keys (PyYAML's ``safe_load`` keeps neither).
2. **Shape**: known top-level keys, step names and expectation subjects and matchers, each
   unknown word with a did-you-mean hint.  Step names are checked *before* structuring:
   structuring a misspelt step would only say "required field missing".
3. **Types and meaning**: each step's fields are structured into its attrs class by cattrs
   (strict: ``"2"`` is not an integer, ``1`` is not a string), then checked for what types
   cannot say (a size, a log level, an errno name, a regex, a plugin that exists, a step
   after a panic that can never run).
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.strategies import configure_union_passthrough

from ksim.scenario.model import (
    CHAINS, LEVELS, MACHINE_STEPS, MATCHERS, NOTIFY_RETURNS, OUTCOMES, REBOOT_KINDS,
    REBOOT_MODES, REPORT_KINDS, STEP_TYPES, SUBJECTS, Boot, CorruptStep, ExpectStep,
    Expectation, InsmodStep, Loc, MachineSpec, Matcher, NotifierStep, PanicStep, PluginRef,
    IrqStep, PrintkStep, RmmodStep, Scenario, SleepStep, SpawnStep, Step, SysRebootStep,
)

SCENARIO_KEYS = {
    "name": "a short title (required)",
    "description": "what the scenario shows, and its verdict",
    "machine": "{ram, cpus, ram_file, numa}",
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
    "plugins": "this boot's plugins, instead of the scenario's",
    "before": "machine steps (corrupt) done while the machine restarts, before this boot",
    "steps": "what the shell does once the kernel is up",
    "expect": "expectations checked once the steps are done, on the state the boot left",
    "checkers": "watch the steps with lockdep-lite and the data-race detector (default: when "
                "the boot has spawn or irq steps)",
}
MACHINE_KEYS = {f.name for f in attrs.fields(MachineSpec)}
ERRNO_NAMES: dict[str, int] = {}
SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s)?\s*$")
SEED_RANGE_RE = re.compile(r"^\s*(\d+)\s*\.\.\s*(\d+)\s*$")
STRATEGY_RE = re.compile(r"^(random|rr|pct(:\d+)?)$")
PRIORITY_RE = re.compile(r"^\s*(INT_MIN|INT_MAX)\s*(?:([+-])\s*(\d+))?\s*$")
INT_MIN, INT_MAX = -(1 << 31), (1 << 31) - 1


@attrs.frozen
class Problem:
    loc: Loc
    message: str

    def __str__(self) -> str:
        if self.loc.line <= 0:
            return f"{self.loc.file}: {self.message}"
        return f"{self.loc}: {self.message}"


class ScenarioInvalid(Exception):
    """One or more problems in scenario files; nothing may run."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


# -- cattrs: strict primitives -------------------------------------------------------------

class _StrictTypeError(TypeError):
    pass


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


def _converter() -> cattrs.Converter:
    conv = cattrs.Converter(detailed_validation=True, forbid_extra_keys=True)
    for t in (int, float, str, bool):
        conv.register_structure_hook(t, _strict(t))
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
    return _TYPE_WORDS.get(t, getattr(t, "__name__", str(t)))


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


def _plain(node: object) -> object:
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


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _unknown(d: _Doc, node: dict, key: str, what: str, known: Iterable[str],
             prefix: str = "") -> None:
    known = list(known)
    d.error(d.key_loc(node, key), f"{prefix}unknown {what} '{key}'{did_you_mean(key, known)} "
                                  f"(expected one of: {', '.join(known)})")


# -- structuring helpers -----------------------------------------------------------------------

def _structure(d: _Doc, payload: dict[str, object], cls: type, node: object, at: Loc,
               prefix: str = "") -> Any:
    """cattrs structuring of ``payload`` into ``cls``; errors become located problems."""
    try:
        return CONVERTER.structure(payload, cls)
    except Exception as exc:  # cattrs' ClassValidationError (an ExceptionGroup)
        def fmt(e: BaseException, t: object) -> str:
            if isinstance(e, _StrictTypeError):
                return str(e)
            if isinstance(e, KeyError):
                return "required field missing"
            if isinstance(e, cattrs.ForbiddenExtraKeysError):
                return "unknown field(s): " + ", ".join(sorted(e.extra_fields))
            return f"expected {_type_words(t)}"

        for message in cattrs.transform_error(exc, path="$", format_exception=fmt):
            text, _, path = message.rpartition(" @ ")
            parts = _parse_path(path)
            loc = at
            value: object = payload
            target = node
            for i, part in enumerate(parts):
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
            from ksim.plugins import discover
            cls._cache[path] = dict(discover(path))
        return cls._cache[path]


def _loc_str(loc: Loc) -> str:
    return f"{loc.line}:{loc.col}"


class _Loader:
    def __init__(self, d: _Doc, base_dir: Path) -> None:
        self.d = d
        self.base_dir = base_dir
        self.plugin_names: set[str] = set()
        self.cpus = 1

    # top level ----------------------------------------------------------------------------
    def scenario(self, node: object, doc_loc: Loc) -> Scenario | None:
        d = self.d
        if not isinstance(node, dict):
            d.error(d.node_loc(node, doc_loc),
                    "a scenario is a mapping with at least 'name' and 'boots'")
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
        machine = self.machine(node)
        seeds = self.seeds(node)
        plugin_path = self.plugin_path(node)
        plugins = self.plugins(node, "plugins", plugin_path) if "plugins" in node else ()
        strategy = self.strategy(node)
        timeout = node.get("timeout", 3600.0)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout <= 0:
            d.error(d.value_loc(node, "timeout"), "timeout: expected a positive number of "
                                                  "virtual seconds")
            timeout = 3600.0
        boots: list[Boot] = []
        raw_boots = node.get("boots")
        if raw_boots is None:
            d.error(start, "'boots' is required: a list of boots")
        elif not isinstance(raw_boots, list) or not raw_boots:
            d.error(d.value_loc(node, "boots"), "boots: expected a non-empty list of boots")
        else:
            for i, raw in enumerate(raw_boots):
                boot = self.boot(raw_boots, i, plugins, plugin_path)
                if boot is not None:
                    boots.append(boot)
        return Scenario(name=name.strip(), description=description.strip(), machine=machine,
                        seeds=seeds, plugins=plugins, plugin_path=plugin_path,
                        boots=tuple(boots), strategy=strategy, timeout=float(timeout),
                        file=d.file, loc=start)

    def machine(self, node: dict) -> MachineSpec:
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
        payload = {k: v for k, v in _plain(raw).items() if k in MACHINE_KEYS}  # type: ignore
        if isinstance(payload.get("ram"), int) and not isinstance(payload.get("ram"), bool):
            payload["ram"] = str(payload["ram"])
        from ksim.memory import PAGE_SIZE
        from ksim.units import parse_size
        ram = payload.get("ram")
        if isinstance(ram, str):
            try:
                size = parse_size(ram)
                if size <= 0 or size % PAGE_SIZE:
                    raise ValueError(f"invalid size {ram!r}: RAM must be a positive multiple "
                                     f"of {PAGE_SIZE}")
                if size < 8 << 20:
                    raise ValueError(f"invalid size {ram!r}: the kernel image alone needs "
                                     "4M; give the machine at least 8M")
            except ValueError as exc:
                d.error(d.value_loc(raw, "ram"), f"machine.ram: {exc}")
        spec = _structure(d, payload, MachineSpec, raw, d.value_loc(node, "machine"),
                          "machine.")
        if spec is None:
            return MachineSpec()
        if spec.cpus < 1:
            d.error(d.value_loc(raw, "cpus"), "machine.cpus: a machine needs at least one CPU")
        self.cpus = max(spec.cpus, 1)
        return spec

    def strategy(self, node: dict) -> str:
        d = self.d
        raw = node.get("strategy", "random")
        expected = "expected random, pct, pct:DEPTH (DEPTH >= 1) or rr"
        if not isinstance(raw, str):
            message = f"{expected}, got {_describe_value(_plain(raw))}"
        elif not STRATEGY_RE.match(raw):
            message = f"unknown strategy '{raw}'{did_you_mean(raw, ('random', 'pct', 'rr'))} " \
                      f"({expected})"
        else:
            from ksim.strategy import make_strategy
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
            if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
                d.error(d.value_loc(node, "seed"), "seed: expected a non-negative integer, got "
                                                   + _describe_value(_plain(seed)))
                return (0,)
            return (int(seed),)
        if "seeds" in node:
            raw = node["seeds"]
            if isinstance(raw, str):
                m = SEED_RANGE_RE.match(raw)
                if m and int(m.group(1)) <= int(m.group(2)):
                    return tuple(range(int(m.group(1)), int(m.group(2)) + 1))
                d.error(d.value_loc(node, "seeds"),
                        f"seeds: expected a list of integers or \"FIRST..LAST\", got {raw!r}")
                return (0,)
            if not isinstance(raw, list) or not raw:
                d.error(d.value_loc(node, "seeds"), "seeds: expected a non-empty list of "
                                                    "integers or \"FIRST..LAST\"")
                return (0,)
            out = []
            for i, s in enumerate(raw):
                if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                    d.error(d.item_loc(raw, i), "seeds: expected a non-negative integer, got "
                                                + _describe_value(_plain(s)))
                elif int(s) in out:
                    d.error(d.item_loc(raw, i), f"seeds: {s} is listed twice")
                else:
                    out.append(int(s))
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
            folder = (self.base_dir / p).resolve()
            if not folder.is_dir():
                loc = d.item_loc(raw, i) if isinstance(raw, list) else d.value_loc(
                    node, "plugin_path")
                d.error(loc, f"plugin_path: '{p}' is not a folder (relative to {self.base_dir})")
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
                    if k not in ("name", "builtin"):
                        _unknown(d, item, str(k), "plugin key", ("name", "builtin"))
                payload = {k: v for k, v in _plain(item).items()
                           if k in ("name", "builtin")}
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
                d.error(loc, f"unknown plugin '{ref.name}'{did_you_mean(ref.name, available)} "
                             f"(available: {known})")
                continue
            if any(r.name == ref.name for r in out):
                d.error(loc, f"plugin '{ref.name}' is listed twice")
                continue
            try:
                from ksim.plugins import load
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
        plugins = default_plugins
        own_plugins = None
        if "plugins" in node:
            own_plugins = self.plugins(node, "plugins", plugin_path)
            plugins = own_plugins
        before = self.steps(node, "before", number, plugins, machine_only=True, first=index == 0)
        steps = self.steps(node, "steps", number, plugins)
        expect = self.expectations(node, "expect", f"boot {number}")
        checkers = node.get("checkers")
        if checkers is not None and not isinstance(checkers, bool):
            d.error(d.value_loc(node, "checkers"), "checkers: expected true or false, got "
                                                   + _describe_value(_plain(checkers)))
            checkers = None
        return Boot(index=number, reboot=reboot, cmdline=cmdline, plugins=own_plugins,
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
        out: list[Step] = []
        ender: Step | None = None
        for i, item in enumerate(raw):
            step = self.step(raw, i, boot, plugins)
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
            if isinstance(step, (PanicStep, SysRebootStep)) and ender is None:
                ender = step
            out.append(step)
        return out

    def step(self, seq: list, index: int, boot: int,
             plugins: tuple[PluginRef, ...]) -> Step | None:
        d = self.d
        item = seq[index]
        loc = d.item_loc(seq, index)
        if isinstance(item, str):
            name, value, siblings, container = item, None, {}, None
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
            d.error(loc, f"unknown step '{name}'{did_you_mean(name, STEP_TYPES)} "
                         f"(expected one of: {', '.join(STEP_TYPES)})")
            return None
        cls = STEP_TYPES[name]
        if cls is ExpectStep:
            if siblings:
                for k in siblings:
                    d.error(d.key_loc(container, k), f"expect: unexpected key '{k}' beside "
                                                     "the step (indent it under 'expect')")
            if isinstance(value, dict):
                exps = self.expectations({"expect": [value]}, "expect", f"boot {boot}",
                                         real=(container, name))
            else:
                exps = self.expectations(container if container is not None else {},
                                         name, f"boot {boot}")
            if not exps:
                if value is None:
                    d.error(loc, "expect: expected a list of expectations")
                return None
            return ExpectStep(expectations=tuple(exps), loc=loc)
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
            payload.update({k: v for k, v in _plain(value).items()
                            if k in field_names})
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
        step = _structure(d, payload, cls, payload_node, loc, f"{name}: ")
        if step is None:
            return None
        step = attrs.evolve(step, loc=loc)
        self.check_step(step, plugins)
        return step

    def _level_ok(self, level: object, step: Step, what: str = "level") -> None:
        if level is None:
            return
        if isinstance(level, int):
            if not 0 <= level <= 7:
                self.d.error(step.loc, f"{step.kind}: {what} {level} is outside 0..7")
            return
        key = str(level).lower().removeprefix("kern_")
        if key == "warning":
            key = "warn"
        if key not in LEVELS and not (key.isdigit() and 0 <= int(key) <= 7):
            self.d.error(step.loc, f"{step.kind}: unknown {what} '{level}'"
                         f"{did_you_mean(key, LEVELS)} (expected {', '.join(LEVELS)} or 0-7)")

    def _errno_ok(self, name: str | None, step: Step) -> None:
        if name is None:
            return
        from ksim import errno as errno_mod
        if not ERRNO_NAMES:
            ERRNO_NAMES.update({v: k for k, v in errno_mod.errorcode.items()})
        key = name.upper().lstrip("-")
        if key not in ERRNO_NAMES:
            self.d.error(step.loc, f"{step.kind}: unknown errno '{name}'"
                         f"{did_you_mean(key, ERRNO_NAMES)} (known: {', '.join(ERRNO_NAMES)})")

    def check_step(self, step: Step, plugins: tuple[PluginRef, ...]) -> None:
        d = self.d
        kind = step.kind
        if isinstance(step, (PrintkStep, SpawnStep, IrqStep)):
            self._level_ok(step.level, step)
            if step.count < 0:
                d.error(step.loc, f"{kind}: count must be >= 0")
        if isinstance(step, (SpawnStep, IrqStep)):
            if isinstance(step.cpu, str) and step.cpu != "any":
                d.error(step.loc, f"{kind}: cpu is 'any' or a CPU number, got '{step.cpu}'")
            elif isinstance(step.cpu, int) and not 0 <= step.cpu < self.cpus:
                d.error(step.loc, f"{kind}: cpu {step.cpu} does not exist (the machine has "
                                  f"{self.cpus})")
        if isinstance(step, SpawnStep):
            if step.threads < 1:
                d.error(step.loc, "spawn: threads must be >= 1")
            if step.interval < 0:
                d.error(step.loc, "spawn: interval must be >= 0")
        elif isinstance(step, IrqStep):
            if step.every < 1:
                d.error(step.loc, "irq: every must be >= 1 (preemption points per interrupt)")
        elif isinstance(step, (InsmodStep, RmmodStep)):
            self._errno_ok(step.errno, step)
            names = {p.name for p in plugins}
            if step.name not in names:
                d.error(step.loc, f"{kind} {step.name}: '{step.name}' is not among this boot's "
                                  "plugins" + (" (list it with builtin: false to load it with "
                                               "insmod)" if kind == "insmod" else ""))
        elif step.kind in ("write", "cat"):
            self._errno_ok(step.errno, step)  # type: ignore[attr-defined]
            if not step.path.startswith("/"):  # type: ignore[attr-defined]
                d.error(step.loc, f"{kind}: the path must be absolute, got "
                                  f"'{step.path}'")  # type: ignore[attr-defined]
        elif isinstance(step, CorruptStep):
            if (step.address is None) == (step.reservation is None):
                d.error(step.loc, "corrupt: give exactly one of 'address' and 'reservation'")
            given = [k for k in ("bytes", "fill", "flips") if getattr(step, k) is not None]
            if len(given) != 1:
                d.error(step.loc, "corrupt: give exactly one of 'bytes', 'fill' and 'flips'")
            if step.bytes is not None:
                try:
                    data = corrupt_bytes(step.bytes)
                    if not data:
                        raise ValueError("no bytes given")
                except ValueError as exc:
                    d.error(step.loc, f"corrupt: bytes: {exc}")
            if step.fill is not None and not 0 <= step.fill <= 255:
                d.error(step.loc, "corrupt: fill must be a byte, 0..255")
            if step.fill is not None and step.length is None:
                d.error(step.loc, "corrupt: fill needs a length")
            if step.flips is not None and step.flips < 1:
                d.error(step.loc, "corrupt: flips must be >= 1")
            if step.flips is not None and step.reservation is None and step.length is None:
                d.error(step.loc, "corrupt: flips at an address need a length")
            if step.length is not None and step.length < 1:
                d.error(step.loc, "corrupt: length must be >= 1")
            if step.offset < 0 or (step.address is not None and step.address < 0):
                d.error(step.loc, "corrupt: addresses and offsets are not negative")
            if step.reservation is not None and step.reservation not in self.plugin_names:
                d.error(step.loc, f"corrupt: reservation '{step.reservation}': no plugin of "
                        "that name in this scenario" + did_you_mean(step.reservation,
                                                                   self.plugin_names))
        elif isinstance(step, SleepStep):
            try:
                parse_duration(step.duration)
            except ValueError as exc:
                d.error(step.loc, f"sleep: {exc}")
        elif isinstance(step, NotifierStep):
            if step.chain not in CHAINS:
                d.error(step.loc, f"notifier: chain '{step.chain}' is not one of "
                        f"{', '.join(CHAINS)}{did_you_mean(step.chain, CHAINS)}")
            if step.returns not in NOTIFY_RETURNS:
                d.error(step.loc, f"notifier: returns '{step.returns}' is not one of "
                        f"{', '.join(NOTIFY_RETURNS)}{did_you_mean(step.returns, NOTIFY_RETURNS)}")
            try:
                parse_priority(step.priority)
            except ValueError as exc:
                d.error(step.loc, f"notifier: priority: {exc}")
            self._level_ok(step.level, step)
        elif isinstance(step, SysRebootStep):
            if step.mode not in REBOOT_MODES:
                d.error(step.loc, f"sys_reboot: mode '{step.mode}' is not one of "
                        f"{', '.join(REBOOT_MODES)}{did_you_mean(step.mode, REBOOT_MODES)}")

    # expectations --------------------------------------------------------------------------
    def expectations(self, node: dict, key: str, where: str,
                     real: tuple[object, str] | None = None) -> list[Expectation]:
        d = self.d
        raw = node.get(key)
        if raw is None:
            return []
        if real is not None:  # a single mapping given to an expect step
            container, name = real
            items = [(raw[0], d.value_loc(container, name), container, name)]
        elif isinstance(raw, list):
            items = [(item, d.item_loc(raw, i), raw, i) for i, item in enumerate(raw)]
        else:
            d.error(d.value_loc(node, key), f"{key}: expected a list of expectations")
            return []
        out = []
        for item, loc, _parent, _k in items:
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
        loc = d.key_loc(item, subject)
        value = item[subject]
        matcher_node: dict = {k: v for k, v in item.items() if k != subject}
        holder: object = item
        target: str | None = None
        if subject in ("panicked", "rebooted"):
            if not isinstance(value, bool):
                d.error(d.value_loc(item, subject), f"{subject}: expected true or false, got "
                                                    + _describe_value(_plain(value)))
                return None
            if matcher_node:
                d.error(loc, f"{subject}: takes only true or false")
                return None
            return Expectation(subject=subject, matchers=(Matcher(kind="equals", value=value,
                                                                  loc=loc),), loc=loc)
        if subject == "outcome":
            if value not in OUTCOMES:
                d.error(d.value_loc(item, subject), f"outcome: expected one of "
                        f"{', '.join(OUTCOMES)}, got {_describe_value(_plain(value))}")
                return None
            return Expectation(subject=subject, matchers=(Matcher(kind="equals", value=value,
                                                                  loc=loc),), loc=loc)
        target_key = {"file": "path", "console": "name", "reports": "kind"}.get(subject)
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
        if subject in ("file", "console") and not isinstance(target, str):
            d.error(loc, f"{subject}: expected a {target_key}, e.g. "
                    + ("'- file: /proc/memconsole'" if subject == "file" else "'- console: ttyS0'"))
            return None
        if subject == "file" and not target.startswith("/"):  # type: ignore[union-attr]
            d.error(d.value_loc(item, subject), f"file: the path must be absolute, got '{target}'")
        if subject == "reports":
            target = target or "any"
            hint = did_you_mean(str(target), REPORT_KINDS)
            if target not in REPORT_KINDS and (hint or not re.fullmatch(r"[a-z][a-z0-9_-]*",
                                                                       str(target))):
                d.error(loc, f"reports: unknown kind '{target}'{hint} (known: "
                             f"{', '.join(REPORT_KINDS)})")
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
        return Expectation(subject=subject, target=target, matchers=tuple(matchers), loc=loc)

    def matcher(self, subject: str, kind: str, value: object, loc: Loc) -> Matcher | None:
        d = self.d

        def strings(v: object, allow_single: bool = True) -> list[str] | None:
            if isinstance(v, str) and allow_single:
                return [v]
            if isinstance(v, list) and v and all(isinstance(x, str) for x in v):
                return list(v)
            d.error(loc, f"{kind}: expected " + ("a string or " if allow_single else "")
                         + f"a non-empty list of strings, got {_describe_value(v)}")
            return None

        if kind == "exists":
            if subject != "file":
                d.error(loc, f"exists: only a file can be checked for existence, not {subject}")
                return None
            if not isinstance(value, bool):
                d.error(loc, f"exists: expected true or false, got {_describe_value(value)}")
                return None
            return Matcher(kind=kind, value=value, loc=loc)
        if kind in ("contains", "not_contains", "lines_in_order"):
            v = strings(value)
            return None if v is None else Matcher(kind=kind, value=v, loc=loc)
        if kind in ("matches", "not_matches"):
            v = strings(value)
            if v is None:
                return None
            for pattern in v:
                try:
                    re.compile(pattern, re.MULTILINE)
                except re.error as exc:
                    d.error(loc, f"{kind}: bad regular expression {pattern!r}: {exc}")
                    return None
            return Matcher(kind=kind, value=v, loc=loc)
        if kind == "equals":
            if not isinstance(value, str):
                d.error(loc, f"equals: expected a string, got {_describe_value(value)}")
                return None
            return Matcher(kind=kind, value=value, loc=loc)
        if kind in ("count", "length"):
            return self.bounds(kind, value, loc)
        raise AssertionError(kind)

    def bounds(self, kind: str, value: object, loc: Loc) -> Matcher | None:
        d = self.d
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 0:
                d.error(loc, f"{kind}: expected a non-negative integer")
                return None
            return Matcher(kind=kind, value={"equals": value}, loc=loc)
        if not isinstance(value, dict):
            d.error(loc, f"{kind}: expected an integer or a mapping, got {_describe_value(value)}")
            return None
        allowed = ["equals", "min", "max"] + (["text", "regex"] if kind == "count" else [])
        spec: dict[str, object] = {}
        for k, v in value.items():
            if k not in allowed:
                d.error(loc, f"{kind}: unknown key '{k}'{did_you_mean(k, allowed)} (expected "
                             f"{', '.join(allowed)})")
                return None
            if k in ("text", "regex"):
                if not isinstance(v, str):
                    d.error(loc, f"{kind}.{k}: expected a string, got {_describe_value(v)}")
                    return None
                if k == "regex":
                    try:
                        re.compile(v, re.MULTILINE)
                    except re.error as exc:
                        d.error(loc, f"{kind}.regex: bad regular expression {v!r}: {exc}")
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
        return Matcher(kind=kind, value=spec, loc=loc)


# -- helpers shared with the runner ---------------------------------------------------------

def parse_duration(value: float | str) -> float:
    """Seconds of virtual time: a number, or ``"500ms"``, ``"2s"``, ``"10us"``, ``"5ns"``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise ValueError("a duration is not negative")
        return float(value)
    m = SIZE_RE.match(str(value))
    if not m:
        raise ValueError(f"invalid duration {value!r}: expected seconds or a number with ns, "
                         "us, ms or s")
    scale = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, None: 1.0}[m.group(2)]
    return float(m.group(1)) * scale


def parse_priority(value: int | str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        if not INT_MIN <= value <= INT_MAX:
            raise ValueError(f"{value} does not fit an int")
        return value
    m = PRIORITY_RE.match(str(value))
    if not m:
        raise ValueError(f"expected an integer, INT_MIN or INT_MAX (optionally +N/-N), got "
                         f"{value!r}")
    base = INT_MIN if m.group(1) == "INT_MIN" else INT_MAX
    delta = int(m.group(3) or 0) * (-1 if m.group(2) == "-" else 1)
    result = base + delta
    if not INT_MIN <= result <= INT_MAX:
        raise ValueError(f"{value} does not fit an int")
    return result


def corrupt_bytes(value: str | list[int]) -> bytes:
    """``"de ad be ef"`` / ``"deadbeef"`` / ``[222, 173]`` → bytes."""
    if isinstance(value, list):
        if not all(isinstance(b, int) and 0 <= b <= 255 for b in value):
            raise ValueError("each byte must be an integer 0..255")
        return bytes(value)
    text = re.sub(r"[\s:,_]", "", value).removeprefix("0x")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ValueError(f"expected hex bytes such as 'de ad be ef', got {value!r}") from None


# -- entry points ------------------------------------------------------------------------------

def _yaml() -> Any:
    from ruamel.yaml import YAML
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    return yaml


def load_text(text: str, file: str = "<scenario>", base_dir: Path | None = None) -> list[Scenario]:
    """Every scenario in ``text`` (one per YAML document); raises :class:`ScenarioInvalid`."""
    from ruamel.yaml.error import MarkedYAMLError, YAMLError
    d = _Doc(file)
    try:
        docs = list(_yaml().load_all(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        loc = d.loc(mark.line, mark.column) if mark else Loc(file, 1, 1)
        message = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem and exc.context_mark is not None \
                and exc.context_mark is not mark:
            message = f"{message} ({exc.context} at line {exc.context_mark.line + 1})"
        message = message.replace("found duplicate key", "duplicate key")
        raise ScenarioInvalid([Problem(loc, f"invalid YAML: {message}")]) from None
    except YAMLError as exc:
        raise ScenarioInvalid([Problem(Loc(file, 1, 1), f"invalid YAML: {exc}")]) from None
    loader = _Loader(d, base_dir or Path(file).resolve().parent)
    scenarios = []
    docs = [doc for doc in docs if doc is not None]
    if not docs:
        raise ScenarioInvalid([Problem(Loc(file, 1, 1), "no scenario in this file")])
    names: dict[str, Loc] = {}
    for doc in docs:
        sc = loader.scenario(doc, Loc(file, 1, 1))
        if sc is not None:
            if sc.name in names:
                d.error(sc.loc, f"two scenarios named '{sc.name}' in this file (the other at "
                                f"{_loc_str(names[sc.name])})")
            names[sc.name] = sc.loc
            scenarios.append(sc)
    if d.problems:
        raise ScenarioInvalid(sorted(d.problems, key=lambda p: (p.loc.line, p.loc.col)))
    return scenarios


def load_file(path: str | Path) -> list[Scenario]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioInvalid([Problem(Loc(str(path), 1, 1), f"cannot read: {exc}")]) from None
    return load_text(text, str(path), path.resolve().parent)


SCENARIO_SUFFIXES = (".yaml", ".yml")


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


def load_paths(paths: Iterable[str | Path]) -> list[Scenario]:
    """Load every scenario under ``paths``; all problems of all files in one exception."""
    problems: list[Problem] = []
    out: list[Scenario] = []
    for file in find_files(paths):
        if not file.exists():
            problems.append(Problem(Loc(str(file), 0, 0), "no such file or folder"))
            continue
        try:
            out.extend(load_file(file))
        except ScenarioInvalid as exc:
            problems.extend(exc.problems)
    if problems:
        raise ScenarioInvalid(problems)
    return out

"""``ksim schema``: a JSON Schema (draft 2020-12) of the scenario format.

Generated from :mod:`ksim.scenario.model`, the classes the loader structures into, so the
schema cannot drift from what ``ksim run`` accepts.  Editors use it for validation and
completion, e.g. with the YAML language server: ``# yaml-language-server: $schema=ksim.json``.
The schema checks shape and types; ``ksim run`` also checks meaning (a plugin that exists, a
log level, a regex, a step after a panic).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs

from ksim.scenario import model
from ksim.scenario.loader import BOOT_KEYS, SCENARIO_KEYS
from ksim.scenario.model import (
    CHAINS, LEVELS, MATCHERS, NOTIFY_RETURNS, OUTCOMES, REBOOT_KINDS, REBOOT_MODES,
    REPORT_KINDS, STEP_TYPES, SUBJECTS,
)

SCHEMA_ID = "https://ksim.invalid/schemas/scenario.json"
UNAVAILABLE_STEPS: tuple[str, ...] = ()  # steps the loader knows but rejects
ENUMS = {  # (step, field) -> allowed strings
    ("notifier", "chain"): CHAINS,
    ("notifier", "returns"): NOTIFY_RETURNS,
    ("sys_reboot", "mode"): REBOOT_MODES,
}


def _type_schema(t: Any) -> dict:
    origin = typing.get_origin(t)
    args = typing.get_args(t)
    if t is type(None):
        return {"type": "null"}
    if t is str:
        return {"type": "string"}
    if t is bool:
        return {"type": "boolean"}
    if t is int:
        return {"type": "integer"}
    if t is float:
        return {"type": "number"}
    if origin in (types.UnionType, typing.Union):
        return {"anyOf": [_type_schema(a) for a in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple):
        return {"type": "array", "items": _type_schema(args[0])}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1])}
    raise TypeError(f"no schema for {t!r}")


def _level_schema() -> dict:
    return {"anyOf": [{"enum": list(LEVELS) + ["warning"]},
                      {"type": "integer", "minimum": 0, "maximum": 7}],
            "description": "a log level: a name or 0-7"}


def _fields(cls: type) -> tuple[dict, list[str]]:
    hints = typing.get_type_hints(cls, vars(model))
    props: dict[str, dict] = {}
    required = []
    for f in attrs.fields(cls):
        if f.name == "loc":
            continue
        if f.name == "level":
            props[f.name] = _level_schema()
        elif (getattr(cls, "kind", None), f.name) in ENUMS:
            props[f.name] = {"enum": list(ENUMS[(cls.kind, f.name)])}  # type: ignore[attr-defined]
        else:
            props[f.name] = _type_schema(hints[f.name])
        if f.default is attrs.NOTHING:
            required.append(f.name)
    return props, required


def _step_schema(name: str, cls: type) -> dict:
    if name == "expect":
        payload: dict = {"anyOf": [{"$ref": "#/$defs/expectation"},
                                   {"type": "array", "items": {"$ref": "#/$defs/expectation"}}]}
        return {"type": "object", "properties": {name: payload}, "required": [name],
                "additionalProperties": False, "description": cls.doc}  # type: ignore[attr-defined]
    props, required = _fields(cls)
    obj: dict = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        obj["required"] = required
    alternatives = [obj]
    shorthand = cls.shorthand  # type: ignore[attr-defined]
    if shorthand is not None:
        alternatives.append(props[shorthand] if "anyOf" in props[shorthand]
                            or "enum" in props[shorthand] else dict(props[shorthand]))
    if not required:
        alternatives.append({"type": "null"})
    payload = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    # the sibling form: `- write: /proc/x` with `value: 1` beside it
    siblings = {k: v for k, v in props.items() if k != shorthand} if shorthand else {}
    return {"type": "object", "properties": {name: payload, **siblings}, "required": [name],
            "additionalProperties": False, "description": cls.doc}  # type: ignore[attr-defined]


def _strings() -> dict:
    return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                           "minItems": 1}]}


def _bounds(with_pattern: bool) -> dict:
    props = {"equals": {"type": "integer", "minimum": 0},
             "min": {"type": "integer", "minimum": 0},
             "max": {"type": "integer", "minimum": 0}}
    if with_pattern:
        props |= {"text": {"type": "string"}, "regex": {"type": "string"}}
    return {"anyOf": [{"type": "integer", "minimum": 0},
                      {"type": "object", "properties": props, "additionalProperties": False}]}


def _matchers() -> dict:
    m = {
        "contains": _strings(), "not_contains": _strings(), "matches": _strings(),
        "not_matches": _strings(), "equals": {"type": "string"},
        "lines_in_order": _strings(), "count": _bounds(True), "length": _bounds(False),
        "exists": {"type": "boolean"},
    }
    for key, text in MATCHERS.items():
        m[key] = dict(m[key], description=text)
    return m


def _expectation_schema() -> dict:
    matchers = _matchers()
    text_matchers = {k: v for k, v in matchers.items() if k != "exists"}
    alternatives = []
    for subject, target_key, extra in (("file", "path", {"exists": matchers["exists"]}),
                                       ("console", "name", {}), ("reports", "kind", {}),
                                       ("dmesg", None, {})):
        inner_props = dict(text_matchers, **extra)
        target_schema: dict = {"type": "string"}
        if subject == "reports":
            target_schema = {"type": "string", "pattern": "^[a-z][a-z0-9_-]*$",
                             "examples": list(REPORT_KINDS)}
        mapping = {"type": "object", "additionalProperties": False,
                   "properties": dict(inner_props, **({target_key: target_schema}
                                                       if target_key else {}))}
        value = {"anyOf": [target_schema, mapping]} if target_key else \
            {"anyOf": [mapping, {"type": "null"}]}
        alternatives.append({"type": "object", "required": [subject],
                             "additionalProperties": False,
                             "description": SUBJECTS[subject],
                             "properties": dict(inner_props, **{subject: value})})
    for subject in ("panicked", "rebooted"):
        alternatives.append({"type": "object", "required": [subject],
                             "additionalProperties": False, "description": SUBJECTS[subject],
                             "properties": {subject: {"type": "boolean"}}})
    alternatives.append({"type": "object", "required": ["outcome"],
                         "additionalProperties": False, "description": SUBJECTS["outcome"],
                         "properties": {"outcome": {"enum": list(OUTCOMES)}}})
    return {"oneOf": alternatives}


def schema() -> dict:
    steps = {name: _step_schema(name, cls) for name, cls in STEP_TYPES.items()
             if name not in UNAVAILABLE_STEPS}
    plugin = {"anyOf": [{"type": "string"},
                        {"type": "object", "required": ["name"], "additionalProperties": False,
                         "properties": {"name": {"type": "string"},
                                        "builtin": {"type": "boolean"}}}]}
    boot_props = {
        "reboot": {"enum": list(REBOOT_KINDS)},
        "cmdline": {"type": "string"},
        "plugins": {"type": "array", "items": {"$ref": "#/$defs/plugin"}},
        "before": {"type": "array", "items": {"$ref": "#/$defs/step_corrupt"}},
        "steps": {"type": "array", "items": {"$ref": "#/$defs/any_step"}},
        "expect": {"type": "array", "items": {"$ref": "#/$defs/expectation"}},
        "checkers": {"type": "boolean"},
    }
    for key, text in BOOT_KEYS.items():
        boot_props[key] = dict(boot_props[key], description=text)
    machine_props, _ = _fields(model.MachineSpec)
    machine_props["ram"] = {"type": "string", "pattern": r"^\s*\d+\s*[KkMmGgTt]?[Bb]?\s*$",
                            "description": "RAM size, e.g. 64M"}
    top = {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "machine": {"type": "object", "properties": machine_props,
                    "additionalProperties": False},
        "seed": {"type": "integer", "minimum": 0},
        "seeds": {"anyOf": [{"type": "array", "items": {"type": "integer", "minimum": 0},
                             "minItems": 1},
                            {"type": "string", "pattern": r"^\s*\d+\s*\.\.\s*\d+\s*$"}]},
        "plugins": {"type": "array", "items": {"$ref": "#/$defs/plugin"}},
        "plugin_path": {"anyOf": [{"type": "string"},
                                  {"type": "array", "items": {"type": "string"}}]},
        "boots": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/boot"}},
        "strategy": {"type": "string", "pattern": r"^(random|rr|pct(:[1-9]\d*)?)$"},
        "timeout": {"type": "number", "exclusiveMinimum": 0},
    }
    for key, text in SCENARIO_KEYS.items():
        top[key] = dict(top[key], description=text)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        "title": "ksim scenario",
        "description": "A ksim scenario: a machine, its boots, their steps and expectations "
                       "(docs/scenarios.md).",
        "type": "object",
        "required": ["name", "boots"],
        "additionalProperties": False,
        "properties": top,
        "$defs": {
            "plugin": plugin,
            "boot": {"type": "object", "additionalProperties": False, "properties": boot_props},
            **{f"step_{name}": step for name, step in steps.items()},
            "any_step": {"oneOf": [{"$ref": f"#/$defs/step_{name}"} for name in steps]
                         + [{"enum": [n for n, c in STEP_TYPES.items()
                                      if n not in UNAVAILABLE_STEPS and not
                                      any(f.default is attrs.NOTHING
                                          for f in attrs.fields(c) if f.name != "loc")
                                      and n != "expect"]}]},
            "expectation": _expectation_schema(),
        },
    }

"""``ksim schema``: a JSON Schema (draft-07) of the scenario format.

Generated from :mod:`ksim.scenario.model`, the classes the loader structures into: a field's
type and default, its ``Literal`` words (an ``enum``), its validators' bounds (``minimum``,
``maximum``) or their own schema (a log level, an errno name, a duration), the subjects and
matchers of expectations, the verdict and the limits.  So the schema cannot drift from what
``ksim run`` accepts.  Draft-07 is what the YAML language server (VS Code, Neovim...)
implements; the library's files name the committed copy, ``scenarios/ksim-scenario.schema.json``,
in their ``# yaml-language-server: $schema=...`` first line.  The schema checks shape, types
and bounds; ``ksim run`` also checks meaning (a plugin that exists, a CPU the machine has, a
regex, a step after a panic).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs

from ksim.scenario import model
from ksim.scenario.loader import BOOT_KEYS, PLUGIN_KEYS, SCENARIO_KEYS
from ksim.scenario.model import (
    MATCHERS, MAX_BOOTS, MAX_SECONDS, MAX_SEED, MAX_SEEDS, MAX_STEPS, REPORT_KINDS, STEP_TYPES,
    SUBJECTS, VERDICT_KEYS, Check, Range,
)

SCHEMA_ID = "https://ksim.invalid/schemas/scenario.json"
SCHEMA_FILE = "ksim-scenario.schema.json"  # the committed copy, in scenarios/
MODELINE = f"# yaml-language-server: $schema={SCHEMA_FILE}"


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


def _bounded(schema: dict, r: Range) -> dict:
    """``schema`` with the range's bounds on its numeric alternatives."""
    if "anyOf" in schema:
        return {"anyOf": [_bounded(s, r) for s in schema["anyOf"]]}
    if schema.get("type") in ("integer", "number"):
        schema = dict(schema)
        if r.min is not None:
            schema["minimum"] = r.min
        if r.max is not None:
            schema["maximum"] = r.max
    return schema


def _field_schema(f: attrs.Attribute, hint: Any) -> dict:
    schema = _type_schema(hint)
    checks = getattr(f.validator, "_validators", None) or ([f.validator] if f.validator else [])
    for v in checks:
        if isinstance(v, Check) and v.schema is not None:
            schema = dict(v.schema)
            if "null" in str(_type_schema(hint)) and f.default is None:
                schema = {"anyOf": [schema, {"type": "null"}]}
        elif isinstance(v, Range):
            schema = _bounded(schema, v)
    return schema


def _fields(cls: type) -> tuple[dict, list[str]]:
    hints = typing.get_type_hints(cls, vars(model))
    props: dict[str, dict] = {}
    required = []
    for f in attrs.fields(cls):
        if f.name == "loc":
            continue
        props[f.name] = _field_schema(f, hints[f.name])
        if f.default is attrs.NOTHING:
            required.append(f.name)
    return props, required


def _step_schema(name: str, cls: type[model.Step]) -> dict:
    if cls is model.ExpectStep:
        payload: dict = {"anyOf": [{"$ref": "#/definitions/expectation"},
                                   {"type": "array", "items": {"$ref": "#/definitions/expectation"}}]}
        return {"type": "object", "properties": {name: payload}, "required": [name],
                "additionalProperties": False, "description": cls.doc}
    props, required = _fields(cls)
    obj: dict = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        obj["required"] = required
    alternatives = [obj]
    shorthand = cls.shorthand
    if shorthand is not None:
        alternatives.append(dict(props[shorthand]))
    if not required:
        alternatives.append({"type": "null"})
    payload = alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    # the sibling form: `- write: /proc/x` with `value: 1` beside it
    siblings = {k: v for k, v in props.items() if k != shorthand} if shorthand else {}
    return {"type": "object", "properties": {name: payload, **siblings}, "required": [name],
            "additionalProperties": False, "description": cls.doc}


def _strings() -> dict:
    return {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                           "minItems": 1}]}


def _bounds(occurrences: bool) -> dict:
    props = {"equals": {"type": "integer", "minimum": 0},
             "min": {"type": "integer", "minimum": 0},
             "max": {"type": "integer", "minimum": 0}}
    if occurrences:
        props |= {"text": {"type": "string"}, "regex": {"type": "string"}}
    return {"anyOf": [{"type": "integer", "minimum": 0},
                      {"type": "object", "properties": props, "additionalProperties": False}]}


def _matcher_schema(spec: model.MatcherSpec) -> dict:
    values = {"strings": _strings, "patterns": _strings,
              "string": lambda: {"type": "string"}, "bool": lambda: {"type": "boolean"},
              "bounds": lambda: _bounds(spec.occurrences)}[spec.values]()
    return dict(values, description=spec.doc)


def _expectation_schema() -> dict:
    matchers = {name: _matcher_schema(spec) for name, spec in MATCHERS.items()}
    alternatives = []
    for subject, spec in SUBJECTS.items():
        if spec.values == "bool":
            value: dict = {"type": "boolean"}
        elif spec.values == "outcome":
            value = {"enum": list(model.OUTCOMES)}
        else:
            inner = {k: matchers[k] for k in spec.matchers}
            target_schema: dict = {"type": "string"}
            if subject == "reports":
                target_schema = {"type": "string", "pattern": "^[a-z][a-z0-9_-]*$",
                                 "examples": list(REPORT_KINDS)}
            elif subject == "file":
                target_schema = {"type": "string", "pattern": "^/"}
            mapping = {"type": "object", "additionalProperties": False,
                       "properties": dict(inner, **({spec.target: target_schema}
                                                    if spec.target else {}))}
            value = {"anyOf": [target_schema, mapping]} if spec.target else \
                {"anyOf": [mapping, {"type": "null"}]}
            alternatives.append({"type": "object", "required": [subject],
                                 "additionalProperties": False, "description": spec.doc,
                                 "properties": dict(inner, **{subject: value})})
            continue
        alternatives.append({"type": "object", "required": [subject],
                             "additionalProperties": False, "description": spec.doc,
                             "properties": {subject: value}})
    return {"oneOf": alternatives}


def _verdict_schema() -> dict:
    props: dict[str, dict] = {
        "question": {"type": "string", "minLength": 1},
        "answer": {"enum": list(model.ANSWERS)},
        "why": {"type": "string", "minLength": 1},
        "observe": {"anyOf": [{"$ref": "#/definitions/expectation"},
                              {"type": "array", "minItems": 1,
                               "items": {"$ref": "#/definitions/expectation"}}]},
        "assumes": {"anyOf": [{"type": "string", "minLength": 1},
                              {"type": "array", "items": {"type": "string", "minLength": 1}}]},
        "boot": {"type": "integer", "minimum": 1, "maximum": MAX_BOOTS},
    }
    for key, text in VERDICT_KEYS.items():
        props[key] = dict(props[key], description=text)
    return {"type": "object", "additionalProperties": False, "properties": props,
            "required": ["question", "answer", "why", "observe"]}


def schema() -> dict:
    steps = {name: _step_schema(name, cls) for name, cls in STEP_TYPES.items()}
    plugin_props = {"name": {"type": "string"}, "builtin": {"type": "boolean"}}
    assert set(plugin_props) == set(PLUGIN_KEYS)
    plugin = {"anyOf": [{"type": "string"},
                        {"type": "object", "required": ["name"], "additionalProperties": False,
                         "properties": plugin_props}]}
    machine_steps = [{"$ref": f"#/definitions/step_{n}"} for n in model.MACHINE_STEPS]
    boot_props: dict[str, dict[str, Any]] = {
        "reboot": {"enum": list(model.REBOOT_KINDS)},
        "cmdline": {"type": "string"},
        "initrd": {"type": "string", "pattern": r"^[0-9]+([KkMmGgTt]([Ii]?[Bb])?|[Bb])?$"},
        "plugins": {"type": "array", "items": {"$ref": "#/definitions/plugin"}},
        "before": {"type": "array", "maxItems": MAX_STEPS,
                   "items": machine_steps[0] if len(machine_steps) == 1 else
                   {"oneOf": machine_steps}},
        "steps": {"type": "array", "maxItems": MAX_STEPS,
                  "items": {"$ref": "#/definitions/any_step"}},
        "expect": {"type": "array", "items": {"$ref": "#/definitions/expectation"}},
        "checkers": {"type": "boolean"},
    }
    assert set(boot_props) == set(BOOT_KEYS)
    for key, text in BOOT_KEYS.items():
        boot_props[key] = dict(boot_props[key], description=text)
    machine_props, _ = _fields(model.MachineSpec)
    machine_props["ram"]["description"] = "RAM size, e.g. 64M"
    seed = {"type": "integer", "minimum": 0, "maximum": MAX_SEED}
    top: dict[str, dict[str, Any]] = {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "verdict": {"$ref": "#/definitions/verdict"},
        "machine": {"type": "object", "properties": machine_props,
                    "additionalProperties": False},
        "seed": seed,
        "seeds": {"anyOf": [{"type": "array", "items": seed, "minItems": 1,
                             "maxItems": MAX_SEEDS, "uniqueItems": True},
                            {"type": "string", "pattern": r"^\s*\d+\s*\.\.\s*\d+\s*$"}]},
        "plugins": {"type": "array", "items": {"$ref": "#/definitions/plugin"}},
        "plugin_path": {"anyOf": [{"type": "string"},
                                  {"type": "array", "items": {"type": "string"}}]},
        "boots": {"type": "array", "minItems": 1, "maxItems": MAX_BOOTS,
                  "items": {"$ref": "#/definitions/boot"}},
        "strategy": {"type": "string", "pattern": r"^(random|rr|pct(:[1-9]\d{0,3})?)$"},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
    }
    assert set(top) == set(SCENARIO_KEYS)
    for key, text in SCENARIO_KEYS.items():
        top[key] = dict(top[key], description=text)
    bare = [n for n, c in STEP_TYPES.items() if c is not model.ExpectStep and not any(
        f.default is attrs.NOTHING for f in attrs.fields(c) if f.name != "loc")]
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$id": SCHEMA_ID,
        "title": "ksim scenario",
        "description": "A ksim scenario: a machine, its boots, their steps and expectations, "
                       "and the verdict they answer (docs/scenarios.md).",
        "type": "object",
        "required": ["name", "boots"],
        "additionalProperties": False,
        "properties": top,
        "definitions": {
            "plugin": plugin,
            "boot": {"type": "object", "additionalProperties": False, "properties": boot_props},
            **{f"step_{name}": step for name, step in steps.items()},
            "any_step": {"oneOf": [{"$ref": f"#/definitions/step_{name}"} for name in steps]
                         + [{"enum": bare}]},
            "expectation": _expectation_schema(),
            "verdict": _verdict_schema(),
        },
    }

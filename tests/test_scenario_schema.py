"""``ksim schema`` against the library: every scenario validates, and the schema catches mistakes.

A small validator for the JSON Schema keywords the generated schema uses keeps the test free
of a jsonschema dependency.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from ksim.scenario.loader import SCENARIO_SUFFIXES
from ksim.scenario.schema import schema

LIBRARY = Path(__file__).resolve().parent.parent / "scenarios"
TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
         "number": (int, float)}


def errors(value: Any, node: dict, root: dict, path: str = "$") -> list[str]:
    if "$ref" in node:
        target: Any = root
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return errors(value, target, root, path)
    out: list[str] = []
    t = node.get("type")
    if t == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            return [f"{path}: not an integer"]
    elif t is not None:
        if not isinstance(value, TYPES[t]) or (t == "number" and isinstance(value, bool)):
            return [f"{path}: not {t}"]
    if "enum" in node and value not in node["enum"]:
        out.append(f"{path}: {value!r} not in enum")
    if "anyOf" in node and all(errors(value, sub, root, path) for sub in node["anyOf"]):
        out.append(f"{path}: matches none of anyOf")
    if "oneOf" in node and sum(not errors(value, s, root, path) for s in node["oneOf"]) != 1:
        out.append(f"{path}: does not match exactly one of oneOf")
    if isinstance(value, dict):
        for key in node.get("required", []):
            if key not in value:
                out.append(f"{path}: missing {key}")
        props = node.get("properties", {})
        for key, sub in value.items():
            if key in props:
                out += errors(sub, props[key], root, f"{path}.{key}")
            elif node.get("additionalProperties") is False:
                out.append(f"{path}: unexpected {key}")
            elif isinstance(node.get("additionalProperties"), dict):
                out += errors(sub, node["additionalProperties"], root, f"{path}.{key}")
    if isinstance(value, list):
        if len(value) < node.get("minItems", 0):
            out.append(f"{path}: too few items")
        for i, item in enumerate(value):
            if "items" in node:
                out += errors(item, node["items"], root, f"{path}[{i}]")
    if isinstance(value, str):
        if "pattern" in node and not re.search(node["pattern"], value):
            out.append(f"{path}: does not match {node['pattern']}")
        if len(value) < node.get("minLength", 0):
            out.append(f"{path}: too short")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in node and value < node["minimum"]:
            out.append(f"{path}: below minimum")
        if "maximum" in node and value > node["maximum"]:
            out.append(f"{path}: above maximum")
        if "exclusiveMinimum" in node and value <= node["exclusiveMinimum"]:
            out.append(f"{path}: not above exclusiveMinimum")
    return out


def documents() -> list[tuple[str, Any]]:
    yaml = YAML(typ="safe", pure=True)
    out = []
    for file in sorted(LIBRARY.rglob("*")):
        if file.suffix in SCENARIO_SUFFIXES:
            for i, doc in enumerate(yaml.load_all(file.read_text())):
                out.append((f"{file.relative_to(LIBRARY)}#{i}", doc))
    return out


DOCS = documents()


@pytest.mark.parametrize("name,doc", DOCS, ids=[name for name, _ in DOCS])
def test_every_library_scenario_validates_against_the_schema(name: str, doc: Any) -> None:
    root = schema()
    assert errors(doc, root, root) == []


def test_the_schema_rejects_what_the_loader_rejects() -> None:
    root = schema()
    bad = {"name": "x", "boots": [{"steps": [{"printf": "hi"}, {"irq": {"count": "1"}}],
                                   "expect": [{"dmesg": {"contain": "x"}}],
                                   "reboot": "tepid"}], "machin": {}}
    found = errors(bad, root, root)
    assert "$: unexpected machin" in found
    assert "$.boots[0].reboot: 'tepid' not in enum" in found
    assert "$.boots[0].steps[0]: does not match exactly one of oneOf" in found
    assert "$.boots[0].steps[1]: does not match exactly one of oneOf" in found  # "1"
    assert "$.boots[0].expect[0]: does not match exactly one of oneOf" in found


COMMITTED = LIBRARY / "ksim-scenario.schema.json"


def test_the_committed_schema_is_what_ksim_schema_prints() -> None:
    import json
    import subprocess
    import sys
    printed = subprocess.run([str(Path(sys.executable).parent / "ksim"), "schema"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    assert json.loads(printed)["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert COMMITTED.read_text() == printed, (
        "scenarios/ksim-scenario.schema.json is stale: regenerate it with "
        "'.venv/bin/ksim schema > scenarios/ksim-scenario.schema.json'")


def test_every_library_file_names_the_schema_for_the_yaml_language_server() -> None:
    for file in sorted(LIBRARY.rglob("*")):
        if file.suffix in SCENARIO_SUFFIXES:
            first = file.read_text().splitlines()[0]
            prefix = "# yaml-language-server: $schema="
            assert first.startswith(prefix), file
            assert (file.parent / first.removeprefix(prefix)).resolve() == COMMITTED, file

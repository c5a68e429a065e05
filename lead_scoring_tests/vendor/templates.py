"""Confluent's own fully managed connector templates as test data (connectinc/connect-migration-utility).

`connect_migration_utility/` holds verbatim copies of the resolved templates (provenance in its SOURCE.yaml).
A template file lists several template entries: the connector's own (`template_id` = its managed
`connector.class`) and the shared ones it inherits (`common`, `common-sink`, `kafka-topic-source`, ...); their
`config_defs` are the user-facing properties with `required`, `type`, `recommended_values`, `default_value`.
`check_against_template(config, connector_class)` lists every way a rendered config departs from them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

FOLDER = Path(__file__).parent / "connect_migration_utility"
_PLACEHOLDER = re.compile(r"\$\{[A-Z0-9_]+\}")
_SMT_KEY = re.compile(r"transforms\.([A-Za-z0-9]+)\.[a-z.]+")


@cache
def provenance() -> dict[str, Any]:
    return yaml.safe_load((FOLDER / "SOURCE.yaml").read_text())


@cache
def template_properties(connector_class: str) -> dict[str, dict[str, Any]]:
    """name -> merged config_def: the connector's own entry wins over the shared entries it inherits."""
    templates = json.loads((FOLDER / f"{connector_class}_resolved_templates.json").read_text())["templates"]
    if templates[0]["template_id"] != connector_class:
        raise ValueError(f"{connector_class}: the template file's first entry is {templates[0]['template_id']}")
    merged: dict[str, dict[str, Any]] = {}
    for template in reversed(templates):  # shared entries first, the connector's own last (it overrides)
        for definition in template.get("config_defs", []):
            merged.setdefault(definition["name"], {}).update(definition)
    return merged


@cache
def allowed_transforms(connector_class: str) -> frozenset[str]:
    return frozenset(json.loads((FOLDER / "fm_transforms_list.json").read_text())[connector_class])


def _type_problem(key: str, text: str, kind: str | None) -> str | None:
    if kind in ("INT", "LONG") and not re.fullmatch(r"-?[0-9]+", text):
        return f"{key}={text!r}: the template's type is {kind}"
    if kind == "BOOLEAN" and text not in ("true", "false"):
        return f"{key}={text!r}: the template's type is BOOLEAN (true | false)"
    return None


def check_against_template(config: Mapping[str, Any], connector_class: str) -> list[str]:
    """Problems of one connector's config (with its `name`) against Confluent's template for `connector_class`.

    Unknown keys, required keys missing, values outside `recommended_values`, values of the wrong type, SMTs
    not in Confluent's list for this connector. `${VAR}` placeholders (secrets) pass the value checks.
    """
    properties = template_properties(connector_class)
    aliases = [a for a in str(config.get("transforms", "")).split(",") if a]
    problems = []
    for key, value in config.items():
        text = str(value)
        smt = _SMT_KEY.fullmatch(key)
        if key == "transforms" or (smt and smt.group(1) in aliases):
            if smt and key == f"transforms.{smt.group(1)}.type" and text not in allowed_transforms(connector_class):
                problems.append(f"{key}={text!r}: not an SMT Confluent allows for {connector_class}")
            continue
        definition = properties.get(key)
        if definition is None:
            problems.append(f"{key}: not a property of Confluent's {connector_class} template")
            continue
        if _PLACEHOLDER.fullmatch(text):
            continue
        if key == "connector.class":
            if text != connector_class:
                problems.append(f"connector.class={text!r}: the template is {connector_class}")
            continue
        recommended = definition.get("recommended_values")
        if recommended and text not in [str(v) for v in recommended]:
            problems.append(f"{key}={text!r}: the template recommends {recommended}")
        type_problem = _type_problem(key, text, definition.get("type"))
        if type_problem:
            problems.append(type_problem)
    for key, definition in properties.items():
        if str(definition.get("required")).lower() == "true" and key not in config:  # some say "false"
            problems.append(f"{key}: required by Confluent's {connector_class} template, missing")
    return problems

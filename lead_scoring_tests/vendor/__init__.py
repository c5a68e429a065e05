"""Vendor contracts as test data: our own transcriptions of vendor property tables (URL + date read).

`load(name)` reads `<name>.yaml` beside this file; `check_options(options, table)` lists every rendered
key or value the vendor's table does not allow (unknown keys, values outside the allowed set, missing
required keys), so a test can assert the list is empty and print it when it is not.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).parent


@cache
def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((HERE / f"{name}.yaml").read_text())


def check_options(options: Mapping[str, str], table: Mapping[str, Any], *, placeholders: bool = True) -> list[str]:
    """Problems of `options` against a property table {options: {key: rule}, required: [...]}.

    A rule: `values` (allowed, compared as strings), `range` ([low, high] integer), `pattern` (regex), or
    `only_with` ({key: value} that must hold). `required_with` lists keys a grant type needs. `${VAR}` placeholders
    stand for secrets and pass any rule when `placeholders`.
    Keys matching a `patterns:` entry (e.g. `transforms\\..*`) are checked by that entry's rule.
    """
    rules: Mapping[str, Any] = table["options"]
    patterns = [(re.compile(p), r) for p, r in (table.get("patterns") or {}).items()]
    problems = []
    for key, value in options.items():
        rule = rules.get(key)
        if rule is None:
            rule = next((r for rx, r in patterns if rx.fullmatch(key)), None)
        if rule is None:
            problems.append(f"{key}: not a property of this vendor table")
            continue
        text = str(value)
        if placeholders and re.fullmatch(r"\$\{[A-Z0-9_]+\}", text):
            continue
        if "values" in rule and text not in [str(v) for v in rule["values"]]:
            problems.append(f"{key}={text!r}: allowed {rule['values']}")
        if "range" in rule:
            low, high = rule["range"]
            if not (text.lstrip("-").isdigit() and low <= int(text) <= high):
                problems.append(f"{key}={text!r}: must be an integer in [{low}, {high}]")
        if "pattern" in rule and not re.fullmatch(rule["pattern"], text):
            problems.append(f"{key}={text!r}: does not match {rule['pattern']}")
        for other, wanted in (rule.get("only_with") or {}).items():
            if str(options.get(other, (rules.get(other) or {}).get("default"))) != str(wanted):
                problems.append(f"{key}: only allowed with {other}={wanted}")
    for key in table.get("required") or ():
        if key not in options:
            problems.append(f"{key}: required, missing")
    for grant, keys in (table.get("required_with") or {}).items():
        if options.get("salesforce.grant.type") == grant:
            problems += [f"{key}: required with {grant}, missing" for key in keys if key not in options]
    return problems

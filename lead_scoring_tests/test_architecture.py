"""How the package is wired, checked: no import cycles, the layers point one way, imports at module top,
and the Dagster definitions of each profile snapshot-tested (what the UI shows is reviewed like code).

Regenerate the definitions snapshots after an intended change with
`LEAD_SCORING_UPDATE_SNAPSHOTS=1 pytest lead_scoring_tests/test_architecture.py` and review the diff.
"""

from __future__ import annotations

import ast
import json
import os
from pathlib import Path

import dagster as dg
import grimp
import pytest

from lead_scoring import definitions
from lead_scoring.settings import project_root
from lead_scoring_tests import package_map

PACKAGE = project_root() / "lead_scoring"
SNAPSHOTS = Path(__file__).parent / "snapshots"
# Infrastructure knows no domain: the stack runs whatever services the application registers.
INFRASTRUCTURE = ("lead_scoring.stack", "lead_scoring.settings", "lead_scoring.retry")
DOMAINS = (
    "lead_scoring.training",
    "lead_scoring.serving",
    "lead_scoring.streaming",
    "lead_scoring.crm",
    "lead_scoring.monitoring",
    "lead_scoring.warehouse",
    "lead_scoring.storage",
    "lead_scoring.contract",
    "lead_scoring.lifecycle",
    "lead_scoring.promotion",
    "lead_scoring.production",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph("lead_scoring")


def test_no_import_cycles_inside_lead_scoring(graph: grimp.ImportGraph) -> None:
    cycles = sorted(
        {
            tuple(sorted((m, n)))
            for m in graph.modules
            for n in graph.find_modules_directly_imported_by(m)
            if graph.chain_exists(importer=n, imported=m)
        }
    )
    assert cycles == [], f"import cycles: {cycles}"


def test_infrastructure_imports_no_domain_code(graph: grimp.ImportGraph) -> None:
    offending = []
    for module in graph.modules:
        if not module.startswith(INFRASTRUCTURE):
            continue
        for imported in graph.find_modules_directly_imported_by(module):
            if imported.startswith(DOMAINS + ("lead_scoring.cli", "lead_scoring.services")):
                offending.append(f"{module} -> {imported}")
    assert offending == []


def test_the_package_diagram_is_drawn_from_the_imports() -> None:
    """docs/architecture.md shows exactly today's package edges (redraw: LEAD_SCORING_UPDATE_SNAPSHOTS=1)."""
    text, drawn = package_map.current_doc()
    if os.environ.get("LEAD_SCORING_UPDATE_SNAPSHOTS"):
        package_map.DOC.write_text(drawn)
        text = drawn
    assert text == drawn, "docs/architecture.md's package diagram is stale: python -m lead_scoring_tests.package_map"


def test_every_package_is_in_the_layering_rules_and_the_doc() -> None:
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    ruled = {m.split(".")[1] for m in INFRASTRUCTURE + DOMAINS} | {"cli"}
    assert packages <= ruled, f"packages no layering rule covers: {sorted(packages - ruled)}"
    doc = package_map.DOC.read_text()
    assert [p for p in sorted(packages) if f"| `{p}` |" not in doc] == []


def test_only_the_application_layer_imports_the_cli(graph: grimp.ImportGraph) -> None:
    importers = {
        m for m in graph.find_modules_that_directly_import("lead_scoring.cli") if not m.startswith("lead_scoring.cli")
    }
    assert importers == set()


def test_imports_of_the_package_are_at_module_top() -> None:
    """No `import lead_scoring...` inside a function: the wiring is visible at the top of every module."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for sub in ast.walk(node):
                if isinstance(sub, ast.ImportFrom) and (sub.module or "").startswith("lead_scoring"):
                    found.append(f"{path.relative_to(project_root())}:{sub.lineno} {sub.module}")
                if isinstance(sub, ast.Import) and any(a.name.startswith("lead_scoring") for a in sub.names):
                    found.append(f"{path.relative_to(project_root())}:{sub.lineno}")
    assert found == []


MAX_CLASS_LINES = 200
MAX_MODULE_LINES = 400
LONG_ON_PURPOSE = "long on purpose"  # the words a long module's docstring gives its reason with


def test_no_class_is_over_200_lines_and_no_module_over_400_without_a_reason() -> None:
    """One concept per class and per module: a longer one is split, or says at its top why it is one piece
    ("Long on purpose: ..." in its docstring, as `streaming/render.py` does)."""
    too_long = []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        tree = ast.parse(text)
        where = path.relative_to(project_root())
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES and LONG_ON_PURPOSE not in (ast.get_docstring(tree) or "").lower():
            too_long.append(f"{where}: {lines} lines and no reason at its top")
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
                too_long.append(f"{where}:{node.lineno} class {node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert too_long == []


def _describe(defs: dg.Definitions) -> dict:
    graph = defs.resolve_asset_graph()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": sorted(node.owners),
            "materializable": node.is_materializable,
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "description": (node.description or "").strip().splitlines()[0] if node.description else "",
            "automation": node.automation_condition.get_label() if node.automation_condition else None,
            "freshness": repr(node.freshness_policy) if node.freshness_policy else None,
        }
    return {
        "assets": assets,
        "checks": sorted(f"{k.asset_key.to_user_string()}:{k.name}" for k in graph.asset_check_keys),
        "jobs": sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")),
        "schedules": sorted(f"{s.name} {s.cron_schedule}" for s in defs.schedules or []),
        "sensors": sorted(f"{s.name} {s.minimum_interval_seconds}s" for s in defs.sensors or []),
        "resources": {k: type(v).__name__ for k, v in sorted((defs.resources or {}).items())},
    }


@pytest.mark.parametrize("profile", ["local", "gcp", "cluster"])
def test_definitions_match_their_snapshot(profile: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAD_SCORING_PROFILE", profile)
    text = json.dumps(_describe(definitions.defs()), indent=1, sort_keys=True) + "\n"
    path = SNAPSHOTS / f"definitions_{profile}.json"
    if os.environ.get("LEAD_SCORING_UPDATE_SNAPSHOTS"):
        path.parent.mkdir(exist_ok=True)
        path.write_text(text)
    assert path.exists(), f"no snapshot {path}: run with LEAD_SCORING_UPDATE_SNAPSHOTS=1 once and review it"
    assert text == path.read_text(), f"the {profile} definitions changed: review, then update the snapshot"

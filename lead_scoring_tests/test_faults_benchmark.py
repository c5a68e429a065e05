"""benchmarks/faults.py: the fault table in docs/operations.md and the README's line are its results, rendered."""

from __future__ import annotations

import re
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import faults  # noqa: E402  (benchmarks/ is not a package)


def _named_results() -> Path:
    section = faults.OPERATIONS.read_text().split(faults.BEGIN, 1)[1].split(faults.END, 1)[0]
    named = re.findall(r"^\*\*`(benchmarks/results/[^`]+)`\*\*", section, flags=re.MULTILINE)
    assert len(named) == 1, "the fault section of docs/operations.md names no results file"
    return faults.ROOT / named[0]


def test_the_fault_table_and_the_readme_line_are_the_rendering_of_the_results_file() -> None:
    rendered = faults.render_docs(_named_results())
    assert rendered[faults.OPERATIONS] == faults.OPERATIONS.read_text()
    assert rendered[faults.README] == faults.README.read_text()


def test_the_results_file_records_commit_machine_and_command_and_every_fault() -> None:
    results = faults.json.loads(_named_results().read_text())
    assert re.fullmatch(r"[0-9a-f]{40}", results["commit"])
    assert results["machine"]["probe_s"] > 0 and "faults.py" in results["command"]
    assert {r["fault"] for r in results["results"]} == set(faults.FAULTS)

"""benchmarks/user_flow.py: the real leads it sends and how it judges a pattern (its figures come from a run)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from lead_scoring.contract import parse_record

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import user_flow  # noqa: E402  (benchmarks/ is not a package)


@pytest.mark.skipif(not user_flow.DATA.exists(), reason="../shared/data is not beside the clone")
def test_the_real_leads_are_new_contract_leads_without_an_outcome() -> None:
    leads = user_flow.real_leads(user_flow.DATA)
    assert len(leads) > 1000
    for record in leads[:200]:
        assert "IsConverted" not in record and record["_ObjectType"] == "Lead" and record["_EventType"] == "created"
        parsed, errors = parse_record(record)
        assert errors == [] and parsed is not None


def test_the_worst_record_of_each_second_and_the_verdicts() -> None:
    pairs = {"a": (1_000, 1_050), "b": (1_500, 1_700), "c": (2_100, 2_130), "d": (4_000, 5_500)}
    assert user_flow.worst_by_second(pairs, 1_000) == {0: 200, 1: 30, 3: 1_500}
    steady = {"pattern": "steady", "to_lead_scores": {"p99_ms": 90}, "to_crm_row": {"p99_ms": 1_200}}
    assert user_flow.verdict(steady) == {"p99_scores_ms": True, "p99_crm_ms": False}
    poll = {
        "pattern": "poll",
        "polls": [
            {"last_scored_ms": 1_500, "last_in_crm_ms": 2_500},
            {"last_scored_ms": None, "last_in_crm_ms": 2_000},
        ],
    }
    assert user_flow.verdict(poll) == {"last_scored_ms": False, "last_in_crm_ms": True}  # a poll never scored fails
    assert user_flow.verdict({"pattern": "burst", "to_lead_scores": {"n": 0}, "to_crm_row": {"n": 0}}) == {
        "p99_scores_ms": False,
        "p99_crm_ms": False,
    }


def test_the_docs_tables_are_the_rendering_of_the_results_files_they_name() -> None:
    """docs/performance.md's user-flow tables come from benchmarks/results/, never typed by hand."""
    text = user_flow.DOCS.read_text()
    section = text.split(user_flow.BEGIN, 1)[1].split(user_flow.END, 1)[0]
    named = re.findall(r"^\*\*`(benchmarks/results/[^`]+)`\*\*", section, flags=re.MULTILINE)
    assert named, "the section names no results file"
    root = user_flow.DOCS.parents[1]
    assert user_flow.render_docs([root / name for name in named]) == text

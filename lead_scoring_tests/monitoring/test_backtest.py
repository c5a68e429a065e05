"""Backtest on a real DuckDB file with synthetic ledger rows: conversion by grade, calibration, the check, and
the retraining request it triggers."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from lead_scoring.monitoring.backtest import (
    BACKTEST_CHECK,
    calibration_table,
    is_monotonic,
    lead_score_backtest,
)
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.training.grades import GradeScale
from lead_scoring.warehouse.resources import DuckDBWarehouse

SCALE = GradeScale({"A": 60, "B": 40, "C": 20})
NOW = pd.Timestamp.now(tz="UTC")


@pytest.fixture
def resources(tmp_path: Path) -> dict:
    return {
        "warehouse": DuckDBWarehouse(path=str(tmp_path / "wh.duckdb")),
        "model_store": LocalModelStore(root=str(tmp_path / "artifacts")),
    }


def leads_with_outcomes(n: int, seed: int, prefix: str = "00Q") -> pd.DataFrame:
    """Leads whose true conversion probability is known: the outcome is drawn from it."""
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.9, n)
    return pd.DataFrame(
        {"Id": [f"{prefix}{seed:02d}{i:06d}" for i in range(n)], "p": p, "converted": rng.random(n) < p}
    )


def land(
    resources: dict,
    leads: pd.DataFrame,
    version: str,
    scores: np.ndarray,
    grades: list | None,
    days_ago: float = 30.0,
    shadow: bool = False,
    with_outcomes: bool = True,
) -> None:
    """What the sink lands: the ledger rows of `version`, and each lead's outcome event in crm_leads_raw."""
    warehouse = resources["warehouse"]
    scored = NOW - pd.Timedelta(days=days_ago)
    warehouse.append(
        "lead_score_history",
        pd.DataFrame(
            {
                "Id": leads["Id"],
                "_ObjectType": "Lead",
                "Lead_Score__c": np.clip(np.round(scores), 0, 100).astype(int),
                "Lead_Grade__c": grades if grades is not None else [None] * len(leads),
                "Lead_Score_Reasons__c": "+x",
                "Lead_Score_Model__c": version,
                "source_ts": scored,
                "scored_ts": scored,
                "shadow": shadow,
                "_source": "stream",
                "_ingested_at": scored,
            }
        ),
    )
    if with_outcomes:
        warehouse.append(
            "crm_leads_raw",
            pd.DataFrame(
                {
                    "Id": leads["Id"],
                    "_ObjectType": "Lead",
                    "_EventType": "updated",
                    "LastModifiedDate": NOW - pd.Timedelta(days=1),
                    "IsConverted": leads["converted"],
                    "_source": "stream",
                    "_ingested_at": NOW - pd.Timedelta(days=1),
                }
            ),
        )


def graded(scores: np.ndarray, scale: GradeScale = SCALE) -> list[str]:
    return [scale.grade(int(s)) for s in np.clip(np.round(scores), 0, 100)]


def run(resources: dict, instance: dg.DagsterInstance | None = None, **config):
    result = dg.materialize(
        [lead_score_backtest],
        resources=resources,
        instance=instance or dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"lead_score_backtest": {"config": config}}} if config else None,
    )
    assert result.success
    [mat] = result.get_asset_materialization_events()
    [check] = result.get_asset_check_evaluations()
    return mat.materialization.metadata, check


def test_calibration_table_and_monotonicity_arithmetic():
    table, ece = calibration_table(np.array([10, 10, 90, 90]), np.array([0, 0, 1, 1]), bins=2)
    assert table[["leads", "predicted", "observed"]].values.tolist() == [[2, 0.1, 0.0], [2, 0.9, 1.0]]
    assert ece == pytest.approx(0.1)
    grades = pd.DataFrame({"grade": list("ABCD"), "leads": [50, 50, 10, 50], "conversion_rate": [0.6, 0.4, 0.5, 0.1]})
    assert is_monotonic(grades, min_grade_leads=30) is True  # C has too few leads to be compared
    assert is_monotonic(grades, min_grade_leads=5) is False
    assert is_monotonic(grades.head(1), min_grade_leads=5) is None


def test_a_calibrated_champion_with_ordered_grades_passes(resources):
    leads = leads_with_outcomes(2000, seed=1)
    scores = leads["p"].to_numpy() * 100
    land(resources, leads, "v-good", scores, graded(scores))
    metadata, check = run(resources)
    assert check.passed, check.description
    assert check.metadata["evaluated"].value is True and check.metadata["grades_in_order"].value == "yes"
    assert metadata["champion_version"].value == "v-good" and metadata["backtested_leads"].value == 2000
    rates = metadata["conversion_by_grade"].value
    assert list(rates) == ["A", "B", "C", "D"] and rates["A"] > rates["B"] > rates["C"] > rates["D"]
    assert metadata["ece"].value < 0.06
    assert metadata["calibration"].value.count("\n") == 11  # header, rule and ten deciles
    assert "data:image/png;base64," in metadata["plot"].value
    assert "| v-good | yes | 2000 |" in metadata["versions"].value


def test_grades_out_of_order_fail_the_check(resources):
    leads = leads_with_outcomes(2000, seed=2)
    scores = leads["p"].to_numpy() * 100
    land(resources, leads, "v-shuffled", scores, graded(100 - scores))  # grades upside down
    _, check = run(resources)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert "model v-shuffled: grades no longer convert in order A > B > C > D (A " in check.description
    assert "retraining_trigger_sensor requests a retraining" in check.description


def test_calibration_drift_fails_the_check_above_the_threshold(resources):
    leads = leads_with_outcomes(2000, seed=3)
    scores = leads["p"].to_numpy() * 100 + 25  # the model now overrates every lead
    land(resources, leads, "v-optimistic", scores, graded(scores))
    metadata, check = run(resources)
    assert not check.passed and "calibration drifted: ECE 0.2" in check.description
    assert "grades no longer" not in check.description
    _, lenient = run(resources, max_ece=0.5)
    assert lenient.passed


def test_rows_without_a_grade_are_graded_with_the_manifest_cutoffs(resources, tmp_path: Path):
    leads = leads_with_outcomes(1500, seed=4)
    scores = leads["p"].to_numpy() * 100
    land(resources, leads, "v-old", scores, grades=None)  # scored before the pipeline sent grades
    manifest = tmp_path / "artifacts" / "models" / "v-old" / "manifest.json"
    manifest.parent.mkdir(parents=True)
    manifest.write_text(json.dumps({"version": "v-old", "grades": {"min_score": SCALE.min_score}}))
    metadata, check = run(resources)
    assert check.passed and check.metadata["grades_in_order"].value == "yes"
    assert "| manifest cut-offs |" in metadata["versions"].value
    assert sum(1 for _ in metadata["conversion_by_grade"].value) == 4

    # a version without grades anywhere: its rows are left out of the grade table, calibration still works
    other = leads_with_outcomes(300, seed=5, prefix="00R")
    land(resources, other, "v-ungraded", other["p"].to_numpy() * 100, grades=None, days_ago=20)
    metadata, _ = run(resources)
    assert "300 rows without a grade left out" in metadata["versions"].value


def test_only_old_enough_first_champion_scores_with_an_outcome_count(resources):
    leads = leads_with_outcomes(400, seed=6)
    scores = leads["p"].to_numpy() * 100
    land(resources, leads, "v1", scores, graded(scores), days_ago=30)
    # later scores of the same leads by the same version do not count twice; shadow scores never count
    land(resources, leads, "v1", scores * 0 + 99, ["A"] * 400, days_ago=20, with_outcomes=False)
    land(resources, leads, "v-shadow", scores * 0 + 1, ["D"] * 400, days_ago=30, shadow=True, with_outcomes=False)
    # a new champion whose leads are too young for a backtest
    young = leads_with_outcomes(300, seed=7)
    land(resources, young, "v2", young["p"].to_numpy() * 100, graded(young["p"].to_numpy() * 100), days_ago=3)
    # a lead without an outcome yet
    land(
        resources,
        leads_with_outcomes(50, seed=8, prefix="00N"),
        "v1",
        np.full(50, 50.0),
        ["B"] * 50,
        with_outcomes=False,
    )
    metadata, check = run(resources)
    assert metadata["backtested_leads"].value == 400 and metadata["model_versions"].value == 1
    assert metadata["champion_version"].value == "v2"
    assert check.passed and check.metadata["evaluated"].value is False
    assert "no verdict: 0 leads of the champion" in check.description
    metadata, check = run(resources, min_age_days=2, min_leads=100)
    assert metadata["backtested_leads"].value == 700 and check.metadata["evaluated"].value is True
    assert metadata["champion_version"].value == "v2" and check.metadata["leads"].value == 300


def test_a_failed_backtest_requests_retraining_once_per_evaluation(resources):
    from lead_scoring.monitoring.resources import MonitoringSettings
    from lead_scoring.monitoring.sensors import retraining_trigger_sensor

    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor):
        context = dg.build_sensor_context(
            instance=instance,
            cursor=cursor,
            resources={"warehouse": resources["warehouse"], "monitoring": MonitoringSettings()},
        )
        return retraining_trigger_sensor(context)

    leads = leads_with_outcomes(1000, seed=9)
    scores = leads["p"].to_numpy() * 100
    land(resources, leads, "v-bad", scores, graded(100 - scores))
    run(resources, instance)
    first = tick(None)
    [request] = first.run_requests
    assert request.tags["lead_scoring/retrain_reason"] == "backtest"
    assert request.run_key.startswith("backtest-")
    again = tick(first.cursor)
    assert not again.run_requests and "backtest check already handled" in again.skip_reason.skip_message
    run(resources, instance)  # a new failed evaluation: one more request
    assert len(tick(again.cursor).run_requests) == 1
    assert BACKTEST_CHECK in {k.name for k in lead_score_backtest.check_keys}

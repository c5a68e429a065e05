"""Drift: PSI arithmetic, and the daily asset on real DuckDB + a trained model, unshifted vs shifted."""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import numpy as np
import pandas as pd
import pytest

from lead_scoring.contract import FEATURES
from lead_scoring.crm.synthetic import generate_leads
from lead_scoring.monitoring import assets as monitoring
from lead_scoring.monitoring.drift import compute_drift, numeric_buckets, psi
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.training import assets as training
from lead_scoring.training.model import LeadScorer, features_frame
from lead_scoring.warehouse.resources import DuckDBWarehouse

TRAINING = [
    training.crm_leads_raw,
    training.training_data,
    training.lead_scoring_model,
    training.model_quality_gate,
    training.model_artifact,
]


def test_psi_arithmetic():
    assert psi(np.array([0.5, 0.5]), np.array([0.5, 0.5])) == 0.0
    # hand computed: (0.7-0.5)ln(0.7/0.5) + (0.3-0.5)ln(0.3/0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.7, 0.3])) == pytest.approx(0.2 * np.log(1.4) - 0.2 * np.log(0.6))
    # an empty bucket is smoothed, not infinite
    assert 1 < psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])) < 50


def test_numeric_buckets_are_reference_deciles_with_a_missing_bucket():
    ref = pd.Series(np.arange(1000, dtype=float))
    cur = pd.Series([np.nan, -5.0, 10_000.0])
    names, ref_labels, cur_labels = numeric_buckets(ref, cur)
    assert len(names) == 11 and names[-1] == "(missing)"
    assert ref_labels.value_counts().max() == 100  # deciles
    assert list(cur_labels) == ["(missing)", names[0], names[-2]]


def test_compute_drift_flags_only_the_shifted_feature():
    ref = generate_leads(3000, seed=1)
    same = generate_leads(1500, seed=2)
    report = compute_drift(ref, same)
    assert report.table["psi"].max() < 0.1, report.table.head()
    shifted = same.assign(Time_On_Website__c=same["Time_On_Website__c"] * 5 + 300)
    report = compute_drift(ref, shifted)
    assert report.drifted(0.25) == ["Time_On_Website__c"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """A warehouse seeded from the shipped sample and a model trained on it (once for the module)."""
    root: Path = tmp_path_factory.mktemp("drift")
    resources = {
        "warehouse": DuckDBWarehouse(path=str(root / "wh.duckdb")),
        "model_store": LocalModelStore(root=str(root / "artifacts")),
    }
    result = dg.materialize(TRAINING, resources=resources, instance=dg.DagsterInstance.ephemeral())
    assert result.success
    resources["model_store"].repository().set_production(result.output_for_node("model_artifact").version)
    return resources


def _stream(resources: dict, leads: pd.DataFrame) -> None:
    """Play the warehouse sink: recent stream records and the scores the model gave them."""
    warehouse = resources["warehouse"]
    warehouse.execute("DELETE FROM crm_leads_raw WHERE _source = 'stream'")
    warehouse.execute("DELETE FROM lead_scores")
    now = pd.Timestamp.now(tz="UTC")
    warehouse.append("crm_leads_raw", leads.assign(_source="stream", _ingested_at=now, IsConverted=None))
    repo = resources["model_store"].repository()
    version = repo.production_version()
    pipeline, _ = repo.load(version)
    scores = LeadScorer(pipeline, version).score_frame(features_frame(leads))
    warehouse.append(
        "lead_scores",
        pd.DataFrame(
            {
                "Id": leads["Id"],
                "_ObjectType": leads["_ObjectType"],
                "_EventType": "updated",
                "Lead_Score__c": [s.score for s in scores],
                "Lead_Score_Reasons__c": "",
                "Lead_Score_Model__c": version,
                "source_ts": now,
                "scored_ts": now,
                "_source": "stream",
                "_ingested_at": now,
            }
        ),
    )
    # probes must be ignored: a wildly different probe lead and score
    probe = leads.head(1).assign(Id="PROBE-x-0", _source="stream", _ingested_at=now)
    warehouse.append("crm_leads_raw", probe)


def _drift(resources: dict, **config) -> tuple[dict, dg.AssetCheckEvaluation]:
    result = dg.materialize(
        [monitoring.lead_score_drift],
        resources=resources,
        instance=dg.DagsterInstance.ephemeral(),
        run_config={"ops": {"lead_score_drift": {"config": config}}} if config else None,
    )
    assert result.success
    [mat] = result.get_asset_materialization_events()
    [check] = result.get_asset_check_evaluations()
    return mat.materialization.metadata, check


def test_unshifted_recent_leads_pass(trained):
    _stream(trained, generate_leads(800, seed=99))
    metadata, check = _drift(trained)
    assert check.passed, check.description
    assert check.metadata["evaluated"].value is True
    assert metadata["recent_leads"].value == 800  # the probe is not counted
    assert metadata["recent_scores"].value == 800
    assert metadata["max_psi"].value < 0.25
    assert metadata["score_psi"].value < 0.1
    assert "data:image/png;base64," in metadata["plot"].value
    assert len(metadata["psi_table"].value.records) == len(FEATURES) + 1  # every feature + the score


def test_shifted_recent_leads_fail(trained):
    leads = generate_leads(800, seed=99)
    # the marketing mix changed: far more lead-form and chat leads, shorter visits, more working professionals
    rng = np.random.default_rng(3)
    leads.loc[rng.random(len(leads)) < 0.6, "Lead_Origin__c"] = "Lead Add Form"
    leads.loc[rng.random(len(leads)) < 0.6, "LeadSource"] = "Olark Chat"
    leads["Time_On_Website__c"] = leads["Time_On_Website__c"] * 0.2
    leads.loc[rng.random(len(leads)) < 0.5, "Occupation__c"] = "Working Professional"
    _stream(trained, leads)
    metadata, check = _drift(trained)
    assert not check.passed
    assert check.severity == dg.AssetCheckSeverity.ERROR
    drifted = metadata["drifted_features"].value.split(", ")
    assert {"Lead_Origin__c", "LeadSource", "Time_On_Website__c", "Occupation__c"} <= set(drifted)
    assert "score" in drifted  # the scores moved with the features
    # a looser threshold lets the same data pass
    _, lenient = _drift(trained, max_psi=50.0)
    assert lenient.passed


def test_too_few_recent_leads_gives_no_verdict(trained):
    _stream(trained, generate_leads(20, seed=5))
    metadata, check = _drift(trained)
    assert check.passed and check.metadata["evaluated"].value is False
    assert "no verdict" in check.description
    assert "plot" not in metadata


def _retrain_tick(resources: dict, instance: dg.DagsterInstance, cursor: str | None, min_labels: int = 500):
    from lead_scoring.monitoring.resources import MonitoringSettings
    from lead_scoring.monitoring.sensors import retraining_trigger_sensor

    context = dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        resources={
            "warehouse": resources["warehouse"],
            "monitoring": MonitoringSettings(retrain_min_new_labels=min_labels),
        },
    )
    return retraining_trigger_sensor(context)


def test_retraining_requested_once_per_failed_drift_check(trained):
    instance = dg.DagsterInstance.ephemeral()
    leads = generate_leads(300, seed=7)
    leads["Time_On_Website__c"] = leads["Time_On_Website__c"] * 0.1
    leads.loc[:, "Lead_Origin__c"] = "Lead Add Form"
    _stream(trained, leads)

    quiet = _retrain_tick(trained, instance, None)
    assert not quiet.run_requests and "0 new labelled outcomes" in quiet.skip_reason.skip_message

    failed = dg.materialize([monitoring.lead_score_drift], resources=trained, instance=instance)
    assert not failed.get_asset_check_evaluations()[0].passed
    first = _retrain_tick(trained, instance, quiet.cursor)
    [request] = first.run_requests
    assert request.tags["lead_scoring/retrain_reason"] == "drift"
    # the same failed evaluation does not request a second run
    again = _retrain_tick(trained, instance, first.cursor)
    assert not again.run_requests and "already handled" in again.skip_reason.skip_message

    # back to normal: a passing evaluation requests nothing
    _stream(trained, generate_leads(300, seed=8))
    dg.materialize([monitoring.lead_score_drift], resources=trained, instance=instance)
    calm = _retrain_tick(trained, instance, again.cursor)
    assert not calm.run_requests and "not failing" in calm.skip_reason.skip_message


def test_retraining_requested_when_enough_new_outcomes_arrived(trained):
    instance = dg.DagsterInstance.ephemeral()
    leads = generate_leads(400, seed=21)
    labelled = leads[leads["IsConverted"].notna()].head(120)
    warehouse = trained["warehouse"]
    warehouse.execute("DELETE FROM crm_leads_raw WHERE _source = 'stream'")
    now = pd.Timestamp.now(tz="UTC")
    warehouse.append("crm_leads_raw", labelled.assign(_source="stream", _ingested_at=now))
    probes = labelled.head(30).assign(Id=[f"PROBE-t-{i}" for i in range(30)], _source="stream", _ingested_at=now)
    warehouse.append("crm_leads_raw", probes)  # probes never count as outcomes

    below = _retrain_tick(trained, instance, None, min_labels=121)
    assert not below.run_requests and "120 new labelled outcomes (threshold 121)" in below.skip_reason.skip_message
    [request] = _retrain_tick(trained, instance, below.cursor, min_labels=100).run_requests
    assert request.tags["lead_scoring/retrain_reason"] == "new_labels"

    # once the training data is rebuilt, only outcomes newer than that count (120 real leads alone are too
    # few to train on, so this run keeps the seeded demo data too)
    dg.materialize(
        TRAINING[:2],
        resources=trained,
        instance=instance,
        selection=[training.training_data],
        run_config={"ops": {"training_data": {"config": {"demo_data": "include"}}}},
    )
    after = _retrain_tick(trained, instance, None, min_labels=100)
    assert not after.run_requests and "0 new labelled outcomes" in after.skip_reason.skip_message

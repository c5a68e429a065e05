"""Demo data never trains a real model: the seeded sample and streamed demo leads are marked, and once real
labelled leads exist the training data leaves them out and says which sources it used."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest

from lead_scoring.contract import validate_record
from lead_scoring.contract.samples import DEMO_ID_PREFIX, is_demo
from lead_scoring.crm.batches import Message
from lead_scoring.crm.replay import synthetic_stream
from lead_scoring.crm.sink import SinkHandler
from lead_scoring.crm.synthetic import generate_leads
from lead_scoring.lifecycle.erasure import ErasureRegister
from lead_scoring.training import assets as training
from lead_scoring.training.queries import training_data_sql
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.fixtures.kafka_fakes import acknowledged_erased_ids


@pytest.fixture
def warehouse(tmp_path: Path) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))


def _materialize(warehouse: DuckDBWarehouse, **training_config):
    run_config = {"ops": {"training_data": {"config": training_config}}} if training_config else None
    return dg.materialize(
        [training.crm_leads_raw, training.training_data],
        resources={"warehouse": warehouse},
        instance=dg.DagsterInstance.ephemeral(),
        run_config=run_config,
        raise_on_error=False,
    )


def _metadata(result) -> dict:
    [mat] = [
        e.materialization
        for e in result.get_asset_materialization_events()
        if e.materialization.asset_key == dg.AssetKey("training_data")
    ]
    return mat.metadata


def _import(warehouse: DuckDBWarehouse, leads: pd.DataFrame, name: str = "import:real_export.csv") -> None:
    """What `lead-scoring data import` lands."""
    warehouse.append("crm_leads_raw", leads.assign(_source=name, _ingested_at=pd.Timestamp.now(tz="UTC")))


def test_streamed_demo_leads_carry_the_demo_prefix_and_land_as_demo():
    clock = itertools.count()
    start = datetime(2026, 11, 23, tzinfo=UTC)
    records = list(
        itertools.islice(
            synthetic_stream(
                seed=5,
                chunk=20,
                with_outcomes=True,
                outcome_delay_s=2,
                clock=lambda: start + timedelta(seconds=next(clock)),
            ),
            40,
        )
    )
    assert records and all(r["Id"].startswith(DEMO_ID_PREFIX) and is_demo(r["Id"]) for r in records)
    assert [e for r in records for e in validate_record(r)] == []


def test_the_sink_tags_demo_leads_and_their_scores(warehouse):
    lead = {
        "Id": "DEMO-00Qabc",
        "_ObjectType": "Lead",
        "_EventType": "created",
        "LastModifiedDate": "2026-11-20T10:00:00.000Z",
    }
    score = {
        "Id": "DEMO-00Qabc",
        "_ObjectType": "Lead",
        "Lead_Score__c": 40,
        "Lead_Score_Model__c": "v1",
        "scored_ts": 1_763_900_000_000,
    }
    sink = SinkHandler(warehouse, register=ErasureRegister(warehouse, b"k" * 32, acknowledged_erased_ids()))
    sink.handle(
        [
            Message("input_raw", 0, 0, b"DEMO-00Qabc", json.dumps(lead).encode(), None),
            Message("lead_scores", 0, 0, b"DEMO-00Qabc", json.dumps(score).encode(), None),
        ]
    )
    for table in ("crm_leads_raw", "lead_scores", "lead_score_history"):
        assert warehouse.query(f"SELECT _source FROM {table}")["_source"].tolist() == ["demo"], table


def test_seed_data_trains_until_real_leads_arrive_then_only_real_leads_do(warehouse):
    # 1. the fresh machine: only the seeded sample -> it trains, and the metadata says so
    seeded = _metadata(_materialize(warehouse))
    assert seeded["rows_per_source"].value == {"seed": 2897}
    assert seeded["demo_data"].value == "2897 demo labelled leads used (no real labelled lead yet)"
    assert seeded["real_labelled_leads"].value == 0
    # streamed demo leads with outcomes count as demo too
    demo = generate_leads(300, seed=11).assign(Id=lambda f: DEMO_ID_PREFIX + f["Id"])
    warehouse.append("crm_leads_raw", demo.assign(_source="demo", _ingested_at=pd.Timestamp.now(tz="UTC")))

    # 2. the user imports their real export: seed and demo rows leave the training data
    real = generate_leads(900, seed=12)
    _import(warehouse, real)
    result = _materialize(warehouse)
    assert result.success
    metadata = _metadata(result)
    labelled_real = int(real["IsConverted"].notna().sum())
    assert metadata["rows_per_source"].value == {"import:real_export.csv": labelled_real}
    assert metadata["real_labelled_leads"].value == labelled_real
    assert metadata["demo_data"].value.endswith(f"ignored ({labelled_real} real labelled leads exist)")
    assert "| import:real_export.csv |" in metadata["sources"].value and "| seed |" not in metadata["sources"].value
    frame = result.output_for_node("training_data")
    assert set(frame["Id"]) == set(real.loc[real["IsConverted"].notna(), "Id"])
    assert not frame["Id"].str.startswith(DEMO_ID_PREFIX).any()

    # 3. asked for explicitly, both train (and the metadata shows every source)
    both = _metadata(_materialize(warehouse, demo_data="include"))
    assert set(both["rows_per_source"].value) == {"seed", "demo", "import:real_export.csv"}


def test_real_stream_outcomes_also_count_as_real(warehouse):
    _materialize(warehouse)  # seed
    stream = generate_leads(50, seed=13)
    warehouse.append("crm_leads_raw", stream.assign(_source="stream", _ingested_at=pd.Timestamp.now(tz="UTC")))
    frame = warehouse.query(training_data_sql(0.2))
    assert set(frame["_source"]) == {"stream"}
    assert len(warehouse.query(training_data_sql(0.2, demo_data="include"))) > len(frame)
    assert set(warehouse.query(training_data_sql(0.2, demo_data="exclude"))["_source"]) == {"stream"}


def test_too_few_real_leads_say_why_the_demo_data_is_not_used(warehouse):
    _materialize(warehouse)
    _import(warehouse, generate_leads(30, seed=14))
    result = _materialize(warehouse)
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    message = str(failure.event_specific_data.error)
    assert "training needs at least 50" in message
    assert "2897 demo labelled leads are not used once real leads exist" in message
    assert "training_data.demo_data" in message


def test_an_unknown_demo_policy_names_the_setting(warehouse):
    result = _materialize(warehouse, demo_data="sometimes")
    assert not result.success
    [failure] = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "training_data.demo_data is 'sometimes'; use one of: auto" in str(failure.event_specific_data.error)
    with pytest.raises(ValueError, match="demo_data must be one of auto, include, exclude"):
        training_data_sql(0.2, demo_data="sometimes")

"""The score ledger on a real DuckDB file: the sink fills it from champion and shadow topics, once; the asset
reports size and freshness; `lead-scoring scores export` writes Parquet / CSV in UTC."""

from __future__ import annotations

import json

import dagster as dg
import pandas as pd
import pytest
from typer.testing import CliRunner

from lead_scoring.contract import LEDGER_COLUMNS
from lead_scoring.crm.batches import Message
from lead_scoring.crm.heartbeat import SINK, WRITEBACK, worker_topics
from lead_scoring.crm.sink import LEDGER_KEY, SinkHandler
from lead_scoring.crm.workers import build_worker
from lead_scoring.crm.writeback import parse_score
from lead_scoring.lifecycle.erasure import ErasureRegister
from lead_scoring.lifecycle.ledger import lead_score_history
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.topics import SCORE_TOPICS, TOPICS_BY_NAME
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring.warehouse.tables import TABLES
from lead_scoring_tests.fixtures.kafka_fakes import acknowledged_erased_ids

NOW_MS = int(pd.Timestamp.now(tz="UTC").timestamp() * 1000)


def score(rid: str, value: int, scored_ts: int, model: str = "v1", **extra) -> dict:
    return {
        "Id": rid,
        "_ObjectType": "Contact" if rid.startswith("003") else "Lead",
        "_EventType": "updated",
        "Lead_Score__c": value,
        "Lead_Score_Reasons__c": f"+reason {value}",
        "Lead_Score_Model__c": model,
        "source_ts": scored_ts - 40,
        "scored_ts": scored_ts,
        **extra,
    }


def msg(topic: str, value: dict, offset: int) -> Message:
    return Message(topic, 0, offset, value["Id"].encode(), json.dumps(value).encode(), NOW_MS)


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))


@pytest.fixture
def sink(warehouse) -> SinkHandler:
    return SinkHandler(warehouse, register=ErasureRegister(warehouse, b"k" * 32, acknowledged_erased_ids()))


def test_ledger_table_is_the_contract_section_2b_columns_plus_bookkeeping():
    assert LEDGER_COLUMNS == (
        "Id",
        "_ObjectType",
        "Lead_Score__c",
        "Lead_Grade__c",
        "Lead_Score_Reasons__c",
        "Lead_Score_Model__c",
        "features_hash",
        "source_ts",
        "scored_ts",
        "shadow",
    )
    spec = TABLES["lead_score_history"]
    assert spec.column_names == [*LEDGER_COLUMNS, "_source", "_ingested_at"]
    assert dict(spec.columns)["shadow"].value == "boolean" and dict(spec.columns)["Lead_Score__c"].value == "int"
    assert set(LEDGER_KEY) <= set(spec.column_names)


def test_sink_appends_every_score_champion_and_shadow_once(warehouse, sink):
    batch = [
        msg("lead_scores", score("00QA", 40, NOW_MS - 5000), 0),  # no grade / hash yet: null
        msg("lead_scores", score("00QA", 45, NOW_MS - 1000, Lead_Grade__c="B", features_hash="f" * 16), 1),
        msg("contact_scores", score("003C", 70, NOW_MS - 900, Lead_Grade__c="A"), 0),
        msg("lead_scores_shadow", score("00QA", 52, NOW_MS - 1000, model="v2", Lead_Grade__c="B"), 0),
        msg("lead_scores_shadow", score("PROBE-1", 10, NOW_MS - 800, model="v2"), 1),
    ]
    first = sink.handle(batch)
    again = sink.handle(batch)  # at-least-once: the batch delivered twice
    assert first["history"] == 5 and first["scores"] == 3
    assert again["history"] == 0 and again["duplicates"] == 8
    ledger = warehouse.query("SELECT * FROM lead_score_history ORDER BY Id, scored_ts, shadow")
    rows = ledger[
        ["Id", "Lead_Score__c", "Lead_Grade__c", "features_hash", "Lead_Score_Model__c", "shadow", "_source"]
    ].astype(object)
    assert rows.where(rows.notna(), None).values.tolist() == [
        ["003C", 70, "A", None, "v1", False, "stream"],
        ["00QA", 40, None, None, "v1", False, "stream"],
        ["00QA", 45, "B", "f" * 16, "v1", False, "stream"],
        ["00QA", 52, "B", None, "v2", True, "stream"],
        ["PROBE-1", 10, None, None, "v2", True, "probe"],
    ]
    assert ledger["scored_ts"].iloc[0] == pd.Timestamp(NOW_MS - 900, unit="ms", tz="UTC")
    assert ledger["source_ts"].notna().all() and ledger["_ingested_at"].notna().all()
    # the shadow scores are only in the ledger, never in the champion's lead_scores table
    champion = warehouse.query("SELECT Lead_Score_Model__c AS m, COUNT(*) AS n FROM lead_scores GROUP BY 1")
    assert champion.values.tolist() == [["v1", 3]]


def test_a_crash_replay_of_a_score_lands_once_and_a_rescore_is_a_new_row(warehouse, sink):
    first = score("00QR", 61, NOW_MS - 3000, Lead_Grade__c="B", features_hash="a" * 16)
    # a statement restored from its checkpoint scores the same input record again, a little later
    replayed = {**first, "scored_ts": NOW_MS - 100}
    # a re-score request is the record produced again: a new Kafka timestamp, the same features
    rescored = {**first, "source_ts": NOW_MS - 50, "scored_ts": NOW_MS - 10}
    sink.handle([msg("lead_scores", first, 0)])
    counts = sink.handle([msg("lead_scores", replayed, 1), msg("lead_scores", rescored, 2)])
    assert counts["history"] == 1 and counts["scores"] == 1
    ledger = warehouse.query("SELECT scored_ts FROM lead_score_history WHERE Id = '00QR' ORDER BY scored_ts")
    assert ledger["scored_ts"].tolist() == [
        pd.Timestamp(NOW_MS - 3000, unit="ms", tz="UTC"),
        pd.Timestamp(NOW_MS - 10, unit="ms", tz="UTC"),
    ]


def test_parse_score_reads_grade_and_features_hash_when_present_and_checks_them():
    rec, reason = parse_score(json.dumps(score("00QA", 40, NOW_MS)).encode())
    assert reason is None and rec["Lead_Grade__c"] is None and rec["features_hash"] is None
    rec, _ = parse_score(json.dumps(score("00QA", 40, NOW_MS, Lead_Grade__c="D", features_hash="ab12")).encode())
    assert (rec["Lead_Grade__c"], rec["features_hash"]) == ("D", "ab12")
    _, reason = parse_score(json.dumps(score("00QA", 40, NOW_MS, Lead_Grade__c="E", features_hash=7)).encode())
    assert reason == "features_hash: expected a string; Lead_Grade__c: must be one of A, B, C, D or null, got 'E'"


def test_the_shadow_topic_feeds_the_sink_and_never_the_writeback(warehouse):
    assert "lead_scores_shadow" in TOPICS_BY_NAME
    assert "lead_scores_shadow" not in SCORE_TOPICS
    assert worker_topics(WRITEBACK) == list(SCORE_TOPICS)
    assert worker_topics(SINK) == ["input_raw", *SCORE_TOPICS, "lead_scores_shadow"]
    from lead_scoring.crm.resources import LocalCrm

    register = ErasureRegister(warehouse, b"k" * 32, acknowledged_erased_ids())
    kafka = KafkaResource(bootstrap_servers="127.0.0.1:1")
    writeback = build_worker(WRITEBACK, kafka, warehouse, LocalCrm(), register=register)
    sink = build_worker(SINK, kafka, warehouse, register=register)
    assert writeback.topics == list(SCORE_TOPICS)
    assert sink.topics == worker_topics(SINK)


def test_ledger_asset_reports_size_versions_shadow_share_and_freshness(warehouse, sink):
    sink.handle(
        [msg("lead_scores", score(f"00Q{i}", i, NOW_MS - 60_000 + i), i) for i in range(6)]
        + [msg("lead_scores_shadow", score(f"00Q{i}", i + 1, NOW_MS - 30_000, model="v2"), i) for i in range(2)]
    )
    result = dg.materialize(
        [lead_score_history], resources={"warehouse": warehouse}, instance=dg.DagsterInstance.ephemeral()
    )
    [mat] = result.get_asset_materialization_events()
    meta = mat.materialization.metadata
    assert meta["rows"].value == 8 and meta["dagster/row_count"].value == 8
    assert meta["shadow_rows"].value == 2 and meta["shadow_share"].value == pytest.approx(0.25)
    assert meta["model_versions"].value == 2
    assert meta["scores_per_version"].value == {"v2 (shadow)": 2, "v1": 6}
    assert 25 <= meta["freshness_s"].value < 600
    assert meta["newest_scored_ts"].value == pytest.approx((NOW_MS - 30_000) / 1000)
    assert "| v1 | False | 6 | 6 |" in meta["rows_by_model_version"].value


def test_ledger_asset_on_an_empty_ledger(warehouse):
    result = dg.materialize(
        [lead_score_history], resources={"warehouse": warehouse}, instance=dg.DagsterInstance.ephemeral()
    )
    meta = result.get_asset_materialization_events()[0].materialization.metadata
    assert meta["rows"].value == 0 and meta["newest_scored_ts"].value == "none (no score yet)"


@pytest.fixture
def cli_home(tmp_path, monkeypatch):
    """The CLI's local warehouse under a private LEAD_SCORING_HOME."""
    monkeypatch.setenv("LEAD_SCORING_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LEAD_SCORING_PROFILE", "local")
    from lead_scoring.warehouse.definitions import local_warehouse_path

    return DuckDBWarehouse(path=local_warehouse_path())


def test_scores_export_writes_parquet_and_csv_in_utc(cli_home, tmp_path):
    from lead_scoring.cli import app

    day = 86_400_000
    sink = SinkHandler(cli_home, register=ErasureRegister(cli_home, b"k" * 32, acknowledged_erased_ids()))
    sink.handle(
        [
            msg("lead_scores", score("00QOLD", 10, NOW_MS - 10 * day), 0),
            msg("lead_scores", score("00QNEW", 80, NOW_MS - day, Lead_Grade__c="A"), 1),
            msg("lead_scores_shadow", score("00QNEW", 75, NOW_MS - day, model="v2"), 0),
        ]
    )
    since = (pd.Timestamp(NOW_MS - 2 * day, unit="ms", tz="UTC")).strftime("%Y-%m-%dT%H:%M:%S")
    runner = CliRunner()
    result = runner.invoke(app, ["scores", "export", "--since", since, "--out", str(tmp_path / "x.parquet")])
    assert result.exit_code == 0, result.output
    assert "exported 2 scores" in result.output
    frame = pd.read_parquet(tmp_path / "x.parquet")
    assert frame["Id"].tolist() == ["00QNEW", "00QNEW"] and sorted(frame["shadow"].tolist()) == [False, True]
    assert str(frame["scored_ts"].dtype).endswith("UTC]") and list(frame.columns)[:10] == list(LEDGER_COLUMNS)

    result = runner.invoke(
        app, ["scores", "export", "--since", since, "--champion-only", "--out", str(tmp_path / "x.csv")]
    )
    assert result.exit_code == 0, result.output
    text = pd.read_csv(tmp_path / "x.csv", dtype=str)
    assert text["Id"].tolist() == ["00QNEW"] and text["Lead_Grade__c"].tolist() == ["A"]
    expected = pd.Timestamp(NOW_MS - day, unit="ms", tz="UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    assert text["scored_ts"].tolist() == [expected]

    bad = runner.invoke(app, ["scores", "export", "--since", since, "--out", str(tmp_path / "x.xlsx")])
    assert bad.exit_code != 0 and "use .parquet or .csv" in bad.output
    bad = runner.invoke(app, ["scores", "export", "--since", "last tuesday", "--out", str(tmp_path / "y.csv")])
    assert bad.exit_code != 0 and "not a date or timestamp" in bad.output

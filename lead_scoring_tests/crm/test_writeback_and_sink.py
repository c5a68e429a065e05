"""Writeback and sink handlers on a real DuckDB file (no Kafka): idempotent effects, probes, rejects."""

from __future__ import annotations

import json
from datetime import UTC

import pandas as pd
import pytest

from lead_scoring.crm.batches import Message
from lead_scoring.crm.replay import RateLimiter
from lead_scoring.crm.sink import SinkHandler
from lead_scoring.crm.writeback import LocalCrmWriter, WritebackHandler, parse_score
from lead_scoring.settings import Profile
from lead_scoring.warehouse.resources import BigQueryWarehouse, DuckDBWarehouse


def score(rid: str, value: int, scored_ts: int, object_type: str = "Lead", model: str = "m1") -> dict:
    return {
        "Id": rid,
        "_ObjectType": object_type,
        "_EventType": "updated",
        "Lead_Score__c": value,
        "Lead_Score_Reasons__c": f"+reason {value}",
        "Lead_Score_Model__c": model,
        "source_ts": scored_ts - 40,
        "scored_ts": scored_ts,
    }


def msg(topic: str, value: dict | bytes, offset: int, key: str | None = None) -> Message:
    raw = value if isinstance(value, bytes) else json.dumps(value).encode()
    k = key if key is not None else (value.get("Id") if isinstance(value, dict) else None)
    return Message(topic, 0, offset, k.encode() if k else None, raw, 1_763_900_000_000)


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))


def test_parse_score_accepts_epoch_ms_and_iso_and_names_what_is_wrong():
    rec, reason = parse_score(json.dumps(score("00Q1", 87, 1_763_900_000_123)).encode())
    assert reason is None and rec["Lead_Score__c"] == 87
    assert rec["scored_ts"] == pd.Timestamp("2025-11-23T12:13:20.123Z")
    rec, _ = parse_score(json.dumps({**score("00Q1", 87, 0), "scored_ts": "2026-11-23 20:00:00.250"}).encode())
    assert rec["scored_ts"] == pd.Timestamp("2026-11-23T20:00:00.250Z")
    _, reason = parse_score(json.dumps({**score("", 101, 5), "_ObjectType": "Account"}).encode())
    assert reason == (
        "Id: missing or not a string; _ObjectType: must be one of Lead, Contact; "
        "Lead_Score__c: expected an integer 0-100, got '101'"
    )
    _, reason = parse_score(json.dumps({**score("00Q1", 5, 5), "scored_ts": "yesterday"}).encode())
    assert reason == "scored_ts: not a timestamp"
    assert parse_score(None)[1] == "$: empty message (tombstone)"


def test_local_writeback_upserts_by_id_newest_score_wins_and_replays_change_nothing(warehouse):
    handler = WritebackHandler(LocalCrmWriter(warehouse), warehouse)
    first = [
        score("00QA", 10, 1000),
        score("00QB", 20, 1000),
        score("003C", 30, 1000, "Contact"),
        score("00QA", 15, 2000),
    ]  # A scored twice in one batch: the newer one counts
    counts = handler.handle([msg("lead_scores", r, i) for i, r in enumerate(first)])
    assert counts == {"written": 3, "failed": 0, "probes_skipped": 0, "superseded": 1}
    # B rescored later; then the whole first batch is delivered again (at-least-once).
    handler.handle([msg("lead_scores", score("00QB", 90, 3000), 10)])
    handler.handle([msg("lead_scores", r, i) for i, r in enumerate(first)])
    crm = warehouse.query(
        "SELECT Id, _ObjectType, Lead_Score__c, Lead_Score_Reasons__c, scored_ts, written_at FROM crm_leads ORDER BY Id"
    )
    assert crm[["Id", "_ObjectType", "Lead_Score__c"]].values.tolist() == [
        ["003C", "Contact", 30],
        ["00QA", "Lead", 15],
        ["00QB", "Lead", 90],
    ]
    assert crm["written_at"].notna().all()
    assert warehouse.query("SELECT COUNT(*) AS n FROM crm_writeback_errors")["n"][0] == 0


def test_the_grade_reaches_the_crm_and_scores_tables_and_a_model_without_grades_clears_it(warehouse):
    handler = WritebackHandler(LocalCrmWriter(warehouse), warehouse)
    sink = SinkHandler(warehouse, profile=Profile.LOCAL)
    graded = {**score("00QG", 80, 1000), "Lead_Grade__c": "A", "features_hash": "00ff00ff00ff00ff"}
    for h in (handler, sink):
        h.handle([msg("lead_scores", graded, 0)])
    crm = warehouse.query("SELECT Id, Lead_Grade__c FROM crm_leads")
    assert crm.to_dict("records") == [{"Id": "00QG", "Lead_Grade__c": "A"}]
    landed = warehouse.query("SELECT Lead_Grade__c, features_hash FROM lead_scores")
    assert landed.to_dict("records") == [{"Lead_Grade__c": "A", "features_hash": "00ff00ff00ff00ff"}]
    ledger = warehouse.query("SELECT Lead_Grade__c, features_hash FROM lead_score_history")
    assert ledger.to_dict("records") == [{"Lead_Grade__c": "A", "features_hash": "00ff00ff00ff00ff"}]
    # a newer score of a model without grades: the CRM keeps no stale grade
    handler.handle([msg("lead_scores", {**score("00QG", 40, 2000, model="m0"), "Lead_Grade__c": None}, 1)])
    assert warehouse.query("SELECT Lead_Grade__c FROM crm_leads")["Lead_Grade__c"].tolist() == [None]


def test_local_writeback_skips_probes_and_keeps_bad_records_with_the_reason(warehouse):
    handler = WritebackHandler(LocalCrmWriter(warehouse), warehouse)
    batch = [
        msg("lead_scores", score("PROBE-1", 50, 1000), 0),
        msg("lead_scores", score("00QA", 61, 1000), 1),
        msg("lead_scores", {**score("00QX", 1, 1), "Lead_Score__c": "high"}, 2),
        msg("lead_scores", b"\xff\xfe", 3, key="00QZ"),
    ]
    counts = handler.handle(batch)
    assert counts == {"written": 1, "failed": 2, "probes_skipped": 1, "superseded": 0}
    assert warehouse.query("SELECT Id FROM crm_leads")["Id"].tolist() == ["00QA"]
    errors = warehouse.query("SELECT Id, reason, target FROM crm_writeback_errors ORDER BY Id")
    assert errors["Id"].tolist() == ["00QX", "00QZ"]
    assert errors["reason"].str.startswith("bad score record:").all()
    assert set(errors["target"]) == {"crm_leads"}


def _lead(rid: str, event: str = "created", modified: str = "2026-11-20T10:00:00.000Z", **extra) -> dict:
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": event,
        "LastModifiedDate": modified,
        "CreatedDate": "2026-11-20T10:00:00.000Z",
        "LeadSource": "Google",
        "Email": "a@b.c",
        **extra,
    }


def test_sink_lands_raw_rejected_and_scores_once_tagging_probes(warehouse):
    sink = SinkHandler(warehouse, score_topics=["lead_scores", "contact_scores"], profile=Profile.LOCAL)
    batch = [
        msg("input_raw", _lead("00QA"), 0),
        msg("input_raw", _lead("00QA", "updated", "2026-11-27T10:00:00.000Z", IsConverted=True), 1),
        msg("input_raw", _lead("PROBE-7"), 2),
        msg("input_raw", {"Id": "00QB", "_ObjectType": "Lead"}, 3),  # no LastModifiedDate
        msg("input_raw", b"not json", 4, key="00QC"),
        msg("lead_scores", score("00QA", 40, 1000), 0),
        msg("lead_scores", score("PROBE-7", 40, 1000), 1),
        msg("contact_scores", score("003D", 70, 1000, "Contact"), 0),
        msg("lead_scores", {"Id": "00QE"}, 2),
    ]
    first = sink.handle(batch)
    again = sink.handle(batch)  # the same batch re-read after a crash before the commit
    assert first == {
        "raw": 3,
        "rejected": 2,
        "scores": 3,
        "history": 3,
        "bad_scores": 1,
        "duplicates": 0,
        "quarantined": 1,
    }
    assert again == {
        "raw": 0,
        "rejected": 0,
        "scores": 0,
        "history": 0,
        "bad_scores": 1,
        "duplicates": 11,
        "quarantined": 1,
    }
    kept = warehouse.query("SELECT worker, topic, kafka_offset, Id, error FROM worker_quarantine")
    assert kept[["worker", "topic", "kafka_offset", "Id"]].values.tolist() == [["sink", "lead_scores", 2, "00QE"]]
    assert kept["error"][0].startswith("bad score record: _ObjectType: must be one of")
    raw = warehouse.query("SELECT Id, _EventType, IsConverted, _source FROM crm_leads_raw ORDER BY Id, _EventType")
    assert raw.astype(object).where(raw.notna(), None).values.tolist() == [
        ["00QA", "created", None, "stream"],
        ["00QA", "updated", True, "stream"],
        ["PROBE-7", "created", None, "probe"],
    ]
    rejected = warehouse.query("SELECT Id, reason, _source FROM rejected_leads ORDER BY Id")
    assert rejected["Id"].tolist() == ["00QB", "00QC"]
    assert "LastModifiedDate" in rejected["reason"][0] and "not valid JSON" in rejected["reason"][1]
    scores = warehouse.query("SELECT Id, _ObjectType, Lead_Score__c, _source FROM lead_scores ORDER BY Id")
    assert scores.values.tolist() == [
        ["003D", "Contact", 70, "stream"],
        ["00QA", "Lead", 40, "stream"],
        ["PROBE-7", "Lead", 40, "probe"],
    ]


def test_the_sink_is_told_its_erasure_register_or_the_profile_it_reads_it_from(warehouse):
    # the profile is passed in, never looked up inside the handler: without either it refuses at construction
    with pytest.raises(TypeError, match="register or the profile"):
        SinkHandler(warehouse)
    assert SinkHandler(warehouse, profile=Profile.LOCAL).profile is Profile.LOCAL


def test_streamed_leads_and_outcomes_reach_training_data(warehouse):
    """The loop closes: what the sink lands is what the next training run reads (probes excluded)."""
    from lead_scoring.training.queries import training_data_sql

    sink = SinkHandler(warehouse, profile=Profile.LOCAL)
    batch = []
    for i in range(40):
        rid = f"00Q{i:05d}"
        batch.append(msg("input_raw", _lead(rid, Total_Visits__c=float(i), Time_On_Website__c=10.0 * i), 2 * i))
        batch.append(
            msg(
                "input_raw",
                _lead(
                    rid,
                    "updated",
                    "2026-11-28T10:00:00.000Z",
                    IsConverted=i % 3 == 0,
                    Total_Visits__c=float(i),
                    Time_On_Website__c=10.0 * i,
                ),
                2 * i + 1,
            )
        )
    batch.append(msg("input_raw", _lead("PROBE-1", "updated", IsConverted=True), 999))
    sink.handle(batch)
    frame = warehouse.query(training_data_sql(0.2))
    assert len(frame) == 40
    assert not frame["Id"].str.startswith("PROBE-").any()
    assert int(frame["IsConverted"].astype(int).sum()) == 14  # i % 3 == 0 for i in 0..39


def test_rate_limiter_paces_evenly():
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(round(s, 6))
        now[0] += s

    limiter = RateLimiter(4.0, clock=lambda: now[0], sleep=sleep)
    for _ in range(9):
        limiter.wait()
    assert now[0] == pytest.approx(2.0)  # 9 events at 4/s: the last one is due at t = 8/4
    assert slept == [0.25] * 8


def test_bigquery_upsert_is_a_merge_from_a_loaded_staging_table():
    """The real BigQuery client against the loopback REST API (lead_scoring_tests/warehouse/fake_bigquery.py)."""
    import io

    import pyarrow.parquet as pq

    from lead_scoring_tests.warehouse.fake_bigquery import FakeBigQuery

    fake = FakeBigQuery(project="acme").start()
    try:
        wh = BigQueryWarehouse(project="acme", dataset="ls").with_client_factory(fake.client)
        frame = pd.DataFrame(
            [
                {
                    **score("00QA", 5, 1000),
                    "scored_ts": pd.Timestamp(1000, unit="ms", tz="UTC"),
                    "source_ts": pd.Timestamp(960, unit="ms", tz="UTC"),
                }
            ]
        )
        wh.upsert("crm_leads", frame, key="Id", newer="scored_ts")
    finally:
        fake.stop()
    [load] = [c for c in fake.calls if c.path.startswith("/upload/")]
    table = load.body["configuration"]["load"]["destinationTable"]
    stage = f"{table['projectId']}.{table['datasetId']}.{table['tableId']}"
    assert stage.startswith("acme.ls._stage_crm_leads_")
    assert pq.read_table(io.BytesIO(load.upload)).column("Id").to_pylist() == ["00QA"]
    merge, drop = fake.queries()
    assert merge.startswith(
        f"MERGE INTO crm_leads AS t USING `{stage}` AS s ON t.`Id` = s.`Id` "
        "WHEN MATCHED AND s.`scored_ts` >= t.`scored_ts` THEN UPDATE SET"
    )
    assert drop == f"DROP TABLE IF EXISTS `{stage}`"


def test_synthetic_stream_emits_valid_new_leads_and_their_outcomes_after_the_delay():
    import itertools
    from datetime import datetime, timedelta

    from lead_scoring.contract import validate_record
    from lead_scoring.crm.replay import synthetic_stream

    now = [datetime(2026, 11, 23, 20, 0, tzinfo=UTC)]

    def clock() -> datetime:
        now[0] += timedelta(seconds=1)  # one record per second
        return now[0]

    records = list(
        itertools.islice(synthetic_stream(seed=3, chunk=50, with_outcomes=True, outcome_delay_s=10.0, clock=clock), 120)
    )
    assert [e for r in records for e in validate_record(r)] == []
    created = {r["Id"]: r for r in records if r["_EventType"] == "created"}
    updated = [r for r in records if r["_EventType"] == "updated"]
    assert len(created) > 60 and updated and all("IsConverted" not in r for r in created.values())
    for u in updated:
        assert isinstance(u["IsConverted"], bool)
        lag = pd.Timestamp(u["LastModifiedDate"]) - pd.Timestamp(created[u["Id"]]["LastModifiedDate"])
        assert pd.Timedelta(seconds=10) <= lag <= pd.Timedelta(seconds=12)
    assert len(created) == len({r["Id"] for r in records})  # fresh Ids across generated chunks


class CountingWriter(LocalCrmWriter):
    """The local CRM, counting the write calls that reach it (one per batch: Salesforce's API call)."""

    def __init__(self, warehouse) -> None:
        super().__init__(warehouse)
        self.written: list[list[str]] = []

    def write(self, records):
        self.written.append(sorted(r["Id"] for r in records))
        return super().write(records)


def test_a_score_the_crm_holds_already_is_not_written_even_when_its_features_changed(warehouse):
    writer = CountingWriter(warehouse)
    handler = WritebackHandler(writer, warehouse)
    first = {**score("00QS", 64, 1000), "Lead_Grade__c": "B", "features_hash": "aaaaaaaaaaaaaaaa"}
    assert handler.handle([msg("lead_scores", first, 0)])["written"] == 1
    held = warehouse.query("SELECT scored_ts, written_at FROM crm_leads").iloc[0]
    # the lead changed (other features: the statements score it), and the model says exactly the same
    same = {**first, "features_hash": "bbbbbbbbbbbbbbbb", "source_ts": 1960, "scored_ts": 2000}
    other = {**score("00QT", 10, 2000), "Lead_Grade__c": "D"}
    counts = handler.handle([msg("lead_scores", same, 1), msg("lead_scores", other, 2)])
    assert counts == {"written": 1, "failed": 0, "probes_skipped": 0, "superseded": 0, "unchanged_skipped": 1}
    assert writer.written == [["00QS"], ["00QT"]]  # no write call carried 00QS again
    assert warehouse.query("SELECT scored_ts, written_at FROM crm_leads WHERE Id = '00QS'").iloc[0].equals(held)
    # only all four written fields equal is "unchanged": each one alone is a write
    for change in (
        {"Lead_Score__c": 65},
        {"Lead_Grade__c": "A"},
        {"Lead_Grade__c": None},
        {"Lead_Score_Reasons__c": "+other"},
        {"Lead_Score_Model__c": "m2"},
    ):
        changed = {**same, **change, "scored_ts": same["scored_ts"] + 1}
        counts = handler.handle([msg("lead_scores", changed, 3)])
        assert counts["written"] == 1 and "unchanged_skipped" not in counts, change
        same = changed
    only_if_all = {**same, "scored_ts": same["scored_ts"] + 1}
    assert handler.handle([msg("lead_scores", only_if_all, 4)])["unchanged_skipped"] == 1


def test_a_suppressed_write_is_not_echoed_by_the_local_crm(warehouse):
    from lead_scoring.crm.echo import EchoingCrmWriter

    class NoEcho:
        pending: dict = {}

        def __init__(self) -> None:
            self.asked: list[list[str]] = []

    echo = NoEcho()
    writer = EchoingCrmWriter(CountingWriter(warehouse), echo)  # type: ignore[arg-type]
    writer._thread = object()  # type: ignore[assignment]  # no echo thread: the ids queued are what it would echo
    handler = WritebackHandler(writer, warehouse)
    first = score("00QE", 50, 1000)
    handler.handle([msg("lead_scores", first, 0)])
    counts = handler.handle([msg("lead_scores", {**first, "features_hash": "cccccccccccccccc", "scored_ts": 2000}, 1)])
    assert counts["unchanged_skipped"] == 1
    queued = []
    while not writer._ids.empty():
        queued.append(writer._ids.get())
    assert queued == [["00QE"]]  # the first write only: the suppressed one moves no LastModifiedDate

"""No record stops a worker: transient vs permanent errors, isolation of a poison record, the `stuck` heartbeat.

The worker's write path (`MicroBatchWorker._flush` -> handler -> real DuckDB file) without Kafka: the batch is
what the consumer would have handed over, and the commit is observed as the offsets the worker holds for it.
"""

from __future__ import annotations

import io
import json

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import sqlglot
from confluent_kafka import KafkaError, KafkaException
from google.api_core import exceptions as google_exceptions
from simple_salesforce.exceptions import SalesforceGeneralError

from lead_scoring.crm import sink as sink_module
from lead_scoring.crm import writeback as writeback_module
from lead_scoring.crm.batches import Message, WorkerFailed
from lead_scoring.crm.quarantine import ErrorKind, PoisonRecord, classify, describe_error
from lead_scoring.crm.salesforce import TransientSalesforceError
from lead_scoring.crm.sink import SinkHandler
from lead_scoring.crm.workers import MicroBatchWorker
from lead_scoring.crm.writeback import LocalCrmWriter, WritebackHandler
from lead_scoring.settings import Profile
from lead_scoring.warehouse.resources import BigQueryWarehouse, DuckDBWarehouse
from lead_scoring_tests.warehouse.fake_bigquery import FakeBigQuery


def _lead(rid: str, **extra) -> dict:
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": "created",
        "LastModifiedDate": "2026-11-20T10:00:00.000Z",
        "CreatedDate": "2026-11-20T10:00:00.000Z",
        "LeadSource": "Google",
        "Email": "a@b.c",
        **extra,
    }


def _score(rid: str, **extra) -> dict:
    return {
        "Id": rid,
        "_ObjectType": "Lead",
        "_EventType": "updated",
        "Lead_Score__c": 42,
        "Lead_Score_Reasons__c": "+Lead Add Form",
        "Lead_Score_Model__c": "m1",
        "source_ts": 1_763_900_000_000,
        "scored_ts": 1_763_900_000_040,
        **extra,
    }


def _msg(topic: str, value: dict, offset: int, partition: int = 0) -> Message:
    return Message(
        topic,
        partition,
        offset,
        value["Id"].encode("utf-8", "backslashreplace"),
        json.dumps(value).encode(),
        1_763_900_000_000,
    )


def _salesforce_error(status: int, code: str) -> SalesforceGeneralError:
    return SalesforceGeneralError("https://x/services", status, "Lead", [{"errorCode": code, "message": "m"}])


@pytest.mark.parametrize(
    "exc",
    [
        duckdb.IOException('Could not set lock on file "wh.duckdb": Conflicting lock is held'),
        duckdb.TransactionException("conflict"),
        OSError(28, "No space left on device"),
        ConnectionResetError("reset by peer"),
        requests.ConnectionError("connection refused"),
        KafkaException(KafkaError(KafkaError._ALL_BROKERS_DOWN)),
        TransientSalesforceError("Lead update of 200 records still failing after 5 attempts"),
        _salesforce_error(503, "SERVER_UNAVAILABLE"),
        _salesforce_error(403, "REQUEST_LIMIT_EXCEEDED"),
        _salesforce_error(401, "INVALID_SESSION_ID"),  # credentials: nothing to do with the records
        google_exceptions.ServiceUnavailable("backend error"),
        google_exceptions.TooManyRequests("rate limit"),
        RuntimeError("a bug"),  # unknown: retried and shown as stuck, never a reason to put records aside
        ValueError("Salesforce credentials missing: set SALESFORCE_USERNAME"),
    ],
)
def test_the_other_side_failing_is_transient(exc):
    assert classify(exc) is ErrorKind.TRANSIENT


@pytest.mark.parametrize(
    "exc",
    [
        PoisonRecord("Id: not storable"),
        RecursionError("maximum recursion depth exceeded while decoding a JSON array"),
        UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
        OverflowError("int too large to convert to float"),
        pd.errors.OutOfBoundsDatetime("Out of bounds nanosecond timestamp"),
        duckdb.ConversionException("Could not convert string 'x' to INT64"),
        duckdb.InvalidInputException("Python Conversion Failure: cannot encode str as UTF-8"),
        pa.ArrowInvalid("Could not convert 'x' with type str"),
        google_exceptions.BadRequest("Error while reading data"),
        _salesforce_error(400, "INVALID_FIELD"),
    ],
)
def test_the_record_being_unstorable_is_permanent(exc):
    assert classify(exc) is ErrorKind.PERMANENT


def test_describe_error_is_one_bounded_line():
    text = describe_error(ValueError("line one\nline two " + "x" * 1000))
    assert text.startswith("ValueError: line one line two ") and len(text) == 300 and "\n" not in text


@pytest.fixture
def warehouse(tmp_path) -> DuckDBWarehouse:
    return DuckDBWarehouse(path=str(tmp_path / "wh.duckdb"))


def _worker(handler, tmp_path, **options) -> tuple[MicroBatchWorker, list[dict]]:
    """A worker around `handler` (no consumer: its `_flush` and the offsets held are what is tested); the list
    collects the heartbeat as it was at each backoff sleep."""
    beats: list[dict] = []
    path = tmp_path / "worker.heartbeat.json"

    def sleep(_seconds: float) -> None:
        beats.append(json.loads(path.read_text()))

    worker = MicroBatchWorker(
        None,
        "g",
        ["input_raw"],
        handler,
        name="sink",
        heartbeat_path=path,
        sleep=sleep,
        backoff_s=0.01,
        max_backoff_s=0.01,
        **options,
    )
    return worker, beats


class LockedFirst:
    """The warehouse file is locked by another process for the first `times` writes (DuckDB's own error)."""

    def __init__(self, handler, times: int):
        self.handler, self.times, self.calls = handler, times, 0

    def handle(self, batch):
        self.calls += 1
        if self.calls <= self.times:
            raise duckdb.IOException(
                'IO Error: Could not set lock on file "wh.duckdb": Conflicting lock is held '
                "in /usr/bin/python3 (PID 4242)"
            )
        return self.handler.handle(batch)

    def quarantine(self, msg, error):
        return self.handler.quarantine(msg, error)


def test_a_transient_failure_is_retried_commits_nothing_meanwhile_and_shows_stuck(warehouse, tmp_path):
    handler = LockedFirst(
        SinkHandler(warehouse, score_topics=["lead_scores"], shadow_topics=[], profile=Profile.LOCAL), times=3
    )
    worker, beats = _worker(handler, tmp_path)
    batch = [_msg("input_raw", _lead(f"00QT{i}"), 40 + i, partition=2) for i in range(5)]
    worker._batch = list(batch)
    worker._flush(None)

    assert handler.calls == 4  # 3 refusals, then written
    # while retrying: nothing committed, the heartbeat names the first record held and the error
    assert len(beats) == 3 and all(b["state"] == "retrying a write" for b in beats)
    stuck = [b["stuck"] for b in beats]
    assert {(s["topic"], s["partition"], s["offset"]) for s in stuck} == {("input_raw", 2, 40)}
    assert len({s["since"] for s in stuck}) == 1  # since the first failure, not the last
    assert stuck[0]["error"].startswith("IOException: IO Error: Could not set lock on file")
    assert all(b["quarantined"] == 0 for b in beats)
    # written: the offsets are held for the commit, stuck is cleared, nothing was quarantined
    assert worker.offsets.pending == {("input_raw", 2): 45}
    assert worker.writer.stuck is None and worker.state != "retrying a write"
    final = json.loads((tmp_path / "worker.heartbeat.json").read_text())
    assert final["stuck"] is None and final["quarantined"] == 0
    assert warehouse.query("SELECT COUNT(*) AS n FROM crm_leads_raw")["n"][0] == 5
    assert warehouse.query("SELECT COUNT(*) AS n FROM rejected_leads")["n"][0] == 0


def test_a_transient_failure_that_does_not_end_commits_nothing(warehouse, tmp_path):
    handler = LockedFirst(
        SinkHandler(warehouse, score_topics=["lead_scores"], shadow_topics=[], profile=Profile.LOCAL), times=10**6
    )
    worker, _ = _worker(handler, tmp_path, max_attempts=4)
    worker._batch = [_msg("input_raw", _lead("00QT1"), 7)]
    with pytest.raises(WorkerFailed, match="not written .4 attempts.: IOException"):
        worker._flush(None)
    assert handler.calls == 4 and worker.offsets.pending == {}
    assert json.loads((tmp_path / "worker.heartbeat.json").read_text())["stuck"]["offset"] == 7


def test_a_record_the_warehouse_cannot_store_is_isolated_and_quarantined_and_the_rest_lands(
    warehouse, tmp_path, monkeypatch
):
    """The backstop behind the decoders' checks: with the text check switched off, a lone surrogate reaches
    DuckDB, which refuses the whole batch; the worker splits it down to that record."""
    monkeypatch.setattr(sink_module, "with_storable_text", lambda record: record)
    monkeypatch.setattr(writeback_module, "with_storable_text", lambda record: record)  # parse_score's
    handler = SinkHandler(warehouse, score_topics=["lead_scores"], shadow_topics=[], profile=Profile.LOCAL)
    calls = []
    real_handle = handler.handle
    monkeypatch.setattr(handler, "handle", lambda batch: calls.append(len(batch)) or real_handle(batch))
    worker, beats = _worker(handler, tmp_path)
    leads = [_lead(f"00QP{i:02d}") for i in range(16)]
    leads[11]["Email"] = "bad\ud800@example.com"  # a JSON "\ud800" escape decodes to a lone surrogate
    scores = [_score(f"00QP{i:02d}") for i in range(4)]
    scores[2]["Lead_Score_Reasons__c"] = "+Lead Add Form \udfff"
    batch = [_msg("input_raw", r, i) for i, r in enumerate(leads)] + [
        _msg("lead_scores", s, i, partition=1) for i, s in enumerate(scores)
    ]
    worker._batch = list(batch)
    worker._flush(None)

    assert beats == []  # no retry, no backoff: permanent errors are isolated at once
    assert len(calls) < 2 * len(batch)  # split in halves, not record by record
    assert worker.offsets.pending == {("input_raw", 0): 16, ("lead_scores", 1): 4}  # all committed
    raw = set(warehouse.query("SELECT Id FROM crm_leads_raw")["Id"])
    assert raw == {f"00QP{i:02d}" for i in range(16)} - {"00QP11"}
    rejected = warehouse.query("SELECT Id, payload, reason FROM rejected_leads")
    assert rejected["Id"].tolist() == ["00QP11"]
    assert rejected["reason"][0].startswith("could not be written: InvalidInputException:")
    assert "\\ud800" in rejected["payload"][0]  # the raw bytes as sent (the JSON escape), kept
    assert set(warehouse.query("SELECT Id FROM lead_scores")["Id"]) == {"00QP00", "00QP01", "00QP03"}
    assert set(warehouse.query("SELECT Id FROM lead_score_history")["Id"]) == {"00QP00", "00QP01", "00QP03"}
    kept = warehouse.query(
        "SELECT worker, topic, kafka_partition, kafka_offset, Id, payload_bytes, error FROM worker_quarantine"
    )
    assert kept[["worker", "topic", "kafka_partition", "kafka_offset", "Id"]].values.tolist() == [
        ["sink", "lead_scores", 1, 2, "00QP02"]
    ]
    assert kept["payload_bytes"][0] == len(batch[18].value)
    assert kept["error"][0].startswith("InvalidInputException:")
    assert worker.stats.counts["quarantined"] == 2
    worker.status.beat(force=True)  # the loop writes one every second
    assert json.loads((tmp_path / "worker.heartbeat.json").read_text())["quarantined"] == 2
    # the same batch again (a crash before the commit): nothing lands twice, nothing is quarantined twice
    worker._batch = list(batch)
    worker._flush(None)
    assert warehouse.query("SELECT COUNT(*) AS n FROM worker_quarantine")["n"][0] == 1
    assert warehouse.query("SELECT COUNT(*) AS n FROM rejected_leads")["n"][0] == 1
    assert warehouse.query("SELECT COUNT(*) AS n FROM crm_leads_raw")["n"][0] == 15


def test_the_writeback_isolates_a_score_the_crm_cannot_store(warehouse, tmp_path, monkeypatch):
    monkeypatch.setattr(writeback_module, "with_storable_text", lambda record: record)
    handler = WritebackHandler(LocalCrmWriter(warehouse), warehouse)
    worker, beats = _worker(handler, tmp_path)
    worker.name = "writeback"
    scores = [_score(f"00QW{i}") for i in range(6)]
    scores[4]["Lead_Score_Model__c"] = "m\ud800"
    worker._batch = [_msg("lead_scores", s, 100 + i) for i, s in enumerate(scores)]
    worker._flush(None)

    assert beats == [] and worker.offsets.pending == {("lead_scores", 0): 106}
    assert set(warehouse.query("SELECT Id FROM crm_leads")["Id"]) == {f"00QW{i}" for i in (0, 1, 2, 3, 5)}
    kept = warehouse.query("SELECT worker, kafka_offset, Id, error FROM worker_quarantine")
    assert kept[["worker", "kafka_offset", "Id"]].values.tolist() == [["writeback", 104, "00QW4"]]
    assert "surrogate" in kept["error"][0]


def test_a_quarantine_that_cannot_be_written_is_retried_not_dropped(warehouse, tmp_path, monkeypatch):
    """Putting a record aside is a write too: if the warehouse refuses it (locked), nothing is committed."""
    monkeypatch.setattr(sink_module, "with_storable_text", lambda record: record)
    handler = SinkHandler(warehouse, score_topics=["lead_scores"], shadow_topics=[], profile=Profile.LOCAL)
    real = handler.quarantine
    refusals = []

    def quarantine(msg, error):
        if len(refusals) < 2:
            refusals.append(msg.offset)
            raise duckdb.IOException("IO Error: Could not set lock on file")
        return real(msg, error)

    monkeypatch.setattr(handler, "quarantine", quarantine)
    worker, beats = _worker(handler, tmp_path)
    worker._batch = [_msg("input_raw", _lead("00QQ1"), 0), _msg("input_raw", _lead("00QQ2", Email="\ud800"), 1)]
    worker._flush(None)
    assert refusals == [1, 1] and len(beats) == 2 and beats[0]["stuck"]["offset"] == 0
    assert worker.offsets.pending == {("input_raw", 0): 2}
    assert warehouse.query("SELECT Id FROM rejected_leads")["Id"].tolist() == ["00QQ2"]


def test_lone_surrogates_and_nul_land_as_replacement_characters(warehouse):
    """Valid JSON, valid by the contract, scored by the pipeline (Java strings hold them): the warehouse keeps the
    lead and its score with U+FFFD in place of what a store mishandles, so every hop has them."""
    sink = SinkHandler(warehouse, score_topics=["lead_scores"], shadow_topics=[], profile=Profile.LOCAL)
    counts = sink.handle(
        [
            _msg("input_raw", _lead("00QU1", Email="x\ud800@example.com"), 0),
            _msg("input_raw", _lead("00QU2", Email="y\x00@example.com"), 1),
            _msg("lead_scores", _score("00QU1", Lead_Score_Reasons__c="+Form \udfff\x00"), 0),
        ]
    )
    assert (counts["raw"], counts["rejected"], counts["scores"], counts["history"]) == (2, 0, 1, 1)
    assert warehouse.query("SELECT Email FROM crm_leads_raw ORDER BY Id")["Email"].tolist() == [
        "x\ufffd@example.com",
        "y\ufffd@example.com",
    ]
    assert warehouse.query("SELECT Lead_Score_Reasons__c AS r FROM lead_scores")["r"].tolist() == ["+Form \ufffd\ufffd"]


def test_rejected_payloads_with_nul_are_not_taken_for_duplicates(warehouse):
    """Found on the stack: pandas' multi-column drop_duplicates compares text up to a NUL, so the rejected row of
    a zero-byte value ("") was dropped as a duplicate of a Confluent-Avro payload ("\x00\x00..."): NUL is escaped."""
    sink = SinkHandler(warehouse, score_topics=["lead_scores"], shadow_topics=[], profile=Profile.LOCAL)
    avro = b"\x00\x00\x00\x00\x07\x0c00QH7\x08Lead"
    counts = sink.handle([Message("input_raw", 0, 0, None, avro, 1), Message("input_raw", 0, 1, b"00QH8", b"", 1)])
    assert counts["rejected"] == 2
    assert sorted(warehouse.query("SELECT payload FROM rejected_leads")["payload"]) == [
        "",
        "\\x00\\x00\\x00\\x00\x07\x0c00QH7\x08Lead",
    ]


def test_the_quarantine_table_exists_and_is_written_the_same_way_in_bigquery():
    """The gcp profile: the real BigQuery client against the loopback REST API (warehouse/fake_bigquery.py)."""
    fake = FakeBigQuery(project="acme").start()
    try:
        wh = BigQueryWarehouse(project="acme", dataset="ls").with_client_factory(fake.client)
        wh.ensure_tables()
        sink = SinkHandler(wh, score_topics=["lead_scores"], shadow_topics=[], profile=Profile.LOCAL)
        hostile = Message("lead_scores", 2, 77, b"00QB1", b"[" * 5000 + b"]" * 5000, 1)
        assert sink.handle([hostile])["quarantined"] == 1
    finally:
        fake.stop()
    [ddl] = [q for q in fake.queries() if q.startswith("CREATE TABLE IF NOT EXISTS worker_quarantine")]
    assert "`kafka_offset` INT64" in ddl and "`quarantined_at` TIMESTAMP" in ddl
    sqlglot.parse_one(ddl, read="bigquery")
    [load] = [c for c in fake.calls if c.path.startswith("/upload/")]
    assert load.body["configuration"]["load"]["destinationTable"]["tableId"].startswith("_stage_worker_quarantine_")
    [row] = pq.read_table(io.BytesIO(load.upload)).to_pylist()
    assert (row["worker"], row["topic"], row["kafka_partition"], row["kafka_offset"], row["Id"]) == (
        "sink",
        "lead_scores",
        2,
        77,
        "00QB1",
    )
    assert row["payload_bytes"] == 10_000 and len(row["payload"]) == 10_000
    assert row["error"] == "bad score record: $: nested too deeply to decode"
    insert = next(q for q in fake.queries() if q.startswith("INSERT INTO worker_quarantine"))
    assert "t.`kafka_offset` IS NOT DISTINCT FROM s.`kafka_offset`" in insert


def test_a_stop_ends_the_retrying_of_a_transient_failure_without_committing(warehouse, tmp_path):
    """SIGTERM while the warehouse stays locked: the worker ends (the batch is read again later), it does not hang."""
    handler = LockedFirst(
        SinkHandler(warehouse, score_topics=["lead_scores"], shadow_topics=[], profile=Profile.LOCAL), times=10**6
    )
    worker, _ = _worker(handler, tmp_path)
    worker.writer._sleep = lambda _seconds: worker.stop()  # SIGTERM during the backoff
    worker._batch = [_msg("input_raw", _lead("00QT1"), 7)]
    with pytest.raises(WorkerFailed, match="the worker is stopping"):
        worker._flush(None)
    assert handler.calls == 2 and worker.offsets.pending == {}  # the attempt after the cut backoff is the last

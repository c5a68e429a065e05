"""Hostile records mid-stream on the real stack: no record stops a worker (issue 29).

Valid leads are replayed into `input_raw` with hostile records in the middle (and one straight onto a score
topic); the Flink pipeline and a model server score them, the real sink and writeback workers write them.
Every valid lead must reach the CRM, the warehouse and the ledger; every hostile record is kept with its
reason; both consumer groups end with no lag. Patterns of test_crm_end_to_end.py (own topic prefix,
statement names, groups and DuckDB file).
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

import dagster as dg
import httpx
import pytest

from lead_scoring.crm.quarantine import payload_text
from lead_scoring.crm.replay import frame_records, load_events, replay
from lead_scoring.crm.resources import LocalCrm
from lead_scoring.crm.synthetic import generate_leads, write_frame
from lead_scoring.crm.workers import build_worker
from lead_scoring.serving.service import ModelServerProcess
from lead_scoring.settings import Profile
from lead_scoring.stack.ports import free_port
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs
from lead_scoring.streaming.assets import flink_statements, streaming_topics
from lead_scoring.streaming.lag import group_lag
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.fixtures.stack import stub_deployment
from lead_scoring_tests.serving.records import fit_model

pytestmark = pytest.mark.stack

MODEL = "lead_scorer"
_LEAD = (
    '{"Id": "00QH%s", "_ObjectType": "Lead", "_EventType": "created", "LastModifiedDate": '
    '"2026-11-20T10:00:00.000Z", "LeadSource": "Google", %s}'
)
# (key, value) records that broke or could break a worker: each one stopped the sink before issue 29
HOSTILE_RAW: list[tuple[bytes | None, bytes | None]] = [
    (b"00QH1", b"[" * 50_000 + b"]" * 50_000),  # nested deeper than any decoder recurses
    (b"00QH2", (_LEAD % ("2", '"Total_Visits__c": 1' + "0" * 400)).encode()),  # overflows a float
    (b"00QH4", b'{"Id": ' + b"7" * 5000 + b"}"),  # more digits than Python converts
    (b"00QH5", (_LEAD % ("5", '"Total_Visits__c": NaN')).encode()),
    (b"\xff\xfe\x00", b'{"Id": "\xff\xfe", "_ObjectType": "Lead"}'),  # invalid UTF-8, key and value
    (None, b"\x00\x00\x00\x00\x07\x0c00QH7\x08Lead"),  # Confluent-Avro framing where JSON is expected
    (b"00QH8", b""),  # zero bytes
    (b"00QH9", (_LEAD % ("9", '"Id": {"nested": true}')).encode()),  # a duplicate key, the last one wrong
]
# Odd but valid: the contract and Flink accept a lone surrogate (Java strings hold one) and score the lead; the
# sink stores it with U+FFFD (a UTF-8 store cannot hold the surrogate). Before issue 29 it stopped the sink.
SURROGATE_LEAD = (b"00QH3", (_LEAD % ("3", '"Email": "x\\ud800@example.com"')).encode())
HOSTILE_SCORE = (
    b"00QHS",
    b'{"Id": "00QHS", "_ObjectType": "Lead", "Lead_Score__c": 1' + b"0" * 400 + b', "scored_ts": 1763900000000}',
)


def test_hostile_records_mid_stream_stop_no_worker_and_every_valid_lead_lands(local_stack, tmp_path):
    kafka, flink = local_stack.kafka(), local_stack.flink_sql()
    tag = uuid.uuid4().hex[:6]
    prefix, names = f"hostile{tag}_", f"hostile{tag}"
    repo = ArtifactRepository(LocalBlobs(tmp_path / "artifacts"), Profile.LOCAL)
    version = repo.save(fit_model(n=300, seed=1), manifest={"trained_on": "hostile stream test"})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ModelServerProcess(version.uri, port=port, log_path=tmp_path / "model-server.log", model_name=MODEL)
    scores = [prefix + "lead_scores", prefix + "contact_scores"]
    raw = prefix + "input_raw"
    groups = {"sink": f"{names}-sink", "writeback": f"{names}-writeback"}
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    workers: list[Any] = []
    threads: list[threading.Thread] = []
    try:
        server.start()
        resources = {"kafka": kafka, "flink": flink}
        assert dg.materialize_to_memory(
            [streaming_topics],
            resources=resources,
            run_config={"ops": {"streaming_topics": {"config": {"topic_prefix": prefix}}}},
        ).success
        rollout = dg.materialize_to_memory(
            [stub_deployment(url, version.version, MODEL), flink_statements],
            resources=resources,
            run_config={
                "ops": {
                    "flink_statements": {
                        "config": {
                            "topic_prefix": prefix,
                            "statement_prefix": names,
                            "group_prefix": names,
                            "verify_timeout_s": 180.0,
                        }
                    }
                }
            },
            raise_on_error=False,
        )
        assert rollout.success, [str(e.event_specific_data) for e in rollout.all_events if e.is_failure]

        workers = [
            build_worker(
                "sink",
                profile=Profile.LOCAL,
                kafka=kafka,
                warehouse=warehouse,
                topics=[raw, *scores],
                score_topics=scores,
                shadow_topics=[],
                group_id=groups["sink"],
                max_wait_s=0.5,
                heartbeat_path=tmp_path / "sink.heartbeat.json",
            ),
            # no CRM echo here: this test counts the rows each input makes (the echo has test_echo_stack.py)
            build_worker(
                "writeback",
                profile=Profile.LOCAL,
                kafka=kafka,
                warehouse=warehouse,
                crm=LocalCrm(echo=False),
                topics=scores,
                score_topics=scores,
                group_id=groups["writeback"],
                heartbeat_path=tmp_path / "writeback.heartbeat.json",
            ),
        ]
        threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
        for t in threads:
            t.start()

        csv = tmp_path / "leads.csv"
        write_frame(generate_leads(60, seed=29), csv)
        events, _ = load_events(csv, with_outcomes=True)
        created = events[events["_EventType"] == "created"]
        ids = set(created["Id"]) | {"00QH3"}
        records = list(frame_records(events))
        half = len(records) // 2
        assert replay(kafka, iter(records[:half]), raw, rate=50.0).failed == 0
        producer = kafka.producer()
        for key, value in [*HOSTILE_RAW[:2], SURROGATE_LEAD, *HOSTILE_RAW[2:]]:
            producer.produce(raw, key=key, value=value)
        producer.produce(scores[0], key=HOSTILE_SCORE[0], value=HOSTILE_SCORE[1])
        assert producer.flush(30) == 0
        assert replay(kafka, iter(records[half:]), raw, rate=50.0).failed == 0

        def landed() -> bool:
            counts = warehouse.query(
                "SELECT (SELECT COUNT(DISTINCT Id) FROM crm_leads) AS crm, "
                "(SELECT COUNT(*) FROM crm_leads_raw) AS raw, (SELECT COUNT(DISTINCT Id) FROM lead_scores) AS sc, "
                "(SELECT COUNT(DISTINCT Id) FROM lead_score_history) AS ledger"
            )
            return (
                int(counts["crm"][0]) >= len(ids)
                and int(counts["raw"][0]) >= len(events) + 1
                and int(counts["sc"][0]) >= len(ids)
                and int(counts["ledger"][0]) >= len(ids)
            )

        deadline = time.monotonic() + 300
        while not landed():
            beats = {
                w.name: (tmp_path / f"{w.name}.heartbeat.json").read_text()
                if (tmp_path / f"{w.name}.heartbeat.json").exists()
                else None
                for w in workers
            }
            assert time.monotonic() < deadline, f"valid leads did not all land within 300 s; heartbeats {beats}"
            assert all(t.is_alive() for t in threads), "a worker thread ended"
            time.sleep(2)

        def drained() -> bool:
            return group_lag(kafka, groups["sink"], [raw, *scores]) == dict.fromkeys([raw, *scores], 0) and group_lag(
                kafka, groups["writeback"], scores
            ) == dict.fromkeys(scores, 0)

        deadline = time.monotonic() + 60
        while not drained():  # the last commit follows the last write
            assert time.monotonic() < deadline, "consumer groups kept a lag"
            time.sleep(1)
        heartbeats = {w.name: json.loads((tmp_path / f"{w.name}.heartbeat.json").read_text()) for w in workers}
        for w in workers:
            w.stop()
        for t in threads:
            t.join(60)
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            t.join(60)
        jobs = httpx.get(f"{flink.flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]
        for job in jobs:
            if job["name"].startswith(names) and job["state"] == "RUNNING":
                httpx.patch(f"{flink.flink_rest_url}/jobs/{job['jid']}", params={"mode": "cancel"}, timeout=10)
        server.stop()

    # every valid lead: in the CRM, the warehouse (raw and scores) and the ledger, once
    assert set(warehouse.query("SELECT Id FROM crm_leads")["Id"]) == ids
    raw_rows = warehouse.query("SELECT Id, Email FROM crm_leads_raw")
    assert len(raw_rows) == len(events) + 1 and set(raw_rows["Id"]) == ids
    assert raw_rows.loc[raw_rows["Id"] == "00QH3", "Email"].tolist() == ["x\ufffd@example.com"]
    assert set(warehouse.query("SELECT Id FROM lead_scores")["Id"]) == ids
    assert set(warehouse.query("SELECT Id FROM lead_score_history")["Id"]) == ids
    # every hostile record kept with a reason (two with the same payload text are one row: its natural key)
    rejected = warehouse.query("SELECT Id, payload, reason FROM rejected_leads")
    assert set(rejected["payload"]) == {payload_text(value) for _, value in HOSTILE_RAW}
    assert rejected["reason"].str.len().gt(0).all()
    quarantined = warehouse.query("SELECT worker, topic, Id, error FROM worker_quarantine")
    assert quarantined[["worker", "topic", "Id"]].values.tolist() == [["sink", scores[0], "00QHS"]]
    assert quarantined["error"][0].startswith("bad score record: Lead_Score__c: expected an integer 0-100")
    errors = warehouse.query("SELECT Id, reason FROM crm_writeback_errors")
    assert errors["Id"].tolist() == ["00QHS"] and errors["reason"][0].startswith("bad score record:")
    # neither worker ever got stuck on them
    assert {name: beat["stuck"] for name, beat in heartbeats.items()} == {"sink": None, "writeback": None}
    assert heartbeats["sink"]["quarantined"] == 1
    assert {name: w.stats.retries for name, w in zip(("sink", "writeback"), workers, strict=True)} == {
        "sink": 0,
        "writeback": 0,
    }

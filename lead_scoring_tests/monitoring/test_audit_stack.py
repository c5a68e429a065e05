"""`lead-scoring audit` on the real stack: a stream of leads with malformed records among them, through the
Flink pipeline, the model server and both CRM workers; the audit finds every record in every hop exactly once,
then names the hop where a row was deleted (missing) or written twice (doubled)."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import httpx
import pandas as pd
import pytest

from lead_scoring.crm.replay import frame_records, load_events, replay
from lead_scoring.crm.resources import LocalCrm
from lead_scoring.crm.synthetic import generate_leads, write_frame
from lead_scoring.crm.workers import build_worker
from lead_scoring.monitoring.audit import (
    HOP_CRM,
    HOP_DLQ,
    HOP_LEADS,
    HOP_LEDGER,
    HOP_RAW,
    HOP_REJECTED,
    HOP_SCORE_TABLE,
    HOP_SCORES,
    UNCHANGED,
    AuditReport,
    AuditTopics,
    audit,
)
from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.serving.service import ModelServerProcess
from lead_scoring.settings import Profile
from lead_scoring.stack.ports import free_port
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs
from lead_scoring.streaming.assets import flink_statements, streaming_topics
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.fixtures.stack import stub_deployment
from lead_scoring_tests.serving.records import fit_model

pytestmark = pytest.mark.stack

MODEL = "lead_scorer"
# Malformed records the contract sends to the DLQ (and the sink to rejected_leads); key = what a source would send.
MALFORMED: list[tuple[bytes | None, bytes]] = [
    (b"BAD-1", b"this is not JSON"),
    (b"BAD-2", b'{"Id": "BAD-2", "_ObjectType": "Lead"}'),  # required fields missing
    (None, b'{"Id": 42, "LastModifiedDate": "yesterday"}'),  # no key, wrong types
]


def test_audit_accounts_for_every_hop_then_names_the_one_that_lost_or_doubled_a_row(local_stack, tmp_path):
    kafka, flink = local_stack.kafka(), local_stack.flink_sql()
    tag = uuid.uuid4().hex[:6]
    prefix, names = f"aud{tag}_", f"aud{tag}"
    topics = AuditTopics.prefixed(prefix)
    repo = ArtifactRepository(LocalBlobs(tmp_path / "artifacts"), Profile.LOCAL)
    version = repo.save(fit_model(n=300, seed=1), manifest={"trained_on": "audit test"})
    port = free_port()
    server = ModelServerProcess(version.uri, port=port, log_path=tmp_path / "model-server.log", model_name=MODEL)
    workers: list[Any] = []
    threads: list[threading.Thread] = []
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    try:
        server.start()
        resources = {"kafka": kafka, "flink": flink}
        assert dg.materialize_to_memory(
            [streaming_topics],
            resources=resources,
            run_config={"ops": {"streaming_topics": {"config": {"topic_prefix": prefix}}}},
        ).success
        rollout = dg.materialize_to_memory(
            [stub_deployment(f"http://127.0.0.1:{port}", version.version, MODEL), flink_statements],
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

        scores = [topics.lead_scores, topics.contact_scores]
        workers = [
            build_worker(
                "sink",
                profile=Profile.LOCAL,
                kafka=kafka,
                warehouse=warehouse,
                topics=[topics.input_raw, *scores],
                score_topics=scores,
                shadow_topics=[],
                group_id=f"{names}-sink",
                max_wait_s=0.5,
            ),
            build_worker(
                "writeback",
                profile=Profile.LOCAL,
                kafka=kafka,
                warehouse=warehouse,
                crm=LocalCrm(),
                topics=scores,
                score_topics=scores,
                group_id=f"{names}-writeback",
            ),
        ]
        threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
        for t in threads:
            t.start()

        csv = tmp_path / "leads.csv"
        write_frame(generate_leads(40, seed=29), csv)
        events, _ = load_events(csv, with_outcomes=True)
        records = list(frame_records(events))
        since = datetime.now(UTC) - timedelta(seconds=1)
        half = len(records) // 2
        assert replay(kafka, records[:half], topics.input_raw, rate=50.0).failed == 0
        producer = kafka.producer()
        for key, value in MALFORMED:  # in the middle of the stream
            producer.produce(topics.input_raw, key=key, value=value)
        assert producer.flush(30) == 0
        assert replay(kafka, records[half:], topics.input_raw, rate=50.0).failed == 0

        def reconciled() -> AuditReport | None:
            report = audit(kafka, warehouse, since, grace_s=3600.0, topics=topics, read_timeout_s=60)
            # the local CRM's echoes come on their own thread once a write's record landed in crm_leads_raw (as
            # Salesforce's source polls): wait for them too, every hop holding them
            echoed = report.audited > len(records) + len(MALFORMED)
            return report if report.ok and report.late == 0 and echoed else None

        try:
            report = wait_until(reconciled, timeout_s=300, interval_s=3.0, what="every hop to hold the stream")
        except WaitTimeout:
            final = audit(kafka, warehouse, since, grace_s=0.0, topics=topics)
            raise AssertionError(f"not reconciled within 300 s: {final.verdict()}") from None
        # the local CRM echoes every score it writes back to input_raw (as Salesforce does): those records are
        # audited too, routed and landed as CRM changes, and - features unchanged - not scored again
        echoes = report.audited - len(records) - len(MALFORMED)
        unchanged = report.excluded.get(UNCHANGED, 0)
        assert 0 < echoes <= len(records) and unchanged >= echoes
        hops = {h.hop: h for h in report.hops}
        assert list(hops) == [
            HOP_LEADS,
            HOP_DLQ,
            HOP_SCORES,
            HOP_CRM,
            HOP_RAW,
            HOP_SCORE_TABLE,
            HOP_LEDGER,
            HOP_REJECTED,
        ]
        assert hops[HOP_LEADS].expected == len(records) + echoes
        assert hops[HOP_SCORES].expected == len(records) + echoes - unchanged
        assert hops[HOP_DLQ].expected == len(MALFORMED) and hops[HOP_REJECTED].expected == len(MALFORMED)
        assert hops[HOP_CRM].expected == len({r["Id"] for r in records})
        for hop in report.hops:
            assert (hop.arrived, hop.missing, hop.late) == (hop.expected, 0, 0), hop.summary()
            assert hop.replays_allowed or hop.doubled == 0, hop.summary()

        # stop the workers (nothing may heal what we break next), then lose a ledger row and double a score row
        for w in workers:
            w.stop()
        for t in threads:
            t.join(60)
        victim = records[0]["Id"]
        lost = int(
            warehouse.query("SELECT COUNT(*) AS n FROM lead_score_history WHERE Id = @id", {"id": victim})["n"].iloc[0]
        )  # each of its scored events is one ledger row
        assert lost >= 1
        warehouse.execute("DELETE FROM lead_score_history WHERE Id = @id", {"id": victim})
        twice = warehouse.query("SELECT * FROM lead_scores WHERE Id = @id LIMIT 1", {"id": records[-1]["Id"]})
        warehouse.append("lead_scores", twice.assign(_ingested_at=pd.Timestamp.now(tz="UTC")))

        broken = audit(kafka, warehouse, since, grace_s=0.0, topics=topics)
        assert not broken.ok
        hops = {h.hop: h for h in broken.hops}
        assert (hops[HOP_LEDGER].missing, hops[HOP_LEDGER].examples["missing"]) == (lost, [victim])
        assert (hops[HOP_SCORE_TABLE].doubled, hops[HOP_SCORE_TABLE].examples["doubled"]) == (1, [records[-1]["Id"]])
        assert [h.hop for h in broken.hops if not h.ok] == [HOP_SCORE_TABLE, HOP_LEDGER]
        assert f"{HOP_LEDGER}: {lost} missing" in broken.verdict()
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

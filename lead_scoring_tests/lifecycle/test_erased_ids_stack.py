"""Erased Ids filtered by the statements, on the real stack: an erased lead that changes again is not scored.

One pipeline on this module's own topics, statement names and consumer groups, its own model server, and the sink
and writeback workers as threads (the local CRM echoes its writes, as always). After the first scores landed, one
Lead and one Contact are erased through the erasure path (warehouse register + the `erased_ids` topic); then a new
change of each erased record and of a kept Lead and Contact go through `input_raw` together. The kept records'
changes are scored, written to the CRM and landed; the erased ones' are not scored at all (no record on the score
topics: both scoring statements dropped them, sql/erased.sql), so neither the CRM nor the warehouse get them, and
the audit does not call them missing.
"""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import dagster as dg
import httpx
import pytest

from lead_scoring.crm.replay import frame_records, load_events, replay
from lead_scoring.crm.resources import LocalCrm
from lead_scoring.crm.synthetic import generate_leads, write_frame
from lead_scoring.crm.workers import build_worker
from lead_scoring.lifecycle.erased_ids import ErasedIdsTopic
from lead_scoring.lifecycle.erasure import ErasureRegister, erase_leads
from lead_scoring.monitoring.audit import ERASED_NOT_SCORED, HOP_SCORES, AuditTopics, audit, read_window
from lead_scoring.serving.assets import model_deployment
from lead_scoring.serving.local import LocalModelServer
from lead_scoring.settings import Profile
from lead_scoring.stack.ports import free_port
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs, ModelArtifact
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.streaming.assets import flink_statements, streaming_topics
from lead_scoring.streaming.topics import ERASED_IDS
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.serving.records import fit_model

pytestmark = pytest.mark.stack

KEY = b"a test key of thirty-two or more characters"
# How long the kept lead's change takes to be scored, written and landed, at most (micro-batch waits, Flink hops)
SETTLE_S = 10.0


def _artifact_asset(artifact: ModelArtifact) -> dg.AssetsDefinition:
    @dg.asset(name="model_artifact")
    def stub() -> ModelArtifact:
        return artifact

    return stub


def _wait(check, timeout_s: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not within {timeout_s:.0f} s"
        time.sleep(1)


def _changed(record: dict[str, Any]) -> dict[str, Any]:
    """A new change of `record` in the CRM: a feature moved, LastModifiedDate now."""
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    return {
        **record,
        "_EventType": "updated",
        "Total_Visits__c": float(record.get("Total_Visits__c") or 0) + 7.0,
        "LastModifiedDate": now,
    }


def test_an_erased_lead_that_changes_again_is_not_scored_written_or_landed(local_stack, tmp_path) -> None:
    kafka, flink = local_stack.kafka(), local_stack.flink_sql()
    tag = uuid.uuid4().hex[:6]
    prefix, names = f"er{tag}_", f"er{tag}"
    repo = ArtifactRepository(LocalBlobs(tmp_path / "artifacts"), Profile.LOCAL)
    v1 = repo.save(fit_model(n=300, seed=1), {"trained_on": "erasure v1"})
    serving = LocalModelServer(port=free_port(), state_path=str(tmp_path / "serving"), ready_timeout_s=180)
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    register = ErasureRegister(warehouse, KEY, ErasedIdsTopic(kafka, prefix + ERASED_IDS))
    resources = {
        "kafka": kafka,
        "flink": flink,
        "model_store": LocalModelStore(root=str(tmp_path / "artifacts")),
        "model_serving": serving,
        "warehouse": warehouse,
    }
    pipeline = {"topic_prefix": prefix, "statement_prefix": names, "group_prefix": names, "verify_timeout_s": 180.0}
    raw, scores = prefix + "input_raw", [prefix + "lead_scores", prefix + "contact_scores"]
    workers = [
        build_worker(
            "sink",
            kafka=kafka,
            warehouse=warehouse,
            topics=[raw, *scores],
            score_topics=scores,
            shadow_topics=[],
            group_id=f"{names}-sink",
            register=register,
            max_wait_s=0.5,
        ),
        build_worker(
            "writeback",
            kafka=kafka,
            warehouse=warehouse,
            crm=LocalCrm(),
            topics=scores,
            score_topics=scores,
            group_id=f"{names}-writeback",
            register=register,
            max_wait_s=0.5,
        ),
    ]
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    try:
        first = dg.materialize_to_memory(
            [_artifact_asset(v1), model_deployment, streaming_topics, flink_statements],
            resources=resources,
            raise_on_error=False,
            run_config={
                "ops": {
                    "streaming_topics": {"config": {"topic_prefix": prefix}},
                    "flink_statements": {"config": pipeline},
                }
            },
        )
        assert first.success, [str(e.event_specific_data) for e in first.all_events if e.is_failure]
        for t in threads:
            t.start()

        csv = tmp_path / "leads.csv"
        write_frame(generate_leads(20, seed=5), csv)  # 16 Leads, 4 Contacts
        events, _ = load_events(csv, with_outcomes=False)
        records = {r["Id"]: r for r in frame_records(events)}
        # one erased and one kept record per object type: both scoring statements (leads, contacts) are exercised
        by_type = {t: sorted(i for i, r in records.items() if r["_ObjectType"] == t) for t in ("Lead", "Contact")}
        assert all(len(ids) >= 2 for ids in by_type.values()), {t: len(ids) for t, ids in by_type.items()}
        gone = {ids[0] for ids in by_type.values()}
        kept = {ids[1] for ids in by_type.values()}
        assert replay(kafka, list(records.values()), raw, rate=20.0).failed == 0

        def all_in_crm() -> bool:
            return int(warehouse.query("SELECT COUNT(DISTINCT Id) AS n FROM crm_leads")["n"][0]) >= len(records)

        _wait(all_in_crm, 300, "every lead scored and written to the CRM")

        erased_at = datetime.now(UTC)
        report = erase_leads(sorted(gone), warehouse, register)
        assert report.total_rows > 0 and register.erased(gone | kept) == gone

        # a new change of all four, together: the CRM changed the erased leads again (or re-sent them)
        changes = [_changed(records[i]) for i in sorted(gone | kept)]
        assert replay(kafka, changes, raw, rate=0.0).failed == 0

        def kept_rescored() -> bool:
            rescored = warehouse.query(
                "SELECT Id FROM lead_score_history WHERE Id IN UNNEST(@ids) GROUP BY Id HAVING COUNT(*) >= 2",
                {"ids": sorted(kept)},
            )
            return len(rescored) == len(kept)

        _wait(kept_rescored, 180, "the kept leads' new changes scored and landed in the ledger")
        time.sleep(SETTLE_S)  # the erased records' changes had every chance to go the same way

        since_ms = int(erased_at.timestamp() * 1000)
        window = read_window(kafka, [raw, *scores], since_ms)
        assert {r.key.decode() for r in window[raw] if r.key} >= gone | kept  # all four changes went in
        scored = {r.key.decode() for t in scores for r in window[t] if r.key}
        assert kept <= scored
        assert not gone & scored  # the statements dropped them: nothing for any sink to write or land
        for table in ("crm_leads", "crm_leads_raw", "lead_score_history", "lead_scores"):
            rows = warehouse.query(f"SELECT COUNT(*) AS n FROM {table} WHERE Id IN UNNEST(@ids)", {"ids": sorted(gone)})
            assert int(rows["n"][0]) == 0, table
        in_crm = warehouse.query(
            "SELECT COUNT(DISTINCT Id) AS n FROM crm_leads WHERE Id IN UNNEST(@ids)", {"ids": sorted(kept)}
        )
        assert int(in_crm["n"][0]) == len(kept)

        # the audit accounts for the dropped records instead of calling them missing
        result = audit(kafka, warehouse, erased_at, topics=AuditTopics.prefixed(prefix), register=register, grace_s=0)
        assert result.hop(HOP_SCORES).missing == 0, result.verdict()
        assert result.excluded.get(ERASED_NOT_SCORED) == len(gone), result.excluded
    finally:
        for w in workers:
            w.stop()
        for t in threads:
            if t.is_alive():
                t.join(60)
        jobs = httpx.get(f"{local_stack.flink_rest_url}/jobs/overview", timeout=10).json()["jobs"]
        for job in jobs:
            if job["name"].startswith(names) and job["state"] == "RUNNING":
                httpx.patch(f"{local_stack.flink_rest_url}/jobs/{job['jid']}", params={"mode": "cancel"}, timeout=10)
        serving.stop()

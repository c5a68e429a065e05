"""The write-back echo loop, on the real stack: the local CRM echoes every write like Salesforce, the pipeline ends it.

One pipeline on this module's own topics, statement names and consumer groups, its own model server, and the
sink and writeback workers as threads (the writeback with `LocalCrm()`: echo on, its default). Each lead is
written to the CRM, comes back to input_raw with a new LastModifiedDate and its features unchanged, and is
not scored again; input_raw stops growing. Without the echo suppression (streaming/sql/unchanged.sql) every
echo is scored, written and echoed again, forever.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import dagster as dg
import httpx
import pytest

from lead_scoring.crm.replay import frame_records, load_events, replay
from lead_scoring.crm.resources import LocalCrm
from lead_scoring.crm.synthetic import generate_leads, write_frame
from lead_scoring.crm.workers import build_worker
from lead_scoring.serving.assets import model_deployment
from lead_scoring.serving.local import LocalModelServer
from lead_scoring.settings import Profile
from lead_scoring.stack.ports import free_port
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs, ModelArtifact
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.streaming.assets import flink_statements, streaming_topics
from lead_scoring.streaming.lag import end_offset
from lead_scoring.warehouse.resources import DuckDBWarehouse
from lead_scoring_tests.serving.records import fit_model

pytestmark = pytest.mark.stack

# How long an echo takes locally, at most: the writeback's and the sink's micro-batch waits (0.5 s each), the
# echo's own wait for the record to land (2 s) and Flink's hops; what Salesforce's poll interval is in gcp.
POLL_S = 5.0


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


def test_each_lead_is_scored_once_and_input_raw_stops_growing_with_the_crm_echo_on(local_stack, tmp_path) -> None:
    kafka, flink = local_stack.kafka(), local_stack.flink_sql()
    tag = uuid.uuid4().hex[:6]
    prefix, names = f"ec{tag}_", f"ec{tag}"
    repo = ArtifactRepository(LocalBlobs(tmp_path / "artifacts"), Profile.LOCAL)
    v1 = repo.save(fit_model(n=300, seed=1), {"trained_on": "echo v1"})
    serving = LocalModelServer(port=free_port(), state_path=str(tmp_path / "serving"), ready_timeout_s=180)
    warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
    resources = {
        "kafka": kafka,
        "flink": flink,
        "model_store": LocalModelStore(root=str(tmp_path / "artifacts")),
        "model_serving": serving,
        "warehouse": warehouse,
    }
    pipeline = {"topic_prefix": prefix, "statement_prefix": names, "group_prefix": names, "verify_timeout_s": 180.0}
    raw, scores = prefix + "input_raw", [prefix + "lead_scores", prefix + "contact_scores"]
    crm = LocalCrm()
    assert crm.echo  # the default: every local run has the loop production has
    workers = [
        build_worker(
            "sink",
            profile=Profile.LOCAL,
            kafka=kafka,
            warehouse=warehouse,
            topics=[raw, *scores],
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
            crm=crm,
            topics=scores,
            score_topics=scores,
            group_id=f"{names}-writeback",
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
        write_frame(generate_leads(40, seed=5), csv)
        events, _ = load_events(csv, with_outcomes=False)
        ids = set(events["Id"])
        summary = replay(kafka, frame_records(events), raw, rate=40.0)
        assert summary.failed == 0
        replayed = len(events)

        def written_and_echoed() -> bool:
            got = warehouse.query(
                "SELECT (SELECT COUNT(DISTINCT Id) FROM crm_leads) AS crm, "
                "(SELECT COUNT(DISTINCT Id) FROM crm_leads_raw WHERE _EventType = 'updated') AS echoed"
            )
            return int(got["crm"][0]) >= len(ids) and int(got["echoed"][0]) >= len(ids)

        _wait(written_and_echoed, 300, "every lead written to the CRM and its echo landed")
        # input_raw stops growing within two poll periods: the echoes are the last records on it
        grown = []
        for _ in range(2):
            before = end_offset(kafka, raw)
            time.sleep(POLL_S)
            grown.append(end_offset(kafka, raw) - before)
        total = end_offset(kafka, raw)
        assert grown[-1] == 0, f"input_raw still growing: {grown} records per {POLL_S:.0f} s"
        assert total <= replayed + len(ids), (total, replayed, len(ids))  # at most one echo per lead

        # each lead scored at most once more than it changed: here, once (its echo is never scored)
        per_id = warehouse.query("SELECT Id, COUNT(*) AS n FROM lead_score_history GROUP BY Id")
        assert set(per_id["Id"]) == ids
        assert int(per_id["n"].max()) <= 2, per_id.sort_values("n").tail()
        assert int(per_id["n"].sum()) == len(ids), per_id.sort_values("n").tail()
        # the echo is what Salesforce sends: the same features, LastModifiedDate moved by the write
        echoed = warehouse.query(
            "SELECT e.Id FROM crm_leads_raw e JOIN crm_leads_raw c ON e.Id = c.Id AND c._EventType = 'created' "
            "WHERE e._EventType = 'updated' AND e.LastModifiedDate > c.LastModifiedDate "
            "AND e.Total_Visits__c IS NOT DISTINCT FROM c.Total_Visits__c "
            "AND e.LeadSource IS NOT DISTINCT FROM c.LeadSource"
        )
        assert set(echoed["Id"]) == ids
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

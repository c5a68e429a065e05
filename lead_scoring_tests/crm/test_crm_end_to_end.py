"""End to end on the real stack: replay -> Flink pipeline -> model server -> writeback + sink -> crm_leads.

The pipeline is rolled out by the `flink_statements` asset on this test's own topic prefix, statement
names and consumer groups; the CRM workers run in-process threads on the same prefixed topics.
"""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import dagster as dg
import httpx
import pandas as pd
import pytest

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


def test_replayed_leads_get_scored_written_back_and_land_in_the_warehouse(local_stack, tmp_path):
    kafka, flink = local_stack.kafka(), local_stack.flink_sql()
    tag = uuid.uuid4().hex[:6]
    prefix, names = f"crm{tag}_", f"crm{tag}"
    repo = ArtifactRepository(LocalBlobs(tmp_path / "artifacts"), Profile.LOCAL)
    version = repo.save(fit_model(n=300, seed=1), manifest={"trained_on": "crm end-to-end test"})
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ModelServerProcess(version.uri, port=port, log_path=tmp_path / "model-server.log", model_name=MODEL)
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

        warehouse = DuckDBWarehouse(path=str(tmp_path / "warehouse.duckdb"))
        scores = [prefix + "lead_scores", prefix + "contact_scores"]
        raw = prefix + "input_raw"
        workers = [
            build_worker(
                "sink",
                profile=Profile.LOCAL,
                kafka=kafka,
                warehouse=warehouse,
                topics=[raw, *scores],
                score_topics=scores,
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
        write_frame(generate_leads(60, seed=21), csv)
        events, _ = load_events(csv, with_outcomes=True)
        created = events[events["_EventType"] == "created"]
        ids = set(created["Id"])
        summary = replay(kafka, frame_records(events), raw, rate=50.0)
        assert summary.failed == 0 and summary.sent == len(events)

        def landed() -> bool:
            counts = warehouse.query(
                "SELECT (SELECT COUNT(DISTINCT Id) FROM crm_leads) AS crm, (SELECT COUNT(*) FROM crm_leads_raw) AS raw"
            )
            return int(counts["crm"][0]) >= len(ids) and int(counts["raw"][0]) >= len(events)

        deadline = time.monotonic() + 300
        while not landed():
            assert time.monotonic() < deadline, "scores did not reach crm_leads within 300 s"
            time.sleep(2)
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

    crm = warehouse.query(
        "SELECT Id, _ObjectType, Lead_Score__c, Lead_Score_Model__c, source_ts, scored_ts FROM crm_leads"
    )
    assert set(crm["Id"]) == ids  # every replayed Lead/Contact carries a score, nothing else
    assert crm["Lead_Score__c"].between(0, 100).all()
    assert (crm["scored_ts"] >= crm["source_ts"]).all()
    kinds = dict(zip(created["Id"], created["_ObjectType"], strict=True))
    assert all(kinds[i] == o for i, o in zip(crm["Id"], crm["_ObjectType"], strict=True))
    # every event reached crm_leads_raw once, outcomes included: the next training run sees them; the other rows
    # are the local CRM's echoes of the writes (LastModifiedDate moved, as Salesforce sends them: docs/crm.md)
    raw_rows = warehouse.query("SELECT Id, LastModifiedDate, _EventType, IsConverted FROM crm_leads_raw")
    stamps = pd.to_datetime(events["LastModifiedDate"], utc=True)
    sent = set(zip(events["Id"], stamps, strict=True))
    landed = list(zip(raw_rows["Id"], pd.to_datetime(raw_rows["LastModifiedDate"], utc=True), strict=True))
    originals = [key for key in landed if key in sent]
    assert len(originals) == len(set(originals)) == len(events)
    echoes = raw_rows[[key not in sent for key in landed]]
    assert set(echoes["Id"]) <= ids and set(echoes["_EventType"]) <= {"updated"}
    assert int(warehouse.query("SELECT COUNT(*) AS n FROM lead_scores")["n"][0]) >= len(ids)
    assert group_lag(kafka, f"{names}-writeback", scores) == dict.fromkeys(scores, 0)

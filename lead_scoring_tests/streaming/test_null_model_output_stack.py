"""A model answer without a score, through the REAL pipeline (issue 28 #8): Flink SQL statements on the
session's Flink cluster, our model server behind a fault-injecting pass-through that blanks the score of
marked records. Before, such an answer went into `Lead_Score__c INT NOT NULL` and failed the scoring
statement (and a restart resumed into the same record); now it goes to the dlq and the stream goes on."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from lead_scoring.serving.service import ModelServerProcess
from lead_scoring.settings import Profile
from lead_scoring.stack.ports import free_ports
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs
from lead_scoring.streaming.admin import ensure_topics
from lead_scoring.streaming.render import Dialect, RenderSettings, render_pipeline
from lead_scoring.streaming.rollout import rollout
from lead_scoring.streaming.topics import TOPICS
from lead_scoring_tests.serving.records import fit_model
from lead_scoring_tests.streaming.test_pipeline_stack import produce, read, read_dlq, records

pytestmark = pytest.mark.stack

MODEL = "lead_scorer"
MARK = "NULLSCORE-"


@contextmanager
def blanking_pass_through(port: int, upstream: str) -> Iterator[tuple[list[str], list[str]]]:
    """Forwards every predict call to the real model server; in its answer, the score of each instance whose
    Id starts with MARK becomes null (what a model answer without a score looks like to ML_PREDICT)."""
    blanked: list[str] = []
    calls: list[str] = []  # every instance's Id the statements sent (one call per record expected)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            resp = httpx.post(
                upstream + self.path, content=body, headers={"Content-Type": "application/json"}, timeout=60
            )
            answer = resp.json()
            calls.extend(str(instance.get("Id", "")) for instance in json.loads(body)["instances"])
            if resp.status_code == 200:
                for instance, prediction in zip(json.loads(body)["instances"], answer["predictions"], strict=True):
                    if str(instance.get("Id", "")).startswith(MARK):
                        prediction["score"] = None
                        blanked.append(instance["Id"])
            out = json.dumps(answer).encode()
            self.send_response(resp.status_code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(out)))
            self.end_headers()
            self.wfile.write(out)

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield blanked, calls
    finally:
        server.shutdown()
        server.server_close()


def test_a_null_model_output_goes_to_the_dlq_and_the_statement_keeps_scoring(local_stack, tmp_path: Path) -> None:
    artifact = ArtifactRepository(LocalBlobs(tmp_path / "artifacts"), Profile.LOCAL).save(
        fit_model(n=300, seed=1), manifest={"trained_on": "null model output test"}
    )
    server_port, proxy_port = free_ports(2)
    server = ModelServerProcess(
        artifact.uri, port=server_port, log_path=tmp_path / "model-server.log", model_name=MODEL
    )
    kafka, engine = local_stack.kafka(), local_stack.flink_sql()
    uid = uuid.uuid4().hex[:6]
    settings = RenderSettings(
        dialect=Dialect.FLINK,
        model_version=artifact.version,
        model_endpoint=f"http://127.0.0.1:{proxy_port}/v1/models/{MODEL}:predict",
        kafka_bootstrap=local_stack.kafka_bootstrap,
        topic_prefix=f"nul{uid}_",
        statement_prefix=f"nul{uid}",
        group_prefix=f"nul{uid}",
        server_model_name=MODEL,
    )
    pipeline = render_pipeline(settings)
    leads = [r | {"_ObjectType": "Lead"} for r in records(16, seed=11)]
    for r in leads[3:5]:
        r["Id"] = MARK + r["Id"]
    first, later = leads[:10], leads[10:]
    try:
        server.start()
        ensure_topics(kafka.admin(), TOPICS, prefix=settings.topic_prefix)
        with blanking_pass_through(proxy_port, f"http://127.0.0.1:{server_port}") as (blanked, calls):
            rollout(engine, pipeline, verify_timeout_s=180)
            produce(kafka, settings.topic("input_raw"), [(r["Id"], json.dumps(r).encode()) for r in first])
            dlq = read_dlq(kafka, settings.topic("dlq"), 2, timeout_s=180)
            # the statement is still running: records produced after the null answers are scored too
            produce(kafka, settings.topic("input_raw"), [(r["Id"], json.dumps(r).encode()) for r in later])
            usable = {r["Id"] for r in leads if not r["Id"].startswith(MARK)}
            got = read(kafka, settings.topic("lead_scores"), usable, timeout_s=180, settle_s=5)
            leaked = read(kafka, settings.topic("lead_scores"), {r["Id"] for r in leads[3:5]}, timeout_s=5)
        assert sorted(blanked) == sorted(r["Id"] for r in leads[3:5])
        # the statement set's two INSERTs (scores, dlq) read ONE model call per record (the planner reuses the
        # ML_PREDICT sub-plan): a second evaluation would double the model server's load
        twice = {rid: n for rid, n in Counter(calls).items() if n > 1}
        assert twice == {} and {r["Id"] for r in leads} <= set(calls)
        scored = {k for k, _ in got}
        assert scored == usable, f"missing {sorted(usable - scored)}, unexpected {sorted(scored - usable)}"
        assert all(isinstance(v["Lead_Score__c"], int) for _, v in got) and leaked == []
        assert sorted(json.loads(d["payload"])["Id"] for d in dlq) == sorted(r["Id"] for r in leads[3:5])
        assert {d["reason"] for d in dlq} == {"model output: score is null"}
        assert all(json.loads(d["payload"])["model_version"] == artifact.version for d in dlq)
    finally:
        try:
            for name, ident in engine.running(settings.statement_prefix + "-").items():
                engine.stop(pipeline, name, ident)
        finally:
            server.stop()  # also when a failing statement cannot be stopped with a savepoint

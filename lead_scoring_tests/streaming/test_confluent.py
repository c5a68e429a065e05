"""The gcp rollout against a fake Confluent Cloud (httpx.MockTransport): the exact requests it sends."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from lead_scoring.streaming.confluent import ConfluentApiError, ConfluentFlink
from lead_scoring.streaming.engine import RolloutError
from lead_scoring.streaming.render import Dialect, RenderSettings, StatementRole, render_pipeline
from lead_scoring.streaming.rollout import rollout

ORG, ENV = "org-1", "env-abc"
BASE = f"/sql/v1/organizations/{ORG}/environments/{ENV}"
ENDPOINT = "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/42"
SERVICE_KEY = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----SECRET"}'


class FakeConfluent:
    """Statements and connections in memory; records every request."""

    def __init__(self, fail: set[str] | None = None):
        self.statements: dict[str, dict[str, Any]] = {}
        self.connections: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.fail = fail or set()
        self.version = 0

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append((request.method, path, body))
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"key:secret").decode()
        if path.startswith(f"{BASE}/connections"):
            name = path.rsplit("/", 1)[-1]
            if request.method == "GET":
                return httpx.Response(200, json=self.connections[name]) if name in self.connections else httpx.Response(404, json={})
            self.connections[body["name"]] = body
            return httpx.Response(201, json={"name": body["name"]})
        if request.method == "GET" and path == f"{BASE}/statements":
            return httpx.Response(200, json={"data": list(self.statements.values()), "metadata": {}})
        name = path.rsplit("/", 1)[-1]
        if request.method == "POST":
            self.version += 1
            sql = body["spec"]["statement"]
            phase = "COMPLETED" if sql.startswith("CREATE") else "RUNNING"
            if body["name"] in self.fail:
                phase = "FAILED"
            self.statements[body["name"]] = {**body, "status": {"phase": phase, "detail": "boom" if phase == "FAILED" else ""},
                                             "metadata": {"resource_version": str(self.version)}}
            return httpx.Response(200, json=self.statements[body["name"]])
        if request.method == "GET":
            return httpx.Response(200, json=self.statements[name]) if name in self.statements else httpx.Response(404, json={"errors": [{"detail": "not found"}]})
        if request.method == "PUT":
            st = self.statements[name]
            assert body["metadata"]["resource_version"] == st["metadata"]["resource_version"]
            self.version += 1
            st["spec"] = body["spec"]
            st["metadata"] = {**body["metadata"], "resource_version": str(self.version)}
            st["status"] = {"phase": "STOPPED" if body["spec"]["stopped"] else "RUNNING"}
            return httpx.Response(200, json=st)
        if request.method == "DELETE":
            self.statements.pop(name, None)
            return httpx.Response(202)
        raise AssertionError(f"unexpected {request.method} {path}")


def resource(fake: FakeConfluent) -> ConfluentFlink:
    return ConfluentFlink(
        base_url="https://flink.us-central1.gcp.confluent.cloud", organization_id=ORG, environment_id=ENV,
        compute_pool_id="lfcp-1", principal="sa-1", catalog="lead-env", database="lead-cluster",
        api_key="key", api_secret="secret", vertex_service_key=SERVICE_KEY, poll_interval_s=0.0,
    ).with_transport(httpx.MockTransport(fake.handler))


def pipeline(version: str):
    return render_pipeline(RenderSettings(Dialect.CONFLUENT, version, ENDPOINT))


def engine(fake: FakeConfluent) -> ConfluentFlink:
    return resource(fake)


def test_first_rollout_creates_connection_tables_model_and_statements() -> None:
    fake = FakeConfluent()
    p = pipeline("v1")
    report = rollout(engine(fake), p)

    posts = [(path, body) for method, path, body in fake.requests if method == "POST"]
    conn_path, conn = posts[0]
    assert conn_path == f"{BASE}/connections"
    # the Flink REST spec's PlaintextProvider, the key under SERVICE_KEY (as `confluent flink connection create
    # --service-key` sends it)
    assert conn == {"name": "vertex-lead-scorer", "spec": {
        "connection_type": "VERTEXAI", "endpoint": ENDPOINT,
        "auth_data": {"kind": "PlaintextProvider", "data": json.dumps({"SERVICE_KEY": SERVICE_KEY})}}}
    names = [body["name"] for path, body in posts if path == f"{BASE}/statements"]
    assert names == [
        "lead-scoring-ddl-input-avro", "lead-scoring-ddl-leads", "lead-scoring-ddl-contacts",
        "lead-scoring-ddl-lead-scores", "lead-scoring-ddl-contact-scores", "lead-scoring-ddl-dlq",
        "lead-scoring-model-v1", "lead-scoring-validate", "lead-scoring-route",
        "lead-scoring-score-leads-v1", "lead-scoring-score-contacts-v1",
    ]
    first = next(body for path, body in posts if body.get("name") == "lead-scoring-score-leads-v1")
    assert first == {
        "name": "lead-scoring-score-leads-v1", "organization_id": ORG, "environment_id": ENV,
        "spec": {"statement": p.statements[StatementRole.SCORE_LEADS].sql,
                 "properties": {"sql.current-catalog": "lead-env", "sql.current-database": "lead-cluster",
                                "sql.local-time-zone": "UTC"},
                 "compute_pool_id": "lfcp-1", "principal": "sa-1", "stopped": False},
        "metadata": {"labels": {"user.confluent.io/model-version": "v1", "user.confluent.io/lead-scoring-kind": "statement",
                                "user.confluent.io/lead-scoring-role": "score-leads",
                                "user.confluent.io/lead-scoring-retired": "false"}},
    }
    model = next(body for path, body in posts if body.get("name") == "lead-scoring-model-v1")
    assert model["spec"]["statement"].startswith("CREATE MODEL IF NOT EXISTS `lead_scorer_v1`")
    # the key travels only in the connection request, never in a statement
    for method, path, body in fake.requests:
        if path.startswith(f"{BASE}/statements") and body:
            assert "PRIVATE KEY" not in json.dumps(body)
    assert [s.action for s in report.statements] == ["started", "started", "started", "started"]


def test_new_version_stops_old_then_resumes_from_its_offsets() -> None:
    fake = FakeConfluent()
    rollout(engine(fake), pipeline("v1"))
    fake.requests.clear()
    report = rollout(engine(fake), pipeline("v2"))

    calls = [(m, p.removeprefix(BASE), (b or {}).get("name")) for m, p, b in fake.requests if m in ("POST", "PUT", "DELETE")]
    stop_leads = calls.index(("PUT", "/statements/lead-scoring-score-leads-v1", "lead-scoring-score-leads-v1"))
    start_leads = calls.index(("POST", "/statements", "lead-scoring-score-leads-v2"))
    stop_contacts = calls.index(("PUT", "/statements/lead-scoring-score-contacts-v1", "lead-scoring-score-contacts-v1"))
    start_contacts = calls.index(("POST", "/statements", "lead-scoring-score-contacts-v2"))
    assert stop_leads < start_leads < stop_contacts < start_contacts  # hand-over: never two versions at once
    put = next(b for m, p, b in fake.requests if m == "PUT" and p.endswith("score-leads-v1"))
    assert put["spec"]["stopped"] is True and put["spec"]["statement"] == pipeline("v1").statements[StatementRole.SCORE_LEADS].sql
    new = next(b for m, p, b in fake.requests if m == "POST" and (b or {}).get("name") == "lead-scoring-score-leads-v2")
    assert new["spec"]["properties"]["sql.tables.initial-offset-from"] == "lead-scoring-score-leads-v1"
    assert not any(n in ("lead-scoring-validate", "lead-scoring-route") for _, _, n in calls)  # left running
    assert report.stopped == ["lead-scoring-score-leads-v1", "lead-scoring-score-contacts-v1"]
    assert fake.statements["lead-scoring-score-leads-v1"]["status"]["phase"] == "STOPPED"


def test_same_version_twice_is_a_no_op() -> None:
    fake = FakeConfluent()
    rollout(engine(fake), pipeline("v1"))
    fake.requests.clear()
    report = rollout(engine(fake), pipeline("v1"))
    assert {m for m, _, _ in fake.requests} == {"GET"}  # list calls only: nothing created, stopped or deleted
    assert "already scoring" in report.notes[0]


def test_failed_new_statement_restores_the_old_one_and_fails() -> None:
    fake = FakeConfluent(fail={"lead-scoring-score-leads-v2"})
    rollout(engine(fake), pipeline("v1"))
    fake.requests.clear()
    with pytest.raises(RolloutError, match="lead-scoring-score-leads-v2 did not take over: .*FAILED: boom"):
        rollout(engine(fake), pipeline("v2"))
    old = fake.statements["lead-scoring-score-leads-v1"]
    assert old["status"]["phase"] == "RUNNING"
    # resumed in place (PUT spec.stopped=false, as `confluent flink statement resume`), never deleted and
    # recreated: a recreated statement would start from the earliest offset and rescore everything
    v1_calls = [(m, b) for m, p, b in fake.requests if p.endswith("/statements/lead-scoring-score-leads-v1")
                or (b or {}).get("name") == "lead-scoring-score-leads-v1"]
    assert [(m, b["spec"]["stopped"]) for m, b in v1_calls if m == "PUT"] == [("PUT", True), ("PUT", False)]
    assert not [m for m, _ in v1_calls if m in ("POST", "DELETE")]
    assert old["spec"]["properties"] == {"sql.current-catalog": "lead-env", "sql.current-database": "lead-cluster",
                                        "sql.local-time-zone": "UTC"}
    assert old["metadata"]["labels"]["user.confluent.io/lead-scoring-retired"] == "false"
    assert fake.statements["lead-scoring-score-contacts-v1"]["status"]["phase"] == "RUNNING"  # never touched
    assert "lead-scoring-score-contacts-v2" not in fake.statements


def test_api_errors_name_the_call_but_not_the_key() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return httpx.Response(404, json={})
        return httpx.Response(400, json={"errors": [{"detail": "invalid endpoint"}]})

    cc = resource(FakeConfluent()).with_transport(httpx.MockTransport(refuse))
    with pytest.raises(ConfluentApiError) as info:
        cc.ensure_vertex_connection("vertex-lead-scorer", ENDPOINT, SERVICE_KEY)
    assert "create connection vertex-lead-scorer" in str(info.value) and "invalid endpoint" in str(info.value)
    assert "PRIVATE KEY" not in str(info.value)

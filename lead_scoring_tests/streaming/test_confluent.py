"""The gcp rollout against a fake Confluent Cloud: the exact requests it sends, each held against Confluent's
own OpenAPI document (lead_scoring_tests/vendor/openapi.py), and the fake's answers too."""

from __future__ import annotations

import json

import httpx
import pytest

from lead_scoring.streaming.confluent import ConfluentFlink
from lead_scoring.streaming.confluent_api import ConfluentApiError
from lead_scoring.streaming.confluent_connections import ensure_vertex_connection, vertex_connection_body
from lead_scoring.streaming.engine import RolloutError
from lead_scoring.streaming.render import (
    Dialect,
    RenderSettings,
    StatementRole,
    render_pipeline,
)
from lead_scoring.streaming.rollout import rollout
from lead_scoring_tests.streaming.fake_confluent import (
    BASE,
    ENDPOINT,
    ENV,
    HOST,
    ORG,
    SERVICE_KEY,
    FakeConfluent,
    _error,
)
from lead_scoring_tests.vendor.openapi import OpenApiContract, confluent_sql_contract


@pytest.fixture()
def contract() -> OpenApiContract:
    return confluent_sql_contract()


CONTRACT: OpenApiContract | None = None


@pytest.fixture(autouse=True)
def _contract(contract: OpenApiContract):
    global CONTRACT
    CONTRACT = contract
    yield
    CONTRACT = None


def resource(fake: FakeConfluent) -> ConfluentFlink:
    assert CONTRACT is not None
    return ConfluentFlink(
        base_url=HOST,
        organization_id=ORG,
        environment_id=ENV,
        compute_pool_id="lfcp-1",
        principal="sa-1",
        catalog="lead-env",
        database="lead-cluster",
        api_key="key",
        api_secret="secret",
        vertex_service_key=SERVICE_KEY,
        poll_interval_s=0.0,
    ).with_transport(CONTRACT.transport(fake.handler))


def pipeline(version: str, connection: str = "vertex-lead-scorer"):
    """`connection` changes the model's DDL, so the scoring statements' SQL; the version changes no SQL."""
    return render_pipeline(RenderSettings(Dialect.CONFLUENT, version, ENDPOINT, vertex_connection=connection))


def engine(fake: FakeConfluent) -> ConfluentFlink:
    return resource(fake)


def names(p) -> dict[StatementRole, str]:
    return {role: st.name for role, st in p.statements.items()}


LEADS, CONTACTS = StatementRole.SCORE_LEADS, StatementRole.SCORE_CONTACTS


def test_first_rollout_creates_connection_tables_model_and_statements() -> None:
    fake = FakeConfluent()
    p = pipeline("v1")
    report = rollout(engine(fake), p)

    posts = [(path, body) for method, path, body in fake.requests if method == "POST"]
    conn_path, conn = posts[0]
    assert conn_path == f"{BASE}/connections"
    # the Flink REST spec's PlaintextProvider, the key under SERVICE_KEY (as `confluent flink connection create
    # --service-key` sends it)
    assert conn == {
        "name": "vertex-lead-scorer",
        "spec": {
            "connection_type": "VERTEXAI",
            "endpoint": ENDPOINT,
            "auth_data": {"kind": "PlaintextProvider", "data": json.dumps({"SERVICE_KEY": SERVICE_KEY})},
        },
    }
    created = [body["name"] for path, body in posts if path == f"{BASE}/statements"]
    model_ddl = "lead-scoring-ddl-" + p.model_name.replace("_", "-")
    assert created == [
        "lead-scoring-ddl-input-avro",
        "lead-scoring-ddl-leads",
        "lead-scoring-ddl-contacts",
        "lead-scoring-ddl-lead-scores",
        "lead-scoring-ddl-contact-scores",
        "lead-scoring-ddl-dlq",
        model_ddl,
        *names(p).values(),
    ]
    assert [n.rsplit("-", 1)[0] for n in names(p).values()] == [
        "lead-scoring-validate",
        "lead-scoring-route",
        "lead-scoring-score-leads",
        "lead-scoring-score-contacts",
    ]
    first = next(body for path, body in posts if body.get("name") == names(p)[LEADS])
    assert first == {
        "name": names(p)[LEADS],
        "organization_id": ORG,
        "environment_id": ENV,
        "spec": {
            "statement": p.statements[LEADS].sql,
            "properties": {
                "sql.current-catalog": "lead-env",
                "sql.current-database": "lead-cluster",
                "sql.local-time-zone": "UTC",
                "sql.state-ttl": "1 h",
            },
            "compute_pool_id": "lfcp-1",
            "principal": "sa-1",
            "stopped": False,
        },
        "metadata": {
            "labels": {
                "user.confluent.io/lead-scoring-kind": "statement",
                "user.confluent.io/lead-scoring-role": "score-leads",
                "user.confluent.io/lead-scoring-retired": "false",
            }
        },
    }
    model = next(body for path, body in posts if body.get("name") == model_ddl)
    assert model["spec"]["statement"].startswith(f"CREATE MODEL IF NOT EXISTS `{p.model_name}`")
    # the key travels only in the connection request, never in a statement
    for _method, path, body in fake.requests:
        if path.startswith(f"{BASE}/statements") and body:
            assert "PRIVATE KEY" not in json.dumps(body)
    assert [s.action for s in report.statements] == ["started", "started", "started", "started"]


def test_a_new_model_version_behind_the_endpoint_changes_no_statement() -> None:
    fake = FakeConfluent()
    rollout(engine(fake), pipeline("v1"))
    fake.requests.clear()
    report = rollout(engine(fake), pipeline("v2"))
    assert names(pipeline("v2")) == names(pipeline("v1"))
    writes = [
        (m, p)
        for m, p, _ in fake.requests
        if m in ("PUT", "DELETE") or (m == "POST" and not p.endswith("/connections"))
    ]
    # the model DDL is idempotent (IF NOT EXISTS, already COMPLETED: not run again); no statement stops
    assert writes == []
    assert [s.action for s in report.statements] == ["unchanged"] * 4
    assert "nothing to hand over" in report.notes[-1]


def test_changed_sql_stops_the_old_statement_then_resumes_from_its_offsets() -> None:
    fake = FakeConfluent()
    old, new = pipeline("v1"), pipeline("v2", connection="vertex-lead-scorer-2")
    rollout(engine(fake), old)
    fake.requests.clear()
    report = rollout(engine(fake), new)

    calls = [
        (m, p.removeprefix(BASE), (b or {}).get("name")) for m, p, b in fake.requests if m in ("POST", "PUT", "DELETE")
    ]
    stop_leads = calls.index(("PUT", f"/statements/{names(old)[LEADS]}", names(old)[LEADS]))
    start_leads = calls.index(("POST", "/statements", names(new)[LEADS]))
    stop_contacts = calls.index(("PUT", f"/statements/{names(old)[CONTACTS]}", names(old)[CONTACTS]))
    start_contacts = calls.index(("POST", "/statements", names(new)[CONTACTS]))
    assert stop_leads < start_leads < stop_contacts < start_contacts  # hand-over: never two at once
    put = next(b for m, p, b in fake.requests if m == "PUT" and p.endswith(names(old)[LEADS]))
    assert put["spec"]["stopped"] is True and put["spec"]["statement"] == old.statements[LEADS].sql
    started = next(b for m, p, b in fake.requests if m == "POST" and (b or {}).get("name") == names(new)[LEADS])
    assert started["spec"]["properties"]["sql.tables.initial-offset-from"] == names(old)[LEADS]
    # validate and route render the same SQL: same names, left running
    assert names(new)[StatementRole.VALIDATE] == names(old)[StatementRole.VALIDATE]
    assert not any(n in (names(old)[StatementRole.VALIDATE], names(old)[StatementRole.SPLIT]) for _, _, n in calls)
    assert report.stopped == [names(old)[LEADS], names(old)[CONTACTS]]
    assert fake.statements[names(old)[LEADS]]["status"]["phase"] == "STOPPED"


def test_same_version_twice_is_a_no_op() -> None:
    fake = FakeConfluent()
    rollout(engine(fake), pipeline("v1"))
    fake.requests.clear()
    report = rollout(engine(fake), pipeline("v1"))
    assert {m for m, _, _ in fake.requests} == {"GET"}  # list calls only: nothing created, stopped or deleted
    assert "nothing to hand over" in report.notes[-1]


def test_failed_new_statement_restores_the_old_one_and_fails() -> None:
    old, new = pipeline("v1"), pipeline("v2", connection="vertex-lead-scorer-2")
    fake = FakeConfluent(fail={names(new)[LEADS]})
    rollout(engine(fake), old)
    fake.requests.clear()
    with pytest.raises(RolloutError, match=f"{names(new)[LEADS]} did not take over: .*FAILED: boom"):
        rollout(engine(fake), new)
    before = fake.statements[names(old)[LEADS]]
    assert before["status"]["phase"] == "RUNNING"
    # resumed in place (PUT spec.stopped=false, as `confluent flink statement resume`), never deleted and
    # recreated: a recreated statement would start from the earliest offset and rescore everything
    calls = [
        (m, b)
        for m, p, b in fake.requests
        if p.endswith(f"/statements/{names(old)[LEADS]}") or (b or {}).get("name") == names(old)[LEADS]
    ]
    assert [(m, b["spec"]["stopped"]) for m, b in calls if m == "PUT"] == [("PUT", True), ("PUT", False)]
    assert not [m for m, _ in calls if m in ("POST", "DELETE")]
    assert before["spec"]["properties"] == {
        "sql.current-catalog": "lead-env",
        "sql.current-database": "lead-cluster",
        "sql.local-time-zone": "UTC",
        "sql.state-ttl": "1 h",
    }
    assert before["metadata"]["labels"]["user.confluent.io/lead-scoring-retired"] == "false"
    assert fake.statements[names(old)[CONTACTS]]["status"]["phase"] == "RUNNING"  # never touched
    assert names(new)[CONTACTS] not in fake.statements


def test_api_errors_name_the_call_but_not_the_key() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            return _error(404, "no such connection")
        return _error(400, "invalid endpoint")

    cc = resource(FakeConfluent()).with_transport(CONTRACT.transport(refuse))
    with pytest.raises(ConfluentApiError) as info:
        ensure_vertex_connection(cc.api, "vertex-lead-scorer", ENDPOINT, SERVICE_KEY)
    assert "create connection vertex-lead-scorer" in str(info.value) and "invalid endpoint" in str(info.value)
    assert "PRIVATE KEY" not in str(info.value)


def test_every_request_of_a_rollout_history_is_one_the_openapi_document_allows(contract: OpenApiContract) -> None:
    """First rollout, upgrade, failed upgrade with restore, healing, paging: all through the spec check."""
    third = pipeline("v3", connection="vertex-lead-scorer-3")
    fake = FakeConfluent(fail={names(third)[LEADS]}, page_size=3)
    rollout(engine(fake), pipeline("v1"))
    rollout(engine(fake), pipeline("v2", connection="vertex-lead-scorer-2"))
    with pytest.raises(RolloutError):
        rollout(engine(fake), third)
    engine(fake).heal("lead-scoring")
    fake.fail.clear()
    rollout(engine(fake), third)  # the failed statement is deleted and created again
    assert {
        "createSqlv1Connection",
        "getSqlv1Connection",
        "createSqlv1Statement",
        "getSqlv1Statement",
        "listSqlv1Statements",
        "updateSqlv1Statement",
        "deleteSqlv1Statement",
    } <= set(contract.checked)
    assert any(p.endswith("/statements") and m == "GET" for m, p, _ in fake.requests)


def test_the_old_connection_body_is_refused_by_the_openapi_document(contract: OpenApiContract) -> None:
    """The check that would have caught issue 12 #2: Confluent's schema has only the PlaintextProvider kind."""
    wrong = {
        "name": "vertex-lead-scorer",
        "spec": {
            "connection_type": "VERTEXAI",
            "endpoint": ENDPOINT,
            "auth_data": {"kind": "ServiceKey", "service_key": SERVICE_KEY},
        },
    }
    with pytest.raises(AssertionError, match="auth_data"):
        contract.check_request(httpx.Request("POST", f"{HOST}{BASE}/connections", json=wrong))
    stale = {"name": "s", "spec": {"statement": "x", "stopped": True}, "metadata": {}}
    with pytest.raises(AssertionError, match="resource_version"):
        contract.check_request(httpx.Request("PUT", f"{HOST}{BASE}/statements/s", json=stale))


def test_a_conflicting_update_is_read_again_and_retried() -> None:
    fake = FakeConfluent()
    leads = names(pipeline("v1"))[LEADS]
    rollout(engine(fake), pipeline("v1"))
    fake.requests.clear()
    fake.conflicts = 2
    engine(fake).api.update_statement(leads, stopped=True)
    puts = [b for m, p, b in fake.requests if m == "PUT"]
    gets = [p for m, p, b in fake.requests if m == "GET" and p.endswith(leads)]
    assert len(puts) == 3 and len(gets) == 3  # GET, reapply, PUT -- three times
    assert fake.statements[leads]["spec"]["stopped"] is True

    fake.conflicts = 10
    with pytest.raises(ConfluentApiError, match="409"):
        engine(fake).api.update_statement(leads, stopped=False, attempts=3)


def test_a_statement_being_deleted_is_awaited_before_its_name_is_created_again(contract: OpenApiContract) -> None:
    """Issue 28 #7: DELETE answers 202 (still deleting) and a POST of the same name answers 409 meanwhile.
    The failed statement of a rollout is deleted and created again: the engine waits for GET 404 first."""
    third = pipeline("v3", connection="vertex-lead-scorer-3")
    fake = FakeConfluent(fail={names(third)[LEADS]}, delete_gets=3)
    rollout(engine(fake), pipeline("v1"))
    with pytest.raises(RolloutError):
        rollout(engine(fake), third)
    fake.fail.clear()
    fake.requests.clear()
    rollout(engine(fake), third)  # the failed statement is deleted and created again
    leads = names(third)[LEADS]
    calls = [
        (m, p.rsplit("/", 1)[-1])
        for m, p, b in fake.requests
        if p.endswith(f"/{leads}") or (b or {}).get("name") == leads
    ]
    first_post = calls.index(("POST", "statements"))
    assert calls[first_post - 1] == ("GET", leads)  # the last GET before the POST answered 404
    assert ("DELETE", leads) in calls[:first_post]
    assert [c for c in calls[:first_post] if c == ("GET", leads)][-4:] == [("GET", leads)] * 4
    assert fake.statements[leads]["status"]["phase"] == "RUNNING"
    assert "deleteSqlv1Statement" in contract.checked


def test_a_create_refused_with_409_while_the_old_one_is_deleting_is_retried_then_bounded() -> None:
    fake = FakeConfluent(delete_gets=2)
    cc = engine(fake)
    cc.api.create_statement("ddl-1", "CREATE TABLE t (a INT)")
    cc.api.delete_statement("ddl-1", wait=False)
    assert fake.statements["ddl-1"]["status"]["phase"] == "DELETING"
    created = cc.api.create_statement("ddl-1", "CREATE TABLE t (a INT, b INT)")  # 409, 409, then 201
    assert created["spec"]["statement"] == "CREATE TABLE t (a INT, b INT)"
    posts = [b["name"] for m, p, b in fake.requests if m == "POST"]
    assert posts == ["ddl-1"] * 4

    # a name that never frees up: bounded, and the error says what to do
    stuck = FakeConfluent(delete_gets=10_000)
    cc = engine(stuck).model_copy(update={"delete_timeout_s": 0.2, "poll_interval_s": 0.01})
    cc = cc.with_transport(CONTRACT.transport(stuck.handler))
    cc.api.create_statement("ddl-2", "CREATE TABLE t (a INT)")
    with pytest.raises(TimeoutError, match="statement ddl-2 deleted not reached .*DELETING"):
        cc.api.delete_statement("ddl-2")
    with pytest.raises(ConfluentApiError, match="409 .*still exists after 0 s"):
        cc.api.create_statement("ddl-2", "CREATE TABLE t (a INT)")


def _connection_request(spec: dict) -> httpx.Request:
    return httpx.Request("POST", f"{HOST}{BASE}/connections", json={"name": "vertex-lead-scorer", "spec": spec})


def test_the_mistakes_the_vendor_schema_lets_through_are_refused_by_our_strict_bodies(
    contract: OpenApiContract,
) -> None:
    """Issue 28 #9: Confluent's document accepts these three; our schemas from its Go SDK and CLI do not."""
    from lead_scoring_tests.vendor.strict_bodies import strict_body_errors

    good = vertex_connection_body("vertex-lead-scorer", ENDPOINT, SERVICE_KEY)
    contract.check_request(_connection_request(good["spec"]))  # what we send passes both
    empty_auth = {**good["spec"], "auth_data": {}}
    raw_key = {**good["spec"], "auth_data": {"kind": "PlaintextProvider", "data": SERVICE_KEY}}
    cc = resource(FakeConfluent())
    statement = cc.api.statement_body("s-1", "INSERT INTO t SELECT 1")
    typo = {**statement, "spec": {**statement["spec"], "stoped": True}}
    update = {
        "name": "s-1",
        "organization_id": ORG,
        "environment_id": ENV,
        "metadata": {"resource_version": "3"},
        "spec": {**statement["spec"], "stoped": True},
    }
    # the vendor document alone lets each through (what the check did before)
    assert not strict_body_errors("nope", empty_auth)
    contract._validate(
        {"name": "c", "spec": empty_auth},
        contract.operation("POST", f"{BASE}/connections").spec["requestBody"]["content"]["application/json"]["schema"],
        "request",
        "vendor only",
    )
    with pytest.raises(AssertionError, match="auth_data: 'kind' is a required property"):
        contract.check_request(_connection_request(empty_auth))
    with pytest.raises(AssertionError, match="auth_data/data: not a JSON object of secrets|SERVICE_KEY"):
        contract.check_request(_connection_request(raw_key))
    wrong_key_name = {
        **good["spec"],
        "auth_data": {"kind": "PlaintextProvider", "data": json.dumps({"service_key": SERVICE_KEY})},
    }
    with pytest.raises(AssertionError, match="'SERVICE_KEY' is a required property"):
        contract.check_request(_connection_request(wrong_key_name))
    with pytest.raises(AssertionError, match="'stoped' was unexpected"):
        contract.check_request(httpx.Request("POST", f"{HOST}{BASE}/statements", json=typo))
    with pytest.raises(AssertionError, match="'stoped' was unexpected"):
        contract.check_request(httpx.Request("PUT", f"{HOST}{BASE}/statements/s-1", json=update))

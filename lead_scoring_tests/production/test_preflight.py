"""`gcp_preflight` / `lead-scoring preflight` against loopback vendors: every resource and permission reported."""

from __future__ import annotations

import json
from types import SimpleNamespace

import dagster as dg
import grpc
import httpx
import pytest
from typer.testing import CliRunner

from lead_scoring.cli import app
from lead_scoring.crm.salesforce import SalesforceResource
from lead_scoring.production.preflight import (
    ConfluentCloudApi,
    PreflightTargets,
    Status,
    run_preflight,
)
from lead_scoring.serving.vertex import VertexAIModelServing
from lead_scoring.settings import Profile
from lead_scoring.streaming.confluent import ConfluentFlink
from lead_scoring.streaming.confluent_connections import ensure_vertex_connection
from lead_scoring.warehouse.tables import TABLES
from lead_scoring_tests.crm.fake_salesforce import FakeSalesforce
from lead_scoring_tests.production.fake_gcs import FakeGcs
from lead_scoring_tests.serving.fake_vertex import MODEL as VERTEX_MODEL
from lead_scoring_tests.serving.fake_vertex import FakeVertex
from lead_scoring_tests.streaming.fake_confluent import (
    ENV,
    HOST,
    ORG,
    FakeConfluent,
    _error,
)
from lead_scoring_tests.vendor.openapi import confluent_sql_contract
from lead_scoring_tests.warehouse.fake_bigquery import FakeBigQuery

USER, PASSWORD, TOKEN = "integration@acme.example", "s3cr3t-Pa55", "TOKEN123xyz"
SECRETS = {
    "CONFLUENT_KAFKA_API_KEY": "KAFKAKEY",
    "CONFLUENT_KAFKA_API_SECRET": "kafka-s3cr3t-value",
    "SALESFORCE_INSTANCE_URL": "https://acme.my.salesforce.com",
    "SALESFORCE_USERNAME": USER,
    "SALESFORCE_CONSUMER_KEY": "3MVG9-key",
    "SALESFORCE_JWT_KEYSTORE_FILE": "data:;base64,AAAA",
    "SALESFORCE_JWT_KEYSTORE_PASSWORD": "keystore-s3cr3t-value",
    "GCP_SERVICE_ACCOUNT_KEY_JSON": "{}",
    "LEAD_SCORING_GCP_PROJECT": "acme-prod",
    "LEAD_SCORING_BQ_DATASET": "lead_scoring",
}


class FakeConfluentCloud:
    """api.confluent.cloud: fcpm/v2 compute pools and Connect's config/validate."""

    def __init__(self, errors: dict[str, str] | None = None):
        self.errors = errors or {}
        self.validated: list[dict] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "GET" and path == "/fcpm/v2/compute-pools/lfcp-1":
            assert request.url.params["environment"] == ENV
            return httpx.Response(
                200,
                json={
                    "id": "lfcp-1",
                    "spec": {"cloud": "GCP", "region": "europe-west4", "max_cfu": 10},
                    "status": {"phase": "PROVISIONED"},
                },
            )
        if request.method == "PUT" and path.endswith("/config/validate"):
            assert path.startswith(f"/connect/v1/environments/{ENV}/clusters/lkc-1/connector-plugins/")
            config = json.loads(request.content)
            self.validated.append(config)
            return httpx.Response(
                200,
                json={
                    "name": config["connector.class"],
                    "error_count": 0,
                    "configs": [
                        {"value": {"name": k, "value": v, "errors": [self.errors[k]] if k in self.errors else []}}
                        for k, v in config.items()
                    ],
                },
            )
        return httpx.Response(404, json={"errors": [{"detail": f"no {request.method} {path}"}]})


@pytest.fixture()
def world(monkeypatch):
    from google.api_core import grpc_helpers
    from google.auth.credentials import AnonymousCredentials
    from google.cloud.aiplatform import initializer

    contract = confluent_sql_contract()
    confluent = FakeConfluent()
    gcs = FakeGcs(buckets={"acme-ml"}).start()
    bq = FakeBigQuery(datasets={"lead_scoring": list(TABLES)}).start()
    vertex = FakeVertex().start()
    monkeypatch.setattr(grpc_helpers, "create_channel", lambda target, *a, **kw: grpc.insecure_channel(target))
    saved = dict(vars(initializer.global_config))
    salesforce = FakeSalesforce(USER, PASSWORD, TOKEN, known_ids=set())
    cloud = FakeConfluentCloud()
    flink = ConfluentFlink(
        base_url=HOST,
        organization_id=ORG,
        environment_id=ENV,
        compute_pool_id="lfcp-1",
        principal="sa-1",
        catalog="lead-env",
        database="lead-cluster",
        api_key="key",
        api_secret="secret",
        poll_interval_s=0.0,
    ).with_transport(contract.transport(confluent.handler))
    serving = VertexAIModelServing(
        project="p", region="europe-west4", endpoint_id="123", image_uri="img", parent_model=VERTEX_MODEL
    ).with_client_options(credentials=AnonymousCredentials(), api_endpoint=f"127.0.0.1:{vertex.port}")
    ensure_vertex_connection(flink.api, "vertex-lead-scorer", serving.endpoint_url(), '{"type": "service_account"}')
    crm = SalesforceResource(username=USER, password=PASSWORD, security_token=TOKEN).with_session_factory(
        salesforce.session
    )

    def targets() -> PreflightTargets:
        api = ConfluentCloudApi("cloud-key", "cloud-secret", ENV, "lkc-1", transport=httpx.MockTransport(cloud.handler))
        return PreflightTargets(
            flink=flink,
            connection="vertex-lead-scorer",
            expected_endpoint=serving.endpoint_url(),
            storage_client=gcs.client,
            bucket="acme-ml",
            bigquery_client=bq.client,
            project="acme-prod",
            dataset="lead_scoring",
            aiplatform=serving.aiplatform,
            endpoint_id="123",
            parent_model=VERTEX_MODEL,
            salesforce=crm.client,
            cloud=api,
            env=dict(SECRETS),
        )

    yield SimpleNamespace(
        confluent=confluent,
        gcs=gcs,
        bq=bq,
        vertex=vertex,
        salesforce=salesforce,
        cloud=cloud,
        flink=flink,
        contract=contract,
        targets=targets,
    )
    for fake in (gcs, bq, vertex):
        fake.stop()
    vars(initializer.global_config).clear()
    vars(initializer.global_config).update(saved)


def _by_resource(findings):
    return {f.resource: f for f in findings}


def test_a_ready_world_passes_every_check(world) -> None:
    findings = run_preflight(world.targets())
    assert [f for f in findings if f.status is not Status.OK] == []
    resources = set(_by_resource(findings))
    assert {
        "statements API of environment env-abc",
        "compute pool lfcp-1",
        "connection vertex-lead-scorer",
        "bucket gs://acme-ml",
        "dataset acme-prod.lead_scoring",
        "tables of acme-prod.lead_scoring",
        "endpoint 123",
        f"model {VERTEX_MODEL}",
        "Lead.Lead_Score__c",
        "Contact.Lead_Grade__c",
        "connector lead-scoring-salesforce-scores-sink",
        "connector lead-scoring-bigquery-sink",
    } <= resources
    # read-only: nothing was created, stopped or deleted in Confluent, only GETs after the setup
    assert {m for m, _, _ in world.confluent.requests[2:]} == {"GET"}
    assert world.bq.job_configs("query") == [] and world.bq.job_configs("load") == []
    assert world.vertex.names() == []  # Get* reads only
    # the connector configs went to Confluent's validate endpoint with the placeholders filled in
    sink = next(c for c in world.cloud.validated if c["connector.class"] == "SalesforceSObjectSink")
    assert sink["kafka.api.secret"] == "kafka-s3cr3t-value" and "${" not in json.dumps(sink)


def test_each_missing_resource_or_permission_is_named_with_the_fix(world) -> None:
    world.gcs.buckets.clear()
    world.bq.datasets["lead_scoring"] = ["crm_leads_raw", "lead_scores"]
    world.bq.permissions = {"bigquery.tables.getData"}
    world.vertex.endpoint_status = grpc.StatusCode.NOT_FOUND
    del world.salesforce.described["Lead"]["Lead_Grade__c"]
    world.salesforce.described["Contact"]["Lead_Score__c"]["updateable"] = False
    world.cloud.errors = {"include.deleted.records": "Unknown configuration"}
    world.confluent.connections.clear()

    found = _by_resource(run_preflight(world.targets()))
    assert found["connection vertex-lead-scorer"].status is Status.MISSING
    assert "EnvironmentAdmin" in found["connection vertex-lead-scorer"].fix
    assert found["bucket gs://acme-ml"].status is Status.MISSING
    assert "gcloud storage buckets create gs://acme-ml" in found["bucket gs://acme-ml"].fix
    tables = found["tables of acme-prod.lead_scoring"]
    assert tables.status is Status.MISSING and "crm_leads" in tables.detail and "ensure_tables" in tables.fix
    lead_scores = found["table acme-prod.lead_scoring.lead_scores"]
    assert lead_scores.status is Status.FORBIDDEN and "bigquery.tables.updateData" in lead_scores.detail
    assert found["endpoint 123"].status is Status.MISSING and "gcloud ai endpoints create" in found["endpoint 123"].fix
    grade = found["Lead.Lead_Grade__c"]
    assert grade.status is Status.MISSING and "Picklist (A, B, C, D)" in grade.fix
    score = found["Contact.Lead_Score__c"]
    assert score.status is Status.FORBIDDEN and "field-level security" in score.fix
    source = found["connector lead-scoring-salesforce-lead-source"]
    assert source.status is Status.ERROR and "include.deleted.records: Unknown configuration" in source.detail
    for finding in found.values():
        assert "s3cr3t" not in finding.detail + finding.fix


def test_the_orgs_limits_are_read_and_a_configuration_over_the_share_is_refused(world) -> None:
    """Issue 28: GET /services/data/vXX.X/limits; the connectors' projected calls against DailyApiRequests and
    DailyBulkV2QueryJobs (each within 50 % by default)."""
    found = _by_resource(run_preflight(world.targets()))
    budget = found["API budget"]
    assert budget.status is Status.OK
    assert (
        "11,520 API calls/day (5.8% of 200,000)" in budget.detail
        and "2,880 query jobs/day (28.8% of 10,000)" in budget.detail
        and "199,500 API calls left" in budget.detail
    )
    assert any(c.url.endswith("/limits/") and c.method == "GET" for c in world.salesforce.calls)

    # a small org: 15,000 a day (a Developer Edition's), 11,520 planned is 77 %
    world.salesforce.limits["DailyApiRequests"] = {"Max": 15_000, "Remaining": 15_000}
    budget = _by_resource(run_preflight(world.targets()))["API budget"]
    assert budget.status is Status.ERROR and budget.blocking
    assert "11,520 API calls/day is 77% of DailyApiRequests 15,000 (allowed share 50%)" in budget.detail
    assert "poll_interval_ms" in budget.fix

    # fewer query jobs than the sources' polls need
    world.salesforce.limits["DailyApiRequests"] = {"Max": 200_000, "Remaining": 200_000}
    world.salesforce.limits["DailyBulkV2QueryJobs"] = {"Max": 5_000, "Remaining": 5_000}
    budget = _by_resource(run_preflight(world.targets()))["API budget"]
    assert (
        budget.status is Status.ERROR
        and "2,880 Bulk API 2.0 query jobs/day is 58% of DailyBulkV2QueryJobs" in budget.detail
    )

    # a stated higher share lets it through; a change rate is part of the check
    targets = world.targets()
    targets.api_share = 0.6
    assert _by_resource(run_preflight(targets))["API budget"].status is Status.OK
    del world.salesforce.limits["DailyBulkV2QueryJobs"]
    budget = _by_resource(run_preflight(world.targets()))["API budget"]
    assert budget.status is Status.ERROR and "no DailyApiRequests / DailyBulkV2QueryJobs Max" in budget.detail


def test_a_refused_flink_key_is_forbidden_and_stops_the_confluent_checks(world) -> None:
    world.flink.with_transport(world.contract.transport(lambda r: _error(401, "invalid API key")))
    found = _by_resource(run_preflight(world.targets()))
    key = found["statements API of environment env-abc"]
    assert key.status is Status.FORBIDDEN and "FlinkDeveloper" in key.fix and "invalid API key" in key.detail
    assert "connection vertex-lead-scorer" not in found


def test_the_asset_check_is_in_the_gcp_definitions_only(monkeypatch) -> None:
    from lead_scoring.definitions import defs
    from lead_scoring.production import definitions as production

    assert production.defs(Profile.LOCAL).asset_checks == []
    monkeypatch.setenv("LEAD_SCORING_PROFILE", "gcp")
    checks = defs().resolve_asset_graph().asset_check_keys
    assert dg.AssetCheckKey(dg.AssetKey("flink_statements"), "gcp_preflight") in checks


def test_cli_names_the_missing_setting(monkeypatch) -> None:
    monkeypatch.delenv("CONFLUENT_FLINK_REST_ENDPOINT", raising=False)
    result = CliRunner().invoke(app, ["preflight", "--profile", "gcp"])
    assert result.exit_code == 2
    assert "CONFLUENT_FLINK_REST_ENDPOINT" in result.output


def test_a_score_field_of_the_right_type_but_too_small_for_what_is_written_is_an_error(world) -> None:
    """Issue 28: a Text(255) reasons field, a Number(2, 0) score, a Text(10) model version or a picklist without
    one of the grades takes the type check, then rejects writes (STRING_TOO_LONG, NUMBER_OUTSIDE_VALID_RANGE,
    INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST): preflight names each."""
    lead, contact = world.salesforce.described["Lead"], world.salesforce.described["Contact"]
    lead["Lead_Score_Reasons__c"] = {"type": "string", "length": 255, "updateable": True}
    lead["Lead_Score__c"]["precision"] = 2
    contact["Lead_Score_Model__c"]["length"] = 10
    contact["Lead_Grade__c"]["picklistValues"] = [
        v for v in contact["Lead_Grade__c"]["picklistValues"] if v["value"] != "D"
    ]
    found = _by_resource(run_preflight(world.targets()))
    reasons = found["Lead.Lead_Score_Reasons__c"]
    assert reasons.status is Status.ERROR and "length 255 < 772" in reasons.detail
    assert "Long Text Area(32768)" in reasons.fix
    assert "100 does not fit" in found["Lead.Lead_Score__c"].detail
    assert "length 10 < 23" in found["Contact.Lead_Score_Model__c"].detail
    assert found["Contact.Lead_Grade__c"].detail == "picklist without the value(s) D"
    # as an admin creates them (docs/production.md, section 3): all fine
    for name in ("Contact.Lead_Score__c", "Lead.Lead_Score_Model__c", "Lead.Lead_Grade__c"):
        assert found[name].status is Status.OK, found[name]


def test_the_contracts_custom_fields_are_in_the_docs_and_a_missing_one_is_named(world) -> None:
    """docs/production.md lists every custom field the contract reads (the table is generated, kept equal here);
    preflight names those an object lacks: the source would send them as null, features the model never sees."""
    from pathlib import Path

    from lead_scoring.production.preflight import CONTRACT_CUSTOM_FIELDS, contract_custom_fields_markdown

    docs = (Path(__file__).resolve().parents[2] / "docs" / "production.md").read_text()
    assert contract_custom_fields_markdown() in docs
    assert len(CONTRACT_CUSTOM_FIELDS) == 26
    found = _by_resource(run_preflight(world.targets()))
    assert found["Lead contract fields"].status is Status.OK
    del world.salesforce.described["Contact"]["Occupation__c"]
    world.salesforce.described["Lead"]["Ad_Search__c"]["type"] = "string"
    found = _by_resource(run_preflight(world.targets()))
    contact = found["Contact contract fields"]
    assert contact.status is Status.MISSING and contact.detail.endswith(": Occupation__c")
    lead = found["Lead contract fields"]
    assert lead.status is Status.ERROR and lead.detail == "wrong type: Ad_Search__c (string)"

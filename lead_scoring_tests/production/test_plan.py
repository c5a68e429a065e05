"""`lead-scoring plan --profile gcp`: every request of a first deployment, no network, no secret."""

from __future__ import annotations

import json
import socket

import httpx
import pytest
from typer.testing import CliRunner

from lead_scoring.cli import app
from lead_scoring.crm.assets import (
    ConnectorSettings,
    bigquery_sink_configs,
    salesforce_sink_configs,
    salesforce_source_configs,
)
from lead_scoring.production.plan import SECRETS, build_gcp_plan
from lead_scoring.streaming.confluent_statements import ddl_statements
from lead_scoring.streaming.render import (
    Dialect,
    RenderSettings,
    StatementRole,
    render_pipeline,
)
from lead_scoring.warehouse.tables import TABLES
from lead_scoring_tests.vendor.openapi import confluent_sql_contract

VERSION = "m20261201-090000-abc123"
ORG = "5e0c8f8e-2d59-4f9a-9a43-7d6f1f0b2a11"
SETTINGS = {
    "LEAD_SCORING_GCP_PROJECT": "acme-prod",
    "LEAD_SCORING_GCP_REGION": "europe-west4",
    "LEAD_SCORING_VERTEX_ENDPOINT": "1234567890",
    "LEAD_SCORING_SERVING_IMAGE": "europe-docker.pkg.dev/acme/ls/server:1",
    "LEAD_SCORING_GCS_BUCKET": "acme-ml",
    "LEAD_SCORING_BQ_DATASET": "lead_scoring",
    "CONFLUENT_FLINK_REST_ENDPOINT": "https://flink.europe-west4.gcp.confluent.cloud",
    "CONFLUENT_ORG_ID": ORG,
    "CONFLUENT_ENV_ID": "env-12345",
    "CONFLUENT_COMPUTE_POOL_ID": "lfcp-abcde",
    "CONFLUENT_FLINK_PRINCIPAL": "sa-xyz",
    "CONFLUENT_FLINK_CATALOG": "lead-env",
    "CONFLUENT_FLINK_DATABASE": "lead-cluster",
    "CONFLUENT_KAFKA_CLUSTER_ID": "lkc-98765",
}
SECRET_VALUES = {name: f"TOP-SECRET-{i}-value" for i, name in enumerate(SECRETS)}


@pytest.fixture()
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"plan opened a connection: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_plan_names_every_request_and_no_secret(monkeypatch, no_network) -> None:
    for name, value in {**SETTINGS, **SECRET_VALUES}.items():
        monkeypatch.setenv(name, value)
    result = CliRunner().invoke(app, ["plan", "--profile", "gcp", "--model-version", VERSION, "--json"])
    assert result.exit_code == 0, result.output
    for value in SECRET_VALUES.values():
        assert value not in result.output
    planned = json.loads(result.output)
    assert planned["unset"] == []
    names = {(s["system"], s["name"]) for s in planned["steps"]}

    pipeline = render_pipeline(RenderSettings(Dialect.CONFLUENT, VERSION, "https://x"))
    flink = {n for system, n in names if system == "Confluent Cloud Flink"}
    assert flink == {
        "vertex-lead-scorer",
        *(n for n, _ in ddl_statements(pipeline)),
        *(st.name for st in pipeline.statements.values()),
    }
    settings = ConnectorSettings()
    connectors = {
        c["name"]
        for c in (
            *salesforce_source_configs(settings),
            *salesforce_sink_configs(settings),
            *bigquery_sink_configs(settings),
        )
    }
    assert {n for system, n in names if system == "Confluent Cloud Connect"} == connectors
    assert {n for system, n in names if system == "Vertex AI"} == {
        "Model.upload",
        "Endpoint.deploy",
        "Endpoint.update",
        "Endpoint.predict",
        "Endpoint.undeploy",
    }
    bigquery = {n for system, n in names if system == "BigQuery"}
    assert {f"DDL {t}" for t in TABLES} <= bigquery and "training_data" in bigquery

    steps = {s["name"]: s for s in planned["steps"]}
    conn = json.loads(steps["vertex-lead-scorer"]["body"])
    # bare: the provider adds :predict
    assert conn["spec"]["endpoint"] == (
        "https://europe-west4-aiplatform.googleapis.com/v1/projects/acme-prod/"
        "locations/europe-west4/endpoints/1234567890"
    )
    assert json.loads(conn["spec"]["auth_data"]["data"]) == {"SERVICE_KEY": "${LEAD_SCORING_VERTEX_SERVICE_KEY}"}
    upload = json.loads(steps["Model.upload"]["body"])
    assert upload["artifact_uri"] == f"gs://acme-ml/lead-scoring/models/{VERSION}"
    leads = json.loads(steps[pipeline.statements[StatementRole.SCORE_LEADS].name]["body"])
    assert leads["spec"]["properties"]["sql.local-time-zone"] == "UTC"


def test_planned_flink_requests_are_ones_the_openapi_document_allows(monkeypatch) -> None:
    contract = confluent_sql_contract()
    for name, value in SETTINGS.items():
        monkeypatch.setenv(name, value)
    plan = build_gcp_plan(VERSION)
    assert plan.unset == []
    flink = plan.by_system("Confluent Cloud Flink")
    assert len(flink) == 12
    for step in flink:
        method, url = step.call.split(" ", 1)
        contract.check_request(httpx.Request(method, url, json=json.loads(step.body)))


def test_plan_rich_output_shows_sql_and_lists_unset_settings(monkeypatch, no_network) -> None:
    for name in (*SETTINGS, *SECRETS):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LEAD_SCORING_GCP_PROJECT", "acme-prod")
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(app, ["plan", "--model-version", VERSION])
    assert result.exit_code == 0, result.output
    assert "INSERT INTO `lead_scores`" in result.output and "CREATE TABLE IF NOT EXISTS crm_leads_raw" in result.output
    assert "not set (shown as ${NAME}):" in result.output and "CONFLUENT_ORG_ID" in result.output


def test_plan_refuses_other_profiles() -> None:
    result = CliRunner().invoke(app, ["plan", "--profile", "local", "--model-version", VERSION])
    assert result.exit_code == 2 and "only the gcp profile" in result.output

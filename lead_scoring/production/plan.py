"""`lead-scoring plan --profile gcp`: everything the gcp profile would send, for review, without sending anything.

For one model version it lists, in the order a first deployment issues them:

1. Confluent Cloud for Apache Flink (Statements API): the Vertex AI connection, the table and model DDL
   statements, the four long-running statements (their exact request bodies: SQL, properties, labels);
2. Confluent Cloud Connect: the three fully managed connector configs (crm connector-config assets);
3. Vertex AI: Model.upload, Endpoint.deploy (canary), Endpoint.update (promote), Endpoint.predict (smoke
   test), Endpoint.undeploy (the previous version), with the arguments VertexAIModelServing passes;
4. BigQuery: the DDL of every warehouse table and the queries the assets and sensors run;

and the Salesforce API arithmetic of the connectors (`production.api_budget`): projected calls per day for a
change rate and org size against the org's daily allocation.

The requests are built by the same code that sends them (StatementsApi.statement_body, the connector
config functions, VertexAIModelServing.upload_kwargs, TableSpec.ddl, the SQL builders). Secrets are never
read: they appear as `${VARIABLE}`; a non-secret setting that is not set appears the same way and is
listed in `Plan.unset`. Nothing here opens a connection.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

from pydantic_settings import BaseSettings

from lead_scoring.contract.samples import SMOKE_RECORD
from lead_scoring.crm.assets import (
    ConnectorSettings,
    bigquery_sink_configs,
    salesforce_sink_configs,
    salesforce_source_configs,
)
from lead_scoring.monitoring.assets import recent_leads_sql, recent_scores_sql
from lead_scoring.monitoring.sensors import new_labels_sql
from lead_scoring.production.api_budget import ApiBudget, project_api_budget
from lead_scoring.serving.vertex import VertexAIModelServing
from lead_scoring.settings import ConfluentCloudSettings, GcpSettings, env_var, load
from lead_scoring.storage.artifacts import ModelArtifact
from lead_scoring.streaming.confluent_api import StatementsApi
from lead_scoring.streaming.confluent_connections import vertex_connection_body
from lead_scoring.streaming.confluent_statements import ddl_statements, statement_request
from lead_scoring.streaming.render import (
    Dialect,
    RenderSettings,
    render_pipeline,
)
from lead_scoring.training.queries import training_data_sql
from lead_scoring.warehouse.tables import TABLES

CONFLUENT_CLOUD_API = "https://api.confluent.cloud"
# Secrets: never read, always shown as ${NAME}.
SECRETS = (
    "CONFLUENT_FLINK_API_KEY",
    "CONFLUENT_FLINK_API_SECRET",
    "LEAD_SCORING_VERTEX_SERVICE_KEY",
    "CONFLUENT_KAFKA_API_KEY",
    "CONFLUENT_KAFKA_API_SECRET",
    "CONFLUENT_CLOUD_API_KEY",
    "CONFLUENT_CLOUD_API_SECRET",
    "SALESFORCE_PASSWORD",
    "SALESFORCE_SECURITY_TOKEN",
    "SALESFORCE_PRIVATE_KEY",
    "SALESFORCE_JWT_KEYSTORE_FILE",
    "SALESFORCE_JWT_KEYSTORE_PASSWORD",
    "GCP_SERVICE_ACCOUNT_KEY_JSON",
)
SYSTEMS = ("Confluent Cloud Flink", "Confluent Cloud Connect", "Vertex AI", "BigQuery")


@dataclass(frozen=True)
class Step:
    system: str  # one of SYSTEMS
    call: str  # HTTP method + URL, or the client library call
    name: str  # statement / connector / table / method
    body: str  # JSON or SQL text
    language: str  # json | sql
    note: str = ""
    sql: str = ""  # the statement inside a JSON body, for display

    def display_body(self) -> str:
        """The body with the SQL inside a statement replaced by a pointer (the SQL is shown apart)."""
        if not self.sql:
            return self.body
        return self.body.replace(json.dumps(self.sql), '"<the SQL below>"')


@dataclass
class Plan:
    model_version: str
    steps: list[Step] = field(default_factory=list)
    unset: list[str] = field(default_factory=list)  # non-secret settings not set (shown as ${NAME})
    api_budget: ApiBudget | None = None  # the connectors' Salesforce API calls per day

    def by_system(self, system: str) -> list[Step]:
        return [s for s in self.steps if s.system == system]

    def as_json(self) -> str:
        return json.dumps(
            {
                "model_version": self.model_version,
                "unset": self.unset,
                "steps": [asdict(s) for s in self.steps],
                "salesforce_api_budget": self.api_budget.as_dict() if self.api_budget else None,
            },
            indent=2,
        )


class _Shown:
    """The values of non-secret settings as the plan shows them: ${NAME} when unset, and remembered as unset."""

    def __init__(self) -> None:
        self.unset: list[str] = []

    def __call__(self, settings: BaseSettings, field_name: str) -> str:
        name = env_var(type(settings), field_name)  # a misspelt field fails here (KeyError), never shows as unset
        value = getattr(settings, field_name)
        if value is not None:
            return str(value)
        if name not in self.unset:
            self.unset.append(name)
        return secret(name)


def secret(name: str) -> str:
    """A value the plan never reads, shown as ${NAME} (substituted from the environment when applied)."""
    return f"${{{name}}}"


def _json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, default=str)


@dataclass(frozen=True)
class OrgLoad:
    """The Salesforce org the plan is sized for: change rate and licences (docs/production.md, API budget)."""

    changes_per_day: int = 10_000
    licenses: int = 100
    edition: str = "Enterprise"
    share: float = 0.5


def build_gcp_plan(
    model_version: str,
    gcp: GcpSettings | None = None,
    confluent: ConfluentCloudSettings | None = None,
    connectors: ConnectorSettings | None = None,
    org: OrgLoad | None = None,
) -> Plan:
    """The plan of a first deployment of `model_version` with the gcp profile (no network, no secrets).

    `gcp` and `confluent` default to the environment's settings (a bad value raises `ConfigurationError`
    naming the variable).
    """
    gcp = gcp or load(GcpSettings)
    confluent = confluent or load(ConfluentCloudSettings)
    get = _Shown()
    plan = Plan(model_version=model_version)

    # -- Vertex AI (first: its endpoint is what the Confluent connection points at) -------------------
    vertex = VertexAIModelServing.model_construct(
        project=get(gcp, "gcp_project"),
        region=gcp.gcp_region or "us-central1",
        endpoint_id=get(gcp, "vertex_endpoint"),
        image_uri=get(gcp, "serving_image"),
        parent_model=gcp.vertex_parent_model,
        model_display_name="lead-scorer",
        model_name="lead_scorer",
        canary_percent=10,
        canary_seconds=0.0,
        machine_type="n1-standard-2",
        min_replicas=1,
        max_replicas=2,
        service_account=None,
    )
    bucket = get(gcp, "gcs_bucket")
    artifact = ModelArtifact(model_version, f"gs://{bucket}/lead-scoring/models/{model_version}", "<sha256>", {})
    upload = vertex.upload_kwargs(artifact)
    upload["version_description"] = f"lead_scoring {model_version} sha256 <first 12 hex of the manifest's sha256>"
    endpoint = vertex.endpoint_url()
    vertex_steps = [
        Step(
            "Vertex AI",
            "aiplatform.Model.upload",
            "Model.upload",
            _json(upload),
            "json",
            "a new version of the Model Registry model (our server image, the artifact on GCS)",
        ),
        Step(
            "Vertex AI",
            f"aiplatform.Endpoint({vertex.endpoint_id!r}).deploy",
            "Endpoint.deploy",
            _json({"model": "<the uploaded model version>", **vertex.deploy_kwargs(artifact, vertex.canary_percent)}),
            "json",
            "traffic_percentage is 100 on an empty endpoint (the first deployment)",
        ),
        Step(
            "Vertex AI",
            "Endpoint.update",
            "Endpoint.update",
            _json({"traffic_split": {"<new deployed model>": 100, "<previous deployed models>": 0}}),
            "json",
            "promotion after the canary; skipped on an empty endpoint",
        ),
        Step(
            "Vertex AI",
            "Endpoint.predict",
            "Endpoint.predict",
            _json({"instances": [SMOKE_RECORD]}),
            "json",
            "smoke test: the answer must carry the new version and the score the artifact gives this record",
        ),
        Step(
            "Vertex AI",
            "Endpoint.undeploy",
            "Endpoint.undeploy",
            _json({"deployed_model_id": "<each previous deployed model>", "sync": True}),
            "json",
            "only after the smoke test passed; on any failure traffic goes back and the new one is undeployed",
        ),
    ]

    # -- Confluent Cloud for Apache Flink -----------------------------------------------------------------
    flink = StatementsApi(
        base_url=get(confluent, "flink_rest_endpoint"),
        organization_id=get(confluent, "org_id"),
        environment_id=get(confluent, "env_id"),
        compute_pool_id=get(confluent, "compute_pool_id"),
        principal=get(confluent, "flink_principal"),
        catalog=get(confluent, "flink_catalog"),
        database=get(confluent, "flink_database"),
        api_key=secret("CONFLUENT_FLINK_API_KEY"),
        api_secret=secret("CONFLUENT_FLINK_API_SECRET"),
    )
    pipeline = render_pipeline(RenderSettings(Dialect.CONFLUENT, model_version, endpoint))
    sql_api = f"{flink.base_url}/sql/v1/organizations/{flink.organization_id}/environments/{flink.environment_id}"
    s = pipeline.settings
    plan.steps.append(
        Step(
            "Confluent Cloud Flink",
            f"POST {sql_api}/connections",
            s.vertex_connection,
            _json(vertex_connection_body(s.vertex_connection, endpoint, secret("LEAD_SCORING_VERTEX_SERVICE_KEY"))),
            "json",
            "once; the endpoint is immutable (another endpoint: delete the connection first)",
        )
    )
    for name, sql in ddl_statements(pipeline):
        body = flink.statement_body(
            name,
            sql,
            dict(pipeline.session_config),
            {"user.confluent.io/lead-scoring-kind": "ddl", "user.confluent.io/model-version": model_version[:63]},
        )
        plan.steps.append(
            Step(
                "Confluent Cloud Flink",
                f"POST {sql_api}/statements",
                name,
                _json(body),
                "json",
                "run once to COMPLETED (IF NOT EXISTS)",
                sql=sql,
            )
        )
    for role in pipeline.statements:  # the champion's; a challenger's shadow statements come with challenger_deployment
        st = pipeline.statements[role]
        props, labels = statement_request(pipeline, role)
        note = (
            "long-running; stays across model versions"
            if not role.is_inference
            else "long-running; a later version stops this one (PUT spec.stopped=true) and starts its successor "
            "with sql.tables.initial-offset-from = this statement"
        )
        plan.steps.append(
            Step(
                "Confluent Cloud Flink",
                f"POST {sql_api}/statements",
                st.name,
                _json(flink.statement_body(st.name, st.sql, props, labels)),
                "json",
                note,
                sql=st.sql,
            )
        )

    # -- Confluent Cloud Connect ------------------------------------------------------------------------
    connect_api = (
        f"{CONFLUENT_CLOUD_API}/connect/v1/environments/{get(confluent, 'env_id')}/clusters/"
        f"{get(confluent, 'kafka_cluster_id')}/connectors"
    )
    settings = connectors or ConnectorSettings()
    org = org or OrgLoad()
    plan.api_budget = project_api_budget(
        salesforce_source_configs(settings),
        salesforce_sink_configs(settings),
        changes_per_day=org.changes_per_day,
        licenses=org.licenses,
        edition=org.edition,
        share=org.share,
    )
    for config in (
        *salesforce_source_configs(settings),
        *salesforce_sink_configs(settings),
        *bigquery_sink_configs(settings),
    ):
        plan.steps.append(
            Step(
                "Confluent Cloud Connect",
                f"POST {connect_api}",
                config["name"],
                _json(config),
                "json",
                "${...}: substituted from the environment when applied",
            )
        )

    plan.steps += vertex_steps

    # -- BigQuery -----------------------------------------------------------------------------------------
    dataset = f"{get(gcp, 'gcp_project')}.{get(gcp, 'bq_dataset')}"
    for table in TABLES.values():
        plan.steps.append(
            Step(
                "BigQuery",
                f"jobs.insert (query, default dataset {dataset})",
                f"DDL {table.name}",
                table.ddl("bigquery"),
                "sql",
                "warehouse.ensure_tables(); idempotent",
            )
        )
    for name, sql, note in (
        ("training_data", training_data_sql(0.2), "asset training_data"),
        ("lead_score_drift: recent leads", recent_leads_sql(7), "asset lead_score_drift (window 7 days)"),
        ("lead_score_drift: recent scores", recent_scores_sql(7), "asset lead_score_drift (window 7 days)"),
        ("retraining_trigger_sensor: new labels", new_labels_sql(0), "sensor; since = the last training's time"),
    ):
        plan.steps.append(Step("BigQuery", f"jobs.insert (query, default dataset {dataset})", name, sql, "sql", note))
    plan.unset = list(get.unset)
    return plan

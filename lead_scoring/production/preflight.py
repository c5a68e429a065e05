"""Preflight of the gcp profile: with the real credentials, does every resource exist and is every permission held?

Long on purpose: the gcp profile's checklist, one short read-only check per vendor resource, read top to
bottom; the checks share `Finding` and the helpers that turn a vendor's error into a status.

Read-only calls only, one per thing a first deployment needs; each answer becomes a `Finding` (ok /
missing / forbidden / error / skipped) that names the resource and, when it is not ok, what to do:

* Confluent Cloud for Apache Flink (the Flink API key): list statements (key, organization, environment),
  list statements of the compute pool, get the Vertex AI connection (and its endpoint);
  with a Cloud API key (CONFLUENT_CLOUD_API_KEY/SECRET) also the compute pool itself (fcpm/v2) and each
  connector config through Confluent's own validate endpoint (connect/v1 ... /config/validate);
* GCS: the artifact bucket and the object permissions on it (testIamPermissions);
* BigQuery: the dataset, its tables, and read/write permission on them (tables.testIamPermissions);
* Vertex AI: the endpoint (EndpointService.GetEndpoint) and, when set, the Model Registry parent model;
* Salesforce: describe Lead and Contact: the custom fields the scores are written to, their types, and
  whether the integration user may update them (field-level security shows as `updateable`); and the org's
  `/limits` (DailyApiRequests, DailyBulkV2QueryJobs): the connectors' projected calls per day
  (`production.api_budget`) must stay within a stated share of each, else the configuration is refused.

`run_preflight` is what the `gcp_preflight` asset check and `lead-scoring preflight` run. Secrets stay in
the resources; findings never quote them.
"""

from __future__ import annotations

import enum
import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Optional

import httpx

from lead_scoring.contract import SCORE_GRADES
from lead_scoring.contract.fields import LEAD_FIELDS, FieldType
from lead_scoring.crm.assets import (
    ConnectorSettings,
    bigquery_sink_configs,
    salesforce_sink_configs,
    salesforce_source_configs,
)
from lead_scoring.crm.salesforce import SalesforceResource
from lead_scoring.production.api_budget import DEFAULT_API_SHARE, project_api_budget
from lead_scoring.serving.vertex import VertexAIModelServing
from lead_scoring.settings import confluent_cloud_settings
from lead_scoring.storage.artifacts import new_version
from lead_scoring.storage.resources import GcsModelStore
from lead_scoring.streaming.confluent import ConfluentFlink
from lead_scoring.streaming.confluent_api import StatementsApi
from lead_scoring.warehouse.resources import BigQueryWarehouse
from lead_scoring.warehouse.tables import TABLES

CONFLUENT_CLOUD_API = "https://api.confluent.cloud"


class Status(str, enum.Enum):
    OK = "ok"
    MISSING = "missing"
    FORBIDDEN = "forbidden"
    ERROR = "error"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class Finding:
    system: str
    resource: str
    status: Status
    detail: str = ""
    fix: str = ""

    @property
    def blocking(self) -> bool:
        return self.status in (Status.MISSING, Status.FORBIDDEN, Status.ERROR)


# The custom fields the scores are written to, on Lead and on Contact: API name -> (type to create,
# describe types accepted). Created once by an admin (docs/production.md); preflight checks they exist and
# that the integration user can update them.
SALESFORCE_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Lead_Score__c": ("Number(3, 0)", ("double", "int")),
    "Lead_Score_Reasons__c": ("Long Text Area(32768)", ("textarea", "string")),
    "Lead_Score_Model__c": ("Text(80)", ("string",)),
    "Lead_Grade__c": ("Picklist (A, B, C, D) or Text(1)", ("picklist", "string")),
}
SALESFORCE_OBJECTS = ("Lead", "Contact")
# What the written values need of each field, beyond its type (describe's precision/scale, length, picklistValues):
# the score 0-100 needs 3 integer digits; the reasons are up to 3 (LeadScorer.top_k) signed factors, each at most
# a Salesforce Text value (255) and "; " between them; the model version is `storage.artifacts.new_version`'s;
# the grade is one of SCORE_GRADES (a restricted picklist rejects any other value).
SCORE_INTEGER_DIGITS = 3
REASONS_MAX_LENGTH = 3 * (1 + 255) + 2 * len("; ")
MODEL_VERSION_LENGTH = len(new_version(datetime(2026, 1, 1, tzinfo=UTC)))


# The contract's custom fields (`__c`) the Bulk API 2.0 source reads on Lead and on Contact: model features, the
# lead number and the sales team's fields kept for the warehouse. Created once by an admin on both objects
# (docs/production.md, section 3: the table is `contract_custom_fields_markdown()`); a missing one is a feature
# that is silently null for every record, so preflight names it. Salesforce type to create -> describe types.
CONTRACT_FIELD_TYPES: dict[FieldType, tuple[str, tuple[str, ...]]] = {
    FieldType.STRING: ("Text(255) or Picklist", ("string", "picklist")),
    FieldType.NUMBER: ("Number(16, 2)", ("double", "int", "currency", "percent")),
    FieldType.BOOLEAN: ("Checkbox", ("boolean",)),
    FieldType.TIMESTAMP: ("Date/Time", ("datetime",)),
}
CONTRACT_CUSTOM_FIELDS = tuple(f for f in LEAD_FIELDS if f.name.endswith("__c"))


def contract_custom_fields_markdown() -> str:
    """The table of docs/production.md, section 3: every custom field the contract reads, its type and role."""
    lines = ["| API name | type | role |", "|---|---|---|"]
    for f in CONTRACT_CUSTOM_FIELDS:
        lines.append(f"| `{f.name}` | {CONTRACT_FIELD_TYPES[f.type][0]} | {f.role.value} |")
    return "\n".join(lines)


def contract_field_findings(obj: str, fields: dict[str, dict[str, Any]]) -> list[Finding]:
    """The contract's custom fields on `obj`: one finding for the missing (or unreadable) and mistyped ones."""
    missing = [f.name for f in CONTRACT_CUSTOM_FIELDS if f.name not in fields]
    mistyped = [
        f"{f.name} ({fields[f.name].get('type')})"
        for f in CONTRACT_CUSTOM_FIELDS
        if f.name in fields and fields[f.name].get("type") not in CONTRACT_FIELD_TYPES[f.type][1]
    ]
    resource = f"{obj} contract fields"
    if missing:
        return [
            Finding(
                "Salesforce",
                resource,
                Status.MISSING,
                f"{len(missing)} of {len(CONTRACT_CUSTOM_FIELDS)} not found (or not readable): {', '.join(missing)}",
                f"create them on {obj} (docs/production.md, section 3) and give the integration user's permission "
                "set Read access to them: the source would send them as null, features the model never sees",
            )
        ]
    if mistyped:
        return [
            Finding(
                "Salesforce",
                resource,
                Status.ERROR,
                f"wrong type: {', '.join(mistyped)}",
                "recreate them with the types of docs/production.md, section 3",
            )
        ]
    return [Finding("Salesforce", resource, Status.OK, f"{len(CONTRACT_CUSTOM_FIELDS)} readable")]


def field_size_problem(name: str, spec: dict[str, Any]) -> Optional[str]:
    """Why a custom score field of an accepted type still cannot hold what is written to it (None: it can)."""
    kind = spec.get("type")
    if name == "Lead_Score__c":
        digits = spec.get("digits") if kind == "int" else (spec.get("precision") or 0) - (spec.get("scale") or 0)
        if (digits or 0) < SCORE_INTEGER_DIGITS:
            return f"{digits or 0} integer digit(s): 100 does not fit"
    elif name == "Lead_Score_Reasons__c" and (spec.get("length") or 0) < REASONS_MAX_LENGTH:
        return f"length {spec.get('length') or 0} < {REASONS_MAX_LENGTH} (3 reasons of up to 256 characters)"
    elif name == "Lead_Score_Model__c" and (spec.get("length") or 0) < MODEL_VERSION_LENGTH:
        return f"length {spec.get('length') or 0} < {MODEL_VERSION_LENGTH} (a model version)"
    elif name == "Lead_Grade__c":
        if kind == "picklist":
            values = {v.get("value") for v in spec.get("picklistValues") or [] if v.get("active", True)}
            missing = [g for g in SCORE_GRADES if g not in values]
            if missing:
                return f"picklist without the value(s) {', '.join(missing)}"
        elif (spec.get("length") or 0) < 1:
            return "length 0"
    return None


GCS_PERMISSIONS = ("storage.objects.create", "storage.objects.get", "storage.objects.list")
BIGQUERY_PERMISSIONS = ("bigquery.tables.getData", "bigquery.tables.updateData")


def _google_status(exc: BaseException) -> Status:
    from google.api_core import exceptions as gexc
    from google.auth import exceptions as auth_exc

    if isinstance(exc, gexc.NotFound):
        return Status.MISSING
    if isinstance(
        exc,
        (
            gexc.Forbidden,
            gexc.PermissionDenied,
            gexc.Unauthorized,
            gexc.Unauthenticated,
            auth_exc.DefaultCredentialsError,
        ),
    ):
        return Status.FORBIDDEN
    return Status.ERROR


def _short(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"


# ---- Confluent ----------------------------------------------------------------------------------------


def _http_status(code: int) -> Status:
    if code in (401, 403):
        return Status.FORBIDDEN
    if code == 404:
        return Status.MISSING
    return Status.OK if code < 400 else Status.ERROR


def _errors(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    errors = body.get("errors") if isinstance(body, dict) else None
    return "; ".join(str(e.get("detail") or e.get("title") or e) for e in errors)[:300] if errors else str(body)[:300]


def confluent_findings(flink: StatementsApi, connection: str, expected_endpoint: Optional[str]) -> list[Finding]:
    """The Flink API key, the environment, the compute pool's statements and the Vertex AI connection."""
    out = []
    env = f"environment {flink.environment_id}"
    resp = flink.read("statements", {"page_size": 1})
    status = _http_status(resp.status_code)
    fixes = {
        Status.FORBIDDEN: "create a Flink API key for this environment's cloud region owned by a principal with "
        "FlinkDeveloper on the environment (confluent api-key create --resource flink "
        "--cloud gcp --region <region>); set CONFLUENT_FLINK_API_KEY/SECRET",
        Status.MISSING: "check CONFLUENT_ORG_ID, CONFLUENT_ENV_ID and CONFLUENT_FLINK_REST_ENDPOINT "
        "(https://flink.<region>.gcp.confluent.cloud)",
    }
    out.append(
        Finding(
            "Confluent Flink",
            f"statements API of {env}",
            status,
            "" if status is Status.OK else f"HTTP {resp.status_code}: {_errors(resp)}",
            fixes.get(status, ""),
        )
    )
    if status is not Status.OK:
        return out
    resp = flink.read("statements", {"page_size": 1, "spec.compute_pool_id": flink.compute_pool_id})
    status = _http_status(resp.status_code)
    out.append(
        Finding(
            "Confluent Flink",
            f"compute pool {flink.compute_pool_id}",
            status,
            "" if status is Status.OK else f"HTTP {resp.status_code}: {_errors(resp)}",
            ""
            if status is Status.OK
            else "create the pool in the environment's region "
            "(confluent flink compute-pool create ...) and set CONFLUENT_COMPUTE_POOL_ID",
        )
    )
    resp = flink.read(f"connections/{connection}")
    status = _http_status(resp.status_code)
    detail, fix = "", ""
    if status is Status.OK:
        spec = resp.json().get("spec") or {}
        phase = (resp.json().get("status") or {}).get("phase", "")
        detail = f"{spec.get('connection_type')} -> {spec.get('endpoint')} ({phase or 'no phase'})"
        if expected_endpoint and spec.get("endpoint") != expected_endpoint:
            status, fix = (
                Status.ERROR,
                (
                    f"the endpoint is immutable: delete the connection (confluent flink "
                    f"connection delete {connection}) so the rollout creates it for "
                    f"{expected_endpoint}"
                ),
            )
        elif phase in ("UNREACHABLE", "INVALID_AUTH"):
            status, fix = (
                Status.ERROR,
                (
                    "give the service account of LEAD_SCORING_VERTEX_SERVICE_KEY "
                    "roles/aiplatform.user and recreate the connection"
                ),
            )
    elif status is Status.MISSING:
        fix = (
            "created by the first rollout (asset flink_statements) from LEAD_SCORING_VERTEX_SERVICE_KEY; "
            "creating it needs EnvironmentAdmin (or OrganizationAdmin) on the environment"
        )
        status = Status.MISSING
    else:
        detail = f"HTTP {resp.status_code}: {_errors(resp)}"
        fix = "reading connections needs FlinkDeveloper; creating them EnvironmentAdmin"
    out.append(Finding("Confluent Flink", f"connection {connection}", status, detail, fix))
    return out


@dataclass
class ConfluentCloudApi:
    """The Confluent Cloud API (api.confluent.cloud) with a Cloud API key: compute pools and connector validation."""

    api_key: str
    api_secret: str
    environment_id: str
    kafka_cluster_id: Optional[str] = None
    base_url: str = CONFLUENT_CLOUD_API
    transport: Optional[httpx.BaseTransport] = None

    @classmethod
    def from_env(cls) -> Optional[ConfluentCloudApi]:
        got = confluent_cloud_settings()
        if not (got.cloud_api_key and got.cloud_api_secret and got.env_id):
            return None
        return cls(
            got.cloud_api_key.get_secret_value(),
            got.cloud_api_secret.get_secret_value(),
            got.env_id,
            got.kafka_cluster_id,
        )

    def client(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url, auth=(self.api_key, self.api_secret), timeout=30.0, transport=self.transport
        )


def compute_pool_finding(cloud: ConfluentCloudApi, pool: str) -> Finding:
    with cloud.client() as client:
        resp = client.get(f"/fcpm/v2/compute-pools/{pool}", params={"environment": cloud.environment_id})
    status = _http_status(resp.status_code)
    if status is Status.OK:
        spec = resp.json().get("spec") or {}
        phase = (resp.json().get("status") or {}).get("phase", "")
        detail = f"{spec.get('cloud')} {spec.get('region')}, max {spec.get('max_cfu')} CFU, {phase}"
        return Finding("Confluent Cloud", f"compute pool {pool}", Status.OK, detail)
    return Finding(
        "Confluent Cloud",
        f"compute pool {pool}",
        status,
        f"HTTP {resp.status_code}: {_errors(resp)}",
        "check CONFLUENT_COMPUTE_POOL_ID / CONFLUENT_ENV_ID; reading pools needs FlinkDeveloper or "
        "EnvironmentAdmin for the Cloud API key's owner",
    )


def substitute(config: dict[str, Any], env: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """`${NAME}` placeholders filled from `env`; returns the config and the names that are not set."""
    unset: list[str] = []

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in env:
            unset.append(name)
            return match.group(0)
        return env[name]

    return (
        {k: re.sub(r"\$\{([A-Z0-9_]+)\}", fill, v) if isinstance(v, str) else v for k, v in config.items()},
        sorted(set(unset)),
    )


def connector_findings(
    cloud: ConfluentCloudApi, configs: Iterable[dict[str, Any]], env: dict[str, str]
) -> list[Finding]:
    """Confluent's own validation of each connector config (PUT .../connector-plugins/<class>/config/validate)."""
    out = []
    if not cloud.kafka_cluster_id:
        return [
            Finding(
                "Confluent Connect",
                "connector configs",
                Status.SKIPPED,
                "",
                "set CONFLUENT_KAFKA_CLUSTER_ID (lkc-...) to validate the connector configs",
            )
        ]
    for item in configs:
        config, unset = substitute(item["config"], env)
        resource = f"connector {item['name']}"
        if unset:
            out.append(
                Finding("Confluent Connect", resource, Status.SKIPPED, "", f"set {', '.join(unset)} to validate it")
            )
            continue
        plugin = config["connector.class"]
        path = (
            f"/connect/v1/environments/{cloud.environment_id}/clusters/{cloud.kafka_cluster_id}"
            f"/connector-plugins/{plugin}/config/validate"
        )
        with cloud.client() as client:
            resp = client.put(path, json={**config, "name": item["name"]})
        if resp.status_code >= 400:
            out.append(
                Finding(
                    "Confluent Connect",
                    resource,
                    _http_status(resp.status_code),
                    f"HTTP {resp.status_code}: {_errors(resp)}",
                    "the Cloud API key's owner needs ConnectManager (or CloudClusterAdmin) on the cluster",
                )
            )
            continue
        problems = [
            f"{c['value']['name']}: {'; '.join(c['value']['errors'])}"
            for c in resp.json().get("configs", [])
            if (c.get("value") or {}).get("errors")
        ]
        out.append(
            Finding(
                "Confluent Connect",
                resource,
                Status.ERROR if problems else Status.OK,
                " | ".join(problems)[:1000] if problems else f"{plugin}: valid",
                "fix the property in lead_scoring/crm/assets.py or the environment" if problems else "",
            )
        )
    return out


# ---- Google Cloud ----------------------------------------------------------------------------------------


def gcs_findings(storage_client: Any, bucket: str) -> list[Finding]:
    resource = f"bucket gs://{bucket}"
    try:
        handle = storage_client.get_bucket(bucket)
        held = set(handle.test_iam_permissions(list(GCS_PERMISSIONS)))
    except Exception as exc:
        status = _google_status(exc)
        fix = {
            Status.MISSING: f"create it (gcloud storage buckets create gs://{bucket} --location <region>)",
            Status.FORBIDDEN: "grant the runtime service account roles/storage.objectAdmin on the bucket",
        }.get(status, "")
        return [Finding("GCS", resource, status, _short(exc), fix)]
    missing = [p for p in GCS_PERMISSIONS if p not in held]
    if missing:
        return [
            Finding(
                "GCS",
                resource,
                Status.FORBIDDEN,
                f"lacks {', '.join(missing)}",
                "grant the runtime service account roles/storage.objectAdmin on the bucket",
            )
        ]
    return [Finding("GCS", resource, Status.OK, f"{handle.location or ''} {', '.join(GCS_PERMISSIONS)}".strip())]


def bigquery_findings(client: Any, project: str, dataset: str) -> list[Finding]:
    ref = f"{project}.{dataset}"
    try:
        found = client.get_dataset(ref)
    except Exception as exc:
        status = _google_status(exc)
        fix = {
            Status.MISSING: f"create it (bq --location=US mk --dataset {ref})",
            Status.FORBIDDEN: "grant the runtime service account roles/bigquery.dataEditor on the dataset and "
            "roles/bigquery.jobUser on the project",
        }.get(status, "")
        return [Finding("BigQuery", f"dataset {ref}", status, _short(exc), fix)]
    out = [Finding("BigQuery", f"dataset {ref}", Status.OK, f"location {found.location}")]
    present = {t.table_id for t in client.list_tables(ref)}
    absent = [t for t in TABLES if t not in present]
    out.append(
        Finding(
            "BigQuery",
            f"tables of {ref}",
            Status.MISSING if absent else Status.OK,
            f"absent: {', '.join(absent)}" if absent else ", ".join(sorted(TABLES)),
            "materialize crm_leads_raw once (it runs warehouse.ensure_tables(), the contract DDL; "
            "`lead-scoring plan` shows it)"
            if absent
            else "",
        )
    )
    for table in (t for t in ("lead_scores", "crm_leads_raw") if t in present):
        held = set(client.test_iam_permissions(f"{ref}.{table}", list(BIGQUERY_PERMISSIONS)).get("permissions", []))
        missing = [p for p in BIGQUERY_PERMISSIONS if p not in held]
        out.append(
            Finding(
                "BigQuery",
                f"table {ref}.{table}",
                Status.FORBIDDEN if missing else Status.OK,
                f"lacks {', '.join(missing)}" if missing else "read + write",
                "grant roles/bigquery.dataEditor on the dataset" if missing else "",
            )
        )
    return out


def vertex_findings(aiplatform: Any, endpoint_id: str, parent_model: Optional[str]) -> list[Finding]:
    out = []
    try:
        endpoint = aiplatform.Endpoint(endpoint_id)
        split = dict(endpoint.traffic_split or {})
        out.append(
            Finding(
                "Vertex AI",
                f"endpoint {endpoint_id}",
                Status.OK,
                f"{endpoint.resource_name}; traffic {split or 'none yet'}",
            )
        )
    except Exception as exc:
        status = _google_status(exc)
        fix = {
            Status.MISSING: "create it (gcloud ai endpoints create --region <region> --display-name lead-scoring) "
            "and set LEAD_SCORING_VERTEX_ENDPOINT to its id",
            Status.FORBIDDEN: "grant the runtime service account roles/aiplatform.user on the project",
        }.get(status, "")
        out.append(Finding("Vertex AI", f"endpoint {endpoint_id}", status, _short(exc), fix))
    if parent_model:
        try:
            model = aiplatform.Model(parent_model)
            out.append(Finding("Vertex AI", f"model {parent_model}", Status.OK, model.resource_name))
        except Exception as exc:
            status = _google_status(exc)
            out.append(
                Finding(
                    "Vertex AI",
                    f"model {parent_model}",
                    status,
                    _short(exc),
                    "unset LEAD_SCORING_VERTEX_PARENT_MODEL for the very first upload, or fix the id",
                )
            )
    return out


# ---- Salesforce ----------------------------------------------------------------------------------------


def salesforce_findings(sf: Any) -> list[Finding]:
    out = []
    for obj in SALESFORCE_OBJECTS:
        try:
            described = getattr(sf, obj).describe()
        except Exception as exc:
            text = _short(exc)
            status = (
                Status.FORBIDDEN
                if any(s in text for s in ("401", "403", "INSUFFICIENT", "INVALID_SESSION"))
                else Status.ERROR
            )
            out.append(
                Finding(
                    "Salesforce",
                    f"{obj} describe",
                    status,
                    text,
                    f"the integration user needs Read and Edit on {obj} (profile or permission set) and API Enabled",
                )
            )
            continue
        fields = {f["name"]: f for f in described.get("fields", [])}
        if not described.get("updateable", True):
            out.append(
                Finding(
                    "Salesforce",
                    obj,
                    Status.FORBIDDEN,
                    f"{obj} is not updateable by this user",
                    f"grant Edit on {obj} in the integration user's permission set",
                )
            )
        out += contract_field_findings(obj, fields)
        for name, (create_as, accepted) in SALESFORCE_FIELDS.items():
            resource = f"{obj}.{name}"
            spec = fields.get(name)
            if spec is None:
                out.append(
                    Finding(
                        "Salesforce",
                        resource,
                        Status.MISSING,
                        "no such field (or not visible to this user)",
                        f"create custom field {name} on {obj} as {create_as} (Setup > Object Manager > "
                        f"{obj} > Fields & Relationships) and give the integration user's permission "
                        f"set Edit access to it",
                    )
                )
            elif spec.get("type") not in accepted:
                out.append(
                    Finding(
                        "Salesforce", resource, Status.ERROR, f"type {spec.get('type')}", f"{name} must be {create_as}"
                    )
                )
            elif problem := field_size_problem(name, spec):
                out.append(Finding("Salesforce", resource, Status.ERROR, problem, f"{name} must be {create_as}"))
            elif not spec.get("updateable"):
                out.append(
                    Finding(
                        "Salesforce",
                        resource,
                        Status.FORBIDDEN,
                        "visible but not updateable",
                        f"give the integration user's permission set Edit access to {obj}.{name} "
                        f"(field-level security)",
                    )
                )
            else:
                out.append(Finding("Salesforce", resource, Status.OK, f"{spec.get('type')}, updateable"))
    return out


def salesforce_budget_findings(
    sf: Any, changes_per_day: int, share: float = DEFAULT_API_SHARE, settings: Optional[ConnectorSettings] = None
) -> list[Finding]:
    """The org's own daily maxima (GET /services/data/vXX.X/limits) against the connectors' projected use."""
    try:
        limits = sf.limits()
    except Exception as exc:
        text = _short(exc)
        status = Status.FORBIDDEN if any(s in text for s in ("401", "403", "INSUFFICIENT")) else Status.ERROR
        return [
            Finding(
                "Salesforce",
                "API budget",
                status,
                text,
                "the integration user needs View Setup and Configuration to read /limits",
            )
        ]
    settings = settings or ConnectorSettings()
    try:
        api_max = int(limits["DailyApiRequests"]["Max"])
        jobs_max = int(limits["DailyBulkV2QueryJobs"]["Max"])
    except (KeyError, TypeError, ValueError):
        return [
            Finding(
                "Salesforce",
                "API budget",
                Status.ERROR,
                "no DailyApiRequests / DailyBulkV2QueryJobs Max in the /limits answer",
                "read /services/data/vXX.X/limits by hand and size the pipeline with `lead-scoring plan`",
            )
        ]
    budget = project_api_budget(
        salesforce_source_configs(settings),
        salesforce_sink_configs(settings),
        changes_per_day=changes_per_day,
        licenses=0,
        share=share,
        allocation=api_max,
        query_job_allocation=jobs_max,
    )
    used = (
        f"{budget.total_calls:,} API calls/day ({budget.api_fraction:.1%} of {api_max:,}), "
        f"{budget.source_query_jobs:,} query jobs/day ({budget.query_job_fraction:.1%} of {jobs_max:,}) "
        f"at {changes_per_day:,} changes/day"
    )
    remaining = limits["DailyApiRequests"].get("Remaining")
    if remaining is not None:
        used += f"; {int(remaining):,} API calls left in the current 24 h"
    problems = budget.problems()
    if problems:
        return [
            Finding(
                "Salesforce",
                "API budget",
                Status.ERROR,
                "; ".join(problems),
                "raise ConnectorSettings.poll_interval_ms or lower the change rate, then "
                "`lead-scoring plan` again; never share more than the stated part of the org's allocation",
            )
        ]
    return [Finding("Salesforce", "API budget", Status.OK, used)]


# ---- all of it ------------------------------------------------------------------------------------------


@dataclass
class PreflightTargets:
    """What to check, from the gcp profile's resources (built by `from_resources` or by tests)."""

    flink: ConfluentFlink
    connection: str
    expected_endpoint: Optional[str]
    storage_client: Callable[[], Any]
    bucket: str
    bigquery_client: Callable[[], Any]
    project: str
    dataset: str
    aiplatform: Callable[[], Any]
    endpoint_id: str
    parent_model: Optional[str]
    salesforce: Callable[[], Any]
    cloud: Optional[ConfluentCloudApi] = None
    env: dict[str, str] = field(default_factory=dict)
    changes_per_day: int = 10_000  # Lead + Contact changes the org makes per day (sizes the API budget)
    api_share: float = DEFAULT_API_SHARE  # the most of the org's daily allocations the connectors may use

    @classmethod
    def from_resources(
        cls,
        flink: ConfluentFlink,
        warehouse: BigQueryWarehouse,
        serving: VertexAIModelServing,
        store: GcsModelStore,
        crm: SalesforceResource,
        cloud: Optional[ConfluentCloudApi] = None,
        env: Optional[dict[str, str]] = None,
        connection: str = "vertex-lead-scorer",
        changes_per_day: int = 10_000,
        api_share: float = DEFAULT_API_SHARE,
    ) -> PreflightTargets:
        return cls(
            flink=flink,
            connection=connection,
            expected_endpoint=serving.endpoint_url(),
            storage_client=store.client,
            bucket=store.bucket,
            bigquery_client=warehouse.client,
            project=warehouse.project,
            dataset=warehouse.dataset,
            aiplatform=serving.aiplatform,
            endpoint_id=serving.endpoint_id,
            parent_model=serving.parent_model,
            salesforce=crm.client,
            cloud=cloud,
            env=dict(os.environ if env is None else env),
            changes_per_day=changes_per_day,
            api_share=api_share,
        )


def _guarded(system: str, what: str, check: Callable[[], list[Finding]]) -> list[Finding]:
    try:
        return check()
    except Exception as exc:
        status = _google_status(exc) if type(exc).__module__.startswith("google") else Status.ERROR
        return [Finding(system, what, status, _short(exc), "see the detail; credentials come from the environment")]


def run_preflight(t: PreflightTargets) -> list[Finding]:
    findings: list[Finding] = []
    findings += _guarded(
        "Confluent Flink", "statements API", lambda: confluent_findings(t.flink.api, t.connection, t.expected_endpoint)
    )
    if t.cloud is not None:
        findings += _guarded(
            "Confluent Cloud", "compute pool", lambda: [compute_pool_finding(t.cloud, t.flink.compute_pool_id)]
        )
        settings = ConnectorSettings()
        configs = [
            *salesforce_source_configs(settings),
            *salesforce_sink_configs(settings),
            *bigquery_sink_configs(settings),
        ]
        findings += _guarded(
            "Confluent Connect", "connector configs", lambda: connector_findings(t.cloud, configs, t.env)
        )
    else:
        findings.append(
            Finding(
                "Confluent Cloud",
                "compute pool and connector configs",
                Status.SKIPPED,
                "",
                "set CONFLUENT_CLOUD_API_KEY/SECRET (a Cloud API key) to check them too",
            )
        )
    findings += _guarded("GCS", f"bucket gs://{t.bucket}", lambda: gcs_findings(t.storage_client(), t.bucket))
    findings += _guarded(
        "BigQuery",
        f"dataset {t.project}.{t.dataset}",
        lambda: bigquery_findings(t.bigquery_client(), t.project, t.dataset),
    )
    findings += _guarded(
        "Vertex AI", f"endpoint {t.endpoint_id}", lambda: vertex_findings(t.aiplatform(), t.endpoint_id, t.parent_model)
    )
    findings += _guarded("Salesforce", "login", lambda: _salesforce_findings(t))
    return findings


def _salesforce_findings(t: PreflightTargets) -> list[Finding]:
    sf = t.salesforce()  # one login for the describes and /limits
    return salesforce_findings(sf) + salesforce_budget_findings(sf, t.changes_per_day, t.api_share)


def findings_markdown(findings: list[Finding]) -> str:
    rows = ["| system | resource | status | detail | what to do |", "|---|---|---|---|---|"]
    rows += [
        f"| {f.system} | {f.resource} | {f.status.value} | {f.detail.replace('|', '/')} | {f.fix.replace('|', '/')} |"
        for f in findings
    ]
    return "\n".join(rows)


def findings_json(findings: list[Finding]) -> str:
    return json.dumps([{**f.__dict__, "status": f.status.value} for f in findings], indent=2)

"""Every setting read from the environment, in one place, parsed one way (pydantic-settings).

Long on purpose: one place per concept, and the concept is "what the environment may set" (one
pydantic-settings class per concern), so a reader finds every variable here.

Nothing here runs at import time: a settings object reads the environment when it is built, so tests and
the Dagster code server can set variables before definitions are loaded. A bad value never surfaces as a
pydantic traceback: `load()` turns it into a `ConfigurationError` naming the variable and the fix.

Secrets are NOT settings: they reach resources through `dg.EnvVar`, so they never appear in config,
logs or metadata.
"""

from __future__ import annotations

import enum
import os
import secrets
from pathlib import Path
from typing import Any, TypeVar

import pydantic
from pydantic import AliasChoices, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "LEAD_SCORING_"
PROFILE_ENV_VAR = "LEAD_SCORING_PROFILE"
HOME_ENV_VAR = "LEAD_SCORING_HOME"
RETRAIN_CRON_ENV_VAR = "LEAD_SCORING_RETRAIN_CRON"
DEFAULT_RETRAIN_CRON = "0 3 * * 1"  # Mondays 03:00 UTC
DEFAULT_MODEL_NAME = "lead_scorer"  # the model's name in the model server's V1/V2 URLs
ADMIN_TOKEN_ENV_VAR = "LEAD_SCORING_MODEL_ADMIN_TOKEN"
SIGNING_KEY_ENV_VAR = "LEAD_SCORING_ARTIFACT_SIGNING_KEY"
ERASURE_KEY_ENV_VAR = "LEAD_SCORING_ERASURE_KEY"
ALLOW_NON_LOOPBACK_ENV_VAR = "LEAD_SCORING_ALLOW_NON_LOOPBACK"
MANIFEST_PIN_ENV_VAR = "LEAD_SCORING_ARTIFACT_MANIFEST_SHA256"


def challenger_model_name(model_name: str = DEFAULT_MODEL_NAME) -> str:
    """The name a challenger version is served under, next to the champion (`lead_scorer_challenger`)."""
    return f"{model_name}_challenger"


class Profile(str, enum.Enum):
    LOCAL = "local"  # everything on this machine: DuckDB, a folder, our stack
    GCP = "gcp"  # BigQuery, GCS, Vertex AI, Confluent Cloud, Salesforce
    CLUSTER = "cluster"  # an existing Kafka + Flink SQL Gateway + model-server endpoints; starts nothing


class ConfigurationError(RuntimeError):
    """A setting is missing or wrong; the message names the variable and the fix."""


S = TypeVar("S", bound=BaseSettings)


def env_var(model: type[BaseSettings], field: str) -> str:
    """The environment variable that sets `field` of `model` (its alias, else prefix + name)."""
    info = model.model_fields[field]
    alias = info.validation_alias
    if isinstance(alias, str):
        return alias
    if isinstance(alias, pydantic.AliasChoices):
        return str(alias.choices[0])
    return f"{model.model_config.get('env_prefix', '')}{field}".upper()


def load(model: type[S], **overrides: Any) -> S:
    """Build `model` from the environment (explicit `overrides` win); errors name the variable."""
    try:
        return model(**{k: v for k, v in overrides.items() if v is not None})
    except pydantic.ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            var = env_var(model, field) if field in model.model_fields else field
            expected = (error.get("ctx") or {}).get("expected")
            fix = (
                f"set it to one of: {expected.replace(' or ', ', ').replace(chr(39), '')}"
                if expected
                else "unset it or give a valid value"
            )
            problems.append(f"{var}={error.get('input')!r} is not valid ({error['msg']}): {fix}")
        raise ConfigurationError("; ".join(problems)) from None


def _settings_config(**extra: Any) -> SettingsConfigDict:
    defaults: dict[str, Any] = {"env_prefix": ENV_PREFIX, "extra": "ignore", "frozen": True, "populate_by_name": True}
    return SettingsConfigDict(**{**defaults, "env_ignore_empty": True, **extra})


class ProjectSettings(BaseSettings):
    """Which profile runs, where local state lives, when retraining runs."""

    model_config = _settings_config()

    profile: Profile = Field(default=Profile.LOCAL, description="local | cluster | gcp")
    home: Path | None = Field(default=None, description="state folder (default <checkout>/.state)")
    retrain_cron: str = Field(default=DEFAULT_RETRAIN_CRON, description="cron of the weekly_retraining schedule")
    latency_probe_interval_s: int = Field(default=60, ge=10, description="seconds between latency probes")

    @field_validator("profile", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("retrain_cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if len(value.split()) != 5:
            raise ValueError("not a 5-field cron expression")
        return value.strip()


def project_settings() -> ProjectSettings:
    return load(ProjectSettings)


def current_profile() -> Profile:
    """The profile chosen by LEAD_SCORING_PROFILE (default: local)."""
    return project_settings().profile


def project_root() -> Path:
    """The checkout this package runs from (the folder holding pyproject.toml)."""
    return Path(__file__).resolve().parent.parent


def state_dir() -> Path:
    """Root of everything the local profile writes: warehouse, artifacts, stack data, logs.

    Defaults to `<checkout>/.state`; LEAD_SCORING_HOME moves it (tests point it at a tmp dir). Owner-only
    (0700): it holds the warehouse (PII), the Kafka segments and the local secrets.
    """
    home = project_settings().home
    return owner_only_dir(home.expanduser() if home else project_root() / ".state")


def retraining_cron() -> str:
    """Cron of the weekly retraining schedule (LEAD_SCORING_RETRAIN_CRON overrides it)."""
    return project_settings().retrain_cron


def env_overrides(model: type[pydantic.BaseModel], fields: tuple[str, ...] | None = None) -> dict[str, Any]:
    """Values for `model`'s fields set as LEAD_SCORING_<FIELD> in the environment, parsed by pydantic-settings.

    For Dagster resources (which cannot be pydantic-settings models themselves): the resource keeps its
    defaults and descriptions, the environment only overrides what it sets.
    """
    names = fields or tuple(model.model_fields)
    namespace: dict[str, Any] = {
        "__annotations__": {name: model.model_fields[name].annotation | None for name in names},
        "model_config": _settings_config(),
        **dict.fromkeys(names),
    }
    env_model = type(f"{model.__name__}Env", (BaseSettings,), namespace)
    return load(env_model).model_dump(exclude_none=True)


class GcpSettings(BaseSettings):
    """Non-secret settings of the gcp profile.

    The resources read the required ones as `dg.EnvVar`s (so Dagster's UI lists them); they are optional here
    because `lead-scoring plan` shows an unset one as ${NAME} instead of failing.
    """

    model_config = _settings_config()

    gcp_project: str | None = Field(default=None, description="GCP project of BigQuery, GCS and Vertex AI")
    gcp_region: str | None = Field(default=None, description="Vertex AI region, e.g. us-central1")
    vertex_endpoint: str | None = Field(default=None, description="Vertex AI endpoint id serving the champion")
    serving_image: str | None = Field(default=None, description="our model-server image in Artifact Registry")
    gcs_bucket: str | None = Field(default=None, description="bucket holding the model artifacts")
    bq_dataset: str | None = Field(default=None, description="BigQuery dataset of the warehouse tables")
    vertex_parent_model: str | None = Field(
        default=None, description="Model Registry id collecting the versions; empty for the very first upload"
    )
    vertex_challenger_endpoint: str | None = Field(
        default=None,
        description="Vertex AI endpoint serving a challenger for shadow scoring (its own endpoint: "
        "the champion's routes by traffic split only); needed by challenger_deployment",
    )
    # The org's Salesforce API allowance, for pacing a full re-score (production/api_budget.rescore_pace):
    # DailyApiRequests = 100,000 + per-licence calls, unless the org's own /limits Max is given.
    salesforce_edition: str = Field(
        default="Enterprise",
        pattern="^(Enterprise|Professional|Unlimited|Performance)$",
        description="Salesforce edition of the org (per-licence API calls)",
    )
    salesforce_licenses: int = Field(default=100, ge=0, description="Salesforce licences of the org")
    salesforce_daily_api_requests: int | None = Field(
        default=None, ge=1, description="the org's DailyApiRequests Max from /limits (overrides the edition formula)"
    )
    rescore_api_share: float = Field(
        default=0.2,
        gt=0,
        le=1,
        description="share of the org's daily API allocation a full re-score's write-backs may use",
    )
    rescore_records_per_call: int = Field(
        default=50,
        ge=1,
        le=200,
        description="scores the SObject sink writes per API call during a re-score (produced in bursts of 200, "
        "its batch size; assumed to reach it in up to 4 batches)",
    )


class LocalCrmSettings(BaseSettings):
    """The local CRM's own limits (`crm_leads` in the warehouse; `cluster` uses it too): the same re-score pacing
    as against Salesforce, with an allowance a warehouse table can take."""

    model_config = _settings_config()

    local_crm_daily_api_requests: int = Field(
        default=10_000_000, ge=1, description="writes (writeback micro-batches) the local CRM takes per 24 h"
    )
    rescore_api_share: float = Field(
        default=0.2, gt=0, le=1, description="share of that allowance a full re-score's write-backs may use"
    )


class SalesforceSettings(BaseSettings):
    """How the gcp profile logs in to Salesforce (the secrets themselves are `dg.EnvVar`s)."""

    model_config = _settings_config()

    salesforce_auth: str = Field(
        default="password",
        pattern="^(password|jwt)$",
        description="password (user + password + token) | jwt (connected app)",
    )
    salesforce_domain: str = Field(default="login", description="login | test")
    salesforce_instance_url: str | None = Field(default=None, description="My Domain host, e.g. acme.my")

    @property
    def auth(self) -> str:
        return self.salesforce_auth

    @property
    def domain(self) -> str:
        return self.salesforce_domain

    @property
    def instance_url(self) -> str | None:
        return self.salesforce_instance_url


class ClusterSettings(BaseSettings):
    """The `cluster` profile: an existing Kafka + Flink (SQL Gateway) + model-server replicas; we start nothing.

    Credentials are not settings: LEAD_SCORING_KAFKA_SASL_USERNAME / _PASSWORD are read as `dg.EnvVar`s.
    """

    model_config = _settings_config()

    kafka_bootstrap_servers: str = Field(default="127.0.0.1:9092", description="host:port[,host:port...]")
    kafka_security_protocol: str = Field(default="PLAINTEXT", pattern="^(PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL)$")
    kafka_sasl_mechanism: str | None = Field(
        default=None, validate_default=True, description="PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512"
    )
    kafka_ssl_ca_location: str | None = Field(default=None, description="CA bundle to verify the brokers")
    sql_gateway_url: str = Field(default="http://127.0.0.1:8083")
    flink_rest_url: str = Field(default="http://127.0.0.1:8081")
    model_endpoints: str = Field(
        default="http://127.0.0.1:8080", description="comma-separated base URLs of the model-server replicas"
    )
    flink_parallelism: int | None = Field(
        default=None,
        ge=1,
        description="parallelism of every statement (default: the pipeline's own, sized for one node)",
    )
    topic_partitions: int = Field(default=3, ge=1, description="partitions of the pipeline's topics")

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _host_ports(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        bad = [s for s in servers if ":" not in s or not s.rsplit(":", 1)[1].isdigit()]
        if not servers or bad:
            raise ValueError(
                f"expected host:port[,host:port...], e.g. kafka-1:9092,kafka-2:9092 (bad: {bad or value!r})"
            )
        return ",".join(servers)

    @field_validator("kafka_sasl_mechanism")
    @classmethod
    def _sasl_pairs_with_protocol(cls, value: str | None, info: ValidationInfo) -> str | None:
        protocol = info.data.get("kafka_security_protocol", "PLAINTEXT")
        if value is not None and value not in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            raise ValueError("expected PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
        if protocol.startswith("SASL") and value is None:
            raise ValueError(
                f"LEAD_SCORING_KAFKA_SECURITY_PROTOCOL={protocol} needs a SASL mechanism: set "
                "LEAD_SCORING_KAFKA_SASL_MECHANISM (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
            )
        if value is not None and not protocol.startswith("SASL"):
            raise ValueError(
                f"a SASL mechanism needs LEAD_SCORING_KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT "
                f"(it is {protocol})"
            )
        return value

    @field_validator("sql_gateway_url", "flink_rest_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.strip().startswith(("http://", "https://")):
            raise ValueError("expected an http(s) URL, e.g. http://flink-gateway:8083")
        return value.strip().rstrip("/")

    @field_validator("model_endpoints")
    @classmethod
    def _http_urls(cls, value: str) -> str:
        urls = [e.strip().rstrip("/") for e in value.split(",") if e.strip()]
        bad = [u for u in urls if not u.startswith(("http://", "https://"))]
        if not urls or bad:
            raise ValueError(
                "expected the replicas' base URLs, comma-separated, e.g. "
                f"http://model-1:8080,http://model-2:8080 (bad: {bad or value!r})"
            )
        return ",".join(urls)

    @property
    def endpoints(self) -> list[str]:
        return self.model_endpoints.split(",")


class SecuritySettings(BaseSettings):
    """The two shared secrets (held as `SecretStr`: never printed, never in a repr) and the loopback escape hatch.

    Secrets are read here rather than through `dg.EnvVar` because the model server and the stack read them
    outside Dagster; neither is ever validated with a message that could echo it.
    """

    model_config = _settings_config()

    admin_token: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(ADMIN_TOKEN_ENV_VAR),
        description="bearer token of the model server's admin routes",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(SIGNING_KEY_ENV_VAR),
        description="HMAC key that signs model artifacts",
    )
    erasure_key: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices(ERASURE_KEY_ENV_VAR),
        description="HMAC key of the erasure register (required in gcp; locally a key file when unset)",
    )
    allow_non_loopback: bool = Field(
        default=False,
        validation_alias=AliasChoices(ALLOW_NON_LOOPBACK_ENV_VAR),
        description="let LEAD_SCORING_STACK_HOST bind the stack off loopback",
    )
    manifest_sha256: str | None = Field(
        default=None,
        validation_alias=AliasChoices(MANIFEST_PIN_ENV_VAR),
        description="digest of the one signed manifest a Vertex AI container may "
        "load (set by the deployment, which verified its signature)",
    )


def security_settings() -> SecuritySettings:
    return load(SecuritySettings)


class ModelServerSettings(BaseSettings):
    """What the model server reads from its environment: Vertex AI's custom-container contract (AIP_*, set by
    Vertex; docs: cloud.google.com/vertex-ai/docs/predictions/custom-container-requirements) and our own two."""

    model_config = _settings_config()

    vertex_http_port: int | None = Field(
        default=None,
        validation_alias=AliasChoices("AIP_HTTP_PORT"),
        description="set by Vertex AI: the port to listen on (its presence means: running in Vertex AI)",
    )
    vertex_predict_route: str = Field(default="/predict", validation_alias=AliasChoices("AIP_PREDICT_ROUTE"))
    vertex_health_route: str = Field(default="/health", validation_alias=AliasChoices("AIP_HEALTH_ROUTE"))
    vertex_storage_uri: str | None = Field(
        default=None,
        validation_alias=AliasChoices("AIP_STORAGE_URI"),
        description="set by Vertex AI: where the model's artifact was copied",
    )
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="the served model's name (V1/V2 routes)")
    access_log: bool = Field(default=False, description="log every request line (off: scoring is hot)")


def model_server_settings() -> ModelServerSettings:
    return load(ModelServerSettings)


class ConfluentCloudSettings(BaseSettings):
    """Where the gcp profile's Confluent Cloud resources are, and the Cloud API key the preflight uses to read
    the environment (Cloud API keys:
    docs.confluent.io/cloud/current/security/authenticate/workload-identities/service-accounts/api-keys)."""

    model_config = _settings_config(env_prefix="CONFLUENT_")

    cloud_api_key: SecretStr | None = None
    cloud_api_secret: SecretStr | None = None
    env_id: str | None = None
    kafka_cluster_id: str | None = None
    # Where the Flink statements run (the ConfluentFlink resource reads the same variables as `dg.EnvVar`s)
    flink_rest_endpoint: str | None = Field(
        default=None, description="e.g. https://flink.us-central1.gcp.confluent.cloud"
    )
    org_id: str | None = None
    compute_pool_id: str | None = None
    flink_principal: str | None = Field(default=None, description="service account the statements run as (sa-...)")
    flink_catalog: str | None = Field(default=None, description="the environment's display name")
    flink_database: str | None = Field(default=None, description="the Kafka cluster's display name")


def confluent_cloud_settings() -> ConfluentCloudSettings:
    return load(ConfluentCloudSettings)


def owner_only_dir(path: Path) -> Path:
    """`path` (and missing parents) created 0700, and tightened to 0700 if it exists: local state is private."""
    for folder in reversed([path, *path.parents]):  # Path.mkdir gives missing parents the default mode
        if not folder.exists():
            folder.mkdir(mode=0o700, exist_ok=True)
    if path.stat().st_mode & 0o077:
        path.chmod(0o700)
    return path


def owner_only_secret(path: Path) -> str:
    """The secret stored in `path`, created once (32 random bytes, hex) readable by the owner only (0600)."""
    owner_only_dir(path.parent)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            path.chmod(0o600)
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32))
    return path.read_text().strip()

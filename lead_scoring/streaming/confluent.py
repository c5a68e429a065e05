"""Confluent Cloud for Apache Flink (gcp profile): the `FlinkEngine` verbs over the Statements REST API.

Four parts, one job each: `confluent_api.StatementsApi` sends the statements' requests;
`confluent_connections` creates the Vertex AI connection (the one request carrying a secret);
`confluent_statements` says what our statements are (names, properties, labels) and reads the deployed ones
back by their labels (running, health, healing, source positions); this module is the Dagster resource and
the rollout's verbs: run the DDL once, start, wait, stop at a resumable point, resume.
"""

from __future__ import annotations

from typing import Any, Optional

import dagster as dg
import httpx
from pydantic import Field, PrivateAttr

from lead_scoring.streaming.confluent_api import ConfluentApiError, StatementsApi
from lead_scoring.streaming.confluent_connections import ensure_vertex_connection
from lead_scoring.streaming.confluent_statements import (
    KIND_LABEL,
    RETIRED_LABEL,
    DeployedStatements,
    ddl_statements,
    statement_request,
)
from lead_scoring.streaming.engine import (
    DeploymentState,
    FlinkEngine,
    HealAction,
    RolloutError,
    StatementHealth,
)
from lead_scoring.streaming.render import Dialect, Pipeline, StatementRole


class ConfluentFlink(FlinkEngine):
    """Statements in Confluent Cloud; the DDL, the connection and the model are run once, idempotently."""

    base_url: str = Field(description="Flink REST endpoint, e.g. https://flink.us-central1.gcp.confluent.cloud")
    organization_id: str
    environment_id: str
    compute_pool_id: str
    principal: str = Field(description="service account the statements run as (sa-...)")
    catalog: str = Field(description="sql.current-catalog: the environment's display name")
    database: str = Field(description="sql.current-database: the Kafka cluster's display name")
    api_key: str = Field(description="Flink API key (from an EnvVar)")
    api_secret: str = Field(description="Flink API secret (from an EnvVar)")
    vertex_service_key: Optional[str] = Field(
        default=None, description="GCP service-account key (JSON) for the Vertex AI connection (from an EnvVar)"
    )
    poll_interval_s: float = 2.0
    request_timeout_s: float = 30.0
    ddl_timeout_s: float = 300.0
    # DELETE answers 202 "being deleted": the name stays taken (GET 200, POST 409) until GET answers 404
    delete_timeout_s: float = 300.0
    _transport: Optional[httpx.BaseTransport] = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> ConfluentFlink:
        return cls(
            base_url=dg.EnvVar("CONFLUENT_FLINK_REST_ENDPOINT"),
            organization_id=dg.EnvVar("CONFLUENT_ORG_ID"),
            environment_id=dg.EnvVar("CONFLUENT_ENV_ID"),
            compute_pool_id=dg.EnvVar("CONFLUENT_COMPUTE_POOL_ID"),
            principal=dg.EnvVar("CONFLUENT_FLINK_PRINCIPAL"),
            catalog=dg.EnvVar("CONFLUENT_FLINK_CATALOG"),
            database=dg.EnvVar("CONFLUENT_FLINK_DATABASE"),
            api_key=dg.EnvVar("CONFLUENT_FLINK_API_KEY"),
            api_secret=dg.EnvVar("CONFLUENT_FLINK_API_SECRET"),
            vertex_service_key=dg.EnvVar("LEAD_SCORING_VERTEX_SERVICE_KEY"),
        )

    def with_transport(self, transport: httpx.BaseTransport) -> ConfluentFlink:
        """For tests: route every request through `transport` (e.g. httpx.MockTransport)."""
        self._transport = transport
        return self

    @property
    def api(self) -> StatementsApi:
        """The Statements API of this resource's environment (built from its current fields)."""
        return StatementsApi(
            base_url=self.base_url,
            organization_id=self.organization_id,
            environment_id=self.environment_id,
            compute_pool_id=self.compute_pool_id,
            principal=self.principal,
            catalog=self.catalog,
            database=self.database,
            api_key=self.api_key,
            api_secret=self.api_secret,
            poll_interval_s=self.poll_interval_s,
            request_timeout_s=self.request_timeout_s,
            delete_timeout_s=self.delete_timeout_s,
            transport=self._transport,
        )

    @property
    def _deployed(self) -> DeployedStatements:
        return DeployedStatements(self.api)

    # ---- rendering ----------------------------------------------------------------------------------------

    @property
    def dialect(self) -> Dialect:
        return Dialect.CONFLUENT

    @property
    def owns_topics(self) -> bool:
        return True

    def describe(self) -> str:
        return f"Confluent Cloud Flink {self.base_url} (environment {self.environment_id}, pool {self.compute_pool_id})"

    def model_endpoint(self, url: str, model_name: str, provider: str) -> str:
        # The provider appends :predict itself (Confluent's VertexAI provider); the connection takes the
        # endpoint resource URL.
        return url.removesuffix(":predict")

    # ---- rollout ------------------------------------------------------------------------------------------

    def running(self, prefix: str) -> dict[str, str]:
        return self._deployed.running(prefix)

    def prepare(self, pipeline: Pipeline) -> list[str]:
        """Tables and the model: idempotent DDL statements (IF NOT EXISTS), each run to COMPLETED."""
        api = self.api
        s = pipeline.settings
        if self.vertex_service_key:
            ensure_vertex_connection(api, s.vertex_connection, s.model_endpoint, self.vertex_service_key)
        return [self._run_ddl(api, name, sql, pipeline.session_config) for name, sql in ddl_statements(pipeline)]

    def _run_ddl(self, api: StatementsApi, name: str, sql: str, properties: dict[str, str]) -> str:
        existing = api.get_statement(name)
        if existing is not None and (existing.get("status") or {}).get("phase") == "COMPLETED":
            return name
        if existing is not None:
            api.delete_statement(name)
        api.create_statement(name, sql, properties=properties, labels={KIND_LABEL: "ddl"})
        api.wait_phase(name, {"COMPLETED"}, self.ddl_timeout_s)
        return name

    def remember(self, pipeline: Pipeline, running: dict[str, str]) -> None:
        return None  # Confluent keeps the statements and their labels

    def start(self, pipeline: Pipeline, role: StatementRole, resume_from: Optional[str] = None) -> str:
        api = self.api
        st = pipeline.statements[role]
        props, labels = statement_request(pipeline, role, resume_from)
        if api.get_statement(st.name) is not None:  # a stopped/failed earlier attempt: names are unique
            api.delete_statement(st.name)
        api.create_statement(st.name, st.sql, properties=props, labels=labels)
        return st.name

    def wait_running(self, name: str, ident: str, timeout_s: float) -> str:
        try:
            return self.api.wait_phase(ident, {"RUNNING"}, timeout_s)["status"]["phase"]
        except (ConfluentApiError, TimeoutError) as exc:
            raise RolloutError(str(exc)) from exc

    def stop(self, pipeline: Pipeline, name: str, ident: str) -> str:
        api = self.api
        api.update_statement(ident, stopped=True, labels={RETIRED_LABEL: "true"})
        api.wait_phase(ident, {"STOPPED"})
        return "STOPPED"

    def resume_stopped(self, pipeline: Pipeline, role: StatementRole, name: str, after: Optional[str]) -> str:
        # Resume, never recreate: the stopped statement keeps its offsets (a recreate would start from the
        # earliest offset and rescore everything).
        self.api.update_statement(name, stopped=False, labels={RETIRED_LABEL: "false"})
        self.wait_running(name, name, 300.0)
        return name

    def probe(self, pipeline: Pipeline) -> dict[str, Any]:
        # CREATE MODEL completed in prepare(); Confluent checks the connection when a statement runs it.
        return {"model": pipeline.model_name, "checked": "model created; scoring checked on RUNNING"}

    def position(self, pipeline: Pipeline, role: StatementRole) -> Any:
        return None

    def verify_produces(
        self, pipeline: Pipeline, role: StatementRole, ident: str, before: Any, timeout_s: float
    ) -> str:
        st = self.api.get_statement(ident) or {}
        phase = (st.get("status") or {}).get("phase")
        if phase != "RUNNING":
            raise RolloutError(f"{ident} is {phase}: {(st.get('status') or {}).get('detail', '')}")
        return "RUNNING"

    # ---- monitoring and healing: read back from the statements' labels -------------------------------------

    def source_positions(
        self, statement_prefix: str, group_prefix: str = "lead-scoring"
    ) -> Optional[dict[str, dict[tuple[str, int], int]]]:
        return self._deployed.source_positions(statement_prefix, group_prefix)

    def deployed(self, statement_prefix: str) -> Optional[DeploymentState]:
        return self._deployed.deployed(statement_prefix)

    def health(self, statement_prefix: str) -> list[StatementHealth]:
        return self._deployed.health(statement_prefix)

    def heal(self, statement_prefix: str) -> list[HealAction]:
        return self._deployed.heal(statement_prefix)

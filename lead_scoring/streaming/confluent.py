"""Confluent Cloud for Apache Flink: the Statements REST API (gcp profile).

Contract: the SQL API v1 OpenAPI document (`confluentinc/ccloud-sdk-go-v2` `flink-gateway/v1/api/openapi.yaml`,
the same document Confluent ships in the `confluent-flink-jars` package; the tests validate every request
we send against it). `POST /sql/v1/organizations/{org}/environments/{env}/statements` creates a statement,
`GET .../{name}` reads its phase (PENDING, RUNNING, COMPLETED, DEGRADED, STOPPING, STOPPED, FAILING, FAILED,
DELETING), `PUT .../{name}` replaces it (stop and resume are a PUT of the fetched statement with
`spec.stopped` flipped, as `confluent flink statement stop|resume` do; a 409 means it changed since it was
read: read it again and retry), `DELETE` removes it. A stateless replacement resumes from a stopped
statement's offsets with the property `sql.tables.initial-offset-from`.

User labels must carry the `user.confluent.io/` prefix. Ours say which model version a statement scores
with, what it is (DDL or a long-running statement) and whether a rollout retired it, so the healing sensor
knows, from Confluent itself, which stopped or failed statements to resume.

The Vertex AI service-account key only travels in the body of `POST .../connections` (HTTPS), as the
`SERVICE_KEY` of a `PlaintextProvider` auth block (how the Confluent CLI sends `--service-key`); never in
SQL text, statement properties, logs or metadata.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import dagster as dg
import httpx
import tenacity
from pydantic import Field, PrivateAttr

from lead_scoring.retry import WaitTimeout, backoff, wait_until
from lead_scoring.streaming.engine import (
    DeploymentState,
    FlinkEngine,
    HealAction,
    RolloutError,
    StatementHealth,
)
from lead_scoring.streaming.render import (
    SHADOW_KEY_SUFFIX,
    Dialect,
    Pipeline,
    StatementRole,
    is_shadow_key,
    statement_group_id,
)

log = logging.getLogger(__name__)

TERMINAL_PHASES = frozenset({"COMPLETED", "STOPPED", "FAILED"})
LIVE_PHASES = ("PENDING", "RUNNING", "DEGRADED")
RESUMABLE_PHASES = ("STOPPED", "FAILED", "FAILING")
LABEL = "user.confluent.io/"
KIND_LABEL = LABEL + "lead-scoring-kind"  # ddl | statement
ROLE_LABEL = LABEL + "lead-scoring-role"
RETIRED_LABEL = LABEL + "lead-scoring-retired"  # "true": stopped by a rollout that replaced it


class ConfluentApiError(RuntimeError):
    """The Statements API refused a request; the message carries Confluent's own error text."""


class _Conflict(ConfluentApiError):
    """409: the statement changed since it was read (PUT), or one of that name still exists (POST)."""


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

    # ---- the REST client --------------------------------------------------------------------------------

    @property
    def _statements(self) -> str:
        return f"/sql/v1/organizations/{self.organization_id}/environments/{self.environment_id}/statements"

    @property
    def _connections(self) -> str:
        return f"/sql/v1/organizations/{self.organization_id}/environments/{self.environment_id}/connections"

    @contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        with httpx.Client(
            base_url=self.base_url,
            auth=(self.api_key, self.api_secret),
            timeout=self.request_timeout_s,
            transport=self._transport,
        ) as client:
            yield client

    def read(self, path: str, params: Optional[dict[str, Any]] = None) -> httpx.Response:
        """A read-only GET under this environment's SQL API (`statements`, `connections/<name>`), unchecked:
        `lead-scoring preflight` tells 401/403/404 apart itself."""
        base = f"/sql/v1/organizations/{self.organization_id}/environments/{self.environment_id}"
        with self._client() as client:
            return client.get(f"{base}/{path}", params=params)

    @staticmethod
    def _check(resp: httpx.Response, what: str) -> dict[str, Any]:
        if resp.status_code >= 400:
            try:
                errors = resp.json().get("errors") or resp.json()
            except ValueError:
                errors = resp.text[:2000]
            raise ConfluentApiError(f"Confluent Cloud answered {resp.status_code} for {what}: {errors}")
        return resp.json() if resp.content else {}

    def statement_body(
        self, name: str, sql: str, properties: Optional[dict[str, str]] = None, labels: Optional[dict[str, str]] = None
    ) -> dict[str, Any]:
        """The body of `POST .../statements` (also what `lead-scoring plan` prints)."""
        body: dict[str, Any] = {
            "name": name,
            "organization_id": self.organization_id,
            "environment_id": self.environment_id,
            "spec": {
                "statement": sql,
                "properties": {
                    "sql.current-catalog": self.catalog,
                    "sql.current-database": self.database,
                    **(properties or {}),
                },
                "compute_pool_id": self.compute_pool_id,
                "principal": self.principal,
                "stopped": False,
            },
        }
        if labels:
            body["metadata"] = {"labels": labels}
        return body

    def create_statement(
        self, name: str, sql: str, properties: Optional[dict[str, str]] = None, labels: Optional[dict[str, str]] = None
    ) -> dict[str, Any]:
        """POST the statement; a 409 (a statement of that name is still being deleted) is retried with backoff
        for up to `delete_timeout_s`, then reported with Confluent's answer."""
        body = self.statement_body(name, sql, properties, labels)
        log.info("creating Confluent statement %s", name)
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, _Conflict)),
            stop=tenacity.stop_after_delay(self.delete_timeout_s),
            wait=backoff(max(self.poll_interval_s, 0.01), 10.0),
            reraise=True,
        )
        try:
            return retrying(self._post_statement, name, body)
        except _Conflict as exc:
            raise ConfluentApiError(
                f"{exc} (a statement named {name} still exists after "
                f"{self.delete_timeout_s:.0f} s: delete it, or wait and roll out again)"
            ) from None

    def _post_statement(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self._client() as client:
            resp = client.post(self._statements, json=body)
        if resp.status_code == 409:
            raise _Conflict(f"Confluent Cloud answered 409 for create statement {name}: {resp.text[:500]}")
        return self._check(resp, f"create statement {name}")

    def get_statement(self, name: str) -> Optional[dict[str, Any]]:
        with self._client() as client:
            resp = client.get(f"{self._statements}/{name}")
        if resp.status_code == 404:
            return None
        return self._check(resp, f"get statement {name}")

    def list_statements(self, prefix: str = "") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"page_size": 100}
        with self._client() as client:
            while True:
                page = self._check(client.get(self._statements, params=params), "list statements")
                out += [s for s in page.get("data", []) if s.get("name", "").startswith(prefix)]
                token = (page.get("metadata") or {}).get("next")
                if not token:
                    return out
                params = {"page_size": 100, "page_token": _page_token(token)}

    def update_statement(
        self, name: str, *, stopped: bool, labels: Optional[dict[str, str]] = None, attempts: int = 5
    ) -> dict[str, Any]:
        """PUT the fetched statement back with `spec.stopped` (and labels) changed; on 409 (it changed since
        we read it) read it again, reapply and retry, as the API's description asks."""
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, _Conflict)),
            stop=tenacity.stop_after_attempt(attempts),
            wait=backoff(self.poll_interval_s / 4, 5.0),
            reraise=True,
        )
        try:
            return retrying(self._put_stopped, name, stopped, labels or {})
        except _Conflict as exc:
            raise ConfluentApiError(f"{exc} (still conflicting after {attempts} attempts)") from None

    def _put_stopped(self, name: str, stopped: bool, labels: dict[str, str]) -> dict[str, Any]:
        current = self.get_statement(name)
        if current is None:
            raise ConfluentApiError(f"statement {name} does not exist")
        metadata = current.get("metadata") or {}
        body = {
            "name": name,
            "organization_id": self.organization_id,
            "environment_id": self.environment_id,
            "spec": {**current["spec"], "stopped": stopped},
            "metadata": {
                "resource_version": metadata.get("resource_version"),
                "labels": {**(metadata.get("labels") or {}), **labels},
            },
        }
        log.info("%s Confluent statement %s", "stopping" if stopped else "resuming", name)
        with self._client() as client:
            resp = client.put(f"{self._statements}/{name}", json=body)
        what = f"{'stop' if stopped else 'resume'} statement {name}"
        if resp.status_code == 409:
            raise _Conflict(f"Confluent Cloud answered 409 for {what}: {resp.text[:500]}")
        return self._check(resp, what)

    def delete_statement(self, name: str, wait: bool = True) -> None:
        """DELETE answers 202 ("being deleted"): with `wait`, poll until GET answers 404, so the name can be
        created again (bounded by `delete_timeout_s`)."""
        with self._client() as client:
            resp = client.delete(f"{self._statements}/{name}")
        if resp.status_code not in (202, 204, 404):
            self._check(resp, f"delete statement {name}")
        if not wait or resp.status_code == 404:
            return
        last: dict[str, Any] = {}

        def gone() -> bool | None:
            st = self.get_statement(name)
            last.update(st or {})
            return True if st is None else None

        try:
            wait_until(
                gone,
                timeout_s=self.delete_timeout_s,
                interval_s=self.poll_interval_s,
                what=f"statement {name} deleted",
                last_state=lambda: str((last.get("status") or {}).get("phase", "UNKNOWN")),
            )
        except WaitTimeout as exc:
            raise TimeoutError(str(exc)) from None

    def wait_phase(self, name: str, phases: set[str], timeout_s: float = 300.0) -> dict[str, Any]:
        """Poll until the statement reaches one of `phases`; raise on FAILED or on timeout."""
        last: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            st = self.get_statement(name) or {}
            last.update(st)
            phase = (st.get("status") or {}).get("phase", "UNKNOWN")
            if phase in phases:
                return st
            if phase == "FAILED" or (phase in TERMINAL_PHASES and phase not in phases):
                raise ConfluentApiError(f"statement {name} is {phase}: {(st.get('status') or {}).get('detail', '')}")
            return None

        try:
            return wait_until(
                reached,
                timeout_s=timeout_s,
                interval_s=self.poll_interval_s,
                what=f"statement {name} in {sorted(phases)}",
                last_state=lambda: str((last.get("status") or {}).get("phase", "UNKNOWN")),
            )
        except WaitTimeout as exc:
            raise TimeoutError(str(exc)) from None

    @staticmethod
    def connection_body(name: str, endpoint: str, service_key: str) -> dict[str, Any]:
        """The body of `POST .../connections` for Vertex AI (the key JSON under SERVICE_KEY, as the CLI sends it)."""
        return {
            "name": name,
            "spec": {
                "connection_type": "VERTEXAI",
                "endpoint": endpoint,
                "auth_data": {"kind": "PlaintextProvider", "data": json.dumps({"SERVICE_KEY": service_key})},
            },
        }

    def ensure_vertex_connection(self, name: str, endpoint: str, service_key: str) -> str:
        """Create the Vertex AI connection unless it exists; returns 'created' or 'exists'."""
        body = self.connection_body(name, endpoint, service_key)
        with self._client() as client:
            existing = client.get(f"{self._connections}/{name}")
            if existing.status_code == 200:
                current = (existing.json().get("spec") or {}).get("endpoint")
                if current and current != endpoint:  # the endpoint is immutable: the operator must decide
                    raise ConfluentApiError(
                        f"connection {name} points at {current}, not {endpoint}; delete it "
                        f"(`confluent flink connection delete {name}`) and roll out again"
                    )
                return "exists"
            resp = client.post(self._connections, json=body)
        if resp.status_code == 409:
            return "exists"
        self._check(resp, f"create connection {name}")  # the body (with the key) is never in the message
        return "created"

    # ---- FlinkEngine ------------------------------------------------------------------------------------

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

    def running(self, prefix: str) -> dict[str, str]:
        return {
            s["name"]: s["name"]
            for s in self.list_statements(prefix)
            if (s.get("status") or {}).get("phase") in LIVE_PHASES
            and not (s.get("spec") or {}).get("stopped")
            and ((s.get("metadata") or {}).get("labels") or {}).get(KIND_LABEL) != "ddl"
        }

    def prepare(self, pipeline: Pipeline) -> list[str]:
        """Tables and the model: idempotent DDL statements (IF NOT EXISTS), each run to COMPLETED."""
        done = []
        s = pipeline.settings
        if self.vertex_service_key:
            self.ensure_vertex_connection(s.vertex_connection, s.model_endpoint, self.vertex_service_key)
        for name, sql in ddl_statements(pipeline):
            done.append(self._run_ddl(name, sql, pipeline.session_config))
        return done

    def _run_ddl(self, name: str, sql: str, properties: dict[str, str]) -> str:
        existing = self.get_statement(name)
        if existing is not None and (existing.get("status") or {}).get("phase") == "COMPLETED":
            return name
        if existing is not None:
            self.delete_statement(name)
        self.create_statement(name, sql, properties=properties, labels={KIND_LABEL: "ddl"})
        self.wait_phase(name, {"COMPLETED"}, self.ddl_timeout_s)
        return name

    def remember(self, pipeline: Pipeline, running: dict[str, str]) -> None:
        return None  # Confluent keeps the statements and their labels

    @staticmethod
    def statement_request(
        pipeline: Pipeline, role: StatementRole, resume_from: Optional[str] = None
    ) -> tuple[dict[str, str], dict[str, str]]:
        """(properties, labels) of the long-running statement of `role`."""
        props = dict(pipeline.session_config)
        if resume_from:
            props["sql.tables.initial-offset-from"] = resume_from
        # no model-version label: the version is the endpoint's, it changes under a running statement
        labels = {KIND_LABEL: "statement", ROLE_LABEL: role.value, RETIRED_LABEL: "false"}
        return props, labels

    def start(self, pipeline: Pipeline, role: StatementRole, resume_from: Optional[str] = None) -> str:
        st = pipeline.statements[role]
        props, labels = self.statement_request(pipeline, role, resume_from)
        if self.get_statement(st.name) is not None:  # a stopped/failed earlier attempt: names are unique
            self.delete_statement(st.name)
        self.create_statement(st.name, st.sql, properties=props, labels=labels)
        return st.name

    def wait_running(self, name: str, ident: str, timeout_s: float) -> str:
        try:
            return self.wait_phase(ident, {"RUNNING"}, timeout_s)["status"]["phase"]
        except (ConfluentApiError, TimeoutError) as exc:
            raise RolloutError(str(exc)) from exc

    def stop(self, pipeline: Pipeline, name: str, ident: str) -> str:
        self.update_statement(ident, stopped=True, labels={RETIRED_LABEL: "true"})
        self.wait_phase(ident, {"STOPPED"})
        return "STOPPED"

    def resume_stopped(self, pipeline: Pipeline, role: StatementRole, name: str, after: Optional[str]) -> str:
        # Resume, never recreate: the stopped statement keeps its offsets (a recreate would start from the
        # earliest offset and rescore everything).
        self.update_statement(name, stopped=False, labels={RETIRED_LABEL: "false"})
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
        st = self.get_statement(ident) or {}
        phase = (st.get("status") or {}).get("phase")
        if phase != "RUNNING":
            raise RolloutError(f"{ident} is {phase}: {(st.get('status') or {}).get('detail', '')}")
        return "RUNNING"

    # ---- monitoring -------------------------------------------------------------------------------------

    def source_positions(
        self, statement_prefix: str, group_prefix: str = "lead-scoring"
    ) -> Optional[dict[str, dict[tuple[str, int], int]]]:
        """From `status.latest_offsets` of each wanted statement: Confluent Cloud's statements read with
        assign() and appear in no consumer group (Confluent's monitoring docs), so lag is the topic's end
        offsets minus these. Keyed by the group id the monitoring watches for the statement's role."""
        out: dict[str, dict[tuple[str, int], int]] = {}
        for st in self._wanted(statement_prefix):
            role = ((st.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL, "")
            if (st.get("status") or {}).get("phase") not in LIVE_PHASES or role not in _ROLES:
                continue
            offsets = parse_latest_offsets((st.get("status") or {}).get("latest_offsets") or {})
            out[statement_group_id(group_prefix, _ROLES[role])] = offsets
        return out

    # ---- healing ----------------------------------------------------------------------------------------

    def _wanted(self, statement_prefix: str) -> list[dict[str, Any]]:
        """The pipeline's long-running statements a rollout did not retire (from their labels).

        `statement_prefix` is a deployment key: `<prefix>` (the champion's statements) or `<prefix>-shadow`
        (the challenger's); both are named `<prefix>-...`, so the role label tells them apart."""
        shadow = is_shadow_key(statement_prefix)
        prefix = statement_prefix.removesuffix(SHADOW_KEY_SUFFIX) if shadow else statement_prefix
        out = []
        for st in self.list_statements(prefix + "-"):
            labels = (st.get("metadata") or {}).get("labels") or {}
            role = _ROLES.get(labels.get(ROLE_LABEL, ""))
            if role is not None and role.is_shadow != shadow:
                continue
            if labels.get(KIND_LABEL) == "statement" and labels.get(RETIRED_LABEL) != "true":
                out.append(st)
        return out

    def deployed(self, statement_prefix: str) -> Optional[DeploymentState]:
        wanted = self._wanted(statement_prefix)
        if not wanted:
            return None
        return DeploymentState(
            None, {s["name"]: ((s.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL, "") for s in wanted}
        )

    def health(self, statement_prefix: str) -> list[StatementHealth]:
        out = []
        for st in self._wanted(statement_prefix):
            status = st.get("status") or {}
            phase = (
                "STOPPED"
                if (st.get("spec") or {}).get("stopped") and status.get("phase") == "RUNNING"
                else status.get("phase", "UNKNOWN")
            )
            role = ((st.get("metadata") or {}).get("labels") or {}).get(ROLE_LABEL, "")
            out.append(StatementHealth(st["name"], role, phase, st["name"], status.get("detail", "")))
        return out

    def heal(self, statement_prefix: str) -> list[HealAction]:
        """Resume (PUT spec.stopped=false) every wanted statement that is stopped or failed; never recreate."""
        actions = []
        for st in self._wanted(statement_prefix):
            phase = (st.get("status") or {}).get("phase")
            if phase in RESUMABLE_PHASES or (st.get("spec") or {}).get("stopped"):
                self.update_statement(st["name"], stopped=False)
                actions.append(HealAction(st["name"], "resumed", st["name"], detail=f"was {phase}"))
            else:
                actions.append(HealAction(st["name"], "left", st["name"], detail=str(phase)))
        return actions


_ROLES = {role.value: role for role in StatementRole}


def parse_latest_offsets(latest: dict[str, str]) -> dict[tuple[str, int], int]:
    """`{"topic": "partition:0,offset:100;partition:1,offset:200"}` (the API's format) -> {(topic, 0): 100, ...}.

    Taken as the next offset to read, like a committed consumer offset (the API says "the last Kafka offsets
    that a statement has processed"; read the other way, the lag is overstated by at most 1 per partition).
    """
    out: dict[tuple[str, int], int] = {}
    for topic, text in latest.items():
        for part in filter(None, (p.strip() for p in text.split(";"))):
            fields = dict(kv.split(":", 1) for kv in part.split(",") if ":" in kv)
            try:
                out[(topic, int(fields["partition"]))] = int(fields["offset"])
            except (KeyError, ValueError):
                log.warning("unreadable latest_offsets entry for %s: %r", topic, part)
    return out


def ddl_statements(pipeline: Pipeline) -> list[tuple[str, str]]:
    """(statement name, SQL) of the run-once DDL: every table Confluent owns, then the model version."""
    s = pipeline.settings
    out = [(f"{s.statement_prefix}-ddl-{table.replace('_', '-')}", sql) for table, sql in pipeline.ddl()]
    # the model object is named after its DDL (render.model_name): one DDL statement per model definition
    out.append(
        (
            f"{s.statement_prefix}-ddl-{pipeline.model_name.replace('_', '-')}"[:100].rstrip("-"),
            pipeline.model_sql.replace("CREATE MODEL", "CREATE MODEL IF NOT EXISTS", 1),
        )
    )
    return out


def _page_token(next_url: str) -> str:
    return httpx.URL(next_url).params.get("page_token", "")

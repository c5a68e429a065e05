"""Confluent Cloud for Apache Flink: the Statements REST API (gcp profile).

`POST /sql/v1/organizations/{org}/environments/{env}/statements` creates a statement, `GET .../{name}`
reads its phase (PENDING, RUNNING, COMPLETED, DEGRADED, STOPPING, STOPPED, FAILED, DELETING), `PUT
.../{name}` with `spec.stopped = true` stops it, `DELETE` removes it. A stateless replacement resumes
from a stopped statement's offsets with the property `sql.tables.initial-offset-from`.

The Vertex AI service-account key only travels in the body of `POST .../connections` (HTTPS), never in
SQL text, statement properties, logs or metadata.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import dagster as dg
import httpx
from pydantic import Field, PrivateAttr

log = logging.getLogger(__name__)

TERMINAL_PHASES = frozenset({"COMPLETED", "STOPPED", "FAILED"})


class ConfluentApiError(RuntimeError):
    """The Statements API refused a request; the message carries Confluent's own error text."""


class ConfluentFlinkResource(dg.ConfigurableResource):
    """A small client of the Confluent Cloud Flink SQL Statements API."""

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
        default=None, description="GCP service-account key (JSON) for the Vertex AI connection (from an EnvVar)")
    poll_interval_s: float = 2.0
    request_timeout_s: float = 30.0
    _transport: Optional[httpx.BaseTransport] = PrivateAttr(default=None)

    @classmethod
    def from_env(cls) -> ConfluentFlinkResource:
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

    def with_transport(self, transport: httpx.BaseTransport) -> ConfluentFlinkResource:
        """For tests: route every request through `transport` (e.g. httpx.MockTransport)."""
        self._transport = transport
        return self

    @property
    def _statements(self) -> str:
        return f"/sql/v1/organizations/{self.organization_id}/environments/{self.environment_id}/statements"

    @property
    def _connections(self) -> str:
        return f"/sql/v1/organizations/{self.organization_id}/environments/{self.environment_id}/connections"

    @contextmanager
    def _client(self) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=self.base_url, auth=(self.api_key, self.api_secret),
                          timeout=self.request_timeout_s, transport=self._transport) as client:
            yield client

    @staticmethod
    def _check(resp: httpx.Response, what: str) -> dict[str, Any]:
        if resp.status_code >= 400:
            try:
                errors = resp.json().get("errors") or resp.json()
            except ValueError:
                errors = resp.text[:2000]
            raise ConfluentApiError(f"Confluent Cloud answered {resp.status_code} for {what}: {errors}")
        return resp.json() if resp.content else {}

    # -- statements ---------------------------------------------------------------------------------
    def create_statement(self, name: str, sql: str, properties: Optional[dict[str, str]] = None,
                         labels: Optional[dict[str, str]] = None) -> dict[str, Any]:
        body = {
            "name": name,
            "organization_id": self.organization_id,
            "environment_id": self.environment_id,
            "spec": {
                "statement": sql,
                "properties": {"sql.current-catalog": self.catalog, "sql.current-database": self.database,
                               **(properties or {})},
                "compute_pool_id": self.compute_pool_id,
                "principal": self.principal,
                "stopped": False,
            },
        }
        if labels:
            body["metadata"] = {"labels": labels}
        log.info("creating Confluent statement %s", name)
        with self._client() as client:
            return self._check(client.post(self._statements, json=body), f"create statement {name}")

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

    def stop_statement(self, name: str) -> dict[str, Any]:
        """PUT the statement back with spec.stopped = true (the API updates by full replacement)."""
        current = self.get_statement(name)
        if current is None:
            raise ConfluentApiError(f"statement {name} does not exist")
        body = {
            "name": name,
            "organization_id": self.organization_id,
            "environment_id": self.environment_id,
            "spec": {**current["spec"], "stopped": True},
            "metadata": {"resource_version": (current.get("metadata") or {}).get("resource_version")},
        }
        log.info("stopping Confluent statement %s", name)
        with self._client() as client:
            return self._check(client.put(f"{self._statements}/{name}", json=body), f"stop statement {name}")

    def delete_statement(self, name: str) -> None:
        with self._client() as client:
            resp = client.delete(f"{self._statements}/{name}")
        if resp.status_code not in (202, 204, 404):
            self._check(resp, f"delete statement {name}")

    def wait_phase(self, name: str, phases: set[str], timeout_s: float = 300.0) -> dict[str, Any]:
        """Poll until the statement reaches one of `phases`; raise on FAILED or on timeout."""
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.get_statement(name)
            phase = ((st or {}).get("status") or {}).get("phase", "UNKNOWN")
            if phase in phases:
                return st or {}
            if phase == "FAILED" or (phase in TERMINAL_PHASES and phase not in phases):
                detail = ((st or {}).get("status") or {}).get("detail", "")
                raise ConfluentApiError(f"statement {name} is {phase}: {detail}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"statement {name} still {phase} after {timeout_s:.0f} s")
            time.sleep(self.poll_interval_s)

    # -- connections --------------------------------------------------------------------------------
    def ensure_vertex_connection(self, name: str, endpoint: str, service_key: str) -> str:
        """Create the Vertex AI connection unless it exists; returns 'created' or 'exists'."""
        body = {
            "name": name,
            "spec": {"connection_type": "VERTEXAI", "endpoint": endpoint,
                     "auth_data": {"kind": "ServiceKey", "service_key": service_key}},
        }
        with self._client() as client:
            if client.get(f"{self._connections}/{name}").status_code == 200:
                return "exists"
            resp = client.post(self._connections, json=body)
        if resp.status_code == 409:
            return "exists"
        self._check(resp, f"create connection {name}")  # the body (with the key) is never in the message
        return "created"


def _page_token(next_url: str) -> str:
    return httpx.URL(next_url).params.get("page_token", "")

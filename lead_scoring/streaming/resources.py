"""Dagster resources for the streaming engines: Kafka and the Flink SQL Gateway.

By default they point at the local stack (`lead-scoring stack up`); in the gcp profile Kafka points at
Confluent Cloud (SASL_SSL with an API key fed by `dg.EnvVar`). Confluent Cloud's Flink is driven by
its Statements REST API, not the SQL Gateway: that resource belongs to the gcp streaming issue.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional

import dagster as dg
import httpx
from pydantic import Field

from lead_scoring.settings import Profile, current_profile

log = logging.getLogger(__name__)


def _local_stack_config():
    # Imported lazily: the stack config reads the environment, which must not happen at import time.
    from lead_scoring.stack.config import StackConfig

    return StackConfig.from_env()


class KafkaResource(dg.ConfigurableResource):
    """Kafka clients (confluent-kafka) for the local broker or Confluent Cloud."""

    bootstrap_servers: str = Field(description="host:port[,host:port]")
    security_protocol: str = Field(default="PLAINTEXT", description="PLAINTEXT locally, SASL_SSL on Confluent Cloud")
    sasl_mechanism: Optional[str] = Field(default=None, description="PLAIN on Confluent Cloud")
    api_key: Optional[str] = Field(default=None, description="Confluent Cloud API key (sasl.username)")
    api_secret: Optional[str] = Field(default=None, description="Confluent Cloud API secret (sasl.password)")
    client_id: str = Field(default="lead-scoring", description="client.id sent to the brokers")

    @classmethod
    def local(cls) -> KafkaResource:
        return cls(bootstrap_servers=_local_stack_config().kafka_bootstrap)

    @classmethod
    def confluent_cloud(cls) -> KafkaResource:
        return cls(
            bootstrap_servers=dg.EnvVar("CONFLUENT_BOOTSTRAP_SERVERS"),
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            api_key=dg.EnvVar("CONFLUENT_KAFKA_API_KEY"),
            api_secret=dg.EnvVar("CONFLUENT_KAFKA_API_SECRET"),
        )

    def client_config(self) -> dict[str, Any]:
        """The librdkafka settings every client shares (credentials included; never log this)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.api_key:
            conf["sasl.username"] = self.api_key
        if self.api_secret:
            conf["sasl.password"] = self.api_secret
        return conf

    def producer(self, **overrides: Any):
        """An idempotent producer (acks=all): no duplicates or reordering on retry."""
        from confluent_kafka import Producer

        conf = {**self.client_config(), "enable.idempotence": True, "acks": "all", "linger.ms": 5}
        conf.update(overrides)
        return Producer(conf)

    def consumer(self, group_id: str, **overrides: Any):
        """A consumer in `group_id` that starts from the earliest offset and commits manually."""
        from confluent_kafka import Consumer

        conf = {
            **self.client_config(),
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
        conf.update(overrides)
        return Consumer(conf)

    def admin(self, **overrides: Any):
        from confluent_kafka.admin import AdminClient

        return AdminClient({**self.client_config(), **overrides})


class FlinkSqlError(RuntimeError):
    """A statement failed in the SQL Gateway; the message carries Flink's own error text."""


@dataclass
class SqlResult:
    """Columns and rows of a finished (or bounded) operation."""

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # INSERT / UPDATE_BEFORE / UPDATE_AFTER / DELETE per row
    job_id: Optional[str] = None


class SqlGatewaySession:
    """One SQL Gateway session: catalogs, tables and `SET`s live as long as it does."""

    def __init__(self, client: httpx.Client, handle: str, poll_interval_s: float):
        self._client = client
        self.handle = handle
        self._poll = poll_interval_s

    def submit(self, statement: str, execution_config: Optional[dict[str, str]] = None) -> str:
        """Submit one statement; returns its operation handle at once."""
        body: dict[str, Any] = {"statement": statement}
        if execution_config:
            body["executionConfig"] = execution_config
        resp = self._client.post(f"/v1/sessions/{self.handle}/statements", json=body)
        _raise_for(resp, statement)
        return resp.json()["operationHandle"]

    def status(self, operation: str) -> str:
        resp = self._client.get(f"/v1/sessions/{self.handle}/operations/{operation}/status")
        _raise_for(resp, f"status of {operation}")
        return resp.json()["status"]

    def wait(self, operation: str, timeout_s: float = 120.0, statement: str = "") -> str:
        """Poll until the operation leaves PENDING/RUNNING; raise FlinkSqlError on ERROR."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = self.status(operation)
            if state == "ERROR":
                raise FlinkSqlError(self._error_text(operation, statement))
            if state not in ("INITIALIZED", "PENDING", "RUNNING"):
                return state
            if time.monotonic() > deadline:
                raise TimeoutError(f"statement still {state} after {timeout_s:.0f} s: {statement[:200]}")
            time.sleep(self._poll)

    def _error_text(self, operation: str, statement: str) -> str:
        # Fetching the result of a failed operation returns the exception chain.
        resp = self._client.get(f"/v1/sessions/{self.handle}/operations/{operation}/result/0",
                                params={"rowFormat": "JSON"})
        errors = resp.json().get("errors", [resp.text]) if resp.headers.get("content-type", "").startswith(
            "application/json") else [resp.text]
        text = "\n".join(str(e) for e in errors)
        # The last "Caused by" is usually the real reason; keep the head and the root cause.
        causes = [ln for ln in text.splitlines() if ln.startswith("Caused by:")]
        head = text.splitlines()[0] if text else "unknown error"
        root = causes[-1] if causes else ""
        return f"{statement[:300]!r} failed: {head}\n{root}".strip()

    def fetch(self, operation: str, max_rows: Optional[int] = None, timeout_s: float = 60.0) -> SqlResult:
        """Follow the result pages until EOS (or `max_rows` rows, for unbounded queries)."""
        uri = f"/v1/sessions/{self.handle}/operations/{operation}/result/0"
        result: Optional[SqlResult] = None
        deadline = time.monotonic() + timeout_s
        while uri:
            resp = self._client.get(uri, params={"rowFormat": "JSON"} if "rowFormat" not in uri else None)
            if resp.status_code >= 400 and "errors" in resp.text:
                raise FlinkSqlError(self._error_text(operation, ""))
            _raise_for(resp, f"result of {operation}")
            page = resp.json()
            payload = page.get("results") or {}
            if result is None and payload.get("columns") is not None:
                result = SqlResult(columns=[c["name"] for c in payload["columns"]], job_id=page.get("jobID"))
            if result is not None:
                for row in payload.get("data", []):
                    result.rows.append(row.get("fields", []))
                    result.kinds.append(row.get("kind", "INSERT"))
            if page.get("resultType") == "EOS":
                break
            if max_rows is not None and result is not None and len(result.rows) >= max_rows:
                break
            if time.monotonic() > deadline:
                rows = len(result.rows) if result else 0
                raise TimeoutError(f"no end of results after {timeout_s:.0f} s ({rows} rows)")
            if page.get("resultType") == "NOT_READY" or not payload.get("data"):
                time.sleep(self._poll)
            uri = page.get("nextResultUri")
        return result or SqlResult(columns=[])

    def execute(self, statement: str, timeout_s: float = 120.0, max_rows: Optional[int] = None) -> SqlResult:
        """Submit, wait, fetch: for DDL, SET, bounded SELECTs and INSERTs (whose result is the job id)."""
        op = self.submit(statement)
        self.wait(op, timeout_s, statement)
        return self.fetch(op, max_rows=max_rows, timeout_s=timeout_s)

    def close_operation(self, operation: str) -> None:
        self._client.delete(f"/v1/sessions/{self.handle}/operations/{operation}/close")


def _raise_for(resp: httpx.Response, what: str) -> None:
    if resp.status_code >= 400:
        raise FlinkSqlError(f"SQL Gateway answered {resp.status_code} for {what[:300]!r}: {resp.text[:2000]}")


class FlinkSqlGatewayResource(dg.ConfigurableResource):
    """A small client of the Flink SQL Gateway REST API (the local profile's Flink)."""

    url: str = Field(description="SQL Gateway base URL, e.g. http://127.0.0.1:8083")
    flink_rest_url: str = Field(description="JobManager REST URL, for job state and cancellation")
    poll_interval_s: float = Field(default=0.5)
    request_timeout_s: float = Field(default=30.0)

    @classmethod
    def local(cls) -> FlinkSqlGatewayResource:
        cfg = _local_stack_config()
        return cls(url=cfg.sql_gateway_url, flink_rest_url=cfg.flink_rest_url)

    def info(self) -> dict[str, Any]:
        resp = httpx.get(f"{self.url}/v1/info", timeout=self.request_timeout_s)
        _raise_for(resp, "info")
        return resp.json()

    @contextmanager
    def session(
        self, properties: Optional[dict[str, str]] = None, name: str = "lead-scoring"
    ) -> Iterator[SqlGatewaySession]:
        """Open a session, yield it, close it (also on error)."""
        with httpx.Client(base_url=self.url, timeout=self.request_timeout_s) as client:
            resp = client.post("/v1/sessions", json={"sessionName": name, "properties": properties or {}})
            _raise_for(resp, "open session")
            handle = resp.json()["sessionHandle"]
            try:
                yield SqlGatewaySession(client, handle, self.poll_interval_s)
            finally:
                try:
                    client.delete(f"/v1/sessions/{handle}")
                except httpx.HTTPError:
                    log.warning("could not close SQL Gateway session %s", handle)

    def job_state(self, job_id: str) -> str:
        resp = httpx.get(f"{self.flink_rest_url}/jobs/{job_id}", timeout=self.request_timeout_s)
        _raise_for(resp, f"job {job_id}")
        return resp.json()["state"]

    def cancel_job(self, job_id: str) -> None:
        resp = httpx.patch(f"{self.flink_rest_url}/jobs/{job_id}", params={"mode": "cancel"},
                           timeout=self.request_timeout_s)
        if resp.status_code not in (200, 202, 404):
            _raise_for(resp, f"cancel {job_id}")


def resources_for_profile(profile: Optional[Profile] = None) -> dict[str, dg.ConfigurableResource]:
    """The streaming resources of a profile (default: the active one), as `lead_scoring.resources` merges them.

    local: the stack's Kafka and SQL Gateway (ports from StackConfig / LEAD_SCORING_* variables).
    gcp: Confluent Cloud Kafka and Flink (Statements API, lead_scoring.streaming.confluent).
    """
    profile = profile or current_profile()
    # `flink` is the engine the streaming assets use (the same object as the profile-specific key).
    if profile is Profile.GCP:
        from lead_scoring.streaming.confluent import ConfluentFlinkResource

        confluent = ConfluentFlinkResource.from_env()
        return {"kafka": KafkaResource.confluent_cloud(), "confluent_flink": confluent, "flink": confluent}
    gateway = FlinkSqlGatewayResource.local()
    return {"kafka": KafkaResource.local(), "flink_sql": gateway, "flink": gateway}


def streaming_resources() -> dict[str, dg.ConfigurableResource]:
    """The streaming resources of the active profile."""
    return resources_for_profile()

"""The Statements REST API of one Confluent Cloud environment: requests and answers, nothing of the pipeline.

Contract: the SQL API v1 OpenAPI document (`confluentinc/ccloud-sdk-go-v2` `flink-gateway/v1/api/openapi.yaml`,
the same document Confluent ships in the `confluent-flink-jars` package; the tests validate every request
we send against it). `POST /sql/v1/organizations/{org}/environments/{env}/statements` creates a statement,
`GET .../{name}` reads its phase (PENDING, RUNNING, COMPLETED, DEGRADED, STOPPING, STOPPED, FAILING, FAILED,
DELETING), `PUT .../{name}` replaces it (stop and resume are a PUT of the fetched statement with
`spec.stopped` flipped, as `confluent flink statement stop|resume` do; a 409 means it changed since it was
read: read it again and retry), `DELETE` removes it.

Connections (the Vertex AI connection ML_PREDICT calls through) are `confluent_connections`, over this client.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional

import httpx
import tenacity

from lead_scoring.retry import WaitTimeout, backoff, wait_until

log = logging.getLogger(__name__)

TERMINAL_PHASES = frozenset({"COMPLETED", "STOPPED", "FAILED"})


class ConfluentApiError(RuntimeError):
    """The Statements API refused a request; the message carries Confluent's own error text."""


class _Conflict(ConfluentApiError):
    """409: the statement changed since it was read (PUT), or one of that name still exists (POST)."""


def checked(resp: httpx.Response, what: str) -> dict[str, Any]:
    """The answer's JSON; `ConfluentApiError` with Confluent's own error text when it is an error."""
    if resp.status_code >= 400:
        try:
            errors = resp.json().get("errors") or resp.json()
        except ValueError:
            errors = resp.text[:2000]
        raise ConfluentApiError(f"Confluent Cloud answered {resp.status_code} for {what}: {errors}")
    return resp.json() if resp.content else {}


@dataclass(frozen=True)
class StatementsApi:
    """Statements of one environment, run as `principal` in `compute_pool_id`."""

    base_url: str
    organization_id: str
    environment_id: str
    compute_pool_id: str
    principal: str
    catalog: str  # sql.current-catalog: the environment's display name
    database: str  # sql.current-database: the Kafka cluster's display name
    api_key: str = field(repr=False)
    api_secret: str = field(repr=False)
    poll_interval_s: float = 2.0
    request_timeout_s: float = 30.0
    # DELETE answers 202 "being deleted": the name stays taken (GET 200, POST 409) until GET answers 404
    delete_timeout_s: float = 300.0
    transport: Optional[httpx.BaseTransport] = field(default=None, repr=False)  # tests: a fake Confluent

    @property
    def environment_path(self) -> str:
        """The environment's SQL API path, under which statements and connections live."""
        return f"/sql/v1/organizations/{self.organization_id}/environments/{self.environment_id}"

    @property
    def _statements(self) -> str:
        return f"{self.environment_path}/statements"

    @contextmanager
    def client(self) -> Iterator[httpx.Client]:
        """An authenticated HTTP client for this environment's SQL API (one per call: nothing kept open)."""
        with httpx.Client(
            base_url=self.base_url,
            auth=(self.api_key, self.api_secret),
            timeout=self.request_timeout_s,
            transport=self.transport,
        ) as client:
            yield client

    def read(self, path: str, params: Optional[dict[str, Any]] = None) -> httpx.Response:
        """A read-only GET under this environment's SQL API (`statements`, `connections/<name>`), unchecked:
        `lead-scoring preflight` tells 401/403/404 apart itself."""
        with self.client() as client:
            return client.get(f"{self.environment_path}/{path}", params=params)

    # ---- statements ---------------------------------------------------------------------------------------

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
        retrying = _while_conflicting(
            tenacity.stop_after_delay(self.delete_timeout_s), backoff(max(self.poll_interval_s, 0.01), 10.0)
        )
        try:
            return retrying(self._post_statement, name, body)
        except _Conflict as exc:
            raise ConfluentApiError(
                f"{exc} (a statement named {name} still exists after "
                f"{self.delete_timeout_s:.0f} s: delete it, or wait and roll out again)"
            ) from None

    def _post_statement(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.client() as client:
            resp = client.post(self._statements, json=body)
        if resp.status_code == 409:
            raise _Conflict(f"Confluent Cloud answered 409 for create statement {name}: {resp.text[:500]}")
        return checked(resp, f"create statement {name}")

    def get_statement(self, name: str) -> Optional[dict[str, Any]]:
        with self.client() as client:
            resp = client.get(f"{self._statements}/{name}")
        if resp.status_code == 404:
            return None
        return checked(resp, f"get statement {name}")

    def list_statements(self, prefix: str = "") -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        params: dict[str, Any] = {"page_size": 100}
        with self.client() as client:
            while True:
                page = checked(client.get(self._statements, params=params), "list statements")
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
        retrying = _while_conflicting(tenacity.stop_after_attempt(attempts), backoff(self.poll_interval_s / 4, 5.0))
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
        with self.client() as client:
            resp = client.put(f"{self._statements}/{name}", json=body)
        what = f"{'stop' if stopped else 'resume'} statement {name}"
        if resp.status_code == 409:
            raise _Conflict(f"Confluent Cloud answered 409 for {what}: {resp.text[:500]}")
        return checked(resp, what)

    def delete_statement(self, name: str, wait: bool = True) -> None:
        """DELETE answers 202 ("being deleted"): with `wait`, poll until GET answers 404, so the name can be
        created again (bounded by `delete_timeout_s`)."""
        with self.client() as client:
            resp = client.delete(f"{self._statements}/{name}")
        if resp.status_code not in (202, 204, 404):
            checked(resp, f"delete statement {name}")
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
                last_state=lambda: phase_of(last),
            )
        except WaitTimeout as exc:
            raise TimeoutError(str(exc)) from None

    def wait_phase(self, name: str, phases: set[str], timeout_s: float = 300.0) -> dict[str, Any]:
        """Poll until the statement reaches one of `phases`; raise on FAILED or on timeout."""
        last: dict[str, Any] = {}

        def reached() -> dict[str, Any] | None:
            st = self.get_statement(name) or {}
            last.update(st)
            phase = phase_of(st)
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
                last_state=lambda: phase_of(last),
            )
        except WaitTimeout as exc:
            raise TimeoutError(str(exc)) from None


def phase_of(statement: dict[str, Any]) -> str:
    """The statement's `status.phase` (UNKNOWN when it has none yet)."""
    return str((statement.get("status") or {}).get("phase", "UNKNOWN"))


def _while_conflicting(stop: Any, wait: Any) -> tenacity.Retrying:
    """Retry a request while Confluent answers 409 (`_Conflict`), then raise the last one."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(lambda exc: isinstance(exc, _Conflict)), stop=stop, wait=wait, reraise=True
    )


def _page_token(next_url: str) -> str:
    return httpx.URL(next_url).params.get("page_token", "")

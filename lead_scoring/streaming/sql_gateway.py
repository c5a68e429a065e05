"""The Flink SQL Gateway's REST API (v1): a session, and the operations (statements) submitted in it.

A session holds catalogs, tables, functions and `SET`s for as long as it lives; each of the pipeline's
statements is submitted in a session of its own (gateway.py), and the probe's bounded query in another.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Optional

import httpx

from lead_scoring.retry import WaitTimeout, wait_until

log = logging.getLogger(__name__)


class FlinkSqlError(RuntimeError):
    """A statement failed in the SQL Gateway; the message carries Flink's own error text."""


@dataclass
class SqlResult:
    """Columns and rows of a finished (or bounded) operation."""

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # INSERT / UPDATE_BEFORE / UPDATE_AFTER / DELETE per row
    job_id: Optional[str] = None


def raise_for(resp: httpx.Response, what: str) -> None:
    """FlinkSqlError with Flink's answer when `resp` is an error."""
    if resp.status_code >= 400:
        raise FlinkSqlError(f"SQL Gateway answered {resp.status_code} for {what[:300]!r}: {resp.text[:2000]}")


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
        raise_for(resp, statement)
        return resp.json()["operationHandle"]

    def status(self, operation: str) -> str:
        resp = self._client.get(f"/v1/sessions/{self.handle}/operations/{operation}/status")
        raise_for(resp, f"status of {operation}")
        return resp.json()["status"]

    def wait(self, operation: str, timeout_s: float = 120.0, statement: str = "") -> str:
        """Poll until the operation leaves PENDING/RUNNING; raise FlinkSqlError on ERROR."""
        last = {"state": "unknown"}

        def finished() -> str | None:
            state = last["state"] = self.status(operation)
            if state == "ERROR":
                raise FlinkSqlError(self._error_text(operation, statement))
            return None if state in ("INITIALIZED", "PENDING", "RUNNING") else state

        try:
            return wait_until(
                finished,
                timeout_s=timeout_s,
                interval_s=self._poll,
                what=f"statement {statement[:200]}",
                last_state=lambda: last["state"],
            )
        except WaitTimeout as exc:
            raise TimeoutError(str(exc)) from None

    def _error_text(self, operation: str, statement: str) -> str:
        # Fetching the result of a failed operation returns the exception chain.
        resp = self._client.get(
            f"/v1/sessions/{self.handle}/operations/{operation}/result/0", params={"rowFormat": "JSON"}
        )
        errors = (
            resp.json().get("errors", [resp.text])
            if resp.headers.get("content-type", "").startswith("application/json")
            else [resp.text]
        )
        text = "\n".join(str(e) for e in errors)
        # The last "Caused by" is usually the real reason; keep the head and the root cause.
        causes = [ln for ln in text.splitlines() if ln.startswith("Caused by:")]
        head = text.splitlines()[0] if text else "unknown error"
        root = causes[-1] if causes else ""
        return f"{statement[:300]!r} failed: {head}\n{root}".strip()

    def fetch(self, operation: str, max_rows: Optional[int] = None, timeout_s: float = 60.0) -> SqlResult:
        """Follow the result pages until EOS (or `max_rows` rows, for unbounded queries)."""
        uri: Optional[str] = f"/v1/sessions/{self.handle}/operations/{operation}/result/0"
        result: Optional[SqlResult] = None
        deadline = time.monotonic() + timeout_s
        while uri:
            resp = self._client.get(uri, params={"rowFormat": "JSON"} if "rowFormat" not in uri else None)
            if resp.status_code >= 400 and "errors" in resp.text:
                raise FlinkSqlError(self._error_text(operation, ""))
            raise_for(resp, f"result of {operation}")
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
            if time.monotonic() > deadline:  # paging, not polling: the deadline spans many pages
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


@contextmanager
def open_session(
    url: str, *, timeout_s: float, poll_interval_s: float, properties: Optional[dict[str, str]] = None, name: str
) -> Iterator[SqlGatewaySession]:
    """Open a session at the gateway `url`, yield it, close it (also on error)."""
    with httpx.Client(base_url=url, timeout=timeout_s) as client:
        resp = client.post("/v1/sessions", json={"sessionName": name, "properties": properties or {}})
        raise_for(resp, "open session")
        handle = resp.json()["sessionHandle"]
        try:
            yield SqlGatewaySession(client, handle, poll_interval_s)
        finally:
            try:
                client.delete(f"/v1/sessions/{handle}")
            except httpx.HTTPError:
                log.warning("could not close SQL Gateway session %s", handle)

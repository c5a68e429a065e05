"""Salesforce writeback through Bulk API 2.0 ingest jobs (simple-salesforce for auth and HTTP).

One `update` job per object type and chunk of at most 200 records: create the job, PUT the CSV,
close it (UploadComplete), poll until JobComplete, then read `failedResults` to keep per-record
failures (unknown Id, field rejected) with Salesforce's reason. Limit errors (REQUEST_LIMIT_EXCEEDED,
HTTP 503, 5xx, connection errors) are retried with exponential backoff; an expired session logs in
again. Credentials come from the environment (`dg.EnvVar`) and are never logged.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from collections.abc import Callable
from typing import Any, Optional

import dagster as dg
import requests
import tenacity
from pydantic import Field, PrivateAttr

from lead_scoring.crm.quarantine import salesforce_error_code, salesforce_unavailable
from lead_scoring.crm.resources import CrmResource
from lead_scoring.crm.writeback import CLEARED_FIELDS, WRITTEN_FIELDS, WriteFailure
from lead_scoring.retry import backoff
from lead_scoring.settings import SalesforceSettings, load
from lead_scoring.warehouse.resources import Warehouse

log = logging.getLogger(__name__)

MAX_BATCH = 200  # Salesforce's own limit for a synchronous batch, kept for the bulk jobs too
BULK_NULL = "#N/A"  # Bulk API 2.0 CSV: sets the field to null (an empty cell leaves it unchanged)


class SalesforceResource(CrmResource):
    """A Salesforce org: username + password + security token, or a connected app with the JWT bearer flow."""

    username: Optional[str] = Field(default=None, description="integration user")
    password: Optional[str] = Field(default=None, description="its password (secret)")
    security_token: Optional[str] = Field(default=None, description="its security token (secret)")
    consumer_key: Optional[str] = Field(default=None, description="connected app consumer key (JWT bearer flow)")
    private_key: Optional[str] = Field(default=None, description="PEM private key of the connected app (secret)")
    domain: str = Field(default="login", description="login | test: the JWT audience and login host")
    instance_url: Optional[str] = Field(
        default=None, description="My Domain host without .salesforce.com, e.g. 'acme.my' (JWT token endpoint)"
    )
    api_version: str = Field(default="62.0")
    batch_size: int = Field(default=MAX_BATCH, le=MAX_BATCH, ge=1, description="records per ingest job")
    max_attempts: int = Field(default=6, description="attempts per job on limit / transient errors")
    backoff_s: float = Field(default=2.0, description="first backoff; doubles up to max_backoff_s")
    max_backoff_s: float = Field(default=120.0)
    poll_interval_s: float = Field(default=1.0, description="job status polling interval")
    job_timeout_s: float = Field(default=600.0)

    _session_factory: Optional[Callable[[], requests.Session]] = PrivateAttr(default=None)
    _sleep: Callable[[float], None] = PrivateAttr(default=time.sleep)

    @classmethod
    def from_env(cls) -> SalesforceResource:
        """Secrets as `dg.EnvVar`s; LEAD_SCORING_SALESFORCE_AUTH picks the flow (password | jwt)."""
        settings = load(SalesforceSettings)
        common = {
            "domain": settings.domain,
            "instance_url": settings.instance_url,
            "username": dg.EnvVar("SALESFORCE_USERNAME"),
        }
        if settings.auth == "jwt":
            return cls(
                consumer_key=dg.EnvVar("SALESFORCE_CONSUMER_KEY"),
                private_key=dg.EnvVar("SALESFORCE_PRIVATE_KEY"),
                **common,
            )
        return cls(
            password=dg.EnvVar("SALESFORCE_PASSWORD"), security_token=dg.EnvVar("SALESFORCE_SECURITY_TOKEN"), **common
        )

    def with_session_factory(
        self, factory: Callable[[], requests.Session], sleep: Callable[[float], None] = time.sleep
    ) -> SalesforceResource:
        """Tests route HTTP to a fake Salesforce and record the backoff sleeps."""
        self._session_factory = factory
        self._sleep = sleep
        return self

    def client(self) -> Any:
        from simple_salesforce import Salesforce

        session = self._session_factory() if self._session_factory else requests.Session()
        common: dict[str, Any] = {"domain": self.domain, "version": self.api_version, "session": session}
        if self.consumer_key and self.private_key:
            if not self.username:
                raise ValueError("Salesforce JWT login needs SALESFORCE_USERNAME (the integration user)")
            if self.instance_url:
                common["instance_url"] = self.instance_url
            return Salesforce(
                username=self.username, consumer_key=self.consumer_key, privatekey=self.private_key, **common
            )
        if not (self.username and self.password):
            raise ValueError(
                "Salesforce credentials missing: set SALESFORCE_USERNAME and SALESFORCE_PASSWORD "
                "(+ SALESFORCE_SECURITY_TOKEN), or LEAD_SCORING_SALESFORCE_AUTH=jwt with "
                "SALESFORCE_CONSUMER_KEY and SALESFORCE_PRIVATE_KEY"
            )
        return Salesforce(
            username=self.username, password=self.password, security_token=self.security_token or "", **common
        )

    def writer(self, warehouse: Warehouse | None = None) -> SalesforceWriter:
        return SalesforceWriter(self)


class TransientSalesforceError(RuntimeError):
    """Salesforce is over a limit or unavailable: retry later, the batch stays uncommitted."""


def _is_transient(exc: Exception) -> bool:
    from simple_salesforce.exceptions import SalesforceError

    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return True
    return isinstance(exc, SalesforceError) and salesforce_unavailable(exc)


# Written fields whose null must reach Salesforce as null: a model without grades clears the grade an
# earlier model wrote (an empty cell would leave it in place).
CLEARED_WHEN_NULL = ("Lead_Grade__c",)


def to_csv(records: list[dict[str, Any]], fields: Optional[tuple[str, ...]] = None) -> str:
    """The Bulk 2.0 ingest CSV: header `Id,Lead_Score__c,Lead_Score_Reasons__c,Lead_Score_Model__c,Lead_Grade__c`, LF.

    A null value is an empty cell (Salesforce leaves the field as it is), except for `CLEARED_WHEN_NULL`
    fields, written as `#N/A` (Salesforce sets the field to null).
    """
    fields = WRITTEN_FIELDS if fields is None else fields
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("Id", *fields))
    for rec in records:
        writer.writerow([rec["Id"], *(_cell(f, rec.get(f)) for f in fields)])
    return out.getvalue()


def _cell(field: str, value: Any) -> Any:
    if value is None:
        return BULK_NULL if field in CLEARED_WHEN_NULL else ""
    return value


class SalesforceWriter:
    """Writes score records to Salesforce Leads / Contacts by Id (update: never creates records)."""

    target = "salesforce"

    def __init__(self, resource: SalesforceResource):
        self.resource = resource
        self._sf: Any = None
        self.jobs: list[dict[str, Any]] = []

    def _client(self) -> Any:
        if self._sf is None:
            self._sf = self.resource.client()
        return self._sf

    def write(self, records: list[dict[str, Any]], fields: Optional[tuple[str, ...]] = None) -> list[WriteFailure]:
        failures: list[WriteFailure] = []
        size = self.resource.batch_size
        for object_type in ("Lead", "Contact"):
            rows = [r for r in records if r["_ObjectType"] == object_type]
            for start in range(0, len(rows), size):
                failures += self._with_retry(object_type, rows[start : start + size], fields)
        return failures

    def clear(self, records: list[dict[str, Any]]) -> list[WriteFailure]:
        """Erasure: set every score field (`CLEARED_FIELDS`) of the records to null, same jobs as `write`."""
        return self.write(
            [
                {"Id": r["Id"], "_ObjectType": r["_ObjectType"], **dict.fromkeys(CLEARED_FIELDS, BULK_NULL)}
                for r in records
            ],
            fields=CLEARED_FIELDS,
        )

    def current(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """Not read: a SOQL read of the fields is an API call of its own for every batch, so every score is
        written (in gcp the SObject sink writes the scores, not this writer: docs/production.md, section 9)."""
        return {}

    def close(self) -> None:
        """Nothing runs besides the writes (Salesforce's own source echoes them)."""

    def _with_retry(
        self, object_type: str, rows: list[dict[str, Any]], fields: Optional[tuple[str, ...]] = None
    ) -> list[WriteFailure]:
        from simple_salesforce.exceptions import SalesforceExpiredSession

        attempts = self.resource.max_attempts
        exponential = backoff(self.resource.backoff_s, self.resource.max_backoff_s)

        def expired(exc: BaseException | None) -> bool:
            return isinstance(exc, SalesforceExpiredSession)

        def wait(state: tenacity.RetryCallState) -> float:
            return 0.0 if expired(state.outcome.exception()) else exponential(state)  # a new login, not a backoff

        def before_retry(state: tenacity.RetryCallState) -> None:
            exc = state.outcome.exception()
            if expired(exc):
                log.info("salesforce: session expired; logging in again")
                self._sf = None
            else:
                log.warning(
                    "salesforce: %s (%s) on attempt %d/%d; retrying in %.1f s",
                    type(exc).__name__,
                    salesforce_error_code(exc) or getattr(exc, "status", ""),
                    state.attempt_number,
                    attempts,
                    state.next_action.sleep,
                )

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(lambda exc: expired(exc) or _is_transient(exc)),
            sleep=lambda seconds: seconds and self.resource._sleep(seconds),
            before_sleep=before_retry,
            reraise=True,
        )
        try:
            return retrying(self._update_job, object_type, rows, fields)
        except SalesforceExpiredSession:
            raise
        except Exception as exc:
            if not _is_transient(exc):
                raise
            raise TransientSalesforceError(
                f"{object_type} update of {len(rows)} records still failing after {attempts} attempts: "
                f"{type(exc).__name__} {salesforce_error_code(exc)}"
            ) from exc

    def _update_job(
        self, object_type: str, rows: list[dict[str, Any]], fields: Optional[tuple[str, ...]] = None
    ) -> list[WriteFailure]:
        from simple_salesforce.exceptions import SalesforceError
        from simple_salesforce.util import call_salesforce

        sf = self._client()
        url = f"{sf.bulk2_url}ingest"
        json_headers = {**sf.headers, "Content-Type": "application/json", "Accept": "application/json"}
        body = {
            "object": object_type,
            "operation": "update",
            "contentType": "CSV",
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
        }
        job = call_salesforce(
            url=url, method="POST", session=sf.session, headers=dict(json_headers), data=json.dumps(body)
        ).json()
        job_id = job["id"]
        try:
            call_salesforce(
                url=f"{url}/{job_id}/batches",
                method="PUT",
                session=sf.session,
                headers={**sf.headers, "Content-Type": "text/csv", "Accept": "application/json"},
                data=to_csv(rows, fields).encode("utf-8"),
            )
            call_salesforce(
                url=f"{url}/{job_id}",
                method="PATCH",
                session=sf.session,
                headers=dict(json_headers),
                data=json.dumps({"state": "UploadComplete"}),
            )
            info = self._wait(sf, f"{url}/{job_id}", json_headers)
        except SalesforceError:
            # Leave no open job behind; the retry creates a fresh one (updates are idempotent).
            try:
                call_salesforce(
                    url=f"{url}/{job_id}",
                    method="PATCH",
                    session=sf.session,
                    headers=dict(json_headers),
                    data=json.dumps({"state": "Aborted"}),
                )
            except SalesforceError:
                log.warning("salesforce: could not abort job %s", job_id)
            raise
        self.jobs.append(
            {
                "id": job_id,
                "object": object_type,
                "records": len(rows),
                **{k: info.get(k) for k in ("state", "numberRecordsProcessed", "numberRecordsFailed")},
            }
        )
        if info["state"] != "JobComplete":
            reason = f"bulk job {info['state']}: {info.get('errorMessage', '')}".strip()
            return [WriteFailure(r, reason) for r in rows]
        if not int(info.get("numberRecordsFailed") or 0):
            return []
        text = call_salesforce(
            url=f"{url}/{job_id}/failedResults/",
            method="GET",
            session=sf.session,
            headers={**sf.headers, "Accept": "text/csv"},
        ).text
        by_id = {r["Id"]: r for r in rows}
        failures = []
        for row in csv.DictReader(io.StringIO(text)):
            rec = by_id.get(row.get("Id") or row.get("sf__Id") or "")
            if rec is not None:
                failures.append(WriteFailure(rec, f"salesforce: {row.get('sf__Error', 'unknown error')}"))
        return failures

    def _wait(self, sf: Any, job_url: str, headers: dict[str, str]) -> dict[str, Any]:
        from simple_salesforce.util import call_salesforce

        deadline = time.monotonic() + self.resource.job_timeout_s
        while True:
            info = call_salesforce(url=job_url, method="GET", session=sf.session, headers=dict(headers)).json()
            if info["state"] in ("JobComplete", "Failed", "Aborted"):
                return info
            if time.monotonic() > deadline:
                raise TransientSalesforceError(
                    f"bulk job {info.get('id')} still {info['state']} after {self.resource.job_timeout_s:.0f} s"
                )
            self.resource._sleep(self.resource.poll_interval_s)

"""The Flink JobManager's REST API: the jobs, their state and failures, stop-with-savepoint, the checkpoint folder.

The SQL Gateway submits a statement and answers its job id; everything after that (is it running, why did it
fail, stop it at a savepoint a successor resumes from) is asked here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import httpx

from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.streaming.engine import RolloutError
from lead_scoring.streaming.sql_gateway import raise_for

LIVE_STATES = ("CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING")


@dataclass(frozen=True)
class JobManager:
    """One Flink cluster's JobManager at `rest_url`."""

    rest_url: str
    timeout_s: float = 30.0
    savepoint_timeout_s: float = 300.0

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        resp = httpx.request(method, f"{self.rest_url}{path}", timeout=self.timeout_s, **kw)
        if resp.status_code >= 400:
            raise RolloutError(f"Flink REST {method} {path} answered {resp.status_code}: {resp.text[:1000]}")
        return resp

    def jobs(self) -> list[dict[str, Any]]:
        """Every job the JobManager knows (`/jobs/overview`), finished ones included."""
        return self.request("GET", "/jobs/overview").json().get("jobs", [])

    def running(self, prefix: str) -> dict[str, str]:
        """Live jobs whose name starts with `prefix`: name -> job id (the newest wins a name)."""
        live = sorted(
            (j for j in self.jobs() if j["state"] in LIVE_STATES and j["name"].startswith(prefix)),
            key=lambda j: j.get("start-time", 0),
        )
        return {j["name"]: j["jid"] for j in live}

    def job_state(self, job_id: str) -> str:
        return self.request("GET", f"/jobs/{job_id}").json()["state"]

    def cancel_job(self, job_id: str) -> None:
        resp = httpx.patch(f"{self.rest_url}/jobs/{job_id}", params={"mode": "cancel"}, timeout=self.timeout_s)
        if resp.status_code not in (200, 202, 404):
            raise_for(resp, f"cancel {job_id}")

    def root_cause(self, ident: str) -> str:
        try:
            exc = self.request("GET", f"/jobs/{ident}/exceptions").json()
        except RolloutError:
            return "no exception history"
        root = (exc.get("rootException") or "").strip().splitlines()
        return root[0][:500] if root else "no exception recorded"

    def wait_running(self, name: str, ident: str, timeout_s: float) -> str:
        """Until the job and all its tasks run; RolloutError with the root cause when it fails or times out."""
        last = {"state": "unknown"}

        def running() -> str | None:
            job = self.request("GET", f"/jobs/{ident}").json()
            state = last["state"] = job["state"]
            tasks = job.get("status-counts") or {}
            if state == "RUNNING" and {k for k, v in tasks.items() if v} <= {"RUNNING", "FINISHED"}:
                return "RUNNING"
            if state in ("FAILED", "CANCELED", "FINISHED"):
                raise RolloutError(f"{name} ({ident}) is {state}: {self.root_cause(ident)}")
            return None

        try:
            return wait_until(
                running,
                timeout_s=timeout_s,
                interval_s=0.5,
                what=f"{name} ({ident}) RUNNING",
                last_state=lambda: f"{last['state']}: {self.root_cause(ident)}",
            )
        except WaitTimeout as exc:
            raise RolloutError(str(exc)) from None

    def stop_with_savepoint(self, name: str, ident: str, drain: bool) -> str:
        """Stop the job at a savepoint and wait until it is gone; the savepoint's location."""
        trigger = self.request("POST", f"/jobs/{ident}/stop", json={"drain": drain}).json()["request-id"]

        def completed() -> dict[str, Any] | None:
            status = self.request("GET", f"/jobs/{ident}/savepoints/{trigger}").json()
            return status if status["status"]["id"] == "COMPLETED" else None

        try:
            status = wait_until(
                completed, timeout_s=self.savepoint_timeout_s, interval_s=0.3, what=f"stop-with-savepoint of {name}"
            )
        except WaitTimeout as exc:
            raise RolloutError(str(exc)) from None
        op = status.get("operation") or {}
        if "failure-cause" in op:
            raise RolloutError(
                f"stop-with-savepoint of {name} failed: {str(op['failure-cause'].get('stack-trace', ''))[:500]}"
            )
        try:
            wait_until(
                lambda: True if self.job_state(ident) not in LIVE_STATES else None,
                timeout_s=60,
                interval_s=0.2,
                what=f"job {ident} finished after its savepoint",
            )
        except WaitTimeout as exc:
            raise RolloutError(str(exc)) from None
        return str(op.get("location", ""))

    def checkpoint_root(self) -> Optional[Path]:
        """The cluster's checkpoint folder when it is on this machine's filesystem (else None)."""
        try:
            config = {c["key"]: c["value"] for c in self.request("GET", "/jobmanager/config").json()}
        except (RolloutError, httpx.HTTPError, ValueError, KeyError):
            return None
        uri = config.get("execution.checkpointing.dir") or config.get("state.checkpoints.dir")
        if not uri:
            return None
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            return None  # on a distributed filesystem: resume from the committed group offsets instead
        return Path(parsed.path)

"""Apache Flink through its SQL Gateway and REST API: the local stack's and the `cluster` profile's engine.

Statements are Flink jobs named after them (`pipeline.name`), each submitted in its own SQL Gateway
session (tables, functions and the model are session-scoped DDL). What was deployed is kept in a small
record per statement prefix (`<state>/streaming/<prefix>.json`: the rendering, and per statement its job
ids and last savepoint), because a JobManager without HA forgets its jobs when it restarts: `heal()`
resubmits every statement of the record that is not running, from its newest retained checkpoint or
savepoint, so at most one checkpoint interval of input is read twice, never "from the beginning".
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Optional
from urllib.parse import urlparse

import httpx
from pydantic import Field

from lead_scoring.contract.fields import FIELDS_BY_NAME, FieldType
from lead_scoring.contract.samples import SMOKE_RECORD
from lead_scoring.contract.validation import parse_timestamp
from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.settings import state_dir
from lead_scoring.streaming.engine import (
    DeploymentState,
    FlinkEngine,
    HealAction,
    RolloutError,
    StatementHealth,
)
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lag import end_offset, group_lag
from lead_scoring.streaming.render import (
    MODEL_INPUT_FIELDS,
    Dialect,
    Pipeline,
    RenderSettings,
    StatementRole,
    render_pipeline,
)

log = logging.getLogger(__name__)

LIVE_STATES = ("CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING")


class FlinkSqlError(RuntimeError):
    """A statement failed in the SQL Gateway; the message carries Flink's own error text."""


@dataclass
class SqlResult:
    """Columns and rows of a finished (or bounded) operation."""

    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)  # INSERT / UPDATE_BEFORE / UPDATE_AFTER / DELETE per row
    job_id: Optional[str] = None


def _raise_for(resp: httpx.Response, what: str) -> None:
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
        _raise_for(resp, statement)
        return resp.json()["operationHandle"]

    def status(self, operation: str) -> str:
        resp = self._client.get(f"/v1/sessions/{self.handle}/operations/{operation}/status")
        _raise_for(resp, f"status of {operation}")
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


# -- what was deployed -----------------------------------------------------------------------------------


@dataclass
class StatementRecord:
    role: str
    jobs: list[str] = field(default_factory=list)  # every job id this statement ran as, oldest first
    savepoint: Optional[str] = None  # where it was last stopped on purpose (hand-over, stack down)
    retired: bool = False  # stopped by a rollout that replaced it: not restored by heal()
    # what was submitted, so heal() and a rollback resubmit exactly that (whatever the code renders today)
    script: list[str] = field(default_factory=list)
    config: dict[str, str] = field(default_factory=dict)

    def submission(self, name: str) -> Optional[Submission]:
        return Submission(name, self.script, self.config) if self.script else None


@dataclass(frozen=True)
class Submission:
    """One statement as the SQL Gateway runs it: its session's script and properties (parallelism included)."""

    name: str
    script: list[str]
    config: dict[str, str]

    @classmethod
    def of(cls, pipeline: Pipeline, role: StatementRole) -> Submission:
        st = pipeline.statements[role]
        return cls(
            st.name,
            pipeline.session_script(role),
            {**pipeline.session_config, "pipeline.name": st.name, "parallelism.default": str(st.parallelism)},
        )


@dataclass
class DeploymentRecord:
    settings: dict[str, Any]
    statements: dict[str, StatementRecord] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Optional[DeploymentRecord]:
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            return None
        return cls(
            settings=data["settings"],
            statements={n: StatementRecord(**s) for n, s in data.get("statements", {}).items()},
        )

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(
            json.dumps(
                {"settings": self.settings, "statements": {n: asdict(s) for n, s in self.statements.items()}}, indent=1
            )
        )
        tmp.replace(path)

    def render_settings(self) -> RenderSettings:
        props = tuple(tuple(kv) for kv in self.settings.get("kafka_properties", ()))
        return RenderSettings(
            **{**self.settings, "dialect": Dialect(self.settings["dialect"]), "kafka_properties": props}
        )


def _settings_dict(settings: RenderSettings) -> dict[str, Any]:
    return {**asdict(settings), "dialect": settings.dialect.value}


class SqlGatewayFlink(FlinkEngine):
    """Apache Flink: statements through the SQL Gateway, jobs through the JobManager's REST API."""

    url: str = Field(description="SQL Gateway base URL, e.g. http://127.0.0.1:8083")
    flink_rest_url: str = Field(description="JobManager REST URL, for job state, savepoints and cancellation")
    kafka: KafkaResource = Field(description="the Kafka the statements read (for lag and output checks)")
    state_path: Optional[str] = Field(
        default=None, description="where deployment records live; default <state>/streaming"
    )
    poll_interval_s: float = Field(default=0.5)
    request_timeout_s: float = Field(default=30.0)
    operation_timeout_s: float = Field(default=300.0, description="DDL/INSERT submission and savepoint timeout")
    parallelism: Optional[int] = Field(
        default=None,
        ge=1,
        description="parallelism of every statement (None: the pipeline's defaults, sized for the single-node stack)",
    )

    # ---- plumbing ---------------------------------------------------------------------------------------

    @property
    def dialect(self) -> Dialect:
        return Dialect.FLINK

    def describe(self) -> str:
        return f"Flink SQL Gateway {self.url} (JobManager {self.flink_rest_url})"

    def model_endpoint(self, url: str, model_name: str, provider: str) -> str:
        """The kserve provider's predict URL(s): one per model-server replica when `url` lists several."""
        bases = [u.strip().rstrip("/") for u in url.split(",") if u.strip()]
        if provider != "kserve":
            if len(bases) != 1:
                raise RolloutError(f"the {provider} provider takes one model endpoint, got {len(bases)}: use kserve")
            return bases[0]
        return ",".join(f"{base}/v1/models/{model_name}:predict" for base in bases)

    def render_overrides(self) -> dict[str, Any]:
        if self.parallelism is None:
            return {}
        return {
            "validate_parallelism": self.parallelism,
            "route_parallelism": self.parallelism,
            "scoring_parallelism": self.parallelism,
        }

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

    def _rest(self, method: str, path: str, **kw: Any) -> httpx.Response:
        resp = httpx.request(method, f"{self.flink_rest_url}{path}", timeout=self.request_timeout_s, **kw)
        if resp.status_code >= 400:
            raise RolloutError(f"Flink REST {method} {path} answered {resp.status_code}: {resp.text[:1000]}")
        return resp

    def job_state(self, job_id: str) -> str:
        return self._rest("GET", f"/jobs/{job_id}").json()["state"]

    def cancel_job(self, job_id: str) -> None:
        resp = httpx.patch(
            f"{self.flink_rest_url}/jobs/{job_id}", params={"mode": "cancel"}, timeout=self.request_timeout_s
        )
        if resp.status_code not in (200, 202, 404):
            _raise_for(resp, f"cancel {job_id}")

    def _root_cause(self, ident: str) -> str:
        try:
            exc = self._rest("GET", f"/jobs/{ident}/exceptions").json()
        except RolloutError:
            return "no exception history"
        root = (exc.get("rootException") or "").strip().splitlines()
        return root[0][:500] if root else "no exception recorded"

    # ---- the deployment record --------------------------------------------------------------------------

    def _records_dir(self) -> Path:
        return Path(self.state_path) if self.state_path else state_dir() / "streaming"

    def _record_path(self, prefix: str) -> Path:
        return self._records_dir() / f"{prefix}.json"

    @contextmanager
    def _record(self, prefix: str, settings: Optional[RenderSettings] = None) -> Iterator[DeploymentRecord]:
        """Read-modify-write of one prefix's record under a file lock (rollout, heal and stack down meet here)."""
        path = self._record_path(prefix)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            record = DeploymentRecord.read(path) or DeploymentRecord(
                settings=_settings_dict(settings) if settings else {}
            )
            if settings is not None:
                record.settings = _settings_dict(settings)
            yield record
            record.write(path)

    def deployed(self, statement_prefix: str) -> Optional[DeploymentState]:
        """`statement_prefix` is the deployment key (`Pipeline.key`: `<prefix>` or `<prefix>-shadow`)."""
        record = DeploymentRecord.read(self._record_path(statement_prefix))
        if record is None or not record.settings:
            return None
        return DeploymentState(
            record.render_settings(), {n: s.role for n, s in record.statements.items() if not s.retired}
        )

    # ---- rollout ----------------------------------------------------------------------------------------

    def running(self, prefix: str) -> dict[str, str]:
        jobs = self._rest("GET", "/jobs/overview").json().get("jobs", [])
        live = sorted(
            (j for j in jobs if j["state"] in LIVE_STATES and j["name"].startswith(prefix)),
            key=lambda j: j.get("start-time", 0),
        )
        return {j["name"]: j["jid"] for j in live}

    def prepare(self, pipeline: Pipeline) -> list[str]:
        return []  # tables and the model are session-scoped: every statement's session declares them

    def _submit(self, submission: Submission, restore_from: Optional[str]) -> str:
        props = dict(submission.config)
        if restore_from:
            # The Kafka sources resume from the offsets in that checkpoint/savepoint (group offsets committed
            # at stop time are asynchronous and may lag a checkpoint behind). A successor with changed SQL keeps
            # the source state when its topology still maps onto it; what does not map is ignored.
            props["execution.state-recovery.path"] = restore_from
            props["execution.state-recovery.ignore-unclaimed-state"] = "true"
        with self.session(properties=props, name=submission.name) as session:
            result = None
            for sql in submission.script:
                result = session.execute(sql, timeout_s=self.operation_timeout_s)
        if result is None or not result.rows:
            raise RolloutError(f"no job id returned for {submission.name}")
        return str(result.rows[0][0])

    @staticmethod
    def _entry(record: DeploymentRecord, pipeline: Pipeline, role: StatementRole) -> StatementRecord:
        submission = Submission.of(pipeline, role)
        entry = record.statements.setdefault(submission.name, StatementRecord(role=role.value))
        entry.script, entry.config = submission.script, submission.config
        return entry

    def remember(self, pipeline: Pipeline, running: dict[str, str]) -> None:
        with self._record(pipeline.key, pipeline.settings) as record:
            for role, st in pipeline.statements.items():
                if st.name in running:
                    entry = self._entry(record, pipeline, role)
                    if running[st.name] not in entry.jobs:
                        entry.jobs.append(running[st.name])
                    entry.retired = False

    def start(self, pipeline: Pipeline, role: StatementRole, resume_from: Optional[str] = None) -> str:
        with self._record(pipeline.key, pipeline.settings) as record:
            savepoint = record.statements[resume_from].savepoint if resume_from in record.statements else None
            job = self._submit(Submission.of(pipeline, role), savepoint)
            entry = self._entry(record, pipeline, role)
            entry.jobs.append(job)
            entry.savepoint, entry.retired = None, False
        return job

    def wait_running(self, name: str, ident: str, timeout_s: float) -> str:
        last = {"state": "unknown"}

        def running() -> str | None:
            job = self._rest("GET", f"/jobs/{ident}").json()
            state = last["state"] = job["state"]
            tasks = job.get("status-counts") or {}
            if state == "RUNNING" and {k for k, v in tasks.items() if v} <= {"RUNNING", "FINISHED"}:
                return "RUNNING"
            if state in ("FAILED", "CANCELED", "FINISHED"):
                raise RolloutError(f"{name} ({ident}) is {state}: {self._root_cause(ident)}")
            return None

        try:
            return wait_until(
                running,
                timeout_s=timeout_s,
                interval_s=0.5,
                what=f"{name} ({ident}) RUNNING",
                last_state=lambda: f"{last['state']}: {self._root_cause(ident)}",
            )
        except WaitTimeout as exc:
            raise RolloutError(str(exc)) from None

    def _stop_with_savepoint(self, name: str, ident: str, drain: bool) -> str:
        trigger = self._rest("POST", f"/jobs/{ident}/stop", json={"drain": drain}).json()["request-id"]

        def completed() -> dict[str, Any] | None:
            status = self._rest("GET", f"/jobs/{ident}/savepoints/{trigger}").json()
            return status if status["status"]["id"] == "COMPLETED" else None

        try:
            status = wait_until(
                completed, timeout_s=self.operation_timeout_s, interval_s=0.3, what=f"stop-with-savepoint of {name}"
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

    def stop(self, pipeline: Pipeline, name: str, ident: str) -> str:
        """Hand-over stop: the statement is retired, its savepoint kept for the successor (or a rollback)."""
        # drain: in-flight ML_PREDICT rows are emitted BEFORE the savepoint, so none is both emitted by the old
        # job and restored into the new one (no event-time logic here, so the final watermark changes nothing)
        location = self._stop_with_savepoint(name, ident, drain=True)
        with self._record(pipeline.key) as record:
            entry = record.statements.setdefault(name, StatementRecord(role=""))
            entry.savepoint, entry.retired = location, True
            if ident not in entry.jobs:
                entry.jobs.append(ident)
        return location

    def resume_stopped(self, pipeline: Pipeline, role: StatementRole, name: str, after: Optional[str]) -> str:
        with self._record(pipeline.key) as record:
            entry = record.statements[name]
            # the failed successor stopped with a savepoint too when it got as far as running
            successor = record.statements.get(after) if after else None
            restore = (successor.savepoint if successor and successor.savepoint else None) or entry.savepoint
            job = self._submit(_submission_of(entry, name, record), restore)
            entry.jobs.append(job)
            entry.savepoint, entry.retired = None, False
            if successor is not None:
                successor.retired = True
        self.wait_running(name, job, self.operation_timeout_s)
        return job

    def probe(self, pipeline: Pipeline) -> dict[str, Any]:
        """Score the smoke record through the new model with a bounded ML_PREDICT."""
        st = next(st for st in pipeline.statements.values() if st.uses_model)
        cols = ", ".join(f"`{c}`" for c in MODEL_INPUT_FIELDS)
        values = ", ".join(_sql_literal(SMOKE_RECORD.get(c), c) for c in MODEL_INPUT_FIELDS)
        with self.session(properties={**pipeline.session_config, "pipeline.name": st.name + "-probe"}) as s:
            s.execute(pipeline.model_sql)
            s.execute(f"CREATE TEMPORARY VIEW `probe_input` AS SELECT * FROM (VALUES ({values})) AS t({cols})")
            started = time.monotonic()
            result = s.execute(
                f"SELECT `score`, `model_version` FROM ML_PREDICT(TABLE `probe_input`, MODEL `{pipeline.model_name}`, "
                f"DESCRIPTOR({cols}))",
                timeout_s=self.operation_timeout_s,
            )
        if len(result.rows) != 1:
            raise RolloutError(f"probe through {pipeline.model_name} returned {len(result.rows)} rows")
        score, version = result.rows[0]
        if not isinstance(score, int) or not 0 <= score <= 100:
            raise RolloutError(f"probe through {pipeline.model_name} returned score {score!r}")
        if version != pipeline.settings.model_version:
            raise RolloutError(
                f"the model server answers with version {version!r}, "
                f"not {pipeline.settings.model_version!r}: deploy the model first"
            )
        return {"score": score, "model_version": version, "seconds": round(time.monotonic() - started, 2)}

    def position(self, pipeline: Pipeline, role: StatementRole) -> dict[str, int]:
        """(source lag of the statement's consumer group, end offset of its sink) right now."""
        st = pipeline.statements[role]
        source, sink = st.reads[0], st.tables[-1]
        group = st.group_id(pipeline.settings, source)
        return {
            "lag": sum(group_lag(self.kafka, group, [pipeline.settings.topic(source)]).values()),
            "sink_end": end_offset(self.kafka, pipeline.settings.topic(sink)),
        }

    def verify_produces(
        self, pipeline: Pipeline, role: StatementRole, ident: str, before: Any, timeout_s: float
    ) -> str:
        """Output grows, or the job has caught up with its input (its checkpoints commit the group offsets)."""
        st = pipeline.statements[role]
        source, sink = pipeline.settings.topic(st.reads[0]), pipeline.settings.topic(st.tables[-1])
        group = st.group_id(pipeline.settings, st.reads[0])
        last = {"lag": -1}

        def verdict() -> str | None:
            if end_offset(self.kafka, sink) > before["sink_end"]:
                return "producing"
            lag = last["lag"] = sum(group_lag(self.kafka, group, [source]).values())
            if lag == 0:
                return "caught up with its input (nothing was waiting); scoring verified by the preflight probe"
            state = self.job_state(ident)
            if state not in LIVE_STATES:
                raise RolloutError(f"{st.name} is {state}: {self._root_cause(ident)}")
            return None

        try:
            return wait_until(verdict, timeout_s=timeout_s, interval_s=0.5, what=f"{st.name} producing")
        except WaitTimeout:
            raise RolloutError(
                f"{st.name} produced nothing in {timeout_s:.0f} s while {last['lag']} records wait in {source}"
            ) from None

    # ---- healing ----------------------------------------------------------------------------------------

    def health(self, statement_prefix: str) -> list[StatementHealth]:
        state = self.deployed(statement_prefix)
        if state is None:
            return []
        jobs = {
            j["name"]: j
            for j in self._rest("GET", "/jobs/overview").json().get("jobs", [])
            if j["name"] in state.statements
        }
        out = []
        for name, role in state.statements.items():
            job = jobs.get(name)
            if job is None:
                out.append(StatementHealth(name, role, "MISSING", detail="no such job on the JobManager"))
            elif job["state"] in LIVE_STATES:
                out.append(
                    StatementHealth(name, role, "RUNNING" if job["state"] == "RUNNING" else job["state"], job["jid"])
                )
            else:
                out.append(StatementHealth(name, role, job["state"], job["jid"], self._root_cause(job["jid"])))
        return out

    def heal(self, statement_prefix: str) -> list[HealAction]:
        """Resubmit every recorded statement that has no live job, from its newest checkpoint or savepoint."""
        actions: list[HealAction] = []
        with self._record(statement_prefix) as record:
            if not record.settings:
                return []
            live = self.running(statement_prefix)
            checkpoint_root = self._checkpoint_root()
            for name, entry in record.statements.items():
                if entry.retired:
                    continue
                if name in live:
                    actions.append(HealAction(name, "left", live[name], detail="running"))
                    continue
                restore = _newest_snapshot(entry, checkpoint_root)
                job = self._submit(_submission_of(entry, name, record), restore)
                entry.jobs.append(job)
                entry.savepoint = None
                actions.append(
                    HealAction(name, "resubmitted", job, restore or "group offsets (no retained checkpoint)")
                )
                log.info("restored %s as job %s from %s", name, job, restore or "its committed group offsets")
        for action in actions:
            if action.action == "resubmitted" and action.ident:
                self.wait_running(action.name, action.ident, self.operation_timeout_s)
        return actions

    def suspend(self, statement_prefix: str) -> list[str]:
        """Stop every running statement of the record with a savepoint it will be restored from (stack down)."""
        suspended = []
        state = self.deployed(statement_prefix)
        if state is None:
            return []
        live = self.running(statement_prefix)
        for name in state.statements:
            if name not in live:
                continue
            # drained like a hand-over: without it the async ML_PREDICT queue is both in the savepoint and
            # (completed after the barrier) flushed by the sink on close, so those leads were scored twice
            location = self._stop_with_savepoint(name, live[name], drain=True)
            with self._record(statement_prefix) as record:
                record.statements[name].savepoint = location
            suspended.append(name)
        return suspended

    def _checkpoint_root(self) -> Optional[Path]:
        """The cluster's checkpoint folder when it is on this machine's filesystem (else None)."""
        try:
            config = {c["key"]: c["value"] for c in self._rest("GET", "/jobmanager/config").json()}
        except (RolloutError, httpx.HTTPError, ValueError, KeyError):
            return None
        uri = config.get("execution.checkpointing.dir") or config.get("state.checkpoints.dir")
        if not uri:
            return None
        parsed = urlparse(uri)
        if parsed.scheme not in ("", "file"):
            return None  # on a distributed filesystem: resume from the committed group offsets instead
        return Path(parsed.path)


def _submission_of(entry: StatementRecord, name: str, record: DeploymentRecord) -> Submission:
    """What `name` ran as; a record written before submissions were kept: today's rendering of its role."""
    submission = entry.submission(name)
    if submission is None:
        pipeline = render_pipeline(record.render_settings())
        current = Submission.of(pipeline, StatementRole(entry.role))
        submission = replace(current, name=name, config={**current.config, "pipeline.name": name})
        entry.script, entry.config = submission.script, submission.config
    return submission


def _newest_snapshot(entry: StatementRecord, checkpoint_root: Optional[Path]) -> Optional[str]:
    """The newest of the statement's savepoint and its jobs' retained checkpoints (by completion time)."""
    candidates: list[tuple[float, str]] = []
    if entry.savepoint:
        path = Path(urlparse(entry.savepoint).path)
        meta = path / "_metadata"
        if meta.is_file():
            candidates.append((meta.stat().st_mtime, entry.savepoint))
    if checkpoint_root is not None:
        for job in entry.jobs:
            for chk in (checkpoint_root / job).glob("chk-*"):
                meta = chk / "_metadata"
                with contextlib.suppress(OSError):
                    if meta.is_file():
                        candidates.append((meta.stat().st_mtime, chk.as_uri()))
    return max(candidates)[1] if candidates else None


def _sql_literal(value: Any, column: str) -> str:
    ftype = FIELDS_BY_NAME[column].type
    sql_type = {
        FieldType.STRING: "STRING",
        FieldType.BOOLEAN: "BOOLEAN",
        FieldType.NUMBER: "DOUBLE",
        FieldType.INT: "INT",
        FieldType.TIMESTAMP: "TIMESTAMP_LTZ(3)",
    }[ftype]
    if value is None:
        return f"CAST(NULL AS {sql_type})"
    if ftype is FieldType.TIMESTAMP:
        ms = int(parse_timestamp(value).timestamp() * 1000)
        return f"TO_TIMESTAMP_LTZ({ms}, 3)"
    if ftype is FieldType.BOOLEAN:
        return "TRUE" if value else "FALSE"
    if ftype in (FieldType.NUMBER, FieldType.INT):
        return f"CAST({float(value)!r} AS {sql_type})"
    return "'" + str(value).replace("'", "''") + "'"

"""Apache Flink through its SQL Gateway and REST API: the local stack's and the `cluster` profile's engine.

Statements are Flink jobs named after them (`pipeline.name`), each submitted in its own SQL Gateway
session (tables, functions and the model are session-scoped DDL). What was deployed is kept in a small
record per statement prefix (`<state>/streaming/<prefix>.json`: the rendering, and per statement its job
ids and last savepoint), because a JobManager without HA forgets its jobs when it restarts: `heal()`
resubmits every statement of the record that is not running, from its newest retained checkpoint or
savepoint, so at most one checkpoint interval of input is read twice, never "from the beginning".

This module holds the `FlinkEngine` verbs; its collaborators each do one job: `sql_gateway` (sessions and
their operations), `jobmanager` (job state, failures, stop-with-savepoint, checkpoints),
`deployment_record` (what was deployed, on disk), `statement_checks` (the probe, is it producing) and
`gateway_recovery` (health, heal and suspend, from the record).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Optional

import httpx
from pydantic import Field

from lead_scoring.settings import state_dir
from lead_scoring.streaming.deployment_record import DeploymentRecords, StatementRecord, Submission, submission_of
from lead_scoring.streaming.engine import (
    DeploymentState,
    FlinkEngine,
    HealAction,
    RolloutError,
    StatementHealth,
)
from lead_scoring.streaming.gateway_recovery import StatementRecovery, deployed_state
from lead_scoring.streaming.jobmanager import JobManager
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.render import (
    Dialect,
    Pipeline,
    StatementRole,
)
from lead_scoring.streaming.sql_gateway import SqlGatewaySession, open_session, raise_for
from lead_scoring.streaming.statement_checks import OutputWatch, score_smoke_record


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

    # ---- rendering, clients ---------------------------------------------------------------------------------------

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
        raise_for(resp, "info")
        return resp.json()

    def session(
        self, properties: Optional[dict[str, str]] = None, name: str = "lead-scoring"
    ) -> contextlib.AbstractContextManager[SqlGatewaySession]:
        """Open a session, yield it, close it (also on error)."""
        return open_session(
            self.url,
            timeout_s=self.request_timeout_s,
            poll_interval_s=self.poll_interval_s,
            properties=properties,
            name=name,
        )

    @property
    def jobmanager(self) -> JobManager:
        return JobManager(self.flink_rest_url, self.request_timeout_s, self.operation_timeout_s)

    def job_state(self, job_id: str) -> str:
        return self.jobmanager.job_state(job_id)

    def cancel_job(self, job_id: str) -> None:
        self.jobmanager.cancel_job(job_id)

    @property
    def _output(self) -> OutputWatch:
        return OutputWatch(self.kafka, self.jobmanager)

    @property
    def records(self) -> DeploymentRecords:
        """The deployment records (the folder read when asked: tests move the state folder)."""
        return DeploymentRecords(Path(self.state_path) if self.state_path else state_dir() / "streaming")

    def deployed(self, statement_prefix: str) -> Optional[DeploymentState]:
        """`statement_prefix` is the deployment key (`Pipeline.key`: `<prefix>` or `<prefix>-shadow`)."""
        return deployed_state(self.records, statement_prefix)

    # ---- rollout ----------------------------------------------------------------------------------------

    def running(self, prefix: str) -> dict[str, str]:
        return self.jobmanager.running(prefix)

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

    def remember(self, pipeline: Pipeline, running: dict[str, str]) -> None:
        with self.records.updating(pipeline.key, pipeline.settings) as record:
            for role, st in pipeline.statements.items():
                if st.name in running:
                    entry = record.entry_for(pipeline, role)
                    if running[st.name] not in entry.jobs:
                        entry.jobs.append(running[st.name])
                    entry.retired = False

    def start(self, pipeline: Pipeline, role: StatementRole, resume_from: Optional[str] = None) -> str:
        with self.records.updating(pipeline.key, pipeline.settings) as record:
            savepoint = record.statements[resume_from].savepoint if resume_from in record.statements else None
            job = self._submit(Submission.of(pipeline, role), savepoint)
            entry = record.entry_for(pipeline, role)
            entry.jobs.append(job)
            entry.savepoint, entry.retired = None, False
        return job

    def wait_running(self, name: str, ident: str, timeout_s: float) -> str:
        return self.jobmanager.wait_running(name, ident, timeout_s)

    def stop(self, pipeline: Pipeline, name: str, ident: str) -> str:
        """Hand-over stop: the statement is retired, its savepoint kept for the successor (or a rollback)."""
        # drain: in-flight ML_PREDICT rows are emitted BEFORE the savepoint, so none is both emitted by the old
        # job and restored into the new one (no event-time logic here, so the final watermark changes nothing)
        location = self.jobmanager.stop_with_savepoint(name, ident, drain=True)
        with self.records.updating(pipeline.key) as record:
            entry = record.statements.setdefault(name, StatementRecord(role=""))
            entry.savepoint, entry.retired = location, True
            if ident not in entry.jobs:
                entry.jobs.append(ident)
        return location

    def resume_stopped(self, pipeline: Pipeline, role: StatementRole, name: str, after: Optional[str]) -> str:
        with self.records.updating(pipeline.key) as record:
            entry = record.statements[name]
            # the failed successor stopped with a savepoint too when it got as far as running
            successor = record.statements.get(after) if after else None
            restore = (successor.savepoint if successor and successor.savepoint else None) or entry.savepoint
            job = self._submit(submission_of(entry, name, record), restore)
            entry.jobs.append(job)
            entry.savepoint, entry.retired = None, False
            if successor is not None:
                successor.retired = True
        self.wait_running(name, job, self.operation_timeout_s)
        return job

    def probe(self, pipeline: Pipeline) -> dict[str, Any]:
        """Score the smoke record through the new model with a bounded ML_PREDICT."""
        st = next(st for st in pipeline.statements.values() if st.uses_model)
        with self.session(properties={**pipeline.session_config, "pipeline.name": st.name + "-probe"}) as session:
            return score_smoke_record(session, pipeline, self.operation_timeout_s)

    def position(self, pipeline: Pipeline, role: StatementRole) -> dict[str, int]:
        return self._output.position(pipeline, role)

    def verify_produces(
        self, pipeline: Pipeline, role: StatementRole, ident: str, before: Any, timeout_s: float
    ) -> str:
        return self._output.verify_produces(pipeline, role, ident, before, timeout_s)

    # ---- healing (streaming.gateway_recovery) -----------------------------------------------------------

    @property
    def _recovery(self) -> StatementRecovery:
        return StatementRecovery(self.records, self.jobmanager, self._submit, self.operation_timeout_s)

    def health(self, statement_prefix: str) -> list[StatementHealth]:
        return self._recovery.health(statement_prefix)

    def heal(self, statement_prefix: str) -> list[HealAction]:
        """Resubmit every recorded statement that has no live job, from its newest checkpoint or savepoint."""
        return self._recovery.heal(statement_prefix)

    def suspend(self, statement_prefix: str) -> list[str]:
        """Stop every running statement of the record with a savepoint it will be restored from (stack down)."""
        return self._recovery.suspend(statement_prefix)

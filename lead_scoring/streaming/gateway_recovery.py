"""The SQL Gateway engine's deployed statements after the fact: their health, bringing back the ones with no
live job (`heal`), and stopping them with a savepoint they come back from (`suspend`, before `stack down`).

Kept apart from `gateway.SqlGatewayFlink` (the rollout verbs) because it works from the deployment record alone:
a JobManager without HA forgets its jobs when it restarts, and the record is what says what should run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Optional

from lead_scoring.streaming.deployment_record import DeploymentRecords, Submission, newest_snapshot, submission_of
from lead_scoring.streaming.engine import DeploymentState, HealAction, StatementHealth
from lead_scoring.streaming.jobmanager import LIVE_STATES, JobManager

log = logging.getLogger(__name__)

Submit = Callable[[Submission, Optional[str]], str]  # (what, restore from) -> the new job's id


def deployed_state(records: DeploymentRecords, statement_prefix: str) -> Optional[DeploymentState]:
    """What the record of `statement_prefix` says is deployed (None: nothing recorded)."""
    record = records.read(statement_prefix)
    if record is None or not record.settings:
        return None
    return DeploymentState(record.render_settings(), {n: s.role for n, s in record.statements.items() if not s.retired})


class StatementRecovery:
    """Health, heal and suspend of the statements recorded in `records`, on the JobManager `jobmanager`;
    `submit` submits a statement in its own session (the engine's)."""

    def __init__(self, records: DeploymentRecords, jobmanager: JobManager, submit: Submit, operation_timeout_s: float):
        self.records = records
        self.jobmanager = jobmanager
        self.submit = submit
        self.operation_timeout_s = operation_timeout_s

    def health(self, statement_prefix: str) -> list[StatementHealth]:
        state = deployed_state(self.records, statement_prefix)
        if state is None:
            return []
        jobs = {j["name"]: j for j in self.jobmanager.jobs() if j["name"] in state.statements}
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
                cause = self.jobmanager.root_cause(job["jid"])
                out.append(StatementHealth(name, role, job["state"], job["jid"], cause))
        return out

    def heal(self, statement_prefix: str) -> list[HealAction]:
        """Resubmit every recorded statement that has no live job, from its newest checkpoint or savepoint."""
        actions: list[HealAction] = []
        with self.records.updating(statement_prefix) as record:
            if not record.settings:
                return []
            live = self.jobmanager.running(statement_prefix)
            checkpoint_root = self.jobmanager.checkpoint_root()
            for name, entry in record.statements.items():
                if entry.retired:
                    continue
                if name in live:
                    actions.append(HealAction(name, "left", live[name], detail="running"))
                    continue
                restore = newest_snapshot(entry, checkpoint_root)
                job = self.submit(submission_of(entry, name, record), restore)
                entry.jobs.append(job)
                entry.savepoint = None
                actions.append(
                    HealAction(name, "resubmitted", job, restore or "group offsets (no retained checkpoint)")
                )
                log.info("restored %s as job %s from %s", name, job, restore or "its committed group offsets")
        for action in actions:
            if action.action == "resubmitted" and action.ident:
                self.jobmanager.wait_running(action.name, action.ident, self.operation_timeout_s)
        return actions

    def suspend(self, statement_prefix: str) -> list[str]:
        """Stop every running statement of the record with a savepoint it will be restored from (stack down)."""
        suspended = []
        state = deployed_state(self.records, statement_prefix)
        if state is None:
            return []
        live = self.jobmanager.running(statement_prefix)
        for name in state.statements:
            if name not in live:
                continue
            # drained like a hand-over: without it the async ML_PREDICT queue is both in the savepoint and
            # (completed after the barrier) flushed by the sink on close, so those leads were scored twice
            location = self.jobmanager.stop_with_savepoint(name, live[name], drain=True)
            with self.records.updating(statement_prefix) as record:
                record.statements[name].savepoint = location
            suspended.append(name)
        return suspended

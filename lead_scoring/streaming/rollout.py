"""Roll the pipeline's statements out: start what is missing, hand over what changed, leave the rest running.

A statement is named after what it runs (`render.statement_name`: role + fingerprint of its SQL), never after
a model version. A new model version behind the same endpoint (local and cluster: the model server swaps it in
`model_deployment`; gcp: the Vertex AI endpoint's canary) therefore changes no statement: the rollout checks
the endpoint answers with the new version and leaves the stream running, with no gap and nothing cold.
Only a statement whose SQL changed (the contract, a provider or connector option, the topology) is handed over:

1. Preflight, before anything running is touched: the model is created and asked to score a known record
   through ML_PREDICT (locally a bounded query through the SQL Gateway), and must answer with the version
   being rolled out. A wrong endpoint, a broken model or bad SQL fails here; nothing running was touched.
2. Hand-over, per changed statement in pipeline order: the old statement stops at a consistent point (local:
   drained stop-with-savepoint; Confluent: `spec.stopped`), then the new one starts from exactly those offsets
   (local: restored from the old job's savepoint, whose Kafka source state holds them; Confluent:
   `sql.tables.initial-offset-from`). Every record is processed once, by exactly one of them.
3. Verify: the new statement must reach RUNNING and, when records are waiting, produce output. If it does
   not, it is stopped, the old statement is restarted from the same offsets (what it ran, as recorded), and
   the rollout fails with the reason. Statements with nothing to hand over start together and are verified
   after, each one the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from lead_scoring.streaming.engine import FlinkEngine, RolloutError, StatementReport
from lead_scoring.streaming.render import Pipeline, StatementRole, role_of

log = logging.getLogger(__name__)


@dataclass
class RolloutReport:
    model_version: str
    statements: list[StatementReport] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def rollout(
    engine: FlinkEngine,
    pipeline: Pipeline,
    *,
    verify_timeout_s: float = 90.0,
    on_event: Callable[[str], None] = log.info,
) -> RolloutReport:
    """Roll `pipeline` out: the champion's (validate, route, score-*) or the challenger's shadow statements
    (`RenderSettings.shadow`: shadow-*; a new challenger takes over from the previous one's offsets)."""
    s = pipeline.settings
    report = RolloutReport(model_version=s.model_version)
    # Statements of the last rollout that died (JobManager restart, a failed statement) come back first, from
    # where they were: a rollout must never restart them from their group offsets or from the beginning.
    for action in engine.heal(pipeline.key):
        if action.action != "left":
            report.notes.append(f"{action.action} {action.name} from {action.resumed_from or 'its offsets'}")
            on_event(f"{action.action} {action.name} ({action.ident}) from {action.resumed_from or 'its offsets'}")
    live = engine.running(s.statement_prefix + "-")
    report.notes += [f"prepared {name}" for name in engine.prepare(pipeline)]
    report.probe = engine.probe(pipeline)  # raises: nothing running was touched
    on_event(f"preflight: {report.probe}")

    # Statements with nothing to hand over (a first deployment, a new role) are all submitted before any is
    # verified, so their start-ups overlap (a 2-core laptop: ~20 s instead of ~40 s for four). A hand-over waits
    # until everything started upstream of it is verified: it stops a running statement.
    starting: list[_Starting] = []
    for role, new in pipeline.statements.items():
        if new.name in live:
            report.statements.append(StatementReport(new.name, role.value, "RUNNING", live[new.name]))
            engine.remember(pipeline, {new.name: live[new.name]})
            continue
        olds = sorted(n for n in live if n != new.name and role_of(n, s.statement_prefix, role))
        if not olds:
            before = engine.position(pipeline, role)
            try:
                submitted = engine.start(pipeline, role)
            except Exception as exc:
                raise RolloutError(f"{new.name} did not take over: {exc}. No older statement was running.") from exc
            starting.append(_Starting(role, new.name, submitted, before))
            continue
        _verify(engine, pipeline, starting, report, verify_timeout_s, on_event)
        starting = []
        stopped: list[str] = []
        for old in olds:
            engine.stop(pipeline, old, live[old])
            stopped.append(old)
            on_event(f"stopped {old}")
        resume_from = stopped[-1]
        before = engine.position(pipeline, role)
        ident: Optional[str] = None
        try:
            ident = engine.start(pipeline, role, resume_from=resume_from)
            phase = engine.wait_running(new.name, ident, verify_timeout_s)
            produced = engine.verify_produces(pipeline, role, ident, before, verify_timeout_s)
        except Exception as exc:
            restored = _restore(engine, pipeline, role, new.name, ident, stopped, on_event)
            raise RolloutError(f"{new.name} did not take over: {exc}. {restored}") from exc
        _started(report, StatementReport(new.name, role.value, phase, ident, "replaced", resume_from), produced)
        on_event(f"{new.name} {phase}; {produced}")
        report.stopped += stopped
    _verify(engine, pipeline, starting, report, verify_timeout_s, on_event)
    order = [st.name for st in pipeline.statements.values()]
    report.statements.sort(key=lambda st: order.index(st.name))
    if all(st.action == "unchanged" for st in report.statements):
        report.notes.append(f"model {s.model_version} is served under the running statements; nothing to hand over")
    return report


@dataclass
class _Starting:
    """A statement submitted with nothing to hand over, not verified yet."""

    role: StatementRole
    name: str
    ident: str
    before: Any  # its output's position when it was submitted


def _verify(
    engine: FlinkEngine,
    pipeline: Pipeline,
    starting: list[_Starting],
    report: RolloutReport,
    timeout_s: float,
    on_event: Callable[[str], None],
) -> None:
    """Each submitted statement must reach RUNNING and, when records wait, produce; one that does not is stopped
    and the rollout fails (there was nothing running before it to bring back)."""
    for st in starting:
        try:
            phase = engine.wait_running(st.name, st.ident, timeout_s)
            produced = engine.verify_produces(pipeline, st.role, st.ident, st.before, timeout_s)
        except Exception as exc:
            restored = _restore(engine, pipeline, st.role, st.name, st.ident, [], on_event)
            raise RolloutError(f"{st.name} did not take over: {exc}. {restored}") from exc
        on_event(f"{st.name} {phase}; {produced}")
        _started(report, StatementReport(st.name, st.role.value, phase, st.ident, "started"), produced)


def _started(report: RolloutReport, statement: StatementReport, produced: str) -> None:
    report.statements.append(statement)
    if produced:
        report.notes.append(f"{statement.name}: {produced}")


def _restore(
    engine: FlinkEngine,
    pipeline: Pipeline,
    role: StatementRole,
    new_name: str,
    ident: Optional[str],
    stopped: list[str],
    on_event: Callable[[str], None],
) -> str:
    if ident is not None:
        try:
            engine.stop(pipeline, new_name, ident)
        except Exception as exc:
            log.warning("could not stop the failed %s: %s", new_name, exc)
    if not stopped:
        return "No older statement was running."
    old = stopped[-1]
    engine.resume_stopped(pipeline, role, old, after=new_name if ident else None)
    on_event(f"resumed {old}")
    return f"{old} is running again from where it stopped."


def retire(engine: FlinkEngine, pipeline: Pipeline, on_event: Callable[[str], None] = log.info) -> list[str]:
    """Stop every running inference statement of `pipeline`'s roles, whatever its version, at a consistent
    point (the challenger's shadow statements when it is promoted or withdrawn). Nothing else is touched;
    the stopped statements are retired, so healing never brings them back."""
    s = pipeline.settings
    live = engine.running(s.statement_prefix + "-")
    stopped = []
    for role in pipeline.statements:
        for name in sorted(n for n in live if role_of(n, s.statement_prefix, role)):
            engine.stop(pipeline, name, live[name])
            stopped.append(name)
            on_event(f"retired {name}")
    return stopped

"""Roll the pipeline's statements out: keep the stateless ones running, hand inference over to a new model.

How a new model version takes over, per inference statement (leads, then contacts):

1. Preflight, before anything running is touched: the new model is created and asked to score a known
   record through ML_PREDICT (locally a bounded query through the SQL Gateway). A wrong endpoint, a
   broken model or bad SQL fails here, and the old statements keep running untouched.
2. Hand-over: the old statement stops at a consistent point (local: stop-with-savepoint; Confluent:
   `spec.stopped`), then the new one starts from exactly those offsets (local: restored from the old job's
   savepoint, whose Kafka source state holds them; Confluent: `sql.tables.initial-offset-from`).
   So every record is scored once, by exactly one version: none is lost and none is scored by two
   versions at once. (Starting the new one first would score the overlap twice.)
3. Verify: the new statement must reach RUNNING and, when records are waiting, produce output. If it
   does not, it is stopped, the old statement is restarted from the same offsets, and the rollout fails
   with the reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Optional

from lead_scoring.streaming.engine import FlinkEngine, RolloutError, StatementReport
from lead_scoring.streaming.render import Pipeline, StatementRole

log = logging.getLogger(__name__)


@dataclass
class RolloutReport:
    model_version: str
    statements: list[StatementReport] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def rollout(engine: FlinkEngine, pipeline: Pipeline, *, verify_timeout_s: float = 90.0,
            on_event: Callable[[str], None] = log.info) -> RolloutReport:
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
    if all(st.name in live for st in pipeline.statements.values()):
        for role, st in pipeline.statements.items():
            report.statements.append(StatementReport(st.name, role.value, "RUNNING", live[st.name]))
        engine.remember(pipeline, live)
        report.notes.append(f"model {s.model_version} already scoring; nothing to roll out")
        return report
    report.notes += [f"prepared {name}" for name in engine.prepare(pipeline)]

    # Stateless statements: same name across versions, started once, left alone afterwards.
    for role in (r for r in pipeline.statements if not r.is_inference):
        st = pipeline.statements[role]
        if st.name in live:
            report.statements.append(StatementReport(st.name, role.value, "RUNNING", live[st.name]))
            engine.remember(pipeline, {st.name: live[st.name]})
            continue
        ident = engine.start(pipeline, role)
        phase = engine.wait_running(st.name, ident, verify_timeout_s)
        on_event(f"started {st.name} ({ident})")
        report.statements.append(StatementReport(st.name, role.value, phase, ident, action="started"))

    report.probe = engine.probe(pipeline)  # raises: nothing running was touched
    on_event(f"preflight: {report.probe}")

    for role in (r for r in pipeline.statements if r.is_inference):
        new = pipeline.statements[role]
        if new.name in live:
            report.statements.append(StatementReport(new.name, role.value, "RUNNING", live[new.name]))
            engine.remember(pipeline, {new.name: live[new.name]})
            continue
        olds = sorted(n for n in live if n.startswith(f"{s.statement_prefix}-{role.value}-") and n != new.name)
        stopped: list[str] = []
        for old in olds:
            engine.stop(pipeline, old, live[old])
            stopped.append(old)
            on_event(f"stopped {old}")
        resume_from = stopped[-1] if stopped else None
        before = engine.position(pipeline, role)
        ident: Optional[str] = None
        try:
            ident = engine.start(pipeline, role, resume_from=resume_from)
            phase = engine.wait_running(new.name, ident, verify_timeout_s)
            produced = engine.verify_produces(pipeline, role, ident, before, verify_timeout_s)
        except Exception as exc:  # noqa: BLE001 - restore the old statement whatever went wrong, then re-raise
            restored = _restore(engine, pipeline, role, new.name, ident, stopped, on_event)
            raise RolloutError(
                f"{new.name} did not take over: {exc}. {restored}"
            ) from exc
        on_event(f"{new.name} {phase}; {produced}")
        report.statements.append(StatementReport(new.name, role.value, phase, ident,
                                                 action="replaced" if stopped else "started",
                                                 replaced=resume_from))
        report.stopped += stopped
        if produced:
            report.notes.append(f"{new.name}: {produced}")
    return report


def _restore(engine: FlinkEngine, pipeline: Pipeline, role: StatementRole, new_name: str, ident: Optional[str],
             stopped: list[str], on_event: Callable[[str], None]) -> str:
    if ident is not None:
        try:
            engine.stop(pipeline, new_name, ident)
        except Exception as exc:  # noqa: BLE001 - it may never have started
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
        for name in sorted(n for n in live if n.startswith(f"{s.statement_prefix}-{role.value}-")):
            engine.stop(pipeline, name, live[name])
            stopped.append(name)
            on_event(f"retired {name}")
    return stopped

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
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Optional, Protocol

import httpx

from lead_scoring.streaming import topics as T
from lead_scoring.streaming.render import (
    INFERENCE_ROLES,
    MODEL_INPUT_FIELDS,
    Pipeline,
    RenderSettings,
    Role,
    render_pipeline,
)

log = logging.getLogger(__name__)

LIVE_STATES = ("CREATED", "INITIALIZING", "RUNNING", "RESTARTING", "RECONCILING")


class RolloutError(RuntimeError):
    """The rollout stopped; the message says why and what is running now."""


@dataclass
class StatementReport:
    name: str
    role: str
    phase: str
    job_id: Optional[str] = None
    action: str = "unchanged"  # started | unchanged | replaced | stopped | restored
    replaced: Optional[str] = None


@dataclass
class RolloutReport:
    model_version: str
    statements: list[StatementReport] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    probe: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


class Engine(Protocol):
    """What the rollout needs from a Flink: the SQL Gateway (local) or Confluent Cloud (gcp)."""

    def running(self, prefix: str) -> dict[str, str]: ...  # statement name -> job id / statement id
    def prepare(self, pipeline: Pipeline) -> list[str]: ...  # persistent objects (Confluent: tables, model)
    def start(self, pipeline: Pipeline, role: Role, resume_from: Optional[str] = None) -> str: ...
    def wait_running(self, name: str, ident: str, timeout_s: float) -> str: ...
    def stop(self, name: str, ident: str) -> str: ...
    def probe(self, pipeline: Pipeline) -> dict[str, Any]: ...
    def verify_produces(self, pipeline: Pipeline, role: Role, ident: str, before: Any, timeout_s: float) -> str: ...
    def position(self, pipeline: Pipeline, role: Role) -> Any: ...


def old_version_pipeline(pipeline: Pipeline, old_name: str, role: Role) -> Pipeline:
    """The rendering an old inference statement came from (names carry the version slug)."""
    prefix = f"{pipeline.settings.statement_prefix}-{role.value}-"
    return render_pipeline(replace(pipeline.settings, model_version=old_name[len(prefix):]))


def rollout(engine: Engine, pipeline: Pipeline, *, verify_timeout_s: float = 90.0,
            on_event: Callable[[str], None] = log.info) -> RolloutReport:
    s = pipeline.settings
    report = RolloutReport(model_version=s.model_version)
    live = engine.running(s.statement_prefix + "-")
    if all(st.name in live for st in pipeline.statements.values()):
        for role, st in pipeline.statements.items():
            report.statements.append(StatementReport(st.name, role.value, "RUNNING", live[st.name]))
        report.notes.append(f"model {s.model_version} already scoring; nothing to roll out")
        return report
    report.notes += [f"prepared {name}" for name in engine.prepare(pipeline)]

    # Stateless statements: same name across versions, started once, left alone afterwards.
    for role in (Role.VALIDATE, Role.SPLIT):
        st = pipeline.statements[role]
        if st.name in live:
            report.statements.append(StatementReport(st.name, role.value, "RUNNING", live[st.name]))
            continue
        ident = engine.start(pipeline, role)
        phase = engine.wait_running(st.name, ident, verify_timeout_s)
        on_event(f"started {st.name} ({ident})")
        report.statements.append(StatementReport(st.name, role.value, phase, ident, action="started"))

    report.probe = engine.probe(pipeline)  # raises: nothing running was touched
    on_event(f"preflight: {report.probe}")

    for role in INFERENCE_ROLES:
        new = pipeline.statements[role]
        if new.name in live:
            report.statements.append(StatementReport(new.name, role.value, "RUNNING", live[new.name]))
            continue
        olds = sorted(n for n in live if n.startswith(f"{s.statement_prefix}-{role.value}-") and n != new.name)
        stopped: list[str] = []
        for old in olds:
            engine.stop(old, live[old])
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


def _restore(engine: Engine, pipeline: Pipeline, role: Role, new_name: str, ident: Optional[str],
             stopped: list[str], on_event: Callable[[str], None]) -> str:
    if ident is not None:
        try:
            engine.stop(new_name, ident)
        except Exception as exc:  # noqa: BLE001 - it may never have started
            log.warning("could not stop the failed %s: %s", new_name, exc)
    if not stopped:
        return "No older statement was running."
    old = stopped[-1]
    old_pipeline = old_version_pipeline(pipeline, old, role)
    ident_old = engine.start(old_pipeline, role, resume_from=new_name if ident else None)
    engine.wait_running(old, ident_old, 120.0)
    on_event(f"restored {old} ({ident_old})")
    return f"{old} is running again from where it stopped."


# -- local: Flink SQL Gateway + JobManager REST ------------------------------------------------------

class LocalFlinkEngine:
    """Statements as Flink jobs named after them (pipeline.name), submitted through the SQL Gateway."""

    def __init__(self, flink: Any, kafka: Any, timeout_s: float = 300.0):
        self.flink = flink  # FlinkSqlGatewayResource
        self.kafka = kafka  # KafkaResource
        self.timeout_s = timeout_s
        self.savepoints: dict[str, str] = {}  # statement name -> savepoint it stopped with

    def _rest(self, method: str, path: str, **kw: Any) -> httpx.Response:
        resp = httpx.request(method, f"{self.flink.flink_rest_url}{path}", timeout=30, **kw)
        if resp.status_code >= 400:
            raise RolloutError(f"Flink REST {method} {path} answered {resp.status_code}: {resp.text[:1000]}")
        return resp

    def running(self, prefix: str) -> dict[str, str]:
        jobs = self._rest("GET", "/jobs/overview").json().get("jobs", [])
        live = sorted((j for j in jobs if j["state"] in LIVE_STATES and j["name"].startswith(prefix)),
                      key=lambda j: j.get("start-time", 0))
        return {j["name"]: j["jid"] for j in live}

    def prepare(self, pipeline: Pipeline) -> list[str]:
        return []  # tables and the model are session-scoped: every statement's session declares them

    def start(self, pipeline: Pipeline, role: Role, resume_from: Optional[str] = None) -> str:
        st = pipeline.statements[role]
        props = {**pipeline.session_config, "pipeline.name": st.name, "parallelism.default": str(st.parallelism)}
        if resume_from and self.savepoints.get(resume_from):
            # Exact hand-over: the Kafka source resumes from the offsets in the old job's savepoint (the
            # group offsets committed at stop time are asynchronous and may lag behind by a checkpoint).
            # Old and new inference jobs share one topology, so the source state maps onto the new job.
            props["execution.state-recovery.path"] = self.savepoints[resume_from]
            props["execution.state-recovery.ignore-unclaimed-state"] = "true"
        with self.flink.session(properties=props, name=st.name) as session:
            result = None
            for sql in pipeline.session_script(role):
                result = session.execute(sql, timeout_s=self.timeout_s)
        assert result is not None and result.rows, f"no job id returned for {st.name}"
        return str(result.rows[0][0])

    def wait_running(self, name: str, ident: str, timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        while True:
            job = self._rest("GET", f"/jobs/{ident}").json()
            state = job["state"]
            tasks = job.get("status-counts") or {}
            if state == "RUNNING" and set(k for k, v in tasks.items() if v) <= {"RUNNING", "FINISHED"}:
                return "RUNNING"
            if state in ("FAILED", "CANCELED", "FINISHED"):
                raise RolloutError(f"{name} ({ident}) is {state}: {self._root_cause(ident)}")
            if time.monotonic() > deadline:
                raise RolloutError(f"{name} ({ident}) still {state} after {timeout_s:.0f} s: {self._root_cause(ident)}")
            time.sleep(0.5)

    def _root_cause(self, ident: str) -> str:
        try:
            exc = self._rest("GET", f"/jobs/{ident}/exceptions").json()
        except RolloutError:
            return "no exception history"
        root = (exc.get("rootException") or "").strip().splitlines()
        return root[0][:500] if root else "no exception recorded"

    def stop(self, name: str, ident: str) -> str:
        """Stop with a savepoint: the sources commit their offsets at it, the sinks flush."""
        # drain: in-flight ML_PREDICT rows are emitted BEFORE the savepoint, so none is both emitted by the old
        # job and restored into the new one (no event-time logic here, so the final watermark changes nothing)
        trigger = self._rest("POST", f"/jobs/{ident}/stop", json={"drain": True}).json()["request-id"]
        deadline = time.monotonic() + self.timeout_s
        while True:
            status = self._rest("GET", f"/jobs/{ident}/savepoints/{trigger}").json()
            if status["status"]["id"] == "COMPLETED":
                op = status.get("operation") or {}
                if "failure-cause" in op:
                    raise RolloutError(f"stop-with-savepoint of {name} failed: "
                                       f"{str(op['failure-cause'].get('stack-trace', ''))[:500]}")
                self._wait_gone(ident)
                self.savepoints[name] = op.get("location", "")
                return self.savepoints[name]
            if time.monotonic() > deadline:
                raise RolloutError(f"stop-with-savepoint of {name} still running after {self.timeout_s:.0f} s")
            time.sleep(0.3)

    def _wait_gone(self, ident: str) -> None:
        deadline = time.monotonic() + 60
        while self._rest("GET", f"/jobs/{ident}").json()["state"] in LIVE_STATES:
            if time.monotonic() > deadline:
                raise RolloutError(f"job {ident} did not finish after its savepoint")
            time.sleep(0.2)

    def probe(self, pipeline: Pipeline) -> dict[str, Any]:
        """Score the smoke record through the new model with a bounded ML_PREDICT."""
        from lead_scoring.serving.resources import SMOKE_RECORD

        st = pipeline.statements[Role.SCORE_LEADS]
        cols = ", ".join(f"`{c}`" for c in MODEL_INPUT_FIELDS)
        values = ", ".join(_sql_literal(SMOKE_RECORD.get(c), c) for c in MODEL_INPUT_FIELDS)
        with self.flink.session(properties={**pipeline.session_config, "pipeline.name": st.name + "-probe"}) as s:
            s.execute(pipeline.model_sql)
            s.execute(f"CREATE TEMPORARY VIEW `probe_input` AS SELECT * FROM (VALUES ({values})) AS t({cols})")
            started = time.monotonic()
            result = s.execute(
                f"SELECT `score`, `model_version` FROM ML_PREDICT(TABLE `probe_input`, MODEL `{pipeline.model_name}`, "
                f"DESCRIPTOR({cols}))", timeout_s=self.timeout_s)
        if len(result.rows) != 1:
            raise RolloutError(f"probe through {pipeline.model_name} returned {len(result.rows)} rows")
        score, version = result.rows[0]
        if not isinstance(score, int) or not 0 <= score <= 100:
            raise RolloutError(f"probe through {pipeline.model_name} returned score {score!r}")
        if version != pipeline.settings.model_version:
            raise RolloutError(f"the model server answers with version {version!r}, "
                               f"not {pipeline.settings.model_version!r}: deploy the model first")
        return {"score": score, "model_version": version, "seconds": round(time.monotonic() - started, 2)}

    def position(self, pipeline: Pipeline, role: Role) -> dict[str, int]:
        """(source lag of the statement's consumer group, end offset of its sink) right now."""
        st = pipeline.statements[role]
        source, sink = st.reads[0], st.tables[-1]
        return {"lag": self._lag(pipeline.settings.topic(source), st.group_id(pipeline.settings, source)),
                "sink_end": self._end(pipeline.settings.topic(sink))}

    def verify_produces(self, pipeline: Pipeline, role: Role, ident: str, before: Any, timeout_s: float) -> str:
        """Output grows, or the job has caught up with its input (its checkpoints commit the group offsets)."""
        st = pipeline.statements[role]
        source, sink = pipeline.settings.topic(st.reads[0]), pipeline.settings.topic(st.tables[-1])
        group = st.group_id(pipeline.settings, st.reads[0])
        deadline = time.monotonic() + timeout_s
        while True:
            if self._end(sink) > before["sink_end"]:
                return "producing"
            lag = self._lag(source, group)
            if lag == 0:
                return "caught up with its input (nothing was waiting); scoring verified by the preflight probe"
            state = self._rest("GET", f"/jobs/{ident}").json()["state"]
            if state not in LIVE_STATES:
                raise RolloutError(f"{st.name} is {state}: {self._root_cause(ident)}")
            if time.monotonic() > deadline:
                raise RolloutError(f"{st.name} produced nothing in {timeout_s:.0f} s while {lag} records wait in {source}")
            time.sleep(0.5)

    def _end(self, topic: str) -> int:
        from confluent_kafka import TopicPartition

        consumer = self.kafka.consumer("lead-scoring.rollout-probe")
        try:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                return 0
            return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions)
        finally:
            consumer.close()

    def _lag(self, topic: str, group: str) -> int:
        from confluent_kafka import TopicPartition

        consumer = self.kafka.consumer(group)
        try:
            meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
            if meta is None or meta.error is not None:
                return 0
            parts = [TopicPartition(topic, p) for p in meta.partitions]
            committed = consumer.committed(parts, timeout=10)
            lag = 0
            for tp in committed:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=10)
                lag += high - (tp.offset if tp.offset >= 0 else low)
            return lag
        finally:
            consumer.close()


def _sql_literal(value: Any, column: str) -> str:
    from lead_scoring.contract.fields import FIELDS_BY_NAME, FieldType

    ftype = FIELDS_BY_NAME[column].type
    sql_type = {FieldType.STRING: "STRING", FieldType.BOOLEAN: "BOOLEAN", FieldType.NUMBER: "DOUBLE",
                FieldType.INT: "INT", FieldType.TIMESTAMP: "TIMESTAMP_LTZ(3)"}[ftype]
    if value is None:
        return f"CAST(NULL AS {sql_type})"
    if ftype is FieldType.TIMESTAMP:
        from lead_scoring.contract.validation import parse_timestamp

        ms = int(parse_timestamp(value).timestamp() * 1000)
        return f"TO_TIMESTAMP_LTZ({ms}, 3)"
    if ftype is FieldType.BOOLEAN:
        return "TRUE" if value else "FALSE"
    if ftype in (FieldType.NUMBER, FieldType.INT):
        return f"CAST({float(value)!r} AS {sql_type})"
    return "'" + str(value).replace("'", "''") + "'"


# -- gcp: Confluent Cloud Statements API --------------------------------------------------------------

class ConfluentEngine:
    """Statements in Confluent Cloud; the DDL and the model are statements of their own, run once."""

    def __init__(self, confluent: Any, service_key: Optional[str] = None, vertex_endpoint: str = ""):
        self.cc = confluent  # ConfluentFlinkResource
        self.service_key = service_key
        self.vertex_endpoint = vertex_endpoint

    def running(self, prefix: str) -> dict[str, str]:
        return {s["name"]: s["name"] for s in self.cc.list_statements(prefix)
                if (s.get("status") or {}).get("phase") in ("PENDING", "RUNNING", "DEGRADED")
                and not (s.get("spec") or {}).get("stopped")}

    def prepare(self, pipeline: Pipeline) -> list[str]:
        return self.ensure_objects(pipeline)

    def ensure_objects(self, pipeline: Pipeline) -> list[str]:
        """Tables and the model: idempotent DDL statements (IF NOT EXISTS), each run to COMPLETED."""
        done = []
        s = pipeline.settings
        if self.service_key:
            self.cc.ensure_vertex_connection(s.vertex_connection, self.vertex_endpoint, self.service_key)
        for table, sql in pipeline.ddl():
            name = f"{s.statement_prefix}-ddl-{table.replace('_', '-')}"
            done.append(self._run_ddl(name, sql))
        name = f"{s.statement_prefix}-model-{pipeline.statements[Role.SCORE_LEADS].name.rsplit('-score-leads-', 1)[-1]}"
        done.append(self._run_ddl(name, pipeline.model_sql.replace("CREATE MODEL", "CREATE MODEL IF NOT EXISTS", 1)))
        return done

    def _run_ddl(self, name: str, sql: str) -> str:
        existing = self.cc.get_statement(name)
        if existing is not None and (existing.get("status") or {}).get("phase") == "COMPLETED":
            return name
        if existing is not None:
            self.cc.delete_statement(name)
        self.cc.create_statement(name, sql)
        self.cc.wait_phase(name, {"COMPLETED"})
        return name

    def start(self, pipeline: Pipeline, role: Role, resume_from: Optional[str] = None) -> str:
        st = pipeline.statements[role]
        props = {"sql.tables.initial-offset-from": resume_from} if resume_from else {}
        if self.cc.get_statement(st.name) is not None:  # a stopped/failed earlier attempt: names are unique
            self.cc.delete_statement(st.name)
        self.cc.create_statement(st.name, st.sql, properties=props,
                                 labels={"model-version": pipeline.settings.model_version[:63]})
        return st.name

    def wait_running(self, name: str, ident: str, timeout_s: float) -> str:
        return self.cc.wait_phase(ident, {"RUNNING"}, timeout_s)["status"]["phase"]

    def stop(self, name: str, ident: str) -> str:
        self.cc.stop_statement(ident)
        self.cc.wait_phase(ident, {"STOPPED"})
        return "STOPPED"

    def probe(self, pipeline: Pipeline) -> dict[str, Any]:
        # CREATE MODEL completed in prepare(); Confluent checks the connection when a statement runs it.
        return {"model": pipeline.model_name, "checked": "model created; scoring checked on RUNNING"}

    def position(self, pipeline: Pipeline, role: Role) -> Any:
        return None

    def verify_produces(self, pipeline: Pipeline, role: Role, ident: str, before: Any, timeout_s: float) -> str:
        st = self.cc.get_statement(ident) or {}
        phase = (st.get("status") or {}).get("phase")
        if phase != "RUNNING":
            raise RolloutError(f"{ident} is {phase}: {(st.get('status') or {}).get('detail', '')}")
        return "RUNNING"


def engine_for(confluent_flink: Any = None, flink_sql: Any = None, kafka: Any = None,
               vertex_endpoint: str = "") -> Engine:
    if confluent_flink is not None:
        return ConfluentEngine(confluent_flink, confluent_flink.vertex_service_key, vertex_endpoint)
    if flink_sql is None or kafka is None:
        raise RolloutError("no Flink configured: the local profile needs `flink_sql` and `kafka`, gcp `confluent_flink`")
    return LocalFlinkEngine(flink_sql, kafka)


__all__ = ["ConfluentEngine", "Engine", "LocalFlinkEngine", "RolloutError", "RolloutReport", "StatementReport",
           "RenderSettings", "T", "engine_for", "rollout"]

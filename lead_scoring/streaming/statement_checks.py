"""Checks of a running statement on a Flink that commits its Kafka offsets (SQL Gateway engine).

The rollout's probe scores the smoke record through the new model with a bounded ML_PREDICT before anything
running is touched; after a hand-over, the new statement must produce (its sink topic grows) or have caught up
with its input (its consumer group, committed on checkpoints, has no lag).
"""

from __future__ import annotations

import time
from typing import Any

from lead_scoring.contract.fields import FIELDS_BY_NAME, FieldType
from lead_scoring.contract.samples import SMOKE_RECORD
from lead_scoring.contract.validation import parse_timestamp
from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.streaming.engine import RolloutError
from lead_scoring.streaming.jobmanager import LIVE_STATES, JobManager
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lag import end_offset, group_lag
from lead_scoring.streaming.render import MODEL_INPUT_FIELDS, Pipeline, StatementRole
from lead_scoring.streaming.sql_gateway import SqlGatewaySession


def score_smoke_record(session: SqlGatewaySession, pipeline: Pipeline, timeout_s: float) -> dict[str, Any]:
    """The smoke record through `pipeline`'s model in `session`; RolloutError unless a valid score of the
    pipeline's model version comes back."""
    cols = ", ".join(f"`{c}`" for c in MODEL_INPUT_FIELDS)
    values = ", ".join(_sql_literal(SMOKE_RECORD.get(c), c) for c in MODEL_INPUT_FIELDS)
    session.execute(pipeline.model_sql)
    session.execute(f"CREATE TEMPORARY VIEW `probe_input` AS SELECT * FROM (VALUES ({values})) AS t({cols})")
    started = time.monotonic()
    result = session.execute(
        f"SELECT `score`, `model_version` FROM ML_PREDICT(TABLE `probe_input`, MODEL `{pipeline.model_name}`, "
        f"DESCRIPTOR({cols}))",
        timeout_s=timeout_s,
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


class OutputWatch:
    """Where a statement is in Kafka (its source group's lag, its sink's end offset), and whether it produces."""

    def __init__(self, kafka: KafkaResource, jobmanager: JobManager):
        self.kafka = kafka
        self.jobmanager = jobmanager

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
            state = self.jobmanager.job_state(ident)
            if state not in LIVE_STATES:
                raise RolloutError(f"{st.name} is {state}: {self.jobmanager.root_cause(ident)}")
            return None

        try:
            return wait_until(verdict, timeout_s=timeout_s, interval_s=0.5, what=f"{st.name} producing")
        except WaitTimeout:
            raise RolloutError(
                f"{st.name} produced nothing in {timeout_s:.0f} s while {last['lag']} records wait in {source}"
            ) from None


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

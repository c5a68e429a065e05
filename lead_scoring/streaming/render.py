"""Render the pipeline's Flink SQL (`sql/*.sql`) for a dialect: OSS Flink 2.3 (local) or Confluent Cloud (gcp).

Long on purpose (one renderer): every place the two dialects differ, and every column derived from the
contract, is decided here side by side, so a change to one dialect is made while reading the other.

One source for both: the templates hold the statements; this module fills in what differs (formats,
connector options, ML_PREDICT syntax, model provider, topic ownership) and what is derived from the
contract (table columns, model inputs, and the dead-letter checks, which mirror
`lead_scoring.contract.validation.validate_record` field by field, with the same reason wording as far
as SQL allows).

Nothing here talks to a server: `render_pipeline(settings)` is a pure function, snapshot-tested for both
dialects in `lead_scoring_tests/streaming/`.
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import Optional

import jinja2

from lead_scoring.contract.fields import (
    FEATURES,
    FIELDS_BY_NAME,
    LEAD_FIELDS,
    REQUIRED_FIELDS,
    RESCORE_EVENT,
    SCORE_FIELDS,
    FieldType,
    LeadField,
)
from lead_scoring.contract.validation import MAX_STRING_LENGTH, TIMESTAMP_PATTERN
from lead_scoring.streaming import topics as T
from lead_scoring.streaming.identifiers import validate_render_settings

SQL_DIR = Path(__file__).parent / "sql"
UNNAMED = ""  # a statement before its name, the fingerprint of its finished rendering, is known
STATEMENT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")  # Confluent's rule; we use it locally too


class Dialect(str, enum.Enum):
    FLINK = "flink"  # Apache Flink 2.3 + SQL Gateway (local profile)
    CONFLUENT = "confluent"  # Confluent Cloud for Apache Flink (gcp profile)


class StatementRole(str, enum.Enum):
    """The pipeline's long-running statements (the champion's four, and the challenger's two shadow ones)."""

    VALIDATE = "validate"  # input_raw -> input_avro + dlq
    SPLIT = "route"  # input_avro -> leads / contacts
    SCORE_LEADS = "score-leads"  # ML_PREDICT leads -> lead_scores
    SCORE_CONTACTS = "score-contacts"  # ML_PREDICT contacts -> contact_scores
    SHADOW_LEADS = "shadow-leads"  # ML_PREDICT(challenger) leads -> lead_scores_shadow
    SHADOW_CONTACTS = "shadow-contacts"  # ML_PREDICT(challenger) contacts -> lead_scores_shadow

    @property
    def is_inference(self) -> bool:
        return self in (StatementRole.SCORE_LEADS, StatementRole.SCORE_CONTACTS, *SHADOW_ROLES)

    @property
    def is_shadow(self) -> bool:
        return self in SHADOW_ROLES


SHADOW_ROLES = (StatementRole.SHADOW_LEADS, StatementRole.SHADOW_CONTACTS)
CHAMPION_ROLES = tuple(r for r in StatementRole if r not in SHADOW_ROLES)
SHADOW_KEY_SUFFIX = "-shadow"


def deployment_key(statement_prefix: str, shadow: bool = False) -> str:
    """What the engine keeps a deployed pipeline under: the champion's `<prefix>`, the shadow's `<prefix>-shadow`."""
    return statement_prefix + (SHADOW_KEY_SUFFIX if shadow else "")


def is_shadow_key(key: str) -> bool:
    return key.endswith(SHADOW_KEY_SUFFIX)


# Columns of the model: what ML_PREDICT sends (no PII, no label, no leakage) and what it reads back.
MODEL_INPUT_FIELDS: tuple[str, ...] = REQUIRED_FIELDS + tuple(f for f in FEATURES if f not in REQUIRED_FIELDS)
MODEL_OUTPUTS: tuple[tuple[str, str], ...] = (
    ("score", "INT"),
    ("reasons_text", "STRING"),
    ("model_version", "STRING"),
    ("grade", "STRING"),
    ("features_hash", "STRING"),
)

_FLINK_TYPES = {
    FieldType.STRING: "STRING",
    FieldType.BOOLEAN: "BOOLEAN",
    FieldType.NUMBER: "DOUBLE",
    FieldType.INT: "INT",
    FieldType.TIMESTAMP: "TIMESTAMP_LTZ(3)",
}


# Confluent Cloud's ML_PREDICT serializer refuses TIMESTAMP/TIMESTAMP_LTZ model inputs ("Unsupported type
# for model input"): there a timestamp input is declared STRING and fed UTC ISO-8601 text (the contract's
# own format, which the model server parses like any JSON record's).
ISO_SUFFIX = "_iso"
ISO_UTC_FORMAT = "yyyy-MM-dd''T''HH:mm:ss.SSS''Z''"


def model_input_type(s: RenderSettings, kind: FieldType) -> str:
    """The SQL type of a model input: the contract's, except timestamps as STRING in Confluent."""
    if s.confluent and kind is FieldType.TIMESTAMP:
        return "STRING"
    return _FLINK_TYPES[kind]


def iso_utc_expr(ts: str) -> str:
    """TIMESTAMP_LTZ(3) -> '2026-01-31T12:00:00.000Z' (the statements run with sql.local-time-zone = UTC)."""
    return f"DATE_FORMAT({ts}, '{ISO_UTC_FORMAT}')"


@dataclass(frozen=True)
class RenderSettings:
    """Everything a rendering depends on; a profile's resources build it (see rollout.py)."""

    dialect: Dialect
    model_version: str
    model_endpoint: str  # flink/kserve: V1 predict URL; flink/triton: server base URL; confluent: Vertex predict URL
    model_provider: str = ""  # flink: kserve (default) | triton; confluent: vertexai
    kafka_bootstrap: str = "127.0.0.1:9092"  # flink only
    kafka_properties: tuple[tuple[str, str], ...] = ()  # flink only: non-secret client settings (TLS/SASL)
    topic_prefix: str = ""  # tests run side by side on one broker with their own topics
    group_prefix: str = "lead-scoring"
    statement_prefix: str = "lead-scoring"
    server_model_name: str = "lead_scorer"  # the name on the model server (triton's model-name)
    vertex_connection: str = "vertex-lead-scorer"
    model_timeout: str = "10s"
    model_retry_timeout: str = "5 min"
    # 256 rows per request, up to 2,048 rows in flight per ML_PREDICT subtask: at 64 / 256 the in-flight
    # limit capped a subtask at capacity / round trip (~2,500 rows/s when the 2 cores were busy) and the
    # model server paid its per-request cost 4x as often (docs/performance.md).
    model_batch_size: int = 256
    # 10 ms, not 2 ms: at 200 leads/s rows arrive 5 ms apart, so a 2 ms linger sent one row per HTTP call
    # and the Python model server's per-request cost made the p99 tail (docs/streaming.md, "the 200/s tail").
    model_batch_linger: str = "10 ms"
    # 2 ms: at 0 every record was its own produce request, which cost the broker and the TaskManager more CPU
    # than the records themselves and made the 200/s p99 tail; 5 ms cost ~6 ms of p50 on every hop for no
    # CPU saved over 2 ms (docs/performance.md, "Kafka sinks")
    producer_linger_ms: int = 2
    # 60 s, not 10 s: at-least-once Kafka sinks flush at every checkpoint, which showed up as p99 spikes
    # (docs/streaming.md); rollouts hand over via savepoints, so the interval only bounds crash replay.
    checkpoint_interval: str = "60 s"
    async_capacity: int = 2048
    # chained operators hand rows over without a defensive copy (Flink's pipeline.object-reuse): the copies
    # were ~5 % of the TaskManager's samples; the async ML_PREDICT operator copies what it buffers itself
    object_reuse: bool = True
    # How long the scoring stage remembers a scored (Id, features key) (sql/unchanged.sql): it must
    # outlive the CRM echo of a written score (local CRM: seconds; Salesforce: the source's poll interval, 10 s
    # by default, plus a Bulk API query job) and a crash replay (one checkpoint interval plus the restart).
    # Local: 5 min, not 15: the state is every change of that span (rate x TTL keys), held on the heap and
    # written whole at every checkpoint; with 15 min a capped node's checkpoints of it grew to 1-2 s of CPU and
    # each one delayed hundreds of records past 250 ms (docs/performance.md, "The de-duplication state and the
    # checkpoints"). Confluent: 1 h (managed state, a CRM's change rate): an echo behind a slow Bulk API job
    # is still recognised. Empty: the dialect's default.
    dedup_ttl: str = ""
    buffer_timeout: str = "5 ms"
    validate_parallelism: int = 2
    route_parallelism: int = 1
    scoring_parallelism: int = 1  # each inference statement's (its own batcher and in-flight requests per subtask)
    # flink: "udf" = our CONTRACT_CHECK table function (one JSON parse per record, spec rendered from the
    # contract); "sql" = per-field JSON_VALUE/JSON_QUERY checks (what Confluent Cloud runs).
    validation: str = "udf"
    # True: the challenger's shadow statements (SHADOW_ROLES) instead of the champion's pipeline; the model is
    # the challenger (model_version, model_endpoint, server_model_name and vertex_connection are its own)
    shadow: bool = False

    def __post_init__(self) -> None:
        if not self.dedup_ttl:
            object.__setattr__(self, "dedup_ttl", "1 h" if self.dialect is Dialect.CONFLUENT else "5 min")
        if not self.model_provider:
            object.__setattr__(self, "model_provider", "kserve" if self.dialect is Dialect.FLINK else "vertexai")
        if self.dialect is Dialect.CONFLUENT:
            object.__setattr__(self, "validation", "sql")
        if self.validation not in ("udf", "sql"):
            raise ValueError(f"validation {self.validation!r}: choose udf or sql")
        allowed = {"kserve", "triton"} if self.dialect is Dialect.FLINK else {"vertexai"}
        if self.model_provider not in allowed:
            raise ValueError(
                f"model provider {self.model_provider!r} is not available in {self.dialect.value} "
                f"(choose from {sorted(allowed)})"
            )
        validate_render_settings(self)  # nothing from config reaches the SQL unless it cannot break out of it

    @property
    def confluent(self) -> bool:
        return self.dialect is Dialect.CONFLUENT

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"


def fingerprint(*parts: object) -> str:
    """8 hex digits naming what a statement or model runs: equal text, equal name."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:8]


def statement_name(settings: RenderSettings, role: StatementRole, sql_fingerprint: str) -> str:
    """`<prefix>-<role>-<fingerprint of what it runs>`.

    The name changes when the statement's SQL does (the contract, a connector or provider option, the
    topology), and only then: a new model version behind the same endpoint changes nothing in Flink. The
    model server (local, cluster) or the Vertex AI endpoint (gcp) switches versions under the running
    statement, so a retraining never stops the stream, never hands over and never runs cold code.
    """
    name = f"{settings.statement_prefix}-{role.value}-{sql_fingerprint}"[:100].rstrip("-")
    if not STATEMENT_NAME.match(name):
        raise ValueError(f"statement name {name!r} does not match {STATEMENT_NAME.pattern}")
    return name


def role_of(name: str, statement_prefix: str, role: StatementRole) -> bool:
    """Whether a statement `name` is (some rendering of) `role`: `<prefix>-<role>` or `<prefix>-<role>-<...>`."""
    base = f"{statement_prefix}-{role.value}"
    return name == base or name.startswith(base + "-")


def statement_group_id(group_prefix: str, role: StatementRole) -> str:
    """The Kafka consumer group of a statement's sources: one per role, not per model version, so a
    replacement resumes where the old one stopped (and the lag checks know whom to watch)."""
    return f"{group_prefix}-flink-{role.value}"


# The pipeline's topology, declared once: what each long-running statement reads and writes (the
# rendering, the lag checks and the asset lineage all come from these two maps).
STATEMENT_SOURCES: dict[StatementRole, tuple[str, ...]] = {
    StatementRole.VALIDATE: (T.INPUT_RAW,),
    StatementRole.SPLIT: (T.INPUT_AVRO,),
    StatementRole.SCORE_LEADS: (T.LEADS,),
    StatementRole.SCORE_CONTACTS: (T.CONTACTS,),
}
STATEMENT_SINKS: dict[StatementRole, tuple[str, ...]] = {
    StatementRole.VALIDATE: (T.INPUT_AVRO, T.DLQ),
    StatementRole.SPLIT: (T.LEADS, T.CONTACTS),
    # the dlq: model answers without a usable score (score.sql), never a NOT NULL violation in the sink
    StatementRole.SCORE_LEADS: (T.LEAD_SCORES, T.DLQ),
    StatementRole.SCORE_CONTACTS: (T.CONTACT_SCORES, T.DLQ),
}


def statement_sources() -> dict[StatementRole, tuple[str, ...]]:
    """The topics each long-running statement reads."""
    return dict(STATEMENT_SOURCES)


# The challenger's shadow statements: the same live stream (leads / contacts, own consumer groups), one output.
SHADOW_STATEMENT_SOURCES: dict[StatementRole, tuple[str, ...]] = {
    StatementRole.SHADOW_LEADS: (T.LEADS,),
    StatementRole.SHADOW_CONTACTS: (T.CONTACTS,),
}
SHADOW_STATEMENT_SINKS: dict[StatementRole, tuple[str, ...]] = {
    StatementRole.SHADOW_LEADS: (T.LEAD_SCORES_SHADOW, T.DLQ),
    StatementRole.SHADOW_CONTACTS: (T.LEAD_SCORES_SHADOW, T.DLQ),
}


def model_name(settings: RenderSettings, ddl_fingerprint: str) -> str:
    """`lead_scorer_<fingerprint>`; the challenger's `lead_scorer_shadow_<fingerprint>`. Named by its DDL (inputs,
    outputs, endpoint, options), not by a model version: in Confluent Cloud models are persistent, and the one
    behind an endpoint changes without a new model object."""
    return ("lead_scorer_shadow_" if settings.shadow else "lead_scorer_") + ddl_fingerprint


# -- contract -> SQL ---------------------------------------------------------------------------------


def _q(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _path(name: str) -> str:
    return _q(f"$.{name}")


def _wrapped(name: str) -> str:
    # '["text"]', '[1.5]', '[true]', '[{...}]', '[[...]]'; NULL when missing or JSON null.
    return f"JSON_QUERY(`payload`, {_path(name)} WITH WRAPPER)"


def _value(name: str, returning: str = "") -> str:
    suffix = f" RETURNING {returning}" if returning else ""
    return f"JSON_VALUE(`payload`, {_path(name)}{suffix})"


def _json_type_of(wrapped: str) -> str:
    """The JSON type name of a wrapped value, spelled like validation._json_type (one call, no CASE:
    the planner's time grows with every CASE branch)."""
    return (
        f"COALESCE(SPLIT_INDEX('string,boolean,boolean,object,array', ',', "
        f"POSITION(SUBSTR({wrapped}, 2, 1) IN '\"tf{{[') - 1), 'number')"
    )


_TS_PARTS = r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2})(:\d{2})?(\.\d{1,9})?"
_TS_ZONE = r"([+-])(\d{2}):?(\d{2})$"


def timestamp_expr(text: str) -> str:
    """An ISO-8601 string (validation.TIMESTAMP_PATTERN) -> TIMESTAMP_LTZ(3); NULL if it is no real instant.

    Flink's TO_TIMESTAMP_LTZ ignores zone offsets in its pattern, so the offset is applied by hand:
    the local part is read as UTC and shifted by the offset minutes.
    """

    def part(i: int) -> str:
        return f"REGEXP_EXTRACT({text}, {_q(_TS_PARTS)}, {i})"

    def zone(i: int) -> str:
        return f"REGEXP_EXTRACT({text}, {_q(_TS_ZONE)}, {i})"

    local = (
        f"CONCAT({part(1)}, ' ', {part(2)}, COALESCE({part(3)}, ':00'), "
        f"SUBSTR(RPAD(COALESCE({part(4)}, '.'), 4, '0'), 1, 4))"
    )
    offset = (
        f"COALESCE(CASE WHEN {zone(1)} = '-' THEN -1 ELSE 1 END * "
        f"(CAST({zone(2)} AS INT) * 60 + CAST({zone(3)} AS INT)), 0)"
    )
    return f"TIMESTAMPADD(MINUTE, -{offset}, TO_TIMESTAMP_LTZ({local}, 'yyyy-MM-dd HH:mm:ss.SSS', 'UTC'))"


def epoch_ms_expr(ts: str) -> str:
    """TIMESTAMP_LTZ(3) -> epoch milliseconds (BIGINT) without the 2038 limit of TIMESTAMPDIFF(SECOND)."""
    return (
        f"(CAST(TIMESTAMPDIFF(MINUTE, TO_TIMESTAMP_LTZ(0, 3), {ts}) AS BIGINT) * 60000"
        f" + EXTRACT(SECOND FROM {ts}) * 1000 + EXTRACT(MILLISECOND FROM {ts}))"
    )


def field_check(spec: LeadField) -> str:
    """SQL yielding '<field>: <reason>' when the field breaks the contract, else NULL (first reason only)."""
    w, v = _wrapped(spec.name), _value(spec.name)
    got = _json_type_of(w)
    whens: list[tuple[str, str]] = []
    if spec.required:
        whens.append((f"{w} IS NULL", _q("required field is missing")))
    if not spec.nullable and not spec.required:
        raise ValueError(f"{spec.name}: SQL cannot tell null from missing; make it required or nullable")
    kind = spec.type
    if kind is FieldType.STRING:
        whens.append((f"{w} NOT LIKE '[\"%'", f"CONCAT('expected a string, got ', {got})"))
        whens.append((f"CHAR_LENGTH({v}) > {MAX_STRING_LENGTH}", _q(f"longer than {MAX_STRING_LENGTH} characters")))
        if spec.allowed is not None:
            allowed = ", ".join(_q(a) for a in spec.allowed)
            whens.append(
                (
                    f"{v} NOT IN ({allowed})",
                    f"CONCAT({_q('must be one of ' + ', '.join(spec.allowed) + '; got ' + chr(39))}, "
                    f"SUBSTR({v}, 1, 40), '''')",
                )
            )
        if spec.required:
            whens.append((f"TRIM({v}) = ''", _q("must not be empty")))
    elif kind is FieldType.BOOLEAN:
        whens.append((f"{w} NOT IN ('[true]', '[false]')", f"CONCAT('expected a boolean, got ', {got})"))
    elif kind in (FieldType.NUMBER, FieldType.INT):
        whens.append((f"NOT REGEXP({w}, '^\\[-?[0-9]')", f"CONCAT('expected a number, got ', {got})"))
        if spec.non_negative:
            whens.append((f"{_value(spec.name, 'DOUBLE')} < 0", f"CONCAT('must be >= 0, got ', {v})"))
    elif kind is FieldType.TIMESTAMP:
        whens.append((f"{w} NOT LIKE '[\"%'", f"CONCAT('expected an ISO-8601 timestamp string, got ', {got})"))
        whens.append(
            (
                f"NOT REGEXP({v}, {_q(TIMESTAMP_PATTERN)})",
                f"CONCAT('not an ISO-8601 timestamp: ''', SUBSTR({v}, 1, 40), '''')",
            )
        )
        whens.append((f"{timestamp_expr(v)} IS NULL", _q("not a valid timestamp")))
    else:  # pragma: no cover - contract programming error
        raise AssertionError(f"unhandled field type {kind}")
    prefix = _q(spec.name + ": ")
    body = " ".join(f"WHEN {cond} THEN CONCAT({prefix}, {reason})" for cond, reason in whens)
    if not spec.required:
        body = f"WHEN {w} IS NULL THEN CAST(NULL AS STRING) " + body
    return f"CASE {body} END"


def reason_expr(payload: str = "`payload`") -> str:
    """The dead-letter reason of a raw payload ('; '-joined '<field>: <reason>'), '' for a valid record.

    '' rather than NULL on purpose: NULLIF(x, '') would make the planner copy the whole expression.
    """
    checks = ",\n      ".join(field_check(f) for f in LEAD_FIELDS)
    expr = (
        "CASE\n"
        "    WHEN `payload` IS NULL THEN '$: empty message'\n"
        "    WHEN `payload` IS NOT JSON THEN '$: not valid JSON'\n"
        "    WHEN `payload` IS NOT JSON OBJECT THEN '$: expected a JSON object'\n"
        f"    ELSE CONCAT_WS('; ',\n      {checks})\n"
        "  END"
    )
    return expr.replace("`payload`", payload)


def converted_columns() -> list[str]:
    """The typed contract columns of input_avro, read from the validated JSON payload."""
    out = []
    for f in LEAD_FIELDS:
        if f.type is FieldType.STRING:
            expr = _value(f.name)
            if f.name == "_EventType":
                expr = f"COALESCE({expr}, 'created')"
        elif f.type is FieldType.BOOLEAN:
            expr = _value(f.name, "BOOLEAN")
        elif f.type is FieldType.NUMBER:
            expr = _value(f.name, "DOUBLE")
        elif f.type is FieldType.INT:
            expr = _value(f.name, "INT")
        else:
            expr = timestamp_expr(_value(f.name))
        out.append(f"{expr} AS `{f.name}`")
    return out


CONTRACT_CHECK_CLASS = "io.leadscoring.flink.contract.ContractCheck"
CONTRACT_CHECK_DDL = f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS CONTRACT_CHECK AS '{CONTRACT_CHECK_CLASS}'"


def contract_spec() -> str:
    """The contract as CONTRACT_CHECK reads it (compact JSON, rendered into the SQL as a literal)."""
    return json.dumps(
        {
            "max_string_length": MAX_STRING_LENGTH,
            "timestamp_pattern": TIMESTAMP_PATTERN,
            "fields": [
                {
                    "name": f.name,
                    "type": f.type.value,
                    "required": f.required,
                    "nullable": f.nullable,
                    "non_negative": f.non_negative,
                    "allowed": list(f.allowed) if f.allowed else None,
                }
                for f in LEAD_FIELDS
            ],
        },
        separators=(",", ":"),
    )


def udf_converted_columns() -> list[str]:
    """input_avro's typed columns from CONTRACT_CHECK's normalized values (`v`.`c`.`vals`, in contract order)."""
    out = []
    for i, f in enumerate(LEAD_FIELDS, start=1):  # SQL arrays are 1-based; the spec lists LEAD_FIELDS in order
        ref = f"`v`.`c`.`vals`[{i}]"
        if f.type is FieldType.STRING:
            expr = f"COALESCE({ref}, 'created')" if f.name == "_EventType" else ref
        elif f.type is FieldType.TIMESTAMP:
            expr = f"TO_TIMESTAMP_LTZ(CAST({ref} AS BIGINT), 3)"
        else:
            expr = f"CAST({ref} AS {_FLINK_TYPES[f.type]})"
        out.append(f"{expr} AS `{f.name}`")
    return out


# -- tables ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Col:
    name: str
    type: str


@dataclass(frozen=True)
class FlinkTable:
    name: str
    topic: T.TopicSpec
    topic_name: str
    columns: tuple[Col, ...]
    flink_format: str
    confluent_format: str
    key: Optional[str] = "Id"
    timestamp_column: Optional[str] = "source_time"
    group_id: Optional[str] = None
    offset_reset: str = "earliest"  # flink: where a source without committed group offsets starts
    error_log_target: Optional[str] = None
    confluent_owned: bool = True  # False: the topics asset creates it in Confluent Cloud (EXTERNALLY_WRITTEN_TOPICS)
    proctime: bool = False  # flink: a processing-time column for the scoring stage's de-duplication
    startup_mode: Optional[str] = None  # flink: where a source without a consumer group starts (the register)


def _contract_columns() -> tuple[Col, ...]:
    return tuple(Col(f.name, _FLINK_TYPES[f.type] + ("" if f.nullable else " NOT NULL")) for f in LEAD_FIELDS)


def _score_columns(confluent: bool) -> tuple[Col, ...]:
    cols = []
    for f in SCORE_FIELDS:
        if f.type is FieldType.TIMESTAMP:
            # contract: timestamp (ms). JSON locally -> epoch ms; Avro in Confluent -> timestamp-millis.
            ctype = "TIMESTAMP_LTZ(3)" if confluent else "BIGINT"
        else:
            ctype = _FLINK_TYPES[f.type]
        cols.append(Col(f.name, ctype + ("" if f.nullable else " NOT NULL")))
    return tuple(cols)


def table_specs(s: RenderSettings) -> dict[str, FlinkTable]:
    def spec(name: str, **kw) -> FlinkTable:
        return FlinkTable(
            name=name,
            topic=T.TOPICS_BY_NAME[name],
            topic_name=s.topic(name),
            confluent_owned=name not in T.EXTERNALLY_WRITTEN_TOPICS,
            **kw,
        )

    contract = _contract_columns()
    ts_type = "TIMESTAMP_LTZ(3)" if s.confluent else "BIGINT"
    avro_errors = f"{s.topic(T.DLQ)}_avro" if s.confluent else None
    return {
        T.INPUT_RAW: spec(
            T.INPUT_RAW,
            columns=(Col("payload", "STRING"),),
            flink_format="raw",
            confluent_format="raw",
            key=None,
        ),
        T.INPUT_AVRO: spec(
            T.INPUT_AVRO,
            columns=contract,
            flink_format="avro",
            confluent_format="avro-registry",
            error_log_target=avro_errors,
        ),
        T.LEADS: spec(
            T.LEADS,
            columns=contract,
            flink_format="avro",
            confluent_format="avro-registry",
            proctime=not s.confluent,
            error_log_target=avro_errors,
        ),
        T.CONTACTS: spec(
            T.CONTACTS,
            columns=contract,
            flink_format="avro",
            confluent_format="avro-registry",
            proctime=not s.confluent,
            error_log_target=avro_errors,
        ),
        T.LEAD_SCORES: spec(
            T.LEAD_SCORES,
            columns=_score_columns(s.confluent),
            flink_format="json",
            confluent_format="avro-registry",
            timestamp_column=None,
        ),
        T.CONTACT_SCORES: spec(
            T.CONTACT_SCORES,
            columns=_score_columns(s.confluent),
            flink_format="json",
            confluent_format="avro-registry",
            timestamp_column=None,
        ),
        T.LEAD_SCORES_SHADOW: spec(
            T.LEAD_SCORES_SHADOW,
            columns=_score_columns(s.confluent),
            flink_format="json",
            confluent_format="avro-registry",
            timestamp_column=None,
        ),
        T.DLQ: spec(
            T.DLQ,
            columns=(Col("payload", "STRING"), Col("reason", "STRING NOT NULL"), Col("source_ts", ts_type)),
            flink_format="json",
            confluent_format="json-registry",
            key=None,
            timestamp_column=None,
        ),
        # key = value = the erased Id (raw UTF-8); read whole by every new statement, never through a group's
        # offsets. In Confluent Cloud the topic is created by the topics asset and read as its inferred table.
        T.ERASED_IDS: spec(
            T.ERASED_IDS,
            columns=(Col("Id", "STRING"),),
            flink_format="raw",
            confluent_format="raw",
            timestamp_column=None,
            startup_mode="earliest-offset",
        ),
    }


# -- statements --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One long-running statement: its SQL and, for the local SQL Gateway, the session script around it."""

    name: str
    role: StatementRole
    sql: str  # the INSERT / EXECUTE STATEMENT SET
    tables: tuple[str, ...]  # tables it reads or writes
    reads: tuple[str, ...]  # source tables (their consumer groups are the statement's offsets)
    uses_model: bool = False
    functions: tuple[str, ...] = ()  # local: session-scoped function DDL the statement needs
    views: tuple[str, ...] = ()  # local: session-scoped views the statement reads
    parallelism: int = 1  # local: the JSON checks of `validate` are the pipeline's CPU hot spot
    # local: where its sources start without committed offsets; the shadow joins the live stream at its end
    offset_reset: str = "earliest"

    def group_id(self, settings: RenderSettings, table: str) -> str:
        return statement_group_id(settings.group_prefix, self.role)


@dataclass(frozen=True)
class Pipeline:
    settings: RenderSettings
    tables: dict[str, FlinkTable]
    statements: dict[StatementRole, Statement]
    model_name: str
    model_sql: str
    session_config: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What the engine keeps this pipeline's deployment under (`deployment_key`)."""
        return deployment_key(self.settings.statement_prefix, self.settings.shadow)

    def table_ddl(self, name: str, group_id: Optional[str] = None, offset_reset: str = "earliest") -> str:
        spec = self.tables[name]
        if group_id:
            spec = replace(spec, group_id=group_id, offset_reset=offset_reset)
        return _render("table.sql", self.settings, table=spec).strip()

    def ddl(self) -> list[tuple[str, str]]:
        """(name, CREATE TABLE) for every table the dialect creates (Confluent: the ones owning topics)."""
        names = [n for n, t in self.tables.items() if t.confluent_owned or not self.settings.confluent]
        return [(n, self.table_ddl(n)) for n in names]

    def session_script(self, role: StatementRole) -> list[str]:
        """Local: everything one SQL Gateway session runs for `role`, in order (DDL is session-scoped)."""
        st = self.statements[role]
        script = [
            self.table_ddl(t, st.group_id(self.settings, t), st.offset_reset) if t in st.reads else self.table_ddl(t)
            for t in st.tables
        ]
        script += list(st.functions)
        script += list(st.views)
        if st.uses_model:
            script.append(self.model_sql)
        script.append(st.sql)
        return script

    def as_text(self) -> str:
        """The whole rendering, for snapshots and asset metadata (no secrets are ever rendered)."""
        parts = [
            f"-- dialect: {self.settings.dialect.value}; {'shadow ' if self.settings.shadow else ''}model "
            f"{self.settings.model_version} ({self.settings.model_provider})"
        ]
        if self.session_config:
            parts += [f"SET '{k}' = '{v}';" for k, v in self.session_config.items()]
        functions = sorted({fn for st in self.statements.values() for fn in st.functions})
        parts += [f"{fn};" for fn in functions]
        parts += [f"-- table {n}\n{sql};" for n, sql in self.ddl()]
        views = [v for st in self.statements.values() for v in st.views]
        parts += [f"-- view\n{v};" for v in views]
        parts.append(f"-- model {self.model_name}\n{self.model_sql};")
        parts += [f"-- statement {st.name}\n{st.sql};" for st in self.statements.values()]
        return "\n\n".join(parts) + "\n"


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(SQL_DIR)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=False,
        autoescape=False,
    )


def _render(template: str, s: RenderSettings, **ctx) -> str:
    score_ts: Callable[[str], str] = (lambda ts: ts) if s.confluent else epoch_ms_expr
    base = dict(
        confluent=s.confluent,
        bootstrap=s.kafka_bootstrap,
        linger_ms=s.producer_linger_ms,
        kafka_properties=s.kafka_properties,
        epoch_ms=score_ts,
        score_ts=score_ts,
    )
    text = _env().get_template(template).render(**base, **ctx)
    return "\n".join(line.rstrip() for line in text.strip().splitlines())


def _model_options(s: RenderSettings) -> list[tuple[str, str]]:
    if s.model_provider == "kserve":
        return [
            ("provider", "kserve"),
            ("endpoint", s.model_endpoint),
            ("timeout", s.model_timeout),
            ("retry-timeout", s.model_retry_timeout),
            ("batch-size", str(s.model_batch_size)),
            ("batch-linger", s.model_batch_linger),
        ]
    if s.model_provider == "triton":
        return [
            ("provider", "triton"),
            ("endpoint", s.model_endpoint),
            ("model-name", s.server_model_name),
            ("timeout", s.model_timeout),
        ]
    return [
        ("provider", "vertexai"),
        ("task", "classification"),
        ("vertexai.connection", s.vertex_connection),
        ("vertexai.input_format", "TF-SERVING"),
        ("vertexai.output_format", "TF-SERVING"),
    ]


CHANGED_VIEW_SUFFIX = "_changed"
DEDUP_ORDER_CONFLUENT = "arrival_time"  # `$rowtime` under a name a sub-query can carry
FEATURES_KEY_LENGTH = 16  # hex digits of SHA-256, like contract.hashing.FEATURES_HASH_LENGTH


def features_key_expr() -> str:
    """SQL of the echo suppression's features key: 16 hex digits of SHA-256 over the JSON array of the model's
    feature values (the contract's FEATURES, in contract order), NULLs kept in place.

    Not the model output's `features_hash` (contract.hashing, computed by the model server after scoring): this
    one must be known before scoring, in both dialects (SHA256 and JSON_ARRAY ... NULL ON NULL are built-ins of
    OSS Flink and of Confluent Cloud). Equal features give equal keys, which is all the suppression needs.
    """
    values = ", ".join(f"`{name}`" for name in FEATURES)
    return f"SUBSTR(SHA256(JSON_ARRAY({values} NULL ON NULL)), 1, {FEATURES_KEY_LENGTH})"


# The erasure filter's join state on the records' side (sql/erased.sql): it only serves retractions that are dropped.
ERASURE_FILTER_RECORDS_TTL = "1 s"


def erased_ids_query(s: RenderSettings) -> str:
    """The erased Ids as the scoring statements read them: locally the `erased_ids` table (key = value = Id); in
    Confluent Cloud the topic's inferred table (`key` / `val` BYTES), from its earliest offset."""
    table = s.topic(T.ERASED_IDS)
    if s.confluent:
        hint = "/*+ OPTIONS('scan.startup.mode'='earliest-offset') */"
        return f"SELECT CAST(`val` AS STRING) AS `Id`\nFROM `{table}` {hint}"
    return f"SELECT `Id`\nFROM `{table}`"


def render_pipeline(s: RenderSettings) -> Pipeline:
    tables = table_specs(s)
    # Table names equal topic names: in Confluent Cloud a table IS its topic.
    names = {k: v.topic_name for k, v in tables.items()}

    triton = s.model_provider == "triton"
    inputs = (
        [Col("record", "STRING")]
        if triton
        else [
            # nullable on purpose: ML_PREDICT accepts a NOT NULL column for a nullable input, not the reverse
            Col(n, model_input_type(s, FIELDS_BY_NAME[n].type))
            for n in MODEL_INPUT_FIELDS
        ]
    )
    # Confluent: timestamp inputs are sent as UTC ISO-8601 text, computed next to the source's columns.
    text_inputs = [
        (f"{c.name}{ISO_SUFFIX}", iso_utc_expr(f"`{c.name}`"))
        for c in inputs
        if s.confluent and FIELDS_BY_NAME[c.name].type is FieldType.TIMESTAMP
    ]
    text_alias = {alias.removesuffix(ISO_SUFFIX): alias for alias, _ in text_inputs}
    input_args = ", ".join(f"`{text_alias.get(c.name, c.name)}`" for c in inputs)
    outputs = [Col("response", "STRING")] if triton else [Col(n, ty) for n, ty in MODEL_OUTPUTS]
    model = dict(inputs=inputs, outputs=outputs, options=_model_options(s))
    mname = model_name(s, fingerprint(s.dialect.value, _render("model.sql", s, model={**model, "name": ""})))
    model_sql = _render("model.sql", s, model={**model, "name": mname})

    columns = ", ".join(f"`{f.name}`" for f in LEAD_FIELDS)
    statements: dict[StatementRole, Statement] = {}
    if s.shadow:
        tables = {name: tables[name] for name in (T.LEADS, T.CONTACTS, T.LEAD_SCORES_SHADOW, T.DLQ, T.ERASED_IDS)}
        scoring = {role: (SHADOW_STATEMENT_SOURCES[role], SHADOW_STATEMENT_SINKS[role]) for role in SHADOW_ROLES}
    else:
        tables = {name: spec for name, spec in tables.items() if name != T.LEAD_SCORES_SHADOW}
        sources = statement_sources()
        payload = "CAST(`val` AS STRING)" if s.confluent else "`payload`"
        source_time = "`$rowtime`" if s.confluent else "`source_time`"
        udf = s.validation == "udf"
        checked = f"{names[T.INPUT_RAW]}_checked"
        statements[StatementRole.VALIDATE] = Statement(
            name=UNNAMED,
            role=StatementRole.VALIDATE,
            sql=_render(
                "validate.sql",
                s,
                t=names,
                payload=payload,
                source_time=source_time,
                udf=udf,
                converted=udf_converted_columns() if udf else converted_columns(),
                reason="" if udf else reason_expr(payload),
                checked=checked,
            ),
            tables=(*sources[StatementRole.VALIDATE], *STATEMENT_SINKS[StatementRole.VALIDATE]),
            reads=sources[StatementRole.VALIDATE],
            parallelism=s.validate_parallelism,
            functions=(CONTRACT_CHECK_DDL,) if udf else (),
            views=(_render("checked.sql", s, view=checked, source=names[T.INPUT_RAW], spec=_q(contract_spec())),)
            if udf
            else (),
        )
        statements[StatementRole.SPLIT] = Statement(
            name=UNNAMED,
            role=StatementRole.SPLIT,
            sql=_render("split.sql", s, t=names, columns=columns, source_time="`source_time`"),
            tables=(*sources[StatementRole.SPLIT], *STATEMENT_SINKS[StatementRole.SPLIT]),
            reads=sources[StatementRole.SPLIT],
            parallelism=s.route_parallelism,
        )
        scoring = {
            role: (sources[role], STATEMENT_SINKS[role])
            for role in (StatementRole.SCORE_LEADS, StatementRole.SCORE_CONTACTS)
        }
    for role, ((source,), (sink, dlq)) in scoring.items():
        # Echo suppression, in every dialect (sql/unchanged.sql): only records whose features changed since
        # that Id's last score (or re-score requests) reach the model. Locally a session view ML_PREDICT's
        # TABLE argument reads; in Confluent (no session views) the same query inlined in the statement.
        unchanged = _render(
            "unchanged.sql",
            s,
            columns=columns,
            source=names[source],
            rescore=RESCORE_EVENT,
            order_by=DEDUP_ORDER_CONFLUENT if s.confluent else "proc_time",
            features_key=features_key_expr(),
            # Confluent: a first shadow statement joins the live stream at its end, not its start
            source_hint=" /*+ OPTIONS('scan.startup.mode'='latest-offset') */" if s.shadow and s.confluent else "",
        )
        # Erasure filter, in every dialect (sql/erased.sql): records of an Id in the erased_ids topic never reach
        # the model, so no sink (ours or a managed connector) ever lands or writes them again.
        unchanged = _render(
            "erased.sql",
            s,
            columns=columns,
            source_query=unchanged,
            register_query=erased_ids_query(s),
            records_ttl=ERASURE_FILTER_RECORDS_TTL,
        )
        views: tuple[str, ...] = ()
        scored = names[source]
        if not s.confluent:
            scored = f"{names[source]}{CHANGED_VIEW_SUFFIX}"
            views = (f"CREATE TEMPORARY VIEW `{scored}` AS\n{unchanged}",)
        sql = _render(
            "score.sql",
            s,
            sink=names[sink],
            dlq=names[dlq],
            source=scored,
            model=dict(name=mname),
            model_input_columns=input_args,
            text_inputs=text_inputs,
            source_query=unchanged,
        )
        statements[role] = Statement(
            name=UNNAMED,
            role=role,
            sql=sql,
            tables=(source, T.ERASED_IDS, sink, dlq),
            reads=(source,),
            uses_model=True,
            views=views,
            offset_reset="latest" if role.is_shadow else "earliest",
            parallelism=s.scoring_parallelism,
        )

    # Confluent: statement properties of every statement (UTC, like the local session: the model's text
    # timestamps and CURRENT_TIMESTAMP must not depend on the compute pool's zone).
    session_config: dict[str, str] = {}
    if s.confluent:
        # sql.state-ttl bounds the echo suppression's state (Confluent's statement property for it)
        session_config = {"sql.local-time-zone": "UTC", "sql.state-ttl": s.dedup_ttl}
    if not s.confluent:
        session_config = {
            "table.local-time-zone": "UTC",
            "execution.checkpointing.interval": s.checkpoint_interval,
            "restart-strategy.type": "exponential-delay",
            "table.exec.async-ml-predict.max-concurrent-operations": str(s.async_capacity),
            "table.exec.async-ml-predict.timeout": "10 min",
            # the echo suppression's (Id, features key) memory: outlives an echo and a restore
            "table.exec.state.ttl": s.dedup_ttl,
            # that de-duplication shuffles by key: flush network buffers every few ms, not every 100 ms
            "execution.buffer-timeout.interval": s.buffer_timeout,
            # validate's two INSERTs read one view: optimize it once, so each record is checked once
            "table.optimizer.reuse-optimize-block-with-digest-enabled": "true",
        }
        if s.object_reuse:
            session_config["pipeline.object-reuse"] = "true"
    unnamed = Pipeline(
        settings=s,
        tables=tables,
        statements=statements,
        model_name=mname,
        model_sql=model_sql,
        session_config=session_config,
    )
    # Each statement is named after everything it runs (no model version in it: see statement_name).
    named = {
        role: replace(
            st,
            name=statement_name(
                s, role, fingerprint(s.dialect.value, unnamed.session_script(role), session_config, st.parallelism)
            ),
        )
        for role, st in statements.items()
    }
    return replace(unnamed, statements=named)

"""Every hop accounted for: one window of `input_raw` followed through the pipeline, record by record.

Long on purpose: one algorithm, a window followed through every hop; the hop model (`HopResult`,
`AuditReport`) and the per-hop classification are used only by `audit` and read with it.

The records produced to `input_raw` in a window are looked up in every place they must reach:

    input_raw -> leads/contacts (valid) | dlq (invalid)          Flink: validate + split
              -> lead_scores/contact_scores                       Flink: ML_PREDICT
              -> crm_leads (the local CRM)                        the writeback worker
              -> crm_leads_raw, lead_scores, lead_score_history   the sink worker (valid records)
              -> rejected_leads                                   the sink worker (invalid records)

A record is identified by its Id and its event time: the `input_raw` Kafka timestamp, which travels as
`source_time` / `source_ts` through Flink into every score; `crm_leads_raw` holds one row per CRM change
(Id, _EventType, LastModifiedDate), the CRM one row per Id (with the newest score), `rejected_leads` one row per
payload. For every hop the audit says how many were expected, how many arrived, and which are **missing**
(older than the grace period and not there), **late** (younger: still in flight) or **doubled** (more than once).
Kafka hops after Flink are at-least-once (a restored statement replays up to one checkpoint interval): their
doubles are shown as replays, not failures; the warehouse and the CRM must hold every record exactly once.

Not scored again, on purpose: a record whose features equal an earlier record of the same Id within the scoring
stage's de-duplication TTL (an echo of a written score, or a change that left every feature as it was; see
`sql/unchanged.sql`). The audit looks back `UNCHANGED_LOOKBACK` before the window for such twins; these records
are expected in the Flink routing and in `crm_leads_raw` (they are CRM changes), not in the score hops.

Left out, as the sink tags them (`_source`): probes (`PROBE-` Ids: never written to the CRM), demo leads
(`DEMO-`), re-score requests (`_EventType` = 'rescore': no CRM change); Ids deleted in the window or in the
erasure register are left out of the warehouse and CRM hops (erased there on purpose), and records of Ids in the
register out of the score hops too (the scoring statements drop them: `sql/erased.sql`).

Used by `lead-scoring audit`, the `hops_reconciled` asset check and `benchmarks/faults.py`. The SQL is plain
BigQuery Standard SQL with parameters (DuckDB runs it transpiled).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Optional

import pandas as pd
from confluent_kafka import KafkaException, TopicPartition

from lead_scoring.contract import FEATURES, RESCORE_EVENT, parse_record
from lead_scoring.contract.samples import is_demo, is_probe
from lead_scoring.crm.quarantine import payload_text
from lead_scoring.crm.writeback import WRITTEN_FIELDS, parse_score, written_values
from lead_scoring.lifecycle.erasure import ErasureRegister
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.topics import CONTACT_SCORES, CONTACTS, DLQ, INPUT_RAW, LEAD_SCORES, LEADS
from lead_scoring.warehouse.resources import Warehouse

log = logging.getLogger(__name__)

DEFAULT_GRACE_S = 60.0
EXAMPLES = 5  # Ids shown per problem
# Rows land after their record was produced: the warehouse is read from a little before the window (clock skew).
INGEST_SLACK = timedelta(minutes=5)
# How far before the window the audit looks for an earlier record with the same features: the scoring stage's
# de-duplication TTL (streaming.render.RenderSettings.dedup_ttl, 5 min locally; Confluent keeps 1 h).
UNCHANGED_LOOKBACK = timedelta(minutes=5)
UNCHANGED = "unchanged features (not scored again: score hops)"  # how the report counts them
ERASED_NOT_SCORED = "records of erased Ids (dropped by the scoring statements: score hops)"
_RELATIVE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|min|h|d)\s*$")
_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400}


def parse_since(value: str, now: Optional[datetime] = None) -> datetime:
    """`30m`, `2h`, `1d`, `90s` (ago) or an ISO date/time (UTC when it names no zone), as an aware UTC datetime."""
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(value)
    if match:
        return now - timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise ValueError(
            f"--since {value!r} is neither a duration (30m, 2h, 1d) nor an ISO time (2026-12-07T05:00:00Z)"
        ) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime()


def _ms(value: Any) -> Optional[int]:
    """Epoch milliseconds of a timestamp (pandas, datetime, epoch ms or ISO text); None if it is none."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.value // 1_000_000)


@dataclass(frozen=True)
class AuditTopics:
    """The pipeline's topics (tests run the pipeline on prefixed ones)."""

    input_raw: str = INPUT_RAW
    dlq: str = DLQ
    leads: str = LEADS
    contacts: str = CONTACTS
    lead_scores: str = LEAD_SCORES
    contact_scores: str = CONTACT_SCORES

    @classmethod
    def prefixed(cls, prefix: str) -> AuditTopics:
        return cls(*(prefix + name for name in (INPUT_RAW, DLQ, LEADS, CONTACTS, LEAD_SCORES, CONTACT_SCORES)))


@dataclass(frozen=True)
class KafkaRecord:
    topic: str
    key: Optional[bytes]
    value: Optional[bytes]
    timestamp_ms: int
    headers: tuple[tuple[str, Optional[bytes]], ...] = ()


def read_window(
    kafka: KafkaResource, topics: Sequence[str], since_ms: int, timeout_s: float = 120.0
) -> dict[str, list[KafkaRecord]]:
    """Every record of `topics` from the first one at or after `since_ms` (offsets_for_times) to each
    partition's end as it is now; a consumer of its own that commits nothing."""
    consumer = kafka.consumer(
        f"lead-scoring-audit-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": False, "log_level": 0}
    )
    out: dict[str, list[KafkaRecord]] = {t: [] for t in topics}
    try:
        wanted = []
        for topic in topics:
            meta = consumer.list_topics(topic, timeout=30).topics.get(topic)
            if meta is None or meta.error is not None or not meta.partitions:
                raise KafkaException(f"topic {topic} does not exist (is the pipeline deployed on this cluster?)")
            wanted += [TopicPartition(topic, p, since_ms) for p in meta.partitions]
        starts = consumer.offsets_for_times(wanted, timeout=30)
        assignment, ends = [], {}
        for tp in starts:
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=30, cached=False)
            if tp.offset < 0 or tp.offset >= high:  # nothing at or after the window's start
                continue
            assignment.append(TopicPartition(tp.topic, tp.partition, tp.offset))
            ends[(tp.topic, tp.partition)] = high
        if not assignment:
            return out
        consumer.assign(assignment)
        deadline = time.monotonic() + timeout_s
        while ends and time.monotonic() < deadline:
            for msg in consumer.consume(1000, timeout=0.5):
                if msg.error() is not None:
                    continue
                key = (msg.topic(), msg.partition())
                if key not in ends or msg.offset() >= ends[key]:
                    continue
                _, ts = msg.timestamp()
                out[msg.topic()].append(
                    KafkaRecord(msg.topic(), msg.key(), msg.value(), ts, tuple(msg.headers() or ()))
                )
                if msg.offset() + 1 >= ends[key]:
                    del ends[key]
            # a partition whose last offsets are transaction markers never delivers them: done at its position
            for tp in consumer.position([TopicPartition(t, p) for t, p in ends]):
                if tp.offset >= ends.get((tp.topic, tp.partition), 0):
                    ends.pop((tp.topic, tp.partition), None)
        if ends:
            raise TimeoutError(
                f"reading the window took over {timeout_s:.0f} s; still at "
                + ", ".join(f"{t}[{p}]" for t, p in sorted(ends))
            )
    finally:
        consumer.close()
    return out


@dataclass
class HopResult:
    """One hop: what was expected there, what arrived, what is missing, late or doubled."""

    hop: str
    expected: int
    arrived: int = 0
    missing: int = 0
    late: int = 0
    doubled: int = 0
    replays_allowed: bool = False  # at-least-once Kafka hop: doubles are replays, not failures
    examples: dict[str, list[str]] = field(default_factory=dict)  # "missing"/"doubled" -> a few Ids
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.missing == 0 and (self.replays_allowed or self.doubled == 0)

    def summary(self) -> str:
        parts = [f"{self.missing} missing"] if self.missing else []
        if self.doubled:
            parts.append(f"{self.doubled} {'replayed' if self.replays_allowed else 'doubled'}")
        if self.late:
            parts.append(f"{self.late} late")
        ids = "; ".join(f"{k}: {', '.join(v)}" for k, v in self.examples.items() if v)
        return f"{self.hop}: {', '.join(parts) or 'complete'}" + (f" (e.g. {ids})" if ids else "")


@dataclass
class AuditReport:
    since: datetime
    until: datetime
    grace_s: float
    audited: int  # input_raw records in the window that the audit follows
    excluded: dict[str, int]
    hops: list[HopResult]

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hops)

    @property
    def missing(self) -> int:
        return sum(h.missing for h in self.hops)

    @property
    def doubled(self) -> int:
        return sum(h.doubled for h in self.hops if not h.replays_allowed)

    @property
    def late(self) -> int:
        return sum(h.late for h in self.hops)

    def hop(self, name: str) -> HopResult:
        return next(h for h in self.hops if h.hop == name)

    def verdict(self) -> str:
        bad = [h for h in self.hops if not h.ok]
        window = f"{self.audited:,} record(s) of input_raw from {self.since:%Y-%m-%d %H:%M:%S} UTC"
        if not bad:
            late = f"; {self.late} still in flight (younger than {self.grace_s:.0f} s)" if self.late else ""
            return f"every hop accounted for: {window}, 0 missing, 0 doubled{late}"
        return f"{window}: " + "; ".join(h.summary() for h in bad)

    def as_dict(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "grace_s": self.grace_s,
            "audited": self.audited,
            "excluded": self.excluded,
            "ok": self.ok,
            "hops": [
                {
                    "hop": h.hop,
                    "expected": h.expected,
                    "arrived": h.arrived,
                    "missing": h.missing,
                    "late": h.late,
                    "doubled": h.doubled,
                    "replays_allowed": h.replays_allowed,
                    "examples": h.examples,
                    "note": h.note,
                }
                for h in self.hops
            ],
        }


# Hop names (what the table, the check and the benchmark print).
HOP_LEADS = "leads/contacts"
HOP_DLQ = "dlq"
HOP_SCORES = "score topics"
HOP_CRM = "crm_leads (CRM)"
HOP_RAW = "crm_leads_raw"
HOP_SCORE_TABLE = "lead_scores"
HOP_LEDGER = "lead_score_history"
HOP_REJECTED = "rejected_leads"


@dataclass(frozen=True)
class _Input:
    """One audited input_raw record."""

    id: Optional[str]
    ts_ms: int
    valid: bool
    raw_key: Optional[tuple[str, str, Optional[int]]] = None  # (Id, _EventType, LastModifiedDate ms)
    deleted: bool = False
    payload: str = ""  # an invalid record's value as the sink stores it in rejected_leads
    payload_id: Optional[str] = None  # the Id inside an invalid record's JSON, as a dead letter shows it
    features: tuple = ()  # the model's feature values: equal to an earlier record's means "not scored again"


def _payload_id(value: Optional[bytes]) -> Optional[str]:
    try:
        payload = json.loads(value or b"")
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested deeper than Python parses
        return None
    rid = payload.get("Id") if isinstance(payload, dict) else None
    return rid if isinstance(rid, str) else None


def _decoded_id(key: Optional[bytes]) -> Optional[str]:
    return key.decode("utf-8", errors="replace") if key else None


def _classify(records: Iterable[KafkaRecord], until_ms: int) -> tuple[list[_Input], Counter]:
    inputs, excluded = [], Counter()
    for rec in records:
        if rec.timestamp_ms >= until_ms:
            continue
        try:
            record, _errors = parse_record(rec.value if rec.value is not None else b"")
        except RecursionError:  # nested deeper than Python parses: invalid for the audit as for the contract
            record = None
        if record is None:
            rid = _decoded_id(rec.key)
            if is_probe(rid) or is_demo(rid):
                excluded["probe or demo"] += 1
                continue
            payload = payload_text(rec.value)  # exactly as the sink stores it (escaped bytes, bounded)
            inputs.append(
                _Input(rid, rec.timestamp_ms, valid=False, payload=payload, payload_id=_payload_id(rec.value))
            )
            continue
        rid = record["Id"]
        if is_probe(rid) or is_demo(rid):
            excluded["probe or demo"] += 1
            continue
        if record.get("_EventType") == RESCORE_EVENT:
            excluded["rescore requests"] += 1
            continue
        event = record.get("_EventType") or "created"
        inputs.append(
            _Input(
                rid,
                rec.timestamp_ms,
                valid=True,
                raw_key=(rid, event, _ms(record.get("LastModifiedDate"))),
                deleted=event == "deleted",
                features=tuple(record.get(name) for name in FEATURES),
            )
        )
    return inputs, excluded


def _unchanged(inputs: Sequence[_Input], earlier: Sequence[_Input]) -> set[tuple[Optional[str], int]]:
    """(Id, time) of the valid inputs the scoring stage does not score again: an earlier record of the same Id
    (in the window or in the look-back before it) had the same features."""
    seen = {(i.id, i.features) for i in earlier if i.valid}
    unchanged = set()
    for i in sorted((i for i in inputs if i.valid), key=lambda i: i.ts_ms):
        if (i.id, i.features) in seen:
            unchanged.add((i.id, i.ts_ms))
        seen.add((i.id, i.features))
    return unchanged


def _dlq_key(rec: KafkaRecord) -> Optional[tuple[Optional[str], int]]:
    """(Id of the rejected payload or None, source_ts ms) of a dead letter."""
    try:
        letter = json.loads(rec.value or b"")
    except ValueError:
        return None
    if not isinstance(letter, dict):
        return None
    source_ts = _ms(letter.get("source_ts"))
    text = letter.get("payload")
    rid = _payload_id(text.encode("utf-8")) if isinstance(text, str) else None
    return (rid, source_ts if source_ts is not None else rec.timestamp_ms)


def _scores(topics: Iterable[Sequence[KafkaRecord]]) -> Iterable[dict[str, Any]]:
    """The valid score records of the score topics' windows, with a source_ts."""
    for records in topics:
        for rec in records:
            score, _reason = parse_score(rec.value)
            if score is not None and score.get("source_ts") is not None:
                yield score


def _score_key(rec: KafkaRecord) -> Optional[tuple[str, int]]:
    score, _reason = parse_score(rec.value)
    if score is None or score.get("source_ts") is None:
        return None
    return (score["Id"], _ms(score["source_ts"]))


def _tally(
    hop: str,
    expected: dict[Any, int],
    arrived: Counter,
    now_ms: int,
    grace_s: float,
    label: Any = None,
    replays_allowed: bool = False,
    note: str = "",
    copies: Optional[Counter] = None,
) -> HopResult:
    """`expected`: unit -> its newest input time (ms); `arrived`: unit -> how many times it is there;
    `copies`: unit -> how many records of the unit are expected (default 1: records two sources sent in the same
    millisecond with nothing else to tell them apart, e.g. dead letters without an Id, count twice)."""
    label = label or (lambda unit: str(unit[0] if isinstance(unit, tuple) else unit))
    result = HopResult(hop, expected=0, replays_allowed=replays_allowed, note=note)
    missing, doubled = [], []
    for unit, ts_ms in expected.items():
        want = copies[unit] if copies else 1
        n = arrived.get(unit, 0)
        result.expected += want
        result.arrived += min(n, want)
        short = want - min(n, want)
        if short and now_ms - ts_ms < grace_s * 1000:
            result.late += short
        elif short:
            result.missing += short
            missing.append(unit)
        if n > want:
            result.doubled += 1
            doubled.append(unit)
    result.examples = {
        k: sorted({label(u) for u in v})[:EXAMPLES] for k, v in (("missing", missing), ("doubled", doubled)) if v
    }
    return result


def audit(
    kafka: KafkaResource,
    warehouse: Warehouse,
    since: datetime,
    until: Optional[datetime] = None,
    *,
    grace_s: float = DEFAULT_GRACE_S,
    topics: AuditTopics = AuditTopics(),
    crm_table: Optional[str] = "crm_leads",
    register: Optional[ErasureRegister] = None,
    read_timeout_s: float = 120.0,
) -> AuditReport:
    """Reconcile the input_raw records of [since, until) across every hop (see the module's docstring).

    `crm_table`: the local CRM's table (None when the CRM is Salesforce: that hop is not audited here);
    `register`: the erasure register (erased Ids are left out of the warehouse and CRM hops)."""
    now = datetime.now(UTC)
    until = min(until or now, now)
    since_ms, until_ms, now_ms = _ms(since), _ms(until), _ms(now)
    assert since_ms is not None and until_ms is not None and now_ms is not None
    window = read_window(
        kafka,
        [topics.input_raw, topics.dlq, topics.leads, topics.contacts, topics.lead_scores, topics.contact_scores],
        since_ms,
        read_timeout_s,
    )
    inputs, excluded = _classify(window[topics.input_raw], until_ms)
    lookback_ms = since_ms - int(UNCHANGED_LOOKBACK.total_seconds() * 1000)
    before = read_window(kafka, [topics.input_raw], lookback_ms, read_timeout_s)[topics.input_raw]
    earlier, _ = _classify(before, since_ms)
    unchanged = _unchanged(inputs, earlier)
    if unchanged:
        excluded[UNCHANGED] = len(unchanged)
    valid = [i for i in inputs if i.valid]
    invalid = [i for i in inputs if not i.valid]
    by_record: dict[tuple[str, int], int] = {}
    for i in valid:
        by_record[(i.id, i.ts_ms)] = i.ts_ms  # type: ignore[index]
    hops: list[HopResult] = []

    # Flink: validate + split (key = Id, the Kafka timestamp travels along)
    routed = Counter((_decoded_id(r.key), r.timestamp_ms) for t in (topics.leads, topics.contacts) for r in window[t])
    hops.append(_tally(HOP_LEADS, by_record, routed, now_ms, grace_s, replays_allowed=True))
    letters = Counter(k for k in (_dlq_key(r) for r in window[topics.dlq]) if k is not None)
    # a dead letter carries the raw payload (the Id inside it, if any) and the input's timestamp
    dead_expected = {(i.payload_id, i.ts_ms): i.ts_ms for i in invalid}
    hops.append(
        _tally(
            HOP_DLQ,
            dead_expected,
            letters,
            now_ms,
            grace_s,
            replays_allowed=True,
            label=lambda u: f"{u[0] or '(no Id)'}@{u[1]}",
            copies=Counter((i.payload_id, i.ts_ms) for i in invalid),
        )
    )
    # Flink: ML_PREDICT (source_ts = the input's Kafka timestamp)
    scored = Counter(
        k for t in (topics.lead_scores, topics.contact_scores) for k in map(_score_key, window[t]) if k is not None
    )
    # erased Ids: the scoring statements drop their records (sql/erased.sql: the erased_ids topic, which every
    # erasure writes with the register), and the workers keep them out of the warehouse and the CRM
    ids = sorted({i.id for i in valid if i.id})
    erased = register.erased(ids) if register is not None and ids else set()
    to_score = {k: v for k, v in by_record.items() if k not in unchanged and k[0] not in erased}
    dropped = sum(1 for k in by_record if k not in unchanged and k[0] in erased)
    if dropped:
        excluded[ERASED_NOT_SCORED] = dropped
    hops.append(_tally(HOP_SCORES, to_score, scored, now_ms, grace_s, replays_allowed=True))

    # The workers: the warehouse and the CRM; erased Ids are not expected there
    gone = {i.id for i in valid if i.deleted} | erased
    kept = [i for i in valid if i.id not in gone]
    if gone:
        excluded["erased Ids (warehouse and CRM hops)"] = len(gone)
    lower = since - INGEST_SLACK
    newest: dict[str, int] = {}  # the newest SCORED change of each Id: what the CRM row must carry
    for i in kept:
        if (i.id, i.ts_ms) in unchanged:
            continue
        newest[i.id] = max(newest.get(i.id, 0), i.ts_ms)  # type: ignore[index]
    if crm_table:
        # one row per record, carrying the newest score: present, and not older than the newest change -- or
        # holding what that change's score would write (the writeback suppresses a write the CRM holds already)
        columns = ", ".join(WRITTEN_FIELDS)
        crm = (
            warehouse.query(
                f"SELECT Id, source_ts, {columns} FROM {crm_table} WHERE Id IN UNNEST(@ids)",
                {"ids": sorted(newest)},
            )
            if newest
            else pd.DataFrame(columns=["Id", "source_ts", *WRITTEN_FIELDS])
        )
        rows = Counter(crm["Id"])
        newest_in_crm: dict[str, int] = {}
        held: dict[str, tuple[Any, ...]] = {}
        for row in crm.to_dict("records"):
            rid = row["Id"]
            newest_in_crm[rid] = max(newest_in_crm.get(rid, 0), _ms(row["source_ts"]) or 0)
            held[rid] = written_values(row)
        would_write = {
            key: written_values(score)
            for score in _scores(window[t] for t in (topics.lead_scores, topics.contact_scores))
            if (key := (score["Id"], _ms(score["source_ts"]))) and key[0] in newest
        }
        current = Counter(
            {
                rid: rows[rid]
                for rid, ts in newest.items()
                if newest_in_crm.get(rid, -1) >= ts or (rid in held and would_write.get((rid, ts)) == held[rid])
            }
        )
        hops.append(_tally(HOP_CRM, newest, current, now_ms, grace_s, label=str))
    raw_expected: dict[tuple[str, str, Optional[int]], int] = {}
    for i in kept:
        raw_expected[i.raw_key] = max(raw_expected.get(i.raw_key, 0), i.ts_ms)  # type: ignore[index]
    raw = warehouse.query(
        "SELECT Id, _EventType, LastModifiedDate FROM crm_leads_raw "
        "WHERE _ingested_at >= @since AND _source = 'stream'",
        {"since": lower},
    )
    raw_rows = Counter(
        (rid, event or "created", _ms(lmd))
        for rid, event, lmd in zip(raw["Id"], raw["_EventType"], raw["LastModifiedDate"], strict=True)
    )
    hops.append(_tally(HOP_RAW, raw_expected, raw_rows, now_ms, grace_s))
    score_expected = {(i.id, i.ts_ms): i.ts_ms for i in kept if (i.id, i.ts_ms) not in unchanged}
    table = warehouse.query(
        "SELECT Id, source_ts FROM lead_scores WHERE source_ts >= @since AND _source = 'stream'", {"since": since}
    )
    hops.append(
        _tally(
            HOP_SCORE_TABLE,
            score_expected,
            Counter(zip(table["Id"], map(_ms, table["source_ts"]), strict=True)),
            now_ms,
            grace_s,
        )
    )
    ledger = warehouse.query(
        "SELECT Id, source_ts FROM lead_score_history WHERE source_ts >= @since "
        "AND _source = 'stream' AND COALESCE(shadow, FALSE) = FALSE",
        {"since": since},
    )
    hops.append(
        _tally(
            HOP_LEDGER,
            score_expected,
            Counter(zip(ledger["Id"], map(_ms, ledger["source_ts"]), strict=True)),
            now_ms,
            grace_s,
        )
    )
    # the sink keeps one row per distinct rejected payload (shown by Id and time: a payload may hold PII)
    payloads: dict[str, int] = {}
    names: dict[str, str] = {}
    for i in invalid:
        if i.id not in gone:
            payloads[i.payload] = max(payloads.get(i.payload, 0), i.ts_ms)
            names[i.payload] = f"{i.id or '(no Id)'}@{i.ts_ms}"
    # looked up by payload, not by time: the sink keeps one row per distinct payload ever, so a payload rejected
    # before (the same malformed record sent again) has its row from then
    rejected = (
        warehouse.query(
            "SELECT DISTINCT payload FROM rejected_leads WHERE payload IN UNNEST(@payloads)",
            {"payloads": sorted(payloads)},
        )
        if payloads
        else pd.DataFrame({"payload": []})
    )
    hops.append(
        _tally(HOP_REJECTED, payloads, Counter(rejected["payload"]), now_ms, grace_s, label=lambda p: names.get(p, "?"))
    )
    return AuditReport(since, until, grace_s, audited=len(inputs), excluded=dict(excluded), hops=hops)

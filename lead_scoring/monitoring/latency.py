"""End-to-end latency probes: K probe leads into `input_raw`, wait for their scores on `lead_scores`.

A probe is a valid contract Lead marked by its Id (`contract.samples`): training, drift and the CRM
writeback skip such Ids, and the warehouse sink tags them `_source = 'probe'`. Latency of one probe = the time
its score was read from the scores topic minus the Kafka timestamp its input record was produced with
(contract: latency is measured from the moment the record is produced).

The scores are read in the format the scores topic has in the profile (`MonitoringSettings.scores_format`):
JSON locally and on a cluster; in Confluent Cloud (gcp) Avro in Schema Registry wire format -- a magic byte 0,
a 4-byte schema id, then the Avro body -- written by Flink from the contract's score columns, so the contract's
Avro schema (`contract.schemas.score_avro_schema`, the same fields, types and order) reads the body.

In the gcp profile an optional Salesforce probe goes through the whole loop: a probe Lead is created
in Salesforce (the source connector picks it up), its `Lead_Score__c` is awaited, then it is deleted.
"""

from __future__ import annotations

import io
import json
import logging
import statistics
import struct
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Optional

import fastavro
from confluent_kafka import KafkaException, TopicPartition

from lead_scoring.contract.samples import PROBE_ID_PREFIX, probe_record
from lead_scoring.contract.schemas import score_avro_schema
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lag import KafkaUnavailable

log = logging.getLogger(__name__)

PROBE_CONSUMER_GROUP = "lead-scoring-latency-probe"  # never commits: it reads from the end offsets it assigns
SCORE_FORMATS = ("json", "avro-registry")
_WIRE_HEADER = struct.Struct(">bI")  # Confluent Schema Registry wire format: magic byte 0, schema id
_SCORE_SCHEMA = fastavro.parse_schema(score_avro_schema())


def decode_score(value: Optional[bytes], value_format: str) -> Optional[dict[str, Any]]:
    """One score record as a dict, or None when it cannot be read in `value_format` (json | avro-registry)."""
    if not value:
        return None
    if value_format == "json":
        try:
            record = json.loads(value)
        except (TypeError, ValueError):
            return None
        return record if isinstance(record, dict) else None
    if value_format != "avro-registry":
        raise ValueError(f"value_format={value_format!r}: expected one of {', '.join(SCORE_FORMATS)}")
    if len(value) <= _WIRE_HEADER.size or value[0] != 0:
        return None
    try:
        record = fastavro.schemaless_reader(io.BytesIO(value[_WIRE_HEADER.size :]), _SCORE_SCHEMA)
    except (EOFError, ValueError, TypeError, IndexError, UnicodeDecodeError):
        return None
    return record if isinstance(record, dict) else None


class ProbeError(RuntimeError):
    """The probe could not run (topic missing, produce refused); the message says why."""


@dataclass
class ProbeResult:
    run_id: str
    sent: int
    latencies_s: dict[str, float] = field(default_factory=dict)  # probe Id -> seconds
    missing: list[str] = field(default_factory=list)
    scores: dict[str, Any] = field(default_factory=dict)  # probe Id -> Lead_Score__c
    timeout_s: float = 0.0

    @property
    def received(self) -> int:
        return len(self.latencies_s)

    @property
    def p50_s(self) -> Optional[float]:
        return statistics.median(self.latencies_s.values()) if self.latencies_s else None

    @property
    def max_s(self) -> Optional[float]:
        return max(self.latencies_s.values()) if self.latencies_s else None

    def within(self, slo_s: float) -> bool:
        return not self.missing and self.max_s is not None and self.max_s <= slo_s

    def summary(self, slo_s: float) -> str:
        if self.missing and not self.latencies_s:
            return f"none of {self.sent} probe leads was scored within {self.timeout_s:.0f} s (SLO {slo_s:g} s)"
        text = (
            f"p50 {self.p50_s:.2f} s, max {self.max_s:.2f} s over {self.received}/{self.sent} probes (SLO {slo_s:g} s)"
        )
        if self.missing:
            text += f"; {len(self.missing)} not scored within {self.timeout_s:.0f} s"
        return text


def run_probe(
    kafka: KafkaResource,
    input_topic: str,
    scores_topic: str,
    count: int,
    timeout_s: float,
    connect_timeout_s: float = 5.0,
    scores_format: str = "json",
) -> ProbeResult:
    """Produce `count` probes to `input_topic` and wait up to `timeout_s` for their scores (read as
    `scores_format`: json | avro-registry)."""
    if scores_format not in SCORE_FORMATS:
        raise ValueError(f"scores_format={scores_format!r}: expected one of {', '.join(SCORE_FORMATS)}")
    run_id = uuid.uuid4().hex[:10]
    ids = [f"{PROBE_ID_PREFIX}{run_id}-{i}" for i in range(count)]
    consumer = kafka.consumer(PROBE_CONSUMER_GROUP, **{"log_level": 0, "enable.partition.eof": False})
    try:
        try:
            metadata = consumer.list_topics(timeout=connect_timeout_s)
        except KafkaException as exc:
            raise KafkaUnavailable(str(exc.args[0]) if exc.args else str(exc)) from exc
        for topic in (input_topic, scores_topic):
            if topic not in metadata.topics or metadata.topics[topic].error is not None:
                raise ProbeError(f"topic {topic} does not exist: is the pipeline deployed (lead-scoring stack up)?")
        # Start reading the scores at their current end: only answers to this run's probes matter.
        assignment = []
        for p in metadata.topics[scores_topic].partitions:
            _, high = consumer.get_watermark_offsets(TopicPartition(scores_topic, p), timeout=connect_timeout_s)
            assignment.append(TopicPartition(scores_topic, p, high))
        consumer.assign(assignment)

        produced_ms: dict[str, int] = {}
        errors: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                errors.append(str(err))
            else:
                produced_ms[msg.key().decode()] = msg.timestamp()[1]

        producer = kafka.producer(**{"log_level": 0, "message.timeout.ms": int(max(connect_timeout_s, 5) * 1000)})
        for record_id in ids:
            record = probe_record(record_id, datetime.now(UTC))
            producer.produce(
                input_topic, key=record_id.encode(), value=json.dumps(record).encode(), on_delivery=delivered
            )
            producer.poll(0)
        if producer.flush(connect_timeout_s + 5) > 0 or errors:
            raise ProbeError(f"probe records not acknowledged by the broker: {'; '.join(errors) or 'timeout'}")

        result = ProbeResult(run_id=run_id, sent=count, timeout_s=timeout_s)
        pending = set(ids)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            msg = consumer.poll(0.2)
            if msg is None or msg.error():
                continue
            received_ms = time.time() * 1000.0
            score = decode_score(msg.value(), scores_format)
            record_id = score.get("Id") if score is not None else None
            if record_id in pending:
                pending.discard(record_id)
                result.latencies_s[record_id] = max(0.0, (received_ms - produced_ms[record_id]) / 1000.0)
                result.scores[record_id] = score.get("Lead_Score__c")
        result.missing = sorted(pending)
        return result
    finally:
        consumer.close()


@dataclass
class SalesforceProbeResult:
    latency_s: Optional[float]
    score: Any
    lead_id: Optional[str]
    deleted: bool


def run_salesforce_probe(
    sf: Any,
    timeout_s: float,
    poll_s: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> SalesforceProbeResult:
    """Create a probe Lead in Salesforce, wait for its Lead_Score__c, delete it (also on timeout)."""
    marker = f"{PROBE_ID_PREFIX}{uuid.uuid4().hex[:10]}"
    created = sf.Lead.create({"LastName": marker, "Company": "Lead scoring latency probe", "LeadSource": "Google"})
    lead_id = created.get("id") if isinstance(created, dict) else None
    if not lead_id:
        raise ProbeError(f"Salesforce did not create the probe Lead: {created!r}")
    start = clock()
    latency, score, deleted = None, None, False
    try:
        while clock() - start < timeout_s:
            score = sf.Lead.get(lead_id).get("Lead_Score__c")
            if score is not None:
                latency = clock() - start
                break
            sleep(poll_s)
    finally:
        try:
            sf.Lead.delete(lead_id)
            deleted = True
        except Exception as exc:  # report, do not mask the measurement; the operator deletes it by hand
            log.error("could not delete Salesforce probe Lead %s: %s", lead_id, exc)
    return SalesforceProbeResult(latency_s=latency, score=score, lead_id=lead_id, deleted=deleted)

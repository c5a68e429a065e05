"""What the monitoring watches: the pipeline's topics and its consumer groups, in one place.

`PIPELINE_CONSUMER_GROUPS` lists every consumer group of the pipeline: the Flink statements'
(`properties.group.id`) and the CRM workers' (taken from `lead_scoring.crm.workers.GROUP_IDS`, their
source), so a renamed worker group cannot silently drop out of the lag checks. Latency probes are
marked by their Id.
"""

from __future__ import annotations

from dataclasses import dataclass

import dagster as dg

from lead_scoring.crm.workers import GROUP_IDS as CRM_WORKER_GROUP_IDS
from lead_scoring.crm.workers import SINK, WRITEBACK

from lead_scoring.streaming.topics import (
    CONTACT_SCORES,
    CONTACTS,
    DLQ,
    INPUT_AVRO,
    INPUT_RAW,
    LEAD_SCORES,
    LEADS,
    TOPICS,
)

# Latency probes: Ids start with this prefix. Training SQL, drift, writeback and sink skip them.
PROBE_ID_PREFIX = "PROBE-"


def is_probe(record_id: object) -> bool:
    return isinstance(record_id, str) and record_id.startswith(PROBE_ID_PREFIX)


@dataclass(frozen=True)
class ConsumerGroup:
    group_id: str
    topics: tuple[str, ...]
    role: str


FLINK_VALIDATE_GROUP = "lead-scoring-flink-validate"
FLINK_ROUTE_GROUP = "lead-scoring-flink-route"
FLINK_SCORE_LEADS_GROUP = "lead-scoring-flink-score-leads"
FLINK_SCORE_CONTACTS_GROUP = "lead-scoring-flink-score-contacts"
WRITEBACK_GROUP = CRM_WORKER_GROUP_IDS[WRITEBACK]
WAREHOUSE_SINK_GROUP = CRM_WORKER_GROUP_IDS[SINK]

PIPELINE_CONSUMER_GROUPS: tuple[ConsumerGroup, ...] = (
    ConsumerGroup(FLINK_VALIDATE_GROUP, (INPUT_RAW,), "Flink: input_raw -> input_avro / dlq"),
    ConsumerGroup(FLINK_ROUTE_GROUP, (INPUT_AVRO,), "Flink: input_avro -> leads / contacts"),
    ConsumerGroup(FLINK_SCORE_LEADS_GROUP, (LEADS,), "Flink: ML_PREDICT leads -> lead_scores"),
    ConsumerGroup(FLINK_SCORE_CONTACTS_GROUP, (CONTACTS,), "Flink: ML_PREDICT contacts -> contact_scores"),
    ConsumerGroup(WRITEBACK_GROUP, (LEAD_SCORES, CONTACT_SCORES), "scores -> CRM"),
    ConsumerGroup(WAREHOUSE_SINK_GROUP, (INPUT_RAW, LEAD_SCORES, CONTACT_SCORES), "stream -> warehouse"),
)

PIPELINE_TOPICS: tuple[str, ...] = tuple(t.name for t in TOPICS)
DLQ_TOPIC = DLQ
SCORES_TOPIC = LEAD_SCORES


def topic_asset_key(topic: str) -> dg.AssetKey:
    """The asset that stands for a Kafka topic in the graph (`kafka/<topic>`)."""
    return dg.AssetKey(["kafka", topic])

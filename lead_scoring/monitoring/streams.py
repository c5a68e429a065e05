"""Kafka measurements for the stream sensor: end offsets per topic, lag per consumer group, DLQ growth.

`take_snapshot` asks the brokers (through `streaming.lag`: it never joins a group); `evaluate` turns two
consecutive snapshots into asset observations, check evaluations and alerts. Both are plain
functions so the sensor, the on-demand checks and the tests share them.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Optional

import dagster as dg

from lead_scoring.monitoring.pipeline import PIPELINE_CONSUMER_GROUPS
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lag import lag_by_partition, offset_reader
from lead_scoring.streaming.lineage import topic_asset_key

log = logging.getLogger(__name__)

CONSUMER_LAG_CHECK = "consumer_lag"
DLQ_GROWTH_CHECK = "dlq_growth"
KNOWN_GROUP_TOPICS = {g.group_id: g.topics for g in PIPELINE_CONSUMER_GROUPS}
KNOWN_FLINK_GROUPS = {g.group_id for g in PIPELINE_CONSUMER_GROUPS if g.role.startswith("Flink statement")}


@dataclass
class GroupLag:
    group_id: str
    committed: bool  # False: the group has never committed an offset (not running, or not started yet)
    lag_by_topic: dict[str, int] = field(default_factory=dict)
    topics: tuple[str, ...] = ()  # what it reads (pipeline groups: PIPELINE_CONSUMER_GROUPS; else settings)

    @property
    def total(self) -> int:
        return sum(self.lag_by_topic.values())


@dataclass
class StreamSnapshot:
    taken_at: float
    end_offsets: dict[str, int]  # topic -> sum of its partitions' end offsets
    partitions: dict[str, int]
    missing_topics: list[str]
    groups: dict[str, GroupLag]


def take_snapshot(
    kafka: KafkaResource,
    topics: list[str],
    groups: list[str],
    timeout_s: float = 5.0,
    group_topics: Optional[dict[str, tuple[str, ...]]] = None,
    positions: Optional[dict[str, dict[tuple[str, int], int]]] = None,
) -> StreamSnapshot:
    """End offsets of `topics` and the lag of `groups`; raises KafkaUnavailable if the broker is down.

    `positions` (FlinkEngine.source_positions): offsets of groups that commit none to Kafka (Confluent Cloud
    statements), used instead of the group's committed offsets; a group absent from it has none.
    """
    group_topics = {**KNOWN_GROUP_TOPICS, **(group_topics or {})}
    with offset_reader(kafka, timeout_s=timeout_s) as reader:
        partitions = reader.partitions()
        wanted = set(topics) | {t for g in groups for t in group_topics.get(g, ())}
        present = {t: partitions[t] for t in sorted(wanted) if t in partitions}
        marks = reader.watermarks(present)
    lags: dict[str, GroupLag] = {}
    for group in groups:
        topics_of_group = tuple(sorted(set(group_topics.get(group, ()))))
        if positions is not None and (group in positions or group in KNOWN_FLINK_GROUPS):
            committed = {k: v for k, v in positions.get(group, {}).items() if k[0] in topics_of_group}
        else:
            with offset_reader(kafka, group, timeout_s) as reader:
                committed = reader.committed({t: present[t] for t in topics_of_group if t in present})
        lag = GroupLag(group, committed=any(o >= 0 for o in committed.values()), topics=topics_of_group)
        if lag.committed:
            by_partition = lag_by_partition(committed, {k: v for k, v in marks.items() if k[0] in topics_of_group})
            for (topic, _), n in by_partition.items():
                lag.lag_by_topic[topic] = lag.lag_by_topic.get(topic, 0) + n
        lags[group] = lag
    end_offsets = {t: sum(high for (topic, _), (_, high) in marks.items() if topic == t) for t in present}
    return StreamSnapshot(
        taken_at=time.time(),
        end_offsets=end_offsets,
        partitions=present,
        missing_topics=sorted(set(topics) - set(partitions)),
        groups=lags,
    )


@dataclass
class Evaluation:
    observations: list[dg.AssetObservation]
    checks: list[dg.AssetCheckEvaluation]
    breaches: dict[str, str]  # alert id -> message (ERROR-level threshold crossings only)
    cursor: dict[str, Any]


def evaluate(
    snapshot: StreamSnapshot,
    previous: dict[str, Any],
    topics: list[str],
    dlq_topic: str,
    max_consumer_lag: int,
    max_dlq_growth: int,
) -> Evaluation:
    """Observations for the topic assets, consumer_lag / dlq_growth checks, and threshold breaches."""
    prev_offsets: dict[str, int] = previous.get("end_offsets", {})
    prev_ts: Optional[float] = previous.get("ts")
    elapsed = snapshot.taken_at - prev_ts if prev_ts else None
    observations: list[dg.AssetObservation] = []
    checks: list[dg.AssetCheckEvaluation] = []
    breaches: dict[str, str] = {}

    for topic in topics:
        if topic not in snapshot.end_offsets:
            continue
        end = snapshot.end_offsets[topic]
        metadata: dict[str, Any] = {
            "end_offset": dg.MetadataValue.int(end),
            "partitions": dg.MetadataValue.int(snapshot.partitions[topic]),
        }
        if elapsed and elapsed > 0 and topic in prev_offsets:
            # a recreated topic restarts at 0: count that as no traffic, not negative traffic
            metadata["messages_per_s"] = dg.MetadataValue.float(round(max(0, end - prev_offsets[topic]) / elapsed, 3))
        for group in snapshot.groups.values():
            if topic in group.lag_by_topic:
                metadata[f"lag {group.group_id}"] = dg.MetadataValue.int(group.lag_by_topic[topic])
        observations.append(dg.AssetObservation(asset_key=topic_asset_key(topic), metadata=metadata))

    # consumer_lag: one check per consumed topic, over every group that reads it
    consumed: dict[str, list[str]] = {}
    for group in snapshot.groups.values():
        for topic in group.topics:
            consumed.setdefault(topic, []).append(group.group_id)
    for topic, group_ids in sorted(consumed.items()):
        if topic not in snapshot.end_offsets:
            continue
        over, absent, lags = [], [], {}
        for gid in group_ids:
            group = snapshot.groups[gid]
            if not group.committed:
                if snapshot.end_offsets[topic] == 0:  # nothing to read yet: nothing to commit either
                    lags[gid] = 0
                else:
                    absent.append(gid)
                continue
            lag = group.lag_by_topic.get(topic, 0)
            lags[gid] = lag
            if lag > max_consumer_lag:
                over.append(gid)
                breaches[f"{CONSUMER_LAG_CHECK}:{gid}:{topic}"] = (
                    f"consumer group {gid} is {lag} messages behind on {topic} (threshold {max_consumer_lag})"
                )
        if over:
            severity, passed = dg.AssetCheckSeverity.ERROR, False
            description = "; ".join(f"{g} is {lags[g]} behind" for g in over) + f" (threshold {max_consumer_lag})"
        elif absent:
            severity, passed = dg.AssetCheckSeverity.WARN, False
            description = f"no committed offsets for {', '.join(absent)}: not running or not started yet"
        else:
            severity, passed = dg.AssetCheckSeverity.ERROR, True
            description = f"every group within {max_consumer_lag} messages"
        checks.append(
            dg.AssetCheckEvaluation(
                asset_key=topic_asset_key(topic),
                check_name=CONSUMER_LAG_CHECK,
                passed=passed,
                severity=severity,
                description=description,
                metadata={
                    "max_lag": max(lags.values(), default=0),
                    "threshold": max_consumer_lag,
                    "groups": ", ".join(group_ids),
                    "groups_without_offsets": ", ".join(absent) or "none",
                },
            )
        )

    if dlq_topic in snapshot.end_offsets and dlq_topic in prev_offsets:
        growth = max(0, snapshot.end_offsets[dlq_topic] - prev_offsets[dlq_topic])
        passed = growth <= max_dlq_growth
        if not passed:
            breaches[f"{DLQ_GROWTH_CHECK}:{dlq_topic}"] = (
                f"{growth} new records in {dlq_topic} in {elapsed or 0:.0f} s (threshold {max_dlq_growth})"
            )
        checks.append(
            dg.AssetCheckEvaluation(
                asset_key=topic_asset_key(dlq_topic),
                check_name=DLQ_GROWTH_CHECK,
                passed=passed,
                severity=dg.AssetCheckSeverity.ERROR,
                description=(f"{growth} new dead letters since the last tick (threshold {max_dlq_growth})"),
                metadata={
                    "growth": growth,
                    "threshold": max_dlq_growth,
                    "seconds": round(elapsed or 0, 1),
                    "dlq_end_offset": snapshot.end_offsets[dlq_topic],
                },
            )
        )

    cursor = {
        "ts": snapshot.taken_at,
        "end_offsets": {**prev_offsets, **snapshot.end_offsets},
        "alerts": sorted(breaches),
    }
    return Evaluation(observations, checks, breaches, cursor)

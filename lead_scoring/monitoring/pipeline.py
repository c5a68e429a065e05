"""What the monitoring watches: the pipeline's topics and its consumer groups, derived from their owners.

The Flink statements' groups come from the rendering (`streaming.render.statement_group_id` and the
statements' sources), the CRM workers' from `crm.workers`; nothing here is spelled a second time, so a
renamed group or a new statement cannot silently drop out of the lag checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from lead_scoring.crm.heartbeat import GROUP_IDS, SINK, WRITEBACK, worker_topics
from lead_scoring.streaming.render import STATEMENT_SOURCES, statement_group_id
from lead_scoring.streaming.topics import DLQ, LEAD_SCORES, TOPICS

DEFAULT_GROUP_PREFIX = "lead-scoring"


@dataclass(frozen=True)
class ConsumerGroup:
    group_id: str
    topics: tuple[str, ...]
    role: str


def pipeline_consumer_groups(group_prefix: str = DEFAULT_GROUP_PREFIX) -> tuple[ConsumerGroup, ...]:
    flink = tuple(
        ConsumerGroup(statement_group_id(group_prefix, role), sources, f"Flink statement {role.value}")
        for role, sources in STATEMENT_SOURCES.items()
    )
    workers = (
        ConsumerGroup(GROUP_IDS[WRITEBACK], tuple(worker_topics(WRITEBACK)), "scores -> CRM"),
        ConsumerGroup(GROUP_IDS[SINK], tuple(worker_topics(SINK)), "stream -> warehouse"),
    )
    return flink + workers


PIPELINE_CONSUMER_GROUPS: tuple[ConsumerGroup, ...] = pipeline_consumer_groups()
PIPELINE_TOPICS: tuple[str, ...] = tuple(t.name for t in TOPICS)
DLQ_TOPIC = DLQ
SCORES_TOPIC = LEAD_SCORES

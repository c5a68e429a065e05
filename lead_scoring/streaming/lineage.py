"""The pipeline's Kafka topics as assets, wired into the graph: who writes each topic and what it is made from.

`kafka/<topic>` specs are observed, not materialized: the stream sensor records their offsets and rates,
and the monitoring checks (consumer lag, DLQ growth, latency SLO) hang on them. Their lineage shows the
stream: `streaming_topics` creates them, `flink_statements` writes them from the topics its statements read.
"""

from __future__ import annotations

import dagster as dg

from lead_scoring.streaming.render import (
    SHADOW_STATEMENT_SINKS,
    SHADOW_STATEMENT_SOURCES,
    STATEMENT_SINKS,
    STATEMENT_SOURCES,
)
from lead_scoring.streaming.topics import ERASED_IDS, INPUT_RAW, TOPICS, TOPICS_BY_NAME

OWNERS = ["team:data-platform"]
# The asset that rolls the challenger's shadow statements out (lead_scoring.promotion).
CHALLENGER_ASSET_KEY = dg.AssetKey("challenger_deployment")


def topic_asset_key(topic: str) -> dg.AssetKey:
    """The asset that stands for a Kafka topic in the graph (`kafka/<topic>`)."""
    return dg.AssetKey(["kafka", topic])


def _inputs_of(topic: str) -> list[str]:
    """The topics the statements writing `topic` read."""
    return sorted({src for role, sinks in STATEMENT_SINKS.items() if topic in sinks for src in STATEMENT_SOURCES[role]})


def topic_specs() -> list[dg.AssetSpec]:
    specs = []
    for topic in TOPICS:
        written_by_flink = any(topic.name in sinks for sinks in STATEMENT_SINKS.values())
        written_by_shadow = any(topic.name in sinks for sinks in SHADOW_STATEMENT_SINKS.values())
        deps: list[dg.AssetKey] = [dg.AssetKey("streaming_topics")]
        if written_by_flink:
            deps += [dg.AssetKey("flink_statements"), *(topic_asset_key(t) for t in _inputs_of(topic.name))]
        if written_by_shadow:
            deps += [
                CHALLENGER_ASSET_KEY,
                *(
                    topic_asset_key(t)
                    for t in sorted(
                        {
                            src
                            for role, sinks in SHADOW_STATEMENT_SINKS.items()
                            if topic.name in sinks
                            for src in SHADOW_STATEMENT_SOURCES[role]
                        }
                    )
                ),
            ]
        specs.append(
            dg.AssetSpec(
                key=topic_asset_key(topic.name),
                group_name="streaming",
                owners=OWNERS,
                kinds={"kafka"},
                description=TOPICS_BY_NAME[topic.name].description,
                deps=deps,
                metadata={
                    "topic": topic.name,
                    "partitions": topic.partitions,
                    "written_by": "flink_statements"
                    if written_by_flink
                    else "challenger_deployment (shadow statements)"
                    if written_by_shadow
                    else (
                        "the Salesforce source connector, `lead-scoring leads replay|generate`"
                        if topic.name == INPUT_RAW
                        else "every erasure: `lead-scoring erase`, the sink's deleted events, erasure_sweep_job"
                        if topic.name == ERASED_IDS
                        else ""
                    ),
                },
            )
        )
    return specs

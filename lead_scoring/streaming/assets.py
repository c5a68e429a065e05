"""Streaming assets: the pipeline's Kafka topics and its Flink SQL statements (rolled out per model)."""

from dataclasses import replace
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from lead_scoring.serving.deployment import ModelDeployment
from lead_scoring.streaming.admin import TopicState, ensure_topics
from lead_scoring.streaming.engine import FlinkEngine, RolloutError, render_settings_for
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.render import render_pipeline
from lead_scoring.streaming.rollout import RolloutReport, rollout
from lead_scoring.streaming.topics import EXTERNALLY_WRITTEN_TOPICS, TOPICS

GROUP = "streaming"
OWNERS = ["team:data-platform"]


class StreamingTopicsConfig(dg.Config):
    topic_prefix: str = Field(default="", description="prefix of every topic name (tests, side-by-side pipelines)")
    only_unowned: Optional[bool] = Field(
        default=None, description="create only the topics no Flink table owns (default: True on Confluent Cloud)"
    )


@dg.asset(group_name=GROUP, kinds={"kafka"}, owners=OWNERS)
def streaming_topics(
    context: dg.AssetExecutionContext, config: StreamingTopicsConfig, kafka: KafkaResource, flink: FlinkEngine
) -> list[TopicState]:
    """The pipeline's Kafka topics, created idempotently with the partitions, retention and cleanup of topics.py."""
    # In Confluent Cloud a Flink table owns its topic (CREATE TABLE creates it with the same TopicSpec); only
    # the topics no statement writes are created here: input_raw (the Salesforce source connector) and
    # erased_ids (the erasure path; compacted).
    only_unowned = config.only_unowned if config.only_unowned is not None else flink.owns_topics
    specs = [t for t in TOPICS if t.name in EXTERNALLY_WRITTEN_TOPICS] if only_unowned else list(TOPICS)
    if kafka.topic_partitions:  # a cluster sized by the user (the one-partition topics keep one partition)
        specs = [replace(t, partitions=kafka.topic_partitions) if t.partitions > 1 else t for t in specs]
    states = ensure_topics(kafka.admin(), specs, prefix=config.topic_prefix)
    for st in states:
        context.log.info(f"topic {st.name}: {st.action} ({st.partitions} partitions, {st.config})")
    context.add_output_metadata(
        {
            "topics": dg.MetadataValue.json(
                {st.name: {"action": st.action, "partitions": st.partitions, **st.config} for st in states}
            ),
            "created": [st.name for st in states if st.action == "created"],
            "bootstrap_servers": kafka.bootstrap_servers,
        }
    )
    return states


class FlinkStatementsConfig(dg.Config):
    model_provider: str = Field(default="", description="local: kserve (default) or triton; gcp: vertexai")
    topic_prefix: str = Field(default="")
    statement_prefix: str = Field(default="lead-scoring")
    group_prefix: str = Field(default="lead-scoring")
    verify_timeout_s: float = Field(default=120.0, description="how long a new statement may take to run and produce")
    # Tuning: a changed value changes the statements' SQL, so they are handed over (a model version never is).
    model_batch_size: Optional[int] = Field(default=None, ge=1, description="rows per model request (default 256)")
    model_batch_linger: Optional[str] = Field(
        default=None, description="how long a partial batch waits for more rows, e.g. '10 ms' (the default)"
    )
    checkpoint_interval: Optional[str] = Field(default=None, description="local Flink checkpoints, e.g. '60 s'")
    dedup_ttl: Optional[str] = Field(
        default=None,
        description="local Flink: how long the scoring stage remembers a scored change to drop its "
        "replay after a crash, e.g. '5 min' (the default)",
    )

    def tuning(self) -> dict[str, Any]:
        return {
            k: v
            for k in ("model_batch_size", "model_batch_linger", "checkpoint_interval", "dedup_ttl")
            if (v := getattr(self, k)) is not None
        }


@dg.asset(
    group_name=GROUP, kinds={"flink"}, owners=OWNERS, deps=[streaming_topics], ins={"model_deployment": dg.AssetIn()}
)
def flink_statements(
    context: dg.AssetExecutionContext,
    config: FlinkStatementsConfig,
    model_deployment: ModelDeployment,
    kafka: KafkaResource,
    flink: FlinkEngine,
) -> dg.Output[RolloutReport]:
    """The Flink SQL pipeline scoring with the deployed model; statements whose SQL changed are handed over."""
    settings = render_settings_for(
        flink,
        kafka,
        url=model_deployment.url,
        model_name=model_deployment.model_name,
        version=model_deployment.version,
        provider=config.model_provider,
        topic_prefix=config.topic_prefix,
        statement_prefix=config.statement_prefix,
        group_prefix=config.group_prefix,
        **config.tuning(),
    )
    pipeline = render_pipeline(settings)
    try:
        report: RolloutReport = rollout(
            flink, pipeline, verify_timeout_s=config.verify_timeout_s, on_event=context.log.info
        )
    except RolloutError as exc:
        raise dg.Failure(
            description=f"rollout of model {settings.model_version} failed: {exc}",
            metadata={
                "model_version": settings.model_version,
                "rendered_sql": dg.MetadataValue.md(f"```sql\n{pipeline.as_text()}```"),
            },
        ) from exc
    return dg.Output(
        report,
        metadata={
            "model_version": settings.model_version,
            "dialect": settings.dialect.value,
            "model_provider": settings.model_provider,
            "engine": flink.describe(),
            "statement_prefix": settings.statement_prefix,
            "statements": dg.MetadataValue.json(
                [
                    {
                        "name": s.name,
                        "role": s.role,
                        "phase": s.phase,
                        "job_id": s.job_id,
                        "action": s.action,
                        "replaced": s.replaced,
                    }
                    for s in report.statements
                ]
            ),
            "flink_job_ids": dg.MetadataValue.json({s.name: s.job_id for s in report.statements}),
            "stopped": report.stopped,
            "preflight": dg.MetadataValue.json(report.probe),
            "notes": dg.MetadataValue.text("\n".join(report.notes)),
            "rendered_sql": dg.MetadataValue.md(f"```sql\n{pipeline.as_text()}```"),
        },
    )

"""Streaming assets: the pipeline's Kafka topics and its Flink SQL statements (rolled out per model)."""


from typing import Any, Optional

import dagster as dg
from pydantic import Field

from lead_scoring.streaming.admin import ensure_topics
from lead_scoring.streaming.confluent import ConfluentFlinkResource
from lead_scoring.streaming.render import Dialect, RenderSettings, render_pipeline
from lead_scoring.streaming.resources import FlinkSqlGatewayResource, KafkaResource
from lead_scoring.streaming.rollout import RolloutError, engine_for, rollout
from lead_scoring.streaming.topics import TOPICS

GROUP = "streaming"
OWNERS = ["team:data-platform"]


class StreamingTopicsConfig(dg.Config):
    topic_prefix: str = Field(default="", description="prefix of every topic name (tests, side-by-side pipelines)")
    only_unowned: Optional[bool] = Field(
        default=None, description="create only the topics no Flink table owns (default: True on Confluent Cloud)")


@dg.asset(group_name=GROUP, kinds={"kafka"}, owners=OWNERS)
def streaming_topics(context: dg.AssetExecutionContext, config: StreamingTopicsConfig, kafka: KafkaResource,
                     flink: dg.ResourceParam[Any]) -> dg.MaterializeResult:
    """The pipeline's Kafka topics, created idempotently with the partitions, retention and cleanup of topics.py."""
    # In Confluent Cloud a Flink table owns its topic (CREATE TABLE creates it with the same TopicSpec);
    # only input_raw, written by the Salesforce source connector, is created here.
    confluent = isinstance(flink, ConfluentFlinkResource)
    only_unowned = config.only_unowned if config.only_unowned is not None else confluent
    specs = [t for t in TOPICS if t.name == "input_raw"] if only_unowned else list(TOPICS)
    states = ensure_topics(kafka.admin(), specs, prefix=config.topic_prefix)
    for st in states:
        context.log.info(f"topic {st.name}: {st.action} ({st.partitions} partitions, {st.config})")
    return dg.MaterializeResult(metadata={
        "topics": dg.MetadataValue.json({st.name: {"action": st.action, "partitions": st.partitions, **st.config}
                                         for st in states}),
        "created": [st.name for st in states if st.action == "created"],
        "bootstrap_servers": kafka.bootstrap_servers,
    })


class FlinkStatementsConfig(dg.Config):
    model_provider: str = Field(default="", description="local: kserve (default) or triton; gcp: vertexai")
    topic_prefix: str = Field(default="")
    statement_prefix: str = Field(default="lead-scoring")
    group_prefix: str = Field(default="lead-scoring")
    verify_timeout_s: float = Field(default=120.0, description="how long a new statement may take to run and produce")


def settings_for(deployment: dict[str, Any], config: FlinkStatementsConfig, kafka: KafkaResource,
                 confluent: bool) -> RenderSettings:
    """The rendering of this model deployment (`model_deployment`'s output) in the profile's dialect."""
    url = deployment["url"].rstrip("/")
    if confluent:
        endpoint = url  # the Vertex AI :predict URL, used by the connection
    elif (config.model_provider or "kserve") == "kserve":
        endpoint = f"{url}/v1/models/{deployment['model_name']}:predict"
    else:
        endpoint = url
    return RenderSettings(
        dialect=Dialect.CONFLUENT if confluent else Dialect.FLINK,
        model_version=deployment["version"], model_endpoint=endpoint, model_provider=config.model_provider,
        kafka_bootstrap=kafka.bootstrap_servers, topic_prefix=config.topic_prefix,
        statement_prefix=config.statement_prefix, group_prefix=config.group_prefix,
        server_model_name=deployment["model_name"],
    )


@dg.asset(group_name=GROUP, kinds={"flink"}, owners=OWNERS, deps=[streaming_topics],
          ins={"model_deployment": dg.AssetIn()})
def flink_statements(context: dg.AssetExecutionContext, config: FlinkStatementsConfig,
                     model_deployment: dict[str, Any], kafka: KafkaResource,
                     flink: dg.ResourceParam[Any]) -> dg.MaterializeResult:
    """The Flink SQL pipeline running the deployed model: new inference statements take over, old ones stop."""
    confluent = isinstance(flink, ConfluentFlinkResource)
    if not confluent and not isinstance(flink, FlinkSqlGatewayResource):
        raise dg.Failure(description=f"resource `flink` must be a FlinkSqlGatewayResource or a "
                                     f"ConfluentFlinkResource, got {type(flink).__name__}")
    settings = settings_for(model_deployment, config, kafka, confluent=confluent)
    pipeline = render_pipeline(settings)
    engine = engine_for(confluent_flink=flink if confluent else None, flink_sql=None if confluent else flink,
                        kafka=kafka, vertex_endpoint=settings.model_endpoint)
    try:
        report = rollout(engine, pipeline, verify_timeout_s=config.verify_timeout_s, on_event=context.log.info)
    except RolloutError as exc:
        raise dg.Failure(description=f"rollout of model {settings.model_version} failed: {exc}",
                         metadata={"model_version": settings.model_version,
                                   "rendered_sql": dg.MetadataValue.md(f"```sql\n{pipeline.as_text()}```")}) from exc
    return dg.MaterializeResult(metadata={
        "model_version": settings.model_version,
        "dialect": settings.dialect.value,
        "model_provider": settings.model_provider,
        "statements": dg.MetadataValue.json([
            {"name": s.name, "role": s.role, "phase": s.phase, "job_id": s.job_id, "action": s.action,
             "replaced": s.replaced} for s in report.statements]),
        "flink_job_ids": dg.MetadataValue.json({s.name: s.job_id for s in report.statements}),
        "stopped": report.stopped,
        "preflight": dg.MetadataValue.json(report.probe),
        "notes": dg.MetadataValue.text("\n".join(report.notes)),
        "rendered_sql": dg.MetadataValue.md(f"```sql\n{pipeline.as_text()}```"),
    })

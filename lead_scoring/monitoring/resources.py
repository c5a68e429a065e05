"""Thresholds and probe settings of the sensors and checks, as one resource (`monitoring`).

Defaults suit the local stack; each value can be overridden through an environment variable
LEAD_SCORING_<FIELD IN UPPER CASE> (e.g. LEAD_SCORING_LATENCY_SLO_S=5), parsed by pydantic-settings
(`lead_scoring.settings.env_overrides`) when the definitions are built.
"""

from __future__ import annotations

import dagster as dg
from pydantic import Field

from lead_scoring.crm.heartbeat import GROUP_IDS
from lead_scoring.monitoring.pipeline import DLQ_TOPIC, PIPELINE_CONSUMER_GROUPS, PIPELINE_TOPICS, SCORES_TOPIC
from lead_scoring.settings import Profile, env_overrides
from lead_scoring.streaming.topics import INPUT_RAW

WORKER_GROUP_IDS = frozenset(GROUP_IDS.values())
ENV_FIELDS = (
    "max_consumer_lag",
    "max_dlq_growth",
    "latency_slo_s",
    "probe_count",
    "probe_timeout_s",
    "kafka_timeout_s",
    "retrain_min_new_labels",
    "salesforce_probe",
)


class MonitoringSettings(dg.ConfigurableResource):
    """What the stream sensors watch and when they turn red."""

    topics: list[str] = Field(default_factory=lambda: list(PIPELINE_TOPICS), description="topics to observe")
    consumer_groups: list[str] = Field(
        default_factory=lambda: [g.group_id for g in PIPELINE_CONSUMER_GROUPS],
        description="consumer groups whose lag is checked",
    )
    group_topics: dict[str, list[str]] = Field(
        default_factory=lambda: {g.group_id: list(g.topics) for g in PIPELINE_CONSUMER_GROUPS},
        description="topics each group reads (so a group that never committed is still reported)",
    )
    dlq_topic: str = Field(default=DLQ_TOPIC)
    input_topic: str = Field(default=INPUT_RAW, description="where latency probes are produced")
    scores_topic: str = Field(default=SCORES_TOPIC, description="where latency probes' scores are awaited")
    scores_format: str = Field(
        default="json",
        pattern="^(json|avro-registry)$",
        description="value format of the scores topic: json (local, cluster) | "
        "avro-registry (Confluent Cloud, Schema Registry wire format)",
    )
    max_consumer_lag: int = Field(default=10_000, description="lag (messages) above which consumer_lag fails")
    max_dlq_growth: int = Field(
        default=50, description="new DLQ messages between two ticks above which dlq_growth fails"
    )
    latency_slo_s: float = Field(default=10.0, description="p50 and max probe latency must stay at or below this")
    probe_count: int = Field(default=5, ge=1, le=100, description="probe leads per latency measurement")
    probe_timeout_s: float = Field(default=30.0, description="how long to wait for the probes' scores")
    kafka_timeout_s: float = Field(
        default=5.0, description="admin request timeout; an unreachable broker skips the tick"
    )
    retrain_min_new_labels: int = Field(default=500, description="new labelled outcomes that trigger a retraining")
    salesforce_probe: bool = Field(
        default=False, description="gcp: also probe through Salesforce (create, await score, delete)"
    )


def monitoring_settings(profile: Profile) -> MonitoringSettings:
    """Defaults, overridden by LEAD_SCORING_* variables (read now, not at import time)."""
    values = env_overrides(MonitoringSettings, ENV_FIELDS)
    if profile is not Profile.GCP:
        values.pop("salesforce_probe", None)  # there is no Salesforce outside the gcp profile
    else:
        # Confluent Cloud's score tables are 'avro-registry' (streaming.render.table_specs)
        values["scores_format"] = "avro-registry"
        # the managed connectors replace the CRM workers there: their consumer groups never exist
        groups = [g for g in PIPELINE_CONSUMER_GROUPS if g.group_id not in WORKER_GROUP_IDS]
        values["consumer_groups"] = [g.group_id for g in groups]
        values["group_topics"] = {g.group_id: list(g.topics) for g in groups}
    return MonitoringSettings(**values)

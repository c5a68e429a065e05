"""Thresholds and probe settings of the sensors and checks, as one resource (`monitoring`).

Defaults suit the local stack; each value can be overridden when the definitions are built through
an environment variable (LEAD_SCORING_<FIELD IN UPPER CASE>, e.g. LEAD_SCORING_LATENCY_SLO_S=5).
"""

from __future__ import annotations

import os
from typing import Any, Optional

import dagster as dg
from pydantic import Field

from lead_scoring.monitoring.pipeline import DLQ_TOPIC, PIPELINE_CONSUMER_GROUPS, PIPELINE_TOPICS, SCORES_TOPIC
from lead_scoring.settings import ConfigurationError, Profile

ENV_PREFIX = "LEAD_SCORING_"


class MonitoringSettings(dg.ConfigurableResource):
    """What the stream sensors watch and when they turn red."""

    topics: list[str] = Field(default_factory=lambda: list(PIPELINE_TOPICS), description="topics to observe")
    consumer_groups: list[str] = Field(
        default_factory=lambda: [g.group_id for g in PIPELINE_CONSUMER_GROUPS],
        description="consumer groups whose lag is checked")
    group_topics: dict[str, list[str]] = Field(
        default_factory=lambda: {g.group_id: list(g.topics) for g in PIPELINE_CONSUMER_GROUPS},
        description="topics each group reads (so a group that never committed is still reported)")
    dlq_topic: str = Field(default=DLQ_TOPIC)
    input_topic: str = Field(default="input_raw", description="where latency probes are produced")
    scores_topic: str = Field(default=SCORES_TOPIC, description="where latency probes' scores are awaited")
    max_consumer_lag: int = Field(default=10_000, description="lag (messages) above which consumer_lag fails")
    max_dlq_growth: int = Field(default=50, description="new DLQ messages between two ticks above which dlq_growth fails")
    latency_slo_s: float = Field(default=10.0, description="p50 and max probe latency must stay at or below this")
    probe_count: int = Field(default=5, ge=1, le=100, description="probe leads per latency measurement")
    probe_timeout_s: float = Field(default=30.0, description="how long to wait for the probes' scores")
    kafka_timeout_s: float = Field(default=5.0, description="admin request timeout; an unreachable broker skips the tick")
    retrain_min_new_labels: int = Field(default=500, description="new labelled outcomes that trigger a retraining")
    salesforce_probe: bool = Field(default=False, description="gcp: also probe through Salesforce (create, await score, delete)")


def _from_env(field_name: str, kind: type) -> Optional[Any]:
    var = ENV_PREFIX + field_name.upper()
    raw = os.environ.get(var)
    if raw is None or raw.strip() == "":
        return None
    try:
        if kind is bool:
            return raw.strip().lower() in ("1", "true", "yes", "on")
        return kind(raw)
    except ValueError:
        raise ConfigurationError(f"{var}={raw!r} is not a valid {kind.__name__}") from None


def monitoring_settings(profile: Profile) -> MonitoringSettings:
    """Defaults, overridden by LEAD_SCORING_* variables (read now, not at import time)."""
    kinds = {"max_consumer_lag": int, "max_dlq_growth": int, "latency_slo_s": float, "probe_count": int,
             "probe_timeout_s": float, "kafka_timeout_s": float, "retrain_min_new_labels": int,
             "salesforce_probe": bool}
    values = {name: v for name, kind in kinds.items() if (v := _from_env(name, kind)) is not None}
    if profile is Profile.LOCAL:
        values.pop("salesforce_probe", None)  # there is no Salesforce in the local profile
    return MonitoringSettings(**values)


def resources_for_profile(profile: Profile) -> dict[str, Any]:
    return {"monitoring": monitoring_settings(profile)}

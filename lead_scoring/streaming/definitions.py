"""The streaming domain: topics, Flink statements, their lineage and healing; `kafka` and `flink` per profile."""

from __future__ import annotations

import dagster as dg

from lead_scoring.settings import ClusterSettings, Profile, load
from lead_scoring.stack.config import StackConfig
from lead_scoring.streaming.assets import flink_statements, streaming_topics
from lead_scoring.streaming.confluent import ConfluentFlink
from lead_scoring.streaming.engine import FlinkEngine
from lead_scoring.streaming.gateway import SqlGatewayFlink
from lead_scoring.streaming.healing import local_engine
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lineage import topic_specs
from lead_scoring.streaming.sensors import flink_statements_sensor, restore_statements_job, statements_running


def kafka(profile: Profile) -> KafkaResource:
    if profile is Profile.GCP:
        return KafkaResource.confluent_cloud()
    if profile is Profile.CLUSTER:
        return KafkaResource.cluster(load(ClusterSettings))
    return KafkaResource.local(StackConfig.from_env())


def flink(profile: Profile) -> FlinkEngine:
    if profile is Profile.GCP:
        return ConfluentFlink.from_env()
    if profile is Profile.CLUSTER:
        settings = load(ClusterSettings)
        return SqlGatewayFlink(
            url=settings.sql_gateway_url,
            flink_rest_url=settings.flink_rest_url,
            kafka=kafka(profile),
            parallelism=settings.flink_parallelism,
        )
    return local_engine(StackConfig.from_env())


def defs(profile: Profile) -> dg.Definitions:
    return dg.Definitions(
        assets=[streaming_topics, flink_statements, *topic_specs()],
        asset_checks=[statements_running],
        jobs=[restore_statements_job],
        sensors=[flink_statements_sensor],
        resources={"kafka": kafka(profile), "flink": flink(profile)},
    )

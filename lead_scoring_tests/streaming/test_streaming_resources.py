"""The streaming resources point at the local stack by default and at Confluent Cloud in gcp."""

from __future__ import annotations

import pytest

from lead_scoring.settings import Profile
from lead_scoring.streaming.definitions import flink, kafka
from lead_scoring.streaming.gateway import SqlGatewayFlink
from lead_scoring.streaming.kafka import KafkaResource


def test_local_profile_points_at_the_stack_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEAD_SCORING_KAFKA_PORT", "19092")
    monkeypatch.setenv("LEAD_SCORING_SQL_GATEWAY_PORT", "18083")
    res = {"kafka": kafka(Profile.LOCAL), "flink_sql": flink(Profile.LOCAL)}
    assert isinstance(res["kafka"], KafkaResource)
    assert res["kafka"].client_config() == {
        "bootstrap.servers": "127.0.0.1:19092",
        "security.protocol": "PLAINTEXT",
        "client.id": "lead-scoring",
    }
    assert isinstance(res["flink_sql"], SqlGatewayFlink)
    assert res["flink_sql"].url == "http://127.0.0.1:18083"
    assert res["flink_sql"].flink_rest_url == "http://127.0.0.1:8081"


def test_gcp_profile_uses_sasl_ssl_with_the_api_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONFLUENT_BOOTSTRAP_SERVERS", "pkc-123.europe-west1.gcp.confluent.cloud:9092")
    monkeypatch.setenv("CONFLUENT_KAFKA_API_KEY", "KEY123")
    monkeypatch.setenv("CONFLUENT_KAFKA_API_SECRET", "s3cret")
    resource = kafka(Profile.GCP)
    # EnvVar values are resolved when Dagster initializes the resource, never stored in config.
    conf = resource.process_config_and_initialize().client_config()
    assert conf == {
        "bootstrap.servers": "pkc-123.europe-west1.gcp.confluent.cloud:9092",
        "security.protocol": "SASL_SSL",
        "client.id": "lead-scoring",
        "sasl.mechanism": "PLAIN",
        "sasl.username": "KEY123",
        "sasl.password": "s3cret",
    }

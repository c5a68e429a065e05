"""The `cluster` profile: settings from the environment (errors name the variable and the fix), the resources
built from them (nothing started, no secret in config or SQL), and the rendering that reaches every replica.

The profile on a real multi-node topology is `lead_scoring_tests/stack/test_cluster_stack.py`.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from lead_scoring.serving.cluster import ClusterModelServing
from lead_scoring.serving.definitions import model_serving
from lead_scoring.serving.deployment import DeploymentError
from lead_scoring.settings import ClusterSettings, ConfigurationError, Profile, load
from lead_scoring.stack.catalog import Catalog, infrastructure
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import Layout
from lead_scoring.stack.kafka import KafkaService
from lead_scoring.streaming.definitions import flink, kafka
from lead_scoring.streaming.engine import render_settings_for
from lead_scoring.streaming.gateway import SqlGatewayFlink
from lead_scoring.streaming.render import StatementRole, render_pipeline

CLUSTER_ENV = {
    "LEAD_SCORING_PROFILE": "cluster",
    "LEAD_SCORING_KAFKA_BOOTSTRAP_SERVERS": "kafka-1:9092, kafka-2:9092,kafka-3:9092",
    "LEAD_SCORING_SQL_GATEWAY_URL": "http://flink-gateway:8083/",
    "LEAD_SCORING_FLINK_REST_URL": "http://flink-jm:8081",
    "LEAD_SCORING_MODEL_ENDPOINTS": "http://model-1:8080, http://model-2:8080/",
    "LEAD_SCORING_FLINK_PARALLELISM": "4",
    "LEAD_SCORING_TOPIC_PARTITIONS": "12",
}


@pytest.fixture
def cluster_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for key, value in CLUSTER_ENV.items():
        monkeypatch.setenv(key, value)
    return CLUSTER_ENV


def test_settings_come_from_the_environment(cluster_env: dict[str, str]) -> None:
    s = load(ClusterSettings)
    assert s.kafka_bootstrap_servers == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert s.sql_gateway_url == "http://flink-gateway:8083"
    assert s.endpoints == ["http://model-1:8080", "http://model-2:8080"]
    assert (s.flink_parallelism, s.topic_partitions) == (4, 12)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"LEAD_SCORING_MODEL_ENDPOINTS": "model-1:8080"}, ["LEAD_SCORING_MODEL_ENDPOINTS", "http://model-1:8080"]),
        ({"LEAD_SCORING_KAFKA_BOOTSTRAP_SERVERS": "kafka-1"}, ["LEAD_SCORING_KAFKA_BOOTSTRAP_SERVERS", "host:port"]),
        (
            {"LEAD_SCORING_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"},
            ["LEAD_SCORING_KAFKA_SASL_MECHANISM", "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"],
        ),
        ({"LEAD_SCORING_KAFKA_SASL_MECHANISM": "PLAIN"}, ["LEAD_SCORING_KAFKA_SECURITY_PROTOCOL=SASL_SSL"]),
        ({"LEAD_SCORING_KAFKA_SECURITY_PROTOCOL": "TLS"}, ["LEAD_SCORING_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT"]),
        ({"LEAD_SCORING_FLINK_PARALLELISM": "0"}, ["LEAD_SCORING_FLINK_PARALLELISM", "greater than or equal to 1"]),
        ({"LEAD_SCORING_SQL_GATEWAY_URL": "flink:8083"}, ["LEAD_SCORING_SQL_GATEWAY_URL", "http(s) URL"]),
    ],
)
def test_a_bad_setting_names_the_variable_and_the_fix(
    cluster_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, env: dict[str, str], names: list[str]
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ConfigurationError) as err:
        load(ClusterSettings)
    for name in names:
        assert name in str(err.value)


def test_resources_drive_the_existing_cluster(cluster_env: dict[str, str]) -> None:
    kafka_res, flink_res, serving = kafka(Profile.CLUSTER), flink(Profile.CLUSTER), model_serving(Profile.CLUSTER)
    assert kafka_res.client_config()["bootstrap.servers"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
    assert kafka_res.topic_partitions == 12
    assert isinstance(flink_res, SqlGatewayFlink)
    assert (flink_res.url, flink_res.flink_rest_url, flink_res.parallelism) == (
        "http://flink-gateway:8083",
        "http://flink-jm:8081",
        4,
    )
    assert isinstance(serving, ClusterModelServing)
    assert serving.urls == ["http://model-1:8080", "http://model-2:8080"]
    assert "2 model-server replica(s)" in serving.describe()


def test_sasl_credentials_come_from_env_vars_and_never_reach_the_sql(
    cluster_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEAD_SCORING_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("LEAD_SCORING_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("LEAD_SCORING_KAFKA_SSL_CA_LOCATION", "/etc/kafka/ca.pem")
    monkeypatch.delenv("LEAD_SCORING_KAFKA_SASL_USERNAME", raising=False)
    monkeypatch.delenv("LEAD_SCORING_KAFKA_SASL_PASSWORD", raising=False)
    resource = kafka(Profile.CLUSTER)
    # a missing credential is named when Dagster initializes the resource
    with pytest.raises(Exception, match="LEAD_SCORING_KAFKA_SASL_USERNAME|LEAD_SCORING_KAFKA_SASL_PASSWORD"):
        dg.build_resources({"kafka": resource}).__enter__()
    monkeypatch.setenv("LEAD_SCORING_KAFKA_SASL_USERNAME", "svc-leads")
    monkeypatch.setenv("LEAD_SCORING_KAFKA_SASL_PASSWORD", "hunter2-secret")
    with dg.build_resources({"kafka": resource}) as built:
        conf = built.kafka.client_config()
        assert (conf["sasl.username"], conf["sasl.password"]) == ("svc-leads", "hunter2-secret")
        settings = render_settings_for(
            flink(Profile.CLUSTER),
            built.kafka,
            url="http://model-1:8080,http://model-2:8080",
            model_name="lead_scorer",
            version="m1",
        )
    text = render_pipeline(settings).as_text()
    assert "'properties.security.protocol' = 'SASL_SSL'" in text
    assert "'properties.sasl.mechanism' = 'SCRAM-SHA-512'" in text
    assert "'properties.ssl.truststore.location' = '/etc/kafka/ca.pem'" in text
    assert "hunter2-secret" not in text and "svc-leads" not in text


def test_rendered_model_reaches_every_replica_with_the_cluster_parallelism(cluster_env: dict[str, str]) -> None:
    settings = render_settings_for(
        flink(Profile.CLUSTER),
        kafka(Profile.CLUSTER),
        url="http://model-1:8080,http://model-2:8080/",
        model_name="lead_scorer",
        version="m20260101-000000-abcdef",
    )
    pipeline = render_pipeline(settings)
    assert (
        "'endpoint' = 'http://model-1:8080/v1/models/lead_scorer:predict,"
        "http://model-2:8080/v1/models/lead_scorer:predict'"
    ) in pipeline.model_sql
    assert "'properties.bootstrap.servers' = 'kafka-1:9092,kafka-2:9092,kafka-3:9092'" in pipeline.as_text()
    assert set(pipeline.statements) == {
        StatementRole.VALIDATE,
        StatementRole.SPLIT,
        StatementRole.SCORE_LEADS,
        StatementRole.SCORE_CONTACTS,
    }
    assert {st.parallelism for st in pipeline.statements.values()} == {4}


def test_local_rendering_keeps_one_endpoint_and_its_parallelism() -> None:
    engine = SqlGatewayFlink(
        url="http://127.0.0.1:8083", flink_rest_url="http://127.0.0.1:8081", kafka=kafka(Profile.LOCAL)
    )
    pipeline = render_pipeline(
        render_settings_for(engine, engine.kafka, url="http://127.0.0.1:8080", model_name="lead_scorer", version="m1")
    )
    assert "'endpoint' = 'http://127.0.0.1:8080/v1/models/lead_scorer:predict'" in pipeline.model_sql
    assert pipeline.statements[StatementRole.VALIDATE].parallelism == 2
    assert pipeline.statements[StatementRole.SCORE_LEADS].parallelism == 1


def test_deploying_to_unreachable_replicas_changes_nothing_and_names_them() -> None:
    serving = ClusterModelServing(endpoints="http://127.0.0.1:9,http://127.0.0.1:7")
    with pytest.raises(DeploymentError, match=r"127\.0\.0\.1:9, http://127\.0\.0\.1:7 not serving"):
        serving.deploy(artifact=None, expected=None)  # type: ignore[arg-type]  # fails before either is read


def test_no_replica_configured_names_the_variable() -> None:
    with pytest.raises(DeploymentError, match="LEAD_SCORING_MODEL_ENDPOINTS"):
        ClusterModelServing(endpoints=" , ").describe()


def test_a_topology_describes_brokers_taskmanagers_and_replicas(tmp_path: Path) -> None:
    cfg = StackConfig.isolated(tmp_path, kafka_brokers=3, taskmanagers=2, model_replicas=2)
    assert infrastructure(cfg) == [
        "kafka",
        "kafka-2",
        "kafka-3",
        "jobmanager",
        "taskmanager",
        "taskmanager-2",
        "sql-gateway",
    ]
    assert len(cfg.kafka_bootstrap.split(",")) == 3 and len(set(cfg.model_urls)) == 2
    ports = [p for n in infrastructure(cfg) for p in Catalog(cfg)[n].ports()]
    assert len(ports) == len(set(ports)) == 3 * 2 + 2 + 1  # every broker's own ports (all three are controllers)
    for node in (1, 2, 3):
        props = dict(
            line.split("=", 1)
            for line in KafkaService(cfg, Layout(cfg.cache), node).write_config().read_text().splitlines()
        )
        assert props["node.id"] == str(node)
        assert props["process.roles"] == "broker,controller"
        assert len(props["controller.quorum.voters"].split(",")) == 3
        assert (props["default.replication.factor"], props["min.insync.replicas"]) == ("3", "2")


def test_under_three_brokers_the_first_is_the_only_controller(tmp_path: Path) -> None:
    cfg = StackConfig.isolated(tmp_path, kafka_brokers=2)
    second = dict(
        line.split("=", 1) for line in KafkaService(cfg, Layout(cfg.cache), 2).write_config().read_text().splitlines()
    )
    assert second["process.roles"] == "broker"
    assert second["controller.quorum.voters"] == f"1@127.0.0.1:{cfg.kafka_controller_port}"
    assert "CONTROLLER://" not in second["listeners"]
    assert second["default.replication.factor"] == "2"


def test_the_single_node_stack_is_unchanged(tmp_path: Path) -> None:
    cfg = StackConfig.isolated(tmp_path)
    assert infrastructure(cfg) == ["kafka", "jobmanager", "taskmanager", "sql-gateway"]
    assert cfg.kafka_bootstrap == f"127.0.0.1:{cfg.kafka_port}" and cfg.model_urls == [cfg.model_url]
    props = dict(
        line.split("=", 1) for line in KafkaService(cfg, Layout(cfg.cache)).write_config().read_text().splitlines()
    )
    assert props["default.replication.factor"] == "1"
    assert props["controller.quorum.voters"] == f"1@127.0.0.1:{cfg.kafka_controller_port}"

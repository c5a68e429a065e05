"""Kafka clients (confluent-kafka) for the local broker, an existing cluster, or Confluent Cloud."""

from __future__ import annotations

from typing import Any, Optional

import dagster as dg
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from pydantic import Field

from lead_scoring.settings import ClusterSettings
from lead_scoring.stack.config import StackConfig


class KafkaResource(dg.ConfigurableResource):
    """Kafka clients (confluent-kafka) for the local broker, an existing cluster or Confluent Cloud."""

    bootstrap_servers: str = Field(description="host:port[,host:port]")
    security_protocol: str = Field(default="PLAINTEXT", description="PLAINTEXT locally, SASL_SSL on Confluent Cloud")
    sasl_mechanism: Optional[str] = Field(default=None, description="PLAIN on Confluent Cloud")
    api_key: Optional[str] = Field(default=None, description="Confluent Cloud API key (sasl.username)")
    api_secret: Optional[str] = Field(default=None, description="Confluent Cloud API secret (sasl.password)")
    client_id: str = Field(default="lead-scoring", description="client.id sent to the brokers")
    ssl_ca_location: Optional[str] = Field(default=None, description="CA bundle that signed the brokers' certificates")
    topic_partitions: Optional[int] = Field(
        default=None, ge=1, description="partitions of the pipeline's topics (None: topics.py)"
    )

    @classmethod
    def local(cls, cfg: StackConfig) -> KafkaResource:
        return cls(bootstrap_servers=cfg.kafka_bootstrap)

    @classmethod
    def confluent_cloud(cls) -> KafkaResource:
        return cls(
            bootstrap_servers=dg.EnvVar("CONFLUENT_BOOTSTRAP_SERVERS"),
            security_protocol="SASL_SSL",
            sasl_mechanism="PLAIN",
            api_key=dg.EnvVar("CONFLUENT_KAFKA_API_KEY"),
            api_secret=dg.EnvVar("CONFLUENT_KAFKA_API_SECRET"),
        )

    @classmethod
    def cluster(cls, settings: ClusterSettings) -> KafkaResource:
        """An existing cluster: TLS/SASL as the settings say, credentials from LEAD_SCORING_KAFKA_SASL_*."""
        credentials = {}
        if settings.kafka_sasl_mechanism:
            credentials = {
                "api_key": dg.EnvVar("LEAD_SCORING_KAFKA_SASL_USERNAME"),
                "api_secret": dg.EnvVar("LEAD_SCORING_KAFKA_SASL_PASSWORD"),
            }
        return cls(
            bootstrap_servers=settings.kafka_bootstrap_servers,
            security_protocol=settings.kafka_security_protocol,
            sasl_mechanism=settings.kafka_sasl_mechanism,
            ssl_ca_location=settings.kafka_ssl_ca_location,
            topic_partitions=settings.topic_partitions,
            **credentials,
        )

    def flink_properties(self) -> dict[str, str]:
        """What Flink's Kafka connector needs beyond the bootstrap servers (rendered as `properties.*`).

        Never a secret: with SASL, the Flink cluster holds the credentials itself (a JAAS file with a
        `KafkaClient` section, `-Djava.security.auth.login.config` in env.java.opts.taskmanager), so they
        appear in no SQL, statement property or log."""
        props: dict[str, str] = {}
        if self.security_protocol != "PLAINTEXT":
            props["security.protocol"] = self.security_protocol
        if self.sasl_mechanism:
            props["sasl.mechanism"] = self.sasl_mechanism
        if self.ssl_ca_location:
            props["ssl.truststore.type"] = "PEM"
            props["ssl.truststore.location"] = self.ssl_ca_location
        return props

    def client_config(self) -> dict[str, Any]:
        """The librdkafka settings every client shares (credentials included; never log this)."""
        conf: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
        }
        if self.sasl_mechanism:
            conf["sasl.mechanism"] = self.sasl_mechanism
        if self.api_key:
            conf["sasl.username"] = self.api_key
        if self.api_secret:
            conf["sasl.password"] = self.api_secret
        if self.ssl_ca_location:
            conf["ssl.ca.location"] = self.ssl_ca_location
        return conf

    def producer(self, **overrides: Any) -> Producer:
        """An idempotent producer (acks=all): no duplicates or reordering on retry."""
        conf = {**self.client_config(), "enable.idempotence": True, "acks": "all", "linger.ms": 5}
        conf.update(overrides)
        return Producer(conf)

    def consumer(self, group_id: str, **overrides: Any) -> Consumer:
        """A consumer in `group_id` that starts from the earliest offset and commits manually."""
        conf = {
            **self.client_config(),
            "group.id": group_id,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
        conf.update(overrides)
        return Consumer(conf)

    def admin(self, **overrides: Any) -> AdminClient:
        return AdminClient({**self.client_config(), **overrides})

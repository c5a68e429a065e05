"""The local Kafka broker: one KRaft node (broker + controller) from the Maven Central jars."""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import Layout, StackError
from lead_scoring.stack.ports import port_open
from lead_scoring.stack.spec import ServiceSpec

log = logging.getLogger(__name__)

KAFKA = "kafka"

# The JVM flags kafka-run-class.sh uses for the broker.
KAFKA_JVM_OPTS = [
    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
]

LOG4J2_CONSOLE = """\
# Written by `lead-scoring stack up`; stdout of the process is its log file.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yyyy-MM-dd HH:mm:ss,SSS}} %-5p %c{{1}} - %m%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
{extra}
"""

_KAFKA_LOGGERS = """\
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""


def kafka_health(bootstrap: str) -> str | None:
    """None when the broker answers a metadata request with itself as a live broker."""
    host, port = bootstrap.rsplit(":", 1)
    if not port_open(host, int(port)):
        return f"nothing listens on {bootstrap} yet"
    # log_level 0: a broker that is still starting is expected, not an error worth printing.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "socket.timeout.ms": 2000})
    try:
        md = admin.list_topics(timeout=3)
    except KafkaException as exc:  # while the controller is electing itself
        return f"metadata request failed: {exc}"
    if not md.brokers:
        return "metadata lists no broker"
    return None


def new_cluster_id() -> str:
    """A Kafka cluster id: a base64url-encoded UUID without padding. Like Kafka's own Uuid.randomUuid(),
    never one starting with "-", which kafka-storage's argument parser would take for an option (1 in 64
    formats failed with "argument --cluster-id/-t: expected one argument")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class KafkaService:
    """Writes the broker's config, formats its storage once, and says how to run it."""

    def __init__(self, cfg: StackConfig, layout: Layout):
        self.cfg = cfg
        self.layout = layout

    @property
    def dir(self) -> Path:
        return self.cfg.state / "kafka"

    def write_config(self) -> Path:
        c = self.cfg
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A static voter set (not `--standalone`): the controller port can change between runs.
            "controller.quorum.voters": f"1@{c.host}:{c.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{c.host}:{c.kafka_port},CONTROLLER://{c.host}:{c.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{c.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            # Fewer threads than the defaults: one local client set, two cores.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "log.retention.hours": "168",
        }
        path = self.dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.dir / "log4j2.properties").write_text(LOG4J2_CONSOLE.format(extra=_KAFKA_LOGGERS))
        return path

    def java(self) -> list[str]:
        return [
            "java", f"-Xms{self.cfg.kafka_heap}", f"-Xmx{self.cfg.kafka_heap}", *KAFKA_JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp", self.layout.kafka_classpath(),
        ]

    def format_storage(self, server_properties: Path) -> None:
        """Format the KRaft log dir once; later starts reuse it, which is what keeps data across up/down."""
        if (self.dir / "data" / "meta.properties").is_file():
            return
        cluster_id = new_cluster_id()
        cmd = [*self.java(), "kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(server_properties)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(
                "formatting the Kafka storage failed; fix the cause below or wipe it with "
                f"`lead-scoring stack reset`:\n{(proc.stdout + proc.stderr)[-2000:]}"
            )
        log.info("formatted Kafka storage (cluster id %s)", cluster_id)

    def spec(self) -> ServiceSpec:
        props = self.write_config()
        self.format_storage(props)
        c = self.cfg
        return ServiceSpec(
            KAFKA, f"kafka://{c.kafka_bootstrap}", [*self.java(), "kafka.Kafka", str(props)],
            lambda: kafka_health(c.kafka_bootstrap),
            ports={c.kafka_port: "LEAD_SCORING_KAFKA_PORT", c.kafka_controller_port: "LEAD_SCORING_KAFKA_CONTROLLER_PORT"},
            cwd=self.dir,
        )

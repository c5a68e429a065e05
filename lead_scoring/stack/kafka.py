"""The local Kafka: one KRaft node (broker + controller) from the Maven Central jars, or N brokers on loopback.

A multi-node topology (`StackConfig.kafka_brokers`) runs one service per broker (`kafka`, `kafka-2`, ...),
all formatted with one cluster id; the first three nodes (or the first alone, under three brokers) are
also the controller quorum, the others are brokers only.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from pathlib import Path

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from lead_scoring.stack.atomic import write_atomically
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import Layout, StackError
from lead_scoring.stack.ports import port_open
from lead_scoring.stack.spec import ServiceSpec

log = logging.getLogger(__name__)

KAFKA = "kafka"

# The JVM flags kafka-run-class.sh uses for the broker.
KAFKA_JVM_OPTS = [
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-XX:MaxInlineLevel=15",
    "-Djava.awt.headless=true",
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


def broker_name(node: int) -> str:
    """The stack service of Kafka node `node` (1-based): `kafka`, `kafka-2`, ..."""
    return KAFKA if node == 1 else f"{KAFKA}-{node}"


def kafka_health(bootstrap: str, node_id: int | None = None) -> str | None:
    """None when the broker answers a metadata request with itself (`node_id`, when given) as a live broker."""
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
    if node_id is not None and node_id not in md.brokers:
        return f"broker {node_id} not registered yet (live: {sorted(md.brokers)})"
    return None


def new_cluster_id() -> str:
    """A Kafka cluster id: a base64url-encoded UUID without padding. Like Kafka's own Uuid.randomUuid(),
    never one starting with "-", which kafka-storage's argument parser would take for an option (1 in 64
    formats failed with "argument --cluster-id/-t: expected one argument")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def cluster_id(cfg: StackConfig) -> str:
    """The one cluster id every node of this stack is formatted with (node 1's, once it has one)."""
    path = cfg.state / "kafka-cluster-id"
    if path.is_file():
        return path.read_text().strip()
    meta = cfg.state / "kafka" / "data" / "meta.properties"  # a stack formatted before topologies existed
    found = None
    if meta.is_file():
        found = next(
            (ln.split("=", 1)[1].strip() for ln in meta.read_text().splitlines() if ln.startswith("cluster.id=")), None
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(found or new_cluster_id())
    return path.read_text().strip()


class KafkaService:
    """Writes one broker's config, formats its storage once, and says how to run it."""

    def __init__(self, cfg: StackConfig, layout: Layout, node: int = 1):
        self.cfg = cfg
        self.layout = layout
        self.node = node
        self.name = broker_name(node)

    @property
    def dir(self) -> Path:
        return self.cfg.state / self.name

    @property
    def bootstrap(self) -> str:
        return self.cfg.broker_bootstrap(self.node)

    def write_config(self) -> Path:
        c = self.cfg
        data = self.dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        port, controller_port = c.broker_ports(self.node)
        controller = self.node <= c.kafka_controllers
        # A static voter set (not `--standalone`): the controller ports can change between runs.
        voters = ",".join(f"{n}@{c.host}:{c.broker_ports(n)[1]}" for n in range(1, c.kafka_controllers + 1))
        listeners = f"PLAINTEXT://{c.host}:{port}" + (f",CONTROLLER://{c.host}:{controller_port}" if controller else "")
        rf = str(c.replication_factor)
        min_isr = "2" if c.replication_factor >= 3 else "1"
        props = {
            "process.roles": "broker,controller" if controller else "broker",
            "node.id": str(self.node),
            "controller.quorum.voters": voters,
            "listeners": listeners,
            "advertised.listeners": f"PLAINTEXT://{c.host}:{port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "default.replication.factor": rf,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": rf,
            "transaction.state.log.replication.factor": rf,
            "transaction.state.log.min.isr": min_isr,
            "share.coordinator.state.topic.replication.factor": rf,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            # Fewer threads than the defaults: one local client set, two cores.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "log.retention.hours": "168",
        }
        path = self.dir / "server.properties"
        write_atomically(path, "".join(f"{k}={v}\n" for k, v in props.items()))
        write_atomically(self.dir / "log4j2.properties", LOG4J2_CONSOLE.format(extra=_KAFKA_LOGGERS))
        return path

    def java(self) -> list[str]:
        return [
            "java",
            f"-Xms{self.cfg.kafka_heap}",
            f"-Xmx{self.cfg.kafka_heap}",
            *KAFKA_JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.dir / 'log4j2.properties'}",
            "-cp",
            self.layout.kafka_classpath(),
        ]

    def format_storage(self, server_properties: Path) -> None:
        """Format the KRaft log dir once; later starts reuse it, which is what keeps data across up/down."""
        if (self.dir / "data" / "meta.properties").is_file():
            return
        cid = cluster_id(self.cfg)
        cmd = [*self.java(), "kafka.tools.StorageTool", "format", "-t", cid, "-c", str(server_properties)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise StackError(
                "formatting the Kafka storage failed; fix the cause below or wipe it with "
                f"`lead-scoring stack reset`:\n{(proc.stdout + proc.stderr)[-2000:]}"
            )
        log.info("formatted Kafka storage of %s (cluster id %s)", self.name, cid)

    def health(self) -> str | None:
        # multi-node: this broker must be registered with the controller, not only listening
        return kafka_health(self.bootstrap, self.node if self.cfg.kafka_brokers > 1 else None)

    def ports(self) -> dict[int, str]:
        port, controller_port = self.cfg.broker_ports(self.node)
        if self.node == 1:
            return {port: "LEAD_SCORING_KAFKA_PORT", controller_port: "LEAD_SCORING_KAFKA_CONTROLLER_PORT"}
        out = {port: "LEAD_SCORING_EXTRA_KAFKA_PORTS"}
        if self.node <= self.cfg.kafka_controllers:
            out[controller_port] = "LEAD_SCORING_EXTRA_KAFKA_CONTROLLER_PORTS"
        return out

    def spec(self) -> ServiceSpec:
        props = self.write_config()
        self.format_storage(props)
        return ServiceSpec(
            self.name,
            f"kafka://{self.bootstrap}",
            [*self.java(), "kafka.Kafka", str(props)],
            self.health,
            ports=self.ports(),
            cwd=self.dir,
        )

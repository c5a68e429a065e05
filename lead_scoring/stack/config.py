"""Ports, memory sizes and folders of the local stack (Kafka + Flink + SQL Gateway + model server + workers).

Defaults follow the ARCHITECTURE ports and fit a 2-core / 24 GiB machine with room for Dagster. Every
value can be overridden by an environment variable, read when `StackConfig.from_env()` is called (never
at import time), e.g. LEAD_SCORING_KAFKA_PORT=19092; explicit keyword arguments win over both.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from lead_scoring.settings import (
    ALLOW_NON_LOOPBACK_ENV_VAR,
    DEFAULT_MODEL_NAME,
    ENV_PREFIX,
    load,
    project_root,
    security_settings,
    state_dir,
)
from lead_scoring.stack.ports import free_ports

KAFKA_VERSION = "4.4.0"
FLINK_VERSION = "2.3.0"


def _env(name: str) -> Any:
    """A field read from exactly this variable (names that do not follow LEAD_SCORING_<FIELD>)."""
    return AliasChoices(name)


class StackConfig(BaseSettings):
    """Everything `stack up` needs to know; frozen so a running stack's view cannot drift."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, extra="ignore", frozen=True, populate_by_name=True, env_ignore_empty=True
    )

    host: str = Field(default="127.0.0.1", validation_alias=_env("LEAD_SCORING_STACK_HOST"))
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    flink_rest_port: int = 8081
    flink_rpc_port: int = 6123
    sql_gateway_port: int = 8083
    model_port: int = 8080
    # Heap of the broker JVM; Kafka's own default (1g) is more than a single local node needs.
    kafka_heap: str = "512m"
    # Total process sizes, as Flink counts them (heap + metaspace + overhead + network + managed).
    jobmanager_memory: str = Field(default="800m", validation_alias=_env("LEAD_SCORING_FLINK_JM_MEMORY"))
    taskmanager_memory: str = Field(default="1536m", validation_alias=_env("LEAD_SCORING_FLINK_TM_MEMORY"))
    sql_gateway_heap: str = "384m"
    # The pipeline runs about half a dozen statements at parallelism 1; each needs one slot.
    task_slots: int = Field(default=8, validation_alias=_env("LEAD_SCORING_FLINK_SLOTS"))
    checkpoint_interval: str = Field(default="10s", validation_alias=_env("LEAD_SCORING_FLINK_CHECKPOINT_INTERVAL"))
    start_timeout_s: float = Field(default=120.0, validation_alias=_env("LEAD_SCORING_STACK_START_TIMEOUT"))
    stop_timeout_s: float = Field(default=30.0, validation_alias=_env("LEAD_SCORING_STACK_STOP_TIMEOUT"))
    # A service that dies is restarted after 1 s, then 2, 4 ... up to this; a minute healthy resets it.
    restart_backoff_max_s: float = 60.0
    model_name: str = DEFAULT_MODEL_NAME
    # The model the local model server loads; None: the production version of the local store, if any.
    model_artifact: str | None = Field(default=None, validation_alias=_env("LEAD_SCORING_MODEL_URI"))
    # Synthetic leads per second of the optional `demo-leads` service (scripts/up starts it).
    demo_rate: float = 5.0
    # ---- topology: how many of each node the stack runs (1/1/1: the single-node stack) -------------------
    # A multi-node topology on loopback is a small stand-in for the user's own cluster (the `cluster`
    # profile drives it like any other): N Kafka brokers (KRaft; the first three are also the controller
    # quorum, one controller when N < 3), N Flink TaskManagers, N model-server replicas.
    kafka_brokers: int = Field(default=1, ge=1, le=9, validation_alias=_env("LEAD_SCORING_KAFKA_BROKERS"))
    taskmanagers: int = Field(default=1, ge=1, le=9, validation_alias=_env("LEAD_SCORING_FLINK_TASKMANAGERS"))
    model_replicas: int = Field(default=1, ge=1, le=9, validation_alias=_env("LEAD_SCORING_MODEL_REPLICAS"))
    # Ports of brokers / replicas after the first (default: kafka_port + 2i, kafka_controller_port + 2i,
    # model_port + 10i); `isolated()` picks free ones.
    extra_kafka_ports: tuple[int, ...] = ()
    extra_kafka_controller_ports: tuple[int, ...] = ()
    extra_model_ports: tuple[int, ...] = ()
    # Replication of the pipeline's topics and Kafka's internal ones; None: min(3, brokers).
    kafka_replication_factor: int | None = Field(
        default=None, ge=1, validation_alias=_env("LEAD_SCORING_KAFKA_REPLICATION_FACTOR")
    )
    # Tests set this: the services get SIGTERM when the process that started them dies, even by
    # SIGKILL or abort, so a crashed test session leaves no JVM behind. The CLI leaves it off.
    die_with_parent: bool = Field(default=False, exclude=False)
    state_root: Path | None = Field(default=None, validation_alias=_env("LEAD_SCORING_HOME"))
    cache_root: Path | None = Field(default=None, validation_alias=_env("LEAD_SCORING_STACK_CACHE"))

    @field_validator("host")
    @classmethod
    def _loopback_unless_allowed(cls, value: str) -> str:
        """Kafka, Flink's REST API and SQL Gateway and the model server have no authentication in the local
        stack: off loopback, anyone on the network could read the leads or run SQL. Only on purpose."""
        if is_loopback(value) or security_settings().allow_non_loopback:
            return value
        raise ValueError(
            f"{value} is not a loopback address: every service of the local stack (Kafka, Flink REST, "
            f"SQL Gateway, model server) would listen there without authentication. Use 127.0.0.1, "
            f"or set {ALLOW_NON_LOOPBACK_ENV_VAR}=1 to bind it anyway (docs/security.md)"
        )

    @classmethod
    def from_env(cls, **overrides: Any) -> StackConfig:
        """Defaults, then environment variables, then explicit keyword overrides."""
        return load(cls, **overrides)

    @classmethod
    def isolated(cls, state_root: Path, **overrides: Any) -> StackConfig:
        """A stack on free ports under `state_root`, tied to the process that starts it (tests, benchmarks):
        it never meets a developer's own `lead-scoring stack up`, and dies with its starter.

        With `kafka_brokers` / `model_replicas` overrides, every broker and replica gets free ports too."""
        brokers = int(overrides.get("kafka_brokers") or 1)
        replicas = int(overrides.get("model_replicas") or 1)
        kafka, controller, rest, rpc, gateway, model, *extra = free_ports(6 + 2 * (brokers - 1) + (replicas - 1))
        extra_brokers, extra_models = extra[: 2 * (brokers - 1)], extra[2 * (brokers - 1) :]
        return cls.from_env(
            **{
                "kafka_port": kafka,
                "kafka_controller_port": controller,
                "flink_rest_port": rest,
                "flink_rpc_port": rpc,
                "sql_gateway_port": gateway,
                "model_port": model,
                "start_timeout_s": 180.0,
                "die_with_parent": True,
                "extra_kafka_ports": tuple(extra_brokers[0::2]),
                "extra_kafka_controller_ports": tuple(extra_brokers[1::2]),
                "extra_model_ports": tuple(extra_models),
                "state_root": state_root,
                **overrides,
            }
        )

    def replace(self, **changes: Any) -> StackConfig:
        return self.model_copy(update=changes)

    # ---- folders -------------------------------------------------------------------------------

    @property
    def state(self) -> Path:
        """Runtime data that survives `down`/`up`: Kafka logs, Flink checkpoints, pids, logs."""
        return (self.state_root.expanduser() if self.state_root else state_dir()) / "stack"

    @property
    def cache(self) -> Path:
        """Downloaded jars; survives `stack reset` and is shared by test runs."""
        return self.cache_root.expanduser() if self.cache_root else project_root() / ".stack"

    # ---- addresses -----------------------------------------------------------------------------

    def broker_ports(self, node: int) -> tuple[int, int]:
        """(client port, controller port) of Kafka node `node` (1-based)."""
        if node == 1:
            return self.kafka_port, self.kafka_controller_port
        i = node - 2
        port = self.extra_kafka_ports[i] if i < len(self.extra_kafka_ports) else self.kafka_port + 2 * (node - 1)
        controller = (
            self.extra_kafka_controller_ports[i]
            if i < len(self.extra_kafka_controller_ports)
            else self.kafka_controller_port + 2 * (node - 1)
        )
        return port, controller

    @property
    def kafka_controllers(self) -> int:
        """Nodes that are also KRaft controllers (a quorum of 3 from 3 brokers on, else the first node alone)."""
        return 3 if self.kafka_brokers >= 3 else 1

    @property
    def replication_factor(self) -> int:
        return min(self.kafka_replication_factor or 3, self.kafka_brokers)

    def broker_bootstrap(self, node: int) -> str:
        return f"{self.host}:{self.broker_ports(node)[0]}"

    @property
    def kafka_bootstrap(self) -> str:
        """Every broker, comma-separated (one address for the single-node stack)."""
        return ",".join(self.broker_bootstrap(n) for n in range(1, self.kafka_brokers + 1))

    def replica_port(self, replica: int) -> int:
        """HTTP port of model-server replica `replica` (1-based)."""
        if replica == 1:
            return self.model_port
        i = replica - 2
        return self.extra_model_ports[i] if i < len(self.extra_model_ports) else self.model_port + 10 * (replica - 1)

    def replica_url(self, replica: int) -> str:
        return f"http://{self.host}:{self.replica_port(replica)}"

    @property
    def model_urls(self) -> list[str]:
        """Base URLs of every model-server replica."""
        return [self.replica_url(r) for r in range(1, self.model_replicas + 1)]

    @property
    def flink_rest_url(self) -> str:
        return f"http://{self.host}:{self.flink_rest_port}"

    @property
    def sql_gateway_url(self) -> str:
        return f"http://{self.host}:{self.sql_gateway_port}"

    @property
    def model_url(self) -> str:
        return f"http://{self.host}:{self.model_port}"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

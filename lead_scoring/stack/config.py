"""Ports, memory sizes and folders of the local stack (Kafka + Flink + SQL Gateway + model server).

Defaults follow the ARCHITECTURE ports and fit a 2-core / 24 GiB machine with room for Dagster.
Every value can be overridden by an environment variable (read when `StackConfig.from_env()` is
called, never at import time), e.g. LEAD_SCORING_KAFKA_PORT=19092.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from lead_scoring.settings import ConfigurationError, project_root, state_dir

CACHE_ENV_VAR = "LEAD_SCORING_STACK_CACHE"

KAFKA_VERSION = "4.4.0"
FLINK_VERSION = "2.3.0"

# field name -> environment variable that overrides it
_ENV = {
    "host": "LEAD_SCORING_STACK_HOST",
    "kafka_port": "LEAD_SCORING_KAFKA_PORT",
    "kafka_controller_port": "LEAD_SCORING_KAFKA_CONTROLLER_PORT",
    "flink_rest_port": "LEAD_SCORING_FLINK_REST_PORT",
    "flink_rpc_port": "LEAD_SCORING_FLINK_RPC_PORT",
    "sql_gateway_port": "LEAD_SCORING_SQL_GATEWAY_PORT",
    "model_port": "LEAD_SCORING_MODEL_PORT",
    "kafka_heap": "LEAD_SCORING_KAFKA_HEAP",
    "jobmanager_memory": "LEAD_SCORING_FLINK_JM_MEMORY",
    "taskmanager_memory": "LEAD_SCORING_FLINK_TM_MEMORY",
    "sql_gateway_heap": "LEAD_SCORING_SQL_GATEWAY_HEAP",
    "task_slots": "LEAD_SCORING_FLINK_SLOTS",
    "checkpoint_interval": "LEAD_SCORING_FLINK_CHECKPOINT_INTERVAL",
    "start_timeout_s": "LEAD_SCORING_STACK_START_TIMEOUT",
    "stop_timeout_s": "LEAD_SCORING_STACK_STOP_TIMEOUT",
    "model_name": "LEAD_SCORING_MODEL_NAME",
    "model_artifact": "LEAD_SCORING_MODEL_URI",
}


@dataclass(frozen=True)
class StackConfig:
    """Everything `stack up` needs to know; immutable so a running stack's view cannot drift."""

    host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    flink_rest_port: int = 8081
    flink_rpc_port: int = 6123
    sql_gateway_port: int = 8083
    model_port: int = 8080
    # Heap of the broker JVM; Kafka's own default (1g) is more than a single local node needs.
    kafka_heap: str = "512m"
    # Total process sizes, as Flink counts them (heap + metaspace + overhead + network + managed).
    jobmanager_memory: str = "800m"
    taskmanager_memory: str = "1536m"
    sql_gateway_heap: str = "384m"
    # The pipeline runs about half a dozen statements at parallelism 1; each needs one slot.
    task_slots: int = 8
    checkpoint_interval: str = "10s"
    start_timeout_s: float = 120.0
    stop_timeout_s: float = 30.0
    model_name: str = "lead_scorer"
    # The model the local model server loads; None: the production version of the local store, if any.
    model_artifact: str | None = None
    # Tests set this: the services get SIGTERM when the process that started them dies, even by
    # SIGKILL or abort, so a crashed test session leaves no JVM behind. The CLI leaves it off.
    die_with_parent: bool = field(default=False, compare=False)
    state_root: Path | None = field(default=None, compare=False)
    cache_root: Path | None = field(default=None, compare=False)

    @classmethod
    def from_env(cls, **overrides: object) -> StackConfig:
        """Defaults, then environment variables, then explicit keyword overrides."""
        values: dict[str, object] = {}
        types = {f.name: f.type for f in dataclasses.fields(cls)}
        for name, var in _ENV.items():
            raw = os.environ.get(var)
            if raw is None or raw.strip() == "":
                continue
            kind = types[name]
            try:
                if kind == "int":
                    values[name] = int(raw)
                elif kind == "float":
                    values[name] = float(raw)
                else:
                    values[name] = raw.strip()
            except ValueError:
                raise ConfigurationError(f"{var}={raw!r} is not a valid {kind}; unset it or give a number") from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    # ---- folders -------------------------------------------------------------------------------

    @property
    def state(self) -> Path:
        """Runtime data that survives `down`/`up`: Kafka logs, Flink checkpoints, pids, logs."""
        return (self.state_root or state_dir()) / "stack"

    @property
    def cache(self) -> Path:
        """Downloaded jars; survives `stack reset` and is shared by test runs."""
        if self.cache_root is not None:
            return self.cache_root
        override = os.environ.get(CACHE_ENV_VAR)
        return Path(override).expanduser() if override else project_root() / ".stack"

    # ---- addresses -----------------------------------------------------------------------------

    @property
    def kafka_bootstrap(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def flink_rest_url(self) -> str:
        return f"http://{self.host}:{self.flink_rest_port}"

    @property
    def sql_gateway_url(self) -> str:
        return f"http://{self.host}:{self.sql_gateway_port}"

    @property
    def model_url(self) -> str:
        return f"http://{self.host}:{self.model_port}"

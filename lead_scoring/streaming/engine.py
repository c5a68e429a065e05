"""`FlinkEngine`: the one role the streaming assets and sensors use to run the pipeline's statements.

Two implementations, one key (`flink`):
* `SqlGatewayFlink` (gateway.py): Apache Flink through its SQL Gateway and REST API; the local stack and
  the `cluster` profile (an existing Flink cluster). Its collaborators: sql_gateway.py, jobmanager.py,
  deployment_record.py, statement_checks.py.
* `ConfluentFlink` (confluent.py): Confluent Cloud for Apache Flink through its Statements REST API. Its
  collaborators: confluent_api.py, confluent_connections.py, confluent_statements.py.

The rollout algorithm (rollout.py) and the self-healing (healing.py) are written once against this class;
nothing dispatches on the concrete type.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Optional

import dagster as dg

from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.render import Dialect, Pipeline, RenderSettings, StatementRole


class RolloutError(RuntimeError):
    """The rollout stopped; the message says why and what is running now."""


@dataclass
class StatementReport:
    name: str
    role: str
    phase: str
    job_id: Optional[str] = None
    action: str = "unchanged"  # started | unchanged | replaced | stopped | restored | resumed
    replaced: Optional[str] = None


@dataclass
class StatementHealth:
    """One statement of the deployed pipeline as the engine sees it now."""

    name: str
    role: str
    phase: str  # RUNNING | RESTARTING | FAILED | STOPPED | MISSING | PENDING | DEGRADED ...
    ident: Optional[str] = None  # Flink job id / Confluent statement name
    detail: str = ""

    @property
    def running(self) -> bool:
        return self.phase in ("RUNNING", "PENDING", "CREATED", "INITIALIZING", "RECONCILING")


@dataclass
class HealAction:
    name: str
    action: str  # resumed | resubmitted | left
    ident: Optional[str] = None
    resumed_from: str = ""  # checkpoint / savepoint path, "group offsets", or "" (Confluent keeps them)
    detail: str = ""


@dataclass
class DeploymentState:
    """What the engine knows of the deployed pipeline: its statements (and, locally, their rendering)."""

    settings: Optional[RenderSettings]
    statements: dict[str, str] = field(default_factory=dict)  # name -> role


class FlinkEngine(dg.ConfigurableResource, ABC):
    """A Flink that runs the pipeline's statements (see the module docstring for the implementations)."""

    # ---- rendering --------------------------------------------------------------------------------------

    @property
    @abstractmethod
    def dialect(self) -> Dialect:
        """The SQL dialect its statements are rendered in."""

    @property
    def owns_topics(self) -> bool:
        """True where CREATE TABLE creates the topic (Confluent Cloud): only unowned topics are made by us."""
        return False

    @abstractmethod
    def model_endpoint(self, url: str, model_name: str, provider: str) -> str:
        """The endpoint CREATE MODEL points at for a model server at `url`."""

    @abstractmethod
    def describe(self) -> str:
        """Where the statements run, for logs and metadata."""

    def render_overrides(self) -> dict[str, Any]:
        """RenderSettings fields this engine sets (e.g. the statements' parallelism on a cluster)."""
        return {}

    # ---- rollout ---------------------------------------------------------------------------------------

    @abstractmethod
    def running(self, prefix: str) -> dict[str, str]:
        """Live statements whose name starts with `prefix`: name -> ident (job id / statement name)."""

    @abstractmethod
    def prepare(self, pipeline: Pipeline) -> list[str]:
        """Create the persistent objects the statements need (Confluent: tables, connection, model)."""

    @abstractmethod
    def remember(self, pipeline: Pipeline, running: dict[str, str]) -> None:
        """Record statements of `pipeline` found running (so healing knows them after an upgrade)."""

    @abstractmethod
    def start(self, pipeline: Pipeline, role: StatementRole, resume_from: Optional[str] = None) -> str:
        """Start the statement of `role`; with `resume_from`, from where that stopped statement stopped."""

    @abstractmethod
    def wait_running(self, name: str, ident: str, timeout_s: float) -> str:
        """Wait until the statement runs; raise RolloutError with the engine's reason when it fails."""

    @abstractmethod
    def stop(self, pipeline: Pipeline, name: str, ident: str) -> str:
        """Stop at a consistent point (savepoint / spec.stopped) so a successor can resume exactly there."""

    @abstractmethod
    def resume_stopped(self, pipeline: Pipeline, role: StatementRole, name: str, after: Optional[str]) -> str:
        """Bring back a statement this rollout stopped (its successor failed), from where it stopped."""

    @abstractmethod
    def probe(self, pipeline: Pipeline) -> dict[str, Any]:
        """Score a known record through the new model before anything running is touched."""

    @abstractmethod
    def position(self, pipeline: Pipeline, role: StatementRole) -> Any:
        """A marker of the statement's progress now (to tell later whether it produced)."""

    @abstractmethod
    def verify_produces(
        self, pipeline: Pipeline, role: StatementRole, ident: str, before: Any, timeout_s: float
    ) -> str:
        """The new statement produces, or has caught up with its input; else RolloutError."""

    # ---- monitoring ------------------------------------------------------------------------------------

    def source_positions(
        self, statement_prefix: str, group_prefix: str = "lead-scoring"
    ) -> Optional[dict[str, dict[tuple[str, int], int]]]:
        """Where the deployed statements are in their source topics, by the consumer-group id the monitoring
        knows them under ({group: {(topic, partition): offset}}); None where the statements' Kafka consumer
        groups hold their offsets (OSS Flink commits them on checkpoints), so the lag checks read those."""
        return None

    # ---- healing ---------------------------------------------------------------------------------------

    @abstractmethod
    def deployed(self, statement_prefix: str) -> Optional[DeploymentState]:
        """The pipeline last rolled out under `statement_prefix`, or None when there is none."""

    @abstractmethod
    def health(self, statement_prefix: str) -> list[StatementHealth]:
        """Each statement of the deployed pipeline: running, failed, stopped or missing."""

    @abstractmethod
    def heal(self, statement_prefix: str) -> list[HealAction]:
        """Bring back every statement of the deployed pipeline that is not running, from where it was."""


CHALLENGER_CONNECTION = "vertex-lead-scorer-challenger"  # Confluent: the challenger endpoint's own connection


def render_settings_for(
    engine: FlinkEngine,
    kafka: KafkaResource,
    *,
    url: str,
    model_name: str,
    version: str,
    provider: str = "",
    topic_prefix: str = "",
    statement_prefix: str = "lead-scoring",
    group_prefix: str = "lead-scoring",
    shadow: bool = False,
    **tuning: Any,
) -> RenderSettings:
    """The rendering of a model deployment for `engine`: the champion's pipeline, or (`shadow`) the
    challenger's shadow statements against the challenger's endpoint. `tuning`: other RenderSettings fields."""
    provider = provider or ("kserve" if engine.dialect is Dialect.FLINK else "vertexai")
    extra = {"vertex_connection": CHALLENGER_CONNECTION} if shadow else {}
    return RenderSettings(
        dialect=engine.dialect,
        model_version=version,
        model_endpoint=engine.model_endpoint(url, model_name, provider),
        model_provider=provider,
        kafka_bootstrap=kafka.bootstrap_servers,
        topic_prefix=topic_prefix,
        statement_prefix=statement_prefix,
        group_prefix=group_prefix,
        server_model_name=model_name,
        shadow=shadow,
        kafka_properties=tuple(sorted(kafka.flink_properties().items())) if engine.dialect is Dialect.FLINK else (),
        **engine.render_overrides(),
        **extra,
        **tuning,
    )

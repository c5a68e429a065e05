"""The services a local stack can run: Kafka and Flink (infrastructure, here) plus what the application adds.

The stack knows nothing of the domain: the model server, the CRM workers and the demo lead generator
are `ServiceFactory`s contributed by their own packages and assembled in `lead_scoring.services`, and
what must happen when a service comes back (Flink statements restored after a JobManager restart) is
a `Hooks` object from the application too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.flink import (
    JOBMANAGER,
    SQL_GATEWAY,
    TASKMANAGER,
    FlinkServices,
    flink_health,
    gateway_health,
    taskmanager_name,
)
from lead_scoring.stack.install import Layout
from lead_scoring.stack.kafka import KAFKA, KafkaService, broker_name
from lead_scoring.stack.spec import HealthCheck, ServiceSpec


class ServiceFactory(Protocol):
    """One service of the stack: how to start it now (a fresh spec at every start) and how to check it."""

    name: str
    # Whether `stack up` fails when it is not healthy in time: False when the rest of the product works without
    # it (a CRM worker); `up` then reports it unhealthy, with its reason, and returns.
    blocks_start: ClassVar[bool]

    def wanted(self) -> bool:
        """Whether `stack up` without names starts it (the model server: once a model exists)."""

    def ports(self) -> dict[int, str]: ...

    def url(self) -> str: ...

    def health(self) -> HealthCheck: ...

    def spec(self, args: dict[str, Any]) -> ServiceSpec | None:
        """How to start it (config files written), or None when it cannot run yet (the reason is logged)."""

    def detail(self) -> str:
        """Extra words for `stack status` when it is healthy (e.g. a worker's lag)."""


def blocks_start(factory: ServiceFactory) -> bool:
    """Whether `stack up` fails when this service is not healthy in time (default: yes).

    The supervisor and `stack status` keep watching a service that does not block the start."""
    return factory.blocks_start


class Hooks(Protocol):
    """What the application does around service lifecycle events (run inside the supervisor)."""

    def on_healthy(self, name: str, restarted: bool) -> None:
        """`name` answered its health check after a start (`restarted`: after it had died)."""

    def before_stop(self, names: Sequence[str]) -> None:
        """`names` are about to be stopped on purpose (`stack down`)."""


class NoHooks:
    def on_healthy(self, name: str, restarted: bool) -> None:
        return None

    def before_stop(self, names: Sequence[str]) -> None:
        return None


@dataclass
class _Infra:
    """Kafka (one service per broker) and the Flink processes (one service per TaskManager)."""

    blocks_start: ClassVar[bool] = True
    name: str
    cfg: StackConfig
    layout: Layout
    role: str = ""  # KAFKA | JOBMANAGER | TASKMANAGER | SQL_GATEWAY
    node: int = 1  # which broker / TaskManager (1-based)

    def __post_init__(self) -> None:
        self.role = self.role or self.name

    def wanted(self) -> bool:
        return True

    def ports(self) -> dict[int, str]:
        c = self.cfg
        if self.role == KAFKA:
            return KafkaService(c, self.layout, self.node).ports()
        return {
            JOBMANAGER: {
                c.flink_rest_port: "LEAD_SCORING_FLINK_REST_PORT",
                c.flink_rpc_port: "LEAD_SCORING_FLINK_RPC_PORT",
            },
            TASKMANAGER: {},
            SQL_GATEWAY: {c.sql_gateway_port: "LEAD_SCORING_SQL_GATEWAY_PORT"},
        }[self.role]

    def url(self) -> str:
        c = self.cfg
        return {
            KAFKA: f"kafka://{c.broker_bootstrap(self.node)}",
            JOBMANAGER: c.flink_rest_url,
            TASKMANAGER: c.flink_rest_url + "/#/task-manager",
            SQL_GATEWAY: c.sql_gateway_url,
        }[self.role]

    def health(self) -> HealthCheck:
        c = self.cfg
        if self.role == KAFKA:
            return KafkaService(c, self.layout, self.node).health
        if self.role == TASKMANAGER:
            return lambda: FlinkServices(c, self.layout).taskmanager_health(self.node)
        return {
            JOBMANAGER: lambda: flink_health(c.flink_rest_url, need_taskmanager=False),
            SQL_GATEWAY: lambda: gateway_health(c.sql_gateway_url),
        }[self.role]

    def spec(self, args: dict[str, Any]) -> ServiceSpec:
        if self.role == KAFKA:
            return KafkaService(self.cfg, self.layout, self.node).spec()
        flink = FlinkServices(self.cfg, self.layout)
        if self.role == TASKMANAGER:
            return flink.taskmanager(self.node)
        return {JOBMANAGER: flink.jobmanager, SQL_GATEWAY: flink.sql_gateway}[self.role]()

    def detail(self) -> str:
        return ""


INFRASTRUCTURE = (KAFKA, JOBMANAGER, TASKMANAGER, SQL_GATEWAY)  # the single-node stack's engines


def infrastructure(cfg: StackConfig) -> list[str]:
    """The engines of `cfg`'s topology, in start order: every broker, the JobManager, every TaskManager,
    the SQL Gateway (`kafka`, `kafka-2`, ..., `jobmanager`, `taskmanager`, `taskmanager-2`, ..., `sql-gateway`)."""
    return (
        [broker_name(n) for n in range(1, cfg.kafka_brokers + 1)]
        + [JOBMANAGER]
        + [taskmanager_name(n) for n in range(1, cfg.taskmanagers + 1)]
        + [SQL_GATEWAY]
    )


def _infra(cfg: StackConfig, layout: Layout) -> dict[str, _Infra]:
    out = {broker_name(n): _Infra(broker_name(n), cfg, layout, KAFKA, n) for n in range(1, cfg.kafka_brokers + 1)}
    out[JOBMANAGER] = _Infra(JOBMANAGER, cfg, layout)
    out.update(
        {
            taskmanager_name(n): _Infra(taskmanager_name(n), cfg, layout, TASKMANAGER, n)
            for n in range(1, cfg.taskmanagers + 1)
        }
    )
    out[SQL_GATEWAY] = _Infra(SQL_GATEWAY, cfg, layout)
    return out


@dataclass
class Catalog:
    """Every service of one stack, in start order (`down` stops in the reverse order)."""

    cfg: StackConfig
    extensions: Sequence[ServiceFactory] = ()
    hooks: Hooks = field(default_factory=NoHooks)

    def __post_init__(self) -> None:
        layout = Layout(self.cfg.cache)
        self.factories: dict[str, ServiceFactory] = dict(_infra(self.cfg, layout))
        for ext in self.extensions:
            self.factories[ext.name] = ext

    @property
    def order(self) -> list[str]:
        return list(self.factories)

    def __contains__(self, name: object) -> bool:
        return name in self.factories

    def __getitem__(self, name: str) -> ServiceFactory:
        return self.factories[name]

    def defaults(self) -> list[str]:
        return [n for n, f in self.factories.items() if f.wanted()]

    def ordered(self, names: Iterable[str]) -> list[str]:
        wanted = set(names)
        return [n for n in self.order if n in wanted]

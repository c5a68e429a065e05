"""The services a local stack can run: Kafka and Flink (infrastructure, here) plus what the application adds.

The stack knows nothing of the domain: the model server, the CRM workers and the demo lead generator
are `ServiceFactory`s contributed by their own packages and assembled in `lead_scoring.services`, and
what must happen when a service comes back (Flink statements restored after a JobManager restart) is
a `Hooks` object from the application too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.flink import JOBMANAGER, SQL_GATEWAY, TASKMANAGER, FlinkServices, flink_health, gateway_health
from lead_scoring.stack.install import Layout
from lead_scoring.stack.kafka import KAFKA, KafkaService, kafka_health
from lead_scoring.stack.spec import HealthCheck, ServiceSpec


class ServiceFactory(Protocol):
    """One service of the stack: how to start it now (a fresh spec at every start) and how to check it."""

    name: str

    def wanted(self) -> bool:
        """Whether `stack up` without names starts it (the model server: once a model exists)."""

    def ports(self) -> dict[int, str]: ...

    def url(self) -> str: ...

    def health(self) -> HealthCheck: ...

    def spec(self, args: dict[str, Any]) -> ServiceSpec | None:
        """How to start it (config files written), or None when it cannot run yet (the reason is logged)."""

    def detail(self) -> str:
        """Extra words for `stack status` when it is healthy (e.g. a worker's lag)."""


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
    """Kafka and the three Flink processes."""

    name: str
    cfg: StackConfig
    layout: Layout

    def wanted(self) -> bool:
        return True

    def ports(self) -> dict[int, str]:
        c = self.cfg
        return {
            KAFKA: {c.kafka_port: "LEAD_SCORING_KAFKA_PORT", c.kafka_controller_port: "LEAD_SCORING_KAFKA_CONTROLLER_PORT"},
            JOBMANAGER: {c.flink_rest_port: "LEAD_SCORING_FLINK_REST_PORT", c.flink_rpc_port: "LEAD_SCORING_FLINK_RPC_PORT"},
            TASKMANAGER: {},
            SQL_GATEWAY: {c.sql_gateway_port: "LEAD_SCORING_SQL_GATEWAY_PORT"},
        }[self.name]

    def url(self) -> str:
        c = self.cfg
        return {KAFKA: f"kafka://{c.kafka_bootstrap}", JOBMANAGER: c.flink_rest_url,
                TASKMANAGER: c.flink_rest_url + "/#/task-manager", SQL_GATEWAY: c.sql_gateway_url}[self.name]

    def health(self) -> HealthCheck:
        c = self.cfg
        return {
            KAFKA: lambda: kafka_health(c.kafka_bootstrap),
            JOBMANAGER: lambda: flink_health(c.flink_rest_url, need_taskmanager=False),
            TASKMANAGER: lambda: flink_health(c.flink_rest_url, need_taskmanager=True),
            SQL_GATEWAY: lambda: gateway_health(c.sql_gateway_url),
        }[self.name]

    def spec(self, args: dict[str, Any]) -> ServiceSpec:
        if self.name == KAFKA:
            return KafkaService(self.cfg, self.layout).spec()
        flink = FlinkServices(self.cfg, self.layout)
        return {JOBMANAGER: flink.jobmanager, TASKMANAGER: flink.taskmanager, SQL_GATEWAY: flink.sql_gateway}[self.name]()

    def detail(self) -> str:
        return ""


INFRASTRUCTURE = (KAFKA, JOBMANAGER, TASKMANAGER, SQL_GATEWAY)


@dataclass
class Catalog:
    """Every service of one stack, in start order (`down` stops in the reverse order)."""

    cfg: StackConfig
    extensions: Sequence[ServiceFactory] = ()
    hooks: Hooks = field(default_factory=NoHooks)

    def __post_init__(self) -> None:
        layout = Layout(self.cfg.cache)
        self.factories: dict[str, ServiceFactory] = {n: _Infra(n, self.cfg, layout) for n in INFRASTRUCTURE}
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

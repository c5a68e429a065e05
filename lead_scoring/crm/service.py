"""The CRM workers and the demo lead generator as services of the local stack (run by its supervisor)."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any, ClassVar

from lead_scoring.crm.health import worker_report
from lead_scoring.crm.heartbeat import GROUP_IDS, worker_topics
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.spec import HealthCheck, ServiceSpec
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.lag import KafkaUnavailable, group_lag

DEMO_LEADS = "demo-leads"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "lead_scoring.cli", *args]


@dataclass
class WorkerService:
    """`writeback` (scores -> the CRM) or `sink` (topics -> the warehouse) of the stack."""

    cfg: StackConfig
    name: str
    # A stuck or dead worker is reported by `stack up`, it does not fail it: the product opens without it.
    blocks_start: ClassVar[bool] = False

    def wanted(self) -> bool:
        return True

    def ports(self) -> dict[int, str]:
        return {}

    def url(self) -> str:
        return f"kafka://{self.cfg.kafka_bootstrap}#group={GROUP_IDS[self.name]}"

    def health(self) -> HealthCheck:
        # why, in words: `stuck at input_raw[0]@41234 for 3 min: ...`, `last heartbeat 29 s ago (...)`
        return lambda: worker_report(self.name, self.cfg.state.parent).problem

    def spec(self, args: dict[str, Any]) -> ServiceSpec:
        # The stack's workers write the stack's local warehouse and local CRM (its state root).
        return ServiceSpec(
            self.name,
            self.url(),
            _cli("worker", self.name, "--bootstrap", self.cfg.kafka_bootstrap),
            self.health(),
            env={"LEAD_SCORING_PROFILE": "local", "LEAD_SCORING_HOME": str(self.cfg.state.parent)},
            cwd=self.cfg.state,
        )

    def detail(self) -> str:
        """`lag N` (messages not yet written and committed) and the records it quarantined, for `stack status`."""
        quarantined = worker_report(self.name, self.cfg.state.parent).quarantined
        kept = f"; quarantined {quarantined:,}" if quarantined else ""
        try:
            lag = group_lag(KafkaResource.local(self.cfg), GROUP_IDS[self.name], worker_topics(self.name), 3.0)
        except KafkaUnavailable as exc:
            return f"lag unknown ({exc}){kept}"
        return "lag " + ", ".join(f"{topic} {n:,}" for topic, n in lag.items()) + kept


@dataclass
class DemoLeadsService:
    """Synthetic leads into input_raw at `cfg.demo_rate` per second (`scripts/up` starts it; optional)."""

    blocks_start: ClassVar[bool] = True
    cfg: StackConfig
    name: str = DEMO_LEADS

    def wanted(self) -> bool:
        return False

    def ports(self) -> dict[int, str]:
        return {}

    def url(self) -> str:
        return f"kafka://{self.cfg.kafka_bootstrap} input_raw"

    def health(self) -> HealthCheck:
        return lambda: None  # it is healthy while it runs (the supervisor watches the process)

    def spec(self, args: dict[str, Any]) -> ServiceSpec:
        rate = str(args.get("rate", self.cfg.demo_rate))
        return ServiceSpec(
            self.name,
            self.url(),
            _cli("leads", "generate", "--rate", rate, "--bootstrap", self.cfg.kafka_bootstrap),
            self.health(),
        )

    def detail(self) -> str:
        return f"{self.cfg.demo_rate:g} leads/s"

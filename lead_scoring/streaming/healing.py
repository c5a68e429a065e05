"""Bringing the pipeline's statements back after a JobManager restart, a cluster restart or a reboot.

The same engine call (`FlinkEngine.heal`) runs from three places, whichever notices first:
* the local stack's supervisor, when the JobManager is healthy again after it died (`StackHooks`);
* `stack up` after a reboot (the same hook: the JobManager's first healthy answer);
* Dagster's `flink_statements_sensor`, which requests `restore_statements_job` in every profile (on
  Confluent Cloud it resumes stopped or failed statements; it never deletes and recreates them).
The local engine serialises them with a file lock and resubmits only what is not running, so two of them
at once change nothing twice. On `stack down` every statement stops with a savepoint it is restored from.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.flink import JOBMANAGER, TASKMANAGER, flink_health, gateway_health
from lead_scoring.streaming.engine import HealAction
from lead_scoring.streaming.gateway import SqlGatewayFlink
from lead_scoring.streaming.kafka import KafkaResource

log = logging.getLogger(__name__)


def local_engine(cfg: StackConfig) -> SqlGatewayFlink:
    """The local stack's Flink, with the deployment records under the stack's state root."""
    return SqlGatewayFlink(
        url=cfg.sql_gateway_url,
        flink_rest_url=cfg.flink_rest_url,
        kafka=KafkaResource.local(cfg),
        state_path=str(records_dir(cfg)),
    )


def records_dir(cfg: StackConfig) -> Path:
    return cfg.state.parent / "streaming"


def deployed_prefixes(cfg: StackConfig) -> list[str]:
    folder = records_dir(cfg)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def heal_local(cfg: StackConfig, timeout_s: float = 180.0) -> dict[str, list[HealAction]]:
    """Wait for a TaskManager and the SQL Gateway, then restore every recorded pipeline of this stack."""
    prefixes = deployed_prefixes(cfg)
    if not prefixes:
        return {}
    try:
        wait_until(
            lambda: (
                True
                if flink_health(cfg.flink_rest_url, need_taskmanager=True) is None
                and gateway_health(cfg.sql_gateway_url) is None
                else None
            ),
            timeout_s=timeout_s,
            interval_s=1.0,
            what="a TaskManager and the SQL Gateway",
        )
    except WaitTimeout as exc:
        log.warning("statements not restored yet: %s; the flink_statements_sensor will retry", exc)
        return {}
    engine = local_engine(cfg)
    out = {}
    for prefix in prefixes:
        out[prefix] = engine.heal(prefix)
        restored = [a for a in out[prefix] if a.action != "left"]
        if restored:
            log.info("pipeline %s: restored %s", prefix, "; ".join(f"{a.name} from {a.resumed_from}" for a in restored))
    return out


class StackHooks:
    """What the local stack's supervisor does around the JobManager: savepoints down, restore up."""

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg

    def on_healthy(self, name: str, restarted: bool) -> None:
        # A JobManager without HA forgets its jobs; a restarted TaskManager's jobs are restarted by Flink
        # itself (restart strategy), so only the JobManager's comeback needs us.
        if name == JOBMANAGER:
            heal_local(self.cfg)
        elif name == TASKMANAGER and restarted:
            log.info("taskmanager is back: Flink restarts its jobs from their last checkpoints")

    def before_stop(self, names: Sequence[str]) -> None:
        if JOBMANAGER not in names:
            return
        problem = flink_health(self.cfg.flink_rest_url, need_taskmanager=False)
        if problem is not None:
            log.warning("no savepoints before stopping: Flink %s; statements come back from checkpoints", problem)
            return
        engine = local_engine(self.cfg)
        for prefix in deployed_prefixes(self.cfg):
            try:
                suspended = engine.suspend(prefix)
            except Exception as exc:  # the stop goes on; restore then uses the newest checkpoint
                log.warning("could not savepoint pipeline %s before stopping: %s", prefix, exc)
                continue
            if suspended:
                log.info("pipeline %s: stopped %s with savepoints", prefix, ", ".join(suspended))

"""The local stack of this application: the infrastructure plus our own services, and what happens around them.

The composition root of `lead_scoring.stack` (which knows nothing of the domain): Kafka and Flink, the
model server, the two CRM workers, the optional demo lead generator, and the streaming hooks that
savepoint the statements before the JobManager stops and restore them when it is back.
"""

from __future__ import annotations

from lead_scoring.crm.heartbeat import SINK, WRITEBACK
from lead_scoring.crm.service import DemoLeadsService, WorkerService
from lead_scoring.serving.service import ModelServerService
from lead_scoring.stack.catalog import Catalog
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.stack import Stack
from lead_scoring.streaming.healing import StackHooks


def catalog(cfg: StackConfig) -> Catalog:
    """Every service of `cfg`'s topology (one model-server service per replica)."""
    replicas = [ModelServerService(cfg, r) for r in range(1, cfg.model_replicas + 1)]
    return Catalog(
        cfg,
        extensions=[*replicas, WorkerService(cfg, WRITEBACK), WorkerService(cfg, SINK), DemoLeadsService(cfg)],
        hooks=StackHooks(cfg),
    )


def local_stack(cfg: StackConfig | None = None) -> Stack:
    """The local stack of this checkout (or of `cfg`: tests run theirs on free ports and temp folders)."""
    return Stack(catalog(cfg or StackConfig.from_env()))

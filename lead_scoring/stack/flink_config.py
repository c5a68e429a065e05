"""The local Flink session cluster's folders and its `conf/` (config.yaml, log4j.properties), written from
`StackConfig` at every start of one of its processes.

Kept apart from `flink.FlinkServices` (how each process is run) because these are the cluster's settings: what a
statement's checkpoints and savepoints are kept for, and how the cluster behaves after a crash, read in one place.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from pathlib import Path

from lead_scoring.stack.atomic import write_atomically
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.kafka import LOG4J2_CONSOLE

log = logging.getLogger(__name__)

# Retained checkpoints (RETAIN_ON_CANCELLATION, below) of jobs that stopped this long ago are deleted at
# `stack up`: they point at Kafka offsets the topics no longer hold (streaming/topics.ERASURE_RETENTION_MS,
# the same 7 days), and their de-duplication state holds lead Ids the erasure promise says are gone.
RETAINED_CHECKPOINT_MAX_AGE_S = 7 * 24 * 3600

# env.java.opts.all of Flink 2.3's shipped conf/config.yaml: the module opens Flink needs on Java 17.
FLINK_JAVA17_OPTS = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED "
    "--add-exports=jdk.compiler/com.sun.tools.javac.api=ALL-UNNAMED "
    "--add-exports=jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED "
    "--add-exports=jdk.compiler/com.sun.tools.javac.parser=ALL-UNNAMED "
    "--add-exports=jdk.compiler/com.sun.tools.javac.tree=ALL-UNNAMED "
    "--add-exports=jdk.compiler/com.sun.tools.javac.util=ALL-UNNAMED "
    "--add-exports=java.security.jgss/sun.security.krb5=ALL-UNNAMED "
    "--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED "
    "--add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED "
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED "
    "--add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED "
    "--add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED "
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED "
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED"
)

# Kafka clients inside Flink print their whole config at INFO for every consumer/producer.
_FLINK_LOGGERS = """\
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.pekko.name = org.apache.pekko
logger.pekko.level = WARN
logger.netty.name = org.apache.flink.shaded.netty4
logger.netty.level = WARN
"""


class FlinkConfig:
    """The cluster's folders under `<state>/flink` and its configuration files."""

    def __init__(self, cfg: StackConfig):
        self.cfg = cfg

    @property
    def dir(self) -> Path:
        return self.cfg.state / "flink"

    @property
    def conf_dir(self) -> Path:
        return self.dir / "conf"

    @property
    def checkpoint_dir(self) -> Path:
        return self.dir / "checkpoints"

    @property
    def savepoint_dir(self) -> Path:
        return self.dir / "savepoints"

    def prune_retained_checkpoints(self, max_age_s: float = RETAINED_CHECKPOINT_MAX_AGE_S) -> list[Path]:
        """Delete the checkpoint folders (one per job) nothing has written to for `max_age_s`: a running job
        writes one every checkpoint interval, so only those of cancelled or long-dead jobs go."""
        root = self.checkpoint_dir
        if not root.is_dir():
            return []
        cutoff = time.time() - max_age_s
        pruned = []
        for job in root.iterdir():
            if not job.is_dir():
                continue
            newest = max((p.stat().st_mtime for p in job.rglob("*")), default=job.stat().st_mtime)
            if max(newest, job.stat().st_mtime) < cutoff:
                shutil.rmtree(job, ignore_errors=True)
                pruned.append(job)
        if pruned:
            log.info("pruned %d retained checkpoint folder(s) older than %.0f days", len(pruned), max_age_s / 86400)
        return pruned

    def write(self) -> Path:
        """Create the folders, prune old retained checkpoints, write conf/; return conf/."""
        c = self.cfg
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for sub in ("checkpoints", "savepoints", "tmp"):
            (self.dir / sub).mkdir(parents=True, exist_ok=True)
        self.prune_retained_checkpoints()
        settings: dict[str, object] = {
            "env.java.opts.all": FLINK_JAVA17_OPTS,
            "jobmanager.bind-host": c.host,
            "jobmanager.rpc.address": c.host,
            "jobmanager.rpc.port": c.flink_rpc_port,
            "jobmanager.memory.process.size": c.jobmanager_memory,
            "jobmanager.execution.failover-strategy": "region",
            "taskmanager.bind-host": c.host,
            "taskmanager.host": c.host,
            "taskmanager.numberOfTaskSlots": c.task_slots,
            "taskmanager.memory.process.size": c.taskmanager_memory,
            # Streaming SQL with the hashmap backend needs no managed memory; give it to the heap.
            "taskmanager.memory.managed.fraction": 0.05,
            # A JobManager that comes back after a crash: the TaskManager keeps trying to reach it, and notices
            # the old one is gone after 15 s instead of Flink's 50 s, so its tasks stop processing (and the
            # statements are restored from their checkpoints) sooner: less input is read twice.
            "taskmanager.registration.timeout": "30 min",
            "heartbeat.interval": 3000,
            "heartbeat.timeout": 15000,
            "parallelism.default": 1,
            "rest.address": c.host,
            "rest.bind-address": c.host,
            "rest.port": c.flink_rest_port,
            "state.backend.type": "hashmap",
            "execution.checkpointing.interval": c.checkpoint_interval,
            # Keep the last checkpoint when a job is cancelled or the cluster stops, so a statement can
            # be resumed from it after a JobManager crash or `stack down` / `stack up`.
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "execution.checkpointing.dir": self.checkpoint_dir.as_uri(),
            "execution.checkpointing.savepoint-dir": self.savepoint_dir.as_uri(),
            "execution.target": "remote",
            "io.tmp.dirs": str(self.dir / "tmp"),
            "web.tmpdir": str(self.dir / "tmp"),
            # no jar upload/run through the REST API: statements reach Flink through the SQL Gateway only
            "web.submit.enable": False,
            "sql-gateway.endpoint.rest.address": c.host,
            "sql-gateway.endpoint.rest.bind-address": c.host,
            "sql-gateway.endpoint.rest.port": c.sql_gateway_port,
        }
        if c.taskmanagers > 1:
            # several TaskManagers: each slot request goes to the least used TaskManager, so a statement's
            # subtasks are spread over them instead of filling the first one. (Flink 2 dropped
            # `cluster.evenly-spread-out-slots`, and `TASKS` only balances tasks over the slots a job already
            # has: with either, every subtask of the scale-out benchmark ran on one TaskManager.)
            settings["taskmanager.load-balance.mode"] = "SLOTS"
        text = "# Written by `lead-scoring stack up` from StackConfig; edits are overwritten.\n"
        text += "".join(f"{k}: {json.dumps(v) if isinstance(v, str) else v}\n" for k, v in settings.items())
        write_atomically(self.conf_dir / "config.yaml", text)
        write_atomically(self.conf_dir / "log4j.properties", LOG4J2_CONSOLE.format(extra=_FLINK_LOGGERS))
        return self.conf_dir

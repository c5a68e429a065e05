"""The local Flink session cluster: JobManager, TaskManager and SQL Gateway from PyPI's flink-dist wheel."""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import httpx

from lead_scoring.stack.atomic import write_atomically
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import Layout, StackError
from lead_scoring.stack.kafka import LOG4J2_CONSOLE
from lead_scoring.stack.spec import ServiceSpec, http_json

log = logging.getLogger(__name__)

# Retained checkpoints (RETAIN_ON_CANCELLATION, below) of jobs that stopped this long ago are deleted at
# `stack up`: they point at Kafka offsets the topics no longer hold (streaming/topics.ERASURE_RETENTION_MS,
# the same 7 days), and their de-duplication state holds lead Ids the erasure promise says are gone.
RETAINED_CHECKPOINT_MAX_AGE_S = 7 * 24 * 3600

JOBMANAGER = "jobmanager"
TASKMANAGER = "taskmanager"
SQL_GATEWAY = "sql-gateway"

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


def taskmanager_name(node: int) -> str:
    """The stack service of TaskManager `node` (1-based): `taskmanager`, `taskmanager-2`, ..."""
    return TASKMANAGER if node == 1 else f"{TASKMANAGER}-{node}"


def flink_health(rest_url: str, need_taskmanager: bool, resource_id: str | None = None) -> str | None:
    try:
        code, body = http_json(f"{rest_url}/overview")
    except httpx.HTTPError as exc:
        return f"REST not answering ({exc.__class__.__name__})"
    if code != 200 or not isinstance(body, dict):
        return f"/overview answered {code}"
    if need_taskmanager and int(body.get("taskmanagers", 0)) < 1:
        return "no TaskManager registered yet"
    if resource_id is not None:
        try:
            code, tms = http_json(f"{rest_url}/taskmanagers")
        except httpx.HTTPError as exc:
            return f"REST not answering ({exc.__class__.__name__})"
        ids = [tm.get("id") for tm in tms.get("taskmanagers", [])] if isinstance(tms, dict) else []
        if resource_id not in ids:
            return f"TaskManager {resource_id} not registered yet"
    return None


def gateway_health(url: str) -> str | None:
    try:
        code, _ = http_json(f"{url}/v1/info")
    except httpx.HTTPError as exc:
        return f"REST not answering ({exc.__class__.__name__})"
    return None if code == 200 else f"/v1/info answered {code}"


class FlinkServices:
    """Writes the cluster's conf/config.yaml and says how to run each of its three processes."""

    def __init__(self, cfg: StackConfig, layout: Layout):
        self.cfg = cfg
        self.layout = layout

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

    def log_path(self, name: str) -> Path:
        return self.cfg.state / "logs" / f"{name}.log"

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

    def write_config(self) -> Path:
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

    def resource_params(self, which: str) -> tuple[list[str], list[str]]:
        """(JVM options, dynamic -D options) as bin/jobmanager.sh and bin/taskmanager.sh compute them."""
        cp = f"{self.layout.bash_java_utils}:{self.layout.flink_classpath()}"
        cmd = [
            "java",
            "-cp",
            cp,
            "org.apache.flink.runtime.util.bash.BashJavaUtils",
            f"GET_{which}_RESOURCE_PARAMS",
            "--configDir",
            str(self.conf_dir),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
        marker = "BASH_JAVA_UTILS_EXEC_RESULT:"
        lines = [ln[len(marker) :] for ln in proc.stdout.splitlines() if ln.startswith(marker)]
        if proc.returncode != 0 or len(lines) < 2:
            raise StackError(
                f"Flink rejected the {which} memory settings; check LEAD_SCORING_FLINK_{which[:2]}_MEMORY:\n"
                f"{(proc.stdout + proc.stderr)[-2000:]}"
            )
        return shlex.split(lines[0]), shlex.split(lines[1])

    def _jvm_common(self, name: str) -> list[str]:
        return [
            *shlex.split(FLINK_JAVA17_OPTS),
            f"-Dlog.file={self.log_path(name)}",
            f"-Dlog4j.configurationFile=file:{self.conf_dir / 'log4j.properties'}",
        ]

    def env(self) -> dict[str, str]:
        home = self.layout.flink_home
        return {
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_HOME": str(home),
            "FLINK_LIB_DIR": str(home / "lib"),
            "FLINK_OPT_DIR": str(home / "opt"),
            "FLINK_PLUGINS_DIR": str(home / "plugins"),
        }

    def jobmanager(self) -> ServiceSpec:
        c = self.cfg
        self.write_config()
        jvm, dyn = self.resource_params("JM")
        return ServiceSpec(
            JOBMANAGER,
            c.flink_rest_url,
            [
                "java",
                *jvm,
                *self._jvm_common(JOBMANAGER),
                "-classpath",
                self.layout.flink_classpath(),
                "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
                "--configDir",
                str(self.conf_dir),
                *dyn,
            ],
            lambda: flink_health(c.flink_rest_url, need_taskmanager=False),
            ports={c.flink_rest_port: "LEAD_SCORING_FLINK_REST_PORT", c.flink_rpc_port: "LEAD_SCORING_FLINK_RPC_PORT"},
            env=self.env(),
            cwd=self.dir,
        )

    def taskmanager_resource_id(self, node: int) -> str | None:
        """Multi-node: each TaskManager registers under its service name (its health check looks for it)."""
        return taskmanager_name(node) if self.cfg.taskmanagers > 1 else None

    def taskmanager_health(self, node: int = 1) -> str | None:
        return flink_health(
            self.cfg.flink_rest_url, need_taskmanager=True, resource_id=self.taskmanager_resource_id(node)
        )

    def taskmanager(self, node: int = 1) -> ServiceSpec:
        c = self.cfg
        name = taskmanager_name(node)
        self.write_config()
        jvm, dyn = self.resource_params("TM")
        resource_id = self.taskmanager_resource_id(node)
        if resource_id is not None:
            tmp = self.dir / "tmp" / name
            tmp.mkdir(parents=True, exist_ok=True)
            dyn = [*dyn, "-D", f"taskmanager.resource-id={resource_id}", "-D", f"io.tmp.dirs={tmp}"]
        return ServiceSpec(
            name,
            c.flink_rest_url + "/#/task-manager",
            [
                "java",
                *jvm,
                *self._jvm_common(name),
                "-classpath",
                self.layout.flink_classpath(),
                "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
                "--configDir",
                str(self.conf_dir),
                *dyn,
            ],
            lambda: self.taskmanager_health(node),
            env=self.env(),
            cwd=self.dir,
        )

    def sql_gateway(self) -> ServiceSpec:
        c = self.cfg
        self.write_config()
        return ServiceSpec(
            SQL_GATEWAY,
            c.sql_gateway_url,
            [
                "java",
                f"-Xms{c.sql_gateway_heap}",
                f"-Xmx{c.sql_gateway_heap}",
                *self._jvm_common(SQL_GATEWAY),
                "-classpath",
                self.layout.flink_classpath(gateway=True),
                "org.apache.flink.table.gateway.SqlGateway",
            ],
            lambda: gateway_health(c.sql_gateway_url),
            ports={c.sql_gateway_port: "LEAD_SCORING_SQL_GATEWAY_PORT"},
            env=self.env(),
            cwd=self.dir,
        )

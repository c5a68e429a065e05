"""Process management for the local stack: Kafka (KRaft), Flink JobManager + TaskManager, SQL Gateway,
and the model server when a model artifact exists.

Each service is a plain child JVM (or Python process) started in its own session so it outlives the
CLI. `up` records `{pid, create_time}` per service under `<state>/stack/run/`; `down` stops exactly
those processes (the create time guards against a recycled pid), gracefully and then forcefully.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psutil

from lead_scoring.stack.config import FLINK_VERSION, StackConfig
from lead_scoring.stack.install import Layout, StackError, require_installed, require_java

log = logging.getLogger(__name__)

KAFKA = "kafka"
JOBMANAGER = "jobmanager"
TASKMANAGER = "taskmanager"
SQL_GATEWAY = "sql-gateway"
MODEL_SERVER = "model-server"
# The CRM edge workers (lead_scoring.crm.workers): scores -> crm_leads, topics -> warehouse tables.
WRITEBACK_WORKER = "writeback"
SINK_WORKER = "sink"
WORKERS = (WRITEBACK_WORKER, SINK_WORKER)
# Start order; `down` uses the reverse so consumers stop before what they consume.
SERVICE_ORDER = [KAFKA, JOBMANAGER, TASKMANAGER, SQL_GATEWAY, MODEL_SERVER, *WORKERS]

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

# The JVM flags kafka-run-class.sh uses for the broker.
KAFKA_JVM_OPTS = [
    "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent", "-XX:MaxInlineLevel=15", "-Djava.awt.headless=true",
]

_LOG4J2_CONSOLE = """\
# Written by `lead-scoring stack up`; stdout of the process is its log file.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{{yyyy-MM-dd HH:mm:ss,SSS}} %-5p %c{{1}} - %m%n
rootLogger.level = INFO
rootLogger.appenderRef.stdout.ref = STDOUT
{extra}
"""

_KAFKA_LOGGERS = """\
logger.request.name = kafka.request.logger
logger.request.level = WARN
logger.statechange.name = state.change.logger
logger.statechange.level = WARN
"""

# Kafka clients inside Flink print their whole config at INFO for every consumer/producer.
_FLINK_LOGGERS = """\
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
logger.pekko.name = org.apache.pekko
logger.pekko.level = WARN
logger.netty.name = org.apache.flink.shaded.netty4
logger.netty.level = WARN
"""


@dataclass
class ServiceSpec:
    """How to start one service and how to tell that it is healthy."""

    name: str
    url: str
    ports: dict[int, str]  # port -> the environment variable that moves it
    argv: list[str]
    health: Callable[[], str | None]  # None when healthy, else what is still missing
    env: dict[str, str] = field(default_factory=dict)
    cwd: Path | None = None


@dataclass
class ServiceStatus:
    name: str
    url: str
    pid: int | None
    state: str  # healthy | starting | unhealthy | stopped | dead
    rss_bytes: int | None = None
    detail: str = ""


# ------------------------------------------------------------------------------------------------
# health checks


def _tcp_open(host: str, port: int, timeout: float = 0.5) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


def kafka_health(bootstrap: str) -> str | None:
    """None when the broker answers a metadata request with itself as a live broker."""
    host, port = bootstrap.rsplit(":", 1)
    if not _tcp_open(host, int(port)):
        return f"nothing listens on {bootstrap} yet"
    from confluent_kafka.admin import AdminClient

    # log_level 0: a broker that is still starting is expected, not an error worth printing.
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0, "socket.timeout.ms": 2000})
    try:
        md = admin.list_topics(timeout=3)
    except Exception as exc:  # KafkaException while the controller is electing itself
        return f"metadata request failed: {exc}"
    if not md.brokers:
        return "metadata lists no broker"
    return None


def _http_json(url: str, timeout: float = 2.0) -> tuple[int, object]:
    resp = httpx.get(url, timeout=timeout)
    try:
        body: object = resp.json()
    except ValueError:
        body = resp.text
    return resp.status_code, body


def flink_health(rest_url: str, need_taskmanager: bool) -> str | None:
    try:
        code, body = _http_json(f"{rest_url}/overview")
    except httpx.HTTPError as exc:
        return f"REST not answering ({exc.__class__.__name__})"
    if code != 200 or not isinstance(body, dict):
        return f"/overview answered {code}"
    if need_taskmanager and int(body.get("taskmanagers", 0)) < 1:
        return "no TaskManager registered yet"
    return None


def gateway_health(url: str) -> str | None:
    try:
        code, body = _http_json(f"{url}/v1/info")
    except httpx.HTTPError as exc:
        return f"REST not answering ({exc.__class__.__name__})"
    return None if code == 200 else f"/v1/info answered {code}"


def model_health(url: str, model_name: str) -> str | None:
    # The model's own readiness, not the server's: a server whose model failed to load is not healthy.
    try:
        code, body = _http_json(f"{url}/v2/models/{model_name}/ready")
    except httpx.HTTPError as exc:
        return f"not answering ({exc.__class__.__name__})"
    return None if code == 200 else f"{model_name} not ready ({code}: {str(body)[:200]})"


# ------------------------------------------------------------------------------------------------
# model server wiring (pluggable: the serving and storage modules own the details)


def resolve_model_artifact(cfg: StackConfig) -> str | None:
    """URI of the model the local model server should load, or None when there is none yet.

    Order: `cfg.model_artifact` (LEAD_SCORING_MODEL_URI); then the production version of the local
    artifact store (`lead_scoring.storage`), if there is one.
    """
    if cfg.model_artifact:
        return cfg.model_artifact
    try:
        from lead_scoring.storage import artifacts
    except ImportError:
        return None
    finder = getattr(artifacts, "local_production_uri", None)
    if callable(finder):
        found = finder()
        return str(found) if found else None
    root = (cfg.state_root or cfg.state.parent) / "artifacts"
    if not root.is_dir():
        return None
    repo = artifacts.ArtifactRepository(artifacts.LocalBlobs(root))
    try:
        version = repo.production_version()
    except (OSError, ValueError, KeyError):
        log.warning("could not read the production pointer under %s; not starting the model server", root)
        return None
    return repo.artifact(version).uri if version else None


def model_server_argv(cfg: StackConfig, artifact_uri: str) -> list[str] | None:
    """The command that runs the serving module (`python -m lead_scoring.serving`), or None without one."""
    import importlib.util

    if importlib.util.find_spec("lead_scoring.serving.__main__") is None:
        log.warning("lead_scoring.serving has no entry point; the stack starts without a model server")
        return None
    # --allow-swap: the local deployment asset hot-swaps the model in the running server.
    return [sys.executable, "-m", "lead_scoring.serving", "--artifact", artifact_uri, "--host", cfg.host,
            "--port", str(cfg.model_port), "--model-name", cfg.model_name, "--allow-swap"]


# ------------------------------------------------------------------------------------------------
# the stack


def _port_owner(port: int) -> str:
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
                with contextlib.suppress(psutil.Error):
                    proc = psutil.Process(conn.pid)
                    return f"pid {conn.pid} ({proc.name()}: {' '.join(proc.cmdline()[:3])[:80]})"
                return f"pid {conn.pid}"
    return "another process"


def _die_with_parent() -> None:
    """preexec_fn: ask Linux to SIGTERM this child when its parent dies (prctl PR_SET_PDEATHSIG)."""
    import ctypes

    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    pr_set_pdeathsig = 1
    libc.prctl(pr_set_pdeathsig, signal.SIGTERM)


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        # As the JVM servers do: a port whose last connection is in TIME_WAIT is free to listen on.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _rss(proc: psutil.Process) -> int | None:
    with contextlib.suppress(psutil.Error):
        return proc.memory_info().rss
    return None


def new_cluster_id() -> str:
    """A Kafka cluster id: a base64url-encoded UUID without padding. Like Kafka's own Uuid.randomUuid(),
    never one starting with "-", which kafka-storage's argument parser would take for an option (1 in 64
    formats failed with "argument --cluster-id/-t: expected one argument")."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Stack:
    """The local stack rooted at `cfg.state`, with jars from `cfg.cache`."""

    def __init__(self, cfg: StackConfig | None = None):
        self.cfg = cfg or StackConfig.from_env()
        self.layout = Layout(self.cfg.cache)

    # ---- folders -------------------------------------------------------------------------------

    @property
    def run_dir(self) -> Path:
        return self.cfg.state / "run"

    @property
    def log_dir(self) -> Path:
        return self.cfg.state / "logs"

    @property
    def kafka_dir(self) -> Path:
        return self.cfg.state / "kafka"

    @property
    def flink_dir(self) -> Path:
        return self.cfg.state / "flink"

    @property
    def flink_conf_dir(self) -> Path:
        return self.flink_dir / "conf"

    def log_path(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def _record_path(self, name: str) -> Path:
        return self.run_dir / f"{name}.json"

    # ---- records of started processes -----------------------------------------------------------

    def _read_record(self, name: str) -> dict | None:
        path = self._record_path(name)
        if not path.is_file():
            return None
        try:
            return json.loads(path.read_text())
        except ValueError:
            return None

    def _process(self, name: str) -> psutil.Process | None:
        """The live process `up` started for `name`, or None (also when its pid was recycled)."""
        rec = self._read_record(name)
        if not rec:
            return None
        try:
            proc = psutil.Process(int(rec["pid"]))
            if abs(proc.create_time() - float(rec["create_time"])) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except (psutil.Error, KeyError, ValueError):
            return None

    # ---- configuration files -------------------------------------------------------------------

    def _write_kafka_config(self) -> Path:
        c = self.cfg
        data = self.kafka_dir / "data"
        data.mkdir(parents=True, exist_ok=True)
        props = {
            "process.roles": "broker,controller",
            "node.id": "1",
            # A static voter set (not `--standalone`): the controller port can change between runs.
            "controller.quorum.voters": f"1@{c.host}:{c.kafka_controller_port}",
            "listeners": f"PLAINTEXT://{c.host}:{c.kafka_port},CONTROLLER://{c.host}:{c.kafka_controller_port}",
            "advertised.listeners": f"PLAINTEXT://{c.host}:{c.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "default.replication.factor": "1",
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": "1",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "true",
            # Fewer threads than the defaults: one local client set, two cores.
            "num.network.threads": "2",
            "num.io.threads": "4",
            "background.threads": "4",
            "log.retention.hours": "168",
        }
        path = self.kafka_dir / "server.properties"
        path.write_text("".join(f"{k}={v}\n" for k, v in props.items()))
        (self.kafka_dir / "log4j2.properties").write_text(_LOG4J2_CONSOLE.format(extra=_KAFKA_LOGGERS))
        return path

    def _kafka_java(self) -> list[str]:
        return [
            "java", f"-Xms{self.cfg.kafka_heap}", f"-Xmx{self.cfg.kafka_heap}", *KAFKA_JVM_OPTS,
            f"-Dlog4j2.configurationFile={self.kafka_dir / 'log4j2.properties'}",
            "-cp", self.layout.kafka_classpath(),
        ]

    def _format_kafka(self, server_properties: Path) -> None:
        """Format the KRaft log dir once; later starts reuse it, which is what keeps data across up/down."""
        if (self.kafka_dir / "data" / "meta.properties").is_file():
            return
        cluster_id = new_cluster_id()
        cmd = [*self._kafka_java(), "kafka.tools.StorageTool", "format", "-t", cluster_id,
               "-c", str(server_properties)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise StackError(
                "formatting the Kafka storage failed; fix the cause below or wipe it with "
                f"`lead-scoring stack reset`:\n{(proc.stdout + proc.stderr)[-2000:]}"
            )
        log.info("formatted Kafka storage (cluster id %s)", cluster_id)

    def _write_flink_config(self) -> Path:
        c = self.cfg
        conf = self.flink_conf_dir
        conf.mkdir(parents=True, exist_ok=True)
        for sub in ("checkpoints", "savepoints", "tmp"):
            (self.flink_dir / sub).mkdir(parents=True, exist_ok=True)
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
            "parallelism.default": 1,
            "rest.address": c.host,
            "rest.bind-address": c.host,
            "rest.port": c.flink_rest_port,
            "state.backend.type": "hashmap",
            "execution.checkpointing.interval": c.checkpoint_interval,
            # Keep the last checkpoint when a job is cancelled or the cluster stops, so a statement can
            # be resumed from it after `stack down` / `stack up`.
            "execution.checkpointing.externalized-checkpoint-retention": "RETAIN_ON_CANCELLATION",
            "execution.checkpointing.dir": (self.flink_dir / "checkpoints").as_uri(),
            "execution.checkpointing.savepoint-dir": (self.flink_dir / "savepoints").as_uri(),
            "execution.target": "remote",
            "io.tmp.dirs": str(self.flink_dir / "tmp"),
            "web.tmpdir": str(self.flink_dir / "tmp"),
            "sql-gateway.endpoint.rest.address": c.host,
            "sql-gateway.endpoint.rest.bind-address": c.host,
            "sql-gateway.endpoint.rest.port": c.sql_gateway_port,
        }
        text = "# Written by `lead-scoring stack up` from StackConfig; edits are overwritten.\n"
        text += "".join(f"{k}: {json.dumps(v) if isinstance(v, str) else v}\n" for k, v in settings.items())
        (conf / "config.yaml").write_text(text)
        (conf / "log4j.properties").write_text(_LOG4J2_CONSOLE.format(extra=_FLINK_LOGGERS))
        return conf

    def _flink_resource_params(self, which: str) -> tuple[list[str], list[str]]:
        """(JVM options, dynamic -D options) as bin/jobmanager.sh and bin/taskmanager.sh compute them."""
        cp = f"{self.layout.bash_java_utils}:{self.layout.flink_classpath()}"
        cmd = ["java", "-cp", cp, "org.apache.flink.runtime.util.bash.BashJavaUtils",
               f"GET_{which}_RESOURCE_PARAMS", "--configDir", str(self.flink_conf_dir)]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        marker = "BASH_JAVA_UTILS_EXEC_RESULT:"
        lines = [ln[len(marker):] for ln in proc.stdout.splitlines() if ln.startswith(marker)]
        if proc.returncode != 0 or len(lines) < 2:
            raise StackError(
                f"Flink rejected the {which} memory settings; check LEAD_SCORING_FLINK_{which[:2]}_MEMORY:\n"
                f"{(proc.stdout + proc.stderr)[-2000:]}"
            )
        return shlex.split(lines[0]), shlex.split(lines[1])

    def _flink_jvm_common(self, name: str) -> list[str]:
        return [
            *shlex.split(FLINK_JAVA17_OPTS),
            f"-Dlog.file={self.log_path(name)}",
            f"-Dlog4j.configurationFile=file:{self.flink_conf_dir / 'log4j.properties'}",
        ]

    def _flink_env(self) -> dict[str, str]:
        home = self.layout.flink_home
        return {
            "FLINK_CONF_DIR": str(self.flink_conf_dir),
            "FLINK_HOME": str(home),
            "FLINK_LIB_DIR": str(home / "lib"),
            "FLINK_OPT_DIR": str(home / "opt"),
            "FLINK_PLUGINS_DIR": str(home / "plugins"),
        }

    # ---- service specs -------------------------------------------------------------------------

    def specs(self, names: Iterable[str]) -> list[ServiceSpec]:
        """Specs for `names` (writes the config files those services read)."""
        c = self.cfg
        wanted = set(names)
        out: list[ServiceSpec] = []
        if KAFKA in wanted:
            props = self._write_kafka_config()
            self._format_kafka(props)
            out.append(ServiceSpec(
                KAFKA, f"kafka://{c.kafka_bootstrap}",
                {c.kafka_port: "LEAD_SCORING_KAFKA_PORT",
                 c.kafka_controller_port: "LEAD_SCORING_KAFKA_CONTROLLER_PORT"},
                [*self._kafka_java(), "kafka.Kafka", str(props)],
                lambda: kafka_health(c.kafka_bootstrap), cwd=self.kafka_dir,
            ))
        if wanted & {JOBMANAGER, TASKMANAGER, SQL_GATEWAY}:
            self._write_flink_config()
        if JOBMANAGER in wanted:
            jvm, dyn = self._flink_resource_params("JM")
            out.append(ServiceSpec(
                JOBMANAGER, c.flink_rest_url,
                {c.flink_rest_port: "LEAD_SCORING_FLINK_REST_PORT", c.flink_rpc_port: "LEAD_SCORING_FLINK_RPC_PORT"},
                ["java", *jvm, *self._flink_jvm_common(JOBMANAGER), "-classpath", self.layout.flink_classpath(),
                 "org.apache.flink.runtime.entrypoint.StandaloneSessionClusterEntrypoint",
                 "--configDir", str(self.flink_conf_dir), *dyn],
                lambda: flink_health(c.flink_rest_url, need_taskmanager=False),
                env=self._flink_env(), cwd=self.flink_dir,
            ))
        if TASKMANAGER in wanted:
            jvm, dyn = self._flink_resource_params("TM")
            out.append(ServiceSpec(
                TASKMANAGER, c.flink_rest_url + "/#/task-manager", {},
                ["java", *jvm, *self._flink_jvm_common(TASKMANAGER), "-classpath", self.layout.flink_classpath(),
                 "org.apache.flink.runtime.taskexecutor.TaskManagerRunner",
                 "--configDir", str(self.flink_conf_dir), *dyn],
                lambda: flink_health(c.flink_rest_url, need_taskmanager=True),
                env=self._flink_env(), cwd=self.flink_dir,
            ))
        if SQL_GATEWAY in wanted:
            out.append(ServiceSpec(
                SQL_GATEWAY, c.sql_gateway_url, {c.sql_gateway_port: "LEAD_SCORING_SQL_GATEWAY_PORT"},
                ["java", f"-Xms{c.sql_gateway_heap}", f"-Xmx{c.sql_gateway_heap}",
                 *self._flink_jvm_common(SQL_GATEWAY), "-classpath", self.layout.flink_classpath(gateway=True),
                 "org.apache.flink.table.gateway.SqlGateway"],
                lambda: gateway_health(c.sql_gateway_url),
                env=self._flink_env(), cwd=self.flink_dir,
            ))
        if MODEL_SERVER in wanted:
            uri = resolve_model_artifact(c)
            argv = model_server_argv(c, uri) if uri else None
            if argv:
                out.append(ServiceSpec(
                    MODEL_SERVER, c.model_url, {c.model_port: "LEAD_SCORING_MODEL_PORT"}, argv,
                    lambda: model_health(c.model_url, c.model_name),
                ))
            else:
                log.info("no model artifact (or no serving entry point) yet: not starting the model server")
        for worker in WORKERS:
            if worker in wanted:
                from lead_scoring.crm import workers as crm_workers

                out.append(ServiceSpec(
                    worker, f"kafka://{c.kafka_bootstrap}#group={crm_workers.GROUP_IDS[worker]}", {},
                    crm_workers.stack_service_argv(worker, c.kafka_bootstrap),
                    lambda w=worker: crm_workers.worker_health(w, c.state_root),
                    env=crm_workers.stack_service_env(c.state_root), cwd=self.cfg.state,
                ))
        return out

    # ---- lifecycle -----------------------------------------------------------------------------

    def _check_ports(self, specs: list[ServiceSpec]) -> None:
        problems = []
        for spec in specs:
            for port, env_var in spec.ports.items():
                if not _port_free(self.cfg.host, port):
                    hint = f"set {env_var} to another port"
                    problems.append(
                        f"port {self.cfg.host}:{port} ({spec.name}) is already in use by {_port_owner(port)}: "
                        f"stop that process or {hint}"
                    )
        if problems:
            raise StackError("cannot start the stack:\n  " + "\n  ".join(problems))

    def _start(self, spec: ServiceSpec) -> psutil.Process:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        logfile = self.log_path(spec.name)
        env = {**os.environ, **spec.env}
        with open(logfile, "ab") as out:
            out.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} stack up: starting {spec.name}\n".encode())
            out.flush()
            popen = subprocess.Popen(
                spec.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                cwd=spec.cwd, start_new_session=True,  # own session: survives the CLI, killable as a group
                preexec_fn=_die_with_parent if self.cfg.die_with_parent and sys.platform == "linux" else None,
            )
        proc = psutil.Process(popen.pid)
        record = {"pid": popen.pid, "create_time": proc.create_time(), "url": spec.url,
                  "argv": spec.argv, "started_at": time.time()}
        self._record_path(spec.name).write_text(json.dumps(record))
        log.info("started %s (pid %d), log: %s", spec.name, popen.pid, logfile)
        return proc

    def _log_tail(self, name: str, lines: int = 30) -> str:
        path = self.log_path(name)
        if not path.is_file():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def up(self, services: Iterable[str] | None = None) -> list[ServiceStatus]:
        """Start what is not running, wait until everything is healthy, return the status table.

        On any failure the services started by this call are stopped again, so nothing is left
        half-running; services that were already running are left alone.
        """
        names = [n for n in SERVICE_ORDER if services is None or n in set(services)]
        require_java()
        require_installed(self.layout)
        self.cfg.state.mkdir(parents=True, exist_ok=True)
        running = {n for n in names if self._process(n) is not None}
        to_start = [n for n in names if n not in running]
        started: list[str] = []
        t0 = time.monotonic()
        try:
            specs = self.specs(to_start)
            all_specs = {s.name: s for s in specs}
            self._check_ports(specs)
            for spec in specs:
                self._start(spec)
                started.append(spec.name)
            # Already-running services are health-checked too, with the same checks.
            checks = {n: self._health_check(n) for n in names if n in running or n in all_specs}
            self._wait_healthy(checks, started)
        except BaseException:
            if started:
                log.error("stopping what this `up` started: %s", ", ".join(started))
                self.down(started)
            raise
        if started:
            log.info("stack healthy %.1f s after start", time.monotonic() - t0)
        return self.status(names)

    def _health_check(self, name: str) -> Callable[[], str | None]:
        c = self.cfg
        return {
            KAFKA: lambda: kafka_health(c.kafka_bootstrap),
            JOBMANAGER: lambda: flink_health(c.flink_rest_url, need_taskmanager=False),
            TASKMANAGER: lambda: flink_health(c.flink_rest_url, need_taskmanager=True),
            SQL_GATEWAY: lambda: gateway_health(c.sql_gateway_url),
            MODEL_SERVER: lambda: model_health(c.model_url, c.model_name),
            **{w: (lambda w=w: _worker_health(w, c.state_root)) for w in WORKERS},
        }[name]

    def _wait_healthy(self, checks: dict[str, Callable[[], str | None]], started: list[str]) -> None:
        deadline = time.monotonic() + self.cfg.start_timeout_s
        pending = dict(checks)
        waiting: dict[str, str] = {}
        while pending:
            for name in list(pending):
                if self._process(name) is None:
                    raise StackError(
                        f"{name} exited during start. Last lines of {self.log_path(name)}:\n{self._log_tail(name)}\n"
                        f"Fix the cause above, then run `lead-scoring stack up` again "
                        f"(`lead-scoring stack logs {name}` shows the whole log)."
                    )
                problem = pending[name]()
                if problem is None:
                    log.info("%s is healthy", name)
                    del pending[name]
                else:
                    waiting[name] = problem
            if not pending:
                return
            if time.monotonic() > deadline:
                detail = "; ".join(f"{n}: {waiting.get(n, '?')}" for n in pending)
                raise StackError(
                    f"not healthy after {self.cfg.start_timeout_s:.0f} s ({detail}). See `lead-scoring stack logs "
                    f"SERVICE`; raise LEAD_SCORING_STACK_START_TIMEOUT on a slow machine."
                )
            time.sleep(0.5)

    def adopt(self, name: str, pid: int, url: str) -> None:
        """Record a process started outside `up` (the model server that `model_deployment` starts)
        so that `status` shows it and `down` stops it like the rest."""
        proc = psutil.Process(pid)
        self.run_dir.mkdir(parents=True, exist_ok=True)
        record = {"pid": pid, "create_time": proc.create_time(), "url": url, "argv": proc.cmdline(),
                  "started_at": time.time(), "adopted": True}
        self._record_path(name).write_text(json.dumps(record))

    def adopted_extras(self) -> list[str]:
        """Names of adopted processes that are not stack services (e.g. the demo lead generator)."""
        if not self.run_dir.is_dir():
            return []
        names = []
        for path in sorted(self.run_dir.glob("*.json")):
            rec = self._read_record(path.stem)
            if rec and rec.get("adopted") and path.stem not in SERVICE_ORDER:
                names.append(path.stem)
        return names

    def down(self, services: Iterable[str] | None = None) -> list[str]:
        """Stop the processes `up` started (by recorded pid), TERM first, KILL after the timeout.

        Adopted extras go first: they are Kafka clients (a producer stopped after the broker would wait
        for acknowledgements that cannot come)."""
        order = [*self.adopted_extras(), *reversed(SERVICE_ORDER)]
        names = [n for n in order if services is None or n in set(services)]
        stopped = []
        for name in names:
            proc = self._process(name)
            if proc is None:
                self._record_path(name).unlink(missing_ok=True)
                continue
            log.info("stopping %s (pid %d)", name, proc.pid)
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=self.cfg.stop_timeout_s)
            except psutil.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", name, self.cfg.stop_timeout_s)
                with contextlib.suppress(psutil.NoSuchProcess):
                    proc.kill()
                    proc.wait(timeout=10)
            self._record_path(name).unlink(missing_ok=True)
            stopped.append(name)
        return stopped

    def restart(self, services: Iterable[str]) -> list[ServiceStatus]:
        names = list(services)
        self.down(names)
        return self.up(names)

    def status(self, services: Iterable[str] | None = None) -> list[ServiceStatus]:
        names = [n for n in SERVICE_ORDER if services is None or n in set(services)]
        out = []
        for name in self.adopted_extras() if services is None else []:
            rec = self._read_record(name) or {}
            proc = self._process(name)
            if proc is None:
                out.append(ServiceStatus(name, rec.get("url", ""), rec.get("pid"), "exited"))
                continue
            out.append(ServiceStatus(name, rec.get("url", ""), proc.pid, "running", rss_bytes=_rss(proc)))
        for name in names:
            rec = self._read_record(name)
            url = rec.get("url", "") if rec else ""
            proc = self._process(name)
            if proc is None:
                if rec is None:
                    if name == MODEL_SERVER:
                        continue  # optional: only listed when `up` started it
                    out.append(ServiceStatus(name, url, None, "stopped"))
                else:
                    out.append(ServiceStatus(name, url, rec.get("pid"), "dead",
                                             detail=f"exited; see {self.log_path(name)}"))
                continue
            rss = _rss(proc)
            problem = self._health_check(name)()
            if problem is None and name in WORKERS:
                from lead_scoring.crm.workers import worker_lag_detail

                problem_or_lag = worker_lag_detail(self.cfg.kafka_bootstrap, name)
            else:
                problem_or_lag = problem or ""
            out.append(ServiceStatus(name, url, proc.pid, "healthy" if problem is None else "unhealthy",
                                     rss_bytes=rss, detail=problem_or_lag))
        return out

    def reset(self) -> None:
        """Stop everything this stack started, then delete its runtime data (not the jar cache)."""
        self.down()
        if self.cfg.state.exists():
            shutil.rmtree(self.cfg.state)
        log.info("wiped %s", self.cfg.state)

    def follow_log(self, name: str, lines: int = 50, follow: bool = False) -> Iterator[str]:
        """The last `lines` lines of a service's log, then (with follow) new lines as they come."""
        path = self.log_path(name)
        if not path.is_file():
            raise StackError(f"no log for {name} at {path}; has `lead-scoring stack up` run with this state dir?")
        with open(path, errors="replace") as fh:
            yield from fh.readlines()[-lines:]
            while follow:
                line = fh.readline()
                if line:
                    yield line
                else:
                    time.sleep(0.3)


def _worker_health(name: str, state_root: Path | None) -> str | None:
    from lead_scoring.crm.workers import worker_health

    return worker_health(name, state_root)


def total_rss(statuses: Iterable[ServiceStatus]) -> int:
    return sum(s.rss_bytes or 0 for s in statuses)


__all__ = [
    "FLINK_VERSION", "JOBMANAGER", "KAFKA", "MODEL_SERVER", "SERVICE_ORDER", "SINK_WORKER", "SQL_GATEWAY",
    "TASKMANAGER", "WORKERS", "WRITEBACK_WORKER",
    "ServiceStatus", "Stack", "StackError", "total_rss", "resolve_model_artifact",
]

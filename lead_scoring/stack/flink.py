"""The local Flink session cluster: JobManager, TaskManager and SQL Gateway from PyPI's flink-dist wheel.

How each process is run (`FlinkServices`) and answers its health check; the settings they share are written by
`flink_config.FlinkConfig`.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import httpx

from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.flink_config import FLINK_JAVA17_OPTS, FlinkConfig
from lead_scoring.stack.install import Layout, StackError
from lead_scoring.stack.spec import ServiceSpec, http_json

JOBMANAGER = "jobmanager"
TASKMANAGER = "taskmanager"
SQL_GATEWAY = "sql-gateway"


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
        self.config = FlinkConfig(cfg)

    @property
    def dir(self) -> Path:
        return self.config.dir

    @property
    def conf_dir(self) -> Path:
        return self.config.conf_dir

    def log_path(self, name: str) -> Path:
        return self.cfg.state / "logs" / f"{name}.log"

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
        self.config.write()
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
        self.config.write()
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
        self.config.write()
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

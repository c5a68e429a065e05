"""The product as `scripts/up` leaves it, on a private stack: what product_latency.py and user_flow.py measure.

`private_product()` starts, under a temporary LEAD_SCORING_HOME with free ports, what `scripts/up` starts: the
supervised stack (Kafka, Flink, SQL Gateway, model server, both CRM workers), then hands back a `Product` that
runs the CLI (`dg launch`, `lead-scoring ...`) against that stack and opens `lead-scoring ui` (the Dagster
webserver, daemon and code server, every sensor at its real interval, niced as scripts/up runs it).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

from lead_scoring.retry import wait_until
from lead_scoring.services import local_stack
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import install
from lead_scoring.stack.ports import free_port
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.warehouse.resources import DuckDBWarehouse

# process label -> a fragment of its command line
PROCESSES = {
    "kafka": "kafka.Kafka",
    "jobmanager": "StandaloneSessionClusterEntrypoint",
    "taskmanager": "TaskManagerRunner",
    "sql-gateway": "SqlGateway",
    "model-server": "lead_scoring.serving",
    "writeback": "worker writeback",
    "sink": "worker sink",
    "demo-leads": "leads generate",
    "supervisor": "stack supervise",
    "dagster-webserver": "dagster_webserver",
    "dagster-daemon": "dagster._daemon",
    "dagster-code-server": "dagster api grpc",
    "dagster-code-server-proxy": "dagster code-server",
    "dg-dev": "dg dev",
}
# training -> gated model -> deployment -> Flink rollout, as scripts/up launches it
PRODUCT_ASSETS = "group:training or group:serving or group:streaming"
DAGSTER = ("dagster-webserver", "dagster-daemon", "dagster-code-server", "dagster-code-server-proxy", "dg-dev")
TICK = re.compile(
    r"^\S*(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) \+0000\S* - dagster\.daemon\.SensorDaemon - \S*INFO\S* - "
    r"(Checking for new runs for sensor: (?P<start>\S+)|Sensor (?P<end>\S+) (skipped|.*))"
)


def _ours(proc: psutil.Process, line: str, root: str) -> bool:
    """A process of this benchmark's private stack (other stacks may run on the machine)."""
    if root in line:
        return True
    try:
        return any(root in value for value in proc.environ().values())
    except psutil.Error:
        return False


def processes(root: Path) -> dict[str, list[psutil.Process]]:
    found: dict[str, list[psutil.Process]] = defaultdict(list)
    for proc in psutil.process_iter(["cmdline"]):
        line = " ".join(proc.info["cmdline"] or [])
        for label, needle in PROCESSES.items():
            if needle in line and _ours(proc, line, str(root)):
                found[label].append(proc)
                break
    return found


def process_pids(root: Path) -> dict[str, int]:
    """label -> pid of each process of the private product (label-1, label-2 for the second and third)."""
    return {
        f"{name}-{i}" if i else name: proc.pid
        for name, group in processes(root).items()
        for i, proc in enumerate(group)
    }


def sensor_ticks(log_path: Path, since: float, until: float) -> dict[str, dict[str, float]]:
    """Per sensor: ticks and their total/max seconds inside [since, until], from the daemon's log lines."""
    started: dict[str, float] = {}
    durations: dict[str, list[float]] = defaultdict(list)
    if not log_path.exists():
        return {}
    for line in log_path.read_text(errors="replace").splitlines():
        clean = re.sub(r"\x1b\[[0-9;]*m", "", line)
        match = TICK.match(clean)
        if not match:
            continue
        at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S").timestamp() - time.timezone
        if not since <= at <= until:
            continue
        if match.group("start"):
            started[match.group("start")] = at
        elif match.group("end") in started:
            durations[match.group("end")].append(at - started.pop(match.group("end")))
    return {
        name: {"ticks": len(d), "total_s": round(sum(d), 1), "max_s": round(max(d), 1)}
        for name, d in sorted(durations.items())
    }


def champion(home: Path) -> str | None:
    """The production pointer's version (the local model store)."""
    try:
        return json.loads((home / "artifacts" / "models" / "PRODUCTION").read_text())["version"]
    except FileNotFoundError:
        return None


def _answers(url: str) -> bool | None:
    try:
        return True if httpx.get(url, timeout=2).status_code == 200 else None
    except httpx.HTTPError:  # not listening yet
        return None


@dataclass
class Product:
    """A private product: its home, stack config, the environment its CLI runs with, and the UI once opened."""

    home: Path
    cfg: StackConfig
    env: dict[str, str]
    stack: Any
    ui_nice: int = 10
    ui: subprocess.Popen | None = None
    ui_port: int = field(default_factory=free_port)

    @property
    def ui_log(self) -> Path:
        return self.home / "ui.log"

    @property
    def kafka(self) -> KafkaResource:
        return KafkaResource(bootstrap_servers=self.cfg.kafka_bootstrap)

    @property
    def warehouse(self) -> DuckDBWarehouse:
        return DuckDBWarehouse(path=str(self.home / "warehouse" / "lead_scoring.duckdb"))

    def run(self, *argv: str, check: bool = True, log_name: str | None = None) -> subprocess.CompletedProcess:
        """One of the product's commands (`dg ...`, `lead-scoring ...`) against this stack; its output to a log."""
        bin_dir = Path(sys.executable).parent
        out = self.home / f"{log_name or argv[0]}.log"
        with open(out, "ab") as log_file:
            done = subprocess.run(
                [str(bin_dir / argv[0]), *argv[1:]], env=self.env, stdout=log_file, stderr=subprocess.STDOUT
            )
        if check and done.returncode != 0:
            tail = "\n".join(out.read_text(errors="replace").splitlines()[-40:])
            raise SystemExit(f"`{' '.join(argv)}` failed (exit {done.returncode}):\n{tail}")
        return done

    def open_ui(self) -> None:
        """`lead-scoring ui`, niced as scripts/up runs it; returns once it answers and every sensor ticked once."""
        bin_dir = Path(sys.executable).parent
        with open(self.ui_log, "wb") as out:
            self.ui = subprocess.Popen(
                [str(bin_dir / "lead-scoring"), "ui", "--port", str(self.ui_port), "--nice", str(self.ui_nice)],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        wait_until(
            lambda: _answers(f"http://127.0.0.1:{self.ui_port}/server_info"),
            timeout_s=180,
            interval_s=2,
            what="the Dagster UI",
        )
        time.sleep(60)  # every sensor ticks at least once before anything is measured

    def signal_dagster(self, sig: int) -> None:
        for label, group in processes(self.home).items():
            if label in DAGSTER:
                for proc in group:
                    proc.send_signal(sig)


@contextlib.contextmanager
def private_product(ui_nice: int = 10) -> Iterator[Product]:
    """The supervised stack up on free ports under a temporary home; everything stopped on the way out."""
    tmp = Path(tempfile.mkdtemp(prefix="product-"))
    cfg = StackConfig.isolated(tmp)
    install(cfg)
    env = {
        **os.environ,
        "LEAD_SCORING_PROFILE": "local",
        "LEAD_SCORING_HOME": str(tmp),
        "LEAD_SCORING_STACK_CACHE": str(cfg.cache),
        "DAGSTER_HOME": str(tmp / "dagster_home"),
        "LEAD_SCORING_KAFKA_PORT": str(cfg.kafka_port),
        "LEAD_SCORING_KAFKA_CONTROLLER_PORT": str(cfg.kafka_controller_port),
        "LEAD_SCORING_FLINK_REST_PORT": str(cfg.flink_rest_port),
        "LEAD_SCORING_FLINK_RPC_PORT": str(cfg.flink_rpc_port),
        "LEAD_SCORING_SQL_GATEWAY_PORT": str(cfg.sql_gateway_port),
        "LEAD_SCORING_MODEL_PORT": str(cfg.model_port),
    }
    (tmp / "dagster_home").mkdir()
    (tmp / "dagster_home" / "dagster.yaml").symlink_to(Path("dagster.yaml").resolve())
    # This process starts the supervisor, whose services inherit its environment: the model server must resolve
    # the same home (and so the same local artifact signing key) as the `dg launch` that trains and signs.
    os.environ.update({k: v for k, v in env.items() if k.startswith(("LEAD_SCORING_", "DAGSTER_"))})
    product = Product(tmp, cfg, env, local_stack(cfg), ui_nice=ui_nice)
    try:
        product.stack.up()
        yield product
    finally:
        if product.ui is not None:
            product.ui.send_signal(signal.SIGTERM)
            product.ui.wait(30)
        product.stack.down()

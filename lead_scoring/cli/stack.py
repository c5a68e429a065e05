"""`lead-scoring stack install | up | down | status | logs | reset | adopt`: the local stack."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path
from typing import Optional

import psutil
import typer
from rich.console import Console
from rich.table import Table

from lead_scoring.services import catalog, local_stack
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.flink import JOBMANAGER, SQL_GATEWAY, TASKMANAGER
from lead_scoring.stack.install import StackError
from lead_scoring.stack.install import install as install_jars
from lead_scoring.stack.service_status import ServiceStatus, total_rss
from lead_scoring.stack.supervisor import Supervisor
from lead_scoring.streaming.healing import heal_local

app = typer.Typer(
    help="The local stack: Kafka 4 (KRaft) + Flink 2.3 + SQL Gateway + model server + CRM workers, "
    "kept running by a supervisor.",
    no_args_is_help=True,
)
console = Console()
log = logging.getLogger(__name__)


def _quiet_http() -> None:
    # httpx logs every health-check request at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
    raise typer.Exit(1)


COLOURS = {
    "healthy": "green",
    "running": "green",
    "starting": "cyan",
    "unhealthy": "yellow",
    "restarting": "yellow",
    "waiting": "yellow",
    "dead": "red",
    "failed": "red",
    "stopped": "dim",
    "exited": "dim",
}


def _table(statuses: list[ServiceStatus], title: str) -> Table:
    table = Table(title=title)
    for col in ("service", "url", "pid", "state", "restarts", "RSS MiB", "detail"):
        table.add_column(col)
    for s in statuses:
        restarts = str(s.restarts) + (f" (last: {s.last_exit})" if s.last_exit else "") if s.restarts else "-"
        table.add_row(
            s.name,
            s.url,
            str(s.pid or "-"),
            f"[{COLOURS.get(s.state, 'white')}]{s.state}[/]",
            restarts,
            f"{s.rss_bytes / 2**20:.0f}" if s.rss_bytes else "-",
            s.detail,
        )
    rss = total_rss(statuses)
    if rss:
        table.caption = f"total RSS {rss / 2**30:.2f} GiB"
    return table


def _check_service(name: Optional[str]) -> list[str] | None:
    if name is None:
        return None
    order = catalog(StackConfig.from_env()).order
    if name not in order:
        console.print(f"[red]unknown service {name!r}[/]; one of: {', '.join(order)}")
        raise typer.Exit(2)
    return [name]


@app.command()
def install(force: bool = typer.Option(False, "--force", help="Resolve again even if the cache is complete.")) -> None:
    """Resolve Kafka and Flink jars (Maven Central, PyPI) into the cache folder; offline afterwards."""
    started = time.monotonic()
    try:
        layout = install_jars(StackConfig.from_env(), force=force)
    except StackError as exc:
        _fail(exc)
        return
    console.print(f"stack jars ready in {layout.cache} ({time.monotonic() - started:.1f} s)")


@app.command()
def up(
    service: Optional[str] = typer.Argument(None, help="Start only this service (e.g. demo-leads)."),
    optional_wait: float = typer.Option(
        30.0,
        "--optional-wait",
        min=0.0,
        help="seconds to wait for the CRM workers once the engines are healthy; then a worker that is still not "
        "healthy is reported (which one, why) and `up` succeeds: the rest of the product works without it",
    ),
    restore_wait: float = typer.Option(
        180.0,
        "--restore-wait",
        min=0.0,
        help="seconds to wait for the deployed Flink statements to run again (restored from their savepoints)",
    ),
) -> None:
    """Start the stack (a no-op for services already running), wait until it is healthy.

    The supervisor keeps it running from then on: a service that dies is restarted with a backoff, and the
    Flink statements of the deployed pipeline come back when the JobManager does. A CRM worker that is
    stuck, waiting or dead does not fail `up`: it is named with its reason (and in `stack status`).
    """
    _quiet_http()
    stack = local_stack()
    started = time.monotonic()
    try:
        statuses = stack.up(_check_service(service), optional_wait_s=optional_wait)
    except StackError as exc:
        _fail(exc)
        return
    unhealthy = [s for s in statuses if s.state not in ("healthy", "running")]
    elapsed = time.monotonic() - started
    console.print(
        _table(
            statuses,
            f"local stack, up after {elapsed:.1f} s"
            + (f", {len(unhealthy)} not healthy" if unhealthy else ", healthy"),
        )
    )
    for s in unhealthy:
        console.print(
            f"[yellow]{s.name} is {s.state}[/]: {s.detail or '-'} (reported, not waited for; "
            f"`lead-scoring stack logs {s.name}`)",
            markup=True,
            highlight=False,
        )
    if service is None and not {s.name for s in unhealthy} & FLINK_SERVICES:
        wait_for_the_statements(stack.cfg, restore_wait)


# the services the deployed statements need to run
FLINK_SERVICES = {JOBMANAGER, TASKMANAGER, SQL_GATEWAY}


def wait_for_the_statements(cfg: StackConfig, timeout_s: float) -> None:
    """The deployed statements running again before `up` returns (the supervisor restores them when the JobManager
    answers; this joins it, serialised by the engine's lock, so nothing is resubmitted twice): `product status`
    right after finds the product scoring instead of asking for it to be rebuilt."""
    started = time.monotonic()
    restored = [a for actions in heal_local(cfg, timeout_s=timeout_s).values() for a in actions if a.action != "left"]
    if restored:
        what = "; ".join(f"{a.name} ({a.action} {a.resumed_from})".replace(" )", ")") for a in restored)
        console.print(f"statements restored after {time.monotonic() - started:.1f} s: {what}", highlight=False)


@app.command()
def down(service: Optional[str] = typer.Argument(None, help="Stop only this service.")) -> None:
    """Stop the stack (statements first stop with savepoints they resume from on the next `up`)."""
    stopped = local_stack().down(_check_service(service))
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def adopt(
    name: str = typer.Argument(..., help="a name for it in `status` (not one of the stack's services)"),
    pid: int = typer.Argument(..., help="its process id"),
    what: str = typer.Option("", "--what", help="what it talks to, shown in the status table"),
) -> None:
    """Record a process started outside `up` so `status` lists it and `down` stops it, before the services it uses."""
    stack = local_stack()
    if name in stack.catalog:
        console.print(f"[red]{name!r} is a stack service[/]; pick another name")
        raise typer.Exit(2)
    try:
        stack.adopt(name, pid, what)
    except psutil.NoSuchProcess:
        console.print(f"[red]no process {pid}[/]")
        raise typer.Exit(2) from None
    console.print(f"{name} (pid {pid}) will be stopped by `lead-scoring stack down`")


@app.command()
def status() -> None:
    """State, restarts, pid and memory of each service (and of the supervisor that keeps them running)."""
    _quiet_http()
    statuses = local_stack().status()
    console.print(_table(statuses, "local stack"))
    if any(s.state in ("dead", "unhealthy", "failed") for s in statuses):
        raise typer.Exit(1)


@app.command()
def logs(
    service: str = typer.Argument(..., help="a service, or 'supervisor'"),
    lines: int = typer.Option(50, "--lines", "-n"),
    follow: bool = typer.Option(False, "--follow", "-f"),
) -> None:
    """Tail a service's log file."""
    if service != "supervisor":
        _check_service(service)
    try:
        for line in local_stack().follow_log(service, lines=lines, follow=follow):
            sys.stdout.write(line)
            sys.stdout.flush()
    except StackError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@app.command()
def reset(yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Stop the stack and wipe its data (Kafka logs, Flink checkpoints, logs); keeps the jar cache."""
    stack = local_stack()
    if not yes:
        typer.confirm(f"Stop the stack and delete {stack.cfg.state}?", abort=True)
    stack.reset()
    console.print(f"wiped {stack.cfg.state}")


@app.command(hidden=True)
def supervise(
    config: Path = typer.Option(
        ..., "--config", exists=True, dir_okay=False, help="the StackConfig JSON `stack up` wrote"
    ),
) -> None:
    """Run the stack's supervisor in the foreground (`stack up` starts it; not for interactive use)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    _quiet_http()
    cfg = StackConfig.model_validate_json(config.read_text())
    Supervisor(catalog(cfg)).run()

"""`lead-scoring stack install | up | down | status | logs | reset`: the local Kafka + Flink stack."""

from __future__ import annotations

import logging
import sys
import time
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.install import StackError
from lead_scoring.stack.install import install as install_jars
from lead_scoring.stack.services import SERVICE_ORDER, ServiceStatus, Stack, total_rss

app = typer.Typer(help="The local streaming stack: Kafka 4 (KRaft) + Flink 2.3 + SQL Gateway + model server.",
                  no_args_is_help=True)
console = Console()


def _quiet_http() -> None:
    # httpx logs every health-check request at INFO.
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _fail(exc: Exception) -> None:
    console.print(f"[bold red]error:[/] {exc}", markup=True, highlight=False)
    raise typer.Exit(1)


def _table(statuses: list[ServiceStatus], title: str) -> Table:
    table = Table(title=title)
    for col in ("service", "url", "pid", "state", "RSS MiB", "detail"):
        table.add_column(col)
    colours = {"healthy": "green", "running": "green", "unhealthy": "yellow", "dead": "red", "stopped": "dim",
               "exited": "dim"}
    for s in statuses:
        table.add_row(
            s.name, s.url, str(s.pid or "-"), f"[{colours.get(s.state, 'white')}]{s.state}[/]",
            f"{s.rss_bytes / 2**20:.0f}" if s.rss_bytes else "-", s.detail,
        )
    rss = total_rss(statuses)
    if rss:
        table.caption = f"total RSS {rss / 2**30:.2f} GiB"
    return table


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


def _check_service(name: Optional[str]) -> list[str] | None:
    if name is None:
        return None
    if name not in SERVICE_ORDER:
        console.print(f"[red]unknown service {name!r}[/]; one of: {', '.join(SERVICE_ORDER)}")
        raise typer.Exit(2)
    return [name]


@app.command()
def up(service: Optional[str] = typer.Argument(None, help="Start only this service.")) -> None:
    """Start the stack (a no-op for services already running) and wait until it is healthy."""
    _quiet_http()
    stack = Stack()
    started = time.monotonic()
    try:
        statuses = stack.up(_check_service(service))
    except StackError as exc:
        _fail(exc)
        return
    console.print(_table(statuses, f"local stack, healthy after {time.monotonic() - started:.1f} s"))


@app.command()
def down(service: Optional[str] = typer.Argument(None, help="Stop only this service.")) -> None:
    """Stop exactly the processes `up` started (TERM, then KILL after the stop timeout)."""
    stopped = Stack().down(_check_service(service))
    console.print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@app.command()
def adopt(
    name: str = typer.Argument(..., help="a name for it in `status` (not one of the stack's services)"),
    pid: int = typer.Argument(..., help="its process id"),
    what: str = typer.Option("", "--what", help="what it talks to, shown in the status table"),
) -> None:
    """Record a process started outside `up` (scripts/up's demo lead generator) so `status` lists it
    and `down` stops it, before the services it uses."""
    import psutil

    if name in SERVICE_ORDER:
        console.print(f"[red]{name!r} is a stack service[/]; pick another name")
        raise typer.Exit(2)
    try:
        Stack().adopt(name, pid, what)
    except psutil.NoSuchProcess:
        console.print(f"[red]no process {pid}[/]")
        raise typer.Exit(2) from None
    console.print(f"{name} (pid {pid}) will be stopped by `lead-scoring stack down`")


@app.command()
def status() -> None:
    """Health, pid and memory of each service."""
    _quiet_http()
    statuses = Stack().status()
    console.print(_table(statuses, "local stack"))
    if any(s.state in ("dead", "unhealthy") for s in statuses):
        raise typer.Exit(1)


@app.command()
def logs(
    service: str = typer.Argument(..., help=f"One of: {', '.join(SERVICE_ORDER)}"),
    lines: int = typer.Option(50, "--lines", "-n"),
    follow: bool = typer.Option(False, "--follow", "-f"),
) -> None:
    """Tail a service's log file."""
    _check_service(service)
    try:
        for line in Stack().follow_log(service, lines=lines, follow=follow):
            sys.stdout.write(line)
            sys.stdout.flush()
    except StackError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        pass


@app.command()
def reset(yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Stop the stack and wipe its data (Kafka logs, Flink checkpoints, logs); keeps the jar cache."""
    stack = Stack()
    if not yes:
        typer.confirm(f"Stop the stack and delete {stack.cfg.state}?", abort=True)
    stack.reset()
    console.print(f"wiped {stack.cfg.state}")

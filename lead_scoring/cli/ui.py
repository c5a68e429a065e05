"""`lead-scoring ui`: the Dagster UI and daemon (`dg dev`), below the stream's priority, stopping within 10 s."""

from __future__ import annotations

import sys
from pathlib import Path

import typer

from lead_scoring.settings import project_root
from lead_scoring.stack.process import run_interruptible


def ui(
    host: str = typer.Option("127.0.0.1", "--host", "-h", help="address of the Dagster webserver"),
    port: int = typer.Option(3000, "--port", "-p"),
    workspace: Path = typer.Option(project_root() / "workspace.yaml", "--workspace", "-w", exists=True),
    niceness: int = typer.Option(
        10, "--nice", min=0, max=19, help="scheduling priority below the stream (Kafka, Flink, model server)"
    ),
    stop_timeout: float = typer.Option(
        8.0, "--stop-timeout", min=1.0, help="seconds Dagster may take to stop after Ctrl-C before it is killed"
    ),
) -> None:
    """`dg dev` for this project: Ctrl-C or SIGTERM stops it (and every process it started) within the timeout."""
    dg = str(Path(sys.executable).parent / "dg")
    code = run_interruptible(
        [dg, "dev", "-w", str(workspace), "-h", host, "-p", str(port)], niceness=niceness, stop_timeout_s=stop_timeout
    )
    raise typer.Exit(code if code >= 0 else 0)

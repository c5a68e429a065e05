"""The `lead-scoring` command: everything that is not a Dagster asset."""

from __future__ import annotations

import logging

import typer
from rich.logging import RichHandler

from lead_scoring.cli import crm, lifecycle, stack
from lead_scoring.serving.cli import serve

app = typer.Typer(
    name="lead-scoring",
    help="Real-time lead scoring: data, model server, local stack, replay, workers, score ledger and erasure.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    configure_logging(verbose)


def configure_logging(verbose: bool = False) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, rich_tracebacks=True)],
    )


# Sub-apps live with their concept; registered here so `lead-scoring --help` lists them all.
app.add_typer(crm.data_app, name="data")
app.add_typer(crm.leads_app, name="leads")
app.command("worker")(crm.worker)
app.add_typer(lifecycle.scores_app, name="scores")
app.command("erase")(lifecycle.erase)
app.command("serve")(serve)
app.add_typer(stack.app, name="stack")


def main() -> None:
    app()

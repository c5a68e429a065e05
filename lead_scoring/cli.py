"""The `lead-scoring` command: everything that is not a Dagster asset."""

from __future__ import annotations

import logging

import typer

app = typer.Typer(
    name="lead-scoring",
    help="Real-time lead scoring: data, model server, local stack, replay and workers.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)


@app.callback()
def _configure(verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logging.")) -> None:
    from rich.logging import RichHandler

    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(show_path=False, rich_tracebacks=True)],
    )


def _register() -> None:
    # Sub-apps live with their concept; registered here so `lead-scoring --help` lists them all.
    from lead_scoring.crm import cli as crm_cli
    from lead_scoring.stack import cli as stack_cli

    app.add_typer(crm_cli.data_app, name="data")
    app.add_typer(crm_cli.leads_app, name="leads")
    app.command("worker")(crm_cli.worker)

    from lead_scoring.serving.cli import serve

    app.command("serve")(serve)
    app.add_typer(stack_cli.app, name="stack")


_register()


def main() -> None:
    app()

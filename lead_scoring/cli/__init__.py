"""The `lead-scoring` command: everything that is not a Dagster asset.

Sub-commands are listed here and imported when called (click's documented lazy-loading pattern): each
imports what it needs at its module's top, and `lead-scoring stack status` or a supervised worker does not
pay for importing the model server, the training libraries and the Google clients (seconds on 2 cores).
"""

from __future__ import annotations

import importlib
import logging

import click
import typer
from rich.logging import RichHandler
from typer.core import TyperGroup

# name -> (module, attribute): a Typer app (a group of commands) or a command function
COMMANDS: dict[str, tuple[str, str]] = {
    "data": ("lead_scoring.cli.crm", "data_app"),
    "leads": ("lead_scoring.cli.crm", "leads_app"),
    "worker": ("lead_scoring.cli.crm", "worker"),
    "scores": ("lead_scoring.cli.lifecycle", "scores_app"),
    "erase": ("lead_scoring.cli.lifecycle", "erase"),
    "audit": ("lead_scoring.cli.audit", "audit_command"),
    "serve": ("lead_scoring.serving.cli", "serve"),
    "stack": ("lead_scoring.cli.stack", "app"),
    "plan": ("lead_scoring.cli.production", "plan"),
    "preflight": ("lead_scoring.cli.production", "preflight"),
    "ui": ("lead_scoring.cli.ui", "ui"),
    "model": ("lead_scoring.cli.model", "model_app"),
    "product": ("lead_scoring.cli.product", "app"),
}


class LazyCommands(TyperGroup):
    """Resolves a sub-command only when it is invoked (or when `--help` lists them all)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name]
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            command = typer.main.get_group(target)
        else:
            single = typer.Typer()
            single.command(cmd_name)(target)
            command = typer.main.get_command(single)
        command.name = cmd_name
        return command


app = typer.Typer(
    name="lead-scoring",
    cls=LazyCommands,
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


def main() -> None:
    app()

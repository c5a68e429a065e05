"""`lead-scoring model card VERSION`: a model version's card (data, features left out, metrics with intervals,
calibration, grades, segments, what changed against the champion) as markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from lead_scoring.settings import current_profile
from lead_scoring.storage.definitions import model_store as model_store_resource
from lead_scoring.training.card import model_card_markdown

model_app = typer.Typer(help="Model versions in the model store: their cards.", no_args_is_help=True)


@model_app.command("card")
def card(
    version: str = typer.Argument(..., help="a model version in the store, or 'production' for the champion"),
    out: Optional[Path] = typer.Option(None, "--out", help="write the markdown to this file instead of stdout"),
) -> None:
    """Print the model card of VERSION (markdown: pipe it to a file or a viewer)."""
    repo = model_store_resource(current_profile()).process_config_and_initialize().repository()
    if version == "production":
        version = repo.production_version() or ""
        if not version:
            raise typer.BadParameter(
                "no production model yet; pass a version (lead-scoring model card VERSION)", param_hint="VERSION"
            )
    if version not in repo.versions():
        known = ", ".join(sorted(repo.versions())[-5:]) or "none"
        raise typer.BadParameter(
            f"no model version {version!r} in the model store (newest: {known})", param_hint="VERSION"
        )
    markdown, _ = model_card_markdown(repo, version)
    if out is None:
        typer.echo(markdown)
    else:
        out.write_text(markdown)
        typer.echo(f"model card of {version} written to {out}")

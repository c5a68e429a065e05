"""`lead-scoring scores export`: the score ledger out."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import pandas as pd
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
)

from lead_scoring.lifecycle.ledger import (
    EXPORT_FORMATS,
    LEDGER_TABLE,
    ledger_slice,
    write_export,
)
from lead_scoring.settings import current_profile
from lead_scoring.warehouse.definitions import warehouse as warehouse_resource

console = Console()

scores_app = typer.Typer(help="The score ledger (lead_score_history): every score produced, champion and shadow.",
                         no_args_is_help=True)


def _timestamp(value: str, option: str) -> datetime:
    """A CLI date or timestamp, as UTC (a value without a zone is taken as UTC)."""
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date or timestamp (e.g. 2026-11-01 or "
                                 "2026-11-01T08:00:00Z)", param_hint=option) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime().astimezone(timezone.utc)


@scores_app.command("export")
def export(
    since: str = typer.Option(..., "--since", help="first scored_ts to export (date or ISO timestamp; UTC if no zone)"),
    out: Path = typer.Option(..., "--out", "-o", help="output file: .parquet or .csv"),
    until: Optional[str] = typer.Option(None, "--until", help="export scores before this (default: all newer)"),
    shadow: bool = typer.Option(True, "--shadow/--champion-only", help="include the challenger's shadow scores"),
) -> None:
    """Export the score ledger scored since a date to Parquet or CSV (timestamps in UTC)."""
    if out.suffix.lower() not in EXPORT_FORMATS:
        raise typer.BadParameter(f"unsupported format {out.suffix or '(none)'!r}: use .parquet or .csv",
                                 param_hint="--out")
    start = _timestamp(since, "--since")
    end = _timestamp(until, "--until") if until else None
    warehouse = warehouse_resource(current_profile()).process_config_and_initialize()
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console) as bar:
        task = bar.add_task(f"reading {LEDGER_TABLE} from {warehouse.describe()}", total=None)
        frame = ledger_slice(warehouse, start, end, include_shadow=shadow)
        bar.update(task, description=f"writing {out.name}", total=len(frame), completed=0)
        rows = write_export(frame, out, progress=lambda n: bar.advance(task, n))
    window = f"{start.isoformat()} .. {end.isoformat() if end else 'now'}"
    console.print(f"exported {rows:,} scores ({window}, {'with' if shadow else 'without'} shadow scores) to {out}")

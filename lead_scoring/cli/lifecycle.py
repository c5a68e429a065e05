"""`lead-scoring scores export` and `lead-scoring erase`: the score ledger out, a lead's data gone."""

from __future__ import annotations

import logging
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

from lead_scoring.crm.definitions import crm as crm_resource
from lead_scoring.lifecycle.erasure import (
    ErasureIncomplete,
    ErasureRegister,
    erase_leads,
)
from lead_scoring.lifecycle.ledger import (
    EXPORT_FORMATS,
    LEDGER_TABLE,
    ledger_slice,
    write_export,
)
from lead_scoring.settings import ConfigurationError, current_profile
from lead_scoring.warehouse.definitions import warehouse as warehouse_resource

logger = logging.getLogger(__name__)
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


def erase(
    ids: list[str] = typer.Argument(..., help="Salesforce Ids of the leads / contacts to erase"),
    keep_crm: bool = typer.Option(False, "--keep-crm", help="do not clear the score fields in the CRM"),
) -> None:
    """Erase leads: every warehouse row (raw, CRM, scores, ledger), future training data, the CRM's score.

    The Id's keyed hash goes into the erasure register, so its records still in Kafka are dropped.
    """
    profile = current_profile()
    warehouse = warehouse_resource(profile).process_config_and_initialize()
    try:
        register = ErasureRegister.for_profile(warehouse, profile)
    except ConfigurationError as exc:
        console.print(f"[red]cannot erase:[/red] {exc}")
        raise typer.Exit(2) from None
    crm = None if keep_crm else crm_resource(profile).process_config_and_initialize().writer(warehouse)
    try:
        with console.status(f"erasing {len(set(ids))} Id(s) from {warehouse.describe()}"):
            report = erase_leads(ids, warehouse, register, crm=crm)
    except ErasureIncomplete as exc:
        console.print(f"[red]erasure incomplete:[/red] {exc}")
        raise typer.Exit(1) from None
    for table, rows in report.rows_deleted.items():
        console.print(f"  {table}: {rows:,} row(s) deleted")
    if report.crm_target:
        console.print(f"  CRM {report.crm_target}: {report.crm_cleared} score(s) cleared")
    for record_id, reason in report.crm_failures:
        console.print(f"  [yellow]CRM not cleared for {record_id}:[/yellow] {reason}")
    console.print(f"erased {report.ids} Id(s): {report.total_rows:,} row(s) deleted, no row left; records still in "
                  "Kafka are dropped until retention removes them (docs/lifecycle.md)")
    if report.crm_failures:
        raise typer.Exit(1)

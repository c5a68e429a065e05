"""`lead-scoring data ...`: synthetic leads and CRM export imports."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console

logger = logging.getLogger(__name__)
console = Console()

data_app = typer.Typer(help="Generate synthetic CRM leads or import a CRM export into the warehouse.",
                       no_args_is_help=True)


@data_app.command("generate")
def generate(
    rows: int = typer.Option(3000, "--rows", "-n", min=0, help="number of Leads + Contacts"),
    out: Path = typer.Option(..., "--out", "-o", help="output file: .jsonl, .csv or .parquet"),
    seed: int = typer.Option(7, help="same seed, same records"),
    contact_share: float = typer.Option(0.15, min=0.0, max=1.0, help="share of Contacts"),
    events: bool = typer.Option(False, "--events", help="write created + later updated (outcome) events"),
) -> None:
    """Write realistic synthetic Salesforce Leads and Contacts with a learnable conversion signal."""
    from lead_scoring.crm.synthetic import generate_leads, to_events, write_frame

    started = time.perf_counter()
    with console.status(f"generating {rows:,} records"):
        frame = generate_leads(rows, seed=seed, contact_share=contact_share)
        if events:
            frame = to_events(frame, seed=seed)
        try:
            write_frame(frame, out)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint="--out") from None
    converted = frame["IsConverted"].dropna()
    console.print(
        f"wrote {len(frame):,} records to {out} in {time.perf_counter() - started:.1f}s "
        f"({(frame['_ObjectType'] == 'Contact').sum():,} contacts, "
        f"{converted.astype(bool).mean():.1%} of {len(converted):,} decided leads converted)"
    )


@data_app.command("import")
def import_csv(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="CRM export (CSV)"),
    mapping: Path = typer.Option(..., "--mapping", "-m", exists=True, dir_okay=False, help="column mapping (YAML)"),
) -> None:
    """Load a CRM export into the warehouse (`crm_leads_raw`; bad rows to `rejected_leads`)."""
    from lead_scoring.crm.importer import ExportMapping, MappingError, import_export
    from lead_scoring.resources import build_resources

    try:
        export_mapping = ExportMapping.load(mapping)
        with console.status(f"reading {path.name}"):
            result = import_export(path, export_mapping)
    except MappingError as exc:
        console.print(f"[red]mapping error:[/red] {exc}")
        raise typer.Exit(2) from None
    warehouse = build_resources()["warehouse"]
    stamp = pd.Timestamp.now(tz="UTC")
    source = f"import:{path.name}"
    with console.status(f"loading into {warehouse.describe()}"):
        loaded = warehouse.append("crm_leads_raw", result.records.assign(_source=source, _ingested_at=stamp))
        rejected = warehouse.append("rejected_leads", result.rejected.assign(_source=source, _ingested_at=stamp))
    console.print(f"imported {loaded:,} records into crm_leads_raw, {rejected:,} rejected "
                  f"(see rejected_leads) from {path} via mapping {export_mapping.name}")

"""`lead-scoring scores export|rescore` and `lead-scoring erase`: the score ledger out, every open lead re-scored,
a lead's data gone."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
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
    TimeElapsedColumn,
)

from lead_scoring.crm.definitions import crm as crm_resource
from lead_scoring.lifecycle.erased_ids import ErasedIdsNotPublished
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
from lead_scoring.production.api_budget import RESCORE_BURST, rescore_pace
from lead_scoring.promotion.rescore import RescoreProgress, rescore, start_or_resume
from lead_scoring.retry import WaitTimeout, wait_until
from lead_scoring.settings import ConfigurationError, current_profile
from lead_scoring.storage.definitions import model_store as model_store_resource
from lead_scoring.streaming.definitions import kafka as kafka_resource
from lead_scoring.streaming.lag import end_offset
from lead_scoring.streaming.topics import CONTACT_SCORES, INPUT_RAW, LEAD_SCORES
from lead_scoring.warehouse.definitions import warehouse as warehouse_resource

logger = logging.getLogger(__name__)
console = Console()

scores_app = typer.Typer(
    help="The score ledger (lead_score_history): every score produced, champion and shadow.", no_args_is_help=True
)


def _timestamp(value: str, option: str) -> datetime:
    """A CLI date or timestamp, as UTC (a value without a zone is taken as UTC)."""
    try:
        ts = pd.Timestamp(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not a date or timestamp (e.g. 2026-11-01 or 2026-11-01T08:00:00Z)", param_hint=option
        ) from None
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.to_pydatetime().astimezone(UTC)


@scores_app.command("export")
def export(
    since: str = typer.Option(..., "--since", help="first scored_ts to export (date or ISO timestamp; UTC if no zone)"),
    out: Path = typer.Option(..., "--out", "-o", help="output file: .parquet or .csv"),
    until: Optional[str] = typer.Option(None, "--until", help="export scores before this (default: all newer)"),
    shadow: bool = typer.Option(True, "--shadow/--champion-only", help="include the challenger's shadow scores"),
) -> None:
    """Export the score ledger scored since a date to Parquet or CSV (timestamps in UTC)."""
    if out.suffix.lower() not in EXPORT_FORMATS:
        raise typer.BadParameter(
            f"unsupported format {out.suffix or '(none)'!r}: use .parquet or .csv", param_hint="--out"
        )
    start = _timestamp(since, "--since")
    end = _timestamp(until, "--until") if until else None
    warehouse = warehouse_resource(current_profile()).process_config_and_initialize()
    with Progress(
        SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console
    ) as bar:
        task = bar.add_task(f"reading {LEDGER_TABLE} from {warehouse.describe()}", total=None)
        frame = ledger_slice(warehouse, start, end, include_shadow=shadow)
        bar.update(task, description=f"writing {out.name}", total=len(frame), completed=0)
        rows = write_export(frame, out, progress=lambda n: bar.advance(task, n))
    window = f"{start.isoformat()} .. {end.isoformat() if end else 'now'}"
    console.print(f"exported {rows:,} scores ({window}, {'with' if shadow else 'without'} shadow scores) to {out}")


@scores_app.command("rescore")
def rescore_command(
    run_id: Optional[str] = typer.Option(
        None,
        "--run-id",
        help="default: '<champion>@<promoted_at>' of the production pointer (the same promotion is re-scored once)",
    ),
    topic_prefix: str = typer.Option("", "--topic-prefix", help="prefix of the pipeline's topics"),
    chunk_size: int = typer.Option(20_000, "--chunk-size", min=100, help="records per chunk (one checkpoint each)"),
    max_in_flight: int = typer.Option(
        50_000,
        "--max-in-flight",
        min=0,
        help="pause while this many re-score requests are not scored yet (0: no limit)",
    ),
    max_rate: float = typer.Option(
        0.0, "--max-rate", min=0.0, help="records per second at most (0: the CRM API budget's pace alone)"
    ),
    include_seed: bool = typer.Option(False, "--include-seed", help="also re-score the shipped sample rows"),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="after producing, wait until as many scores arrived"),
    wait_timeout_s: float = typer.Option(600.0, "--wait-timeout", help="how long to wait for the scores"),
) -> None:
    """Re-score every open lead and contact (not converted, not deleted) with the champion, through the pipeline.

    Resumable (Ctrl-C, run it again: it continues after the last checkpointed chunk) and idempotent (a finished
    run produces nothing again).
    """
    profile = current_profile()
    warehouse = warehouse_resource(profile).process_config_and_initialize()
    kafka = kafka_resource(profile).process_config_and_initialize()
    pointer = model_store_resource(profile).process_config_and_initialize().repository().production_pointer()
    if not pointer:
        console.print("[red]no champion yet:[/red] deploy a model first (retraining_job or promotion_job)")
        raise typer.Exit(2)
    version = str(pointer["version"])
    run = start_or_resume(
        warehouse, run_id or f"{version}@{pointer.get('promoted_at', '')}", version, include_seed=include_seed
    )
    if run.done:
        console.print(f"re-score run {run.run_id} is done already ({run.produced:,} records): nothing to do")
        return
    score_topics = (topic_prefix + LEAD_SCORES, topic_prefix + CONTACT_SCORES)
    # paced to the CRM's daily API allocation in every profile (Salesforce's in gcp, the local CRM's own)
    pace = rescore_pace(profile, run.total - run.produced, max_rate=max_rate)
    console.print(pace.line())
    logger.info(pace.line())
    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console) as bar:
        produced = bar.add_task(f"produced ({version})", total=run.total, completed=run.produced, rate="")
        scored = bar.add_task("scored (score topics' growth)", total=run.total - run.produced, rate="")

        def progress(p: RescoreProgress) -> None:
            bar.update(produced, completed=p.run.produced, rate=f"{p.produce_rate:,.0f}/s")
            bar.update(
                scored,
                completed=min(p.scored_estimate, p.produced_now),
                rate=f"{p.scored_estimate / p.elapsed_s:,.0f}/s" if p.elapsed_s else "",
            )

        scores_before = sum(end_offset(kafka, t) for t in score_topics)
        produced_before = run.produced
        try:
            run = rescore(
                warehouse,
                kafka,
                run,
                topic=topic_prefix + INPUT_RAW,
                score_topics=score_topics,
                include_seed=include_seed,
                chunk_size=chunk_size,
                max_in_flight=max_in_flight,
                max_rate=pace.rate,
                burst=RESCORE_BURST,
                on_progress=progress,
            )
        except KeyboardInterrupt:
            console.print(f"stopped; run it again to resume after {run.produced:,} records")
            raise typer.Exit(130) from None
        target = run.produced - produced_before
        bar.update(scored, total=target)
        if wait and target:

            def arrived() -> Optional[int]:
                got = sum(end_offset(kafka, t) for t in score_topics) - scores_before
                bar.update(scored, completed=min(got, target))
                return got if got >= target else None

            try:
                wait_until(arrived, timeout_s=wait_timeout_s, interval_s=1.0, what=f"{target:,} scores")
            except WaitTimeout as exc:
                console.print(f"[yellow]{exc}[/yellow]: is the pipeline running? (lead-scoring stack status)")
                raise typer.Exit(1) from None
    console.print(
        f"re-score run {run.run_id}: {run.produced:,} of {run.total:,} open records produced with "
        f"version {version} ({run.status})"
    )


def erase(
    ids: list[str] = typer.Argument(..., help="Salesforce Ids of the leads / contacts to erase"),
    keep_crm: bool = typer.Option(False, "--keep-crm", help="do not clear the score fields in the CRM"),
) -> None:
    """Erase leads: every warehouse row (raw, CRM, scores, ledger), future training data, the CRM's score.

    The Id's keyed hash goes into the erasure register, so its records still in Kafka are dropped, and the Id into
    the erased_ids topic, so the scoring statements drop its later records.
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
    except (ErasureIncomplete, ErasedIdsNotPublished) as exc:
        console.print(f"[red]erasure incomplete:[/red] {exc}")
        raise typer.Exit(1) from None
    for table, rows in report.rows_deleted.items():
        console.print(f"  {table}: {rows:,} row(s) deleted")
    if report.crm_target:
        console.print(f"  CRM {report.crm_target}: {report.crm_cleared} score(s) cleared")
    for record_id, reason in report.crm_failures:
        console.print(f"  [yellow]CRM not cleared for {record_id}:[/yellow] {reason}")
    console.print(
        f"erased {report.ids} Id(s): {report.total_rows:,} row(s) deleted, no row left; records still in "
        "Kafka are dropped until retention removes them (docs/lifecycle.md)"
    )
    if report.crm_failures:
        raise typer.Exit(1)

"""`lead-scoring data | leads | worker`: synthetic leads, CRM export imports, replay, and the CRM workers."""

from __future__ import annotations

import itertools
import logging
import signal
import time
from pathlib import Path

import pandas as pd
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn, TimeRemainingColumn

from lead_scoring.crm.batches import WorkerFailed
from lead_scoring.crm.definitions import crm as crm_resource
from lead_scoring.crm.heartbeat import WORKER_NAMES
from lead_scoring.crm.importer import ExportMapping, MappingError, import_export
from lead_scoring.crm.replay import ReplaySummary, frame_records, load_events, replay, synthetic_stream
from lead_scoring.crm.synthetic import generate_leads, to_events, write_frame
from lead_scoring.crm.workers import build_worker
from lead_scoring.settings import Profile, current_profile
from lead_scoring.streaming.definitions import kafka as kafka_resource
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.warehouse.definitions import warehouse as warehouse_resource

logger = logging.getLogger(__name__)
console = Console()

data_app = typer.Typer(
    help="Generate synthetic CRM leads or import a CRM export into the warehouse.", no_args_is_help=True
)


@data_app.command("generate")
def generate(
    rows: int = typer.Option(3000, "--rows", "-n", min=0, help="number of Leads + Contacts"),
    out: Path = typer.Option(..., "--out", "-o", help="output file: .jsonl, .csv or .parquet"),
    seed: int = typer.Option(7, help="same seed, same records"),
    contact_share: float = typer.Option(0.15, min=0.0, max=1.0, help="share of Contacts"),
    events: bool = typer.Option(False, "--events", help="write created + later updated (outcome) events"),
) -> None:
    """Write realistic synthetic Salesforce Leads and Contacts with a learnable conversion signal."""
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
    try:
        export_mapping = ExportMapping.load(mapping)
        with console.status(f"reading {path.name}"):
            result = import_export(path, export_mapping)
    except MappingError as exc:
        console.print(f"[red]mapping error:[/red] {exc}")
        raise typer.Exit(2) from None
    warehouse = warehouse_resource(current_profile()).process_config_and_initialize()
    stamp = pd.Timestamp.now(tz="UTC")
    source = f"import:{path.name}"
    with console.status(f"loading into {warehouse.describe()}"):
        loaded = warehouse.append("crm_leads_raw", result.records.assign(_source=source, _ingested_at=stamp))
        rejected = warehouse.append("rejected_leads", result.rejected.assign(_source=source, _ingested_at=stamp))
    console.print(
        f"imported {loaded:,} records into crm_leads_raw, {rejected:,} rejected "
        f"(see rejected_leads) from {path} via mapping {export_mapping.name}"
    )


# ------------------------------------------------------------------------------------------------
# lead-scoring leads ... / lead-scoring worker NAME

leads_app = typer.Typer(help="Feed input_raw: replay a CRM export or stream synthetic leads.", no_args_is_help=True)


def _kafka(bootstrap: str | None) -> KafkaResource:
    """The profile's Kafka (credentials resolved from the environment), or a plain one at `bootstrap`."""
    if bootstrap:
        return KafkaResource(bootstrap_servers=bootstrap)
    return kafka_resource(current_profile()).process_config_and_initialize()


class _Ticker:
    def __init__(self, topic: str, every_s: float = 30.0):
        self.topic, self.every_s = topic, every_s
        self.count, self.last = 0, time.monotonic()

    def advance(self, n: int) -> None:
        self.count += n
        if not console.is_terminal and time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            logger.info("%d synthetic records produced to %s so far", self.count, self.topic)


def _print_summary(summary: ReplaySummary, extra: str = "") -> None:
    colour = "red" if summary.failed else "green"
    console.print(
        f"[{colour}]sent {summary.sent:,}[/], failed {summary.failed:,}{extra} in {summary.elapsed_s:.1f} s "
        f"({summary.rate:,.0f} records/s achieved)"
    )
    for error in summary.errors:
        console.print(f"  [red]{error}[/]")


@leads_app.command("replay")
def replay_cmd(
    path: Path = typer.Argument(
        ...,
        exists=True,
        dir_okay=False,
        help="CRM export (.csv with --mapping) or contract records (.csv/.parquet/.jsonl)",
    ),
    mapping: Path | None = typer.Option(
        None, "--mapping", "-m", exists=True, dir_okay=False, help="column mapping of the export (YAML)"
    ),
    rate: float = typer.Option(100.0, "--rate", "-r", min=0.0, help="records per second (0: as fast as possible)"),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="replay only the first N leads"),
    with_outcomes: bool = typer.Option(
        False, "--with-outcomes", help="then emit the `updated` events carrying IsConverted"
    ),
    topic: str = typer.Option("input_raw", help="target topic"),
    bootstrap: str | None = typer.Option(None, help="Kafka bootstrap (default: the profile's Kafka)"),
) -> None:
    """Produce an export's leads to input_raw (key Id, idempotent, acks=all) at a steady rate."""
    try:
        events, rejected = load_events(path, mapping, with_outcomes=with_outcomes, limit=limit)
    except (MappingError, ValueError) as exc:
        console.print(f"[red]cannot read {path}:[/red] {exc}")
        raise typer.Exit(2) from None
    kafka = _kafka(bootstrap)
    with Progress(
        TextColumn("replaying to {task.fields[topic]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    ) as bar:
        task = bar.add_task("replay", total=len(events), topic=topic)
        summary = replay(kafka, frame_records(events), topic, rate=rate, progress=lambda n: bar.advance(task, n))
    summary.rejected = rejected
    _print_summary(summary, f", {rejected:,} rows rejected by the contract (not sent)")
    if summary.failed:
        raise typer.Exit(1)


@leads_app.command("generate")
def generate_cmd(
    rate: float = typer.Option(10.0, "--rate", "-r", min=0.0, help="records per second"),
    limit: int | None = typer.Option(None, "--limit", "-n", min=1, help="stop after N records (default: never)"),
    seed: int = typer.Option(7),
    with_outcomes: bool = typer.Option(False, "--with-outcomes", help="emit the outcome `updated` events too"),
    outcome_delay: float = typer.Option(30.0, help="seconds between a lead's created and updated events"),
    topic: str = typer.Option("input_raw", help="target topic"),
    bootstrap: str | None = typer.Option(None, help="Kafka bootstrap (default: the profile's Kafka)"),
) -> None:
    """Stream synthetic demo leads (Ids DEMO-...) to input_raw until Ctrl-C (for demos and load)."""
    stop = {"flag": False}

    def _on_term(_signum, _frame) -> None:
        stop["flag"] = True

    signal.signal(signal.SIGTERM, _on_term)
    records = synthetic_stream(seed=seed, with_outcomes=with_outcomes, outcome_delay_s=outcome_delay)
    if limit is not None:
        records = itertools.islice(records, limit)
    kafka = _kafka(bootstrap)
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.completed:,} synthetic records to " + topic),
        console=console,
        disable=not console.is_terminal,
    ) as bar:
        task = bar.add_task("generate", total=None)
        ticker = _Ticker(topic)  # without a terminal (nohup, a service): a log line every 30 s

        def advance(n: int) -> None:
            bar.advance(task, n)
            ticker.advance(n)

        try:
            summary = replay(kafka, records, topic, rate=rate, progress=advance, should_stop=lambda: stop["flag"])
        except KeyboardInterrupt:
            stop["flag"] = True
            raise typer.Exit(130) from None
    _print_summary(summary)
    if summary.failed:
        raise typer.Exit(1)


def worker(
    name: str = typer.Argument(..., help="writeback | sink"),
    bootstrap: str | None = typer.Option(None, help="Kafka bootstrap (default: the profile's Kafka)"),
    batch_size: int | None = typer.Option(None, min=1, help="records per micro-batch"),
    max_wait: float | None = typer.Option(None, min=0.0, help="seconds before a partial batch is written"),
) -> None:
    """Run one worker (writeback: scores -> CRM; sink: topics -> warehouse) until SIGTERM, then flush.

    It waits out Kafka outages and retries failing writes; it stops only when asked to.
    """
    if name not in WORKER_NAMES:
        console.print(f"[red]unknown worker {name!r}[/]; one of: {', '.join(WORKER_NAMES)}")
        raise typer.Exit(2)
    profile = current_profile()
    if profile is Profile.GCP:
        # In Confluent Cloud the score topics are Schema-Registry Avro and the fully managed SObject and
        # BigQuery Sink V2 connectors (the crm group's connector configs) do this work.
        console.print(
            "[red]the CRM workers do not run in the gcp profile[/]: there the Salesforce SObject sink and "
            "BigQuery Sink V2 connectors (assets salesforce_sink_connector_config, "
            "bigquery_sink_connector_config) write the scores; run the workers with "
            "LEAD_SCORING_PROFILE=local or cluster"
        )
        raise typer.Exit(2)
    options = {k: v for k, v in (("batch_size", batch_size), ("max_wait_s", max_wait)) if v is not None}
    w = build_worker(
        name,
        kafka=_kafka(bootstrap),
        warehouse=warehouse_resource(profile).process_config_and_initialize(),
        crm=crm_resource(profile).process_config_and_initialize(),
        profile=profile,
        **options,
    )
    w.install_signal_handlers()
    try:
        stats = w.run()
    except WorkerFailed as exc:
        logger.error("%s", exc)
        raise typer.Exit(1) from None
    logger.info("%s stopped cleanly: %d messages, %d batches", name, stats.consumed, stats.batches)

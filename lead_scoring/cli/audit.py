"""`lead-scoring audit --since 30m`: one window of input_raw followed through every hop of the pipeline."""

from __future__ import annotations

import json
from typing import Optional

import typer
from confluent_kafka import KafkaException
from rich.console import Console
from rich.table import Table

from lead_scoring.crm.definitions import crm as crm_resource
from lead_scoring.crm.resources import LocalCrm
from lead_scoring.lifecycle.erasure import ErasureRegister
from lead_scoring.monitoring.audit import DEFAULT_GRACE_S, AuditReport, AuditTopics, audit, parse_since
from lead_scoring.settings import ConfigurationError, current_profile
from lead_scoring.streaming.definitions import kafka as kafka_resource
from lead_scoring.warehouse.definitions import warehouse as warehouse_resource

console = Console()


def report_table(report: AuditReport) -> Table:
    table = Table(
        title=f"input_raw {report.since:%Y-%m-%d %H:%M:%S} .. {report.until:%H:%M:%S} UTC: "
        f"{report.audited:,} record(s) followed (grace {report.grace_s:.0f} s)"
    )
    for column in ("hop", "expected", "arrived", "missing", "late", "doubled", "e.g."):
        table.add_column(
            column, justify="right" if column in ("expected", "arrived", "missing", "late", "doubled") else "left"
        )
    for h in report.hops:
        doubled = f"{h.doubled:,}" + (" (replays)" if h.replays_allowed and h.doubled else "")
        colour = "green" if h.ok else "red"
        table.add_row(
            f"[{colour}]{h.hop}[/]",
            f"{h.expected:,}",
            f"{h.arrived:,}",
            f"[red]{h.missing:,}[/]" if h.missing else "0",
            f"{h.late:,}",
            f"[red]{doubled}[/]" if h.doubled and not h.replays_allowed else doubled,
            "; ".join(f"{k}: {', '.join(v)}" for k, v in h.examples.items()) or h.note,
        )
    if report.excluded:
        table.caption = "left out: " + ", ".join(f"{k} {v:,}" for k, v in sorted(report.excluded.items()))
    return table


def audit_command(
    since: str = typer.Option(
        ...,
        "--since",
        help="start of the window: a duration ago (30m, 2h, 1d) or an ISO time (UTC when it names no zone)",
    ),
    until: Optional[str] = typer.Option(None, "--until", help="end of the window (default: now)"),
    grace: float = typer.Option(
        DEFAULT_GRACE_S,
        "--grace",
        min=0.0,
        help="records younger than this many seconds that are not there yet are late (in flight), not missing",
    ),
    topic_prefix: str = typer.Option("", "--topic-prefix", help="the pipeline's topic prefix, if it has one"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON instead of a table"),
) -> None:
    """Reconcile a window of input_raw across every hop (DLQ, leads/contacts, score topics, the CRM, the
    warehouse and the score ledger) by record Id and event time; exit 1 when a record is missing or doubled."""
    try:
        start = parse_since(since)
        end = parse_since(until) if until else None
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    profile = current_profile()
    warehouse = warehouse_resource(profile).process_config_and_initialize()
    kafka = kafka_resource(profile).process_config_and_initialize()
    crm = crm_resource(profile)
    try:
        register: Optional[ErasureRegister] = ErasureRegister.for_profile(warehouse, profile)
    except (ConfigurationError, ValueError) as exc:
        console.print(f"[yellow]note:[/] erased Ids are not recognised ({exc})", highlight=False)
        register = None
    topics = AuditTopics.prefixed(topic_prefix) if topic_prefix else AuditTopics()
    try:
        report = audit(
            kafka,
            warehouse,
            start,
            end,
            grace_s=grace,
            topics=topics,
            register=register,
            crm_table="crm_leads" if isinstance(crm, LocalCrm) else None,
        )
    except (KafkaException, TimeoutError) as exc:
        console.print(
            f"[bold red]error:[/] cannot read the window from Kafka ({exc}); is the stack up "
            "(`lead-scoring stack status`)?",
            highlight=False,
        )
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(json.dumps(report.as_dict(), indent=2))
    else:
        console.print(report_table(report))
        if not isinstance(crm, LocalCrm):
            console.print("the CRM hop is Salesforce: not audited here (see its Bulk API job results)")
        console.print(("[green]" if report.ok else "[bold red]") + report.verdict() + "[/]", highlight=False)
    if not report.ok:
        raise typer.Exit(1)

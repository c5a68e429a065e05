"""`lead-scoring plan | preflight`: review what the gcp profile would send, and check the vendors before sending it."""

from __future__ import annotations

from typing import Optional

import dagster as dg
import typer
from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.rule import Rule
from rich.syntax import Syntax
from rich.table import Table

from lead_scoring.crm import definitions as crm_definitions
from lead_scoring.production.api_budget import API_REQUESTS_PER_LICENSE, DEFAULT_API_SHARE
from lead_scoring.production.plan import SYSTEMS, OrgLoad, build_gcp_plan
from lead_scoring.production.preflight import (
    ConfluentCloudApi,
    PreflightTargets,
    Status,
    findings_json,
    run_preflight,
)
from lead_scoring.serving import definitions as serving_definitions
from lead_scoring.settings import ConfigurationError, Profile
from lead_scoring.storage import definitions as storage_definitions
from lead_scoring.storage.definitions import local_artifact_root
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring.streaming import definitions as streaming_definitions
from lead_scoring.warehouse import definitions as warehouse_definitions

console = Console()


def _model_version(given: Optional[str]) -> str:
    if given:
        return given
    local = LocalModelStore(root=local_artifact_root()).repository().production_version()
    if local is None:
        console.print(
            "[red]no model version[/]: pass --model-version (the version the gcp profile would deploy); "
            "no production version in the local artifact store either"
        )
        raise typer.Exit(2)
    return local


def plan(
    profile: str = typer.Option("gcp", "--profile", help="the profile to plan (only gcp talks to vendors)"),
    model_version: Optional[str] = typer.Option(
        None, "--model-version", help="model version to plan for (default: the local store's production version)"
    ),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    changes_per_day: int = typer.Option(
        10_000, "--changes-per-day", min=0, help="Lead + Contact changes per day the org makes (API budget)"
    ),
    licenses: int = typer.Option(100, "--licenses", min=0, help="Salesforce licences of the org (API budget)"),
    edition: str = typer.Option(
        "Enterprise", "--edition", help=f"Salesforce edition: {', '.join(API_REQUESTS_PER_LICENSE)}"
    ),
    api_share: float = typer.Option(
        DEFAULT_API_SHARE,
        "--api-share",
        min=0.01,
        max=1.0,
        help="the most of the org's daily API allocation the pipeline may use",
    ),
) -> None:
    """Print every statement, connector config, Vertex AI call and BigQuery DDL/DML the gcp profile would issue,
    and the connectors' Salesforce API calls per day against the org's allocation.

    Nothing is called and no secret is read: secrets appear as ${VARIABLE}. Exit code 1 when the projected
    Salesforce API use exceeds --api-share of the allocation.
    """
    if edition not in API_REQUESTS_PER_LICENSE:
        console.print(f"[red]--edition {escape(edition)}[/]: expected one of {', '.join(API_REQUESTS_PER_LICENSE)}")
        raise typer.Exit(2)
    if profile != "gcp":
        console.print(
            f"[red]--profile {escape(profile)}[/]: only the gcp profile sends requests to vendors; the "
            "local profile runs on this machine (`lead-scoring stack up`)"
        )
        raise typer.Exit(2)
    result = build_gcp_plan(
        _model_version(model_version),
        org=OrgLoad(changes_per_day=changes_per_day, licenses=licenses, edition=edition, share=api_share),
    )
    budget = result.api_budget
    over_budget = bool(budget and budget.problems())
    if as_json:
        typer.echo(result.as_json())
        if over_budget:
            raise typer.Exit(1)
        return
    console.print(Rule(f"gcp plan for model version {escape(result.model_version)}"))
    for system in SYSTEMS:
        steps = result.by_system(system)
        console.print(Rule(f"{system} ({len(steps)})", style="cyan"))
        for step in steps:
            shown = [Syntax(step.display_body(), step.language, word_wrap=True)]
            if step.sql:
                shown.append(Syntax(step.sql, "sql", word_wrap=True))
            console.print(
                Panel(
                    Group(*shown),
                    title=f"[bold]{escape(step.name)}[/]",
                    subtitle=escape(step.call),
                    subtitle_align="left",
                    title_align="left",
                )
            )
            if step.note:
                console.print(f"  [dim]{escape(step.note)}[/]")
    summary = Table(title="summary", show_header=True)
    summary.add_column("system")
    summary.add_column("requests", justify="right")
    for system in SYSTEMS:
        summary.add_row(system, str(len(result.by_system(system))))
    console.print(summary)
    if result.unset:
        console.print("[yellow]not set (shown as ${NAME}):[/] " + ", ".join(result.unset))
    console.print("[dim]secrets are never read by `plan`; they appear as ${NAME}[/]")
    if budget is not None:
        console.print(Rule("Salesforce API budget (per 24 h)", style="cyan"))
        for line in budget.lines():
            console.print("  " + escape(line))
        for problem in budget.problems():
            console.print(f"  [red]over budget:[/] {escape(problem)}")
        if over_budget:
            raise typer.Exit(1)


_STYLE = {
    Status.OK: "green",
    Status.MISSING: "red",
    Status.FORBIDDEN: "red",
    Status.ERROR: "red",
    Status.SKIPPED: "yellow",
}


def preflight(
    profile: str = typer.Option("gcp", "--profile", help="the profile to check (only gcp has vendor resources)"),
    as_json: bool = typer.Option(False, "--json", help="machine-readable output"),
    changes_per_day: int = typer.Option(
        10_000, "--changes-per-day", min=0, help="Lead + Contact changes per day the org makes (API budget)"
    ),
    api_share: float = typer.Option(
        DEFAULT_API_SHARE, "--api-share", min=0.01, max=1.0, help="the most of the org's /limits the connectors may use"
    ),
) -> None:
    """With the real credentials: does every vendor resource exist, is every permission held? (read-only calls)

    Exit code 0 when all are, 1 when one is missing or forbidden, 2 when a setting is missing.
    """
    if profile != "gcp":
        console.print(f"[red]--profile {escape(profile)}[/]: only the gcp profile has vendor resources to check")
        raise typer.Exit(2)
    resources = {
        "flink": streaming_definitions.flink(Profile.GCP),
        "warehouse": warehouse_definitions.warehouse(Profile.GCP),
        "model_serving": serving_definitions.model_serving(Profile.GCP),
        "model_store": storage_definitions.model_store(Profile.GCP),
        "crm": crm_definitions.crm(Profile.GCP),
    }
    try:
        with dg.build_resources(resources) as built:
            targets = PreflightTargets.from_resources(
                built.flink,
                built.warehouse,
                built.model_serving,
                built.model_store,
                built.crm,
                cloud=ConfluentCloudApi.from_env(),
                changes_per_day=changes_per_day,
                api_share=api_share,
            )
            with console.status("asking the vendors (read-only)"):
                findings = run_preflight(targets)
    except (dg.DagsterError, ConfigurationError) as exc:
        console.print(f"[red]the gcp profile is not configured:[/] {escape(str(exc))}", soft_wrap=True)
        raise typer.Exit(2) from None
    if as_json:
        typer.echo(findings_json(findings))
    else:
        table = Table(title="gcp preflight", show_lines=False)
        for column in ("system", "resource", "status", "detail", "what to do"):
            table.add_column(column, overflow="fold")
        for f in findings:
            table.add_row(
                f.system,
                escape(f.resource),
                f"[{_STYLE[f.status]}]{f.status.value}[/]",
                escape(f.detail),
                escape(f.fix),
            )
        console.print(table)
    if any(f.blocking for f in findings):
        raise typer.Exit(1)

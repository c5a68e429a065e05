"""`lead-scoring product status`: is the product deployed and scoring on this machine?

`scripts/up` asks it before materializing the product's assets again: on a machine where they are all
materialized, the production model is served and every deployed statement runs, a re-run opens the UI in
seconds instead of retraining (`LEAD_SCORING_REBUILD=1 scripts/up` materializes them anyway, e.g. after
pulling new code).
"""

from __future__ import annotations

import dagster as dg
import httpx
import typer
from rich.console import Console

from lead_scoring.serving.service import served_version
from lead_scoring.settings import Profile
from lead_scoring.stack.config import StackConfig
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs
from lead_scoring.streaming.healing import deployed_prefixes, local_engine

# the groups `scripts/up` materializes to deploy the product (its first `dg launch`), and their assets. Listed,
# not read from the definitions: importing those took 11 of this command's 29 s in a re-run of scripts/up
# (test_product_status.py fails when the list and the definitions differ).
PRODUCT_GROUPS = ("training", "serving", "streaming", "crm")
PRODUCT_ASSETS = (
    "bigquery_sink_connector_config",
    "crm_leads_raw",
    "flink_statements",
    "lead_scoring_model",
    "model_artifact",
    "model_card",
    "model_deployment",
    "salesforce_sink_connector_config",
    "salesforce_source_connector_config",
    "streaming_topics",
    "training_data",
)

app = typer.Typer(help="The product on this machine: deployed, serving, scoring.", no_args_is_help=True)
console = Console()


def unmaterialized(instance: dg.DagsterInstance, assets: tuple[str, ...] = PRODUCT_ASSETS) -> list[str]:
    """The `assets` with no materialization in `instance`."""
    keys = [dg.AssetKey.from_user_string(name) for name in assets]
    latest = instance.get_latest_materialization_events(keys)
    return sorted(key.to_user_string() for key in keys if latest.get(key) is None)


def serving_problem(cfg: StackConfig) -> str | None:
    """None when the model server serves the production version of the local artifact store."""
    root = cfg.state.parent / "artifacts"
    store = ArtifactRepository(LocalBlobs(root), Profile.LOCAL)  # the local stack's store; no key is read
    production = store.production_version() if root.is_dir() else None
    if production is None:
        return "no production model yet"
    served = served_version(cfg.model_url, cfg.model_name)
    if served != production:
        return f"the model server serves {served or 'nothing'}, production is {production}"
    return None


def statements_problem(cfg: StackConfig) -> str | None:
    """None when every deployed Flink statement has a running job."""
    prefixes = deployed_prefixes(cfg)
    if not prefixes:
        return "no Flink statements deployed yet"
    engine = local_engine(cfg)
    missing = []
    for prefix in prefixes:
        state = engine.deployed(prefix)
        try:
            running = engine.running(prefix)
        except httpx.HTTPError as exc:
            return f"Flink does not answer ({type(exc).__name__})"
        missing += [name for name in (state.statements if state else {}) if name not in running]
    return f"statements not running: {', '.join(sorted(missing))}" if missing else None


@app.command()
def status() -> None:
    """Exit 0 when the product is deployed and serving: every asset of the training, serving, streaming and crm
    groups materialized in this Dagster instance, the production model served, every deployed statement
    running. Otherwise say what is missing and exit 1."""
    cfg = StackConfig.from_env()
    problems = []
    with dg.DagsterInstance.get() as instance:
        never = unmaterialized(instance)
    if never:
        problems.append(f"never materialized: {', '.join(never)}")
    problems += [p for p in (serving_problem(cfg), statements_problem(cfg)) if p]
    if problems:
        for problem in problems:
            console.print(f"[yellow]not deployed:[/] {problem}", highlight=False)
        raise typer.Exit(1)
    console.print(
        "[green]deployed:[/] every product asset materialized, the production model served, every statement running",
        highlight=False,
    )

"""Champion / challenger: shadow scoring, the comparison that gates promotion, promotion, revert, full re-score.

Long on purpose: one Dagster asset group (champion / challenger), each asset next to its config; the
comparison and the re-score themselves are in `promotion.comparison` and `promotion.rescore`.

* `challenger_deployment` (config `version`): the model server serves that version next to the champion
  (locally as `lead_scorer_challenger` in the same process; on Vertex AI on its own endpoint), and two shadow
  statements score the live `leads` / `contacts` with it into `lead_scores_shadow` (own names and consumer
  groups, rolled out and healed by the same `FlinkEngine` code). The sink lands them in the ledger with
  `shadow = true`; the writeback never reads that topic.
* `champion_challenger_comparison`: both versions on the same input records, against the outcomes (ROC AUC,
  Brier, log loss, grade agreement and flips), side by side; the blocking check `challenger_beats_champion`
  gates promotion.
* `champion_promotion` (`promotion_job`): the challenger becomes champion: production pointer, hot swap (or
  Vertex canary) of the champion, hand-over rollout of the champion's statements, shadow statements and the
  challenger retired; then `full_rescore`.
* `champion_revert` (`revert_job`): back to the previous champion the same way, then `full_rescore`.
* `full_rescore`: every open lead and contact scored again by the new champion (`promotion.rescore`).

`retraining_job` is the other way a version becomes champion: it deploys a gated model straight to champion
(no shadow period), and its `flink_statements` rollout is followed by `full_rescore` too.
"""

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Optional

import dagster as dg
import pandas as pd
from pydantic import Field

from lead_scoring.lifecycle.ledger import LEDGER_ASSET_KEY
from lead_scoring.production.api_budget import RESCORE_BURST, rescore_pace
from lead_scoring.promotion.comparison import (
    ComparisonResult,
    compare,
    comparison_plot_markdown,
    flips_markdown,
    metrics_markdown,
    pairs_sql,
    verdict,
)
from lead_scoring.promotion.rescore import RescoreProgress, rescore, start_or_resume
from lead_scoring.serving.assets import expected_for
from lead_scoring.serving.deployment import DeploymentError, ModelDeployment, ModelServing
from lead_scoring.settings import current_profile
from lead_scoring.storage.artifacts import ArtifactError, ModelArtifact
from lead_scoring.storage.resources import ModelStore
from lead_scoring.streaming.engine import FlinkEngine, RolloutError, render_settings_for
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.render import Pipeline, render_pipeline
from lead_scoring.streaming.rollout import RolloutReport, retire, rollout
from lead_scoring.streaming.topics import CONTACT_SCORES, INPUT_RAW, LEAD_SCORES
from lead_scoring.warehouse.resources import Warehouse

GROUP = "model_lifecycle"  # excluded from retraining_job's selection (training/assets.py), except full_rescore
OWNERS = ["team:ml-platform"]
CHALLENGER_CHECK = "challenger_beats_champion"


class PipelineConfig(dg.Config):
    """Which pipeline (tests run theirs side by side with their own prefixes), as `flink_statements` has it."""

    model_provider: str = Field(default="", description="local: kserve (default); gcp: vertexai")
    topic_prefix: str = Field(default="")
    statement_prefix: str = Field(default="lead-scoring")
    group_prefix: str = Field(default="lead-scoring")
    verify_timeout_s: float = Field(default=120.0, description="how long a new statement may take to run and produce")


# Action assets do nothing unless asked: "Materialize all" in the UI runs them with their defaults, and a
# revert or a challenger nobody asked for must not happen. They then produce no output (the step says why) and
# Dagster skips what depends on them; their jobs (promotion_job, revert_job) ask explicitly.
class ChallengerConfig(PipelineConfig):
    version: str = Field(
        default="",
        description="model version (in the model store) to serve as challenger and "
        "shadow-score with; empty: nothing is deployed",
    )


@dataclass
class ChallengerDeployment:
    version: str
    champion_version: Optional[str]
    deployment: ModelDeployment
    statements: list[str] = field(default_factory=list)


@dataclass
class ChampionChange:
    """A version made champion by a promotion or a revert (what `full_rescore` re-scores with)."""

    version: str
    previous: Optional[str]
    promoted_at: str
    action: str  # promoted | reverted
    deployment: ModelDeployment
    rollout: list[str] = field(default_factory=list)
    retired: list[str] = field(default_factory=list)


def _artifact(model_store: ModelStore, version: str, setting: str) -> ModelArtifact:
    try:
        return model_store.repository().artifact(version)
    except (ArtifactError, OSError, ValueError, KeyError) as exc:
        raise dg.Failure(
            f"model version {version!r} ({setting}) is not in {model_store.describe()}: {exc}; "
            "pick one of its versions (lead_scoring_model / model_artifact make them)"
        ) from exc


def _pipeline(
    flink: FlinkEngine, kafka: KafkaResource, config: PipelineConfig, deployment: ModelDeployment, shadow: bool = False
) -> Pipeline:
    return render_pipeline(
        render_settings_for(
            flink,
            kafka,
            url=deployment.url,
            model_name=deployment.model_name,
            version=deployment.version,
            provider=config.model_provider,
            topic_prefix=config.topic_prefix,
            statement_prefix=config.statement_prefix,
            group_prefix=config.group_prefix,
            shadow=shadow,
        )
    )


def _rollout(
    context: dg.AssetExecutionContext, flink: FlinkEngine, pipeline: Pipeline, config: PipelineConfig
) -> RolloutReport:
    try:
        return rollout(flink, pipeline, verify_timeout_s=config.verify_timeout_s, on_event=context.log.info)
    except RolloutError as exc:
        raise dg.Failure(
            description=f"rollout of {pipeline.key} with model {pipeline.settings.model_version} failed: {exc}",
            metadata={"model_version": pipeline.settings.model_version},
        ) from exc


@dg.asset(
    group_name=GROUP,
    kinds={"kserve", "flink"},
    owners=OWNERS,
    output_required=False,
    deps=[dg.AssetKey("model_artifact"), dg.AssetKey("streaming_topics")],
)
def challenger_deployment(
    context: dg.AssetExecutionContext,
    config: ChallengerConfig,
    model_store: ModelStore,
    model_serving: ModelServing,
    kafka: KafkaResource,
    flink: FlinkEngine,
) -> Iterator[dg.Output[ChallengerDeployment]]:
    """A challenger version served next to the champion, shadow-scoring the live stream into lead_scores_shadow."""
    if not config.version:
        context.log.info(
            "no challenger asked for (challenger_deployment.version is empty): nothing deployed, "
            "the comparison and promotion after it are skipped"
        )
        return
    champion = model_store.repository().production_version()
    if config.version == champion:
        raise dg.Failure(
            f"{config.version} is the champion already; pick another version as challenger_deployment.version"
        )
    artifact = _artifact(model_store, config.version, "challenger_deployment.version")
    try:
        deployment = model_serving.deploy_challenger(artifact, expected_for(model_store, artifact))
    except DeploymentError as exc:
        raise dg.Failure(f"challenger {config.version} not deployed: {exc}") from exc
    pipeline = _pipeline(flink, kafka, config, deployment, shadow=True)
    report = _rollout(context, flink, pipeline, config)
    statements = [s.name for s in report.statements]
    yield dg.Output(
        ChallengerDeployment(config.version, champion, deployment, statements),
        metadata={
            "challenger_version": config.version,
            "champion_version": champion or "none",
            "served_as": deployment.model_name,
            "endpoint_url": dg.MetadataValue.url(deployment.url),
            "mode": deployment.mode,
            "smoke_test_score": deployment.smoke_score,
            "previous_challenger": deployment.previous_version or "none",
            "shadow_statements": dg.MetadataValue.json(
                [
                    {"name": s.name, "phase": s.phase, "job_id": s.job_id, "action": s.action, "replaced": s.replaced}
                    for s in report.statements
                ]
            ),
            "notes": dg.MetadataValue.text("\n".join(report.notes)),
            "rendered_sql": dg.MetadataValue.md(f"```sql\n{pipeline.as_text()}```"),
        },
    )


class ComparisonConfig(dg.Config):
    challenger_version: str = Field(default="", description="default: the version served as challenger now")
    min_outcomes: int = Field(default=200, ge=1, description="leads scored by both with a known outcome the gate needs")
    max_auc_drop: float = Field(default=0.0, ge=0, description="the challenger's ROC AUC may trail by at most this")
    max_brier_increase: float = Field(default=0.0, ge=0, description="its Brier score may exceed by at most this")
    max_ece: float = Field(default=0.03, ge=0, description="its expected calibration error (10 bins) above this blocks")
    max_ece_increase: float = Field(default=0.01, ge=0, description="its ECE may exceed the champion's by at most this")


@dg.asset(group_name=GROUP, kinds={"duckdb", "bigquery"}, owners=OWNERS, deps=[challenger_deployment, LEDGER_ASSET_KEY])
def champion_challenger_comparison(
    context: dg.AssetExecutionContext, config: ComparisonConfig, warehouse: Warehouse, model_serving: ModelServing
) -> dg.Output[ComparisonResult]:
    # one line (no E501 wrap): the docstring is the asset's description, single-line by convention (test_definitions)
    """Champion and challenger scores of the same live leads against their outcomes, side by side (ROC AUC, Brier, grade flips)."""  # noqa: E501
    version = config.challenger_version or model_serving.challenger_version()
    if not version:
        raise dg.Failure(
            "no challenger is served: materialize challenger_deployment first (or set "
            "champion_challenger_comparison.challenger_version)"
        )
    pairs = warehouse.query(pairs_sql(), {"challenger": version})
    result = compare(pairs, version)
    passed, description, _ = verdict(
        result,
        config.min_outcomes,
        config.max_auc_drop,
        config.max_brier_increase,
        config.max_ece,
        config.max_ece_increase,
    )
    context.log.info(description)
    metadata: dict[str, Any] = {
        "challenger_version": version,
        "champion_versions": ", ".join(result.champion_versions) or "none",
        "leads_compared": result.pairs,
        "leads_with_outcome": result.with_outcome,
        "metrics": dg.MetadataValue.md(metrics_markdown(result)),
        "grade_flips": dg.MetadataValue.md(flips_markdown(result)),
        "grade_agreement": dg.MetadataValue.float(
            result.grade_agreement if result.grade_agreement is not None else float("nan")
        ),
        "mean_abs_score_diff": dg.MetadataValue.float(
            result.mean_abs_score_diff if result.mean_abs_score_diff is not None else float("nan")
        ),
        "share_within_5_points": dg.MetadataValue.float(
            result.within_5_points if result.within_5_points is not None else float("nan")
        ),
        "gate": description,
    }
    if result.pairs:
        metadata["plot"] = dg.MetadataValue.md(comparison_plot_markdown(pairs, result))
    return dg.Output(result, metadata=metadata)


@dg.asset_check(
    asset=champion_challenger_comparison,
    name=CHALLENGER_CHECK,
    blocking=True,
    description="Blocks promotion unless the challenger is at least as good as the champion on enough "
    "leads with an outcome (ROC AUC, Brier and calibration (ECE) on the same leads).",
)
def challenger_beats_champion(
    config: ComparisonConfig, champion_challenger_comparison: ComparisonResult
) -> dg.AssetCheckResult:
    passed, description, metadata = verdict(
        champion_challenger_comparison,
        config.min_outcomes,
        config.max_auc_drop,
        config.max_brier_increase,
        config.max_ece,
        config.max_ece_increase,
    )
    return dg.AssetCheckResult(
        passed=passed, description=description, metadata=metadata, severity=dg.AssetCheckSeverity.ERROR
    )


def make_champion(
    context: dg.AssetExecutionContext,
    config: PipelineConfig,
    version: str,
    previous: Optional[str],
    action: str,
    model_store: ModelStore,
    model_serving: ModelServing,
    kafka: KafkaResource,
    flink: FlinkEngine,
) -> ChampionChange:
    """Serve `version` as champion, point production at it, hand the champion's statements over to it, and
    retire the shadow statements and the challenger (a promoted challenger scores as champion now)."""
    artifact = _artifact(model_store, version, action)
    try:
        deployment = model_serving.deploy(artifact, expected_for(model_store, artifact))
    except DeploymentError as exc:
        raise dg.Failure(f"{action}: {version} not deployed as champion: {exc}; {previous} keeps serving") from exc
    pointer = model_store.repository().set_production(version, previous=previous)
    report = _rollout(context, flink, _pipeline(flink, kafka, config, deployment), config)
    challenger = model_serving.challenger_version()
    retired: list[str] = []
    if action == "promoted" or challenger == version:
        shadow_deployment = ModelDeployment(
            url=deployment.url,
            model_name=deployment.model_name,
            version=version,
            previous_version=None,
            smoke_score=0,
            smoke_latency_ms=0.0,
            mode="retire",
        )
        retired = retire(
            flink, _pipeline(flink, kafka, config, shadow_deployment, shadow=True), on_event=context.log.info
        )
        model_serving.retire_challenger()
    return ChampionChange(
        version=version,
        previous=previous,
        promoted_at=str(pointer["promoted_at"]),
        action=action,
        deployment=deployment,
        rollout=[s.name for s in report.statements],
        retired=retired,
    )


def _change_metadata(change: ChampionChange) -> dict[str, Any]:
    return {
        "champion_version": change.version,
        "previous_champion": change.previous or "none",
        "promoted_at": change.promoted_at,
        "mode": change.deployment.mode,
        "smoke_test_score": change.deployment.smoke_score,
        "statements": change.rollout,
        "retired_shadow_statements": change.retired or "none",
    }


@dg.asset(group_name=GROUP, kinds={"kserve", "flink"}, owners=OWNERS)
def champion_promotion(
    context: dg.AssetExecutionContext,
    config: PipelineConfig,
    champion_challenger_comparison: ComparisonResult,
    model_store: ModelStore,
    model_serving: ModelServing,
    kafka: KafkaResource,
    flink: FlinkEngine,
) -> dg.Output[ChampionChange]:
    """The compared challenger made champion: production pointer, serving, Flink hand-over; shadow retired."""
    version = champion_challenger_comparison.challenger_version
    previous = model_store.repository().production_version()
    change = make_champion(context, config, version, previous, "promoted", model_store, model_serving, kafka, flink)
    return dg.Output(change, metadata=_change_metadata(change))


class RevertConfig(PipelineConfig):
    version: str = Field(default="", description="the version to make champion again")
    to_previous: bool = Field(
        default=False,
        description="revert to the champion before the current one (the "
        "production pointer's previous); revert_job sets it",
    )


@dg.asset(group_name=GROUP, kinds={"kserve", "flink"}, owners=OWNERS, output_required=False)
def champion_revert(
    context: dg.AssetExecutionContext,
    config: RevertConfig,
    model_store: ModelStore,
    model_serving: ModelServing,
    kafka: KafkaResource,
    flink: FlinkEngine,
) -> Iterator[dg.Output[ChampionChange]]:
    """The previous champion serving and scoring again (one materialization), then re-scoring every open lead."""
    if not (config.version or config.to_previous):
        context.log.info(
            "no revert asked for (set champion_revert.to_previous: true, or .version; revert_job "
            "does): the champion stays, the re-score after it is skipped"
        )
        return
    pointer = model_store.repository().production_pointer() or {}
    target = config.version or pointer.get("previous")
    if not target:
        raise dg.Failure("no previous champion recorded in the production pointer: set champion_revert.version")
    change = make_champion(
        context, config, target, pointer.get("version"), "reverted", model_store, model_serving, kafka, flink
    )
    yield dg.Output(change, metadata=_change_metadata(change))


class RescoreConfig(dg.Config):
    run_id: str = Field(
        default="",
        description="default: '<champion version>@<promoted_at>' from the production "
        "pointer, so the same promotion is re-scored once",
    )
    topic_prefix: str = Field(default="")
    include_seed: bool = Field(default=False, description="also re-score the shipped sample (_source = 'seed')")
    chunk_size: int = Field(default=20_000, ge=10, description="records per chunk (one checkpoint each)")
    max_in_flight: int = Field(
        default=50_000, ge=0, description="re-score requests not yet scored before producing pauses (0: no limit)"
    )
    max_rate: float = Field(
        default=0.0,
        ge=0,
        description="records per second at most (0: the CRM API budget's pace alone, LEAD_SCORING_RESCORE_API_SHARE)",
    )


@dg.asset(
    group_name=GROUP,
    kinds={"kafka", "flink"},
    owners=OWNERS,
    deps=[dg.AssetKey("flink_statements"), champion_promotion, champion_revert],
)
def full_rescore(
    context: dg.AssetExecutionContext,
    config: RescoreConfig,
    warehouse: Warehouse,
    kafka: KafkaResource,
    model_store: ModelStore,
) -> dg.MaterializeResult:
    """Every open lead and contact of the CRM re-scored by the champion through the pipeline (resumable, idempotent)."""
    pointer = model_store.repository().production_pointer()
    if not pointer:
        raise dg.Failure("no champion yet (no production pointer): deploy a model first")
    version = str(pointer["version"])
    run_id = config.run_id or f"{version}@{pointer.get('promoted_at', '')}"
    run = start_or_resume(warehouse, run_id, version, include_seed=config.include_seed)
    context.log.info(f"re-score run {run_id}: {run.total:,} open records, {run.produced:,} produced before")
    # paced to the CRM's daily API allocation in every profile (Salesforce's in gcp, the local CRM's own)
    pace = rescore_pace(current_profile(), run.total - run.produced, max_rate=config.max_rate)
    context.log.info(pace.line())

    def progress(p: RescoreProgress) -> None:
        share = p.run.produced / p.run.total if p.run.total else 1.0
        context.log.info(
            f"re-score {p.run.produced:,}/{p.run.total:,} produced ({share:.0%}); "
            f"{p.produced_now:,} in this run at {p.produce_rate:,.0f}/s; ~{p.scored_estimate:,} scored"
        )

    produced_before = run.produced
    started = pd.Timestamp.now(tz="UTC")
    run = rescore(
        warehouse,
        kafka,
        run,
        topic=config.topic_prefix + INPUT_RAW,
        score_topics=(config.topic_prefix + LEAD_SCORES, config.topic_prefix + CONTACT_SCORES),
        include_seed=config.include_seed,
        chunk_size=config.chunk_size,
        max_in_flight=config.max_in_flight,
        max_rate=pace.rate,
        burst=RESCORE_BURST,
        on_progress=progress,
    )
    seconds = (pd.Timestamp.now(tz="UTC") - started).total_seconds()
    now_produced = run.produced - produced_before
    return dg.MaterializeResult(
        metadata={
            "run_id": run_id,
            "model_version": version,
            "status": run.status,
            "open_records": run.total,
            "produced_total": run.produced,
            "produced_in_this_materialization": now_produced,
            "produce_rate_per_s": dg.MetadataValue.float(round(now_produced / seconds, 1) if seconds > 0 else 0.0),
            "seconds": dg.MetadataValue.float(round(seconds, 1)),
            "pace": pace.line(),
            **pace.metadata(),
            "source_ts": dg.MetadataValue.timestamp(pd.Timestamp(run.source_ms, unit="ms", tz="UTC").to_pydatetime()),
            "note": "already done for this promotion: nothing produced"
            if run.done and not now_produced
            else "scores land on lead_scores / contact_scores with this model version and source_ts",
        }
    )


promotion_job = dg.define_asset_job(
    "promotion_job",
    selection=dg.AssetSelection.assets(champion_challenger_comparison, champion_promotion, full_rescore),
    description="Compare champion and challenger (blocking gate), promote the challenger, re-score every open lead.",
    tags={"team": "ml-platform"},
)
revert_job = dg.define_asset_job(
    "revert_job",
    selection=dg.AssetSelection.assets(champion_revert, full_rescore),
    config={"ops": {"champion_revert": {"config": {"to_previous": True}}}},
    description="Make the previous champion champion again and re-score every open lead.",
    tags={"team": "ml-platform"},
)

ASSETS = [challenger_deployment, champion_challenger_comparison, champion_promotion, champion_revert, full_rescore]

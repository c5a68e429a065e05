"""Training assets: CRM records in the warehouse -> training data -> model -> gated, versioned artifact."""


import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import dagster as dg
import pandas as pd
from pydantic import Field

from lead_scoring.contract import FEATURES, FORBIDDEN_FEATURES, LABEL
from lead_scoring.crm.importer import validate_frame
from lead_scoring.settings import project_root
from lead_scoring.util import markdown_table
from lead_scoring.storage.artifacts import ArtifactError, ModelArtifact
from lead_scoring.storage.resources import ModelStore
from lead_scoring.training.evaluation import classification_metrics, evaluation_plots_markdown
from lead_scoring.training.model import LeadScorer, ModelParams, build_pipeline, features_frame, fit
from lead_scoring.streaming.lineage import topic_asset_key
from lead_scoring.streaming.topics import INPUT_RAW
from lead_scoring.training.queries import training_data_sql
from lead_scoring.warehouse.resources import Warehouse

OWNERS = ["team:ml-platform"]
GROUP = "training"


class CrmSeedConfig(dg.Config):
    seed_file: Optional[str] = Field(
        default="data/sample_leads.jsonl",
        description="contract records (JSON Lines) that replace the previous seed rows; null to skip seeding",
    )


def read_jsonl_records(path: Path) -> pd.DataFrame:
    rows = []
    with path.open() as handle:
        for line in handle:
            if line.strip():
                rows.append(json.loads(line))
    return pd.DataFrame.from_records(rows)


@dg.asset(
    group_name=GROUP,
    kinds={"duckdb", "bigquery"},
    owners=OWNERS,
    deps=[topic_asset_key(INPUT_RAW)],  # the sink worker (or the BigQuery connector) lands the stream here too
)
def crm_leads_raw(context: dg.AssetExecutionContext, config: CrmSeedConfig, warehouse: Warehouse) -> dg.MaterializeResult:
    """Raw CRM change records in the warehouse (seeded from data/ locally; fed by the stream)."""
    warehouse.ensure_tables()
    seeded = rejected = 0
    if config.seed_file:
        path = Path(config.seed_file)
        path = path if path.is_absolute() else project_root() / path
        if not path.exists():
            raise dg.Failure(f"seed file {path} does not exist (generate it: lead-scoring data generate --out {path})")
        checked = validate_frame(read_jsonl_records(path))
        stamp = pd.Timestamp.now(tz="UTC")
        # Re-seeding replaces the previous seed: the asset is idempotent, stream rows are untouched.
        warehouse.execute("DELETE FROM crm_leads_raw WHERE _source = 'seed'")
        warehouse.execute("DELETE FROM rejected_leads WHERE _source = 'seed'")
        seeded = warehouse.append("crm_leads_raw", checked.records.assign(_source="seed", _ingested_at=stamp))
        rejected = warehouse.append("rejected_leads", checked.rejected.assign(_source="seed", _ingested_at=stamp))
        if rejected:
            context.log.warning("%d seed records failed the contract; kept in rejected_leads", rejected)
    summary = warehouse.query(
        "SELECT _source AS source, _ObjectType AS object_type, COUNT(*) AS records, "
        "MIN(LastModifiedDate) AS first_event, MAX(LastModifiedDate) AS last_event "
        "FROM crm_leads_raw GROUP BY 1, 2 ORDER BY 1, 2"
    )
    total_rejected = int(warehouse.query("SELECT COUNT(*) AS n FROM rejected_leads")["n"].iloc[0])
    return dg.MaterializeResult(metadata={
        "rows": int(summary["records"].sum()) if not summary.empty else 0,
        "seeded_rows": seeded,
        "rejected_in_this_run": rejected,
        "rejected_total": total_rejected,
        "by_source": dg.MetadataValue.md(markdown_table(summary) if not summary.empty else "(empty)"),
        "warehouse": warehouse.describe(),
    })


class TrainingDataConfig(dg.Config):
    validation_fraction: float = Field(default=0.2, description="newest share of leads (by CreatedDate) held out")
    min_rows: int = Field(default=200, description="fewer labelled leads than this stops training")
    min_positives: int = Field(default=20, description="each split needs at least this many of each class")


@dg.asset(
    group_name=GROUP,
    kinds={"pandas", "sql"},
    owners=OWNERS,
    deps=[crm_leads_raw],
)
def training_data(context: dg.AssetExecutionContext, config: TrainingDataConfig, warehouse: Warehouse) -> dg.Output[pd.DataFrame]:
    """Latest state per Id with its outcome, leakage fields excluded, split by time."""
    sql = training_data_sql(config.validation_fraction)
    frame = warehouse.query(sql)
    check_trainable(frame, config.min_rows, config.min_positives)
    frame[LABEL] = frame[LABEL].astype(bool)
    train, valid = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    created = pd.to_datetime(frame["CreatedDate"], utc=True)
    return dg.Output(frame, metadata={
        "rows": len(frame),
        "train_rows": len(train),
        "validation_rows": len(valid),
        "positive_rate_train": float(train[LABEL].mean()),
        "positive_rate_validation": float(valid[LABEL].mean()),
        "created_from": str(created.min()),
        "created_to": str(created.max()),
        "validation_from": str(pd.to_datetime(valid["CreatedDate"], utc=True).min()),
        "features": len(FEATURES),
        "sql": dg.MetadataValue.md(f"```sql\n{sql}\n```"),
    })


def check_trainable(frame: pd.DataFrame, min_rows: int, min_positives: int) -> None:
    """Stop with a clear message when the data cannot train a model."""
    if len(frame) < min_rows:
        raise dg.Failure(
            f"only {len(frame)} labelled leads in the warehouse; training needs at least {min_rows} "
            "(load more: lead-scoring data import / data generate, or lower training_data.min_rows)"
        )
    labels = frame[LABEL].astype(bool)
    for split in ("train", "validation"):
        part = labels[frame["split"] == split]
        positives, negatives = int(part.sum()), int((~part).sum())
        if min(positives, negatives) < min_positives:
            raise dg.Failure(
                f"the {split} split has {positives} converted and {negatives} unconverted leads; both classes "
                f"need at least {min_positives} (one class only cannot train a classifier)"
            )


class ModelConfig(dg.Config):
    spline_knots: int = Field(default=ModelParams.spline_knots, ge=3, le=30)
    spline_degree: int = Field(default=ModelParams.spline_degree, ge=1, le=5)
    min_category_frequency: int = Field(default=ModelParams.min_category_frequency, ge=1)
    regularization_c: float = Field(default=ModelParams.regularization_c, gt=0)
    max_iter: int = Field(default=ModelParams.max_iter, ge=100)

    def params(self) -> ModelParams:
        return ModelParams(**self.model_dump())


@dataclass
class TrainedModel:
    pipeline: Any
    params: dict[str, Any]
    metrics: dict[str, float]
    features: list[str]
    training_range: dict[str, str]
    validation_ids: list[str] = field(default_factory=list)


@dg.asset(
    group_name=GROUP,
    kinds={"scikitlearn"},
    owners=OWNERS,
)
def lead_scoring_model(context: dg.AssetExecutionContext, config: ModelConfig, training_data: pd.DataFrame) -> dg.Output[TrainedModel]:
    """The fitted scikit-learn pipeline with its validation metrics and plots."""
    train = training_data[training_data["split"] == "train"]
    valid = training_data[training_data["split"] == "validation"]
    pipeline = fit(build_pipeline(config.params()), features_frame(train), train[LABEL])
    proba = pipeline.predict_proba(features_frame(valid))[:, 1]
    metrics = classification_metrics(valid[LABEL].astype(int).to_numpy(), proba)
    created = pd.to_datetime(training_data["CreatedDate"], utc=True)
    trained = TrainedModel(
        pipeline=pipeline,
        params=config.model_dump(),
        metrics=metrics,
        features=list(FEATURES),
        training_range={"from": str(created.min()), "to": str(created.max()),
                        "validation_from": str(pd.to_datetime(valid["CreatedDate"], utc=True).min())},
        validation_ids=valid["Id"].tolist(),
    )
    return dg.Output(trained, metadata={
        **{k: dg.MetadataValue.float(v) for k, v in metrics.items() if k != "rows"},
        "validation_rows": metrics["rows"],
        "hyperparameters": dg.MetadataValue.json(config.model_dump()),
        "plots": dg.MetadataValue.md(evaluation_plots_markdown(
            valid[LABEL].astype(int).to_numpy(), proba, "validation (newest leads)")),
        "example_reasons": dg.MetadataValue.md(_example_reasons(pipeline, valid)),
    })


def _example_reasons(pipeline: Any, valid: pd.DataFrame) -> str:
    sample = valid.head(5)
    scores = LeadScorer(pipeline, "candidate").score_frame(features_frame(sample))
    lines = ["| Id | score | reasons | converted |", "|---|---|---|---|"]
    for (_, row), score in zip(sample.iterrows(), scores):
        lines.append(f"| {row['Id']} | {score.score} | {'; '.join(score.reasons)} | {bool(row[LABEL])} |")
    return "\n".join(lines)


class QualityGateConfig(dg.Config):
    min_roc_auc: float = Field(default=0.75, description="absolute floor for the challenger's validation ROC AUC")
    max_auc_drop_vs_champion: float = Field(
        default=0.005, description="the challenger may trail the production model by at most this much AUC"
    )


@dg.asset_check(
    asset=lead_scoring_model,
    blocking=True,
    additional_ins={"training_data": dg.AssetIn("training_data")},
    description="Blocks deployment unless AUC clears the floor, matches the champion, and no leakage feature is used.",
)
def model_quality_gate(
    config: QualityGateConfig, lead_scoring_model: TrainedModel, training_data: pd.DataFrame, model_store: ModelStore
) -> dg.AssetCheckResult:
    valid = training_data[training_data["split"] == "validation"]
    challenger_auc = lead_scoring_model.metrics["roc_auc"]
    problems: list[str] = []
    leaked = sorted(FORBIDDEN_FEATURES.intersection(lead_scoring_model.features))
    input_columns = list(getattr(lead_scoring_model.pipeline, "feature_names_in_", []))
    leaked += sorted(FORBIDDEN_FEATURES.intersection(input_columns) - set(leaked))
    if leaked:
        problems.append(f"leakage/PII fields used as features: {', '.join(leaked)}")
    if challenger_auc < config.min_roc_auc:
        problems.append(f"ROC AUC {challenger_auc:.4f} is below the floor {config.min_roc_auc:.4f}")
    champion = champion_auc(model_store, valid)
    metadata: dict[str, Any] = {"challenger_roc_auc": challenger_auc, "min_roc_auc": config.min_roc_auc,
                                "leakage_features": ", ".join(leaked) or "none"}
    if champion is not None:
        version, auc = champion
        metadata.update({"champion_version": version, "champion_roc_auc": auc})
        if challenger_auc < auc - config.max_auc_drop_vs_champion:
            problems.append(f"ROC AUC {challenger_auc:.4f} is worse than production model {version} ({auc:.4f}) "
                            "on the same validation leads")
    else:
        metadata["champion_version"] = "none (first model)"
    metadata["problems"] = "; ".join(problems) or "none"
    return dg.AssetCheckResult(passed=not problems, metadata=metadata,
                               description="; ".join(problems) or "challenger passes the gate")


def champion_auc(model_store: ModelStore, valid: pd.DataFrame) -> Optional[tuple[str, float]]:
    """The production model's ROC AUC on the challenger's validation leads (None without one)."""
    from sklearn.metrics import roc_auc_score

    repo = model_store.repository()
    version = repo.production_version()
    if version is None:
        return None
    try:
        pipeline, _ = repo.load(version)
    except ArtifactError as exc:
        raise dg.Failure(f"cannot evaluate the production model {version}: {exc}") from exc
    proba = pipeline.predict_proba(features_frame(valid))[:, 1]
    return version, float(roc_auc_score(valid[LABEL].astype(int), proba))


@dg.asset(
    group_name=GROUP,
    kinds={"gcs", "joblib"},
    owners=OWNERS,
)
def model_artifact(context: dg.AssetExecutionContext, lead_scoring_model: TrainedModel, model_store: ModelStore) -> dg.Output[ModelArtifact]:
    """The gated model pickled with a manifest (version, sha256, libraries, metrics) in the object store."""
    artifact = model_store.repository().save(lead_scoring_model.pipeline, {
        "features": lead_scoring_model.features,
        "metrics": lead_scoring_model.metrics,
        "params": lead_scoring_model.params,
        "training_data": lead_scoring_model.training_range,
        "dagster_run_id": context.run.run_id,
    })
    return dg.Output(artifact, metadata={
        "version": artifact.version,
        "uri": dg.MetadataValue.path(artifact.uri),
        "sha256": artifact.sha256,
        "size_bytes": artifact.manifest["size_bytes"],
        "roc_auc": lead_scoring_model.metrics["roc_auc"],
        "store": model_store.describe(),
    })


retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.assets(crm_leads_raw).downstream().materializable(),
    description="Warehouse -> training data -> model (gated) -> artifact -> deployment -> Flink rollout.",
)


def retraining_schedule(cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="weekly_retraining",
        job=retraining_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description="Retrain, gate, and roll out the lead scoring model every week.",
    )

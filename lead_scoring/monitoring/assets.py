"""Monitoring assets: daily drift of recent scored leads against the serving model's training data."""

from typing import Any, Optional

import dagster as dg
import pandas as pd
from pydantic import Field

from lead_scoring.contract import FEATURES
from lead_scoring.contract.samples import PROBE_ID_PREFIX
from lead_scoring.monitoring.drift import DriftReport, compute_drift, drift_plot_markdown
from lead_scoring.storage.artifacts import ArtifactError
from lead_scoring.storage.resources import ModelStore
from lead_scoring.training.model import LeadScorer, features_frame
from lead_scoring.training.queries import training_data_sql
from lead_scoring.util import DAILY_FRESHNESS, daily_at, markdown_table
from lead_scoring.warehouse.resources import Warehouse

GROUP = "monitoring"
OWNERS = ["team:ml-platform"]
DRIFT_CHECK = "feature_and_score_psi"
DRIFT_ASSET_KEY = dg.AssetKey("lead_score_drift")
DRIFT_CRON = "0 6 * * *"


class DriftConfig(dg.Config):
    window_days: int = Field(default=7, ge=1, le=365, description="recent = stream leads ingested in the last N days")
    warn_psi: float = Field(default=0.1, gt=0, description="PSI above this is a moderate shift (shown, not failing)")
    max_psi: float = Field(default=0.25, gt=0, description="PSI above this on any feature or the score fails the check")
    min_recent_leads: int = Field(default=100, ge=1, description="fewer recent scored leads than this: no verdict")


def recent_leads_sql(window_days: int) -> str:
    """Latest state of every streamed lead ingested in the window, demo leads included (what the live model
    scores); probes and deletions excluded."""
    days = int(window_days)
    return f"""
WITH recent AS (
  SELECT *
  FROM crm_leads_raw
  WHERE _source IN ('stream', 'demo')
    AND _ingested_at >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {days} DAY)
    AND NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY Id ORDER BY LastModifiedDate DESC, _ingested_at DESC) = 1
)
SELECT Id, {", ".join(FEATURES)}
FROM recent
WHERE COALESCE(_EventType, 'created') != 'deleted'
""".strip()


def recent_scores_sql(window_days: int) -> str:
    """Latest score of every record scored in the window (probes excluded)."""
    days = int(window_days)
    return f"""
SELECT Id, Lead_Score__c, Lead_Score_Model__c
FROM lead_scores
WHERE scored_ts >= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {days} DAY)
  AND NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}')
QUALIFY ROW_NUMBER() OVER (PARTITION BY Id ORDER BY scored_ts DESC) = 1
""".strip()


def serving_model(model_store: ModelStore) -> Optional[tuple[str, Any, dict[str, Any]]]:
    """The production model (else the newest one in the store) with its manifest; None if none."""
    repo = model_store.repository()
    version = repo.production_version()
    if version is None:
        versions = repo.versions()
        version = versions[-1] if versions else None
    if version is None:
        return None
    try:
        pipeline, manifest = repo.load(version)
    except ArtifactError as exc:
        raise dg.Failure(f"cannot load model {version} to score the training data: {exc}") from exc
    return version, pipeline, manifest


def reference_frame(warehouse: Warehouse, manifest: Optional[dict[str, Any]]) -> pd.DataFrame:
    """The training rows the model saw: training SQL rows created up to its training range's end."""
    frame = warehouse.query(training_data_sql(0.2))
    if manifest is None:  # no model yet: the rows the next model will train on
        return frame[frame["split"] == "train"].reset_index(drop=True)
    end = (manifest.get("training_data") or {}).get("validation_from")
    if end:
        created = pd.to_datetime(frame["CreatedDate"], utc=True)
        frame = frame[created < pd.Timestamp(end)]
    return frame.reset_index(drop=True)


def _scores(pipeline: Any, version: str, frame: pd.DataFrame) -> pd.Series:
    if frame.empty:
        return pd.Series([], dtype=float)
    return pd.Series([s.score for s in LeadScorer(pipeline, version).score_frame(features_frame(frame))], dtype=float)


@dg.asset(
    key=DRIFT_ASSET_KEY,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"pandas", "sql"},
    automation_condition=daily_at(DRIFT_CRON, "daily at 06:00 UTC"),
    freshness_policy=DAILY_FRESHNESS,
    check_specs=[
        dg.AssetCheckSpec(
            DRIFT_CHECK,
            asset=DRIFT_ASSET_KEY,
            description="Fails when any feature's or the score's PSI exceeds max_psi.",
        )
    ],
)
def lead_score_drift(
    context: dg.AssetExecutionContext, config: DriftConfig, warehouse: Warehouse, model_store: ModelStore
) -> dg.MaterializeResult:
    """PSI of recent scored leads vs the serving model's training data, per feature and for the score."""
    model = serving_model(model_store)
    version, pipeline, manifest = model if model else (None, None, None)
    reference = reference_frame(warehouse, manifest)
    current = warehouse.query(recent_leads_sql(config.window_days))
    served = warehouse.query(recent_scores_sql(config.window_days))
    ref_scores = _scores(pipeline, version, reference) if pipeline is not None else None
    cur_scores = pd.to_numeric(served["Lead_Score__c"], errors="coerce").dropna() if not served.empty else None
    report = compute_drift(reference, current, ref_scores, cur_scores, config.warn_psi, config.max_psi)
    return drift_result(context, report, config, version, len(served))


def drift_result(
    context: Any, report: DriftReport, config: DriftConfig, model_version: Optional[str], scored: int
) -> dg.MaterializeResult:
    worst_feature, worst_psi = report.worst()
    drifted = report.drifted(config.max_psi)
    enough = report.current_rows >= config.min_recent_leads and report.reference_rows > 0
    if not enough:
        description = (
            f"no verdict: {report.current_rows} recent stream leads in {config.window_days} days "
            f"(need {config.min_recent_leads}) and {report.reference_rows} training rows"
        )
        passed = True
    elif drifted:
        description = f"PSI above {config.max_psi} on: {', '.join(drifted)} (worst {worst_feature} {worst_psi:.3f})"
        passed = False
    else:
        description = f"all PSI at or below {config.max_psi} (worst {worst_feature} {worst_psi:.3f})"
        passed = True
    if not passed:
        context.log.warning("drift: %s", description)
    table_md = markdown_table(report.table.assign(psi=report.table["psi"].map(lambda v: f"{v:.4f}")), max_rows=60)
    metadata: dict[str, Any] = {
        "max_psi": dg.MetadataValue.float(float(worst_psi)),
        "worst_feature": worst_feature,
        "drifted_features": ", ".join(drifted) or "none",
        "recent_leads": report.current_rows,
        "recent_scores": scored,
        "training_rows": report.reference_rows,
        "model_version": model_version or "none (score drift not measured)",
        "window_days": config.window_days,
        "verdict": description,
        "report": dg.MetadataValue.md(table_md),
        "psi_table": dg.MetadataValue.table(
            records=[
                dg.TableRecord({k: (float(v) if k == "psi" else str(v)) for k, v in row.items()})
                for row in report.table.to_dict(orient="records")
            ],
            schema=dg.TableSchema(
                columns=[
                    dg.TableColumn("feature", "string"),
                    dg.TableColumn("kind", "string"),
                    dg.TableColumn("psi", "float"),
                    dg.TableColumn("status", "string"),
                    dg.TableColumn("largest_change", "string"),
                ]
            ),
        ),
    }
    score_psi = _psi_of(report, "score")
    if score_psi is not None:
        metadata["score_psi"] = dg.MetadataValue.float(score_psi)
    if enough and not report.table.empty:
        metadata["plot"] = dg.MetadataValue.md(drift_plot_markdown(report, config.warn_psi, config.max_psi))
    check = dg.AssetCheckResult(
        check_name=DRIFT_CHECK,
        asset_key=DRIFT_ASSET_KEY,
        passed=passed,
        description=description,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "max_psi": float(worst_psi),
            "threshold": config.max_psi,
            "worst_feature": worst_feature,
            "drifted_features": ", ".join(drifted) or "none",
            "recent_leads": report.current_rows,
            "evaluated": enough,
        },
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


def _psi_of(report: DriftReport, feature: str) -> Optional[float]:
    hit = report.table.loc[report.table["feature"] == feature, "psi"]
    return float(hit.iloc[0]) if len(hit) else None


drift_job = dg.define_asset_job(
    "drift_job",
    selection=dg.AssetSelection.assets(lead_score_drift),
    description="Compare recent scored leads with the serving model's training data (PSI).",
)

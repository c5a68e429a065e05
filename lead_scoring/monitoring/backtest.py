"""Backtest of each model version: the leads it scored long enough ago, against what became of them.

Reads the score ledger (`lead_score_history`, champion rows only: `shadow = false`, no probes) and the
latest known outcome of each lead in `crm_leads_raw`. Per model version, each lead counts once, with the
FIRST score that version gave it (the score sales acted on, before the outcome arrived), and only if that
score is at least `min_age_days` old (time for the outcome to arrive; younger leads would bias the rate down).

Per version: conversion rate per grade (the ledger's `Lead_Grade__c`; where a row has none, the grade of its
score under the version's manifest cut-offs, `training.grades.GradeScale`; rows of a version without either
are left out of the grade table), a calibration table by score decile (equal-count bins of leads sorted by
score: mean score / 100 vs observed conversion), and the expected calibration error (ECE, the lead-weighted
mean |predicted - observed| over the deciles).

The check judges the serving champion (the version of the newest champion score in the ledger): it fails
when grades with enough leads stop converting in order A > B > C > D, or when ECE exceeds `max_ece`; the
`retraining_trigger_sensor` then requests a retraining, once per failed evaluation.
"""

from dataclasses import dataclass
from typing import Any, Optional

import dagster as dg
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from pydantic import Field

from lead_scoring.contract import SCORE_GRADES
from lead_scoring.contract.samples import PROBE_ID_PREFIX
from lead_scoring.lifecycle.ledger import LEDGER_ASSET_KEY
from lead_scoring.storage.artifacts import ArtifactError
from lead_scoring.storage.resources import ModelStore
from lead_scoring.training.evaluation import png_base64
from lead_scoring.training.grades import GradeScale
from lead_scoring.util import DAILY_FRESHNESS, daily_at, markdown_table
from lead_scoring.warehouse.outcomes import outcomes_cte
from lead_scoring.warehouse.resources import Warehouse

GROUP = "monitoring"
OWNERS = ["team:ml-platform"]
BACKTEST_ASSET_KEY = dg.AssetKey("lead_score_backtest")
BACKTEST_CRON = "30 6 * * *"
BACKTEST_CHECK = "grades_and_calibration"
DECILES = 10
MAX_PLOTTED_VERSIONS = 6


class BacktestConfig(dg.Config):
    min_age_days: int = Field(
        default=14, ge=0, le=365, description="backtest leads first scored at least this many days ago"
    )
    max_ece: float = Field(default=0.1, gt=0, le=1, description="expected calibration error above this fails the check")
    min_leads: int = Field(default=200, ge=1, description="fewer backtested leads of the champion: no verdict")
    min_grade_leads: int = Field(
        default=30, ge=1, description="a grade with fewer leads is left out of the A > B > C > D test"
    )


def backtest_sql(min_age_days: int) -> str:
    """Per (lead, champion version): its first score, at least `min_age_days` old, with the lead's outcome."""
    days = int(min_age_days)
    return f"""
WITH {outcomes_cte()},
first_scores AS (
  SELECT Id, Lead_Score_Model__c, Lead_Score__c, Lead_Grade__c, scored_ts
  FROM lead_score_history
  WHERE COALESCE(shadow, FALSE) = FALSE AND NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY Id, Lead_Score_Model__c ORDER BY scored_ts, Lead_Score__c) = 1
)
SELECT
  f.Id AS Id,
  f.Lead_Score_Model__c AS model_version,
  f.Lead_Score__c AS score,
  f.Lead_Grade__c AS grade,
  f.scored_ts AS scored_ts,
  o.converted AS converted
FROM first_scores AS f
JOIN outcomes AS o ON o.Id = f.Id
WHERE o.converted IS NOT NULL
  AND f.scored_ts <= TIMESTAMP_SUB(CURRENT_TIMESTAMP(), INTERVAL {days} DAY)
""".strip()


CHAMPION_SQL = (
    "SELECT Lead_Score_Model__c AS model_version FROM lead_score_history "
    f"WHERE COALESCE(shadow, FALSE) = FALSE AND NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}') "
    "ORDER BY scored_ts DESC LIMIT 1"
)


@dataclass
class VersionBacktest:
    version: str
    leads: int
    conversion_rate: float
    grades: pd.DataFrame  # grade, leads, converted, conversion_rate
    graded_by: str  # where the grades came from
    calibration: pd.DataFrame  # decile, leads, score_min, score_max, predicted, observed
    ece: float
    monotonic: Optional[bool]  # None: fewer than two grades with enough leads to compare

    @property
    def grade_rates(self) -> dict[str, float]:
        return {
            g: round(float(r), 4) for g, r in zip(self.grades["grade"], self.grades["conversion_rate"], strict=True)
        }


def calibration_table(scores: np.ndarray, converted: np.ndarray, bins: int = DECILES) -> tuple[pd.DataFrame, float]:
    """Equal-count score bins (deciles): mean predicted (score / 100) vs observed rate, and the ECE."""
    order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
    scores = np.asarray(scores, dtype=float)[order]
    converted = np.asarray(converted, dtype=float)[order]
    rows, ece = [], 0.0
    for i, idx in enumerate(np.array_split(np.arange(len(scores)), min(bins, len(scores))), start=1):
        if not len(idx):
            continue
        predicted, observed = float(scores[idx].mean() / 100.0), float(converted[idx].mean())
        ece += len(idx) / len(scores) * abs(predicted - observed)
        rows.append(
            {
                "decile": i,
                "leads": len(idx),
                "score_min": int(scores[idx].min()),
                "score_max": int(scores[idx].max()),
                "predicted": round(predicted, 4),
                "observed": round(observed, 4),
            }
        )
    return pd.DataFrame(rows, columns=["decile", "leads", "score_min", "score_max", "predicted", "observed"]), ece


def grade_table(grades: pd.Series, converted: pd.Series) -> pd.DataFrame:
    rows = []
    for g in SCORE_GRADES:
        inside = grades == g
        n = int(inside.sum())
        if n:
            rows.append(
                {
                    "grade": g,
                    "leads": n,
                    "converted": int(converted[inside].sum()),
                    "conversion_rate": float(converted[inside].mean()),
                }
            )
    return pd.DataFrame(rows, columns=["grade", "leads", "converted", "conversion_rate"])


def is_monotonic(grades: pd.DataFrame, min_grade_leads: int) -> Optional[bool]:
    """Conversion strictly falls A > B > C > D over the grades with at least `min_grade_leads` leads."""
    rates = grades.loc[grades["leads"] >= min_grade_leads, "conversion_rate"].tolist()
    if len(rates) < 2:
        return None
    return all(a > b for a, b in zip(rates, rates[1:], strict=False))  # consecutive pairs


def manifest_scale(model_store: Optional[ModelStore], version: str) -> tuple[Optional[GradeScale], str]:
    """The version's grade cut-offs from its manifest, or None with why."""
    if model_store is None:
        return None, "no model store"
    try:
        scale = GradeScale.from_manifest(model_store.repository().manifest(version))
    except (ArtifactError, ValueError, KeyError) as exc:
        return None, f"manifest unreadable ({exc})"
    return (scale, "manifest cut-offs") if scale is not None else (None, "its manifest has no grades")


def backtest_version(
    rows: pd.DataFrame, version: str, scale: Optional[GradeScale], scale_note: str, min_grade_leads: int
) -> VersionBacktest:
    converted = rows["converted"].astype(bool).astype(int)
    scores = pd.to_numeric(rows["score"], errors="coerce").astype(float)
    grades = rows["grade"].astype(object).where(rows["grade"].notna(), None)
    missing = grades.isna()
    if missing.any() and scale is not None:
        grades = grades.where(~missing, scores.map(lambda s: scale.grade(int(s))))
    if not missing.any():
        graded_by = "ledger"
    elif scale is not None:
        graded_by = "manifest cut-offs" if missing.all() else "ledger + manifest cut-offs"
    else:
        graded_by = f"ledger; {int(missing.sum())} rows without a grade left out ({scale_note})"
    table = grade_table(grades, converted)
    calibration, ece = calibration_table(scores.to_numpy(), converted.to_numpy())
    return VersionBacktest(
        version,
        len(rows),
        float(converted.mean()) if len(rows) else float("nan"),
        table,
        graded_by,
        calibration,
        ece,
        is_monotonic(table, min_grade_leads),
    )


def backtest_plot_markdown(results: list[VersionBacktest]) -> str:
    """Calibration per version (observed vs predicted by decile) and conversion per grade, as one PNG."""
    fig, (calib, bars) = plt.subplots(1, 2, figsize=(12, 4.5))
    calib.plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    width = 0.8 / max(1, len(results))
    for i, r in enumerate(results):
        calib.plot(
            r.calibration["predicted"],
            r.calibration["observed"],
            "o-",
            label=f"{r.version} (ECE {r.ece:.3f}, {r.leads} leads)",
        )
        x = [SCORE_GRADES.index(g) + i * width for g in r.grades["grade"]]
        bars.bar(x, r.grades["conversion_rate"], width=width, label=r.version)
    calib.set(
        title="Calibration by score decile",
        xlabel="score / 100 (predicted)",
        ylabel="observed conversion",
        xlim=(0, 1.02),
        ylim=(0, 1.02),
    )
    calib.legend(loc="upper left", fontsize=8)
    bars.set_xticks([i + 0.4 - width / 2 for i in range(len(SCORE_GRADES))], SCORE_GRADES)
    bars.set(title="Conversion rate by grade", xlabel="grade", ylabel="observed conversion")
    bars.legend(fontsize=8)
    return f"![backtest](data:image/png;base64,{png_base64(fig)})"


def verdict(champion: Optional[VersionBacktest], config: BacktestConfig) -> tuple[bool, bool, str]:
    """(passed, evaluated, description) of the champion's backtest."""
    if champion is None or champion.leads < config.min_leads:
        found = champion.leads if champion else 0
        return (
            True,
            False,
            (
                f"no verdict: {found} leads of the champion were scored at least {config.min_age_days} "
                f"days ago and have an outcome (need {config.min_leads})"
            ),
        )
    problems = []
    if champion.monotonic is False:
        rates = ", ".join(f"{g} {r:.1%}" for g, r in champion.grade_rates.items())
        problems.append(f"grades no longer convert in order A > B > C > D ({rates})")
    if champion.ece > config.max_ece:
        problems.append(f"calibration drifted: ECE {champion.ece:.3f} > {config.max_ece}")
    if problems:
        return (
            False,
            True,
            (
                f"model {champion.version}: "
                + "; ".join(problems)
                + " (retraining_trigger_sensor requests a retraining)"
            ),
        )
    order = "grades in order" if champion.monotonic else "grades not compared (too few leads per grade)"
    return True, True, f"model {champion.version}: {order}, ECE {champion.ece:.3f} <= {config.max_ece}"


@dg.asset(
    key=BACKTEST_ASSET_KEY,
    group_name=GROUP,
    owners=OWNERS,
    kinds={"pandas", "sql"},
    deps=[LEDGER_ASSET_KEY, dg.AssetKey("crm_leads_raw")],
    automation_condition=daily_at(BACKTEST_CRON, "daily at 06:30 UTC"),
    freshness_policy=DAILY_FRESHNESS,
    check_specs=[
        dg.AssetCheckSpec(
            BACKTEST_CHECK,
            asset=BACKTEST_ASSET_KEY,
            blocking=False,
            description="Fails when the champion's grades stop converting in order A > B > C > D or its expected "
            "calibration error exceeds max_ece (then the retraining sensor requests a retraining).",
        )
    ],
)
def lead_score_backtest(
    context: dg.AssetExecutionContext, config: BacktestConfig, warehouse: Warehouse, model_store: ModelStore
) -> dg.MaterializeResult:
    """Per model version: conversion by grade and calibration of leads scored at least N days ago, vs their outcome."""
    rows = warehouse.query(backtest_sql(config.min_age_days))
    champions = warehouse.query(CHAMPION_SQL)
    champion_version = str(champions["model_version"].iloc[0]) if not champions.empty else None
    results: list[VersionBacktest] = []
    for version, part in rows.groupby("model_version", sort=False):
        scale, note = (None, "not needed") if part["grade"].notna().all() else manifest_scale(model_store, str(version))
        results.append(backtest_version(part, str(version), scale, note, config.min_grade_leads))
    newest = rows.groupby("model_version")["scored_ts"].max().to_dict() if not rows.empty else {}
    results.sort(key=lambda r: newest.get(r.version, pd.Timestamp.min), reverse=True)
    champion = next((r for r in results if r.version == champion_version), None)
    passed, evaluated, description = verdict(champion, config)
    if not passed:
        context.log.warning("backtest: %s", description)

    summary = pd.DataFrame(
        [
            {
                "model_version": r.version,
                "champion": "yes" if r.version == champion_version else "",
                "leads": r.leads,
                "conversion": f"{r.conversion_rate:.1%}",
                "ECE": f"{r.ece:.3f}",
                "grades A>B>C>D": {True: "yes", False: "NO", None: "not compared"}[r.monotonic],
                "conversion by grade": ", ".join(f"{g} {v:.1%}" for g, v in r.grade_rates.items()) or "no grades",
                "graded by": r.graded_by,
            }
            for r in results
        ]
    )
    metadata: dict[str, Any] = {
        "champion_version": champion_version or "none (no champion score in the ledger)",
        "backtested_leads": int(len(rows)),
        "model_versions": len(results),
        "min_age_days": config.min_age_days,
        "verdict": description,
        "versions": dg.MetadataValue.md(markdown_table(summary)),
    }
    if champion is not None:
        metadata["ece"] = dg.MetadataValue.float(round(champion.ece, 4))
        metadata["conversion_by_grade"] = dg.MetadataValue.json(champion.grade_rates)
        metadata["grades"] = dg.MetadataValue.md(
            markdown_table(
                champion.grades.assign(conversion_rate=champion.grades["conversion_rate"].map(lambda v: f"{v:.1%}"))
            )
        )
        metadata["calibration"] = dg.MetadataValue.md(markdown_table(champion.calibration))
    if results:
        metadata["plot"] = dg.MetadataValue.md(backtest_plot_markdown(results[:MAX_PLOTTED_VERSIONS]))
    check = dg.AssetCheckResult(
        check_name=BACKTEST_CHECK,
        asset_key=BACKTEST_ASSET_KEY,
        passed=passed,
        description=description,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "model_version": champion_version or "none",
            "evaluated": evaluated,
            "leads": champion.leads if champion else 0,
            "ece": float(round(champion.ece, 4)) if champion else 0.0,
            "max_ece": config.max_ece,
            "grades_in_order": {True: "yes", False: "no", None: "not compared"}[
                champion.monotonic if champion else None
            ],
        },
    )
    return dg.MaterializeResult(metadata=metadata, check_results=[check])


backtest_job = dg.define_asset_job(
    "backtest_job",
    selection=dg.AssetSelection.assets(LEDGER_ASSET_KEY, BACKTEST_ASSET_KEY),
    description="Refresh the score ledger's summary and backtest every model version against outcomes.",
)

"""Champion vs challenger on the same live leads, judged by the outcomes as they arrive.

Pairs come from the score ledger (`lead_score_history`): a shadow row of the challenger and a champion row
with the same `Id` and the same `source_ts` scored the very same input record (the Kafka timestamp travels
with it through the pipeline). Per Id the newest pair counts (each lead once, with its current scores),
joined with the lead's latest known outcome in `crm_leads_raw` (`IsConverted`, as the backtest reads it).

Metrics, side by side: ROC AUC, Brier score and log loss (score / 100 as the probability) on the pairs with an
outcome; over all pairs: grade agreement (same grade), grade flips (champion grade -> challenger grade), mean
absolute score difference and the share within 5 points.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score, roc_curve

from lead_scoring.contract import SCORE_GRADES
from lead_scoring.contract.samples import PROBE_ID_PREFIX
from lead_scoring.training.evaluation import expected_calibration_error, png_base64
from lead_scoring.warehouse.outcomes import outcomes_cte


def pairs_sql() -> str:
    """(Id, champion and challenger score/grade of the same input record, outcome), newest pair per Id."""
    return f"""
WITH {outcomes_cte()},
challenger AS (
  SELECT Id, source_ts, scored_ts, Lead_Score__c AS score, Lead_Grade__c AS grade
  FROM lead_score_history
  WHERE COALESCE(shadow, FALSE) = TRUE AND Lead_Score_Model__c = @challenger
    AND NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}')
),
champion AS (
  SELECT Id, source_ts, scored_ts, Lead_Score__c AS score, Lead_Grade__c AS grade, Lead_Score_Model__c AS version
  FROM lead_score_history
  WHERE COALESCE(shadow, FALSE) = FALSE AND NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}')
),
pairs AS (
  SELECT
    s.Id AS Id,
    s.source_ts AS source_ts,
    c.version AS champion_version,
    c.score AS champion_score,
    c.grade AS champion_grade,
    s.score AS challenger_score,
    s.grade AS challenger_grade
  FROM challenger AS s
  JOIN champion AS c ON c.Id = s.Id AND c.source_ts = s.source_ts
  QUALIFY ROW_NUMBER() OVER (PARTITION BY s.Id ORDER BY s.source_ts DESC, s.scored_ts DESC, c.scored_ts DESC) = 1
)
SELECT p.*, o.converted AS converted
FROM pairs AS p
LEFT JOIN outcomes AS o ON o.Id = p.Id
""".strip()


@dataclass
class SideMetrics:
    roc_auc: Optional[float] = None
    brier: Optional[float] = None
    log_loss: Optional[float] = None
    ece: Optional[float] = None  # expected calibration error, 10 bins, score / 100 as the probability
    mean_score: Optional[float] = None


@dataclass
class ComparisonResult:
    """What `champion_challenger_comparison` outputs (and the promotion reads: which challenger it judged)."""

    challenger_version: str
    champion_versions: list[str]
    pairs: int
    with_outcome: int
    converted: int
    champion: SideMetrics = field(default_factory=SideMetrics)
    challenger: SideMetrics = field(default_factory=SideMetrics)
    grade_agreement: Optional[float] = None
    graded_pairs: int = 0
    mean_abs_score_diff: Optional[float] = None
    within_5_points: Optional[float] = None
    flips: dict[str, dict[str, int]] = field(default_factory=dict)  # champion grade -> challenger grade -> n

    @property
    def evaluable(self) -> bool:
        return self.with_outcome > 0 and 0 < self.converted < self.with_outcome


def _side(scores: np.ndarray, y: np.ndarray) -> SideMetrics:
    p = np.clip(scores / 100.0, 1e-4, 1 - 1e-4)
    both = len(y) and 0 < y.sum() < len(y)
    return SideMetrics(
        roc_auc=float(roc_auc_score(y, p)) if both else None,
        brier=float(brier_score_loss(y, p)) if len(y) else None,
        log_loss=float(log_loss(y, p, labels=[0, 1])) if len(y) else None,
        ece=expected_calibration_error(y, scores / 100.0) if len(y) else None,
        mean_score=float(scores.mean()) if len(scores) else None,
    )


def compare(pairs: pd.DataFrame, challenger_version: str) -> ComparisonResult:
    champion_scores = pd.to_numeric(pairs["champion_score"], errors="coerce").to_numpy(dtype=float)
    challenger_scores = pd.to_numeric(pairs["challenger_score"], errors="coerce").to_numpy(dtype=float)
    known = pairs["converted"].notna().to_numpy()
    y = pairs.loc[known, "converted"].astype(bool).astype(int).to_numpy()
    result = ComparisonResult(
        challenger_version=challenger_version,
        champion_versions=sorted({str(v) for v in pairs["champion_version"].dropna()}),
        pairs=len(pairs),
        with_outcome=int(known.sum()),
        converted=int(y.sum()),
        champion=_side(champion_scores[known], y),
        challenger=_side(challenger_scores[known], y),
    )
    if len(pairs):
        diff = np.abs(champion_scores - challenger_scores)
        result.mean_abs_score_diff = float(diff.mean())
        result.within_5_points = float((diff <= 5).mean())
    graded = pairs["champion_grade"].notna() & pairs["challenger_grade"].notna()
    result.graded_pairs = int(graded.sum())
    if result.graded_pairs:
        g = pairs.loc[graded]
        result.grade_agreement = float((g["champion_grade"] == g["challenger_grade"]).mean())
        result.flips = {
            a: {b: int(((g["champion_grade"] == a) & (g["challenger_grade"] == b)).sum()) for b in SCORE_GRADES}
            for a in SCORE_GRADES
        }
    return result


def _fmt(value: Optional[float], digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def metrics_markdown(result: ComparisonResult) -> str:
    champion = ", ".join(result.champion_versions) or "none"
    rows = [f"| metric | champion ({champion}) | challenger ({result.challenger_version}) |", "|---|---|---|"]
    for label, attr, better in (
        ("ROC AUC", "roc_auc", "higher"),
        ("Brier score", "brier", "lower"),
        ("log loss", "log_loss", "lower"),
        ("ECE", "ece", "lower"),
        ("mean score", "mean_score", ""),
    ):
        rows.append(
            f"| {label}{' (' + better + ' is better)' if better else ''} | "
            f"{_fmt(getattr(result.champion, attr))} | {_fmt(getattr(result.challenger, attr))} |"
        )
    rows.append(f"| leads compared (with outcome) | {result.pairs} ({result.with_outcome}) | same leads |")
    return "\n".join(rows)


def flips_markdown(result: ComparisonResult) -> str:
    if not result.flips:
        return "no pair with both grades yet"
    lines = ["| champion \\ challenger | " + " | ".join(SCORE_GRADES) + " |", "|---" * (len(SCORE_GRADES) + 1) + "|"]
    for a in SCORE_GRADES:
        lines.append(f"| {a} | " + " | ".join(str(result.flips[a][b]) for b in SCORE_GRADES) + " |")
    return "\n".join(lines)


def comparison_plot_markdown(pairs: pd.DataFrame, result: ComparisonResult) -> str:
    """ROC curves of both on the same leads, score vs score, and the grade flips, as one PNG."""
    fig, (roc, scatter, flips) = plt.subplots(1, 3, figsize=(15, 4.5))
    known = pairs[pairs["converted"].notna()]
    y = known["converted"].astype(bool).astype(int).to_numpy()
    if result.evaluable:
        for column, label, side in (
            ("champion_score", "champion", result.champion),
            ("challenger_score", "challenger", result.challenger),
        ):
            fpr, tpr, _ = roc_curve(y, known[column].astype(float) / 100.0)
            roc.plot(fpr, tpr, label=f"{label} (AUC {_fmt(side.roc_auc, 3)})")
    roc.plot([0, 1], [0, 1], "--", color="grey")
    roc.set(
        title=f"ROC on {result.with_outcome} leads with an outcome",
        xlabel="false positive rate",
        ylabel="true positive rate",
    )
    roc.legend(loc="lower right", fontsize=8)
    scatter.scatter(pairs["champion_score"].astype(float), pairs["challenger_score"].astype(float), s=6, alpha=0.4)
    scatter.plot([0, 100], [0, 100], "--", color="grey")
    scatter.set(
        title=f"Scores of the same {result.pairs} leads",
        xlabel="champion score",
        ylabel="challenger score",
        xlim=(0, 100),
        ylim=(0, 100),
    )
    matrix = np.array([[result.flips.get(a, {}).get(b, 0) for b in SCORE_GRADES] for a in SCORE_GRADES])
    flips.imshow(matrix, cmap="Blues")
    for i in range(len(SCORE_GRADES)):
        for j in range(len(SCORE_GRADES)):
            flips.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=9)
    flips.set_xticks(range(len(SCORE_GRADES)), SCORE_GRADES)
    flips.set_yticks(range(len(SCORE_GRADES)), SCORE_GRADES)
    flips.set(
        title=f"Grade flips (agreement {_fmt(result.grade_agreement, 3)})",
        xlabel="challenger grade",
        ylabel="champion grade",
    )
    return f"![champion vs challenger](data:image/png;base64,{png_base64(fig)})"


def verdict(
    result: ComparisonResult,
    min_outcomes: int,
    max_auc_drop: float,
    max_brier_increase: float,
    max_ece: float = 0.03,
    max_ece_increase: float = 0.01,
) -> tuple[bool, str, dict[str, Any]]:
    """(passed, description, metadata) of the promotion gate: ranking (ROC AUC), accuracy (Brier) and
    calibration (the challenger's ECE at most `max_ece` and at most `max_ece_increase` above the champion's)."""
    meta: dict[str, Any] = {
        "leads_with_outcome": result.with_outcome,
        "min_outcomes": min_outcomes,
        "challenger_roc_auc": result.challenger.roc_auc or 0.0,
        "champion_roc_auc": result.champion.roc_auc or 0.0,
        "challenger_brier": result.challenger.brier or 0.0,
        "champion_brier": result.champion.brier or 0.0,
        "challenger_ece": result.challenger.ece or 0.0,
        "champion_ece": result.champion.ece or 0.0,
        "max_ece": max_ece,
    }
    if result.with_outcome < min_outcomes or not result.evaluable:
        return (
            False,
            (
                f"not enough evidence yet: {result.with_outcome} leads scored by both have an outcome "
                f"({result.converted} converted); the gate needs {min_outcomes} with both outcomes present "
                "(wait for outcomes, or lower champion_challenger_comparison's min_outcomes)"
            ),
            meta,
        )
    problems = []
    auc_c, auc_x = result.champion.roc_auc or 0.0, result.challenger.roc_auc or 0.0
    if auc_x < auc_c - max_auc_drop:
        problems.append(f"challenger ROC AUC {auc_x:.4f} < champion {auc_c:.4f} - {max_auc_drop}")
    brier_c, brier_x = result.champion.brier or 0.0, result.challenger.brier or 0.0
    if brier_x > brier_c + max_brier_increase:
        problems.append(f"challenger Brier {brier_x:.4f} > champion {brier_c:.4f} + {max_brier_increase}")
    ece_c, ece_x = result.champion.ece or 0.0, result.challenger.ece or 0.0
    if ece_x > max_ece:
        problems.append(f"challenger ECE {ece_x:.4f} > {max_ece}: its scores do not read as probabilities")
    if ece_x > ece_c + max_ece_increase:
        problems.append(f"challenger ECE {ece_x:.4f} > champion {ece_c:.4f} + {max_ece_increase}")
    if problems:
        return False, "; ".join(problems), meta
    return (
        True,
        (
            f"challenger {result.challenger_version} is at least as good on {result.with_outcome} leads: "
            f"ROC AUC {auc_x:.4f} vs {auc_c:.4f}, Brier {brier_x:.4f} vs {brier_c:.4f}, "
            f"ECE {ece_x:.4f} vs {ece_c:.4f}"
        ),
        meta,
    )

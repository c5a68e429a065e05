"""Population Stability Index (PSI) of the model's features and of its score, and the drift plot.

Bins come from the reference (training) sample: deciles for numeric fields (plus a bucket for
missing values), the categories seen in at least `min_category_share` of the reference (the rest
pooled as `(other)`, nulls as `(missing)`) for categorical fields, ticked/not ticked for flags, and
ten fixed bands of 10 points for the 0-100 score. Empty buckets are smoothed with `EPSILON` so a
category that appears only in one sample gives a large but finite PSI.

Rule of thumb used for the defaults: PSI < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 significant.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from lead_scoring.contract import CATEGORICAL_FEATURES, FLAG_FEATURES, NUMERIC_FEATURES
from lead_scoring.training.evaluation import png_base64
from lead_scoring.training.features import ticked

EPSILON = 1e-4
MISSING = "(missing)"
OTHER = "(other)"
SCORE = "score"


def psi(reference_shares: np.ndarray, current_shares: np.ndarray) -> float:
    """sum((cur - ref) * ln(cur / ref)) over buckets, with empty buckets smoothed to EPSILON."""
    ref = np.clip(np.asarray(reference_shares, dtype=float), EPSILON, None)
    cur = np.clip(np.asarray(current_shares, dtype=float), EPSILON, None)
    ref, cur = ref / ref.sum(), cur / cur.sum()
    return float(np.sum((cur - ref) * np.log(cur / ref)))


def _shares(labels: pd.Series, buckets: list[str]) -> np.ndarray:
    counts = labels.value_counts()
    total = max(len(labels), 1)
    return np.array([counts.get(b, 0) / total for b in buckets], dtype=float)


def numeric_buckets(reference: pd.Series, current: pd.Series, bins: int = 10) -> tuple[list[str], pd.Series, pd.Series]:
    """Reference-quantile buckets (open-ended at both ends) plus a missing bucket."""
    ref = pd.to_numeric(reference, errors="coerce").astype(float)
    cur = pd.to_numeric(current, errors="coerce").astype(float)
    values = ref.dropna().to_numpy()
    inner = np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])) if len(values) else np.array([])
    edges = np.concatenate([[-np.inf], inner, [np.inf]])
    names = [f"({edges[i]:.4g}, {edges[i + 1]:.4g}]" for i in range(len(edges) - 1)]

    def label(series: pd.Series) -> pd.Series:
        idx = np.searchsorted(edges[1:-1], series.to_numpy(), side="left")
        out = pd.Series([names[i] for i in idx], index=series.index, dtype=object)
        return out.where(series.notna(), MISSING)

    return names + [MISSING], label(ref), label(cur)


def categorical_buckets(
    reference: pd.Series, current: pd.Series, min_category_share: float = 0.01
) -> tuple[list[str], pd.Series, pd.Series]:
    """Frequent reference categories, `(other)` for the rest (new categories too), `(missing)`."""
    ref = reference.astype(object).where(reference.notna(), None)
    cur = current.astype(object).where(current.notna(), None)
    shares = ref.dropna().astype(str).value_counts(normalize=False) / max(len(ref), 1)
    kept = sorted(shares[shares >= min_category_share].index)

    def label(series: pd.Series) -> pd.Series:
        text = series.map(lambda v: None if v is None else str(v))
        return text.map(lambda v: MISSING if v is None else (v if v in kept else OTHER))

    return kept + [OTHER, MISSING], label(ref), label(cur)


def flag_buckets(reference: pd.Series, current: pd.Series) -> tuple[list[str], pd.Series, pd.Series]:
    """Ticked or not (absent means not ticked, as the model reads it)."""

    def label(series: pd.Series) -> pd.Series:
        return ticked(series).map({True: "true", False: "false"})

    return ["true", "false"], label(reference), label(current)


def score_buckets(reference: pd.Series, current: pd.Series) -> tuple[list[str], pd.Series, pd.Series]:
    """Ten fixed bands of the 0-100 score."""
    names = [f"{lo}-{lo + 9 if lo < 90 else 100}" for lo in range(0, 100, 10)]

    def label(series: pd.Series) -> pd.Series:
        values = pd.to_numeric(series, errors="coerce").dropna().clip(0, 100).astype(int)
        return values.map(lambda s: names[min(s // 10, 9)])

    return names, label(reference), label(current)


@dataclass
class DriftReport:
    """PSI per feature (and for the score), with the bucket shares behind each number."""

    table: pd.DataFrame  # feature, kind, psi, status, top_bucket_change
    shares: dict[str, pd.DataFrame] = field(default_factory=dict)  # feature -> bucket, reference, current
    reference_rows: int = 0
    current_rows: int = 0

    def worst(self) -> tuple[str, float]:
        if self.table.empty:
            return ("none", 0.0)
        row = self.table.sort_values("psi", ascending=False).iloc[0]
        return str(row["feature"]), float(row["psi"])

    def drifted(self, threshold: float) -> list[str]:
        return self.table.loc[self.table["psi"] > threshold, "feature"].tolist()


def status_of(value: float, warn: float, fail: float) -> str:
    if value > fail:
        return "significant"
    if value > warn:
        return "moderate"
    return "stable"


def compute_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    reference_scores: pd.Series | None = None,
    current_scores: pd.Series | None = None,
    warn_threshold: float = 0.1,
    fail_threshold: float = 0.25,
) -> DriftReport:
    """PSI of every contract feature of `current` against `reference`, and of the scores if given."""
    rows = []
    shares: dict[str, pd.DataFrame] = {}

    def add(name: str, kind: str, buckets: list[str], ref_labels: pd.Series, cur_labels: pd.Series) -> None:
        ref_s, cur_s = _shares(ref_labels, buckets), _shares(cur_labels, buckets)
        value = psi(ref_s, cur_s)
        diff = cur_s - ref_s
        top = int(np.argmax(np.abs(diff))) if len(diff) else 0
        change = f"{buckets[top]}: {ref_s[top]:.1%} -> {cur_s[top]:.1%}" if len(buckets) else ""
        rows.append(
            {
                "feature": name,
                "kind": kind,
                "psi": round(value, 4),
                "status": status_of(value, warn_threshold, fail_threshold),
                "largest_change": change,
            }
        )
        shares[name] = pd.DataFrame({"bucket": buckets, "reference": ref_s, "current": cur_s})

    def column(frame: pd.DataFrame, name: str) -> pd.Series:
        return frame[name] if name in frame.columns else pd.Series([None] * len(frame), index=frame.index, dtype=object)

    for name in NUMERIC_FEATURES:
        add(name, "numeric", *numeric_buckets(column(reference, name), column(current, name)))
    for name in CATEGORICAL_FEATURES:
        add(name, "categorical", *categorical_buckets(column(reference, name), column(current, name)))
    for name in FLAG_FEATURES:
        add(name, "flag", *flag_buckets(column(reference, name), column(current, name)))
    if reference_scores is not None and current_scores is not None and len(reference_scores) and len(current_scores):
        add(SCORE, "score", *score_buckets(reference_scores, current_scores))
    table = pd.DataFrame(rows, columns=["feature", "kind", "psi", "status", "largest_change"])
    table = table.sort_values("psi", ascending=False, kind="stable").reset_index(drop=True)
    return DriftReport(table=table, shares=shares, reference_rows=len(reference), current_rows=len(current))


def drift_plot_markdown(report: DriftReport, warn_threshold: float, fail_threshold: float, top: int = 4) -> str:
    """PSI per feature as bars, and reference vs current shares of the most drifted ones (PNG as markdown)."""
    shown = list(report.table["feature"].tolist()[:top])
    fig, axes = plt.subplots(1, 1 + len(shown), figsize=(4.2 * (1 + len(shown)), 4.2))
    axes = np.atleast_1d(axes)
    table = report.table.sort_values("psi")
    colors = ["#d62728" if v > fail_threshold else "#ff7f0e" if v > warn_threshold else "#2ca02c" for v in table["psi"]]
    axes[0].barh(table["feature"], table["psi"], color=colors)
    axes[0].axvline(warn_threshold, color="#ff7f0e", linestyle="--", linewidth=1)
    axes[0].axvline(fail_threshold, color="#d62728", linestyle="--", linewidth=1)
    axes[0].set(title="PSI per feature", xlabel="PSI")
    axes[0].tick_params(axis="y", labelsize=7)
    for ax, name in zip(axes[1:], shown, strict=True):
        frame = report.shares[name]
        x = np.arange(len(frame))
        ax.bar(x - 0.2, frame["reference"], width=0.4, label="training")
        ax.bar(x + 0.2, frame["current"], width=0.4, label="recent")
        ax.set_xticks(x, [str(b)[:18] for b in frame["bucket"]], rotation=70, fontsize=6)
        psi_value = float(report.table.loc[report.table["feature"] == name, "psi"].iloc[0])
        ax.set(title=f"{name} (PSI {psi_value:.2f})", ylabel="share")
        ax.legend(fontsize=7)
    fig.suptitle(f"training ({report.reference_rows} leads) vs recent scored ({report.current_rows} leads)")
    return f"![drift](data:image/png;base64,{png_base64(fig)})"

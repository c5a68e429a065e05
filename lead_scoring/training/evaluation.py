"""Model metrics and the plots shown in the Dagster UI (PNG, embedded as markdown)."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # headless: runs in the Dagster daemon/webserver processes

import matplotlib.pyplot as plt
import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    average_precision_score,
    brier_score_loss,
    log_loss,
    roc_auc_score,
    roc_curve,
)


def top_decile_lift(y_true: np.ndarray, proba: np.ndarray) -> float:
    """Conversion rate of the 10% best-scored leads over the overall rate."""
    y_true = np.asarray(y_true, dtype=float)
    base = y_true.mean()
    if base == 0:
        return float("nan")
    k = max(1, int(np.ceil(len(y_true) * 0.1)))
    top = np.argsort(-np.asarray(proba), kind="stable")[:k]
    return float(y_true[top].mean() / base)


ECE_BINS = 10


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE: the lead-weighted mean |observed conversion rate - mean predicted probability| over `bins`
    equal-width probability bins (the score read as a probability, as a sales rep reads it)."""
    y_true = np.asarray(y_true, dtype=float)
    proba = np.asarray(proba, dtype=float)
    if not len(y_true):
        return float("nan")
    index = np.clip((proba * bins).astype(int), 0, bins - 1)
    counts = np.bincount(index, minlength=bins)
    gap = np.abs(np.bincount(index, weights=y_true, minlength=bins) - np.bincount(index, weights=proba, minlength=bins))
    return float(gap.sum() / len(y_true)) if counts.sum() else float("nan")


def calibration_table(y_true: np.ndarray, proba: np.ndarray, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """Per equal-width probability bin: leads, mean predicted probability, observed conversion rate."""
    y_true = np.asarray(y_true, dtype=float)
    proba = np.asarray(proba, dtype=float)
    index = np.clip((proba * bins).astype(int), 0, bins - 1)
    rows = []
    for b in range(bins):
        inside = index == b
        if inside.any():
            rows.append(
                {
                    "bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}",
                    "leads": int(inside.sum()),
                    "predicted": float(proba[inside].mean()),
                    "observed": float(y_true[inside].mean()),
                }
            )
    return rows


def bootstrap_intervals(
    y_true: np.ndarray, proba: np.ndarray, resamples: int = 200, level: float = 0.90, seed: int = 0
) -> dict[str, list[float]]:
    """Percentile bootstrap intervals ([low, high] at `level`) of ROC AUC, ECE and Brier over the leads.

    Resamples lacking one class are skipped (no AUC); the seed makes the interval reproducible."""
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {"roc_auc": [], "ece": [], "brier_score": []}
    n = len(y_true)
    for _ in range(resamples):
        pick = rng.integers(0, n, n)
        y, p = y_true[pick], proba[pick]
        if 0 < y.sum() < n:
            draws["roc_auc"].append(float(roc_auc_score(y, p)))
        draws["ece"].append(expected_calibration_error(y, p))
        draws["brier_score"].append(float(np.mean((p - y) ** 2)))
    tail = (1.0 - level) / 2 * 100
    return {
        k: [float(np.percentile(v, tail)), float(np.percentile(v, 100 - tail))] if v else [float("nan")] * 2
        for k, v in draws.items()
    }


def ece_if_calibrated(proba: np.ndarray, resamples: int = 200, quantile: float = 0.95, seed: int = 0) -> float:
    """The ECE a perfectly calibrated model with these probabilities would show on this many leads, at
    `quantile` (consistency resampling, Broecker & Smith 2007: outcomes drawn as Bernoulli(proba)).

    ECE is never zero on a finite sample: on ~600 leads a perfect model shows ~0.04, on ~100 leads ~0.1.
    An ECE above a limit means miscalibration only when it is also above this noise level."""
    proba = np.asarray(proba, dtype=float)
    rng = np.random.default_rng(seed)
    draws = [
        expected_calibration_error((rng.random(len(proba)) < proba).astype(float), proba) for _ in range(resamples)
    ]
    return float(np.quantile(draws, quantile)) if len(proba) else float("nan")


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=int)
    raw = np.asarray(proba, dtype=float)
    proba = np.clip(raw, 1e-7, 1 - 1e-7)
    return {
        "roc_auc": float(roc_auc_score(y_true, proba)),
        "ece": expected_calibration_error(y_true, raw),
        "pr_auc": float(average_precision_score(y_true, proba)),
        "brier_score": float(brier_score_loss(y_true, proba)),
        "log_loss": float(log_loss(y_true, proba, labels=[0, 1])),
        "top_decile_lift": top_decile_lift(y_true, proba),
        "positive_rate": float(y_true.mean()),
        "rows": int(len(y_true)),
    }


def png_base64(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buffer.getvalue()).decode()


def evaluation_plots_markdown(y_true: np.ndarray, proba: np.ndarray, title: str) -> str:
    """ROC, calibration and lift curves as one markdown block with embedded PNGs."""
    y_true = np.asarray(y_true, dtype=int)
    proba = np.asarray(proba, dtype=float)
    fig, axes = plt.subplots(1, 3, figsize=(13, 4))

    fpr, tpr, _ = roc_curve(y_true, proba)
    axes[0].plot(fpr, tpr, label=f"AUC {roc_auc_score(y_true, proba):.3f}")
    axes[0].plot([0, 1], [0, 1], "--", color="grey")
    axes[0].set(title="ROC", xlabel="false positive rate", ylabel="true positive rate")
    axes[0].legend(loc="lower right")

    frac_pos, mean_pred = calibration_curve(y_true, proba, n_bins=10, strategy="quantile")
    axes[1].plot(mean_pred, frac_pos, "o-", label="model")
    axes[1].plot([0, 1], [0, 1], "--", color="grey", label="perfect")
    axes[1].set(title="Calibration", xlabel="predicted probability", ylabel="observed conversion rate")
    axes[1].legend(loc="upper left")

    order = np.argsort(-proba, kind="stable")
    deciles = np.array_split(y_true[order], 10)
    base = y_true.mean() or 1.0
    axes[2].bar(range(1, 11), [d.mean() / base if len(d) else 0 for d in deciles])
    axes[2].axhline(1.0, color="grey", linestyle="--")
    axes[2].set(title="Lift by score decile", xlabel="decile (1 = best scored)", ylabel="lift")
    fig.suptitle(title)
    return f"![evaluation](data:image/png;base64,{png_base64(fig)})"

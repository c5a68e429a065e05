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


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    y_true = np.asarray(y_true, dtype=int)
    proba = np.clip(np.asarray(proba, dtype=float), 1e-7, 1 - 1e-7)
    return {
        "roc_auc": float(roc_auc_score(y_true, proba)),
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

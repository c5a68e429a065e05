"""Fitting the candidates, few-data mode and calibration: the training logic, free of Dagster.

Normal mode: each family trains on the training split and is measured on the validation split (the
newest leads). Few-data mode (fewer conversions than `FitSettings.few_data_conversions`, or a validation
split too small to measure): a 20% hold-out of 40 conversions holds 8, which can neither measure nor grade
a model, so every labelled lead trains and every lead is also measured, out of fold: stratified k-fold
cross-fitting gives each lead a prediction from a model that did not see it (scikit-learn's
CalibratedClassifierCV(ensemble=False) recipe), and the deployed model is refitted on all of them. The
families switch to their few-data settings (`FEW_DATA_PARAMS`), chosen by benchmarks/learning_curve.py:
depth-1 boosted stumps (an additive model fitted by boosting with shrinkage, each field's term learned
from 5 leads a leaf) and a coarser additive model (piecewise-linear splines on 5 knots, rare categories
pooled below 10 leads) fitted toward a prior (`FitSettings.few_data_prior`, lead_scoring/training/prior.py:
the synthetic generator's leads; benchmarks/few_data_trials.py chose its strength on a development split).

Calibration: every candidate is also Platt-scaled on leads it did not train on (the validation split, or
the out-of-fold predictions); the calibrated probabilities are themselves measured out of fold (the
Platt map fitted on the other folds), so "calibrated ECE" is not judged on the leads that fitted it. The
map is applied when it lowers that honest ECE; both sets of metrics are kept (`Candidate.uncalibrated`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.model_selection import StratifiedKFold

from lead_scoring.contract import LABEL
from lead_scoring.training.evaluation import bootstrap_intervals, classification_metrics, ece_if_calibrated
from lead_scoring.training.model import (
    LeadScorer,
    ModelParams,
    build_pipeline,
    calibrate,
    features_frame,
    fit,
    model_logit,
    platt_map,
)

# Few-data hyperparameters per family (benchmarks/learning_curve.py measured them against the defaults).
FEW_DATA_PARAMS: dict[str, dict[str, Any]] = {
    "additive": {"spline_knots": 5, "spline_degree": 1, "min_category_frequency": 10, "prior_c": 0.3},
    "boosted": {
        "n_estimators": 200,
        "learning_rate": 0.05,
        "num_leaves": 2,
        "max_depth": 1,
        "min_child_samples": 5,
        "min_data_per_group": 5,
        "min_category_frequency": 5,
    },
}
DEFAULT_FEW_DATA_CONVERSIONS = 400
DEFAULT_FEW_DATA_PRIOR = "synthetic"  # the additive family's prior in few-data mode ("" none)
DEFAULT_MAX_ECE = 0.03  # the quality gate's calibration limit (QualityGateConfig.max_ece)
DEFAULT_FEW_DATA_MAX_ECE = 0.08  # ... in few-data mode (QualityGateConfig.few_data_max_ece)
MIN_VALIDATION_CLASS = 20  # fewer converted (or unconverted) validation leads cannot measure a model


@dataclass(frozen=True)
class FitSettings:
    few_data_conversions: int = DEFAULT_FEW_DATA_CONVERSIONS
    few_data_prior: str = DEFAULT_FEW_DATA_PRIOR
    folds: int = 5
    bootstrap_resamples: int = 200
    seed: int = 0


@dataclass
class Candidate:
    """One family's fitted pipeline and how it did on leads it did not train on."""

    family: str
    pipeline: Any
    params: dict[str, Any]
    metrics: dict[str, float]  # of the served (calibrated when `calibration.applied`) probabilities
    fit_seconds: float
    ms_per_record: float
    uncalibrated: dict[str, float] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    evaluation_proba: np.ndarray | None = None  # served probability per evaluation lead

    def summary(self) -> dict[str, Any]:
        return {
            "family": self.family,
            "params": self.params,
            "metrics": self.metrics,
            "uncalibrated_metrics": self.uncalibrated,
            "calibration": self.calibration,
            "fit_seconds": round(self.fit_seconds, 3),
            "ms_per_record": round(self.ms_per_record, 4),
        }


def labels(frame: pd.DataFrame) -> np.ndarray:
    return frame[LABEL].astype(bool).astype(int).to_numpy()


def is_few_data(training_data: pd.DataFrame, settings: FitSettings) -> tuple[bool, str]:
    """(few-data mode?, why) from the conversions in all labelled leads and in the validation split."""
    y = labels(training_data)
    conversions = int(y.sum())
    valid = labels(training_data[training_data["split"] == "validation"])
    valid_min = int(min(valid.sum(), len(valid) - valid.sum()))
    if conversions < settings.few_data_conversions:
        return True, f"{conversions} conversions < few_data_conversions {settings.few_data_conversions}"
    if valid_min < MIN_VALIDATION_CLASS:
        return True, (
            f"the validation split has only {valid_min} leads of its smaller class "
            f"(< {MIN_VALIDATION_CLASS}): measured out of fold instead"
        )
    return False, f"{conversions} conversions, {len(valid)} validation leads"


def few_data_params(params: ModelParams, prior: str = DEFAULT_FEW_DATA_PRIOR) -> ModelParams:
    """A family's few-data settings; the additive family also fits toward `prior` ("" none)."""
    few = dataclasses.replace(params, **FEW_DATA_PARAMS.get(params.family, {}))
    return dataclasses.replace(few, prior=prior) if params.family == "additive" else few


def _folds(y: np.ndarray, folds: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    k = int(max(2, min(folds, y.sum(), len(y) - y.sum())))
    return list(StratifiedKFold(k, shuffle=True, random_state=seed).split(np.zeros(len(y)), y))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def out_of_fold_logits(
    params: ModelParams, frame: pd.DataFrame, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]
) -> np.ndarray:
    """Each lead's log-odds from a model fitted on the other folds."""
    x = features_frame(frame)
    out = np.empty(len(y), dtype=float)
    for train_idx, test_idx in splits:
        model = fit(build_pipeline(params), x.iloc[train_idx], y[train_idx])
        out[test_idx] = model_logit(model, x.iloc[test_idx])
    return out


def cross_fitted_platt(logits: np.ndarray, y: np.ndarray, splits: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Calibrated probabilities, each from a Platt map fitted on the other folds (an honest calibrated ECE)."""
    out = np.empty(len(y), dtype=float)
    for train_idx, test_idx in splits:
        slope, intercept = platt_map(logits[train_idx], y[train_idx])
        out[test_idx] = _sigmoid(slope * logits[test_idx] + intercept)
    return out


def train_candidate(
    family: str, params: ModelParams, training_data: pd.DataFrame, few_data: bool, settings: FitSettings = FitSettings()
) -> tuple[Candidate, pd.DataFrame]:
    """Fit one family, calibrate it if that helps, and measure it; returns it and its evaluation leads."""
    if few_data:
        params = few_data_params(params, settings.few_data_prior)
        data = training_data
        y = labels(data)
        splits = _folds(y, settings.folds, settings.seed)
        started = time.perf_counter()
        logits = out_of_fold_logits(params, data, y, splits)
        pipeline = fit(build_pipeline(params), features_frame(data), data[LABEL])
        fit_seconds = time.perf_counter() - started
        evaluation = data
    else:
        train = training_data[training_data["split"] == "train"]
        evaluation = training_data[training_data["split"] == "validation"]
        started = time.perf_counter()
        pipeline = fit(build_pipeline(params), features_frame(train), train[LABEL])
        fit_seconds = time.perf_counter() - started
        y = labels(evaluation)
        logits = model_logit(pipeline, features_frame(evaluation))
        splits = _folds(y, settings.folds, settings.seed)
    raw = _sigmoid(logits)
    uncalibrated = classification_metrics(y, raw)
    calibrated = cross_fitted_platt(logits, y, splits)
    calibrated_metrics = classification_metrics(y, calibrated)
    slope, intercept = platt_map(logits, y)
    apply = slope > 0 and calibrated_metrics["ece"] < uncalibrated["ece"]
    if apply:
        calibrate(pipeline, slope, intercept)
    calibration = {
        "method": "Platt (affine on the log-odds)",
        "applied": bool(apply),
        "slope": slope,
        "intercept": intercept,
        "ece_uncalibrated": uncalibrated["ece"],
        "ece_calibrated": calibrated_metrics["ece"],
        "fitted_on": "out-of-fold predictions" if few_data else "validation leads",
    }
    served = calibrated if apply else raw
    metrics = calibrated_metrics if apply else uncalibrated
    candidate = Candidate(
        family,
        pipeline,
        params.family_params(),
        metrics,
        fit_seconds,
        scoring_ms_per_record(pipeline, evaluation),
        uncalibrated,
        calibration,
        served,
    )
    return candidate, evaluation


def scoring_ms_per_record(pipeline: Any, frame: pd.DataFrame, rows: int = 50) -> float:
    """Serving cost: ms per record of LeadScorer (score + reasons), one record per call (Flink's path)."""
    scorer = LeadScorer(pipeline, "candidate")
    sample = features_frame(frame.head(rows))
    records = sample.astype(object).where(sample.notna(), None).to_dict(orient="records")
    scorer.score_records(records[:1])  # warm-up
    started = time.perf_counter()
    for record in records:
        scorer.score_records([record])
    return (time.perf_counter() - started) * 1000 / max(1, len(records))


def calibrated_enough(candidate: Candidate, few_data: bool, settings: FitSettings) -> bool:
    """Whether the quality gate, at its default limits, would pass the candidate's ECE: within the limit, or within
    what a perfectly calibrated model could show on these leads by chance (`quality_problems`' own rule)."""
    assert candidate.evaluation_proba is not None
    limit = DEFAULT_FEW_DATA_MAX_ECE if few_data else DEFAULT_MAX_ECE
    chance = ece_if_calibrated(candidate.evaluation_proba, settings.bootstrap_resamples, 0.95, settings.seed)
    return candidate.metrics["ece"] <= max(limit, chance)


def select_candidate(
    candidates: list[Candidate], min_auc_gain: float, eligible: Callable[[Candidate], bool] | None = None
) -> Candidate:
    """The best ROC AUC; a later (more complex) family must win by `min_auc_gain`. With `eligible` (e.g.
    `calibrated_enough`), only the candidates it accepts compete, unless it accepts none."""
    if eligible is not None:
        candidates = [c for c in candidates if eligible(c)] or candidates
    best = candidates[0]
    for candidate in candidates[1:]:
        if candidate.metrics["roc_auc"] >= best.metrics["roc_auc"] + min_auc_gain:
            best = candidate
    return best


def intervals(candidate: Candidate, evaluation: pd.DataFrame, settings: FitSettings) -> dict[str, list[float]]:
    """90% bootstrap intervals of the chosen candidate's ROC AUC, ECE and Brier on its evaluation leads, and
    `ece_if_calibrated`: [median, 95th percentile] of the ECE a perfectly calibrated model would show there."""
    assert candidate.evaluation_proba is not None
    proba = candidate.evaluation_proba
    out = bootstrap_intervals(labels(evaluation), proba, settings.bootstrap_resamples, seed=settings.seed)
    out["ece_if_calibrated"] = [
        ece_if_calibrated(proba, settings.bootstrap_resamples, 0.5, settings.seed),
        ece_if_calibrated(proba, settings.bootstrap_resamples, 0.95, settings.seed),
    ]
    return out


def served_scores(proba: np.ndarray) -> np.ndarray:
    """The integer Lead_Score__c of served probabilities (as `LeadScorer` rounds them)."""
    return np.clip(np.round(np.asarray(proba, dtype=float) * 100), 0, 100).astype(int)


def params_for(config: Mapping[str, Any], family: str) -> ModelParams:
    hyper = {f.name for f in dataclasses.fields(ModelParams)} - {"family"}
    return ModelParams(family=family, **{k: v for k, v in config.items() if k in hyper})

"""The lead scoring model: an additive logistic model (splines on numbers, one-hot on categories).

Why this shape: it is calibrated by construction (the score is a probability), it reaches the
gradient-boosting AUC on the X Education leads (see benchmarks/model_quality.py), and its per-record
explanation is exact: the log-odds are a sum of one term per contract field, so the top reasons
are the real contributions of that record's values, not a global importance list.

The artifact is a plain scikit-learn `Pipeline` (no project classes inside the pickle), so any
scikit-learn runtime can load it; the explanation baseline rides along as a numpy attribute.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, SplineTransformer

from lead_scoring.contract import CATEGORICAL_FEATURES, FEATURES, FLAG_FEATURES, NUMERIC_FEATURES

logger = logging.getLogger(__name__)

MISSING = "(missing)"
BASELINE_ATTR = "lead_scoring_baseline_"  # mean transformed training row: the explanation's reference
FEATURE_SLICES_ATTR = "lead_scoring_feature_slices_"

# Human wording of each field in reasons ("+Lead Add Form", "-Opted out of email", ...).
FIELD_LABELS: dict[str, str] = {
    "LeadSource": "source",
    "Lead_Origin__c": "origin",
    "Last_Activity__c": "last activity",
    "Country": "country",
    "City": "city",
    "Specialization__c": "specialization",
    "Occupation__c": "occupation",
    "Course_Priority__c": "course priority",
    "Referral_Channel__c": "referral",
    "Total_Visits__c": "visits",
    "Time_On_Website__c": "time on website",
    "Page_Views_Per_Visit__c": "page views per visit",
    "HasOptedOutOfEmail": "opted out of email",
    "DoNotCall": "do not call",
    "Ad_Search__c": "search ad",
    "Ad_Magazine__c": "magazine ad",
    "Ad_Newspaper_Article__c": "newspaper article",
    "Ad_Forums__c": "forums",
    "Ad_Newspaper__c": "newspaper ad",
    "Ad_Digital__c": "digital ad",
    "Ad_Recommendation__c": "recommendation",
    "Free_Copy_Requested__c": "free copy requested",
}


@dataclass(frozen=True)
class ModelParams:
    """Hyperparameters (mirrored by the Dagster `dg.Config` of the model asset)."""

    spline_knots: int = 10
    spline_degree: int = 3
    min_category_frequency: int = 5
    regularization_c: float = 0.3
    max_iter: int = 3000


def _step(field: str) -> str:
    # scikit-learn reserves "__" in step names; Salesforce custom fields end in "__c".
    return field.replace("__", "_")


def build_pipeline(params: ModelParams = ModelParams()) -> Pipeline:
    """An unfitted pipeline; one transformer per contract field so contributions group by field."""
    transformers: list[tuple[str, Any, list[str]]] = []
    for name in CATEGORICAL_FEATURES:
        transformers.append((_step(name), make_pipeline(
            SimpleImputer(strategy="constant", fill_value=MISSING),
            OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=params.min_category_frequency,
                          sparse_output=False),
        ), [name]))
    for name in NUMERIC_FEATURES:
        transformers.append((_step(name), make_pipeline(
            SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
            # log1p tames the heavy outliers of visits and page views before the spline basis
            FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
            SplineTransformer(n_knots=params.spline_knots, degree=params.spline_degree, knots="quantile"),
        ), [name]))
    for name in FLAG_FEATURES:
        transformers.append((_step(name), "passthrough", [name]))
    preprocess = ColumnTransformer(transformers, sparse_threshold=0.0, verbose_feature_names_out=True)
    classifier = LogisticRegression(C=params.regularization_c, max_iter=params.max_iter)
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def features_frame(records: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """The model's input frame from contract records (or a warehouse frame with contract columns)."""
    frame = records.copy() if isinstance(records, pd.DataFrame) else pd.DataFrame.from_records(list(records))
    for name in FEATURES:
        if name not in frame.columns:
            frame[name] = None
    out = pd.DataFrame(index=frame.index)
    for name in CATEGORICAL_FEATURES:
        col = frame[name].astype(object)
        out[name] = col.where(col.notna(), np.nan)
    for name in NUMERIC_FEATURES:
        out[name] = pd.to_numeric(frame[name], errors="coerce").astype(float)
    for name in FLAG_FEATURES:
        out[name] = ticked(frame[name]).astype(float)
    return out[list(FEATURES)]


def ticked(series: pd.Series) -> pd.Series:
    """A flag column as booleans: True/1 is ticked; False/0, null, NaN and pd.NA (nullable columns) are not,
    as an absent flag means "not ticked" in the CRM."""
    clean = series.astype(object).where(series.notna(), False)
    return clean.map(lambda v: v is True or (not isinstance(v, str) and v == 1)).astype(bool)


def fit(pipeline: Pipeline, frame: pd.DataFrame, labels: Iterable[Any]) -> Pipeline:
    """Fit and attach the explanation baseline (mean transformed training row)."""
    y = np.asarray([bool(v) for v in labels], dtype=int)
    pipeline.fit(frame, y)
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    transformed = preprocess.transform(frame)
    setattr(pipeline, BASELINE_ATTR, np.asarray(transformed, dtype=float).mean(axis=0))
    indices = preprocess.output_indices_
    slices = {name: (indices[_step(name)].start, indices[_step(name)].stop) for name in FEATURES}
    setattr(pipeline, FEATURE_SLICES_ATTR, slices)
    return pipeline


@dataclass(frozen=True)
class Score:
    score: int
    probability: float
    reasons: list[str]


class LeadScorer:
    """Scores and explains records with a fitted pipeline: the serving hot path.

    The model is additive in the contract's fields, so at load time it is compiled into one term
    per field: a lookup table per categorical field (every known category, the unknown and the
    missing value, each pushed once through the fitted encoder) and the fitted imputer/spline of
    each numeric field evaluated on numpy arrays. Scoring a record is then a few dict look-ups and
    three tiny spline evaluations instead of a pandas round trip through 22 sub-pipelines; the
    result equals `pipeline.predict_proba` (checked by the tests).
    """

    _UNKNOWN = "\x00unseen-category"

    def __init__(self, pipeline: Pipeline, model_version: str, top_k: int = 3):
        self.pipeline = pipeline
        self.model_version = model_version
        self.top_k = top_k
        preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
        classifier: LogisticRegression = pipeline.named_steps["classifier"]
        coef = classifier.coef_.ravel()
        self._intercept = float(classifier.intercept_[0])
        baseline = getattr(pipeline, BASELINE_ATTR, None)
        slices = getattr(pipeline, FEATURE_SLICES_ATTR, None)
        if baseline is None or slices is None:
            raise ValueError("pipeline was not fitted with lead_scoring.training.model.fit (no explanation baseline)")
        steps = dict((name, trans) for name, trans, _ in preprocess.transformers_)
        # Log-odds term of the average training lead, per field: contributions are relative to it.
        self._base_terms = {f: float(baseline[a:b] @ coef[a:b]) for f, (a, b) in slices.items()}
        self._cat_tables: dict[str, dict[str, float]] = {}
        self._cat_unknown: dict[str, float] = {}
        self._cat_missing: dict[str, float] = {}
        for f in CATEGORICAL_FEATURES:
            a, b = slices[f]
            sub = steps[_step(f)]
            encoder: OneHotEncoder = sub[-1]
            known = [str(c) for c in encoder.categories_[0]]
            probe = pd.DataFrame({f: np.array(known + [self._UNKNOWN], dtype=object)})
            terms = np.asarray(sub.transform(probe), dtype=float) @ coef[a:b]
            self._cat_tables[f] = dict(zip(known, terms[:-1].tolist()))
            self._cat_unknown[f] = float(terms[-1])
            self._cat_missing[f] = self._cat_tables[f].get(MISSING, float(terms[-1]))
        self._numeric_terms = {
            f: _NumericTerm(steps[_step(f)], coef[slices[f][0]:slices[f][1]]) for f in NUMERIC_FEATURES
        }
        self._flag_coef = {f: float(coef[slices[f][0]]) for f in FLAG_FEATURES}

    def _terms(self, records: list[Mapping[str, Any]]) -> tuple[list[str], np.ndarray]:
        """Per record and field, the field's term of the log-odds: shape (rows, fields)."""
        names = list(FEATURES)
        terms = np.empty((len(records), len(names)), dtype=float)
        col = 0
        for f in CATEGORICAL_FEATURES:
            table, unknown, missing = self._cat_tables[f], self._cat_unknown[f], self._cat_missing[f]
            for i, rec in enumerate(records):
                value = rec.get(f)
                terms[i, col] = missing if _is_missing(value) else table.get(str(value), unknown)
            col += 1
        for f in NUMERIC_FEATURES:
            values = np.array([_as_float(rec.get(f)) for rec in records], dtype=float)
            terms[:, col] = self._numeric_terms[f](values)
            col += 1
        for f in FLAG_FEATURES:
            weight = self._flag_coef[f]
            terms[:, col] = [weight if rec.get(f) is True or rec.get(f) == 1 else 0.0 for rec in records]
            col += 1
        return names, terms

    def score_records(self, records: Iterable[Mapping[str, Any]]) -> list[Score]:
        records = list(records)
        if not records:
            return []
        names, terms = self._terms(records)
        logits = terms.sum(axis=1) + self._intercept
        probabilities = 1.0 / (1.0 + np.exp(-logits))
        contributions = terms - np.array([self._base_terms[n] for n in names])
        results: list[Score] = []
        for i, rec in enumerate(records):
            row = contributions[i]
            top = np.argsort(-np.abs(row), kind="stable")[: self.top_k]
            reasons = [_reason(names[j], rec.get(names[j]), row[j]) for j in top if abs(row[j]) >= 0.01]
            p = float(probabilities[i])
            results.append(Score(score=int(min(100, max(0, round(p * 100)))), probability=p, reasons=reasons))
        return results

    def score_frame(self, frame: pd.DataFrame) -> list[Score]:
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        return self.score_records(records)


class _NumericTerm:
    """One numeric field's log-odds term: median imputation (+ missing indicator), log1p, spline.

    The weighted sum of a spline basis is itself a B-spline, so the term is one scipy `BSpline`
    evaluation per input column (value, missing indicator) on the value clipped to the fitted range
    (SplineTransformer's constant extrapolation). The compiled form is checked against the fitted
    scikit-learn steps on a grid at load time; on any mismatch the exact sklearn path is used.
    """

    def __init__(self, fitted: Pipeline, coef: np.ndarray):
        from scipy.interpolate import BSpline

        imputer: SimpleImputer = fitted[0]
        self._median = float(imputer.statistics_[0])
        self._with_indicator = imputer.indicator_ is not None and len(imputer.indicator_.features_) > 0
        self._rest = fitted[1:]  # log1p + spline, fitted on numpy columns
        self._coef = coef
        spline: SplineTransformer = fitted[-1]
        per_column = spline.n_features_out_ // spline.n_features_in_
        self._splines = []
        for i, basis in enumerate(spline.bsplines_):
            k = basis.k
            weights = coef[i * per_column:(i + 1) * per_column]
            self._splines.append((BSpline(basis.t, weights, k, extrapolate=False), basis.t[k], basis.t[-k - 1]))
        grid = np.concatenate([[np.nan, 0.0, 1e-9, 1e9], np.expm1(np.linspace(-0.5, 12, 200))])
        self._compiled = bool(np.allclose(self._evaluate(grid), self._exact(grid), rtol=0, atol=1e-9))
        if not self._compiled:
            logger.warning("numeric term not compiled (spline layout differs); using the sklearn path")

    def _columns(self, values: np.ndarray) -> list[np.ndarray]:
        missing = np.isnan(values)
        columns = [np.where(missing, self._median, values)]
        if self._with_indicator:
            columns.append(missing.astype(float))
        return columns

    def _exact(self, values: np.ndarray) -> np.ndarray:
        stacked = np.column_stack(self._columns(values))
        return np.asarray(self._rest.transform(stacked), dtype=float) @ self._coef

    def _evaluate(self, values: np.ndarray) -> np.ndarray:
        total = np.zeros(len(values))
        for column, (spline, low, high) in zip(self._columns(values), self._splines):
            total += spline(np.clip(np.log1p(column), low, high))
        return total

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return self._evaluate(values) if self._compiled else self._exact(values)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _as_float(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def _reason(field: str, value: Any, contribution: float) -> str:
    sign = "+" if contribution > 0 else "-"
    label = FIELD_LABELS.get(field, field)
    if field in FLAG_FEATURES:
        text = label if value else f"not {label}"
    elif field in NUMERIC_FEATURES:
        if value is None or (isinstance(value, float) and math.isnan(value)):
            text = f"{label} unknown"
        elif field == "Time_On_Website__c":
            text = f"{label} {_duration(float(value))}"
        else:
            text = f"{label} {float(value):g}"
    else:
        text = f"{label} unknown" if value is None or (isinstance(value, float) and math.isnan(value)) else str(value)
    return f"{sign}{text}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f} min"


def format_reasons(reasons: list[str]) -> str:
    """The contract's `Lead_Score_Reasons__c` text."""
    return "; ".join(reasons)

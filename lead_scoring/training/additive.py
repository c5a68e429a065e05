"""The "additive" family: logistic regression on splines (numbers), one-hot (categories) and flags.

Why this shape: it is calibrated by construction (the score is a probability) and its per-record
explanation is exact: the log-odds are a sum of one term per contract field, so a record's reasons
are the real contributions of its values, not a global importance list.

The artifact is a plain scikit-learn `Pipeline` (no project classes inside the pickle); the
explanation baseline (mean transformed training row) rides along as a numpy attribute.

With a prior (`ModelParams.prior`, few-data mode: lead_scoring/training/prior.py) the same pipeline is fitted
in two steps: the preprocessing on the prior's leads and the team's (category pooling and spline knots
counted on both), the prior's coefficients on the prior's leads, then the team's leads with an L2 penalty on
the difference from those coefficients. The result is an ordinary fitted pipeline of this family (same
steps, same exact explanation).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy.interpolate import BSpline
from scipy.optimize import minimize
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, SplineTransformer

from lead_scoring.contract import CATEGORICAL_FEATURES, FEATURES, FLAG_FEATURES, NUMERIC_FEATURES
from lead_scoring.training.features import MISSING, as_float, is_missing, is_ticked, step_name
from lead_scoring.training.prior import prior_leads

logger = logging.getLogger(__name__)

BASELINE_ATTR = "lead_scoring_baseline_"  # mean transformed training row: the explanation's reference
FEATURE_SLICES_ATTR = "lead_scoring_feature_slices_"
PRIOR_ATTR = "lead_scoring_prior_"  # {"name": ..., "c": ...} when fitted toward a prior
PARAMS = (
    "spline_knots",
    "spline_degree",
    "min_category_frequency",
    "regularization_c",
    "max_iter",
    "prior",
    "prior_c",
)


def build(params: Any) -> Pipeline:
    """An unfitted pipeline; one transformer per contract field so contributions group by field."""
    transformers: list[tuple[str, Any, list[str]]] = []
    for name in CATEGORICAL_FEATURES:
        transformers.append(
            (
                step_name(name),
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=MISSING),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist",
                        min_frequency=params.min_category_frequency,
                        sparse_output=False,
                    ),
                ),
                [name],
            )
        )
    for name in NUMERIC_FEATURES:
        transformers.append(
            (
                step_name(name),
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    # log1p tames the heavy outliers of visits and page views before the spline basis
                    FunctionTransformer(np.log1p, feature_names_out="one-to-one"),
                    SplineTransformer(n_knots=params.spline_knots, degree=params.spline_degree, knots="quantile"),
                ),
                [name],
            )
        )
    for name in FLAG_FEATURES:
        transformers.append((step_name(name), "passthrough", [name]))
    preprocess = ColumnTransformer(transformers, sparse_threshold=0.0, verbose_feature_names_out=True)
    classifier = LogisticRegression(C=params.regularization_c, max_iter=params.max_iter)
    pipeline = Pipeline([("preprocess", preprocess), ("classifier", classifier)])
    if params.prior:
        setattr(pipeline, PRIOR_ATTR, {"name": str(params.prior), "c": float(params.prior_c)})
    return pipeline


def fit(pipeline: Pipeline, frame: pd.DataFrame, y: np.ndarray) -> Pipeline:
    """Fit (toward the prior, when the pipeline was built with one) and attach the explanation baseline (mean
    transformed training row) and the field slices."""
    prior = getattr(pipeline, PRIOR_ATTR, None)
    if prior:
        _fit_toward_prior(pipeline, frame, y, prior["name"], prior["c"])
    else:
        pipeline.fit(frame, y)
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    transformed = preprocess.transform(frame)
    setattr(pipeline, BASELINE_ATTR, np.asarray(transformed, dtype=float).mean(axis=0))
    indices = preprocess.output_indices_
    slices = {name: (indices[step_name(name)].start, indices[step_name(name)].stop) for name in FEATURES}
    setattr(pipeline, FEATURE_SLICES_ATTR, slices)
    return pipeline


def _fit_toward_prior(pipeline: Pipeline, frame: pd.DataFrame, y: np.ndarray, name: str, c: float) -> None:
    """Bayesian logistic regression with the prior's coefficients as the mean (see the module docstring)."""
    preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
    classifier: LogisticRegression = pipeline.named_steps["classifier"]
    prior_x, prior_y = prior_leads(name)
    preprocess.fit(pd.concat([prior_x, frame[list(prior_x.columns)]], ignore_index=True))
    start = LogisticRegression(C=classifier.C, max_iter=classifier.max_iter)
    start.fit(np.asarray(preprocess.transform(prior_x), dtype=float), prior_y)
    mean, x = start.coef_.ravel(), np.asarray(preprocess.transform(frame), dtype=float)
    y = np.asarray(y, dtype=float)
    k = len(mean)

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        deviation, intercept = theta[:k], theta[k]
        z = x @ (mean + deviation) + intercept
        residual = 1.0 / (1.0 + np.exp(-z)) - y
        value = float(np.sum(np.logaddexp(0.0, z) - y * z) + deviation @ deviation / (2.0 * c))
        return value, np.concatenate([x.T @ residual + deviation / c, [residual.sum()]])

    start_theta = np.concatenate([np.zeros(k), start.intercept_])
    result = minimize(loss, start_theta, jac=True, method="L-BFGS-B", options={"maxiter": classifier.max_iter})
    classifier.coef_ = (mean + result.x[:k]).reshape(1, -1)
    classifier.intercept_ = np.array([result.x[k]])
    classifier.classes_ = np.array([0, 1])
    classifier.n_features_in_ = k
    classifier.n_iter_ = np.array([int(result.nit)], dtype=np.int32)


def logit(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The model's log-odds straight from scikit-learn (the reference the explanation must add up to)."""
    return np.asarray(pipeline.decision_function(frame), dtype=float)


class Explainer:
    """The additive model compiled into one log-odds term per field: the serving hot path.

    At load time each categorical field becomes a lookup table (every known category, the unknown
    and the missing value, each pushed once through the fitted encoder), each numeric field a scipy
    B-spline evaluation of the fitted imputer/spline, each flag its weight. Scoring a record is a few
    dict look-ups and three tiny spline evaluations instead of a pandas round trip through 22
    sub-pipelines. Contributions are each field's term minus the average training lead's term, so
    base (intercept + average terms) + contributions == the pipeline's `decision_function`.
    """

    _UNKNOWN = "\x00unseen-category"

    def __init__(self, pipeline: Pipeline):
        preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
        classifier: LogisticRegression = pipeline.named_steps["classifier"]
        coef = classifier.coef_.ravel()
        baseline = getattr(pipeline, BASELINE_ATTR, None)
        slices = getattr(pipeline, FEATURE_SLICES_ATTR, None)
        if baseline is None or slices is None:
            raise ValueError(
                "additive pipeline was not fitted with lead_scoring.training.model.fit "
                "(no explanation baseline): refit it with that function"
            )
        if sum(b - a for a, b in slices.values()) != len(coef):
            raise ValueError(
                f"additive pipeline has {len(coef)} model columns but the contract features explain only "
                f"{sum(b - a for a, b in slices.values())}: some are not contract features; rebuild it "
                "with lead_scoring.training.model.build_pipeline"
            )
        steps = {name: trans for name, trans, _ in preprocess.transformers_}
        # Log-odds term of the average training lead, per field: contributions are relative to it.
        self._base_terms = np.array([float(baseline[a:b] @ coef[a:b]) for a, b in (slices[f] for f in FEATURES)])
        self._base = float(classifier.intercept_[0]) + float(self._base_terms.sum())
        self._cat_tables: dict[str, dict[str, float]] = {}
        self._cat_unknown: dict[str, float] = {}
        self._cat_missing: dict[str, float] = {}
        for f in CATEGORICAL_FEATURES:
            a, b = slices[f]
            sub = steps[step_name(f)]
            encoder: OneHotEncoder = sub[-1]
            known = [str(c) for c in encoder.categories_[0]]
            probe = pd.DataFrame({f: np.array(known + [self._UNKNOWN], dtype=object)})
            terms = np.asarray(sub.transform(probe), dtype=float) @ coef[a:b]
            self._cat_tables[f] = dict(zip(known, terms[:-1].tolist(), strict=True))
            self._cat_unknown[f] = float(terms[-1])
            self._cat_missing[f] = self._cat_tables[f].get(MISSING, float(terms[-1]))
        self.numeric_terms = {
            f: NumericTerm(steps[step_name(f)], coef[slices[f][0] : slices[f][1]]) for f in NUMERIC_FEATURES
        }
        self._flag_coef = {f: float(coef[slices[f][0]]) for f in FLAG_FEATURES}

    def contributions(self, records: list[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(base per record, contributions per record and field in FEATURES order) to the log-odds."""
        terms = np.empty((len(records), len(FEATURES)), dtype=float)
        col = 0
        for f in CATEGORICAL_FEATURES:
            table, unknown, missing = self._cat_tables[f], self._cat_unknown[f], self._cat_missing[f]
            for i, rec in enumerate(records):
                value = rec.get(f)
                terms[i, col] = missing if is_missing(value) else table.get(str(value), unknown)
            col += 1
        for f in NUMERIC_FEATURES:
            values = np.array([as_float(rec.get(f)) for rec in records], dtype=float)
            terms[:, col] = self.numeric_terms[f](values)
            col += 1
        for f in FLAG_FEATURES:
            weight = self._flag_coef[f]
            terms[:, col] = [weight * is_ticked(rec.get(f)) for rec in records]
            col += 1
        return np.full(len(records), self._base), terms - self._base_terms


class NumericTerm:
    """One numeric field's log-odds term: median imputation (+ missing indicator), log1p, spline.

    The weighted sum of a spline basis is itself a B-spline, so the term is one scipy `BSpline`
    evaluation per input column (value, missing indicator) on the value clipped to the fitted range
    (SplineTransformer's constant extrapolation). The compiled form is checked against the fitted
    scikit-learn steps on a grid at load time; on any mismatch the exact sklearn path is used.
    """

    def __init__(self, fitted: Pipeline, coef: np.ndarray):
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
            weights = coef[i * per_column : (i + 1) * per_column]
            self._splines.append((BSpline(basis.t, weights, k, extrapolate=False), basis.t[k], basis.t[-k - 1]))
        grid = np.concatenate([[np.nan, 0.0, 1e-9, 1e9], np.expm1(np.linspace(-0.5, 12, 200))])
        self.compiled = bool(np.allclose(self._evaluate(grid), self._exact(grid), rtol=0, atol=1e-9))
        if not self.compiled:
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
        for column, (spline, low, high) in zip(self._columns(values), self._splines, strict=True):
            total += spline(np.clip(np.log1p(column), low, high))
        return total

    def __call__(self, values: np.ndarray) -> np.ndarray:
        return self._evaluate(values) if self.compiled else self._exact(values)

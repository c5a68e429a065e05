"""The lead scoring model: a small registry of model families that all explain each score exactly.

Families (`FAMILIES`, chosen by `ModelParams.family`):

* ``additive`` -- logistic regression on splines / one-hot / flags (lead_scoring/training/additive.py):
  the log-odds are a sum of one term per contract field by construction.
* ``boosted`` -- LightGBM gradient-boosted trees, one input column per field
  (lead_scoring/training/boosted.py): TreeSHAP splits each record's log-odds into per-field terms.

Calibration (`calibrate`): a family that ranks well but whose probabilities are off is recalibrated with
Platt scaling, fitted on leads the model did not train on: calibrated log-odds = slope * log-odds +
intercept. The map is affine in the log-odds, so it distributes over the explanation (base' = slope *
base + intercept, each contribution' = slope * contribution) and the reasons still add up exactly; it
rides in the pickle as a numpy attribute (`CALIBRATION_ATTR`), read by `model_logit`, `probability` and
`LeadScorer`. Isotonic regression is not affine and would break the exact reasons, hence Platt.

Every family fits into a plain picklable scikit-learn `Pipeline` (library objects only, no project
classes in the pickle) and `LeadScorer(pipeline, version)` scores and explains any of them: a record's
reasons are its per-field contributions to the log-odds, and base + contributions == the model's logit
(`model_logit`) to floating-point precision, so the served probability equals `predict_proba` (tested
per family). The training asset fits the configured families and the champion/challenger gate judges
the best one; `benchmarks/model_quality.py` compares them side by side on real leads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline

from lead_scoring.contract import FEATURES, FLAG_FEATURES, NUMERIC_FEATURES
from lead_scoring.training import additive, boosted
from lead_scoring.training.features import MISSING, features_frame, is_missing
from lead_scoring.training.grades import GradeScale

__all__ = [
    "CALIBRATION_ATTR",
    "FAMILIES",
    "FIELD_LABELS",
    "MISSING",
    "Explanation",
    "Family",
    "LeadScorer",
    "ModelParams",
    "Score",
    "build_pipeline",
    "calibrate",
    "calibration_of",
    "family_named",
    "family_of",
    "features_frame",
    "fit",
    "format_reasons",
    "model_input_fields",
    "model_logit",
    "platt_map",
    "probability",
]

CALIBRATION_ATTR = "lead_scoring_calibration_"  # np.array([slope, intercept]) on the log-odds (Platt)

# Human wording of each field in reasons ("+Lead Add Form", "-Opted out of email", ...).
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
    """Family and hyperparameters (mirrored by the Dagster `dg.Config` of the model asset).

    One flat set: each family reads its own fields (`Family.params`); `min_category_frequency` is
    shared (categories rarer than this in training are pooled).
    """

    family: str = "additive"
    min_category_frequency: int = 5
    # additive
    spline_knots: int = 10
    spline_degree: int = 3
    regularization_c: float = 0.3
    max_iter: int = 3000
    prior: str = ""  # few-data mode: "synthetic" fits toward a prior (lead_scoring/training/prior.py)
    prior_c: float = 1.0  # the prior's strength: L2 on the difference from it (smaller trusts it more)
    # boosted
    n_estimators: int = 400
    learning_rate: float = 0.03
    num_leaves: int = 7
    max_depth: int = 4  # shallow trees: TreeSHAP cost grows with depth squared
    min_child_samples: int = 20
    reg_lambda: float = 1.0
    cat_smooth: float = 10.0
    min_data_per_group: int = 100
    random_state: int = 0

    def family_params(self) -> dict[str, Any]:
        """The family and only the hyperparameters it uses (what a manifest records)."""
        return {"family": self.family, **{name: getattr(self, name) for name in family_named(self.family).params}}


class Explainer(Protocol):
    def contributions(self, records: list[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class Family:
    name: str
    summary: str
    classifier: type  # the Pipeline's final step: how a loaded pickle tells its family
    params: tuple[str, ...]
    build: Callable[[ModelParams], Pipeline]
    fit: Callable[[Pipeline, pd.DataFrame, np.ndarray], Pipeline]
    logit: Callable[[Pipeline, pd.DataFrame], np.ndarray]
    explainer: Callable[[Pipeline], Explainer]


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family(
            "additive",
            "logistic regression on splines / one-hot / flags; exact additive terms",
            LogisticRegression,
            additive.PARAMS,
            additive.build,
            additive.fit,
            additive.logit,
            additive.Explainer,
        ),
        Family(
            "boosted",
            "LightGBM boosted trees; exact TreeSHAP contributions",
            LGBMClassifier,
            boosted.PARAMS,
            boosted.build,
            boosted.fit,
            boosted.logit,
            boosted.Explainer,
        ),
    )
}


def family_named(name: str) -> Family:
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name!r}; choose one of: {', '.join(FAMILIES)}") from None


def family_of(pipeline: Any) -> Family:
    """The family of a fitted (or built) pipeline, from its classifier step."""
    classifier = pipeline.named_steps.get("classifier") if isinstance(pipeline, Pipeline) else None
    for family in FAMILIES.values():
        if isinstance(classifier, family.classifier):
            return family
    raise ValueError(
        f"{type(pipeline).__name__} is not a lead scoring model: expected a scikit-learn Pipeline from "
        f"lead_scoring.training.model.build_pipeline (families: {', '.join(FAMILIES)})"
    )


def build_pipeline(params: ModelParams = ModelParams()) -> Pipeline:
    """An unfitted pipeline of `params.family`."""
    return family_named(params.family).build(params)


def fit(pipeline: Pipeline, frame: pd.DataFrame, labels: Iterable[Any]) -> Pipeline:
    """Fit a pipeline from `build_pipeline` (with whatever its family needs to explain exactly)."""
    y = np.asarray([bool(v) for v in labels], dtype=int)
    return family_of(pipeline).fit(pipeline, frame, y)


def model_input_fields(pipeline: Any) -> set[str]:
    """Every input column a fitted pipeline's preprocessing reads (any family; empty if not a Pipeline)."""
    preprocess = pipeline.named_steps.get("preprocess") if isinstance(pipeline, Pipeline) else None
    given = list(getattr(preprocess, "feature_names_in_", []))
    used: set[str] = set()
    for _, transformer, columns in getattr(preprocess, "transformers_", []):
        if isinstance(transformer, str) and transformer == "drop":
            continue
        selected = np.atleast_1d(columns)
        # ColumnTransformer also selects by position (e.g. its remainder) or by mask: name those from the input
        if selected.dtype == bool:
            # strict=False: `given` is empty when the preprocessing was fitted without column names
            used.update(name for name, keep in zip(given, selected, strict=False) if keep)
        elif np.issubdtype(selected.dtype, np.integer):
            used.update(given[i] for i in selected.tolist())
        else:
            used.update(str(c) for c in selected.tolist())
    return used


def model_logit(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The fitted model's (calibrated) log-odds computed by its own library (what explanations must add up to)."""
    slope, intercept = calibration_of(pipeline)
    return slope * family_of(pipeline).logit(pipeline, frame) + intercept


def probability(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The probability the model serves (calibration applied): the logistic of `model_logit`."""
    return 1.0 / (1.0 + np.exp(-model_logit(pipeline, frame)))


def calibration_of(pipeline: Any) -> tuple[float, float]:
    """(slope, intercept) of the Platt map on the log-odds; (1, 0) for an uncalibrated model."""
    values = getattr(pipeline, CALIBRATION_ATTR, None)
    if values is None:
        return 1.0, 0.0
    slope, intercept = (float(v) for v in np.asarray(values, dtype=float).ravel())
    return slope, intercept


def platt_map(logits: np.ndarray, labels: Iterable[Any]) -> tuple[float, float]:
    """Platt scaling: the (slope, intercept) of a near-unpenalised 1-D logistic regression on the log-odds."""
    y = np.asarray([bool(v) for v in labels], dtype=int)
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(logits, dtype=float).reshape(-1, 1), y)
    return float(platt.coef_[0, 0]), float(platt.intercept_[0])


def calibrate(pipeline: Pipeline, slope: float, intercept: float) -> Pipeline:
    """Attach a Platt map (see the module docstring) to a fitted pipeline, replacing any earlier one."""
    if not np.isfinite([slope, intercept]).all() or slope <= 0:
        raise ValueError(
            f"calibration slope must be a positive finite number (a ranking model), got slope={slope}, "
            f"intercept={intercept}; do not calibrate this model"
        )
    setattr(pipeline, CALIBRATION_ATTR, np.array([slope, intercept], dtype=float))
    return pipeline


@dataclass(frozen=True)
class Score:
    score: int
    probability: float
    reasons: list[str]
    grade: str | None = None  # A-D when the scorer has the model's grade cut-offs


@dataclass(frozen=True)
class Explanation:
    """Per record: base + sum(contributions) == log-odds; contributions in `fields` order."""

    base: np.ndarray  # (rows,)
    contributions: np.ndarray  # (rows, fields)
    fields: tuple[str, ...]

    @property
    def logits(self) -> np.ndarray:
        return self.base + self.contributions.sum(axis=1)


class LeadScorer:
    """Scores, explains and grades records with a fitted pipeline of any family: the serving hot path.

    Each family compiles its pipeline at load time into a pandas-free form (see its `Explainer`); the
    probability is the logistic of base + contributions, equal to `pipeline.predict_proba` (tested).
    The grade needs the cut-offs fitted at training time: pass `grades`, or build the scorer with
    `from_manifest` (a manifest written before grades existed gives scores without a grade).
    """

    feature_names: tuple[str, ...] = tuple(FEATURES)  # the only fields a reason can name

    def __init__(self, pipeline: Pipeline, model_version: str, top_k: int = 3, grades: GradeScale | None = None):
        self.pipeline = pipeline
        self.model_version = model_version
        self.top_k = top_k
        self.grades = grades
        self.family = family_of(pipeline)
        self.explainer = self.family.explainer(pipeline)
        self.calibration = calibration_of(pipeline)

    @classmethod
    def from_manifest(cls, pipeline: Pipeline, manifest: Mapping[str, Any], top_k: int = 3) -> LeadScorer:
        """The scorer of a stored model: version and grade cut-offs from its manifest."""
        return cls(pipeline, str(manifest["version"]), top_k=top_k, grades=GradeScale.from_manifest(manifest))

    def explain(self, records: Iterable[Mapping[str, Any]]) -> Explanation:
        base, contributions = self.explainer.contributions(list(records))
        slope, intercept = self.calibration
        if (slope, intercept) != (1.0, 0.0):  # Platt map distributed over the terms (exact, see the docstring)
            base, contributions = slope * base + intercept, slope * contributions
        return Explanation(base, contributions, self.feature_names)

    def score_records(self, records: Iterable[Mapping[str, Any]]) -> list[Score]:
        records = list(records)
        if not records:
            return []
        explanation = self.explain(records)
        probabilities = 1.0 / (1.0 + np.exp(-explanation.logits))
        names = explanation.fields
        results: list[Score] = []
        for i, rec in enumerate(records):
            row = explanation.contributions[i]
            top = np.argsort(-np.abs(row), kind="stable")[: self.top_k]
            reasons = [_reason(names[j], rec.get(names[j]), row[j]) for j in top if abs(row[j]) >= 0.01]
            p = float(probabilities[i])
            score = int(min(100, max(0, round(p * 100))))
            grade = self.grades.grade(score) if self.grades is not None else None
            results.append(Score(score=score, probability=p, reasons=reasons, grade=grade))
        return results

    def score_frame(self, frame: pd.DataFrame) -> list[Score]:
        records = frame.astype(object).where(frame.notna(), None).to_dict(orient="records")
        return self.score_records(records)


def _reason(field: str, value: Any, contribution: float) -> str:
    sign = "+" if contribution > 0 else "-"
    label = FIELD_LABELS.get(field, field)
    if field in FLAG_FEATURES:
        text = label if value else f"not {label}"
    elif field in NUMERIC_FEATURES:
        if is_missing(value):
            text = f"{label} unknown"
        elif field == "Time_On_Website__c":
            text = f"{label} {_duration(float(value))}"
        else:
            text = f"{label} {float(value):g}"
    else:
        text = f"{label} unknown" if is_missing(value) else str(value)
    return f"{sign}{text}"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f}s"
    return f"{seconds / 60:.0f} min"


def format_reasons(reasons: list[str]) -> str:
    """The contract's `Lead_Score_Reasons__c` text."""
    return "; ".join(reasons)

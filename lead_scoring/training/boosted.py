"""The "boosted" family: LightGBM gradient-boosted trees, one input column per contract field.

Why: trees find the interactions the additive model cannot (e.g. origin x time on website) and gain
validation AUC on the X Education leads (benchmarks/model_quality.py). The explanation stays exact:
LightGBM's TreeSHAP (`pred_contrib=True`) splits each record's raw score (the log-odds) into one
contribution per input column plus the expected value, and they add up to the raw score; with one
column per contract field these are per-field contributions, like the additive model's.

The artifact is a scikit-learn `Pipeline` (imputer + ordinal encoder per categorical field, numbers
and flags as they are, missing numbers left to LightGBM's own missing-value branches) ending in a
`lightgbm.LGBMClassifier`: library objects only, no project classes in the pickle.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
from lightgbm import LGBMClassifier
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OrdinalEncoder

from lead_scoring.contract import CATEGORICAL_FEATURES, FEATURES, FLAG_FEATURES, NUMERIC_FEATURES
from lead_scoring.training.features import MISSING, as_float, is_missing, is_ticked, step_name

PARAMS = (
    "n_estimators",
    "learning_rate",
    "num_leaves",
    "max_depth",
    "min_child_samples",
    "reg_lambda",
    "min_category_frequency",
    "cat_smooth",
    "min_data_per_group",
    "random_state",
)
CATEGORICAL_COLUMNS = list(range(len(CATEGORICAL_FEATURES)))  # the encoder's columns come first


def build(params: Any) -> Pipeline:
    """An unfitted pipeline whose transformed columns are exactly the contract's FEATURES, in order."""
    transformers: list[tuple[str, Any, list[str]]] = []
    for name in CATEGORICAL_FEATURES:
        transformers.append(
            (
                step_name(name),
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value=MISSING),
                    # rare categories share one code; a category never seen in training becomes NaN, which
                    # LightGBM sends down the same branch as the categories a split did not list
                    OrdinalEncoder(
                        handle_unknown="use_encoded_value",
                        unknown_value=np.nan,
                        min_frequency=params.min_category_frequency,
                    ),
                ),
                [name],
            )
        )
    for name in NUMERIC_FEATURES + FLAG_FEATURES:
        transformers.append((step_name(name), "passthrough", [name]))
    preprocess = ColumnTransformer(transformers, sparse_threshold=0.0, verbose_feature_names_out=True)
    classifier = LGBMClassifier(
        n_estimators=params.n_estimators,
        learning_rate=params.learning_rate,
        num_leaves=params.num_leaves,
        max_depth=params.max_depth,
        min_child_samples=params.min_child_samples,
        reg_lambda=params.reg_lambda,
        cat_smooth=params.cat_smooth,
        min_data_per_group=params.min_data_per_group,
        random_state=params.random_state,
        n_jobs=1,  # small data; one thread keeps training reproducible and the shared machine free
        deterministic=True,
        force_row_wise=True,
        verbose=-1,
    )
    return Pipeline([("preprocess", preprocess), ("classifier", classifier)])


def fit(pipeline: Pipeline, frame: pd.DataFrame, y: np.ndarray) -> Pipeline:
    pipeline.fit(frame, y, classifier__categorical_feature=CATEGORICAL_COLUMNS)
    return pipeline


def logit(pipeline: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """The model's log-odds straight from LightGBM (the reference the explanation must add up to)."""
    transformed = pipeline.named_steps["preprocess"].transform(frame)
    return np.asarray(pipeline.named_steps["classifier"].predict(transformed, raw_score=True), dtype=float)


def _check_layout(pipeline: Pipeline) -> None:
    indices = pipeline.named_steps["preprocess"].output_indices_
    width = sum(s.stop - s.start for s in indices.values())
    if width != len(FEATURES):
        raise ValueError(
            f"boosted pipeline has {width} input columns, {width - len(FEATURES)} of them not contract "
            "features; rebuild it with lead_scoring.training.model.build_pipeline"
        )
    for position, name in enumerate(FEATURES):
        if indices[step_name(name)] != slice(position, position + 1):
            raise ValueError(
                f"boosted pipeline: field {name} is not transformed column {position}; "
                "rebuild it with lead_scoring.training.model.build_pipeline"
            )


class Explainer:
    """Scores through the booster with TreeSHAP contributions: the serving hot path.

    At load time each categorical field's fitted imputer + encoder becomes a lookup table
    (category -> code, plus the codes of an unseen and of a missing value), so a record becomes the
    booster's input row without pandas. `Booster.predict(pred_contrib=True)` then returns, per row,
    one contribution per field and the expected value (base); base + contributions == raw score.
    """

    _UNKNOWN = "\x00unseen-category"

    def __init__(self, pipeline: Pipeline):
        _check_layout(pipeline)
        preprocess: ColumnTransformer = pipeline.named_steps["preprocess"]
        self._booster = pipeline.named_steps["classifier"].booster_
        steps = {name: trans for name, trans, _ in preprocess.transformers_}
        self._codes: dict[str, dict[str, float]] = {}
        self._unknown: dict[str, float] = {}
        self._missing: dict[str, float] = {}
        for f in CATEGORICAL_FEATURES:
            sub = steps[step_name(f)]
            known = [str(c) for c in sub[-1].categories_[0]]
            # NaN as features_frame gives it
            probe = pd.DataFrame({f: np.array(known + [self._UNKNOWN, np.nan], dtype=object)})
            codes = np.asarray(sub.transform(probe), dtype=float).ravel()
            self._codes[f] = dict(zip(known, codes[:-2].tolist(), strict=True))
            self._unknown[f] = float(codes[-2])
            self._missing[f] = float(codes[-1])

    def rows(self, records: list[Mapping[str, Any]]) -> np.ndarray:
        """The booster's input rows (FEATURES order) for contract records."""
        x = np.empty((len(records), len(FEATURES)), dtype=float)
        col = 0
        for f in CATEGORICAL_FEATURES:
            codes, unknown, missing = self._codes[f], self._unknown[f], self._missing[f]
            for i, rec in enumerate(records):
                value = rec.get(f)
                x[i, col] = missing if is_missing(value) else codes.get(str(value), unknown)
            col += 1
        for f in NUMERIC_FEATURES:
            x[:, col] = [as_float(rec.get(f)) for rec in records]
            col += 1
        for f in FLAG_FEATURES:
            x[:, col] = [is_ticked(rec.get(f)) for rec in records]
            col += 1
        return x

    def contributions(self, records: list[Mapping[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        """(base per record, contributions per record and field in FEATURES order) to the log-odds."""
        # one thread: the server scores on the event loop, small batches do not gain from OpenMP
        out = np.asarray(self._booster.predict(self.rows(records), pred_contrib=True, num_threads=1), dtype=float)
        return out[:, -1], out[:, :-1]

"""The model's input: contract records -> one column per contract feature field (shared by every family)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from lead_scoring.contract import CATEGORICAL_FEATURES, FEATURES, FLAG_FEATURES, NUMERIC_FEATURES

MISSING = "(missing)"  # the category an absent categorical value is imputed to


def step_name(field: str) -> str:
    """A field's transformer name: scikit-learn reserves "__" in step names; Salesforce fields end in "__c"."""
    return field.replace("__", "_")


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
    """A flag column as booleans: True/1 is ticked; False/0, null, NaN and pd.NA (nullable warehouse columns)
    are not, as an absent flag means "not ticked" in the CRM."""
    clean = series.astype(object).where(series.notna(), False)
    return clean.map(lambda v: is_ticked(v) == 1.0).astype(bool)


def is_ticked(value: Any) -> float:
    """One record's flag as the model reads it (1.0 ticked, else 0.0; never raises on a null)."""
    if value is None or value is pd.NA or isinstance(value, str):
        return 0.0
    try:
        return 1.0 if value is True or value == 1 else 0.0
    except TypeError:  # an ambiguous comparison (e.g. an array) is not a tick
        return 0.0


def is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def as_float(value: Any) -> float:
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")

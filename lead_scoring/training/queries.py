"""Rendering of the training SQL (one text, BigQuery dialect) from the contract."""

from __future__ import annotations

from importlib import resources

from lead_scoring.contract import FEATURES, FORBIDDEN_FEATURES
from lead_scoring.contract.samples import PROBE_ID_PREFIX


def training_data_sql(validation_fraction: float) -> str:
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    leaked = FORBIDDEN_FEATURES.intersection(FEATURES)
    if leaked:  # a contract edit that made a leakage field a feature must not train silently
        raise ValueError(f"contract marks forbidden fields as features: {sorted(leaked)}")
    template = resources.files("lead_scoring.training").joinpath("sql/training_data.sql").read_text()
    return template.format(
        feature_columns=",\n  ".join(FEATURES),
        train_fraction=repr(round(1.0 - validation_fraction, 6)),
        probe_prefix=PROBE_ID_PREFIX,
    )

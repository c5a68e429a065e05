"""Rendering of the training SQL (one text, BigQuery dialect) from the contract."""

from __future__ import annotations

from importlib import resources

from lead_scoring.contract import FEATURES, FORBIDDEN_FEATURES
from lead_scoring.contract.samples import DEMO_ID_PREFIX, DEMO_SOURCES, PROBE_ID_PREFIX

# Which rows of demo data (`DEMO_SOURCES`, `DEMO_ID_PREFIX` Ids) may train a model.
DEMO_DATA_POLICIES = {
    "auto": "seed and demo rows train only until a real (import or stream) labelled lead exists",
    "include": "seed and demo rows always train, next to real leads",
    "exclude": "seed and demo rows never train",
}
_DEMO_FILTERS = {
    "auto": "(NOT is_demo OR (SELECT n FROM real_labels) = 0)",
    "include": "TRUE",
    "exclude": "NOT is_demo",
}


def training_data_sql(validation_fraction: float, demo_data: str = "auto") -> str:
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"validation_fraction must be between 0 and 1, got {validation_fraction}")
    if demo_data not in DEMO_DATA_POLICIES:
        raise ValueError(f"demo_data must be one of {', '.join(DEMO_DATA_POLICIES)}, got {demo_data!r}")
    leaked = FORBIDDEN_FEATURES.intersection(FEATURES)
    if leaked:  # a contract edit that made a leakage field a feature must not train silently
        raise ValueError(f"contract marks forbidden fields as features: {sorted(leaked)}")
    template = resources.files("lead_scoring.training").joinpath("sql/training_data.sql").read_text()
    return template.format(
        feature_columns=",\n  ".join(FEATURES),
        train_fraction=repr(round(1.0 - validation_fraction, 6)),
        probe_prefix=PROBE_ID_PREFIX,
        demo_prefix=DEMO_ID_PREFIX,
        demo_sources=", ".join(f"'{s}'" for s in DEMO_SOURCES),
        demo_filter=_DEMO_FILTERS[demo_data],
        demo_policy=f"demo_data = {demo_data}: {DEMO_DATA_POLICIES[demo_data]}",
    )


def labelled_leads_by_kind_sql() -> str:
    """Labelled leads (with an outcome) in the warehouse, demo vs real (probes excluded)."""
    demo_sources = ", ".join(f"'{s}'" for s in DEMO_SOURCES)
    return (
        f"SELECT (COALESCE(_source, '') IN ({demo_sources}) OR STARTS_WITH(Id, '{DEMO_ID_PREFIX}')) AS demo, "
        "COUNT(DISTINCT Id) AS leads FROM crm_leads_raw "
        f"WHERE IsConverted IS NOT NULL AND NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}') GROUP BY 1"
    )

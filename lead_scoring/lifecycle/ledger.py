"""The score ledger `lead_score_history`: every score produced, champion or shadow (contract section 2b).

The sink worker appends to it from the score topics (`lead_scores`, `contact_scores`, and
`lead_scores_shadow` with `shadow = true`), idempotently by (Id, Lead_Score_Model__c, scored_ts, shadow).
Only erasure deletes from it. The asset below reports its size and freshness; `lead-scoring scores export`
writes a slice of it to Parquet or CSV.
"""

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import dagster as dg
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lead_scoring.lifecycle.erasure import register_size
from lead_scoring.streaming.lineage import topic_asset_key
from lead_scoring.streaming.topics import SCORE_TOPICS, SHADOW_SCORE_TOPICS
from lead_scoring.util import DAILY_FRESHNESS, daily_at, markdown_table
from lead_scoring.warehouse.resources import Warehouse
from lead_scoring.warehouse.tables import LEDGER_TABLE, TABLES

GROUP = "lifecycle"
OWNERS = ["team:ml-platform"]
LEDGER_ASSET_KEY = dg.AssetKey(LEDGER_TABLE)
LEDGER_SUMMARY_CRON = "30 6 * * *"
EXPORT_FORMATS = (".parquet", ".csv")
_ARROW_TYPES = {
    "string": pa.string(),
    "int": pa.int64(),
    "number": pa.float64(),
    "boolean": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
}
TIMESTAMP_COLUMNS = tuple(c for c, t in TABLES[LEDGER_TABLE].columns if t.value == "timestamp")

LEDGER_BY_VERSION_SQL = f"""
SELECT
  Lead_Score_Model__c AS model_version,
  COALESCE(shadow, FALSE) AS shadow,
  COUNT(*) AS scores,
  COUNT(DISTINCT Id) AS leads,
  COUNTIF(Lead_Grade__c IS NOT NULL) AS graded,
  MIN(scored_ts) AS first_scored,
  MAX(scored_ts) AS last_scored
FROM {LEDGER_TABLE}
GROUP BY 1, 2
ORDER BY last_scored DESC
""".strip()


def _utc(value: Any) -> Optional[pd.Timestamp]:
    if value is None or pd.isna(value):
        return None
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dg.asset(
    key=LEDGER_ASSET_KEY,
    group_name=GROUP,
    kinds={"duckdb", "bigquery"},
    owners=OWNERS,
    deps=[topic_asset_key(t) for t in (*SCORE_TOPICS, *SHADOW_SCORE_TOPICS)],  # the sink worker appends to it
    automation_condition=daily_at(LEDGER_SUMMARY_CRON, "daily at 06:30 UTC"),  # with the backtest that reads it
    freshness_policy=DAILY_FRESHNESS,
)
def lead_score_history(context: dg.AssetExecutionContext, warehouse: Warehouse) -> dg.MaterializeResult:
    """The score ledger: every score produced (champion and shadow), with its size and freshness per model version."""
    warehouse.ensure_tables()
    by_version = warehouse.query(LEDGER_BY_VERSION_SQL)
    rows = int(by_version["scores"].sum()) if not by_version.empty else 0
    shadow_rows = int(by_version.loc[by_version["shadow"].astype(bool), "scores"].sum()) if rows else 0
    newest = _utc(by_version["last_scored"].max()) if rows else None
    now = pd.Timestamp.now(tz="UTC")
    metadata: dict[str, Any] = {
        "dagster/row_count": rows,
        "rows": rows,
        "shadow_rows": shadow_rows,
        "shadow_share": dg.MetadataValue.float(shadow_rows / rows if rows else 0.0),
        "model_versions": int(by_version["model_version"].nunique()) if rows else 0,
        "erased_ids_registered": register_size(warehouse),
        "warehouse": warehouse.describe(),
    }
    if newest is not None:
        metadata["newest_scored_ts"] = dg.MetadataValue.timestamp(newest.to_pydatetime())
        metadata["freshness_s"] = dg.MetadataValue.float(round((now - newest).total_seconds(), 1))
    else:
        metadata["newest_scored_ts"] = "none (no score yet)"
    if rows:
        shown = by_version.assign(
            first_scored=[str(_utc(v)) for v in by_version["first_scored"]],
            last_scored=[str(_utc(v)) for v in by_version["last_scored"]],
        )
        metadata["rows_by_model_version"] = dg.MetadataValue.md(markdown_table(shown))
        metadata["scores_per_version"] = dg.MetadataValue.json(
            {
                f"{v}{' (shadow)' if s else ''}": int(n)
                for v, s, n in zip(by_version["model_version"], by_version["shadow"], by_version["scores"], strict=True)
            }
        )
    else:
        context.log.info("the score ledger is empty: the sink worker fills it from the score topics")
    return dg.MaterializeResult(metadata=metadata)


# ---- export ---------------------------------------------------------------------------------------


def export_sql(include_shadow: bool = True, until: bool = False) -> str:
    where = ["scored_ts >= @since"]
    if until:
        where.append("scored_ts < @until")
    if not include_shadow:
        where.append("COALESCE(shadow, FALSE) = FALSE")
    columns = ", ".join(c for c, _ in TABLES[LEDGER_TABLE].columns)
    return f"SELECT {columns} FROM {LEDGER_TABLE} WHERE {' AND '.join(where)} ORDER BY scored_ts, Id"


def ledger_slice(
    warehouse: Warehouse, since: datetime, until: Optional[datetime] = None, include_shadow: bool = True
) -> pd.DataFrame:
    """Ledger rows scored in [since, until), timestamps as UTC."""
    params: dict[str, Any] = {"since": _utc(since)}
    if until is not None:
        params["until"] = _utc(until)
    frame = warehouse.query(export_sql(include_shadow, until is not None), params)
    for column in TIMESTAMP_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    frame["Lead_Score__c"] = frame["Lead_Score__c"].astype("Int64")
    frame["shadow"] = frame["shadow"].astype("boolean")
    return frame


def write_export(
    frame: pd.DataFrame, out: Path, chunk_rows: int = 50_000, progress: Optional[Callable[[int], None]] = None
) -> int:
    """Write `frame` to `out` (.parquet or .csv, by extension) in chunks; returns the rows written.

    Parquet keeps typed columns (timestamps with tz=UTC); CSV writes ISO-8601 UTC timestamps ('...Z').
    """
    suffix = out.suffix.lower()
    if suffix not in EXPORT_FORMATS:
        raise ValueError(f"unsupported export format {suffix or '(none)'!r} for {out}: use .parquet or .csv")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.partial")
    if suffix == ".parquet":
        schema = pa.schema([(c, _ARROW_TYPES[t.value]) for c, t in TABLES[LEDGER_TABLE].columns if c in frame.columns])
        with pq.ParquetWriter(tmp, schema) as writer:
            for start in range(0, max(len(frame), 1), chunk_rows):
                part = frame.iloc[start : start + chunk_rows]
                writer.write_table(pa.Table.from_pandas(part, schema=schema, preserve_index=False))
                if progress:
                    progress(len(part))
    else:
        text = frame.copy()
        for column in TIMESTAMP_COLUMNS:
            if column in text.columns:
                text[column] = text[column].dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
        for start in range(0, max(len(text), 1), chunk_rows):
            part = text.iloc[start : start + chunk_rows]
            part.to_csv(tmp, index=False, header=start == 0, mode="w" if start == 0 else "a")
            if progress:
                progress(len(part))
    tmp.replace(out)
    return len(frame)

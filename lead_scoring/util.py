"""Small helpers shared by assets."""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import pandas as pd

# A daily asset may be a day and a bit late (a missed tick, a slow run) before its freshness turns red.
DAILY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26), warn_window=timedelta(hours=25))


def daily_at(cron: str, label: str) -> dg.AutomationCondition:
    """Materialize once per cron tick (UTC), unless a run of the asset is already in progress.

    Not `AutomationCondition.on_cron`: that also waits for every upstream asset to update after the tick,
    and these assets read tables the stream appends to, whose upstream assets change only on retraining.
    """
    return (dg.AutomationCondition.cron_tick_passed(cron, "UTC") & ~dg.AutomationCondition.in_progress()).with_label(
        label
    )


def markdown_table(frame: pd.DataFrame, max_rows: int = 50) -> str:
    """A markdown table for Dagster metadata (no extra dependency)."""
    if frame.empty:
        return "(no rows)"
    shown = frame.head(max_rows)
    header = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = [
        "| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |" for row in shown.itertuples(index=False)
    ]
    more = [f"\n… {len(frame) - max_rows} more rows"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *rows, *more])

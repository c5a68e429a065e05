"""Small helpers shared by assets."""

from __future__ import annotations

import pandas as pd


def markdown_table(frame: pd.DataFrame, max_rows: int = 50) -> str:
    """A markdown table for Dagster metadata (no extra dependency)."""
    if frame.empty:
        return "(no rows)"
    shown = frame.head(max_rows)
    header = "| " + " | ".join(str(c) for c in shown.columns) + " |"
    rule = "|" + "---|" * len(shown.columns)
    rows = ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |"
            for row in shown.itertuples(index=False)]
    more = [f"\n… {len(frame) - max_rows} more rows"] if len(frame) > max_rows else []
    return "\n".join([header, rule, *rows, *more])

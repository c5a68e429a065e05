"""Each lead's outcome as the warehouse knows it: one query for the backtest and the champion/challenger pairs."""

from __future__ import annotations

from lead_scoring.contract.samples import PROBE_ID_PREFIX


def outcomes_cte(name: str = "outcomes") -> str:
    """`<name> AS (Id, converted)`: per Id of `crm_leads_raw` (probes left out), the last non-null `IsConverted`
    of its change records, in the order the CRM made them (both warehouses' SQL)."""
    return f"""{name} AS (
  SELECT
    Id,
    LAST_VALUE(IsConverted IGNORE NULLS) OVER (
      PARTITION BY Id ORDER BY LastModifiedDate, _ingested_at
      ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    ) AS converted
  FROM crm_leads_raw
  WHERE NOT STARTS_WITH(Id, '{PROBE_ID_PREFIX}')
  QUALIFY ROW_NUMBER() OVER (PARTITION BY Id ORDER BY LastModifiedDate DESC, _ingested_at DESC) = 1
)"""

-- Training rows: the latest state of every Lead/Contact, labelled with its latest known outcome.
-- BigQuery Standard SQL: run as-is on BigQuery (default dataset = the project dataset) and
-- transpiled by sqlglot for DuckDB. The feature column list is rendered from the contract
-- feature list, so leakage fields and PII can never be selected.
-- Demo data (the seeded sample, streamed demo leads) trains only while no real labelled lead exists
-- ({demo_policy}).
WITH marked AS (
  SELECT
    *,
    (COALESCE(_source, '') IN ({demo_sources}) OR STARTS_WITH(Id, '{demo_prefix}')) AS is_demo
  FROM crm_leads_raw
  WHERE NOT STARTS_WITH(Id, '{probe_prefix}')  -- latency probes never train the model
),
real_labels AS (
  SELECT COUNT(*) AS n FROM marked WHERE NOT is_demo AND IsConverted IS NOT NULL
),
latest AS (
  SELECT
    *,
    -- the outcome arrives later, on an `updated` event: take the newest non-null one
    LAST_VALUE(IsConverted IGNORE NULLS) OVER (
      PARTITION BY Id ORDER BY LastModifiedDate, _ingested_at
      ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING
    ) AS label,
    MIN(CreatedDate) OVER (PARTITION BY Id) AS first_created
  FROM marked
  WHERE {demo_filter}
  QUALIFY ROW_NUMBER() OVER (PARTITION BY Id ORDER BY LastModifiedDate DESC, _ingested_at DESC) = 1
)
SELECT
  Id,
  _ObjectType,
  COALESCE(first_created, LastModifiedDate) AS CreatedDate,
  LastModifiedDate,
  {feature_columns},
  label AS IsConverted,
  COALESCE(_source, '(none)') AS _source,
  CASE
    WHEN PERCENT_RANK() OVER (ORDER BY COALESCE(first_created, LastModifiedDate), Id) >= {train_fraction}
      THEN 'validation'
    ELSE 'train'
  END AS split
FROM latest
WHERE label IS NOT NULL
  AND _EventType != 'deleted'
ORDER BY CreatedDate, Id

CREATE TEMPORARY MODEL `lead_scorer_m20261123_120000_abc123`
INPUT (
  `record` STRING
)
OUTPUT (
  `response` STRING
)
COMMENT 'lead scorer m20261123-120000-abc123'
WITH (
  'provider' = 'triton',
  'endpoint' = 'http://127.0.0.1:8080',
  'model-name' = 'lead_scorer',
  'timeout' = '10s'
)

CREATE TEMPORARY MODEL `lead_scorer_e6128fde`
INPUT (
  `record` STRING
)
OUTPUT (
  `response` STRING
)
COMMENT 'lead scorer: the version is the one the endpoint serves (each score carries it)'
WITH (
  'provider' = 'triton',
  'endpoint' = 'http://127.0.0.1:8080',
  'model-name' = 'lead_scorer',
  'timeout' = '10s'
)

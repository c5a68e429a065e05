"""The warehouse: DuckDB locally, BigQuery in production, one SQL dialect (BigQuery's)."""

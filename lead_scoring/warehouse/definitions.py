"""The warehouse of each profile (`warehouse` resource): a DuckDB file locally, BigQuery in gcp."""

from __future__ import annotations

import dagster as dg

from lead_scoring.settings import Profile, state_dir
from lead_scoring.warehouse.resources import BigQueryWarehouse, DuckDBWarehouse, Warehouse


def local_warehouse_path() -> str:
    return str(state_dir() / "warehouse" / "lead_scoring.duckdb")


def warehouse(profile: Profile) -> Warehouse:
    if profile is Profile.GCP:
        return BigQueryWarehouse(
            project=dg.EnvVar("LEAD_SCORING_GCP_PROJECT"), dataset=dg.EnvVar("LEAD_SCORING_BQ_DATASET")
        )
    # local and cluster: the cluster profile runs the engines elsewhere, the warehouse stays a DuckDB file
    return DuckDBWarehouse(path=local_warehouse_path())


def defs(profile: Profile) -> dg.Definitions:
    return dg.Definitions(resources={"warehouse": warehouse(profile)})

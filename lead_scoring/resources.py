"""The one place where the profile (local | gcp) chooses resource implementations.

Local defaults need nothing: DuckDB and artifacts under the state folder. The gcp profile reads
its settings through `dg.EnvVar`, so a missing variable is reported by name when a run starts and
secrets never appear in configuration or metadata.
"""

from __future__ import annotations

from typing import Any

import dagster as dg

from lead_scoring.settings import Profile, current_profile, state_dir
from lead_scoring.storage.resources import GcsModelStore, LocalModelStore
from lead_scoring.warehouse.resources import BigQueryWarehouse, DuckDBWarehouse

# Environment variables of the gcp profile (documented in the README).
GCP_PROJECT = "LEAD_SCORING_GCP_PROJECT"
GCP_REGION = "LEAD_SCORING_GCP_REGION"
BQ_DATASET = "LEAD_SCORING_BQ_DATASET"
GCS_BUCKET = "LEAD_SCORING_GCS_BUCKET"


def local_warehouse_path() -> str:
    return str(state_dir() / "warehouse" / "lead_scoring.duckdb")


def local_artifact_root() -> str:
    return str(state_dir() / "artifacts")


def build_resources(profile: Profile | None = None) -> dict[str, Any]:
    profile = profile or current_profile()
    if profile is Profile.LOCAL:
        resources: dict[str, Any] = {
            "warehouse": DuckDBWarehouse(path=local_warehouse_path()),
            "model_store": LocalModelStore(root=local_artifact_root()),
        }
    else:
        from dagster_gcp.gcs import GCSPickleIOManager, GCSResource

        resources = {
            "warehouse": BigQueryWarehouse(project=dg.EnvVar(GCP_PROJECT), dataset=dg.EnvVar(BQ_DATASET)),
            "model_store": GcsModelStore(bucket=dg.EnvVar(GCS_BUCKET), project=dg.EnvVar(GCP_PROJECT)),
            "io_manager": GCSPickleIOManager(
                gcs=GCSResource(project=dg.EnvVar(GCP_PROJECT)), gcs_bucket=dg.EnvVar(GCS_BUCKET),
                gcs_prefix="lead-scoring/dagster-io",
            ),
        }
    resources.update(_extension_resources(profile))
    return resources


def _extension_resources(profile: Profile) -> dict[str, Any]:
    """Resources of the serving / streaming / crm modules, each module choosing per profile."""
    out: dict[str, Any] = {}
    for module_name in ("lead_scoring.serving.resources", "lead_scoring.streaming.resources",
                        "lead_scoring.crm.resources", "lead_scoring.monitoring.resources"):
        try:
            module = __import__(module_name, fromlist=["resources_for_profile"])
        except ModuleNotFoundError as exc:
            if exc.name != module_name:  # a broken import inside the module must not pass silently
                raise
            continue
        factory = getattr(module, "resources_for_profile", None)
        if factory is not None:
            out.update(factory(profile))
    return out

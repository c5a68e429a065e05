"""The model artifact store of each profile (`model_store`), and where Dagster keeps outputs in gcp."""

from __future__ import annotations

import dagster as dg
from dagster_gcp.gcs import GCSPickleIOManager, GCSResource

from lead_scoring.settings import Profile, state_dir
from lead_scoring.storage.resources import GcsModelStore, LocalModelStore, ModelStore


def local_artifact_root() -> str:
    return str(state_dir() / "artifacts")


def model_store(profile: Profile) -> ModelStore:
    if profile is Profile.GCP:
        return GcsModelStore(
            profile=profile, bucket=dg.EnvVar("LEAD_SCORING_GCS_BUCKET"), project=dg.EnvVar("LEAD_SCORING_GCP_PROJECT")
        )
    return LocalModelStore(profile=profile, root=local_artifact_root())


def defs(profile: Profile) -> dg.Definitions:
    resources: dict[str, object] = {"model_store": model_store(profile)}
    if profile is Profile.GCP:
        resources["io_manager"] = GCSPickleIOManager(
            gcs=GCSResource(project=dg.EnvVar("LEAD_SCORING_GCP_PROJECT")),
            gcs_bucket=dg.EnvVar("LEAD_SCORING_GCS_BUCKET"),
            gcs_prefix="lead-scoring/dagster-io",
        )
    return dg.Definitions(resources=resources)

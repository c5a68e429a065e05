"""What several benchmarks need: synthetic records and a small trained model, from the library only."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lead_scoring.crm.synthetic import frame_records, generate_leads
from lead_scoring.storage.artifacts import ArtifactRepository, LocalBlobs, ModelArtifact
from lead_scoring.training.model import ModelParams, build_pipeline, features_frame, fit


def synthetic_records(n: int, seed: int) -> list[dict[str, Any]]:
    """`n` valid contract records (Leads and Contacts), nulls left out as a CRM connector sends them."""
    return list(frame_records(generate_leads(n, seed=seed)))


def small_model(store_root: Path, n: int = 2000, seed: int = 1, note: str = "benchmark") -> ModelArtifact:
    """A model trained on `n` synthetic leads, saved (sha256-verified) to a local artifact store."""
    frame = generate_leads(n, seed=seed)
    labelled = frame[frame["IsConverted"].notna()]
    pipeline = fit(build_pipeline(ModelParams()), features_frame(labelled), labelled["IsConverted"].astype(bool))
    return ArtifactRepository(LocalBlobs(store_root)).save(pipeline, {"trained_on": note})

"""`load()` from gs:// (gcp-storage-emulator): a store version, a Vertex-style copied folder, a tampered copy."""

from __future__ import annotations

from lead_scoring.serving.model import LeadScoringModel
from lead_scoring.settings import Profile
from lead_scoring.storage.artifacts import MANIFEST_FILE, MODEL_FILE, ArtifactRepository
from lead_scoring_tests.fixtures.gcs import GcsEmulator
from lead_scoring_tests.serving.conftest import V1


def test_load_from_gcs_store_and_vertex_copy(gcs_emulator: GcsEmulator, repo: ArtifactRepository) -> None:
    gcs = gcs_emulator.store("serving-load")
    pipeline, _ = repo.load(V1)
    artifact = gcs.repository().save(pipeline, {"note": "gcs"}, version="mgcs")
    client = gcs.client()
    model = LeadScoringModel("lead_scorer", artifact.uri, Profile.LOCAL, gcs_client=client)
    assert model.load() and model.model_version == "mgcs"

    # Vertex AI copies artifact_uri elsewhere and passes that folder as AIP_STORAGE_URI
    bucket = client.bucket(gcs_emulator.bucket)
    for name in (MANIFEST_FILE, MODEL_FILE):
        data = bucket.blob(f"serving-load/models/mgcs/{name}").download_as_bytes()
        bucket.blob(f"vertex-copy/abc123/{name}").upload_from_string(data)
    copy = LeadScoringModel(
        "lead_scorer", f"gs://{gcs_emulator.bucket}/vertex-copy/abc123", Profile.LOCAL, gcs_client=client
    )
    assert copy.load() and copy.model_version == "mgcs"

    blob = bucket.blob(f"vertex-copy/abc123/{MODEL_FILE}")
    blob.upload_from_string(blob.download_as_bytes()[:-1] + b"x")
    tampered = LeadScoringModel(
        "lead_scorer", f"gs://{gcs_emulator.bucket}/vertex-copy/abc123", Profile.LOCAL, gcs_client=client
    )
    assert tampered.load() is False and "sha256" in (tampered.load_error or "") and not tampered.ready

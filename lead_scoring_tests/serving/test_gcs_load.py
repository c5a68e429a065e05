"""`load()` from gs:// (gcp-storage-emulator): a store version, a Vertex-style copied folder, a tampered copy."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lead_scoring.serving.model import LeadScoringModel
from lead_scoring.stack.ports import free_port, port_open
from lead_scoring.stack.process import terminate
from lead_scoring.storage.artifacts import MANIFEST_FILE, MODEL_FILE, ArtifactRepository
from lead_scoring.storage.resources import GcsModelStore
from lead_scoring_tests.serving.conftest import V1


@pytest.fixture(scope="module")
def gcs(tmp_path_factory):
    port = free_port()
    exe = shutil.which("gcp-storage-emulator", path=str(Path(sys.executable).parent))
    log = tmp_path_factory.mktemp("gcs") / "emulator.log"
    with log.open("w") as out:
        proc = subprocess.Popen([exe, "start", "--host", "127.0.0.1", "--port", str(port), "--in-memory",
                                 "--default-bucket", "models"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            if time.monotonic() > deadline:
                pytest.fail(f"gcp-storage-emulator did not start: {log.read_text()}")
            time.sleep(0.2)
        yield GcsModelStore(bucket="models", prefix="lead-scoring", endpoint=f"http://127.0.0.1:{port}", project="t")
    finally:
        terminate(proc, 10, "gcp-storage-emulator")  # SIGTERM, then SIGKILL


def test_load_from_gcs_store_and_vertex_copy(gcs: GcsModelStore, repo: ArtifactRepository) -> None:
    pipeline, _ = repo.load(V1)
    artifact = gcs.repository().save(pipeline, {"note": "gcs"}, version="mgcs")
    client = gcs.client()
    model = LeadScoringModel("lead_scorer", artifact.uri, gcs_client=client)
    assert model.load() and model.model_version == "mgcs"

    # Vertex AI copies artifact_uri elsewhere and passes that folder as AIP_STORAGE_URI
    bucket = client.bucket("models")
    for name in (MANIFEST_FILE, MODEL_FILE):
        data = bucket.blob(f"lead-scoring/models/mgcs/{name}").download_as_bytes()
        bucket.blob(f"vertex-copy/abc123/{name}").upload_from_string(data)
    copy = LeadScoringModel("lead_scorer", "gs://models/vertex-copy/abc123", gcs_client=client)
    assert copy.load() and copy.model_version == "mgcs"

    blob = bucket.blob(f"vertex-copy/abc123/{MODEL_FILE}")
    blob.upload_from_string(blob.download_as_bytes()[:-1] + b"x")
    tampered = LeadScoringModel("lead_scorer", "gs://models/vertex-copy/abc123", gcs_client=client)
    assert tampered.load() is False and "sha256" in (tampered.load_error or "") and not tampered.ready

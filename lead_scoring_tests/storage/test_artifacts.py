"""Versioned artifacts: local folder and GCS (against a real gcp-storage-emulator process)."""

import json
from pathlib import Path

import pytest

from lead_scoring.storage.artifacts import (
    ArtifactError,
    ArtifactIntegrityError,
    load_artifact,
    new_version,
    repository_for_uri,
)
from lead_scoring.storage.resources import LocalModelStore


def _model():
    from lead_scoring.crm.synthetic import generate_leads
    from lead_scoring.training.model import build_pipeline, features_frame, fit

    leads = generate_leads(400, seed=9)
    leads = leads[leads["IsConverted"].notna()]
    return fit(build_pipeline(), features_frame(leads), leads["IsConverted"]), features_frame(leads.head(5))


@pytest.fixture(scope="module")
def model():
    return _model()


def _roundtrip(store, model):
    pipeline, sample = model
    repo = store.repository()
    artifact = repo.save(pipeline, {"features": ["x"], "metrics": {"roc_auc": 0.9}})
    assert artifact.version in repo.versions()
    loaded, manifest = repo.load(artifact.version)
    assert manifest["sha256"] == artifact.sha256 and manifest["metrics"] == {"roc_auc": 0.9}
    assert {"python", "scikit-learn", "numpy"} <= set(manifest["libraries"])
    assert (loaded.predict_proba(sample) == pipeline.predict_proba(sample)).all()
    assert repo.production_version() is None
    repo.set_production(artifact.version)
    assert repo.production_version() == artifact.version
    return artifact


def test_versions_are_sortable_and_statement_safe():
    import re

    version = new_version()
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", version)


def test_local_store_round_trip_and_uri_loading(tmp_path: Path, model):
    artifact = _roundtrip(LocalModelStore(root=str(tmp_path)), model)
    loaded, manifest = load_artifact(artifact.uri)
    assert manifest["version"] == artifact.version
    loaded, _ = load_artifact(f"file://{artifact.uri}")


def test_a_tampered_pickle_is_refused_before_unpickling(tmp_path: Path, model, monkeypatch):
    artifact = LocalModelStore(root=str(tmp_path)).repository().save(model[0], {})
    model_file = Path(artifact.uri) / "model.joblib"
    model_file.write_bytes(model_file.read_bytes() + b"evil")
    import joblib

    called = []
    monkeypatch.setattr(joblib, "load", lambda *a, **k: called.append(1))
    with pytest.raises(ArtifactIntegrityError, match="does not match the manifest"):
        load_artifact(artifact.uri)
    assert called == []  # nothing was unpickled


def test_bad_uris_are_explained(tmp_path: Path):
    with pytest.raises(ArtifactError, match="not a model version folder"):
        repository_for_uri(str(tmp_path))
    with pytest.raises(ArtifactError, match="unsupported artifact URI scheme"):
        repository_for_uri("s3://bucket/models/v1")
    (tmp_path / "models" / "m1").mkdir(parents=True)
    with pytest.raises(ArtifactError, match="no artifact file"):
        load_artifact(str(tmp_path / "models" / "m1"))


def test_gcs_store_round_trip_on_the_emulator(gcs_emulator, model):
    store = gcs_emulator.store("lead-scoring")
    artifact = _roundtrip(store, model)
    assert artifact.uri == f"gs://lead-models/lead-scoring/models/{artifact.version}"
    blob = store.client().bucket("lead-models").blob(f"lead-scoring/models/{artifact.version}/manifest.json")
    assert json.loads(blob.download_as_bytes())["sha256"] == artifact.sha256
    # the server's loader resolves gs:// URIs to the same verified artifact
    loaded, manifest = load_artifact(artifact.uri, gcs_client=store.client())
    assert manifest["version"] == artifact.version
    # tampering in the bucket is refused too
    model_blob = store.client().bucket("lead-models").blob(f"lead-scoring/models/{artifact.version}/model.joblib")
    model_blob.upload_from_string(model_blob.download_as_bytes()[:-1] + b"x")
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(artifact.uri, gcs_client=store.client())

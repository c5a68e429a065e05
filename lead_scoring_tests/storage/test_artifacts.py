"""Versioned artifacts: local folder and GCS (against a real gcp-storage-emulator process)."""

import hashlib
import json
import stat
from pathlib import Path

import pytest

from lead_scoring.settings import Profile
from lead_scoring.storage import artifacts
from lead_scoring.storage.artifacts import (
    ArtifactError,
    ArtifactIntegrityError,
    ArtifactSignatureError,
    key_id,
    load_artifact,
    load_folder,
    manifest_digest,
    new_version,
    repository_for_uri,
    signing_key,
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
    loaded, manifest = load_artifact(artifact.uri, Profile.LOCAL)
    assert manifest["version"] == artifact.version
    loaded, _ = load_artifact(f"file://{artifact.uri}", Profile.LOCAL)


def test_a_tampered_pickle_is_refused_before_unpickling(tmp_path: Path, model, monkeypatch):
    artifact = LocalModelStore(root=str(tmp_path)).repository().save(model[0], {})
    model_file = Path(artifact.uri) / "model.joblib"
    model_file.write_bytes(model_file.read_bytes() + b"evil")
    import joblib

    called = []
    monkeypatch.setattr(joblib, "load", lambda *a, **k: called.append(1))
    with pytest.raises(ArtifactIntegrityError, match="does not match the manifest"):
        load_artifact(artifact.uri, Profile.LOCAL)
    assert called == []  # nothing was unpickled


def test_bad_uris_are_explained(tmp_path: Path):
    with pytest.raises(ArtifactError, match="not a model version folder"):
        repository_for_uri(str(tmp_path), Profile.LOCAL)
    with pytest.raises(ArtifactError, match="unsupported artifact URI scheme"):
        repository_for_uri("s3://bucket/models/v1", Profile.LOCAL)
    (tmp_path / "models" / "m1").mkdir(parents=True)
    with pytest.raises(ArtifactError, match="no artifact file"):
        load_artifact(str(tmp_path / "models" / "m1"), Profile.LOCAL)


def test_gcs_store_round_trip_on_the_emulator(gcs_emulator, model):
    store = gcs_emulator.store("lead-scoring")
    artifact = _roundtrip(store, model)
    assert artifact.uri == f"gs://lead-models/lead-scoring/models/{artifact.version}"
    blob = store.client().bucket("lead-models").blob(f"lead-scoring/models/{artifact.version}/manifest.json")
    assert json.loads(blob.download_as_bytes())["sha256"] == artifact.sha256
    # the server's loader resolves gs:// URIs to the same verified artifact
    loaded, manifest = load_artifact(artifact.uri, Profile.LOCAL, gcs_client=store.client())
    assert manifest["version"] == artifact.version
    # tampering in the bucket is refused too
    model_blob = store.client().bucket("lead-models").blob(f"lead-scoring/models/{artifact.version}/model.joblib")
    model_blob.upload_from_string(model_blob.download_as_bytes()[:-1] + b"x")
    with pytest.raises(ArtifactIntegrityError):
        load_artifact(artifact.uri, Profile.LOCAL, gcs_client=store.client())


# -- signatures (issue 33): who made the artifact, not only whether it is intact ---------------------------
def _manifest_path(root: Path, version: str) -> Path:
    return root / "models" / version / "manifest.json"


def test_artifacts_are_signed_and_a_changed_manifest_is_refused(tmp_path, model):
    repo = LocalModelStore(root=str(tmp_path)).repository()
    artifact = repo.save(model[0], {"metrics": {"roc_auc": 0.7}})
    signature = repo.manifest(artifact.version)["signature"]
    assert signature["algorithm"] == "HMAC-SHA256" and signature["key_id"] == key_id(signing_key(Profile.LOCAL))
    assert len(signature["value"]) == 64 and signature["key_id"] not in signing_key(Profile.LOCAL).decode()
    repo.load(artifact.version)  # verifies

    # whoever can write the store swaps in their own model AND its sha256: the signature no longer matches
    path = _manifest_path(tmp_path, artifact.version)
    manifest = json.loads(path.read_text())
    forged = tmp_path / "models" / artifact.version / "model.joblib"
    forged.write_bytes(forged.read_bytes()[:-1] + b"x")
    manifest["sha256"] = hashlib.sha256(forged.read_bytes()).hexdigest()
    path.write_text(json.dumps(manifest))
    for load in (
        lambda: repo.load(artifact.version),
        lambda: load_artifact(artifact.uri, Profile.LOCAL),
        lambda: load_folder(artifact.uri, Profile.LOCAL),
    ):
        with pytest.raises(ArtifactSignatureError, match="LEAD_SCORING_ARTIFACT_SIGNING_KEY.*retrain"):
            load()

    # unsigned (an artifact of before, or made by hand): refused, naming the variable and the fix
    manifest.pop("signature")
    path.write_text(json.dumps(manifest))
    with pytest.raises(ArtifactSignatureError, match="not signed.*LEAD_SCORING_ARTIFACT_SIGNING_KEY"):
        repo.load(artifact.version)


def test_no_unpickle_happens_before_the_signature_is_checked(tmp_path, model, monkeypatch):
    repo = LocalModelStore(root=str(tmp_path)).repository()
    artifact = repo.save(model[0], {})
    path = _manifest_path(tmp_path, artifact.version)
    path.write_text(json.dumps({**json.loads(path.read_text()), "note": "changed"}))
    opened = []
    monkeypatch.setattr(artifacts.joblib, "load", lambda *a, **k: opened.append(a))
    with pytest.raises(ArtifactSignatureError):
        repo.load(artifact.version)
    assert opened == []


def test_the_key_comes_from_the_environment_and_another_key_is_refused(tmp_path, model, monkeypatch):
    monkeypatch.setenv("LEAD_SCORING_ARTIFACT_SIGNING_KEY", "k" * 40)
    repo = LocalModelStore(root=str(tmp_path)).repository()
    artifact = repo.save(model[0], {})
    assert repo.manifest(artifact.version)["signature"]["key_id"] == key_id(b"k" * 40)
    repo.load(artifact.version)
    monkeypatch.setenv("LEAD_SCORING_ARTIFACT_SIGNING_KEY", "another-key-entirely-0123456789")
    with pytest.raises(
        ArtifactSignatureError,
        match=f"key id {key_id(b'another-key-entirely-0123456789')}.*names key id '{key_id(b'k' * 40)}'",
    ):
        repo.load(artifact.version)
    # gcp: no key, no fallback
    monkeypatch.delenv("LEAD_SCORING_ARTIFACT_SIGNING_KEY")
    with pytest.raises(ArtifactSignatureError, match="LEAD_SCORING_ARTIFACT_SIGNING_KEY is not set.*Secret Manager"):
        LocalModelStore(root=str(tmp_path), profile=Profile.GCP).repository().load(artifact.version)


def test_the_local_key_is_owner_only(tmp_path, monkeypatch):
    monkeypatch.setenv("LEAD_SCORING_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LEAD_SCORING_ARTIFACT_SIGNING_KEY", raising=False)
    key = signing_key(Profile.LOCAL)
    path = tmp_path / "home" / "secrets" / "artifact-signing-key"
    assert path.read_text().encode() == key and len(key) == 64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "home").stat().st_mode) == 0o700
    assert signing_key(Profile.LOCAL) == key  # generated once


def test_gcs_store_signs_and_verifies_on_the_emulator(gcs_emulator, model):
    store = gcs_emulator.store("signed")
    repo = store.repository()
    artifact = repo.save(model[0], {})
    client = store.client()
    loaded, manifest = load_artifact(artifact.uri, Profile.LOCAL, gcs_client=client)
    assert manifest["signature"]["key_id"] == key_id(signing_key(Profile.LOCAL))
    blob = client.bucket("lead-models").blob(f"signed/models/{artifact.version}/manifest.json")
    blob.upload_from_string(json.dumps({**manifest, "metrics": {"roc_auc": 0.99}}))
    with pytest.raises(ArtifactSignatureError):
        load_artifact(artifact.uri, Profile.LOCAL, gcs_client=client)


def test_a_loader_without_the_key_loads_only_the_pinned_manifest(tmp_path, model, monkeypatch):
    """The Vertex AI container: no signing key, the digest of the manifest the deployment verified."""
    repo = LocalModelStore(root=str(tmp_path)).repository()
    artifact = repo.save(model[0], {})
    pin = manifest_digest(repo.manifest(artifact.version))
    monkeypatch.delenv("LEAD_SCORING_ARTIFACT_SIGNING_KEY", raising=False)
    with pytest.raises(ArtifactSignatureError, match="LEAD_SCORING_ARTIFACT_SIGNING_KEY is not set"):
        load_folder(artifact.uri, Profile.GCP)
    monkeypatch.setenv("LEAD_SCORING_ARTIFACT_MANIFEST_SHA256", pin)
    assert load_folder(artifact.uri, Profile.GCP)[1]["version"] == artifact.version
    path = _manifest_path(tmp_path, artifact.version)
    path.write_text(json.dumps({**json.loads(path.read_text()), "metrics": {"roc_auc": 1.0}}))
    with pytest.raises(ArtifactSignatureError, match="LEAD_SCORING_ARTIFACT_MANIFEST_SHA256"):
        load_folder(artifact.uri, Profile.GCP)

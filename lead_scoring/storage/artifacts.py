"""Versioned model artifacts: a pickled pipeline plus a manifest, in a local folder or on GCS.

Layout under the store's root (a directory, or gs://bucket/prefix):
    models/<version>/model.joblib     the fitted scikit-learn pipeline
    models/<version>/manifest.json    version, sha256 of model.joblib, libraries, features, metrics, data range
    models/PRODUCTION                 {"version": ...} of the model currently serving (champion)

A pickle is code, and whoever can write the store can replace both files, so the sha256 alone proves
integrity, not authorship. Training signs the manifest (which holds the model's sha256) with an HMAC-SHA256
key held OUTSIDE the store (LEAD_SCORING_ARTIFACT_SIGNING_KEY; locally, when unset, a key generated once
under `<state>/secrets`, 0600). Every load verifies, in this order and BEFORE unpickling: the manifest's
signature with that key, then the model file's sha256 against the signed manifest.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import platform
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlparse

import joblib
from google.api_core import exceptions as gexc
from google.cloud import storage

from lead_scoring.settings import (
    MANIFEST_PIN_ENV_VAR,
    SIGNING_KEY_ENV_VAR,
    Profile,
    owner_only_secret,
    security_settings,
    state_dir,
)

logger = logging.getLogger(__name__)

MODEL_FILE = "model.joblib"
MANIFEST_FILE = "manifest.json"
PRODUCTION_POINTER = "PRODUCTION"
SIGNATURE_FIELD = "signature"
SIGNATURE_ALGORITHM = "HMAC-SHA256"
SIGNING_KEY_FILE = "artifact-signing-key"
TRACKED_LIBRARIES = ("scikit-learn", "numpy", "scipy", "pandas", "joblib", "lead_scoring")


class ArtifactError(RuntimeError):
    """An artifact cannot be found or read."""


class ArtifactIntegrityError(ArtifactError):
    """The model file does not match the sha256 in its manifest: it is not loaded."""


class ArtifactSignatureError(ArtifactIntegrityError):
    """The manifest is unsigned, or its signature does not verify with our key: the artifact is not loaded."""


# -- signing --------------------------------------------------------------------------------------------
def signing_key(profile: Profile) -> bytes:
    """The artifact signing key: LEAD_SCORING_ARTIFACT_SIGNING_KEY, else (local and cluster profiles) a key
    generated once under `<state>/secrets` (0600). The gcp `profile` never falls back: its key lives in Secret
    Manager and reaches Dagster and the model server through the environment."""
    configured = security_settings().signing_key
    if configured is not None:
        return configured.get_secret_value().encode()
    if profile is Profile.GCP:
        raise ArtifactSignatureError(
            f"{SIGNING_KEY_ENV_VAR} is not set: the gcp profile signs and verifies model artifacts with a key held "
            f"outside the bucket; set it from Secret Manager in Dagster's and the model server's environment "
            f"(docs/security.md)"
        )
    return owner_only_secret(state_dir() / "secrets" / SIGNING_KEY_FILE).encode()


def key_id(key: bytes) -> str:
    """A name for a key that gives nothing away: the first 8 hex digits of its sha256."""
    return hashlib.sha256(key).hexdigest()[:8]


def manifest_signature(manifest: dict[str, Any], key: bytes) -> str:
    """HMAC-SHA256 of the manifest without its signature, as canonical JSON (sorted keys, no spaces)."""
    unsigned = {k: v for k, v in manifest.items() if k != SIGNATURE_FIELD}
    canonical = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), default=str).encode()
    return hmac.new(key, canonical, hashlib.sha256).hexdigest()


def sign_manifest(manifest: dict[str, Any], key: bytes) -> dict[str, Any]:
    signature = {"algorithm": SIGNATURE_ALGORITHM, "key_id": key_id(key), "value": manifest_signature(manifest, key)}
    return {**manifest, SIGNATURE_FIELD: signature}


def manifest_digest(manifest: dict[str, Any]) -> str:
    """sha256 of the whole manifest (signature included) as canonical JSON: what pins one signed manifest."""
    return hashlib.sha256(json.dumps(manifest, sort_keys=True, separators=(",", ":"), default=str).encode()).hexdigest()


def verify_pinned_manifest(manifest: dict[str, Any], source: str, pinned: str) -> str:
    """For a loader without the signing key (the Vertex AI container): the manifest must be exactly the one the
    deployment verified with the key, pinned by its digest in LEAD_SCORING_ARTIFACT_MANIFEST_SHA256."""
    if not hmac.compare_digest(manifest_digest(manifest).encode(), pinned.strip().lower().encode()):
        raise ArtifactSignatureError(
            f"refusing to load {source}: its manifest is not the one the deployment verified "
            f"({MANIFEST_PIN_ENV_VAR} pins another); it was changed after the deployment checked its signature: "
            f"deploy again (materialize model_deployment)"
        )
    signature = manifest.get(SIGNATURE_FIELD)
    return str(signature.get("key_id")) if isinstance(signature, dict) else ""


def verify_manifest(manifest: dict[str, Any], source: str, key: bytes) -> str:
    """The id of the key that verified `manifest`'s signature; `ArtifactSignatureError` (saying the fix) if none."""
    signature = manifest.get(SIGNATURE_FIELD)
    if not isinstance(signature, dict) or not isinstance(signature.get("value"), str):
        raise ArtifactSignatureError(
            f"refusing to load {source}: its manifest is not signed (saved before artifacts were signed, or not by "
            f"our training); retrain it (materialize model_artifact) with {SIGNING_KEY_ENV_VAR} set to the key "
            f"the loaders verify with"
        )
    if not hmac.compare_digest(signature["value"].encode(), manifest_signature(manifest, key).encode()):
        raise ArtifactSignatureError(
            f"refusing to load {source}: its manifest signature does not verify with {SIGNING_KEY_ENV_VAR} (key id "
            f"{key_id(key)}; the manifest names key id {str(signature.get('key_id'))[:16]!r}): the manifest was "
            f"changed after training, or signed with another key; give this process the key that signed it, "
            f"or retrain"
        )
    return key_id(key)


@dataclass(frozen=True)
class ModelArtifact:
    version: str
    uri: str  # folder of the version: /abs/path/models/<v> or gs://bucket/prefix/models/<v>
    sha256: str
    manifest: dict[str, Any] = field(default_factory=dict)


def new_version(now: datetime | None = None) -> str:
    """Sortable, lower-case, [a-z0-9-] only: usable in Flink statement names and Vertex labels."""
    now = now or datetime.now(UTC)
    return f"m{now:%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def serialize_model(model: Any) -> tuple[bytes, str]:
    buffer = io.BytesIO()
    joblib.dump(model, buffer, compress=3)
    payload = buffer.getvalue()
    return payload, hashlib.sha256(payload).hexdigest()


def deserialize_verified(payload: bytes, expected_sha256: str, source: str) -> Any:
    """Unpickle `payload` if its sha256 is `expected_sha256` (taken from a manifest already signature-verified)."""
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256:
        raise ArtifactIntegrityError(
            f"refusing to load {source}: sha256 {actual} does not match the manifest's {expected_sha256}"
        )
    return joblib.load(io.BytesIO(payload))


class BlobIO(Protocol):
    """The few object-store operations artifacts need (a folder or a GCS bucket)."""

    def read(self, key: str) -> bytes: ...

    def write(self, key: str, data: bytes, content_type: str) -> None: ...

    def exists(self, key: str) -> bool: ...

    def list_prefixes(self, prefix: str) -> list[str]: ...

    def uri(self, key: str) -> str: ...


class LocalBlobs:
    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser().resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root not in path.parents and path != self.root:
            raise ArtifactError(f"key {key!r} escapes the artifact root")
        return path

    def read(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ArtifactError(f"no artifact file at {self._path(key)}") from None

    def write(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(path)  # atomic: a reader never sees half a file

    def exists(self, key: str) -> bool:
        return self._path(key).exists()

    def list_prefixes(self, prefix: str) -> list[str]:
        base = self._path(prefix)
        if not base.is_dir():
            return []
        return sorted(p.name for p in base.iterdir() if p.is_dir())

    def uri(self, key: str) -> str:
        return str(self._path(key))


class GcsBlobs:
    def __init__(self, client: Any, bucket: str, prefix: str = ""):
        self.client = client
        self.bucket_name = bucket
        self.prefix = prefix.strip("/")
        self.bucket = client.bucket(bucket)

    def _name(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def read(self, key: str) -> bytes:
        try:
            return self.bucket.blob(self._name(key)).download_as_bytes()
        except gexc.NotFound:
            raise ArtifactError(f"no artifact object at {self.uri(key)}") from None

    def write(self, key: str, data: bytes, content_type: str) -> None:
        self.bucket.blob(self._name(key)).upload_from_string(data, content_type=content_type)

    def exists(self, key: str) -> bool:
        return self.bucket.blob(self._name(key)).exists()

    def list_prefixes(self, prefix: str) -> list[str]:
        full = self._name(prefix).rstrip("/") + "/"
        iterator = self.client.list_blobs(self.bucket_name, prefix=full, delimiter="/")
        for _ in iterator.pages:  # prefixes fill in while pages are read
            pass
        return sorted(p[len(full) :].strip("/") for p in iterator.prefixes)

    def uri(self, key: str) -> str:
        return f"gs://{self.bucket_name}/{self._name(key)}"


class ArtifactRepository:
    """Versioned models on any `BlobIO`: save, load (verified), list, and the production pointer.

    `profile` decides where the signing key may come from (`signing_key`); reading the pointer needs no key."""

    def __init__(self, blobs: BlobIO, profile: Profile, key: bytes | None = None):
        self.blobs = blobs
        self.profile = profile
        self.key = key  # None: `signing_key(profile)`, resolved when an artifact is saved or loaded

    def signing_key(self) -> bytes:
        return self.key if self.key is not None else signing_key(self.profile)

    def save(self, model: Any, manifest: dict[str, Any], version: str | None = None) -> ModelArtifact:
        version = version or new_version()
        payload, sha = serialize_model(model)
        full_manifest = {
            "version": version,
            "created_at": datetime.now(UTC).isoformat(),
            "model_file": MODEL_FILE,
            "format": "joblib",
            "sha256": sha,
            "size_bytes": len(payload),
            "libraries": library_versions(),
            **manifest,
        }
        # signed as it will be read back (JSON: tuples become lists, datetimes strings)
        full_manifest = sign_manifest(json.loads(json.dumps(full_manifest, default=str)), self.signing_key())
        # Model first, manifest last: a version without a manifest is invisible to loaders.
        self.blobs.write(f"models/{version}/{MODEL_FILE}", payload, "application/octet-stream")
        self.blobs.write(
            f"models/{version}/{MANIFEST_FILE}",
            json.dumps(full_manifest, indent=2, sort_keys=True, default=str).encode(),
            "application/json",
        )
        logger.info(
            "saved model %s (%d bytes, sha256 %s) to %s",
            version,
            len(payload),
            sha[:12],
            self.blobs.uri(f"models/{version}"),
        )
        return ModelArtifact(version, self.blobs.uri(f"models/{version}"), sha, full_manifest)

    def manifest(self, version: str) -> dict[str, Any]:
        return json.loads(self.blobs.read(f"models/{version}/{MANIFEST_FILE}"))

    def load(self, version: str) -> tuple[Any, dict[str, Any]]:
        """(model, manifest): signature, then sha256, verified before the pickle is opened."""
        manifest = self.manifest(version)
        source = self.blobs.uri(f"models/{version}")
        verify_manifest(manifest, source, self.signing_key())
        payload = self.blobs.read(f"models/{version}/{manifest.get('model_file', MODEL_FILE)}")
        model = deserialize_verified(payload, manifest["sha256"], source)
        return model, manifest

    def versions(self) -> list[str]:
        return [v for v in self.blobs.list_prefixes("models") if self.blobs.exists(f"models/{v}/{MANIFEST_FILE}")]

    def artifact(self, version: str) -> ModelArtifact:
        manifest = self.manifest(version)
        return ModelArtifact(version, self.blobs.uri(f"models/{version}"), manifest["sha256"], manifest)

    def production_version(self) -> str | None:
        if not self.blobs.exists(f"models/{PRODUCTION_POINTER}"):
            return None
        return json.loads(self.blobs.read(f"models/{PRODUCTION_POINTER}"))["version"]

    def production_pointer(self) -> dict[str, Any] | None:
        """The pointer itself: version, promoted_at and (when recorded) the previous champion."""
        if not self.blobs.exists(f"models/{PRODUCTION_POINTER}"):
            return None
        return json.loads(self.blobs.read(f"models/{PRODUCTION_POINTER}"))

    def set_production(self, version: str, previous: str | None = None) -> dict[str, Any]:
        """Point production at `version`, remembering the champion it replaces (what a revert goes back to)."""
        self.manifest(version)  # must exist
        current = self.production_version()
        previous = previous if previous is not None else (current if current != version else None)
        pointer = {"version": version, "promoted_at": datetime.now(UTC).isoformat(), "previous": previous}
        self.blobs.write(f"models/{PRODUCTION_POINTER}", json.dumps(pointer).encode(), "application/json")
        return pointer


def blobs_at(uri: str, gcs_client: Any | None = None) -> BlobIO:
    """The object store folder at `uri` (a path, file:// or gs://): the one place a URI picks a backend."""
    parsed = urlparse(uri)
    if parsed.scheme == "gs":
        return GcsBlobs(gcs_client or storage.Client(), parsed.netloc, parsed.path.strip("/"))
    if parsed.scheme in ("", "file"):
        return LocalBlobs(parsed.path if parsed.scheme == "file" else uri)
    raise ArtifactError(f"unsupported artifact URI scheme {parsed.scheme!r} in {uri} (use a path or gs://)")


def repository_for_uri(uri: str, profile: Profile, gcs_client: Any | None = None) -> tuple[ArtifactRepository, str]:
    """(repository, version) for the folder URI of one version in a store (`<root>/models/<version>`)."""
    parsed = urlparse(uri)
    local = parsed.scheme in ("", "file")
    trimmed = (
        str(Path(parsed.path if parsed.scheme == "file" else uri).expanduser().resolve()) if local else uri.rstrip("/")
    )
    root, marker, version = trimmed.rpartition("/models/")
    if not marker or not version or "/" in version:
        raise ArtifactError(f"{uri} is not a model version folder (<root>/models/<version>)")
    return ArtifactRepository(blobs_at(root, gcs_client), profile), version


def load_folder(uri: str, profile: Profile, gcs_client: Any | None = None) -> tuple[Any, dict[str, Any]]:
    """(model, manifest) from any folder holding manifest.json + the model file: signature and sha256 verified
    before unpickling.

    Any folder, not only `<root>/models/<version>`: Vertex AI copies `artifact_uri` to its own bucket and
    hands the container that copy as AIP_STORAGE_URI. The container holds no signing key: the deployment,
    having verified the signature, pins the manifest's digest in LEAD_SCORING_ARTIFACT_MANIFEST_SHA256.
    """
    blobs = blobs_at(uri, gcs_client)
    try:
        manifest = json.loads(blobs.read(MANIFEST_FILE))
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"manifest of {uri} is not JSON: {exc}") from None
    for key in ("version", "sha256"):
        if not manifest.get(key):
            raise ArtifactError(f"manifest of {uri} has no {key!r}")
    pinned = security_settings().manifest_sha256
    if pinned and security_settings().signing_key is None:
        verify_pinned_manifest(manifest, uri, pinned)
    else:
        verify_manifest(manifest, uri, signing_key(profile))
    payload = blobs.read(manifest.get("model_file", MODEL_FILE))
    return deserialize_verified(payload, manifest["sha256"], uri), manifest


def load_artifact(uri: str, profile: Profile, gcs_client: Any | None = None) -> tuple[Any, dict[str, Any]]:
    """Load and verify the model at a version folder URI (what the model server is given)."""
    repo, version = repository_for_uri(uri, profile, gcs_client)
    return repo.load(version)

"""Fixtures of the serving tests: a local artifact store with good and tampered versions, a live server."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from lead_scoring.serving.service import ModelServerProcess
from lead_scoring.settings import Profile
from lead_scoring.stack.ports import free_port
from lead_scoring.storage.artifacts import MODEL_FILE, ArtifactRepository, LocalBlobs
from lead_scoring_tests.serving.records import fit_model

V1, V2, BAD = "m20260101-000000-aaaaaa", "m20260201-000000-bbbbbb", "m20260301-000000-cccccc"
VERTEX_PREDICT = "/v1/endpoints/123/deployedModels/456:predict"
VERTEX_HEALTH = "/healthz"


@pytest.fixture(scope="session")
def store_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """models/V1 and models/V2 (two fitted pipelines) and models/BAD (model.joblib tampered after saving)."""
    root = tmp_path_factory.mktemp("artifacts")
    repo = ArtifactRepository(LocalBlobs(root), Profile.LOCAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        repo.save(fit_model(400, seed=1), {"note": "test"}, version=V1)
        repo.save(fit_model(400, seed=2), {"note": "test"}, version=V2)
        repo.save(fit_model(300, seed=3), {"note": "test"}, version=BAD)
    model_file = root / "models" / BAD / MODEL_FILE
    data = bytearray(model_file.read_bytes())
    data[-10] ^= 0xFF
    model_file.write_bytes(bytes(data))
    return root


@pytest.fixture(scope="session")
def repo(store_root: Path) -> ArtifactRepository:
    return ArtifactRepository(LocalBlobs(store_root), Profile.LOCAL)


@pytest.fixture(scope="session")
def server(repo: ArtifactRepository, tmp_path_factory: pytest.TempPathFactory):
    """A real server process on a free 127.0.0.1 port serving V1, with Vertex routes from AIP_* variables."""
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    server = ModelServerProcess(
        repo.artifact(V1).uri,
        port,
        log,
        allow_swap=False,
        env={"AIP_PREDICT_ROUTE": VERTEX_PREDICT, "AIP_HEALTH_ROUTE": VERTEX_HEALTH},
    )
    try:
        server.start(timeout_s=90)
        yield {"url": server.url, "pid": server.pid, "port": port, "log": log}
    finally:
        server.stop()

"""`model_deployment`: local start / hot swap / refusal / rollback on a real server; Vertex AI with a fake SDK."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import dagster as dg
import httpx
import pytest

from lead_scoring.serving.assets import expected_for, model_deployment
from lead_scoring.serving.resources import (
    SMOKE_RECORD,
    VERTEX_HEALTH_ROUTE,
    VERTEX_PORT,
    VERTEX_PREDICT_ROUTE,
    DeploymentError,
    Expected,
    LocalModelServer,
    VertexAIModelServing,
)
from lead_scoring.serving.service import MODEL_SERVER, ModelServerError, swap_model
from lead_scoring.services import local_stack
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.ports import free_port
from lead_scoring.stack.stack import pid_alive
from lead_scoring.storage.artifacts import ArtifactRepository, ModelArtifact
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring_tests.serving.conftest import BAD, V1, V2


def served_version(url: str) -> str:
    body = {"inputs": [{"name": "RECORD", "datatype": "BYTES", "shape": [1], "data": [json.dumps(SMOKE_RECORD)]}]}
    response = httpx.post(f"{url}/v2/models/lead_scorer/versions/latest/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return json.loads(response.json()["outputs"][0]["data"][0])["model_version"]


@pytest.fixture()
def local_server(tmp_path):
    serving = LocalModelServer(port=free_port(), state_path=str(tmp_path / "serving"))
    yield serving
    serving.stop()


def test_local_start_hot_swap_refusal_and_rollback(local_server: LocalModelServer, store_root, repo) -> None:
    store = LocalModelStore(root=str(store_root))

    first = local_server.deploy(repo.artifact(V1), expected_for(store, repo.artifact(V1)))
    assert first.mode == "started" and first.version == V1 and first.previous_version is None
    pid = local_server.read_state()["pid"]
    assert pid_alive(pid) and served_version(local_server.url) == V1

    second = local_server.deploy(repo.artifact(V2), expected_for(store, repo.artifact(V2)))
    assert second.mode == "hot-swap" and second.previous_version == V1
    assert served_version(local_server.url) == V2
    assert local_server.read_state()["pid"] == pid  # same process, swapped in place

    # a tampered artifact is refused by the server: V2 keeps serving, the reason names the sha256
    bad = repo.artifact(BAD)
    with pytest.raises(DeploymentError, match="sha256") as info:
        local_server.deploy(bad, Expected(version=BAD, score=0))
    assert f"{V2} keeps serving" in str(info.value)
    assert served_version(local_server.url) == V2

    # the new version loads but fails the smoke test: swapped back to the previous one
    wrong = expected_for(store, repo.artifact(V1))
    with pytest.raises(DeploymentError, match=f"rolled back to {V2}"):
        local_server.deploy(repo.artifact(V1), Expected(version=V1, score=(wrong.score + 1) % 101))
    assert served_version(local_server.url) == V2
    assert local_server.read_state()["version"] == V2


def _artifact_asset(artifact: ModelArtifact) -> dg.AssetsDefinition:
    @dg.asset(name="model_artifact")
    def stub() -> ModelArtifact:
        return artifact

    return stub


def test_asset_deploys_sets_production_and_fails_without_touching_it(local_server, store_root, repo) -> None:
    resources = {"model_store": LocalModelStore(root=str(store_root)), "model_serving": local_server}
    result = dg.materialize_to_memory([_artifact_asset(repo.artifact(V1)), model_deployment], resources=resources)
    assert result.success
    metadata = result.asset_materializations_for_node("model_deployment")[0].metadata
    assert metadata["model_version"].value == V1
    assert metadata["endpoint_url"].value == local_server.url
    assert metadata["smoke_test_latency_ms"].value > 0
    assert metadata["smoke_test_score"].value == expected_for(resources["model_store"], repo.artifact(V1)).score
    assert repo.production_version() == V1

    failed = dg.materialize_to_memory([_artifact_asset(repo.artifact(BAD)), model_deployment], resources=resources,
                                      raise_on_error=False)
    assert not failed.success
    assert repo.production_version() == V1  # the expected-score load already refuses the tampered file
    assert served_version(local_server.url) == V1


# -- Vertex AI with a fake aiplatform layer ---------------------------------------------------------
@dataclass
class FakeAiplatform:
    """Stands in for `google.cloud.aiplatform`: records every call, simulates one endpoint."""

    traffic: dict[str, int] = field(default_factory=dict)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    predict_version: str | None = None  # the version the endpoint answers with (None: the newest deployed)
    predict_score: int | None = None
    fail_upload: bool = False
    deployed_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        fake = self

        class Model:
            @staticmethod
            def upload(**kwargs):
                fake.calls.append(("Model.upload", kwargs))
                if fake.fail_upload:
                    raise RuntimeError("quota exceeded")
                return SimpleNamespace(resource_name=f"projects/p/locations/r/models/42@{len(fake.calls)}",
                                       version=kwargs["version_aliases"][0])

        class Endpoint:
            def __init__(self, endpoint_name):
                fake.calls.append(("Endpoint", {"endpoint_name": endpoint_name}))
                self.resource_name = f"projects/p/locations/r/endpoints/{endpoint_name}"

            @property
            def traffic_split(self):
                return dict(fake.traffic)

            def list_models(self):
                return [SimpleNamespace(id=i, display_name=fake.deployed_names[i]) for i in fake.traffic]

            def deploy(self, **kwargs):
                fake.calls.append(("Endpoint.deploy", kwargs))
                new_id = f"d{len(fake.deployed_names) + 1}"
                pct = kwargs["traffic_percentage"]
                rest = 100 - pct
                total_old = sum(fake.traffic.values()) or 1
                fake.traffic = {k: round(v * rest / total_old) for k, v in fake.traffic.items()}
                fake.traffic[new_id] = pct
                fake.deployed_names[new_id] = kwargs["deployed_model_display_name"]
                fake.versions = {**getattr(fake, "versions", {}), new_id: kwargs["model"].version}

            def update(self, traffic_split):
                fake.calls.append(("Endpoint.update", {"traffic_split": dict(traffic_split)}))
                assert sum(traffic_split.values()) == 100
                fake.traffic = dict(traffic_split)

            def undeploy(self, deployed_model_id, sync=True):
                fake.calls.append(("Endpoint.undeploy", {"deployed_model_id": deployed_model_id}))
                assert fake.traffic.get(deployed_model_id, 0) == 0 or len(fake.traffic) == 1, "undeploy with traffic"
                fake.traffic.pop(deployed_model_id)

            def predict(self, instances):
                fake.calls.append(("Endpoint.predict", {"instances": instances}))
                top = max(fake.traffic, key=fake.traffic.get)
                version = fake.predict_version or fake.versions[top]
                return SimpleNamespace(predictions=[{"score": fake.predict_score, "reasons": ["+x"],
                                                     "model_version": version}])

        self.Model = Model
        self.Endpoint = Endpoint

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


def vertex_with(fake: FakeAiplatform, **overrides) -> VertexAIModelServing:
    class FakeVertex(VertexAIModelServing):
        def aiplatform(self):
            return fake

    config = dict(project="p", region="europe-west4", endpoint_id="123", image_uri="europe-docker.pkg.dev/p/r/ls:1",
                  parent_model="projects/p/locations/r/models/42", canary_percent=20)
    return FakeVertex(**{**config, **overrides})


def gcs_artifact(version: str) -> ModelArtifact:
    return ModelArtifact(version, f"gs://bucket/lead-scoring/models/{version}", "ab" * 32, {})


def test_vertex_first_deploy_then_canary_promote_and_undeploy() -> None:
    fake = FakeAiplatform(predict_score=55)
    serving = vertex_with(fake)

    first = serving.deploy(gcs_artifact("m1"), Expected(version="m1", score=55))
    assert fake.names() == ["Endpoint", "Model.upload", "Endpoint.deploy", "Endpoint.predict"]
    upload = fake.calls[1][1]
    assert upload["parent_model"] == "projects/p/locations/r/models/42"
    assert upload["artifact_uri"] == "gs://bucket/lead-scoring/models/m1"
    assert upload["serving_container_image_uri"] == "europe-docker.pkg.dev/p/r/ls:1"
    assert upload["serving_container_predict_route"] == VERTEX_PREDICT_ROUTE == "/predict"
    assert upload["serving_container_health_route"] == VERTEX_HEALTH_ROUTE == "/health"
    assert upload["serving_container_ports"] == [VERTEX_PORT]
    assert upload["version_aliases"] == ["m1"] and upload["is_default_version"] is False
    assert upload["serving_container_environment_variables"]["LEAD_SCORING_PROFILE"] == "gcp"
    assert fake.calls[2][1]["traffic_percentage"] == 100  # nothing to canary against on an empty endpoint
    assert fake.calls[3][1]["instances"] == [SMOKE_RECORD]
    assert first.previous_version is None and fake.traffic == {"d1": 100}

    fake.calls.clear()
    second = serving.deploy(gcs_artifact("m2"), Expected(version="m2", score=55))
    assert fake.names() == ["Endpoint", "Model.upload", "Endpoint.deploy", "Endpoint.update", "Endpoint.predict",
                            "Endpoint.undeploy"]
    assert fake.calls[2][1]["traffic_percentage"] == 20
    assert fake.calls[2][1]["deployed_model_display_name"] == "lead-scorer-m2"
    assert fake.calls[3][1]["traffic_split"] == {"d2": 100, "d1": 0}
    assert fake.calls[5][1]["deployed_model_id"] == "d1"
    assert fake.traffic == {"d2": 100}
    assert second.previous_version == "m1" and second.details["canary_percent"] == 20
    assert second.url == "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/r/endpoints/123:predict"


def test_vertex_failed_smoke_test_restores_traffic_and_undeploys_new() -> None:
    fake = FakeAiplatform(predict_score=55)
    serving = vertex_with(fake)
    serving.deploy(gcs_artifact("m1"), Expected(version="m1", score=55))
    fake.calls.clear()
    fake.predict_score = 99  # the new version answers wrongly

    with pytest.raises(DeploymentError, match="smoke test score 99 != 55"):
        serving.deploy(gcs_artifact("m2"), Expected(version="m2", score=55))
    assert fake.names() == ["Endpoint", "Model.upload", "Endpoint.deploy", "Endpoint.update", "Endpoint.predict",
                            "Endpoint.update", "Endpoint.undeploy"]
    assert fake.calls[5][1]["traffic_split"] == {"d1": 100}
    assert fake.calls[6][1]["deployed_model_id"] == "d2"
    assert fake.traffic == {"d1": 100}


def test_vertex_upload_failure_leaves_endpoint_unchanged() -> None:
    fake = FakeAiplatform(predict_score=55, fail_upload=True)
    with pytest.raises(DeploymentError, match="Model.upload failed: quota exceeded; endpoint unchanged"):
        vertex_with(fake).deploy(gcs_artifact("m1"), Expected(version="m1", score=55))
    assert fake.names() == ["Endpoint", "Model.upload"] and fake.traffic == {}


def test_vertex_refuses_a_local_artifact(repo: ArtifactRepository) -> None:
    fake = FakeAiplatform()
    with pytest.raises(DeploymentError, match="needs the artifact on GCS"):
        vertex_with(fake).deploy(repo.artifact(V1), Expected(version=V1, score=1))
    assert fake.calls == []


def test_hot_swap_needs_a_server_started_with_allow_swap(server) -> None:
    with pytest.raises(ModelServerError, match="without --allow-swap"):
        swap_model(server["url"], V2)
    assert served_version(server["url"]) == V1


def test_a_server_on_the_stack_port_joins_the_stack(store_root, repo, monkeypatch) -> None:
    """`scripts/up` starts the server through `model_deployment`: `stack status/down` must manage it too."""
    port = free_port()
    monkeypatch.setenv("LEAD_SCORING_MODEL_PORT", str(port))
    serving = LocalModelServer(port=port)
    store = LocalModelStore(root=str(store_root))
    serving.deploy(repo.artifact(V1), expected_for(store, repo.artifact(V1)))
    pid = serving.read_state()["pid"]
    stack = local_stack(StackConfig.from_env())
    try:
        [status] = stack.status([MODEL_SERVER])
        assert status.pid == pid and status.state == "healthy"
        assert stack.down([MODEL_SERVER]) == [MODEL_SERVER]
        assert not pid_alive(pid)
    finally:
        serving.stop()

"""`model_deployment`: local start / hot swap / refusal / rollback on a real server; Vertex AI through the real
SDK against a loopback gRPC Vertex AI (the request protos it sends are asserted)."""

from __future__ import annotations

import json

import dagster as dg
import grpc
import httpx
import pytest

from lead_scoring.contract.samples import SMOKE_RECORD
from lead_scoring.services import local_stack
from lead_scoring.serving.assets import expected_for, model_deployment
from lead_scoring.serving.deployment import DeploymentError, Expected
from lead_scoring.serving.local import LocalModelServer
from lead_scoring.serving.service import MODEL_SERVER, ModelServerError, swap_model
from lead_scoring.serving.vertex import VERTEX_HEALTH_ROUTE, VERTEX_PORT, VERTEX_PREDICT_ROUTE, VertexAIModelServing
from lead_scoring.settings import Profile
from lead_scoring.stack.config import StackConfig
from lead_scoring.stack.ports import free_port
from lead_scoring.stack.service_status import pid_alive
from lead_scoring.storage.artifacts import ArtifactRepository, ModelArtifact, key_id, signing_key
from lead_scoring.storage.resources import LocalModelStore
from lead_scoring_tests.serving.conftest import BAD, V1, V2
from lead_scoring_tests.serving.fake_vertex import MODEL as VERTEX_MODEL
from lead_scoring_tests.serving.fake_vertex import FakeVertex


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
    assert metadata["artifact_signing_key_id"].value == key_id(signing_key(Profile.LOCAL))
    assert metadata["artifact_signing_key_id"].value == repo.manifest(V1)["signature"]["key_id"]

    failed = dg.materialize_to_memory(
        [_artifact_asset(repo.artifact(BAD)), model_deployment], resources=resources, raise_on_error=False
    )
    assert not failed.success
    assert repo.production_version() == V1  # the expected-score load already refuses the tampered file
    assert served_version(local_server.url) == V1


# -- Vertex AI: the real google-cloud-aiplatform SDK against a loopback gRPC Vertex AI ---------------
@pytest.fixture()
def vertex(monkeypatch):
    """A fake Vertex AI on 127.0.0.1 that the real SDK talks gRPC to (lead_scoring_tests/serving/fake_vertex.py)."""
    from google.api_core import grpc_helpers
    from google.cloud.aiplatform import initializer

    fake = FakeVertex().start()
    monkeypatch.setattr(grpc_helpers, "create_channel", lambda target, *a, **kw: grpc.insecure_channel(target))
    saved = dict(vars(initializer.global_config))  # aiplatform.init is process-global: put it back afterwards
    yield fake
    fake.stop()
    vars(initializer.global_config).clear()
    vars(initializer.global_config).update(saved)


def vertex_serving(fake: FakeVertex, **overrides) -> VertexAIModelServing:
    from google.auth.credentials import AnonymousCredentials

    config = dict(
        project="p",
        region="europe-west4",
        endpoint_id="123",
        image_uri="europe-docker.pkg.dev/p/r/ls:1",
        parent_model=VERTEX_MODEL,
        canary_percent=20,
    )
    return VertexAIModelServing(**{**config, **overrides}).with_client_options(
        credentials=AnonymousCredentials(), api_endpoint=f"127.0.0.1:{fake.port}"
    )


def gcs_artifact(version: str) -> ModelArtifact:
    return ModelArtifact(version, f"gs://bucket/lead-scoring/models/{version}", "ab" * 32, {})


def test_vertex_first_deploy_then_canary_promote_and_undeploy(vertex: FakeVertex) -> None:
    serving = vertex_serving(vertex)

    first = serving.deploy(gcs_artifact("m1"), Expected(version="m1", score=55))
    assert vertex.names() == ["UploadModel", "DeployModel", "Predict"]
    [upload] = vertex.requests("UploadModel")  # the request proto the SDK put on the wire
    assert upload.parent == "projects/p/locations/europe-west4" and upload.parent_model == VERTEX_MODEL
    model = upload.model
    assert model.artifact_uri == "gs://bucket/lead-scoring/models/m1"
    assert model.container_spec.image_uri == "europe-docker.pkg.dev/p/r/ls:1"
    assert model.container_spec.predict_route == VERTEX_PREDICT_ROUTE == "/predict"
    assert model.container_spec.health_route == VERTEX_HEALTH_ROUTE == "/health"
    assert [p.container_port for p in model.container_spec.ports] == [VERTEX_PORT]
    assert {e.name: e.value for e in model.container_spec.env}["LEAD_SCORING_PROFILE"] == "gcp"
    assert list(model.version_aliases) == ["m1"] and "default" not in model.version_aliases
    assert dict(model.labels) == {"lead_scoring_version": "m1"}
    [deploy] = vertex.requests("DeployModel")
    assert dict(deploy.traffic_split) == {"0": 100}  # nothing to canary against on an empty endpoint
    assert deploy.deployed_model.model == f"{VERTEX_MODEL}@1"
    assert deploy.deployed_model.dedicated_resources.machine_spec.machine_type == "n1-standard-2"
    assert (
        deploy.deployed_model.dedicated_resources.min_replica_count,
        deploy.deployed_model.dedicated_resources.max_replica_count,
    ) == (1, 2)
    [predict] = vertex.requests("Predict")
    sent = type(predict).to_dict(predict)["instances"]
    assert sent == [
        {
            k: (float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v)
            for k, v in SMOKE_RECORD.items()
        }
    ]  # JSON numbers travel as protobuf doubles
    assert first.previous_version is None and vertex.traffic == {"d1": 100}

    vertex.calls.clear()
    second = serving.deploy(gcs_artifact("m2"), Expected(version="m2", score=55))
    assert vertex.names() == ["UploadModel", "DeployModel", "UpdateEndpoint", "Predict", "UndeployModel"]
    [deploy] = vertex.requests("DeployModel")
    assert dict(deploy.traffic_split) == {"d1": 80, "0": 20}
    assert deploy.deployed_model.display_name == "lead-scorer-m2"
    [update] = vertex.requests("UpdateEndpoint")
    assert dict(update.endpoint.traffic_split) == {"d2": 100, "d1": 0}
    assert list(update.update_mask.paths) == ["traffic_split"]
    [undeploy] = vertex.requests("UndeployModel")
    assert undeploy.deployed_model_id == "d1"
    assert vertex.traffic == {"d2": 100}
    assert second.previous_version == "m1" and second.details["canary_percent"] == 20
    assert (
        second.url
        == "https://europe-west4-aiplatform.googleapis.com/v1/projects/p/locations/europe-west4/endpoints/123:predict"
    )


def test_vertex_failed_smoke_test_restores_traffic_and_undeploys_new(vertex: FakeVertex) -> None:
    serving = vertex_serving(vertex)
    serving.deploy(gcs_artifact("m1"), Expected(version="m1", score=55))
    vertex.calls.clear()
    vertex.predict_score = 99  # the new version answers wrongly

    with pytest.raises(DeploymentError, match="smoke test score 99 != 55"):
        serving.deploy(gcs_artifact("m2"), Expected(version="m2", score=55))
    assert vertex.names() == [
        "UploadModel",
        "DeployModel",
        "UpdateEndpoint",
        "Predict",
        "UpdateEndpoint",
        "UndeployModel",
    ]
    assert dict(vertex.requests("UpdateEndpoint")[1].endpoint.traffic_split) == {"d1": 100}
    assert vertex.requests("UndeployModel")[0].deployed_model_id == "d2"
    assert vertex.traffic == {"d1": 100}


def test_vertex_upload_failure_leaves_endpoint_unchanged(vertex: FakeVertex) -> None:
    vertex.fail_upload = grpc.StatusCode.RESOURCE_EXHAUSTED
    with pytest.raises(DeploymentError, match="Model.upload failed: 429 quota exceeded; endpoint unchanged"):
        vertex_serving(vertex).deploy(gcs_artifact("m1"), Expected(version="m1", score=55))
    assert vertex.names() == ["UploadModel"] and vertex.traffic == {}


def test_vertex_refuses_a_local_artifact(vertex: FakeVertex, repo: ArtifactRepository) -> None:
    with pytest.raises(DeploymentError, match="needs the artifact on GCS"):
        vertex_serving(vertex).deploy(repo.artifact(V1), Expected(version=V1, score=1))
    assert vertex.calls == []


def test_vertex_calls_match_the_sdk_signatures(vertex: FakeVertex) -> None:
    """Every keyword VertexAIModelServing passes exists in the installed SDK's signature (no silent typo)."""
    import ast
    import inspect

    from google.cloud import aiplatform

    import lead_scoring.serving.vertex as module

    serving = vertex_serving(vertex)
    artifact = gcs_artifact("m1")
    assert set(serving.upload_kwargs(artifact)) <= set(inspect.signature(aiplatform.Model.upload).parameters)
    assert set(serving.deploy_kwargs(artifact, 10)) | {"model"} <= set(
        inspect.signature(aiplatform.Endpoint.deploy).parameters
    )
    wanted = {
        "update": aiplatform.Endpoint.update,
        "predict": aiplatform.Endpoint.predict,
        "undeploy": aiplatform.Endpoint.undeploy,
    }
    seen = set()
    for node in ast.walk(ast.parse(inspect.getsource(module.VertexAIModelServing))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in wanted:
            params = inspect.signature(wanted[node.func.attr]).parameters
            for kw in node.keywords:
                assert kw.arg in params, f"{node.func.attr}({kw.arg}=...) is not in the SDK's signature"
            seen.add(node.func.attr)
    assert seen == set(wanted)


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

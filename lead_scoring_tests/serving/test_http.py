"""HTTP tests against a real server process on a free 127.0.0.1 port: V1, V2 (versioned), Vertex, errors;
and of the adapter's app in-process (what no route of the live server can reach)."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import socket

import httpx
import psutil
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lead_scoring.contract.hashing import features_hash
from lead_scoring.serving.model import LeadScoringModel
from lead_scoring.serving.server import (
    KServeRestAdapter,
    LeadScoringModelServer,
    ServerConfig,
    add_protocol_routes,
    client_error_handlers,
)
from lead_scoring.settings import Profile
from lead_scoring.storage.artifacts import ArtifactRepository
from lead_scoring.training.model import LeadScorer
from lead_scoring_tests.serving.conftest import V1, VERTEX_HEALTH, VERTEX_PREDICT
from lead_scoring_tests.serving.records import make_records

NAME = "lead_scorer"


@pytest.fixture(scope="module")
def client(server):
    with httpx.Client(base_url=server["url"], timeout=10.0) as c:
        yield c


@pytest.fixture(scope="module")
def reference(repo: ArtifactRepository) -> LeadScorer:
    pipeline, manifest = repo.load(V1)
    return LeadScorer(pipeline, manifest["version"])


def flink_body(record, input_name="RECORD", output_name="SCORE") -> dict:
    """What Flink 2.3's triton provider sends for one row of a STRING column (names upper-cased)."""
    return {
        "inputs": [{"name": input_name, "datatype": "BYTES", "shape": [1], "data": [json.dumps(record)]}],
        "outputs": [{"name": output_name}],
    }


def test_binds_loopback_only_and_no_grpc(server) -> None:
    listening = [c for c in psutil.Process(server["pid"]).connections(kind="inet") if c.status == "LISTEN"]
    assert [(c.laddr.ip, c.laddr.port) for c in listening] == [("127.0.0.1", server["port"])]


def test_health_routes(client: httpx.Client) -> None:
    assert client.get("/v2/health/ready").status_code == 200
    assert client.get(f"/v1/models/{NAME}").json()["ready"] is True
    assert client.get(f"/v2/models/{NAME}/ready").json()["model_version"] == V1
    assert client.get(f"/v2/models/{NAME}/versions/latest/ready").status_code == 200
    assert client.get(VERTEX_HEALTH).json() == {"ready": True, "model_version": V1}
    assert client.get("/v1/models/other").status_code == 404


def test_repository_api_cannot_unload_the_model(client: httpx.Client) -> None:
    assert client.post(f"/v2/repository/models/{NAME}/unload").status_code == 405
    assert client.post(f"/v2/repository/models/{NAME}/load").status_code == 405
    assert client.get(f"/v2/models/{NAME}/ready").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/v2/models/{NAME}/infer",
        f"/v2/models/{NAME}/versions/latest/infer",
        f"/v2/models/{NAME}/versions/{V1}/infer",
        f"/v2/models/{NAME}/versions/1/infer",
    ],
)
def test_v2_flink_request(client: httpx.Client, reference: LeadScorer, path: str) -> None:
    record = make_records(1, seed=21)[0][0]
    response = client.post(path, json=flink_body(record))
    assert response.status_code == 200, response.text
    outputs = response.json()["outputs"]
    assert len(outputs) == 1 and outputs[0]["datatype"] == "BYTES" and outputs[0]["name"] == "SCORE"
    result = json.loads(outputs[0]["data"][0])
    want = reference.score_records([record])[0]
    assert result == {
        "score": want.score,
        "reasons": want.reasons,
        "reasons_text": "; ".join(want.reasons),
        "model_version": V1,
        "grade": want.grade,
        "features_hash": features_hash(record),
    }


def test_v2_names_match_without_regard_to_case(client: httpx.Client) -> None:
    record = make_records(1, seed=22)[0][0]
    for inp, out in [("record", "score"), ("Record", "Score"), ("RECORD", "score")]:
        response = client.post(f"/v2/models/{NAME}/versions/latest/infer", json=flink_body(record, inp, out))
        assert response.status_code == 200 and response.json()["outputs"][0]["name"] == out


def test_v2_unknown_version_and_model(client: httpx.Client) -> None:
    record = make_records(1, seed=23)[0][0]
    assert client.post(f"/v2/models/{NAME}/versions/m1999/infer", json=flink_body(record)).status_code == 404
    assert client.post("/v2/models/other/infer", json=flink_body(record)).status_code == 404


def test_v2_gzip_body(client: httpx.Client) -> None:
    record = make_records(1, seed=24)[0][0]
    body = gzip.compress(json.dumps(flink_body(record)).encode())
    response = client.post(
        f"/v2/models/{NAME}/versions/latest/infer",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert response.status_code == 200


def test_v2_answer_carries_the_request_id(client: httpx.Client) -> None:
    body = dict(flink_body(make_records(1, seed=28)[0][0]), id="req-7")
    assert client.post(f"/v2/models/{NAME}/versions/latest/infer", json=body).json()["id"] == "req-7"


def test_v2_metadata_and_kserves_own_routes(client: httpx.Client) -> None:
    for path in (f"/v2/models/{NAME}", f"/v2/models/{NAME}/versions/latest"):
        body = client.get(path).json()
        assert body["name"] == NAME and body["versions"] == [V1]
        tensors = [(t["name"], t["datatype"]) for t in body["inputs"] + body["outputs"]]
        assert tensors == [("record", "BYTES"), ("score", "BYTES")]
    assert client.get("/v2/models/other").status_code == 404
    assert client.get("/v2/models").json() == {"models": [NAME]}
    assert client.get("/v1/models").json() == {"models": [NAME]}
    assert client.get("/").json() == {"status": "alive"}
    assert client.get("/metrics").status_code == 200


def _predict_count(client: httpx.Client) -> float:
    found = re.findall(
        rf'^request_predict_seconds_count{{model_name="{NAME}"}} ([0-9.e+]+)$', client.get("/metrics").text, re.M
    )
    return float(found[0]) if found else 0.0


def test_every_scored_request_is_counted_in_kserves_metrics(client: httpx.Client) -> None:
    """Scoring runs on threads, off kserve's `__call__`: it still times each request into kserve's histogram
    (operators and the cluster test read `request_predict_seconds_count` to see which replica serves)."""
    before = _predict_count(client)
    record = make_records(1, seed=22)[0][0]
    assert client.post(f"/v2/models/{NAME}/infer", json=flink_body(record)).status_code == 200
    assert client.post(f"/v1/models/{NAME}:predict", json={"instances": [record]}).status_code == 200
    assert _predict_count(client) == before + 2


def test_v1_batch_with_bad_rows(client: httpx.Client, reference: LeadScorer) -> None:
    records, _ = make_records(100, seed=25)
    instances = list(records)
    instances[7] = dict(records[7], DoNotCall="yes")
    instances[50] = {"Id": "x"}
    response = client.post(f"/v1/models/{NAME}:predict", json={"instances": instances})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 100
    assert predictions[7]["errors"] == [{"field": "DoNotCall", "reason": "expected a boolean, got string"}]
    assert {e["field"] for e in predictions[50]["errors"]} == {"_ObjectType", "LastModifiedDate"}
    good = [i for i in range(100) if i not in (7, 50)]
    want = reference.score_records([records[i] for i in good])
    assert [predictions[i]["score"] for i in good] == [w.score for w in want]


def test_vertex_predict_route_serves_v1_rows(client: httpx.Client) -> None:
    records, _ = make_records(3, seed=26)
    response = client.post(VERTEX_PREDICT, json={"instances": records, "parameters": {}})
    assert response.status_code == 200
    assert [p["model_version"] for p in response.json()["predictions"]] == [V1] * 3


@pytest.mark.parametrize(
    "path",
    [
        f"/v1/models/{NAME}:predict",
        VERTEX_PREDICT,
        f"/v2/models/{NAME}/infer",
        f"/v2/models/{NAME}/versions/latest/infer",
    ],
)
@pytest.mark.parametrize(
    "body, field",
    [
        (b"{not json", "$"),
        (b"", "$"),
        (b"[]", "$"),
        (b"\xff\xfe", "$"),
    ],
)
def test_malformed_bodies_are_400(client: httpx.Client, path: str, body: bytes, field: str) -> None:
    response = client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["errors"][0]["field"].startswith(field)


def test_missing_required_field_is_400_naming_it(client: httpx.Client) -> None:
    record = make_records(1, seed=27)[0][0]
    del record["LastModifiedDate"]
    response = client.post(f"/v2/models/{NAME}/versions/latest/infer", json=flink_body(record))
    assert response.status_code == 400
    assert response.json()["errors"] == [{"field": "record[0].LastModifiedDate", "reason": "required field is missing"}]
    response = client.post(f"/v1/models/{NAME}:predict", json={"instances": [record]})
    assert response.status_code == 400 and "instances[0].LastModifiedDate" in response.json()["error"]


@pytest.mark.parametrize(
    "body, field",
    [
        ({"inputs": "x"}, "inputs"),
        ({"inputs": [{"name": "RECORD"}]}, "inputs[0].datatype"),
        ({"inputs": [{"name": "RECORD", "datatype": "BYTES", "shape": ["1"], "data": ["{}"]}]}, "inputs[0].shape"),
        ({"inputs": [{"name": "RECORD", "datatype": "BYTES", "shape": [1], "data": "{}"}]}, "inputs[0].data"),
        ({"inputs": [{"name": "RECORD", "datatype": "INT64", "shape": [1], "data": [1]}]}, "inputs.RECORD.datatype"),
        ({"inputs": [{"name": "X", "datatype": "BYTES", "shape": [1], "data": ["{}"]}]}, "inputs"),
    ],
)
def test_v2_wrong_types_are_400(client: httpx.Client, body: dict, field: str) -> None:
    response = client.post(f"/v2/models/{NAME}/versions/latest/infer", json=body)
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field


def test_payload_over_limit_is_413(client: httpx.Client, server) -> None:
    big = b"x" * 1_600_000
    for path in (f"/v1/models/{NAME}:predict", f"/v2/models/{NAME}/versions/latest/infer", VERTEX_PREDICT):
        assert client.post(path, content=big).status_code == 413

    def chunks():  # no Content-Length: the limit must still hold while streaming
        for _ in range(40):
            yield b"x" * 50_000

    assert client.post(f"/v1/models/{NAME}:predict", content=chunks()).status_code == 413
    assert client.get("/v2/health/ready").status_code == 200  # and the server is fine


def test_no_line_per_request_and_no_pii_in_the_log(client: httpx.Client, server) -> None:
    records, _ = make_records(2, seed=29)
    marker = "pii-marker-29@example.com"
    rows = [dict(records[0], Email=marker), dict(records[1], Email=marker, DoNotCall="yes")]
    assert client.post(f"/v1/models/{NAME}:predict", json={"instances": rows}).status_code == 200
    assert client.post(f"/v2/models/{NAME}/infer", json=flink_body(rows[1])).status_code == 400
    log = server["log"].read_text()
    assert marker not in log
    assert f"POST /v1/models/{NAME}:predict" not in log and f"POST /v2/models/{NAME}/infer" not in log


def test_adapter_app_routes_ours_first_and_never_answers_422(repo: ArtifactRepository) -> None:
    from fastapi import FastAPI

    config = ServerConfig()
    server = LeadScoringModelServer(config)
    model = LeadScoringModel(config.model_name, repo.artifact(V1).uri, Profile.LOCAL)
    assert model.load()
    server.serve_model(model)

    def add_routes(app: FastAPI) -> None:
        add_protocol_routes(app, server)

        async def typed(count: int) -> dict:  # a typed parameter, as a future kserve route might have
            return {"count": count}

        app.add_api_route("/typed", typed, methods=["GET"])

    app = KServeRestAdapter(server, add_routes, "127.0.0.1", 0, client_error_handlers(1000), 1000).app()

    async def calls() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return [
                await c.get("/typed", params={"count": "many"}),
                await c.get(f"/v2/models/{NAME}/versions/latest/ready"),  # kserve's own answers 501
                await c.post(f"/v1/models/{NAME}:predict", content=b"x" * 1001),
                await c.get("/v2/health/live"),
            ]

    typed, ready, too_large, live = asyncio.run(calls())
    assert typed.status_code == 400 and typed.json()["errors"][0]["field"] == "count"
    assert ready.json()["model_version"] == V1
    assert too_large.status_code == 413
    assert live.json() == {"live": True}


# -- fuzzing: no client mistake may produce a 5xx ---------------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
FUZZ_FIELDS = [
    "Id",
    "_ObjectType",
    "_EventType",
    "LastModifiedDate",
    "Total_Visits__c",
    "Time_On_Website__c",
    "HasOptedOutOfEmail",
    "LeadSource",
    "Occupation__c",
    "Email",
    "Country",
    "Unknown__c",
]


@st.composite
def mutated_records(draw):
    record = dict(make_records(1, seed=draw(st.integers(0, 50)))[0][0])
    for name in draw(st.lists(st.sampled_from(FUZZ_FIELDS), max_size=3, unique=True)):
        if draw(st.booleans()):
            record.pop(name, None)
        else:
            record[name] = draw(json_values)
    return record


def _assert_client_error_or_ok(response: httpx.Response) -> None:
    assert response.status_code in (200, 400), (response.status_code, response.text[:300])
    if response.status_code == 400:
        body = response.json()
        assert body["errors"] and all(isinstance(e["field"], str) and e["field"] for e in body["errors"])


FUZZ = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))


@FUZZ
@given(instances=st.lists(mutated_records() | json_values, min_size=1, max_size=5))
def test_fuzz_v1(client: httpx.Client, instances) -> None:
    response = client.post(f"/v1/models/{NAME}:predict", json={"instances": instances})
    _assert_client_error_or_ok(response)
    if response.status_code == 200:
        assert len(response.json()["predictions"]) == len(instances)


@FUZZ
@given(record=mutated_records(), as_text=st.booleans())
def test_fuzz_v2_record(client: httpx.Client, record, as_text: bool) -> None:
    body = flink_body(record)
    if not as_text:
        body["inputs"][0]["data"] = [record]  # an object where a string is expected: still no 5xx
    _assert_client_error_or_ok(client.post(f"/v2/models/{NAME}/versions/latest/infer", json=body))


@FUZZ
@given(body=json_values | st.dictionaries(st.sampled_from(["inputs", "outputs", "id", "parameters"]), json_values))
def test_fuzz_v2_envelope(client: httpx.Client, body) -> None:
    _assert_client_error_or_ok(client.post(f"/v2/models/{NAME}/infer", json=body))


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzz_raw_bytes(client: httpx.Client, raw: bytes) -> None:
    for path in (f"/v1/models/{NAME}:predict", f"/v2/models/{NAME}/versions/latest/infer"):
        _assert_client_error_or_ok(client.post(path, content=raw, headers={"content-type": "application/json"}))


def test_server_is_not_reachable_on_other_interfaces(server) -> None:
    addresses = [
        a.address
        for addrs in psutil.net_if_addrs().values()
        for a in addrs
        if a.family == socket.AF_INET and not a.address.startswith("127.")
    ]
    if not addresses:
        pytest.skip("this machine has no non-loopback IPv4 address")
    for address in addresses:
        with socket.socket() as sock:
            sock.settimeout(1.0)
            assert sock.connect_ex((address, server["port"])) != 0, address

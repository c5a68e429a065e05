"""Security of the model server (issue 33): admin routes behind a token, no local path in an answer, read
timeouts and a concurrency limit, scoring off the event loop, V2 shape and number bounds, and no 5xx for
any V2 body (a property test, as `test_http.test_fuzz_v1` is for V1)."""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lead_scoring.serving.model import LeadScoringModel
from lead_scoring.serving.server import (
    MAX_BODY_BYTES,
    KServeRestAdapter,
    LeadScoringModelServer,
    ServerConfig,
    add_protocol_routes,
    client_error_handlers,
    run_server,
)
from lead_scoring.serving.service import ModelServerError, ModelServerProcess, swap_model
from lead_scoring.serving.vertex import VertexAIModelServing
from lead_scoring.settings import Profile
from lead_scoring.stack.ports import free_port
from lead_scoring.storage.artifacts import ArtifactRepository, manifest_digest
from lead_scoring_tests.serving.conftest import BAD, V1, V2
from lead_scoring_tests.serving.records import make_records

NAME = "lead_scorer"
TOKEN = "test-admin-token-0123456789abcdef"


def record_text(**changes) -> str:
    record = dict(make_records(1, seed=3)[0][0])
    record.update(changes)
    return json.dumps(record)


def record_with_raw(field: str, raw: str) -> str:
    """A record whose `field` holds `raw` JSON text verbatim (e.g. an integer of 400 digits)."""
    return record_text(**{field: "__RAW__"}).replace('"__RAW__"', raw)


def v2_body(*elements: str, shape: list[int] | None = None) -> dict:
    return {
        "inputs": [
            {
                "name": "RECORD",
                "datatype": "BYTES",
                "shape": shape if shape is not None else [len(elements)],
                "data": list(elements),
            }
        ]
    }


# -- admin routes ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def admin_server(repo: ArtifactRepository, tmp_path_factory: pytest.TempPathFactory):
    log = tmp_path_factory.mktemp("admin") / "server.log"
    server = ModelServerProcess(repo.artifact(V1).uri, free_port(), log, allow_swap=True, token=TOKEN)
    with server:
        yield server


def test_admin_routes_refuse_requests_without_the_token(admin_server: ModelServerProcess) -> None:
    url = admin_server.url
    for headers in (
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": f"Bearer {TOKEN}x"},
    ):
        for path, body in (
            (f"/admin/models/{NAME}/swap", {"version": V2}),
            (f"/admin/models/{NAME}_challenger/load", {"version": V2}),
            (f"/admin/models/{NAME}_challenger/unload", None),
        ):
            response = httpx.post(url + path, json=body, headers=headers, timeout=10)
            assert response.status_code == 401, (path, headers, response.text)
            assert "LEAD_SCORING_MODEL_ADMIN_TOKEN" in response.json()["error"] and TOKEN not in response.text
    with pytest.raises(ModelServerError, match="refused the admin token"):
        swap_model(url, V2, token="not-the-token")
    assert httpx.get(f"{url}/v2/models/{NAME}/ready", timeout=5).json()["model_version"] == V1  # untouched
    assert TOKEN not in admin_server.log_path.read_text()


def test_admin_swap_with_the_token_and_errors_without_local_paths(
    admin_server: ModelServerProcess, store_root: Path
) -> None:
    url = admin_server.url
    assert swap_model(url, V2, token=TOKEN)["serving"] == V2
    try:
        for version in (BAD, "m29990101-000000-ffffff"):  # tampered; absent from the store
            response = httpx.post(
                f"{url}/admin/models/{NAME}/swap",
                json={"version": version},
                timeout=30,
                headers={"Authorization": f"Bearer {TOKEN}"},
            )
            assert response.status_code == 409, response.text
            assert str(store_root) not in response.text and "/tmp" not in response.text, response.text
            assert response.json()["serving"] == V2
    finally:
        swap_model(url, V1, token=TOKEN)


def test_allow_swap_without_a_token_refuses_to_start(repo: ArtifactRepository, monkeypatch, caplog) -> None:
    monkeypatch.delenv("LEAD_SCORING_MODEL_ADMIN_TOKEN", raising=False)
    config = ServerConfig.from_env(Profile.LOCAL, port=free_port(), allow_swap=True)
    assert config.admin_token is None and "LEAD_SCORING_MODEL_ADMIN_TOKEN" in (config.admin_problem() or "")
    with caplog.at_level(logging.ERROR):
        assert run_server(repo.artifact(V1).uri, config) == 1
    assert "LEAD_SCORING_MODEL_ADMIN_TOKEN" in caplog.text
    short = ServerConfig(allow_swap=True, admin_token="short")
    assert "too short" in (short.admin_problem() or "") and "short" not in repr(short)
    monkeypatch.setenv("LEAD_SCORING_MODEL_ADMIN_TOKEN", TOKEN)
    configured = ServerConfig.from_env(Profile.LOCAL, allow_swap=True)
    assert configured.admin_token == TOKEN and configured.admin_problem() is None and TOKEN not in repr(configured)


# -- in-process app -------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_server(repo: ArtifactRepository) -> LeadScoringModelServer:
    server = LeadScoringModelServer(ServerConfig())
    model = LeadScoringModel(NAME, repo.artifact(V1).uri, Profile.LOCAL)
    assert model.load()
    server.serve_model(model)
    return server


def app_for(server: LeadScoringModelServer, **adapter_options):
    return KServeRestAdapter(
        server,
        lambda app: add_protocol_routes(app, server),
        "127.0.0.1",
        0,
        client_error_handlers(MAX_BODY_BYTES),
        MAX_BODY_BYTES,
        **adapter_options,
    )


def post_all(app, requests: list[tuple[str, object]]) -> list[httpx.Response]:
    async def calls() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return [await c.post(path, json=body) for path, body in requests]

    return asyncio.run(calls())


V2_PATH = f"/v2/models/{NAME}/versions/latest/infer"


def test_v2_shape_must_match_the_data(model_server) -> None:
    good, extra, short, negative = post_all(
        app_for(model_server).app(),
        [
            (V2_PATH, v2_body(record_text(), shape=[1])),
            (V2_PATH, v2_body(record_text(), shape=[4])),
            (V2_PATH, v2_body(record_text(), record_text(), shape=[1, 1])),
            (V2_PATH, v2_body(record_text(), shape=[-1])),
        ],
    )
    assert good.status_code == 200
    for response in (extra, short, negative):
        assert response.status_code == 400, response.text
        assert response.json()["errors"][0]["field"] == "inputs.RECORD.shape"


@pytest.mark.parametrize(
    "element, field",
    [
        (record_text(Total_Visits__c=1e308), "record[0].Total_Visits__c"),
        (record_text(Page_Views_Per_Visit__c=1e12), "record[0].Page_Views_Per_Visit__c"),
        (record_with_raw("Total_Visits__c", "1" + "0" * 400), "record[0].Total_Visits__c"),
        (record_with_raw("Total_Visits__c", "9" * 5000), "record[0]"),
        ("[" * 5000 + "]" * 5000, "record[0]"),
        ('{"a": ' + "[" * 100_000 + "]" * 100_000 + "}", "record[0]"),
    ],
    ids=["1e308", "1e12", "400-digit-int", "5000-digit-int", "nested-5000", "nested-100000"],
)
def test_v2_hostile_numbers_and_nesting_are_400_naming_the_field(model_server, element, field) -> None:
    (response,) = post_all(app_for(model_server).app(), [(V2_PATH, v2_body(element))])
    assert response.status_code == 400, response.text[:300]
    assert response.json()["errors"][0]["field"] == field


def test_scoring_runs_off_the_event_loop(model_server, monkeypatch) -> None:
    """A slow scoring request must not hold up a health check arriving meanwhile."""
    model = model_server.model_for(NAME)
    original = model.predict

    def slow_predict(payload, headers=None):
        time.sleep(1.0)
        return original(payload, headers)

    monkeypatch.setattr(model, "predict", slow_predict)
    app = app_for(model_server).app()

    async def calls() -> tuple[float, int, int]:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            start = time.perf_counter()
            scoring = asyncio.create_task(c.post(V2_PATH, json=v2_body(record_text())))
            await asyncio.sleep(0.2)  # scoring has begun (its 1 s of work)
            health = await c.get(f"/v2/models/{NAME}/ready")
            waited = time.perf_counter() - start - 0.2
            return waited, health.status_code, (await scoring).status_code

    waited, health, scored = asyncio.run(calls())
    assert health == 200 and scored == 200
    assert waited < 0.5, f"the health check waited {waited:.2f} s behind scoring"


def test_a_client_that_hangs_up_logs_no_traceback(model_server, caplog) -> None:
    app = app_for(model_server).app()
    sent: list[dict] = []

    async def call() -> None:
        async def receive() -> dict:
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": V2_PATH,
            "raw_path": V2_PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }
        await app(scope, receive, send)

    with caplog.at_level(logging.DEBUG):
        asyncio.run(call())
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
    assert sent[0]["status"] == 499


def test_a_stalled_body_is_408(model_server) -> None:
    app = app_for(model_server, body_timeout_s=0.3).app()

    async def call() -> list[dict]:
        sent: list[dict] = []
        first = True

        async def receive() -> dict:
            nonlocal first
            if first:
                first = False
                return {"type": "http.request", "body": b'{"inputs": ', "more_body": True}
            await asyncio.sleep(30)  # the client stops sending
            return {"type": "http.disconnect"}

        async def send(message: dict) -> None:
            sent.append(message)

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": V2_PATH,
            "raw_path": V2_PATH.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"content-type", b"application/json")],
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 2),
        }
        await asyncio.wait_for(app(scope, receive, send), 5)
        return sent

    sent = asyncio.run(call())
    assert sent[0]["status"] == 408


def test_header_timeout_and_concurrency_limit_on_a_real_socket(model_server) -> None:
    """A connection that never finishes its headers is closed; past the limit new requests get 503."""
    port = free_port()
    adapter = app_for(model_server, header_timeout_s=0.5, max_concurrency=3)
    adapter.port = port
    server = uvicorn.Server(adapter.uvicorn_config())
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        assert server.started

        async def probe() -> tuple[bytes, float, list[int]]:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /v2/health/live HTTP/1.1\r\nHost: x\r\n")  # headers never completed
            await writer.drain()
            start = time.monotonic()
            closed = await asyncio.wait_for(reader.read(), 5)  # b"" once the server closes it
            elapsed = time.monotonic() - start
            writer.close()
            # hold 3 idle connections open, then ask: the 4th connection is over the limit
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(3)]
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                codes = [(await client.get("/v2/health/live")).status_code]
            for _, w in held:
                w.close()
            await asyncio.sleep(0.8)  # the held ones are closed by the header timeout
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
                codes.append((await client.get("/v2/health/live")).status_code)
            return closed, elapsed, codes

        closed, elapsed, codes = asyncio.run(probe())
        assert closed == b"" and elapsed < 3, (closed, elapsed)
        assert codes == [503, 200], codes
    finally:
        server.should_exit = True
        thread.join(10)


# -- property: no V2 body answers 5xx -------------------------------------------------------------------
hostile_numbers = (
    st.integers(min_value=-(10**600), max_value=10**600)
    | st.floats(allow_nan=False)
    | st.sampled_from([1e308, -1e308, 1e9 + 1, 2**63, -(2**64)])
)
nested = st.recursive(
    hostile_numbers | st.text(max_size=5) | st.none(),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=10,
)


@st.composite
def hostile_elements(draw) -> str:
    record = json.loads(record_text())
    for name in draw(
        st.lists(
            st.sampled_from(["Total_Visits__c", "Time_On_Website__c", "Page_Views_Per_Visit__c", "Country", "Id"]),
            max_size=3,
            unique=True,
        )
    ):
        record[name] = draw(nested)
    text = json.dumps(record, allow_nan=True) if draw(st.booleans()) else json.dumps(record)
    depth = draw(st.sampled_from([0, 0, 50, 3000]))
    return "[" * depth + text + "]" * depth


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    elements=st.lists(hostile_elements(), min_size=1, max_size=3),
    shape=st.none() | st.lists(st.integers(-3, 2**70), max_size=3),
)
def test_property_no_v2_body_answers_5xx(model_server, elements, shape) -> None:
    body = v2_body(*elements, shape=shape)
    text = json.dumps(body, allow_nan=True)
    app = app_for(model_server).app()

    async def call() -> httpx.Response:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as c:
            return await c.post(V2_PATH, content=text, headers={"content-type": "application/json"})

    response = asyncio.run(call())
    assert response.status_code in (200, 400, 413), (response.status_code, response.text[:300])
    if response.status_code == 200:
        assert len(response.json()["outputs"][0]["data"]) == len(elements)
    else:
        assert all(e["field"] for e in response.json()["errors"])


def test_the_vertex_container_gets_the_manifest_pin_and_no_secret(repo: ArtifactRepository, monkeypatch) -> None:
    monkeypatch.setenv("LEAD_SCORING_ARTIFACT_SIGNING_KEY", "a-signing-key-that-must-not-leave-dagster")
    serving = VertexAIModelServing(project="p", endpoint_id="1", image_uri="r/i:1")
    artifact = repo.artifact(V1)
    env = serving.upload_kwargs(artifact)["serving_container_environment_variables"]
    assert env["LEAD_SCORING_ARTIFACT_MANIFEST_SHA256"] == manifest_digest(repo.manifest(V1))
    assert "LEAD_SCORING_ARTIFACT_SIGNING_KEY" not in env and "a-signing-key" not in json.dumps(env)

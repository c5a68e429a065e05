"""The HTTP model server: kserve's ModelServer + REST server, with the routes our callers need.

kserve 0.21 as shipped binds 0.0.0.0, starts gRPC, answers versioned V2 URLs with 501 and knows no
Vertex AI `AIP_*` routes. This module keeps kserve's server, data plane, model registry and health
routes, and registers BEFORE them (so they win the match):

* ``POST /v1/models/{name}:predict``                      KServe V1 rows (per-row errors)
* ``POST /v2/models/{name}/infer``                        KServe V2
* ``POST /v2/models/{name}/versions/{version}/infer``     what Flink 2.3's triton provider calls
* ``GET  /v2/models/{name}[/versions/{version}]/ready``   model readiness (versioned too)
* ``POST {AIP_PREDICT_ROUTE}`` / ``GET {AIP_HEALTH_ROUTE}``  Vertex AI custom-container routes
* ``POST /admin/models/{name}/swap`` (only with ``allow_swap``): hot-swap to another version of the
  same artifact store; the old model serves until the new one is loaded and verified.

Client mistakes never produce a 500: bad JSON, wrong types, missing fields -> 400 naming the field;
a body over `max_body_bytes` (1.5 MB, Vertex AI's own limit) -> 413 before any parsing.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import zlib
from dataclasses import dataclass
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from kserve import ModelServer
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferInput, InferRequest, InferResponse, RequestedOutput
from kserve.protocol.rest.server import RESTServer

from lead_scoring.contract.validation import FieldError
from lead_scoring.serving.model import DEFAULT_MODEL_NAME, LeadScoringModel, RecordRejected, error_body
from lead_scoring.settings import Profile, current_profile

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_500_000  # Vertex AI online prediction refuses bodies over 1.5 MB
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    model_name: str = DEFAULT_MODEL_NAME
    predict_route: str = "/predict"
    health_route: str = "/health"
    max_body_bytes: int = MAX_BODY_BYTES
    allow_swap: bool = False
    access_log: bool = False  # one log line per request costs about as much as scoring a record

    @classmethod
    def from_env(cls, port: int | None = None, host: str | None = None, model_name: str | None = None,
                 allow_swap: bool = False) -> "ServerConfig":
        """Vertex AI sets AIP_HTTP_PORT / AIP_PREDICT_ROUTE / AIP_HEALTH_ROUTE; locally we bind loopback."""
        in_vertex = "AIP_HTTP_PORT" in os.environ
        if host is None:
            host = "0.0.0.0" if in_vertex or current_profile() is Profile.GCP else "127.0.0.1"
        if port is None:
            port = int(os.environ.get("AIP_HTTP_PORT", "8080"))
        return cls(
            host=host,
            port=port,
            model_name=model_name or os.environ.get("LEAD_SCORING_MODEL_NAME", DEFAULT_MODEL_NAME),
            predict_route=os.environ.get("AIP_PREDICT_ROUTE", "/predict"),
            health_route=os.environ.get("AIP_HEALTH_ROUTE", "/health"),
            allow_swap=allow_swap,
            access_log=os.environ.get("LEAD_SCORING_ACCESS_LOG", "").lower() in ("1", "true", "yes"),
        )


class PayloadTooLarge(Exception):
    pass


class BodyLimitMiddleware:
    """Refuse oversized bodies with 413 from Content-Length, and cut off streamed ones that grow past it."""

    def __init__(self, app: Any, max_bytes: int):
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for key, value in scope.get("headers", ()):
            if key == b"content-length":
                try:
                    too_large = int(value) > self.max_bytes
                except ValueError:
                    await _send_json(send, 400, error_body([FieldError("Content-Length", "not a number")]))
                    return
                if too_large:
                    await _send_json(send, 413, _too_large_body(self.max_bytes))
                    return
                break
        received = 0

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge()
            return message

        await self.app(scope, limited_receive, send)


def _too_large_body(limit: int) -> dict[str, Any]:
    return error_body([FieldError("$", f"request body larger than {limit} bytes")])


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = orjson.dumps(body)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]})
    await send({"type": "http.response.body", "body": payload})


class JSONBytes(Response):
    """orjson-encoded JSON (FastAPI's JSONBytes is deprecated; this is the same thing, explicitly)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _bad_request(errors: list[FieldError]) -> Response:
    return JSONBytes(error_body(errors), status_code=400)


async def _read_json(request: Request, max_bytes: int) -> Any:
    body = await request.body()
    if request.headers.get("content-encoding", "").lower() == "gzip":  # Flink's triton 'compression'='gzip'
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, max_bytes + 1)
        except zlib.error as exc:
            raise RecordRejected([FieldError("$", f"not valid gzip: {exc}")]) from None
        if len(body) > max_bytes or inflater.unconsumed_tail:
            raise PayloadTooLarge()
    if not body:
        raise RecordRejected([FieldError("$", "empty request body")])
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RecordRejected([FieldError("$", f"not valid JSON: {exc}")]) from None


def _v2_request(body: Any, model_name: str, version: str | None) -> InferRequest:
    """A kserve InferRequest from a V2 REST body, with 400s naming the field (no pydantic 422s)."""
    if not isinstance(body, dict):
        raise RecordRejected([FieldError("$", "expected a JSON object")])
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise RecordRejected([FieldError("inputs", "required: a non-empty array of tensors")])
    tensors = []
    for i, item in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(item, dict):
            raise RecordRejected([FieldError(where, "expected a tensor object")])
        name, datatype, shape, data = item.get("name"), item.get("datatype"), item.get("shape"), item.get("data")
        if not isinstance(name, str):
            raise RecordRejected([FieldError(f"{where}.name", "required string")])
        if not isinstance(datatype, str):
            raise RecordRejected([FieldError(f"{where}.datatype", "required string")])
        if not isinstance(shape, list) or not all(isinstance(d, int) and not isinstance(d, bool) for d in shape):
            raise RecordRejected([FieldError(f"{where}.shape", "required array of integers")])
        if not isinstance(data, list):
            raise RecordRejected([FieldError(f"{where}.data", "required array")])
        tensors.append(InferInput(name=name, shape=shape, datatype=datatype, data=data,
                                  parameters=item.get("parameters") if isinstance(item.get("parameters"), dict) else None))
    requested = None
    outputs = body.get("outputs")
    if outputs is not None:
        if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs):
            raise RecordRejected([FieldError("outputs", "expected an array of {\"name\": string}")])
        requested = [RequestedOutput(name=o["name"]) for o in outputs] or None
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RecordRejected([FieldError("id", "expected a string")])
    parameters = body.get("parameters") if isinstance(body.get("parameters"), dict) else None
    return InferRequest(model_name=model_name, infer_inputs=tensors, request_id=request_id,
                        parameters=parameters, request_outputs=requested, model_version=version)


def _v2_response(response: InferResponse) -> dict[str, Any]:
    body: dict[str, Any] = {"model_name": response.model_name, "model_version": response.model_version,
                            "outputs": [{"name": o.name, "datatype": o.datatype, "shape": o.shape, "data": o.data}
                                        for o in response.outputs]}
    if response.id:
        body["id"] = response.id
    return body


class LeadScoringModelServer(ModelServer):
    """kserve's ModelServer, REST only, bound to `config.host`, with our protocol routes."""

    def __init__(self, config: ServerConfig, swap_loader: Any | None = None):
        super().__init__(http_port=config.port, enable_grpc=False, workers=1, enable_docs_url=False,
                         enable_latency_logging=False, grace_period=5)
        self.config = config
        self.swap_loader = swap_loader  # callable(version) -> LeadScoringModel (loaded or not)
        self._swap_lock = asyncio.Lock()

    # -- model access -------------------------------------------------------------------------------
    def _model(self, name: str) -> LeadScoringModel | None:
        model = self.registered_models.get_model(name)
        return model if isinstance(model, LeadScoringModel) else None

    def _ready_model(self, name: str) -> LeadScoringModel | JSONBytes:
        model = self._model(name)
        if model is None:
            return JSONBytes({"error": f"model {name!r} is not served here"}, status_code=404)
        if not model.ready:
            return JSONBytes({"error": f"model {name!r} is not ready"}, status_code=503)
        return model

    # -- the app --------------------------------------------------------------------------------------
    def build_app(self) -> FastAPI:
        app = FastAPI(title="lead_scoring model server", docs_url=None, redoc_url=None,
                      default_response_class=JSONBytes)
        cfg = self.config
        limit = cfg.max_body_bytes

        async def v1_predict(model_name: str, request: Request) -> Response:
            model = self._ready_model(model_name)
            if isinstance(model, Response):
                return model
            body = await _read_json(request, limit)
            result, _ = await model(body, headers=None)
            return JSONBytes(result)

        async def v2_infer(request: Request, model_name: str, model_version: str | None = None) -> Response:
            model = self._ready_model(model_name)
            if isinstance(model, Response):
                return model
            if model_version is not None and model_version not in ("latest", model.model_version) \
                    and not model_version.isdigit():
                return JSONBytes({"error": f"version {model_version!r} of {model_name!r} is not served; "
                                               f"serving {model.model_version!r} (or use 'latest')"}, status_code=404)
            infer_request = _v2_request(await _read_json(request, limit), model_name, model_version)
            result, _ = await model(infer_request, headers=None)
            return JSONBytes(_v2_response(result))

        async def v2_ready(model_name: str, model_version: str | None = None) -> Response:
            model = self._ready_model(model_name)
            if isinstance(model, Response):
                return model
            return JSONBytes({"name": model_name, "ready": True, "model_version": model.model_version})

        async def v2_metadata(model_name: str, model_version: str | None = None) -> Response:
            model = self._model(model_name)
            if model is None:
                return JSONBytes({"error": f"model {model_name!r} is not served here"}, status_code=404)
            return JSONBytes({
                "name": model_name, "versions": [model.model_version] if model.model_version else [],
                "platform": "lead_scoring/kserve",
                "inputs": [{"name": "record", "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": "score", "datatype": "BYTES", "shape": [-1]}],
            })

        async def vertex_predict(request: Request) -> Response:
            return await v1_predict(cfg.model_name, request)

        async def vertex_health() -> Response:
            model = self._model(cfg.model_name)
            if model is None or not model.ready:
                return JSONBytes({"ready": False}, status_code=503)
            return JSONBytes({"ready": True, "model_version": model.model_version})

        async def swap(model_name: str, request: Request) -> Response:
            body = await _read_json(request, limit)
            version = body.get("version") if isinstance(body, dict) else None
            if not isinstance(version, str) or not VERSION_PATTERN.match(version):
                return _bad_request([FieldError("version", "required: a model version name")])
            current = self._model(model_name)
            if current is None:
                return JSONBytes({"error": f"model {model_name!r} is not served here"}, status_code=404)
            async with self._swap_lock:
                candidate = await asyncio.to_thread(self.swap_loader, version)
                if not candidate.ready:
                    logger.error("hot swap to %s refused; still serving %s", version, current.model_version)
                    return JSONBytes({"error": f"version {version} not loaded: {candidate.load_error}",
                                           "serving": current.model_version}, status_code=409)
                self.register_model(candidate, model_name)
            logger.info("hot swap: %s -> %s", current.model_version, candidate.model_version)
            return JSONBytes({"serving": candidate.model_version, "previous": current.model_version})

        async def too_large(_: Request, __: Exception) -> Response:
            return JSONBytes(_too_large_body(limit), status_code=413)

        async def rejected(_: Request, exc: Exception) -> Response:
            if isinstance(exc, RecordRejected):
                return _bad_request(exc.errors)
            return _bad_request([FieldError("$", str(exc))])

        app.add_api_route("/v1/models/{model_name}:predict", v1_predict, methods=["POST"])
        app.add_api_route("/v2/models/{model_name}/infer", v2_infer, methods=["POST"])
        app.add_api_route("/v2/models/{model_name}/versions/{model_version}/infer", v2_infer, methods=["POST"])
        app.add_api_route("/v2/models/{model_name}/ready", v2_ready, methods=["GET"])
        app.add_api_route("/v2/models/{model_name}/versions/{model_version}/ready", v2_ready, methods=["GET"])
        app.add_api_route("/v2/models/{model_name}", v2_metadata, methods=["GET"])
        app.add_api_route("/v2/models/{model_name}/versions/{model_version}", v2_metadata, methods=["GET"])
        async def repository_not_supported(model_name: str) -> Response:
            # kserve's repository load/unload would reload from /mnt/models or unload the model for everyone
            return JSONBytes({"error": "model repository API not supported: new versions are deployed by the "
                                       "model_deployment asset"}, status_code=405)

        app.add_api_route("/v2/repository/models/{model_name}/load", repository_not_supported, methods=["POST"])
        app.add_api_route("/v2/repository/models/{model_name}/unload", repository_not_supported, methods=["POST"])
        app.add_api_route(cfg.predict_route, vertex_predict, methods=["POST"])
        app.add_api_route(cfg.health_route, vertex_health, methods=["GET"])
        if cfg.allow_swap and self.swap_loader is not None:
            app.add_api_route("/admin/models/{model_name}/swap", swap, methods=["POST"])
        app.add_exception_handler(PayloadTooLarge, too_large)
        app.add_exception_handler(RecordRejected, rejected)
        app.add_exception_handler(InvalidInput, rejected)  # kserve's own (re-registered by kserve later)
        app.add_middleware(BodyLimitMiddleware, max_bytes=limit)
        return app

    def start(self, models: list[LeadScoringModel]) -> None:  # type: ignore[override]
        """Serve until SIGTERM/SIGINT (uvicorn's own signal handling; no gRPC server)."""
        self._register_and_check_atleast_one_model_is_ready(models)
        app = self.build_app()
        rest = _RestServer(app, self.config.host, self, access_log=self.config.access_log)
        self._rest_server = rest
        logger.info("serving %s on http://%s:%d (V1, V2, Vertex %s)", self.config.model_name, self.config.host,
                    self.config.port, self.config.predict_route)
        with asyncio.Runner(loop_factory=rest.config.get_loop_factory()) as runner:
            runner.run(rest.start())
        for name in list(self.registered_models.get_models()):
            self.registered_models.unload(name)


class _RestServer(RESTServer):
    """kserve's RESTServer on our FastAPI app and host (kserve hard-codes 0.0.0.0 and its global app)."""

    def __init__(self, app: FastAPI, host: str, server: LeadScoringModelServer, access_log: bool = False):
        super().__init__(app, server.dataplane, server.model_repository_extension,  # type: ignore[arg-type]
                         server.config.port, workers=1, grace_period=server.grace_period, event_loop="auto",
                         timeout_keep_alive=server.timeout_keep_alive)
        self.config.host = host
        self.config.access_log = access_log
        if not access_log:
            # uvicorn logs access lines whenever "uvicorn.access" has handlers (kserve installs them)
            access = logging.getLogger("uvicorn.access")
            access.handlers = []
            access.propagate = False
        self.app = app

    def create_application(self) -> None:
        # kserve's routes (health, metadata, models list, metrics) after ours; no per-request timing
        # middleware (it logs a line per request, which costs more than scoring a record).
        self._register_endpoints(self.app)
        self._add_exception_handlers(self.app)


def run_server(artifact_uri: str, config: ServerConfig) -> int:
    """Load the artifact and serve; exit code 1 when the model cannot be loaded (not ready)."""
    model = LeadScoringModel(config.model_name, artifact_uri)
    if not model.load():
        logger.error("refusing to serve: %s", model.load_error)
        return 1
    swap_loader = _sibling_loader(config.model_name, artifact_uri) if config.allow_swap else None
    LeadScoringModelServer(config, swap_loader).start([model])
    return 0


def _sibling_loader(model_name: str, artifact_uri: str):
    """Loads other versions from the same artifact store as the one first served (never arbitrary paths)."""
    from lead_scoring.storage.artifacts import repository_for_uri

    repo, _ = repository_for_uri(artifact_uri)

    def load(version: str) -> LeadScoringModel:
        model = LeadScoringModel(model_name, repo.blobs.uri(f"models/{version}"))
        try:
            model.load()
        except Exception as exc:  # noqa: BLE001 - any failure keeps the old model serving; reason reported
            model.ready = False
            model.load_error = f"{type(exc).__name__}: {exc}"
        return model

    return load

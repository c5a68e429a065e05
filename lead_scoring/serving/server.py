"""The HTTP model server: a `kserve.ModelServer` serving `LeadScoringModel`, with the routes our callers need.

Long on purpose: the model server's whole HTTP surface (routes, body and header limits, the kserve
adapter) in one file, which is what a review of what the server exposes reads; the model is `serving.model`.

kserve supplies the model registry and data plane (`ModelServer.register_model`, `registered_models`,
`dataplane`), the V2 request and response types (`InferenceRequest` -> `InferRequest`, `InferResponse`),
its standard routes (`register_v1_endpoints` / `register_v2_endpoints`: health, model lists, V1 model
ready, ...) and its error handlers. This module adds, in front of kserve's routes (so they win the match):

* ``POST /v1/models/{name}:predict``                      KServe V1 rows (per-row errors)
* ``POST /v2/models/{name}/infer``                        KServe V2
* ``POST /v2/models/{name}/versions/{version}/infer``     what Flink 2.3's triton provider calls
* ``GET  /v2/models/{name}[/versions/{version}]/ready``   model readiness with the served version
* ``GET  /v2/models/{name}[/versions/{version}]``         model metadata (kserve's, plus the version)
* ``POST /v2/repository/models/{name}/load|unload``       405: versions are deployed, not loaded by URL
* ``POST {AIP_PREDICT_ROUTE}`` / ``GET {AIP_HEALTH_ROUTE}``  Vertex AI custom-container routes
* ``POST /admin/models/{name}/swap`` (only with ``allow_swap``): hot-swap to another version of the
  same artifact store; the old model serves until the new one is loaded and verified.
* ``POST /admin/models/{name}_challenger/load`` / ``.../unload`` (only with ``allow_swap``): serve a challenger
  version of the same store next to the champion under ``<name>_challenger`` (kserve's `register_model`
  under a second name), or stop serving it; the champion is never touched. ``--challenger VERSION`` loads
  one at start (how the supervisor brings it back after a restart).

The admin routes exist only with ``allow_swap`` AND a token in LEAD_SCORING_MODEL_ADMIN_TOKEN (the server
refuses to start with one and not the other); every admin request must carry ``Authorization: Bearer
<token>`` (compared in constant time), else 401. Their answers never carry a local path.

Client mistakes never produce a 422 or 500: bad JSON, wrong types, missing fields, numbers out of the
contract's range -> 400 naming the field; a body over `max_body_bytes` (1.5 MB, Vertex AI's own limit) ->
413 before any parsing; a body not received within `body_timeout_s` -> 408. Connections that never finish
their headers are closed after `header_timeout_s`; past `max_concurrency` connections uvicorn answers 503.
Parsing and scoring run on a small thread pool, never on the event loop, so one large request does not
hold up the others (nor the health checks).

kserve 0.21's `ModelServer.start` cannot bind loopback nor take extra routes; the one place that
builds and runs the REST server instead is `KServeRestAdapter` (its docstring says why, with the
kserve source lines it stands in for). Nothing here uses an underscore name of kserve.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import zlib
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from kserve import ModelServer
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    NoModelReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
    generic_exception_handler,
    inference_error_handler,
    model_not_found_handler,
    model_not_ready_handler,
    not_implemented_error_handler,
    server_not_live_handler,
    server_not_ready_handler,
    unsupported_protocol_error_handler,
)
from kserve.protocol.infer_type import InferRequest, InferResponse
from kserve.protocol.rest.server import metrics_handler
from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
from kserve.protocol.rest.v2_datamodels import InferenceRequest, ModelMetadataResponse
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints
from pydantic import ValidationError
from starlette.requests import ClientDisconnect
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from lead_scoring.contract.validation import FieldError
from lead_scoring.serving.model import LeadScoringModel, RecordRejected, error_body
from lead_scoring.settings import (
    ADMIN_TOKEN_ENV_VAR,
    DEFAULT_MODEL_NAME,
    Profile,
    challenger_model_name,
    model_server_settings,
    security_settings,
)
from lead_scoring.storage.artifacts import repository_for_uri

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 1_500_000  # Vertex AI online prediction refuses bodies over 1.5 MB
VERSION_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MIN_ADMIN_TOKEN_CHARS = 24


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
    challenger: str | None = None  # a version of the same store served as `<model_name>_challenger` from the start
    admin_token: str | None = field(default=None, repr=False)  # LEAD_SCORING_MODEL_ADMIN_TOKEN: never printed
    header_timeout_s: float = 10.0  # a connection must send complete request headers within this
    body_timeout_s: float = 10.0  # ... and each chunk of its body within this
    max_concurrency: int = 64  # connections + requests in flight; beyond, uvicorn answers 503
    scoring_threads: int = 4  # parse + score off the event loop
    profile: Profile = Profile.LOCAL  # where the artifact signing key may come from (gcp: the environment only)

    @property
    def challenger_name(self) -> str:
        return challenger_model_name(self.model_name)

    @classmethod
    def from_env(
        cls,
        profile: Profile,
        port: int | None = None,
        host: str | None = None,
        model_name: str | None = None,
        allow_swap: bool = False,
        challenger: str | None = None,
    ) -> ServerConfig:
        """Vertex AI sets AIP_HTTP_PORT / AIP_PREDICT_ROUTE / AIP_HEALTH_ROUTE; locally we bind loopback (the
        gcp `profile` binds all interfaces, as in a container)."""
        env = model_server_settings()
        in_vertex = env.vertex_http_port is not None
        if host is None:
            host = "0.0.0.0" if in_vertex or profile is Profile.GCP else "127.0.0.1"
        if port is None:
            port = env.vertex_http_port or 8080
        return cls(
            host=host,
            port=port,
            model_name=model_name or env.model_name,
            predict_route=env.vertex_predict_route,
            health_route=env.vertex_health_route,
            allow_swap=allow_swap,
            access_log=env.access_log,
            challenger=challenger,
            admin_token=_secret(security_settings().admin_token),
            profile=profile,
        )

    def admin_problem(self) -> str | None:
        """Why the admin routes cannot be served as configured (None: they can, or are not asked for)."""
        if not self.allow_swap:
            return None
        if not self.admin_token:
            return (
                f"--allow-swap needs a token: set {ADMIN_TOKEN_ENV_VAR} (e.g. to the output of "
                f"`python -c 'import secrets; print(secrets.token_urlsafe(32))'`) in the server's environment "
                f"and in the caller's, or start without --allow-swap"
            )
        if len(self.admin_token) < MIN_ADMIN_TOKEN_CHARS:
            return f"{ADMIN_TOKEN_ENV_VAR} is too short: use at least {MIN_ADMIN_TOKEN_CHARS} random characters"
        return None


def _secret(value: Any) -> str | None:
    return value.get_secret_value() if value is not None else None


# -- request bodies -----------------------------------------------------------------------------------
class PayloadTooLarge(Exception):
    pass


class BodyTimeout(Exception):
    """The client stopped sending its body: answered with 408."""


class BodyLimitMiddleware:
    """Refuse oversized bodies with 413 from Content-Length, cut off streamed ones that grow past it, and
    bodies that stall for longer than `timeout_s` (408)."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = 10.0):
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

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
            try:
                async with asyncio.timeout(self.timeout_s):  # a slow-body client holds a connection no longer
                    message = await receive()
            except TimeoutError:
                raise BodyTimeout() from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise PayloadTooLarge()
            return message

        await self.app(scope, limited_receive, send)


class HeaderTimeoutProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, closing a connection that has not completed a request's headers within
    `header_timeout_s` of connecting, or of its previous response.

    uvicorn has no such timeout (its keep-alive timer stops at the first byte received), so a client sending
    headers a byte at a time, or nothing at all, held a connection and a file descriptor for as long as it
    liked. A request being served is never cut: the timer only closes a connection with none in flight.
    """

    header_timeout_s = 10.0

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.arm_header_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self.arm_header_timer()

    def arm_header_timer(self) -> None:
        self.loop.call_later(self.header_timeout_s, self.close_if_no_request, self.cycle)

    def close_if_no_request(self, cycle_when_armed: Any) -> None:
        idle = self.cycle is cycle_when_armed and (self.cycle is None or self.cycle.response_complete)
        if idle and not self.transport.is_closing():
            self.transport.close()


def header_timeout_protocol(timeout_s: float) -> type[HeaderTimeoutProtocol]:
    return type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": timeout_s})


def _too_large_body(limit: int) -> dict[str, Any]:
    return error_body([FieldError("$", f"request body larger than {limit} bytes")])


async def _send_json(send: Any, status: int, body: dict[str, Any]) -> None:
    payload = orjson.dumps(body)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class JSONBytes(Response):
    """orjson-encoded JSON (FastAPI's ORJSONResponse is deprecated; this is the same thing, explicitly)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def read_body(request: Request, max_bytes: int) -> bytes:
    """The request body, gunzipped when sent with Content-Encoding: gzip (Flink's triton 'compression')."""
    body = await request.body()
    if request.headers.get("content-encoding", "").lower() == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            body = inflater.decompress(body, max_bytes + 1)
        except zlib.error as exc:
            raise RecordRejected([FieldError("$", f"not valid gzip: {exc}")]) from None
        if len(body) > max_bytes or inflater.unconsumed_tail:
            raise PayloadTooLarge()
    if not body:
        raise RecordRejected([FieldError("$", "empty request body")])
    return body


def parse_json(body: bytes) -> Any:
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise RecordRejected([FieldError("$", f"not valid JSON: {exc}")]) from None


# -- KServe V2 requests through kserve's own types ------------------------------------------------------
# What each V2 envelope field should hold, for the fix half of a 400 message.
V2_EXPECTED = {
    "$": "a JSON object: a KServe V2 inference request",
    "id": "a string",
    "parameters": "an object of string, number or boolean values",
    "inputs": 'an array of tensors {"name", "datatype", "shape", "data"}',
    "outputs": 'an array of {"name": string}',
    "name": "a string",
    "datatype": 'a string, "BYTES" for JSON records',
    "shape": "an array of integers",
    "data": "an array",
}
# Errors are reported in the V2 protocol's own field order: the request's id, parameters, inputs, outputs,
# and within a tensor InferInputTensor's (kserve docs/predict-api/v2/grpc_predict_v2.proto:138-156:
# name = 1, datatype = 2, shape = 3, parameters = 4, contents = 5).
REQUEST_FIELD_ORDER = {"id": 1, "parameters": 2, "inputs": 3, "outputs": 4}
TENSOR_FIELD_ORDER = {"name": 1, "datatype": 2, "shape": 3, "parameters": 4, "data": 5}


def parse_v2_request(body: bytes, model_name: str, model_version: str | None = None) -> InferRequest:
    """A kserve `InferRequest` from a V2 REST body, the way kserve's data plane builds one
    (`InferenceRequest` -> `InferRequest.from_inference_request`), but validated strictly (no "1" for 1)
    and with a 400 naming each wrong field instead of FastAPI's 422.

    JSON is read by orjson, as for V1 bodies (same errors; NaN refused), then validated by pydantic.
    """
    try:
        request = InferenceRequest.model_validate(parse_json(body), strict=True)
    except ValidationError as exc:
        raise RecordRejected(field_errors(exc.errors(include_url=False))) from None
    try:
        infer_request = InferRequest.from_inference_request(request, model_name)
    except InvalidInput as exc:  # kserve refuses FP16 data sent as JSON
        where = next((f"inputs[{i}].datatype" for i, t in enumerate(request.inputs) if t.datatype == "FP16"), "inputs")
        raise RecordRejected([FieldError(where, f"{exc}; this model takes {V2_EXPECTED['datatype']}")]) from None
    infer_request.model_version = model_version
    return infer_request


def field_errors(errors: Iterable[dict[str, Any]]) -> list[FieldError]:
    """pydantic errors of a V2 body -> one FieldError per wrong field, e.g. ``inputs[0].shape``.

    A location is cut at the tensor field (``inputs[0].shape[2]`` -> ``inputs[0].shape``; the union
    members pydantic tries for one parameter -> ``parameters``), so each field is named once.
    """
    found: dict[str, tuple[tuple[int, int, int], FieldError]] = {}
    for error in errors:
        loc = [part for part in error.get("loc", ()) if part not in ("body", "query", "path")]
        path, order, leaf = _field_path(loc)
        if path not in found:
            reason = (
                "required field is missing"
                if error.get("type") == "missing"
                else f"{error.get('msg', 'invalid')}; expected {V2_EXPECTED.get(leaf, 'a valid value')}"
            )
            found[path] = (order, FieldError(path, reason))
    return [error for _, error in sorted(found.values(), key=lambda item: item[0])]


def _field_path(loc: list[Any]) -> tuple[str, tuple[int, int, int], str]:
    """(field path, report order, name of the field) of a pydantic error location in a V2 request."""
    if not loc:
        return "$", (0, 0, 0), "$"
    top = str(loc[0])
    order = REQUEST_FIELD_ORDER.get(top, 9)
    if top in ("inputs", "outputs") and len(loc) > 1 and isinstance(loc[1], int):
        if len(loc) > 2:
            name = str(loc[2])
            return f"{top}[{loc[1]}].{name}", (order, loc[1], TENSOR_FIELD_ORDER.get(name, 9)), name
        return f"{top}[{loc[1]}]", (order, loc[1], 0), top
    return top, (order, -1, 0), top


def v2_response_body(response: InferResponse) -> dict[str, Any]:
    """The V2 REST body of a kserve `InferResponse` whose outputs are JSON tensors (ours always are).

    Same fields as `InferResponse.to_rest()`, read from its public attributes: to_rest round-trips every
    output through numpy (`as_numpy` + `set_data_from_numpy`, kserve 0.21 protocol/infer_type.py:1361-1368),
    which costs ~13 us, 6-7 % of a single-row V2 request, on the Flink hot path.
    """
    return {
        "id": response.id,
        "model_name": response.model_name,
        "model_version": response.model_version,
        "outputs": [
            {"name": o.name, "shape": o.shape, "datatype": o.datatype, "data": o.data} for o in response.outputs
        ],
    }


# -- our protocol routes --------------------------------------------------------------------------------
def add_protocol_routes(app: FastAPI, server: LeadScoringModelServer) -> None:
    """The routes kserve does not serve (or serves otherwise), added to `app` before kserve's by the adapter.

    Added on the app itself, not as an included APIRouter: FastAPI (0.165) matches an included router
    through an extra layer, which cost ~10 % of the V2 single-row throughput.
    """
    cfg = server.config
    limit = cfg.max_body_bytes

    def unauthorized(request: Request) -> Response | None:
        """None when the request carries the admin token; else the 401 to answer (the token is never echoed)."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = (cfg.admin_token or "").encode()
        if expected and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), expected):
            return None
        return JSONBytes(
            {"error": f"admin routes need 'Authorization: Bearer <token>' with the server's {ADMIN_TOKEN_ENV_VAR}"},
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="lead_scoring admin"'},
        )

    def ready_model(name: str) -> LeadScoringModel | Response:
        model = server.model_for(name)
        if model is None:
            return JSONBytes({"error": f"model {name!r} is not served here"}, status_code=404)
        if not model.ready:
            return JSONBytes({"error": f"model {name!r} is not ready"}, status_code=503)
        return model

    async def v1_predict(model_name: str, request: Request) -> Response:
        model = ready_model(model_name)
        if isinstance(model, Response):
            return model
        body = await read_body(request, limit)
        return JSONBytes(await server.off_loop(lambda: model.score(parse_json(body))))

    async def v2_infer(request: Request, model_name: str, model_version: str | None = None) -> Response:
        model = ready_model(model_name)
        if isinstance(model, Response):
            return model
        if (
            model_version is not None
            and model_version not in ("latest", model.model_version)
            and not model_version.isdigit()
        ):
            return JSONBytes(
                {
                    "error": f"version {model_version!r} of {model_name!r} is not served; "
                    f"serving {model.model_version!r} (or use 'latest')"
                },
                status_code=404,
            )
        body = await read_body(request, limit)
        result = await server.off_loop(lambda: model.score(parse_v2_request(body, model_name, model_version)))
        return JSONBytes(v2_response_body(result))

    async def v2_ready(model_name: str, model_version: str | None = None) -> Response:
        model = ready_model(model_name)
        if isinstance(model, Response):
            return model
        return JSONBytes({"name": model_name, "ready": True, "model_version": model.model_version})

    async def v2_metadata(model_name: str, model_version: str | None = None) -> Response:
        model = server.model_for(model_name)
        if model is None:
            return JSONBytes({"error": f"model {model_name!r} is not served here"}, status_code=404)
        metadata = await server.dataplane.model_metadata(model_name)  # name + get_input/output_types
        metadata.update(platform="lead_scoring/kserve", versions=[model.model_version] if model.model_version else [])
        return JSONBytes(ModelMetadataResponse.model_validate(metadata).model_dump(exclude_none=True))

    async def repository_not_supported(model_name: str) -> Response:
        # kserve's repository load/unload would reload from /mnt/models or unload the model for everyone
        return JSONBytes(
            {"error": "model repository API not supported: new versions are deployed by the model_deployment asset"},
            status_code=405,
        )

    async def vertex_predict(request: Request) -> Response:
        return await v1_predict(cfg.model_name, request)

    async def vertex_health() -> Response:
        model = server.model_for(cfg.model_name)
        if model is None or not model.ready:
            return JSONBytes({"ready": False}, status_code=503)
        return JSONBytes({"ready": True, "model_version": model.model_version})

    async def swap(model_name: str, request: Request) -> Response:
        if (denied := unauthorized(request)) is not None:
            return denied
        body = parse_json(await read_body(request, limit))
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str) or not VERSION_PATTERN.match(version):
            return JSONBytes(error_body([FieldError("version", "required: a model version name")]), status_code=400)
        status, answer = await server.swap(model_name, version)
        return JSONBytes(answer, status_code=status)

    async def load_challenger(model_name: str, request: Request) -> Response:
        if (denied := unauthorized(request)) is not None:
            return denied
        if model_name != cfg.challenger_name:
            return JSONBytes(
                {
                    "error": f"only the challenger ({cfg.challenger_name!r}) is loaded by name; the "
                    f"champion {cfg.model_name!r} changes by /admin/models/{cfg.model_name}/swap"
                },
                status_code=404,
            )
        body = parse_json(await read_body(request, limit))
        version = body.get("version") if isinstance(body, dict) else None
        if not isinstance(version, str) or not VERSION_PATTERN.match(version):
            return JSONBytes(error_body([FieldError("version", "required: a model version name")]), status_code=400)
        status, answer = await server.load_challenger(version)
        return JSONBytes(answer, status_code=status)

    async def unload_challenger(model_name: str, request: Request) -> Response:
        if (denied := unauthorized(request)) is not None:
            return denied
        if model_name != cfg.challenger_name:
            return JSONBytes(
                {"error": f"only the challenger ({cfg.challenger_name!r}) can be unloaded"}, status_code=404
            )
        return JSONBytes(server.unload_challenger())

    app.add_api_route("/v1/models/{model_name}:predict", v1_predict, methods=["POST"])
    app.add_api_route("/v2/models/{model_name}/infer", v2_infer, methods=["POST"])
    app.add_api_route("/v2/models/{model_name}/versions/{model_version}/infer", v2_infer, methods=["POST"])
    app.add_api_route("/v2/models/{model_name}/ready", v2_ready, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/versions/{model_version}/ready", v2_ready, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}", v2_metadata, methods=["GET"])
    app.add_api_route("/v2/models/{model_name}/versions/{model_version}", v2_metadata, methods=["GET"])
    app.add_api_route("/v2/repository/models/{model_name}/load", repository_not_supported, methods=["POST"])
    app.add_api_route("/v2/repository/models/{model_name}/unload", repository_not_supported, methods=["POST"])
    app.add_api_route(cfg.predict_route, vertex_predict, methods=["POST"])
    app.add_api_route(cfg.health_route, vertex_health, methods=["GET"])
    if cfg.allow_swap and cfg.admin_problem() is None and server.swap_loader is not None:
        app.add_api_route("/admin/models/{model_name}/swap", swap, methods=["POST"])
        app.add_api_route("/admin/models/{model_name}/load", load_challenger, methods=["POST"])
        app.add_api_route("/admin/models/{model_name}/unload", unload_challenger, methods=["POST"])


def client_error_handlers(max_body_bytes: int) -> dict[Any, Callable[..., Any]]:
    """413 for an oversized body; 400 naming the field for every other client mistake."""

    async def too_large(_: Request, __: Exception) -> Response:
        return JSONBytes(_too_large_body(max_body_bytes), status_code=413)

    async def rejected(_: Request, exc: Exception) -> Response:
        # Never logged: a validator reason may quote a value of a PII field.
        errors = exc.errors if isinstance(exc, RecordRejected) else [FieldError("$", str(exc))]
        return JSONBytes(error_body(errors), status_code=400)

    async def invalid_request(_: Request, exc: Exception) -> Response:
        errors = field_errors(exc.errors()) if isinstance(exc, RequestValidationError) else []
        return JSONBytes(error_body(errors or [FieldError("$", "invalid request")]), status_code=400)

    async def body_timeout(_: Request, __: Exception) -> Response:
        return JSONBytes(error_body([FieldError("$", "request body not received in time")]), status_code=408)

    async def client_gone(_: Request, __: Exception) -> Response:
        # The client hung up before its body arrived: nobody reads this answer, and it is not an error
        # of ours (kserve's generic handler logged a traceback for it, and uvicorn a second one).
        return Response(status_code=499)

    return {
        PayloadTooLarge: too_large,
        RecordRejected: rejected,
        InvalidInput: rejected,
        RequestValidationError: invalid_request,
        BodyTimeout: body_timeout,
        ClientDisconnect: client_gone,
    }


# -- the adapter ------------------------------------------------------------------------------------------
class KServeRestAdapter:
    """kserve's REST server as `ModelServer.start` would build it, but on our app, host and logging.

    Why it exists: kserve 0.21's only public way to serve is `ModelServer.start(models)`, which builds a
    `RESTServer` and runs it (model_server.py:361-410, RESTServer at 385-398), and it cannot serve this
    server (line numbers of kserve 0.21.0 as installed; upstream python/kserve/kserve/...):

    * it always binds 0.0.0.0: `RESTServer.__init__` hard-codes ``host="0.0.0.0"`` in its
      `uvicorn.Config` (protocol/rest/server.py:125-138) and neither `ModelServer.__init__`
      (model_server.py:237-255) nor `RESTServer` takes a host; we bind 127.0.0.1 outside Vertex/gcp;
    * it serves the module-global FastAPI app built at import (model_server.py:227-233; loaded by
      `RESTServer.create_application` through FASTAPI_APP_IMPORT_STRING, server.py:205-213), adding
      kserve's routes to it at start, so our routes could only be registered on a global, and kserve's
      versioned V2 routes answer 501 (v2_endpoints.py:152-154) while ours must answer;
    * it adds a per-request TimingMiddleware that writes a trace line per request (server.py:182-187).

    So this class composes the same public pieces that `RESTServer` composes in its private
    `_register_endpoints` / `_add_exception_handlers` (server.py:141-180) on a FastAPI app of our own:
    our routes first, then kserve's ``/`` (`DataPlane.live`), ``/metrics`` (`metrics_handler`),
    `register_v1_endpoints` and `register_v2_endpoints`, kserve's error handlers from `kserve.errors`
    with ours over them; and runs it with `uvicorn.Server` configured from the `ModelServer`'s public
    settings (timeout_keep_alive, event_loop, grace_period) as server.py:125-138 does. kserve's OpenAI
    and time-series routes (server.py:148-167) are not served: this model is neither.

    It uses no underscore name of kserve. If a kserve upgrade adds a host and an app or router argument
    to `ModelServer`, this class shrinks to that call.
    """

    def __init__(
        self,
        model_server: ModelServer,
        add_routes: Callable[[FastAPI], None],
        host: str,
        port: int,
        error_handlers: dict[Any, Callable[..., Any]],
        max_body_bytes: int,
        access_log: bool = False,
        *,
        header_timeout_s: float = 10.0,
        body_timeout_s: float = 10.0,
        max_concurrency: int = 64,
    ):
        self.header_timeout_s = header_timeout_s
        self.body_timeout_s = body_timeout_s
        self.max_concurrency = max_concurrency
        self.model_server = model_server
        self.add_routes = add_routes
        self.host = host
        self.port = port
        self.error_handlers = error_handlers
        self.max_body_bytes = max_body_bytes
        self.access_log = access_log

    def app(self) -> FastAPI:
        server = self.model_server
        app = FastAPI(
            title="lead_scoring model server",
            docs_url=None,
            redoc_url=None,
            openapi_url=None,
            default_response_class=JSONBytes,
        )
        self.add_routes(app)  # first: ours win the match
        app.add_api_route("/", server.dataplane.live, methods=["GET"])
        app.add_api_route("/metrics", metrics_handler, methods=["GET"])
        register_v1_endpoints(app, server.dataplane, server.model_repository_extension)
        register_v2_endpoints(app, server.dataplane, server.model_repository_extension)
        handlers: dict[Any, Callable[..., Any]] = {
            InferenceError: inference_error_handler,
            ModelNotFound: model_not_found_handler,
            ModelNotReady: model_not_ready_handler,
            NotImplementedError: not_implemented_error_handler,
            UnsupportedProtocol: unsupported_protocol_error_handler,
            ServerNotLive: server_not_live_handler,
            ServerNotReady: server_not_ready_handler,
            Exception: generic_exception_handler,
        }
        handlers.update(self.error_handlers)  # ours replace kserve's (e.g. its InvalidInput handler)
        for exc_class, handler in handlers.items():
            app.add_exception_handler(exc_class, handler)
        app.add_middleware(BodyLimitMiddleware, max_bytes=self.max_body_bytes, timeout_s=self.body_timeout_s)
        return app

    def uvicorn_config(self) -> uvicorn.Config:
        server = self.model_server
        # log_config=None: kserve configured logging in ModelServer.__init__; access_log=False also
        # detaches uvicorn's access logger (uvicorn.Config.configure_logging). limit_concurrency: past it
        # uvicorn answers 503 instead of holding one more connection open.
        return uvicorn.Config(
            self.app(),
            host=self.host,
            port=self.port,
            workers=1,
            log_config=None,
            access_log=self.access_log,
            timeout_graceful_shutdown=server.grace_period,
            timeout_keep_alive=server.timeout_keep_alive,
            loop=server.event_loop,
            http=header_timeout_protocol(self.header_timeout_s),
            limit_concurrency=self.max_concurrency,
        )

    def run(self) -> None:
        """Serve until SIGTERM/SIGINT (uvicorn's own signal handling, graceful shutdown)."""
        uvicorn.Server(self.uvicorn_config()).run()


# -- the model server -----------------------------------------------------------------------------------
class LeadScoringModelServer(ModelServer):
    """kserve's ModelServer for the lead scorer: REST only (gRPC off), one worker, no latency log lines."""

    def __init__(self, config: ServerConfig, swap_loader: Callable[[str, str], LeadScoringModel] | None = None):
        super().__init__(
            http_port=config.port,
            enable_grpc=False,
            workers=1,
            enable_docs_url=False,
            enable_latency_logging=False,
            grace_period=5,
        )
        self.config = config
        self.swap_loader = swap_loader  # (version, name) -> LeadScoringModel (loaded, or not ready with load_error)
        self.swap_lock = asyncio.Lock()
        self.scoring_pool = ThreadPoolExecutor(max_workers=config.scoring_threads, thread_name_prefix="scoring")

    async def off_loop(self, work: Callable[[], Any]) -> Any:
        """Run `work` (parse + score) on the scoring threads: the event loop keeps answering meanwhile."""
        return await asyncio.get_running_loop().run_in_executor(self.scoring_pool, work)

    def model_for(self, name: str) -> LeadScoringModel | None:
        model = self.registered_models.get_model(name)
        return model if isinstance(model, LeadScoringModel) else None

    def serve_model(self, model: LeadScoringModel) -> None:
        """Register `model` under the configured name (replacing the one served), as kserve's start does."""
        model.enable_latency_logging = self.enable_latency_logging
        self.register_model(model, self.config.model_name)

    def start(self, models: list[LeadScoringModel]) -> None:  # type: ignore[override]
        """Serve the ready models until SIGTERM/SIGINT; `NoModelReady` if none is.

        kserve's contract for `start` (model_server.py:474-494: register the ready models, `model.start()`
        each, `NoModelReady` if none) through the public `register_model`; then `KServeRestAdapter` serves.
        """
        for model in models:
            if model.ready:
                self.serve_model(model)
            model.start()
        if not self.registered_models.get_models():
            raise NoModelReady(models)
        cfg = self.config
        adapter = KServeRestAdapter(
            self,
            lambda app: add_protocol_routes(app, self),
            cfg.host,
            cfg.port,
            client_error_handlers(cfg.max_body_bytes),
            cfg.max_body_bytes,
            cfg.access_log,
            header_timeout_s=cfg.header_timeout_s,
            body_timeout_s=cfg.body_timeout_s,
            max_concurrency=cfg.max_concurrency,
        )
        logger.info(
            "serving %s on http://%s:%d (V1, V2, Vertex %s)", cfg.model_name, cfg.host, cfg.port, cfg.predict_route
        )
        try:
            adapter.run()
        finally:
            self.scoring_pool.shutdown(wait=False, cancel_futures=True)
            for name in list(self.registered_models.get_models()):
                self.registered_models.unload(name)

    async def swap(self, model_name: str, version: str) -> tuple[int, dict[str, Any]]:
        """Load + verify `version` off the event loop, then switch; the old model serves until then."""
        async with self.swap_lock:
            current = self.model_for(model_name)  # under the lock: an earlier swap may just have finished
            if current is None or self.swap_loader is None:
                return 404, {"error": f"model {model_name!r} is not served here"}
            candidate = await asyncio.to_thread(self.swap_loader, version, model_name)
            if not candidate.ready:
                logger.error("hot swap to %s refused; still serving %s", version, current.model_version)
                return 409, {
                    "error": f"version {version} not loaded: {candidate.load_problem}",
                    "serving": current.model_version,
                }
            self.serve_model(candidate)
        logger.info("hot swap: %s -> %s", current.model_version, candidate.model_version)
        return 200, {"serving": candidate.model_version, "previous": current.model_version}

    async def load_challenger(self, version: str) -> tuple[int, dict[str, Any]]:
        """Load + verify `version` off the event loop and serve it as the challenger (replacing one served)."""
        name = self.config.challenger_name
        async with self.swap_lock:
            if self.swap_loader is None:
                return 404, {"error": "this server loads no other versions (started without --allow-swap)"}
            previous = self.model_for(name)
            candidate = await asyncio.to_thread(self.swap_loader, version, name)
            if not candidate.ready:
                logger.error("challenger %s not loaded: %s", version, candidate.load_error)
                return 409, {
                    "error": f"version {version} not loaded: {candidate.load_problem}",
                    "serving": previous.model_version if previous else None,
                }
            self.register_challenger(candidate)
        logger.info("challenger: %s -> %s", previous.model_version if previous else "none", version)
        return 200, {"serving": version, "previous": previous.model_version if previous else None, "name": name}

    def register_challenger(self, model: LeadScoringModel) -> None:
        model.enable_latency_logging = self.enable_latency_logging
        self.register_model(model, self.config.challenger_name)

    def unload_challenger(self) -> dict[str, Any]:
        """Stop serving the challenger (the champion is untouched); idempotent."""
        current = self.model_for(self.config.challenger_name)
        if current is None:
            return {"unloaded": None}
        self.registered_models.unload(self.config.challenger_name)
        logger.info("challenger %s unloaded", current.model_version)
        return {"unloaded": current.model_version}


def run_server(artifact_uri: str, config: ServerConfig) -> int:
    """Load the artifact and serve (kserve's sklearnserver sequence); exit code 1 when it cannot be loaded."""
    if (problem := config.admin_problem()) is not None:
        logger.error("refusing to serve: %s", problem)
        return 1
    model = LeadScoringModel(config.model_name, artifact_uri, config.profile)
    if not model.load():
        logger.error("refusing to serve: %s", model.load_error)
        return 1
    swap_loader = _sibling_loader(artifact_uri, config.profile) if config.allow_swap or config.challenger else None
    server = LeadScoringModelServer(config, swap_loader)
    if config.challenger and swap_loader is not None:
        challenger = swap_loader(config.challenger, config.challenger_name)
        if challenger.ready:  # a challenger that cannot load never keeps the champion from serving
            server.register_challenger(challenger)
        else:
            logger.error("challenger %s not served: %s", config.challenger, challenger.load_error)
    server.start([model])
    return 0


def _sibling_loader(artifact_uri: str, profile: Profile) -> Callable[[str, str], LeadScoringModel]:
    """Loads other versions from the same artifact store as the one first served (never arbitrary paths)."""

    repo, _ = repository_for_uri(artifact_uri, profile)

    def load(version: str, model_name: str) -> LeadScoringModel:
        model = LeadScoringModel(model_name, repo.blobs.uri(f"models/{version}"), profile)
        try:
            model.load()
        except Exception as exc:
            model.ready = False
            model.load_error = f"{type(exc).__name__}: {exc}"
            model.load_problem = f"it could not be loaded ({type(exc).__name__})"
            logger.error("version %s not loaded: %s", version, model.load_error)
        return model

    return load

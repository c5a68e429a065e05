"""Hold every HTTP request our Confluent client sends (and every answer a fake gives) against Confluent's
own OpenAPI document, with jsonschema (the validator schemathesis itself uses).

The document is not in the repository: `scripts/bootstrap` extracts it from the pinned PyPI sdist
(`lead_scoring.production.vendor_specs`). `confluent_sql_contract()` loads it or FAILS with "run
scripts/bootstrap"; tests never skip for want of it.

OpenAPI 3.0 -> JSON Schema, as the spec means it: `$ref`s become `#/definitions/...` (the spec's
recursive schemas stay recursive); in a request, `readOnly` properties are dropped and a `readOnly`
schema's `required` does not apply (the server sets those); `nullable` allows null; `format: byte` is not
enforced (Confluent's own SDKs send the JSON text itself: the Go SDK's `PlaintextProvider.Data *string`).
Query and path parameters are checked against their declared schemas, unknown query parameters refused;
a fake's status code must be one the operation declares, and its body must match that response's schema.
Where the document is loose, the bodies we send are also held to our own strict schemas
(`strict_bodies.py`, derived from Confluent's Go SDK and CLI): no unknown field, the required ones present,
the Vertex AI key wrapped as the CLI wraps it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Optional

import httpx
import jsonschema
import pytest
import yaml

from lead_scoring.production.vendor_specs import (
    CONFLUENT_SQL_OPENAPI,
    VendorSpecError,
    document_path,
)
from lead_scoring_tests.vendor.strict_bodies import strict_body_errors

_DROP = {
    "example",
    "examples",
    "discriminator",
    "description",
    "nullable",
    "readOnly",
    "writeOnly",
    "title",
    "deprecated",
    "externalDocs",
}


# Answers an operation's own description promises but its `responses` do not list (the document's words):
# updateSqlv1Statement: "The request will fail with a 409 Conflict error if the Statement has changed since
# it was fetched. In this case, do a GET, reapply the modifications, and try the update again."
_DESCRIBED_ONLY = {"updateSqlv1Statement": {"409": "ConflictError"}}


class ContractViolation(AssertionError):
    """A request (or a fake's answer) the vendor's OpenAPI document does not allow."""


def _convert(node: Any, *, request: bool) -> Any:
    if isinstance(node, list):
        return [_convert(x, request=request) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        return {"$ref": "#/definitions/" + node["$ref"].rsplit("/", 1)[-1]}
    read_only_props = (
        {k for k, v in (node.get("properties") or {}).items() if isinstance(v, dict) and v.get("readOnly")}
        if request
        else set()
    )
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROP or key.startswith("x-"):
            continue
        if key == "format" and value == "byte":
            continue
        if key == "properties":
            out[key] = {k: _convert(v, request=request) for k, v in value.items() if k not in read_only_props}
        elif key == "required":
            if request and node.get("readOnly"):
                continue
            out[key] = [r for r in value if r not in read_only_props]
        elif key in ("additionalProperties", "items", "not"):
            out[key] = _convert(value, request=request) if isinstance(value, (dict, list)) else value
        elif key in ("allOf", "anyOf", "oneOf"):
            out[key] = _convert(value, request=request)
        else:
            out[key] = value
    if node.get("nullable"):
        return {"anyOf": [out, {"type": "null"}]}
    return out


@dataclass
class Operation:
    method: str
    template: str
    spec: dict[str, Any]
    path_params: dict[str, str]

    @property
    def id(self) -> str:
        return self.spec.get("operationId", f"{self.method} {self.template}")


@dataclass
class OpenApiContract:
    """One OpenAPI document; `check_request` / `check_response` raise ContractViolation."""

    document: dict[str, Any]
    source: str
    checked: list[str] = field(default_factory=list)  # operationIds of the requests checked

    def __post_init__(self) -> None:
        schemas = self.document["components"]["schemas"]
        self._defs = {
            mode: {n: _convert(s, request=mode == "request") for n, s in schemas.items()}
            for mode in ("request", "response")
        }
        self._routes = []
        for template, item in self.document["paths"].items():
            rx = "^" + re.sub(r"\\\{([^}]+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            self._routes.append((re.compile(rx.replace("(?P<spec.", "(?P<spec_")), template, item))

    def _validate(self, instance: Any, schema: dict[str, Any], mode: str, what: str) -> None:
        root = {**_convert(schema, request=mode == "request"), "definitions": self._defs[mode]}
        validator = jsonschema.Draft7Validator(root, format_checker=jsonschema.FormatChecker())
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        if errors:
            lines = [f"{'/'.join(map(str, e.path)) or '(body)'}: {e.message[:300]}" for e in errors[:5]]
            raise ContractViolation(f"{what} breaks {self.source}:\n  " + "\n  ".join(lines))

    def operation(self, method: str, path: str) -> Operation:
        for rx, template, item in self._routes:
            match = rx.match(path)
            if match and method.lower() in item:
                return Operation(method.upper(), template, item[method.lower()], match.groupdict())
            if match:
                raise ContractViolation(f"{method} {path}: {template} has no {method} in {self.source}")
        raise ContractViolation(f"{method} {path}: no such path in {self.source}")

    def check_request(self, request: httpx.Request) -> Operation:
        op = self.operation(request.method, request.url.path)
        what = f"{request.method} {request.url.path}"
        params = {p["name"]: p for p in op.spec.get("parameters", [])}
        for name, value in op.path_params.items():
            self._validate(value, params[name]["schema"], "request", f"{what}: path parameter {name}")
        for name, value in request.url.params.multi_items():
            if name not in params or params[name]["in"] != "query":
                raise ContractViolation(f"{what}: query parameter {name!r} is not declared by {op.id}")
            schema = params[name].get("schema", {})
            typed: Any = int(value) if schema.get("type") == "integer" and value.lstrip("-").isdigit() else value
            self._validate(typed, schema, "request", f"{what}: query parameter {name}")
        body_spec = op.spec.get("requestBody")
        if body_spec:
            content_type = request.headers.get("content-type", "").split(";")[0].strip()
            media = body_spec["content"].get(content_type)
            if media is None:
                raise ContractViolation(
                    f"{what}: content type {content_type!r}, {op.id} takes {sorted(body_spec['content'])}"
                )
            body = json.loads(request.content)
            self._validate(body, media["schema"], "request", f"{what} body")
            strict = strict_body_errors(op.id, body)
            if strict:
                raise ContractViolation(
                    f"{what} body breaks our strict schema of {op.id} "
                    "(lead_scoring_tests/vendor/strict_bodies.py):\n  " + "\n  ".join(strict[:5])
                )
        elif request.content:
            raise ContractViolation(f"{what}: {op.id} takes no body")
        self.checked.append(op.id)
        return op

    def check_response(self, op: Operation, response: httpx.Response) -> None:
        responses = op.spec["responses"]
        spec = responses.get(str(response.status_code)) or responses.get("default")
        if spec is None and str(response.status_code) in _DESCRIBED_ONLY.get(op.id, ()):
            spec = self.document["components"]["responses"][_DESCRIBED_ONLY[op.id][str(response.status_code)]]
        if spec is None:
            raise ContractViolation(f"{op.id} never answers {response.status_code} (declared: {sorted(responses)})")
        if "$ref" in spec:
            spec = self.document["components"]["responses"][spec["$ref"].rsplit("/", 1)[-1]]
        media = (spec.get("content") or {}).get("application/json")
        if media and response.content:
            self._validate(
                json.loads(response.content),
                media["schema"],
                "response",
                f"fake's {response.status_code} answer to {op.id}",
            )

    def transport(self, handler: Callable[[httpx.Request], httpx.Response]) -> httpx.MockTransport:
        """A MockTransport that checks each request before `handler` answers it, and the answer after."""

        def checked(request: httpx.Request) -> httpx.Response:
            op = self.check_request(request)
            response = handler(request)
            self.check_response(op, response)
            return response

        return httpx.MockTransport(checked)


@lru_cache(maxsize=1)
def _document() -> tuple[dict[str, Any], str]:
    path = document_path(CONFLUENT_SQL_OPENAPI)
    doc = CONFLUENT_SQL_OPENAPI
    return yaml.safe_load(path.read_text()), (
        f"Confluent {doc.title} {doc.api_version} OpenAPI ({doc.package}=={doc.version}:{doc.member})"
    )


def confluent_sql_contract() -> OpenApiContract:
    """The Statements/Connections API contract; fails the test (never skips) when the document is absent."""
    try:
        document, source = _document()
    except VendorSpecError as exc:
        pytest.fail(str(exc), pytrace=False)
    return OpenApiContract(document, source)


def operation_ids(contract: Optional[OpenApiContract] = None) -> set[str]:
    doc = contract.document if contract else _document()[0]
    return {op["operationId"] for item in doc["paths"].values() for m, op in item.items() if not m.startswith("x-")}

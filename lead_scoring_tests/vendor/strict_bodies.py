"""Our own strict JSON schemas for the request bodies we send to Confluent's SQL API (issue 28 #9).

Confluent's OpenAPI document is permissive where it matters: no `additionalProperties: false`, no `required`
on the statement and connection bodies, `auth_data` a bare `object`, the PlaintextProvider's `data` an opaque
string. So it accepts `auth_data: {}`, a raw service-account key where the `SERVICE_KEY` wrapper belongs and a
typo such as `spec.stoped`. These schemas close it, from the vendor's own client code (read 2026-12-07):

* confluentinc/ccloud-sdk-go-v2 @b5d63ec4 (2026-08-06), flink-gateway/v1: the field sets of
  `SqlV1Statement` (api_version, kind, metadata, name, organization_id, environment_id, spec, status, result),
  `SqlV1StatementSpec` (statement, properties, compute_pool_id, principal, stopped, execution_mode, scaling),
  `SqlV1Connection` / `SqlV1ConnectionSpec` (connection_type, endpoint, auth_data) and
  `SqlV1PlaintextProvider` (kind, data: "Authentication token in plaintext JSON string").
* confluentinc/cli @762b3ff7 (2026-08-21): internal/flink/command_connection_create.go builds
  `auth_data = {kind: "PlaintextProvider", data: json.Marshal(secrets)}`, and pkg/flink/utils.go maps the
  `--service-key` flag (the one required secret of a `vertexai` connection) to the JSON key `SERVICE_KEY`.

Only what we send is allowed: read-only fields the server sets (`status`, `result`, `api_version`, `kind`)
are refused in requests; a PUT sends back the spec it read, so the server-set spec fields the SDK declares
(`execution_mode`, `scaling`, and the older `statement_name` the document's answers carry) may appear there.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema

_ID = {"type": "string", "minLength": 1}
_LABELS = {"type": "object", "additionalProperties": {"type": "string"}}
_PROPERTIES = {"type": "object", "additionalProperties": {"type": "string"}}
_SPEC_FIELDS = {
    "statement": _ID,
    "properties": _PROPERTIES,
    "compute_pool_id": _ID,
    "principal": _ID,
    "stopped": {"type": "boolean"},
}

CREATE_STATEMENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "organization_id", "environment_id", "spec"],
    "properties": {
        "name": _ID,
        "organization_id": _ID,
        "environment_id": _ID,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": _SPEC_FIELDS,
            "required": ["statement", "properties", "compute_pool_id", "principal", "stopped"],
        },
        "metadata": {"type": "object", "additionalProperties": False, "properties": {"labels": _LABELS}},
    },
}

UPDATE_STATEMENT = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "organization_id", "environment_id", "spec", "metadata"],
    "properties": {
        "name": _ID,
        "organization_id": _ID,
        "environment_id": _ID,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                **_SPEC_FIELDS,
                "execution_mode": {"type": "string"},
                "scaling": {"type": "object"},
                "statement_name": {"type": "string"},
            },
            "required": ["statement", "compute_pool_id", "principal", "stopped"],
        },
        "metadata": {
            "type": "object",
            "additionalProperties": False,
            "required": ["resource_version"],
            "properties": {"resource_version": _ID, "labels": _LABELS},
        },
    },
}

CREATE_CONNECTION = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name", "spec"],
    "properties": {
        "name": _ID,
        "spec": {
            "type": "object",
            "additionalProperties": False,
            "required": ["connection_type", "endpoint", "auth_data"],
            "properties": {
                "connection_type": {"type": "string", "pattern": "^[A-Z0-9_]+$"},
                "endpoint": {"type": "string", "pattern": "^https://"},
                "auth_data": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["kind", "data"],
                    "properties": {"kind": {"const": "PlaintextProvider"}, "data": _ID},
                },
            },
        },
    },
}

# The JSON inside `auth_data.data`, per connection type: the CLI's required secrets, by their backend keys.
CONNECTION_SECRETS = {
    "VERTEXAI": {
        "type": "object",
        "additionalProperties": False,
        "required": ["SERVICE_KEY"],
        "properties": {"SERVICE_KEY": _ID},
    },
}

STRICT_REQUEST_BODIES: dict[str, dict[str, Any]] = {
    "createSqlv1Statement": CREATE_STATEMENT,
    "updateSqlv1Statement": UPDATE_STATEMENT,
    "createSqlv1Connection": CREATE_CONNECTION,
}


def strict_body_errors(operation_id: str, body: Any) -> list[str]:
    """Where `body` departs from our strict schema of `operation_id` (empty: it passes, or none is defined)."""
    schema = STRICT_REQUEST_BODIES.get(operation_id)
    if schema is None:
        return []
    errors = [
        f"{'/'.join(map(str, e.path)) or '(body)'}: {e.message[:300]}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(body)
    ]
    if errors or operation_id != "createSqlv1Connection":
        return errors
    spec = body["spec"]
    secrets_schema = CONNECTION_SECRETS.get(spec["connection_type"])
    if secrets_schema is None:
        return [f"spec/connection_type: {spec['connection_type']!r} has no secrets schema here; add one from the CLI"]
    try:
        secrets = json.loads(spec["auth_data"]["data"])
    except ValueError:
        return ["spec/auth_data/data: not a JSON object of secrets (the CLI sends json.Marshal of the secret map)"]
    return [
        f"spec/auth_data/data/{'/'.join(map(str, e.path)) or '(secrets)'}: {e.message[:200]}"
        for e in jsonschema.Draft7Validator(secrets_schema).iter_errors(secrets)
    ]

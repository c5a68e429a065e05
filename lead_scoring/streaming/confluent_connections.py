"""Connections of one Confluent Cloud environment: the Vertex AI connection that ML_PREDICT calls through.

The Vertex AI service-account key only travels in the body of `POST .../connections` (HTTPS), as the
`SERVICE_KEY` of a `PlaintextProvider` auth block (how the Confluent CLI sends `--service-key`); never in
SQL text, statement properties, logs or metadata. Kept apart from the statements so that the one request
carrying a secret is read on its own.
"""

from __future__ import annotations

import json
from typing import Any

from lead_scoring.streaming.confluent_api import ConfluentApiError, StatementsApi, checked


def vertex_connection_body(name: str, endpoint: str, service_key: str) -> dict[str, Any]:
    """The body of `POST .../connections` for Vertex AI (the key JSON under SERVICE_KEY, as the CLI sends it)."""
    return {
        "name": name,
        "spec": {
            "connection_type": "VERTEXAI",
            "endpoint": endpoint,
            "auth_data": {"kind": "PlaintextProvider", "data": json.dumps({"SERVICE_KEY": service_key})},
        },
    }


def ensure_vertex_connection(api: StatementsApi, name: str, endpoint: str, service_key: str) -> str:
    """Create the Vertex AI connection unless it exists; returns 'created' or 'exists'."""
    body = vertex_connection_body(name, endpoint, service_key)
    connections = f"{api.environment_path}/connections"
    with api.client() as client:
        existing = client.get(f"{connections}/{name}")
        if existing.status_code == 200:
            current = (existing.json().get("spec") or {}).get("endpoint")
            if current and current != endpoint:  # the endpoint is immutable: the operator must decide
                raise ConfluentApiError(
                    f"connection {name} points at {current}, not {endpoint}; delete it "
                    f"(`confluent flink connection delete {name}`) and roll out again"
                )
            return "exists"
        resp = client.post(connections, json=body)
    if resp.status_code == 409:
        return "exists"
    checked(resp, f"create connection {name}")  # the body (with the key) is never in the message
    return "created"

"""A Confluent Cloud for Apache Flink Statements/Connections API in memory, answering as Confluent's OpenAPI
document says (status codes and bodies; the tests put it behind OpenApiContract.transport, which checks
both the requests and these answers)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

ORG, ENV = "5e0c8f8e-2d59-4f9a-9a43-7d6f1f0b2a11", "env-abc"
HOST = "https://flink.us-central1.gcp.confluent.cloud"
BASE = f"/sql/v1/organizations/{ORG}/environments/{ENV}"
ENDPOINT = "https://us-central1-aiplatform.googleapis.com/v1/projects/p/locations/us-central1/endpoints/42"
SERVICE_KEY = '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----SECRET"}'


def _error(status: int, detail: str) -> httpx.Response:
    return httpx.Response(status, json={"errors": [{"status": str(status), "detail": detail}]})


class FakeConfluent:
    """Statements and connections in memory, answering as the OpenAPI document says; records every request.

    `conflicts`: how many PUTs to refuse with 409 (someone else changed the statement in between).
    `delete_gets`: DELETE answers 202 and the statement stays, in phase DELETING, for that many more requests
    about it (GET or POST) before GET answers 404 (the document: "A Statement is being deleted"); meanwhile a
    POST of its name answers 409, as for any name that exists.
    """

    def __init__(
        self, fail: set[str] | None = None, page_size: int | None = None, conflicts: int = 0, delete_gets: int = 0
    ):
        self.statements: dict[str, dict[str, Any]] = {}
        self.connections: dict[str, dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.fail = fail or set()
        self.version = 0
        self.page_size = page_size
        self.conflicts = conflicts
        self.delete_gets = delete_gets
        self.deleting: dict[str, int] = {}  # name -> GETs left before it is gone

    def _meta(self, kind: str, name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
        self.version += 1
        return {
            "self": f"{HOST}{BASE}/{kind}/{name}",
            "resource_version": str(self.version),
            "labels": dict(labels or {}),
        }

    def _deleting_tick(self, name: str) -> None:
        """One more request about a statement being deleted: after `delete_gets` of them it is gone."""
        if name in self.deleting:
            self.deleting[name] -= 1
            if self.deleting[name] < 0:
                del self.deleting[name]
                self.statements.pop(name, None)

    def handler(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path = request.url.path
        self.requests.append((request.method, path, body))
        assert request.headers["authorization"] == "Basic " + base64.b64encode(b"key:secret").decode()
        if path.startswith(f"{BASE}/connections"):
            name = path.rsplit("/", 1)[-1]
            if request.method == "GET":
                return (
                    httpx.Response(200, json=self.connections[name])
                    if name in self.connections
                    else _error(404, f"connection {name} not found")
                )
            conn = {
                "api_version": "sql/v1",
                "kind": "Connection",
                "name": body["name"],
                "metadata": self._meta("connections", body["name"]),
                # the secret is never echoed back; the schema still wants an auth_data block
                "spec": {**body["spec"], "auth_data": {"kind": "PlaintextProvider"}},
                "status": {"phase": "ACTIVE"},
            }
            self.connections[body["name"]] = conn
            return httpx.Response(201, json=conn)
        if request.method == "GET" and path == f"{BASE}/statements":
            items = sorted(self.statements.values(), key=lambda s: s["name"])
            start = int(request.url.params.get("page_token") or 0)
            size = self.page_size or len(items) or 1
            page = items[start : start + size]
            meta: dict[str, Any] = {"self": str(request.url)}
            if start + size < len(items):
                meta["next"] = f"{HOST}{BASE}/statements?page_size={size}&page_token={start + size}"
            return httpx.Response(
                200, json={"api_version": "sql/v1", "kind": "StatementList", "metadata": meta, "data": page}
            )
        name = path.rsplit("/", 1)[-1]
        if request.method == "POST":
            self._deleting_tick(body["name"])
            if body["name"] in self.statements:
                return _error(409, f"statement {body['name']} already exists")
            sql = body["spec"]["statement"]
            phase = "COMPLETED" if sql.startswith("CREATE") else "RUNNING"
            if body["name"] in self.fail:
                phase = "FAILED"
            self.statements[body["name"]] = {
                # the document's responses require spec.statement_name (an older field, kept in answers)
                **body,
                "spec": {**body["spec"], "statement_name": body["name"]},
                "api_version": "sql/v1",
                "kind": "Statement",
                "status": {"phase": phase, "detail": "boom" if phase == "FAILED" else ""},
                "metadata": self._meta("statements", body["name"], (body.get("metadata") or {}).get("labels")),
            }
            return httpx.Response(201, json=self.statements[body["name"]])
        if request.method == "GET":
            self._deleting_tick(name)
            return (
                httpx.Response(200, json=self.statements[name])
                if name in self.statements
                else _error(404, f"statement {name} not found")
            )
        if request.method == "PUT":
            st = self.statements[name]
            if self.conflicts:
                self.conflicts -= 1
                st["metadata"]["resource_version"] = str(int(st["metadata"]["resource_version"]) + 1000)
                return _error(409, "the statement was changed since it was read")
            if body["metadata"]["resource_version"] != st["metadata"]["resource_version"]:
                return _error(409, "resource_version is stale")
            st["spec"] = {**body["spec"], "statement_name": name}
            st["metadata"] = {**self._meta("statements", name, body["metadata"].get("labels"))}
            st["status"] = {"phase": "STOPPED" if body["spec"]["stopped"] else "RUNNING"}
            return httpx.Response(202)
        if request.method == "DELETE":
            if name not in self.statements:
                return _error(404, f"statement {name} not found")
            if self.delete_gets and name not in self.deleting:
                self.deleting[name] = self.delete_gets
                self.statements[name]["status"] = {"phase": "DELETING", "detail": ""}
            elif not self.delete_gets:
                self.statements.pop(name)
            return httpx.Response(202)
        raise AssertionError(f"unexpected {request.method} {path}")

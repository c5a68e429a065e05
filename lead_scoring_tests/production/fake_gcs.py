"""The two GCS JSON API calls preflight makes (buckets.get, buckets.testIamPermissions), on 127.0.0.1, for the
REAL google-cloud-storage client (`FakeGcs.client()`: AnonymousCredentials + api_endpoint)."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse


@dataclass
class FakeGcs:
    buckets: set[str] = field(default_factory=set)
    permissions: set[str] = field(
        default_factory=lambda: {"storage.objects.create", "storage.objects.get", "storage.objects.list"}
    )
    calls: list[tuple[str, str, dict[str, list[str]]]] = field(default_factory=list)
    _server: Optional[ThreadingHTTPServer] = None

    def start(self) -> FakeGcs:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                url = urlparse(self.path)
                query = parse_qs(url.query)
                fake.calls.append(("GET", url.path, query))
                parts = url.path.removeprefix("/storage/v1/b/").split("/")
                bucket = parts[0]
                if bucket not in fake.buckets:
                    return self._reply(404, {"error": {"code": 404, "message": "The specified bucket does not exist."}})
                if parts[1:] == ["iam", "testPermissions"]:
                    held = [p for p in query.get("permissions", []) if p in fake.permissions]
                    return self._reply(200, {"kind": "storage#testIamPermissionsResponse", "permissions": held})
                return self._reply(
                    200, {"kind": "storage#bucket", "name": bucket, "id": bucket, "location": "EUROPE-WEST4"}
                )

            def _reply(self, status: int, obj: Any) -> None:
                data = json.dumps(obj).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def client(self) -> Any:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        assert self._server is not None
        return storage.Client(
            project="acme-prod",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": f"http://127.0.0.1:{self._server.server_address[1]}"},
        )

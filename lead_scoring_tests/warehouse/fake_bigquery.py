"""A BigQuery REST API on 127.0.0.1 for the REAL google-cloud-bigquery client, recording every request.

Seam: `bigquery.Client(credentials=AnonymousCredentials(), client_options={"api_endpoint": "http://127.0.0.1:PORT"})`
(`FakeBigQuery.client()`); jobs.insert (query and multipart load), jobs.get, jobs.getQueryResults,
datasets.get, tables.list and tables.testIamPermissions answer as the v2 API does, so job.result(),
RowIterator.to_dataframe() and load_table_from_dataframe run the library's own code. Queries answer with
no rows unless `answers` maps a substring of the SQL to (schema fields, rows).
"""

from __future__ import annotations

import json
import re
import threading
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import default as default_policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, urlparse


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, list[str]]
    body: Any = None
    upload: Optional[bytes] = None  # the data part of a multipart load


@dataclass
class FakeBigQuery:
    project: str = "acme-prod"
    location: str = "US"
    datasets: dict[str, list[str]] = field(default_factory=dict)  # dataset -> table names
    forbidden: set[str] = field(default_factory=set)  # dataset ids answering 403
    permissions: set[str] = field(default_factory=lambda: {"bigquery.tables.getData", "bigquery.tables.updateData"})
    answers: dict[str, tuple[list[dict[str, str]], list[list[Any]]]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._jobs: dict[str, dict[str, Any]] = {}
        self._server: Optional[ThreadingHTTPServer] = None

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> FakeBigQuery:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                fake._serve(self, "GET")

            def do_POST(self) -> None:
                fake._serve(self, "POST")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def client(self) -> Any:
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import bigquery

        return bigquery.Client(
            project=self.project,
            location=self.location,
            credentials=AnonymousCredentials(),
            client_options=ClientOptions(api_endpoint=self.url),
        )

    # -- what was sent --------------------------------------------------------------------------
    def job_configs(self, kind: str) -> list[dict[str, Any]]:
        """`configuration.<kind>` of every job inserted (kind: query | load), in order."""
        return [
            c.body["configuration"][kind]
            for c in self.calls
            if c.method == "POST" and c.path.endswith("/jobs") and kind in (c.body or {}).get("configuration", {})
        ]

    def queries(self) -> list[str]:
        return [q["query"] for q in self.job_configs("query")]

    # -- the API ----------------------------------------------------------------------------------
    def _reply(self, handler: BaseHTTPRequestHandler, obj: Any, status: int = 200) -> None:
        data = json.dumps(obj).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _error(self, handler: BaseHTTPRequestHandler, status: int, reason: str, message: str) -> None:
        self._reply(
            handler,
            {"error": {"code": status, "message": message, "errors": [{"reason": reason, "message": message}]}},
            status,
        )

    def _job(self, job_id: str) -> dict[str, Any]:
        body = self._jobs.get(job_id, {})
        config = body.get("configuration", {})
        job: dict[str, Any] = {
            "kind": "bigquery#job",
            "id": f"{self.project}:{self.location}.{job_id}",
            "jobReference": {"projectId": self.project, "jobId": job_id, "location": self.location},
            "configuration": config,
            "status": {"state": "DONE"},
            "statistics": {},
        }
        if "query" in config:
            job["statistics"]["query"] = {"numDmlAffectedRows": "1", "statementType": "SELECT"}
        return job

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        url = urlparse(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body: Any = None
        upload = None
        content_type = handler.headers.get("Content-Type", "")
        if "multipart" in content_type:
            message = BytesParser(policy=default_policy).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
            )
            parts = list(message.iter_parts())
            body = json.loads(parts[0].get_content())
            upload = parts[1].get_payload(decode=True)
        elif raw:
            body = json.loads(raw)
        self.calls.append(Call(method, url.path, parse_qs(url.query), body, upload))
        path = url.path.removeprefix("/upload").removeprefix("/bigquery/v2")
        project = f"/projects/{self.project}"
        if method == "POST" and path == f"{project}/jobs":
            job_id = (body.get("jobReference") or {}).get("jobId") or f"job{len(self.calls)}"
            self._jobs[job_id] = body
            return self._reply(handler, self._job(job_id))
        if method == "GET" and (m := re.fullmatch(rf"{project}/jobs/([^/]+)", path)):
            return self._reply(handler, self._job(m.group(1)))
        if method == "GET" and (m := re.fullmatch(rf"{project}/queries/([^/]+)", path)):
            sql = self._jobs.get(m.group(1), {}).get("configuration", {}).get("query", {}).get("query", "")
            schema, rows = next((a for key, a in self.answers.items() if key in sql), ([], []))
            return self._reply(
                handler,
                {
                    "kind": "bigquery#getQueryResultsResponse",
                    "jobComplete": True,
                    "jobReference": {"projectId": self.project, "jobId": m.group(1), "location": self.location},
                    "schema": {"fields": schema},
                    "totalRows": str(len(rows)),
                    "rows": [{"f": [{"v": None if v is None else str(v)} for v in row]} for row in rows],
                },
            )
        if m := re.fullmatch(rf"{project}/datasets/([^/]+)(/tables)?(?:/([^/:]+):testIamPermissions)?", path):
            dataset, tables, table = m.group(1), m.group(2), m.group(3)
            if dataset in self.forbidden:
                return self._error(
                    handler,
                    403,
                    "accessDenied",
                    f"Access Denied: Dataset {self.project}:{dataset}: Permission bigquery.datasets.get denied",
                )
            if dataset not in self.datasets:
                return self._error(handler, 404, "notFound", f"Not found: Dataset {self.project}:{dataset}")
            if table:
                if method != "POST" or tables is None:
                    return self._error(handler, 400, "invalid", path)
                if table not in self.datasets[dataset]:
                    return self._error(handler, 404, "notFound", f"Not found: Table {self.project}:{dataset}.{table}")
                held = [p for p in body.get("permissions", []) if p in self.permissions]
                return self._reply(handler, {"permissions": held} if held else {})
            if tables:
                return self._reply(
                    handler,
                    {
                        "kind": "bigquery#tableList",
                        "totalItems": len(self.datasets[dataset]),
                        "tables": [
                            {
                                "kind": "bigquery#table",
                                "tableReference": {"projectId": self.project, "datasetId": dataset, "tableId": t},
                            }
                            for t in self.datasets[dataset]
                        ],
                    },
                )
            return self._reply(
                handler,
                {
                    "kind": "bigquery#dataset",
                    "id": f"{self.project}:{dataset}",
                    "datasetReference": {"projectId": self.project, "datasetId": dataset},
                    "location": self.location,
                },
            )
        return self._error(handler, 404, "notFound", f"{method} {url.path}")

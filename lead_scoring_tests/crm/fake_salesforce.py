"""A fake Salesforce org behind `requests`: SOAP login and Bulk API 2.0 ingest jobs, recording every call.

Mounted on a `requests.Session` for `https://`, so simple-salesforce runs its real HTTP code paths
(URLs, headers, bodies, error mapping) against it. It behaves like the real API where the writeback
depends on it: 403 REQUEST_LIMIT_EXCEEDED while over the limit, 401 INVALID_SESSION_ID without the
session token, jobs that need polling, `failedResults/` CSV with `sf__Id,sf__Error` + the sent columns
for unknown Ids, and a Failed job when a column is not a field of the object.
"""

from __future__ import annotations

import copy
import csv
import io
import itertools
import json
import re
from dataclasses import dataclass, field
from typing import Any

import requests
from requests.adapters import BaseAdapter

from lead_scoring.contract.fields import LEAD_FIELDS

SESSION_ID = "00Dxx0000000001!FAKE.SESSION"
INSTANCE = "acme.my.salesforce.com"
LOGIN_URL = re.compile(r"^https://login\.salesforce\.com/services/Soap/u/(?P<version>[\d.]+)$")
OAUTH_TOKEN = re.compile(r"^https://(?P<host>[a-z0-9.-]+)\.salesforce\.com/services/oauth2/token$")
DESCRIBE = re.compile(
    r"^https://"
    + re.escape(INSTANCE)
    + r"/services/data/v(?P<version>[\d.]+)/sobjects/(?P<object>[A-Za-z_]+)/describe/?$"
)
# describe's `fields` of the custom score fields as an admin creates them (docs/production.md)
SCORE_FIELD_DESCRIBE = {
    "Lead_Score__c": {"type": "double", "precision": 3, "scale": 0, "updateable": True},
    "Lead_Score_Reasons__c": {"type": "textarea", "length": 32768, "updateable": True},
    "Lead_Score_Model__c": {"type": "string", "length": 80, "updateable": True},
    "Lead_Grade__c": {
        "type": "picklist",
        "restrictedPicklist": True,
        "picklistValues": [
            {"active": True, "defaultValue": False, "label": g, "validFor": None, "value": g} for g in "ABCD"
        ],
        "updateable": True,
    },
}
# ... and the contract's custom fields the source reads, as docs/production.md section 3 has them created
CONTRACT_FIELD_DESCRIBE = {
    f.name: {"type": {"string": "string", "number": "double", "boolean": "boolean"}[f.type.value], "updateable": True}
    for f in LEAD_FIELDS
    if f.name.endswith("__c")
}
LIMITS = re.compile(r"^https://" + re.escape(INSTANCE) + r"/services/data/v(?P<version>[\d.]+)/limits/?$")
INGEST = re.compile(
    r"^https://"
    + re.escape(INSTANCE)
    + r"/services/data/v(?P<version>[\d.]+)/jobs/ingest(?:/(?P<job>[^/]+))?(?:/(?P<rest>[^/]+)/?)?$"
)
FIELDS = {
    "Lead": {"Id", "Lead_Score__c", "Lead_Score_Reasons__c", "Lead_Score_Model__c", "Lead_Grade__c"},
    "Contact": {"Id", "Lead_Score__c", "Lead_Score_Reasons__c", "Lead_Score_Model__c", "Lead_Grade__c"},
}

_LOGIN_OK = f"""<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns="urn:partner.soap.sforce.com">
<soapenv:Body><loginResponse><result>
<metadataServerUrl>https://{INSTANCE}/services/Soap/m/62.0/00Dxx</metadataServerUrl>
<serverUrl>https://{INSTANCE}/services/Soap/u/62.0/00Dxx</serverUrl>
<sessionId>{SESSION_ID}</sessionId>
</result></loginResponse></soapenv:Body></soapenv:Envelope>"""

_LOGIN_FAULT = """<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:sf="urn:fault.partner.soap.sforce.com">
<soapenv:Body><soapenv:Fault><faultcode>INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid username,
password, security token; or user locked out.</faultstring><detail><sf:LoginFault><sf:exceptionCode>INVALID_LOGIN
</sf:exceptionCode><sf:exceptionMessage>Invalid username, password, security token; or user locked out.
</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"""  # noqa: E501


@dataclass
class Call:
    method: str
    url: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Job:
    id: str
    object: str
    operation: str
    spec: dict[str, Any]
    state: str = "Open"
    csv_text: str = ""
    polls: int = 0
    failed: list[dict[str, str]] = field(default_factory=list)
    processed: int = 0
    error: str = ""


class FakeSalesforce(BaseAdapter):
    def __init__(
        self,
        username: str,
        password: str,
        token: str,
        known_ids: set[str],
        limit_errors: int = 0,
        polls_before_complete: int = 1,
    ):
        super().__init__()
        self.credentials = (username, password + token)
        self.known_ids = set(known_ids)
        self.limit_errors = limit_errors  # next N data calls answer 403 REQUEST_LIMIT_EXCEEDED
        self.expire_sessions = 0  # next N data calls answer 401 INVALID_SESSION_ID (session timed out)
        self.polls_before_complete = polls_before_complete
        self.calls: list[Call] = []
        self.jobs: dict[str, Job] = {}
        self.logins = 0
        self.records: dict[str, dict[str, str]] = {}  # what the org holds after the updates
        self._ids = (f"750xx{n:010d}" for n in itertools.count(1))
        # sobjects/<object>/describe: field name -> describe attributes (tests remove or alter fields)
        # JWT bearer flow: the connected app's certificate (PEM public key) and the consumer key it is for
        self.jwt_public_key: str | None = None
        self.jwt_consumer_key: str | None = None
        self.jwt_assertions: list[dict[str, Any]] = []  # decoded claims of every accepted assertion
        # GET /services/data/vXX.X/limits: shaped like Salesforce's documented answer (a JSON object of
        # {"Max": n, "Remaining": n} per limit; REST API Developer Guide, "Limits"); tests change the numbers
        self.limits: dict[str, dict[str, int]] = {
            "DailyApiRequests": {"Max": 200_000, "Remaining": 199_500},
            "DailyBulkApiBatches": {"Max": 15_000, "Remaining": 15_000},
            "DailyBulkV2QueryJobs": {"Max": 10_000, "Remaining": 9_990},
            "DailyBulkV2QueryFileStorageMB": {"Max": 976_562, "Remaining": 976_562},
            "DataStorageMB": {"Max": 5_120, "Remaining": 4_900},
        }
        self.described: dict[str, dict[str, dict[str, Any]]] = {
            obj: {
                "Id": {"type": "id", "updateable": False},
                **copy.deepcopy(CONTRACT_FIELD_DESCRIBE),
                **copy.deepcopy(SCORE_FIELD_DESCRIBE),
            }
            for obj in ("Lead", "Contact")
        }

    def session(self) -> requests.Session:
        s = requests.Session()
        s.mount("https://", self)
        return s

    # ---- requests adapter ------------------------------------------------------------------------

    def close(self) -> None:
        pass

    def send(self, request: requests.PreparedRequest, **_: Any) -> requests.Response:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        self.calls.append(Call(request.method or "", request.url or "", dict(request.headers), body))
        status, payload, ctype = self._route(request.method or "", request.url or "", dict(request.headers), body)
        resp = requests.Response()
        resp.status_code = status
        resp.url = request.url
        resp.request = request
        resp.headers["Content-Type"] = ctype
        resp._content = payload if isinstance(payload, bytes) else payload.encode()
        return resp

    @staticmethod
    def _json(status: int, obj: Any) -> tuple[int, str, str]:
        return status, json.dumps(obj), "application/json"

    def _route(self, method: str, url: str, headers: dict[str, str], body: bytes) -> tuple[int, Any, str]:
        m = LOGIN_URL.match(url)
        if m and method == "POST":
            text = body.decode()
            user = re.search(r"<n1:username>(.*?)</n1:username>", text)
            pwd = re.search(r"<n1:password>(.*?)</n1:password>", text)
            if not user or not pwd or (user.group(1), pwd.group(1)) != self.credentials:
                return 500, _LOGIN_FAULT, "text/xml"
            self.logins += 1
            return 200, _LOGIN_OK, "text/xml"
        m = OAUTH_TOKEN.match(url)
        if m and method == "POST" and self.jwt_public_key:
            import urllib.parse

            import jwt

            form = dict(urllib.parse.parse_qsl(body.decode()))
            if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
                return self._json(400, {"error": "unsupported_grant_type"})
            try:
                claims = jwt.decode(
                    form["assertion"],
                    self.jwt_public_key,
                    algorithms=["RS256"],
                    audience=["https://login.salesforce.com", "https://test.salesforce.com"],
                )
            except jwt.PyJWTError as exc:
                return self._json(400, {"error": "invalid_grant", "error_description": str(exc)})
            if claims.get("iss") != self.jwt_consumer_key or claims.get("sub") != self.credentials[0]:
                return self._json(
                    400, {"error": "invalid_grant", "error_description": "user hasn't approved this consumer"}
                )
            self.jwt_assertions.append({**claims, "token_host": m.group("host")})
            self.logins += 1
            return self._json(
                200, {"access_token": SESSION_ID, "instance_url": f"https://{INSTANCE}", "token_type": "Bearer"}
            )
        m = LIMITS.match(url)
        if m and method == "GET":
            if headers.get("Authorization") != f"Bearer {SESSION_ID}":
                return self._json(401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])
            return self._json(200, self.limits)
        m = DESCRIBE.match(url)
        if m and method == "GET":
            if headers.get("Authorization") != f"Bearer {SESSION_ID}":
                return self._json(401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])
            fields = self.described.get(m.group("object"))
            if fields is None:
                return self._json(404, [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}])
            return self._json(
                200,
                {
                    "name": m.group("object"),
                    "updateable": True,
                    "fields": [{"name": k, **v} for k, v in fields.items()],
                },
            )
        m = INGEST.match(url)
        if not m:
            return self._json(404, [{"errorCode": "NOT_FOUND", "message": f"no route {method} {url}"}])
        if self.expire_sessions > 0:
            self.expire_sessions -= 1
            return self._json(401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])
        if headers.get("Authorization") != f"Bearer {SESSION_ID}":
            return self._json(401, [{"errorCode": "INVALID_SESSION_ID", "message": "Session expired or invalid"}])
        if self.limit_errors > 0:
            self.limit_errors -= 1
            return self._json(
                403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "TotalRequests Limit exceeded."}]
            )
        job_id, rest = m.group("job"), m.group("rest")
        if job_id is None and method == "POST":
            spec = json.loads(body)
            job = Job(next(self._ids), spec["object"], spec["operation"], spec)
            self.jobs[job.id] = job
            return self._json(
                200,
                {
                    "id": job.id,
                    "operation": job.operation,
                    "object": job.object,
                    "state": "Open",
                    "contentType": "CSV",
                    "apiVersion": float(m.group("version")),
                    "lineEnding": spec.get("lineEnding"),
                    "columnDelimiter": spec.get("columnDelimiter"),
                },
            )
        job = self.jobs.get(job_id or "")
        if job is None:
            return self._json(404, [{"errorCode": "NOT_FOUND", "message": "job not found"}])
        if rest == "batches" and method == "PUT":
            if job.state != "Open" or not headers.get("Content-Type", "").startswith("text/csv"):
                return self._json(400, [{"errorCode": "INVALIDJOBSTATE", "message": "bad upload"}])
            job.csv_text = body.decode()
            return 201, b"", "application/json"
        if rest is None and method == "PATCH":
            job.state = json.loads(body)["state"]
            if job.state == "UploadComplete":
                self._process(job)
            return self._json(200, {"id": job.id, "state": job.state})
        if rest is None and method == "GET":
            if job.state == "UploadComplete":
                job.polls += 1
                if job.polls > self.polls_before_complete:
                    job.state = "Failed" if job.error else "JobComplete"
                else:
                    return self._json(200, {"id": job.id, "state": "InProgress"})
            return self._json(
                200,
                {
                    "id": job.id,
                    "state": job.state,
                    "object": job.object,
                    "numberRecordsProcessed": job.processed,
                    "numberRecordsFailed": len(job.failed),
                    **({"errorMessage": job.error} if job.error else {}),
                },
            )
        if rest == "failedResults" and method == "GET":
            out = io.StringIO()
            rows = list(csv.DictReader(io.StringIO(job.csv_text)))
            columns = list(rows[0].keys()) if rows else ["Id"]
            writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_ALL)
            writer.writerow(["sf__Id", "sf__Error", *columns])
            for row in job.failed:
                writer.writerow(["", row["sf__Error"], *(row[c] for c in columns)])
            return 200, out.getvalue(), "text/csv"
        return self._json(405, [{"errorCode": "METHOD_NOT_ALLOWED", "message": f"{method} {url}"}])

    def _process(self, job: Job) -> None:
        rows = list(csv.DictReader(io.StringIO(job.csv_text)))
        unknown = sorted(set(rows[0].keys()) - FIELDS[job.object]) if rows else []
        if unknown:
            job.error = f"InvalidBatch : Field name not found : {unknown[0]}"
            return
        for row in rows:
            if row["Id"] not in self.known_ids:
                job.failed.append({**row, "sf__Error": "INVALID_CROSS_REFERENCE_KEY:invalid cross reference id:--"})
            else:
                self.records[row["Id"]] = row
        job.processed = len(rows)

    # ---- what the tests read -----------------------------------------------------------------------

    def data_calls(self) -> list[Call]:
        return [c for c in self.calls if "/services/data/" in c.url]

    def uploads(self) -> list[Call]:
        return [c for c in self.calls if c.method == "PUT" and c.url.endswith("/batches")]

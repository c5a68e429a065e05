"""Known records the system sends itself: the deployment smoke record, latency probes and demo leads.

A probe is a valid, PII-free contract Lead whose Id starts with `PROBE_ID_PREFIX`: training, drift, the
CRM writeback and the Salesforce sink skip such Ids, and the warehouse sink tags them `_source = 'probe'`.

A demo lead is a synthetic lead streamed by `lead-scoring leads generate` (the local demo's trickle): its
Id starts with `DEMO_ID_PREFIX` and the warehouse sink tags it `_source = 'demo'`. Demo leads, like the
seed rows (`_source = 'seed'`), train a model only until real labelled leads exist (`DEMO_SOURCES`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

PROBE_ID_PREFIX = "PROBE-"
DEMO_ID_PREFIX = "DEMO-"
# `_source` values of synthetic rows: the shipped sample seeded by `crm_leads_raw`, and streamed demo leads.
DEMO_SOURCES = ("seed", "demo")

# A fixed, PII-free contract record: the deployment smoke test and the rollout preflight send it and
# compare the served score with the score the artifact itself gives it.
SMOKE_RECORD: dict[str, Any] = {
    "Id": "00Q000000SMOKE0001",
    "_ObjectType": "Lead",
    "_EventType": "created",
    "LastModifiedDate": "2026-01-01T00:00:00Z",
    "LeadSource": "Google",
    "Lead_Origin__c": "Landing Page Submission",
    "HasOptedOutOfEmail": False,
    "DoNotCall": False,
    "Total_Visits__c": 4.0,
    "Time_On_Website__c": 640.0,
    "Page_Views_Per_Visit__c": 2.5,
    "Last_Activity__c": "Email Opened",
    "Country": "India",
    "City": "Mumbai",
    "Occupation__c": "Working Professional",
    "Course_Priority__c": "Better Career Prospects",
}


def is_probe(record_id: object) -> bool:
    return isinstance(record_id, str) and record_id.startswith(PROBE_ID_PREFIX)


def is_demo(record_id: object) -> bool:
    return isinstance(record_id, str) and record_id.startswith(DEMO_ID_PREFIX)


def iso_ms(now: datetime) -> str:
    """A contract timestamp with milliseconds, UTC ('2026-01-01T00:00:00.123Z')."""
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def probe_record(record_id: str, now: datetime) -> dict[str, Any]:
    """A valid, PII-free contract Lead (typical feature values) marked as a probe by its Id."""
    if not is_probe(record_id):
        raise ValueError(f"probe ids start with {PROBE_ID_PREFIX!r}; got {record_id!r}")
    stamp = iso_ms(now)
    return {
        "Id": record_id,
        "_ObjectType": "Lead",
        "_EventType": "created",
        "LastModifiedDate": stamp,
        "CreatedDate": stamp,
        "LeadSource": "Google",
        "Lead_Origin__c": "Landing Page Submission",
        "HasOptedOutOfEmail": False,
        "DoNotCall": False,
        "Total_Visits__c": 3.0,
        "Time_On_Website__c": 420.0,
        "Page_Views_Per_Visit__c": 2.0,
        "Last_Activity__c": "Email Opened",
        "Occupation__c": "Unemployed",
    }

"""Realistic synthetic Salesforce Leads and Contacts with a learnable conversion signal.

Vectorized with numpy so a million rows take seconds; deterministic for a given seed. The
category vocabularies and rates follow the X Education export (about 38% converted), and the
outcome depends on the features through a known logistic model, so a model can learn it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lead_scoring.contract import FIELD_NAMES

# (value, share, effect on the log-odds of converting)
_ORIGIN = [
    ("Landing Page Submission", 0.53, 0.0),
    ("API", 0.39, -0.3),
    ("Lead Add Form", 0.07, 2.4),
    ("Lead Import", 0.01, -0.8),
]
_SOURCE = [
    ("Google", 0.31, 0.2),
    ("Direct Traffic", 0.28, -0.2),
    ("Olark Chat", 0.19, -0.6),
    ("Organic Search", 0.12, 0.0),
    ("Reference", 0.06, 1.6),
    ("Welingak Website", 0.02, 2.2),
    ("Referral Sites", 0.02, -0.3),
]
_ACTIVITY = [
    ("Email Opened", 0.37, 0.5),
    ("SMS Sent", 0.30, 1.3),
    ("Olark Chat Conversation", 0.11, -1.2),
    ("Page Visited on Website", 0.07, -0.3),
    ("Converted to Lead", 0.05, -0.9),
    ("Email Bounced", 0.04, -1.5),
    ("Email Link Clicked", 0.03, 0.1),
    ("Form Submitted on Website", 0.02, 0.0),
    ("Unreachable", 0.01, -0.4),
]
_OCCUPATION = [
    (None, 0.29, -0.9),
    ("Unemployed", 0.60, 0.0),
    ("Working Professional", 0.08, 2.3),
    ("Student", 0.02, -0.2),
    ("Other", 0.01, 0.8),
]
_SPECIALIZATION = [
    (None, 0.37, -0.4),
    ("Finance Management", 0.11, 0.2),
    ("Human Resource Management", 0.09, 0.3),
    ("Marketing Management", 0.09, 0.3),
    ("Operations Management", 0.05, 0.2),
    ("Business Administration", 0.04, 0.1),
    ("IT Projects Management", 0.04, 0.0),
    ("Supply Chain Management", 0.04, 0.1),
    ("Banking, Investment And Insurance", 0.04, 0.4),
    ("Media and Advertising", 0.02, 0.0),
    ("Travel and Tourism", 0.02, -0.2),
    ("International Business", 0.02, 0.0),
    ("Healthcare Management", 0.02, 0.2),
    ("E-COMMERCE", 0.01, 0.0),
    ("Hospitality Management", 0.01, -0.1),
    ("Retail Management", 0.01, -0.1),
    ("Rural and Agribusiness", 0.01, 0.0),
    ("E-Business", 0.01, 0.0),
    ("Services Excellence", 0.01, 0.0),
]
_COUNTRY = [
    ("India", 0.70, 0.0),
    (None, 0.26, 0.3),
    ("United States", 0.01, -0.2),
    ("United Arab Emirates", 0.01, 0.1),
    ("Singapore", 0.01, 0.0),
    ("Saudi Arabia", 0.01, -0.2),
]
_CITY = [
    (None, 0.40, 0.1),
    ("Mumbai", 0.35, 0.0),
    ("Thane & Outskirts", 0.08, 0.0),
    ("Other Cities", 0.07, -0.1),
    ("Other Cities of Maharashtra", 0.05, 0.0),
    ("Other Metro Cities", 0.04, 0.0),
    ("Tier II Cities", 0.01, -0.1),
]
_PRIORITY = [("Better Career Prospects", 0.71, 0.4), (None, 0.29, -0.5)]
_REFERRAL = [
    (None, 0.78, 0.0),
    ("Online Search", 0.09, 0.0),
    ("Word Of Mouth", 0.04, 0.3),
    ("Student of SomeSchool", 0.03, -0.1),
    ("Other", 0.02, 0.0),
    ("Multiple Sources", 0.02, 0.0),
    ("Advertisements", 0.01, 0.0),
    ("Social Media", 0.01, 0.0),
]
_STATUS_OPEN = "Open - Not Contacted"
_FIRST = [
    "Aarav",
    "Diya",
    "Ishaan",
    "Meera",
    "Rohan",
    "Saanvi",
    "Vikram",
    "Ananya",
    "Kabir",
    "Priya",
    "Arjun",
    "Nisha",
    "Dev",
    "Kavya",
    "Rahul",
    "Sara",
    "Maya",
    "Omar",
    "Lena",
    "Tom",
]
_LAST = [
    "Sharma",
    "Patel",
    "Iyer",
    "Khan",
    "Gupta",
    "Reddy",
    "Singh",
    "Das",
    "Nair",
    "Mehta",
    "Smith",
    "Garcia",
    "Chen",
    "Okafor",
    "Novak",
    "Rossi",
    "Kim",
    "Silva",
    "Haddad",
    "Berg",
]
_COMPANIES = [
    "Acme Learning",
    "Globex",
    "Initech",
    "Umbrella Edu",
    "Hooli",
    "Stark Analytics",
    "Wayne Tech",
    "Tyrell Data",
    "Soylent Foods",
    "Wonka Industries",
]
_TITLES = [None, "Analyst", "Engineer", "Manager", "Student", "Consultant", "Associate"]
_ALPHABET = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
BASE_RATE_LOGIT = -1.4  # with the effects below this gives ~38% converted, like the X Education data


def _pick(rng: np.random.Generator, table: list[tuple], n: int) -> tuple[np.ndarray, np.ndarray]:
    values = np.array([t[0] for t in table], dtype=object)
    shares = np.array([t[1] for t in table], dtype=float)
    effects = np.array([t[2] for t in table], dtype=float)
    idx = rng.choice(len(table), size=n, p=shares / shares.sum())
    return values[idx], effects[idx]


def _salesforce_ids(rng: np.random.Generator, prefixes: np.ndarray) -> np.ndarray:
    # 15-char ids: 3-char key prefix + 12 random base62 characters (unique with overwhelming odds).
    body = _ALPHABET[rng.integers(0, len(_ALPHABET), size=(len(prefixes), 12))]
    return np.char.add(prefixes.astype(str), np.array(["".join(r) for r in body.tolist()], dtype=str))


def _iso(ts: np.ndarray) -> np.ndarray:
    return np.datetime_as_string(ts.astype("datetime64[ms]"), unit="ms", timezone="UTC")


def generate_leads(
    rows: int,
    seed: int = 7,
    contact_share: float = 0.15,
    end: datetime | None = None,
    days: int = 365,
    outcome_lag_days: int = 14,
) -> pd.DataFrame:
    """`rows` records in contract columns, one per Lead/Contact, in their latest state.

    Leads created within `outcome_lag_days` of `end` have no outcome yet (IsConverted null), as in a
    live CRM; the rest carry the outcome drawn from the conversion model.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    rng = np.random.default_rng(seed)
    end = end or datetime(2026, 11, 1, tzinfo=UTC)
    end64 = np.datetime64(end.replace(tzinfo=None), "ms")
    n = rows

    is_contact = rng.random(n) < contact_share
    object_type = np.where(is_contact, "Contact", "Lead")
    ids = _salesforce_ids(rng, np.where(is_contact, "003", "00Q"))

    origin, e_origin = _pick(rng, _ORIGIN, n)
    source, e_source = _pick(rng, _SOURCE, n)
    activity, e_activity = _pick(rng, _ACTIVITY, n)
    occupation, e_occ = _pick(rng, _OCCUPATION, n)
    specialization, e_spec = _pick(rng, _SPECIALIZATION, n)
    country, e_country = _pick(rng, _COUNTRY, n)
    city, e_city = _pick(rng, _CITY, n)
    priority, e_priority = _pick(rng, _PRIORITY, n)
    referral, e_ref = _pick(rng, _REFERRAL, n)

    # Engagement: heavy-tailed visits and time; Lead Add Form leads rarely browse first.
    form = origin == "Lead Add Form"
    visits = np.where(form, 0.0, np.round(rng.gamma(1.4, 2.6, n)))
    visits = np.where(rng.random(n) < 0.015, np.nan, visits)
    time_on_site = np.where(visits == 0, 0.0, np.round(rng.gamma(1.1, 420.0, n) * (1 + 0.08 * np.nan_to_num(visits))))
    time_on_site = np.minimum(time_on_site, 2400.0)
    pages = np.where(visits == 0, 0.0, np.round(rng.gamma(2.0, 1.2, n), 2))
    pages = np.where(np.isnan(visits), np.nan, pages)

    opted_out = rng.random(n) < 0.08
    do_not_call = rng.random(n) < 0.001
    ads = {
        name: rng.random(n) < share
        for name, share in (
            ("Ad_Search__c", 0.002),
            ("Ad_Magazine__c", 0.0),
            ("Ad_Newspaper_Article__c", 0.0003),
            ("Ad_Forums__c", 0.0001),
            ("Ad_Newspaper__c", 0.0001),
            ("Ad_Digital__c", 0.0004),
            ("Ad_Recommendation__c", 0.0008),
        )
    }
    free_copy = rng.random(n) < 0.31

    minutes = np.nan_to_num(time_on_site) / 60.0
    logit = (
        BASE_RATE_LOGIT
        + e_origin
        + e_source
        + e_activity
        + e_occ
        + e_spec * 0.5
        + e_country * 0.5
        + e_city * 0.5
        + e_priority
        + e_ref
        + 1.6 * np.tanh(minutes / 15.0)
        - 0.15 * np.log1p(np.nan_to_num(visits))
        - 1.2 * opted_out
        - 0.2 * free_copy
        + rng.normal(0.0, 0.3, n)
    )
    converted = rng.random(n) < 1.0 / (1.0 + np.exp(-logit))

    span_ms = int(days * 86_400_000)
    created = end64 - rng.integers(0, span_ms, size=n).astype("timedelta64[ms]")
    modified = created + rng.integers(1_000, 3 * 86_400_000, size=n).astype("timedelta64[ms]")
    modified = np.minimum(modified, end64)
    outcome_known = created < end64 - np.timedelta64(outcome_lag_days * 86_400_000, "ms")
    is_converted = np.where(outcome_known, converted, None)
    status = np.where(~outcome_known, _STATUS_OPEN, np.where(converted, "Closed - Converted", "Closed - Not Converted"))

    first = np.array(_FIRST, dtype=object)[rng.integers(0, len(_FIRST), n)]
    last = np.array(_LAST, dtype=object)[rng.integers(0, len(_LAST), n)]
    email = np.char.lower(
        np.char.add(np.char.add(first.astype(str), "."), np.char.add(last.astype(str), "@example.com"))
    )

    frame = pd.DataFrame(
        {
            "Id": ids,
            "_ObjectType": object_type,
            "_EventType": "created",
            "LastModifiedDate": _iso(modified),
            "CreatedDate": _iso(created),
            "FirstName": first,
            "LastName": last,
            "Company": np.array(_COMPANIES, dtype=object)[rng.integers(0, len(_COMPANIES), n)],
            "Email": email,
            "Title": np.array(_TITLES, dtype=object)[rng.integers(0, len(_TITLES), n)],
            "Lead_Number__c": (np.arange(n) + 600_000 + seed * 1_000_000).astype(str),
            "LeadSource": source,
            "Lead_Origin__c": origin,
            "HasOptedOutOfEmail": opted_out,
            "DoNotCall": do_not_call,
            "Total_Visits__c": visits,
            "Time_On_Website__c": time_on_site,
            "Page_Views_Per_Visit__c": pages,
            "Last_Activity__c": activity,
            "Country": country,
            "City": city,
            "Specialization__c": specialization,
            "Occupation__c": occupation,
            "Course_Priority__c": priority,
            "Referral_Channel__c": referral,
            **ads,
            "Free_Copy_Requested__c": free_copy,
            "Status": status,
            "IsConverted": is_converted,
        }
    )
    for name in FIELD_NAMES:  # leakage fields: not generated (the CRM fills them after contact)
        if name not in frame.columns:
            frame[name] = None
    return frame[list(FIELD_NAMES)]


def to_events(leads: pd.DataFrame, conversion_delay_days: float = 7.0, seed: int = 7) -> pd.DataFrame:
    """Split latest-state rows into the CRM's events: `created` without the outcome, then an
    `updated` event carrying `IsConverted` for leads whose outcome is known."""
    rng = np.random.default_rng(seed + 1)
    created = leads.copy()
    created["_EventType"] = "created"
    created["IsConverted"] = None
    created["Status"] = _STATUS_OPEN
    created["LastModifiedDate"] = created["CreatedDate"]
    decided = leads[leads["IsConverted"].notna()].copy()
    delay = rng.exponential(conversion_delay_days * 86_400_000, len(decided)).astype("int64")
    base = pd.to_datetime(decided["CreatedDate"], utc=True, format="ISO8601")
    decided["LastModifiedDate"] = (base + pd.to_timedelta(delay + 60_000, unit="ms")).dt.strftime(
        "%Y-%m-%dT%H:%M:%S.%f"
    ).str[:-3] + "Z"
    decided["_EventType"] = "updated"
    events = pd.concat([created, decided], ignore_index=True)
    return events.sort_values("LastModifiedDate", kind="stable").reset_index(drop=True)


def _is_null(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    return isinstance(value, float) and np.isnan(value)


def _plain(value: object) -> object:
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def frame_records(frame: pd.DataFrame) -> Iterator[dict[str, Any]]:
    """Rows as contract JSON objects (absent = null, so nulls are left out)."""
    columns = list(frame.columns)
    for values in frame.itertuples(index=False, name=None):
        yield {k: _plain(v) for k, v in zip(columns, values, strict=True) if not _is_null(v)}


def write_frame(frame: pd.DataFrame, path: Path) -> None:
    """Write CSV, Parquet or JSON Lines by the file's extension."""
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        frame.to_parquet(path, index=False)
    elif suffix in (".jsonl", ".ndjson"):
        # One contract record per line; absent fields mean null, so nulls are left out.
        with path.open("w") as handle:
            for record in frame_records(frame):
                handle.write(json.dumps(record, separators=(",", ":")) + "\n")
    elif suffix == ".csv":
        frame.to_csv(path, index=False)
    else:
        raise ValueError(f"unsupported output format {suffix!r}: use .csv, .parquet or .jsonl")

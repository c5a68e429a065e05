"""Score writeback: `lead_scores` / `contact_scores` -> the CRM.

Local profile: the `crm_leads` table in the warehouse (upsert by Id, a newer score wins).
gcp profile: Salesforce through Bulk API 2.0 (`lead_scoring.crm.salesforce`).

Records that cannot be written (a malformed score, an unknown Id, a field the CRM rejects) are kept
in `crm_writeback_errors` with the reason and the worker goes on. Probe leads (`PROBE-` Ids, sent by
the latency sensor) are never written to the CRM, nor are scores of erased leads (`lifecycle.erasure`):
still in Kafka until retention removes them, they are dropped here, and a score written while the same
lead was being erased is cleared again right after.

Write suppression: a score whose written fields (`WRITTEN_FIELDS`: score, reasons, model version, grade) equal
what the CRM record already holds is not written -- no API call, and no moved `LastModifiedDate` to echo back. A
change of features that leaves all four as they were (the statements score it: its features changed) costs
nothing in the CRM. Counted as `unchanged_skipped` (heartbeat, the worker's log). The writer says what the CRM
holds (`CrmWriter.current`): the local CRM reads its table; a writer that cannot know without an API call of its
own answers nothing and every score is written.
"""

from __future__ import annotations

import json
import logging
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Optional, Protocol

import pandas as pd

from lead_scoring.contract import (
    OBJECT_TYPES,
    SCORE_FIELDS,
    SCORE_GRADES,
)
from lead_scoring.contract.samples import is_probe
from lead_scoring.crm.quarantine import (
    QUARANTINE_KEY,
    QUARANTINE_TABLE,
    decode_safely,
    describe_error,
    key_text,
    payload_text,
    quarantine_frame,
    safe_text,
    with_storable_text,
)
from lead_scoring.lifecycle.erasure import ErasureRegister
from lead_scoring.warehouse.resources import Warehouse

log = logging.getLogger(__name__)

ERROR_TABLE = "crm_writeback_errors"
# What the CRM record gets: the score, its reasons, the model version and the grade (null for a model
# without grades: the field is cleared, never left at an older model's grade).
WRITTEN_FIELDS = ("Lead_Score__c", "Lead_Score_Reasons__c", "Lead_Score_Model__c", "Lead_Grade__c")
# What erasing a lead clears in the CRM: every score field the contract gives a CRM record.
CLEARED_FIELDS = WRITTEN_FIELDS
# The contract's score fields (the nullable ones are null when a record does not carry them).
SCORE_FIELD_NAMES = tuple(f.name for f in SCORE_FIELDS)


def _timestamp(value: Any) -> Optional[pd.Timestamp]:
    """A score timestamp: epoch milliseconds (the contract) or ISO-8601 text (Flink's JSON format)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        try:  # a huge integer overflows a float, a far date the nanosecond range: not a timestamp either way
            return pd.Timestamp(int(value), unit="ms", tz="UTC") if math.isfinite(value) else None
        except (OverflowError, ValueError):
            return None
    if isinstance(value, str):
        try:
            ts = pd.Timestamp(value.replace(" ", "T", 1))
        except (ValueError, OverflowError):
            return None
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    if isinstance(value, datetime):
        return pd.Timestamp(value).tz_convert("UTC") if value.tzinfo else pd.Timestamp(value, tz="UTC")
    return None


def parse_score(payload: Optional[bytes]) -> tuple[Optional[dict[str, Any]], Optional[str]]:
    """Decode and check one score record (contract section 2): (record, None) or (None, reason)."""
    if payload is None:
        return None, "$: empty message (tombstone)"
    try:
        # strict UTF-8 first: json.loads of bytes would let the surrogate of a CESU-8 sequence through
        record = json.loads(payload.decode("utf-8") if isinstance(payload, (bytes, bytearray)) else payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return None, f"$: not valid JSON ({exc})"
    except RecursionError:
        return None, "$: nested too deeply to decode"
    except ValueError as exc:  # an integer literal of more digits than Python converts
        return None, f"$: not decodable ({describe_error(exc, 120)})"
    if not isinstance(record, dict):
        return None, "$: expected a JSON object"
    problems = []
    rid = record.get("Id")
    if not isinstance(rid, str) or not rid.strip():
        problems.append("Id: missing or not a string")
    if record.get("_ObjectType") not in OBJECT_TYPES:
        problems.append(f"_ObjectType: must be one of {', '.join(OBJECT_TYPES)}")
    score = record.get("Lead_Score__c")
    # range first: a huge integer never reaches math.isfinite (which would overflow converting it to a float)
    if (
        isinstance(score, bool)
        or not isinstance(score, (int, float))
        or not -1 < score < 101
        or not math.isfinite(score)
        or score != int(score)
        or not 0 <= score <= 100
    ):
        problems.append(f"Lead_Score__c: expected an integer 0-100, got {_excerpt(score)!r}")
    for name in ("Lead_Score_Reasons__c", "Lead_Score_Model__c", "features_hash"):
        if record.get(name) is not None and not isinstance(record.get(name), str):
            problems.append(f"{name}: expected a string")
    grade = record.get("Lead_Grade__c")
    if grade is not None and grade not in SCORE_GRADES:
        problems.append(f"Lead_Grade__c: must be one of {', '.join(SCORE_GRADES)} or null, got {_excerpt(grade)!r}")
    stamps = {}
    for name in ("source_ts", "scored_ts"):
        stamps[name] = _timestamp(record.get(name))
        if record.get(name) is not None and stamps[name] is None:
            problems.append(f"{name}: not a timestamp")
    if stamps["scored_ts"] is None and "scored_ts: not a timestamp" not in problems:
        problems.append("scored_ts: missing")
    if problems:
        return None, "; ".join(problems)
    clean = {name: record.get(name) for name in SCORE_FIELD_NAMES}
    clean["Lead_Score__c"] = int(score)
    clean["_EventType"] = "updated"
    clean.update(stamps)
    return with_storable_text(clean), None


def _excerpt(value: Any) -> str:
    """At most 20 characters of a value for a reason (an integer of thousands of digits is not converted)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**20:
        return f"an integer of ~{int(value.bit_length() * 0.30103) + 1} digits"
    return safe_text(str(value))[:20]


@dataclass
class WriteFailure:
    """One record the CRM did not take, with its reason (kept, never retried forever)."""

    record: dict[str, Any]
    reason: str


class CrmWriter(Protocol):
    target: str

    def write(self, records: list[dict[str, Any]]) -> list[WriteFailure]:
        """Write scores; return per-record failures; raise on a transient error (retried)."""

    def clear(self, records: list[dict[str, Any]]) -> list[WriteFailure]:
        """Clear the score fields (`CLEARED_FIELDS`) of records (`Id`, `_ObjectType`): erasure."""

    def current(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        """The `WRITTEN_FIELDS` the CRM holds for those of `ids` it knows (none: unknown, the scores are written)."""

    def close(self) -> None:
        """Stop what the writer runs besides writing (the local CRM's echo thread); called when its worker stops."""


class LocalCrmWriter:
    """The local CRM: `crm_leads` in the warehouse, one row per record with its current score."""

    target = "crm_leads"

    def __init__(self, warehouse: Warehouse):
        self.warehouse = warehouse

    def write(self, records: list[dict[str, Any]]) -> list[WriteFailure]:
        frame = pd.DataFrame.from_records(records)
        frame["written_at"] = pd.Timestamp.now(tz="UTC")
        self.warehouse.upsert("crm_leads", frame, key="Id", newer="scored_ts")
        return []

    def clear(self, records: list[dict[str, Any]]) -> list[WriteFailure]:
        """The local CRM keeps nothing but the score: clearing it removes the record's row."""
        ids = sorted({r["Id"] for r in records})
        if ids:
            self.warehouse.execute("DELETE FROM crm_leads WHERE Id IN UNNEST(@ids)", {"ids": ids})
        return []

    def current(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        if not ids:
            return {}
        columns = ", ".join(WRITTEN_FIELDS)
        rows = self.warehouse.query(
            f"SELECT Id, {columns} FROM crm_leads WHERE Id IN UNNEST(@ids)", {"ids": sorted(set(ids))}
        )
        return {str(row["Id"]): {name: _plain(row[name]) for name in WRITTEN_FIELDS} for row in rows.to_dict("records")}

    def close(self) -> None:
        """Nothing runs besides the writes."""


def _plain(value: Any) -> Any:
    """A warehouse cell as the score record has it: NaN/NA -> None, numpy integers -> int."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real) and float(value).is_integer():  # an INT column read back with a NULL in it
        return int(value)
    return value


def written_values(record: dict[str, Any]) -> tuple[Any, ...]:
    """What a score record would set in the CRM (`WRITTEN_FIELDS`, in order), comparable with `current`."""
    return tuple(_plain(record.get(name)) for name in WRITTEN_FIELDS)


def unchanged_in_crm(records: list[dict[str, Any]], held: dict[str, dict[str, Any]]) -> set[str]:
    """Ids whose score record would write exactly what the CRM holds already."""
    return {
        r["Id"]
        for r in records
        if r["Id"] in held and written_values(r) == tuple(held[r["Id"]].get(name) for name in WRITTEN_FIELDS)
    }


def latest_per_id(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One record per Id, the newest score (at-least-once delivery may bring old ones again)."""
    best: dict[str, dict[str, Any]] = {}
    for rec in records:
        cur = best.get(rec["Id"])
        if cur is None or rec["scored_ts"] >= cur["scored_ts"]:
            best[rec["Id"]] = rec
    return list(best.values())


class WritebackHandler:
    """Micro-batch handler of the writeback worker.

    A score record that cannot be decoded or validated goes to `crm_writeback_errors` with the reason; one
    whose write fails on its own (the worker isolates it, `crm.quarantine`) to `worker_quarantine`.
    """

    worker_name = "writeback"

    def __init__(self, writer: CrmWriter, warehouse: Warehouse, register: Optional[ErasureRegister] = None):
        self.writer = writer
        self.warehouse = warehouse
        self.register = register  # None: no erasure filter (tests of the writing alone)

    def handle(self, batch: Sequence[Any]) -> dict[str, int]:
        if self.writer.target != LocalCrmWriter.target:  # never hold the warehouse through a CRM's HTTP calls
            return self._handle(batch)
        with self.warehouse.held():  # the local CRM is a warehouse table: the batch in one turn at the file
            return self._handle(batch)

    def _handle(self, batch: Sequence[Any]) -> dict[str, int]:
        valid: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        probes = 0
        for msg in batch:
            record, reason = decode_safely(parse_score, msg.value)
            if record is None:
                errors.append(
                    {
                        "Id": key_text(msg.key),
                        "_ObjectType": None,
                        "payload": payload_text(msg.value),
                        "reason": f"bad score record: {safe_text(reason)}",
                    }
                )
                continue
            if is_probe(record["Id"]):
                probes += 1
                continue
            valid.append(record)
        counts: dict[str, int] = {}
        if self.register is not None and valid:
            erased = self.register.erased(r["Id"] for r in valid)
            if erased:
                counts["erased_skipped"] = sum(r["Id"] in erased for r in valid)
                valid = [r for r in valid if r["Id"] not in erased]
        records = latest_per_id(valid)
        if records:
            # what the CRM holds already is not written again: no API call, no echo (module doc)
            same = unchanged_in_crm(records, self.writer.current([r["Id"] for r in records]))
            if same:
                counts["unchanged_skipped"] = len(same)
                records = [r for r in records if r["Id"] not in same]
                log.info(
                    "writeback: %d score(s) not written to %s: score, grade, reasons and model unchanged",
                    len(same),
                    self.writer.target,
                )
        failures = self.writer.write(records) if records else []
        if self.register is not None and records:
            # erased while we wrote (the erasure registers first, then deletes): take the score back out
            late = self.register.erased(r["Id"] for r in records)
            if late:
                self.writer.clear([r for r in records if r["Id"] in late])
                counts["erased_cleared"] = len(late)
        for failure in failures:
            rec = failure.record
            errors.append(
                {
                    "Id": rec.get("Id"),
                    "_ObjectType": rec.get("_ObjectType"),
                    "payload": json.dumps({k: rec.get(k) for k in ("Id", "_ObjectType", *WRITTEN_FIELDS)}),
                    "reason": failure.reason,
                }
            )
        if errors:
            frame = pd.DataFrame.from_records(errors).assign(
                target=self.writer.target, failed_at=pd.Timestamp.now(tz="UTC")
            )
            self.warehouse.append(ERROR_TABLE, frame)
            log.warning(
                "writeback: %d record(s) not written to %s (see %s)", len(errors), self.writer.target, ERROR_TABLE
            )
        return {
            "written": len(records) - len(failures),
            "failed": len(errors),
            "probes_skipped": probes,
            "superseded": len(valid) - len(records) - counts.get("unchanged_skipped", 0),
            **counts,
        }

    def quarantine(self, msg: Any, error: str) -> dict[str, int]:
        """Keep a record whose write failed on its own (permanent error) in `worker_quarantine`."""
        self.warehouse.insert_new(QUARANTINE_TABLE, quarantine_frame(self.worker_name, [msg], [error]), QUARANTINE_KEY)
        return {"quarantined": 1}

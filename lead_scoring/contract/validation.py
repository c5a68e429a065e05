"""Validate CRM change records against the contract.

A bad record is never an exception: `validate_record` returns one `FieldError` per problem, naming
the field and the reason, so the stream can dead-letter it, the model server can answer 400 naming
the field, and the warehouse can keep it in `rejected_leads`.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from lead_scoring.contract.fields import (
    DEFAULT_EVENT_TYPE,
    FIELDS_BY_NAME,
    LEAD_FIELDS,
    FieldType,
    LeadField,
)

# ISO-8601 date-time: a date, a time, optional fraction and optional zone (naive means UTC).
# The same pattern is used by the Flink statement that dead-letters bad records.
TIMESTAMP_PATTERN = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$"
_TIMESTAMP_RE = re.compile(TIMESTAMP_PATTERN)
MAX_STRING_LENGTH = 1000  # Salesforce text fields stop at 255; long text areas at far more, but no feature needs it
# Visits, seconds on site, page views and scores are all far below this; 1e308 is an attack, not a lead (and
# an int of 400 digits cannot even become a float).
MAX_NUMBER = 1_000_000_000


@dataclass(frozen=True)
class FieldError:
    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class RecordValidationError(ValueError):
    """Raised by `parse_record_strict` when a record breaks the contract."""

    def __init__(self, errors: list[FieldError]):
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


def parse_timestamp(value: str) -> datetime:
    """Parse a contract timestamp (already validated) into an aware UTC datetime."""
    parsed = datetime.fromisoformat(value.replace(" ", "T", 1))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _type_error(spec: LeadField, value: Any) -> str | None:
    kind = spec.type
    if kind is FieldType.STRING:
        if not isinstance(value, str):
            return f"expected a string, got {_json_type(value)}"
        if len(value) > MAX_STRING_LENGTH:
            return f"longer than {MAX_STRING_LENGTH} characters"
        if spec.allowed is not None and value not in spec.allowed:
            return f"must be one of {', '.join(spec.allowed)}; got {value[:40]!r}"
        if spec.required and not value.strip():
            return "must not be empty"
        return None
    if kind is FieldType.BOOLEAN:
        return None if isinstance(value, bool) else f"expected a boolean, got {_json_type(value)}"
    if kind in (FieldType.NUMBER, FieldType.INT):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"expected a number, got {_json_type(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            return "must be a finite number"
        if abs(value) > MAX_NUMBER:
            return f"must be at most {MAX_NUMBER:,} in magnitude"
        if spec.non_negative and value < 0:
            return f"must be >= 0, got {value}"
        return None
    if kind is FieldType.TIMESTAMP:
        if not isinstance(value, str):
            return f"expected an ISO-8601 timestamp string, got {_json_type(value)}"
        if not _TIMESTAMP_RE.match(value):
            return f"not an ISO-8601 timestamp: {value[:40]!r}"
        try:
            parse_timestamp(value)
        except ValueError as exc:
            return f"not a valid timestamp: {exc}"
        return None
    raise AssertionError(f"unhandled field type {kind}")  # pragma: no cover - contract programming error


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def validate_record(record: Any) -> list[FieldError]:
    """Every contract violation of one decoded record; an empty list means the record is valid."""
    if not isinstance(record, Mapping):
        return [FieldError("$", f"expected a JSON object, got {_json_type(record)}")]
    errors: list[FieldError] = []
    for spec in LEAD_FIELDS:
        if spec.name not in record or record[spec.name] is None:
            if spec.required:
                errors.append(FieldError(spec.name, "required field is missing"))
            elif spec.name in record and not spec.nullable:
                errors.append(FieldError(spec.name, "must not be null"))
            continue
        reason = _type_error(spec, record[spec.name])
        if reason:
            errors.append(FieldError(spec.name, reason))
    return errors


def normalize_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A valid record reduced to the contract's fields (unknown extras dropped), defaults applied."""
    clean = {name: record.get(name) for name in FIELDS_BY_NAME}
    if clean["_EventType"] is None:
        clean["_EventType"] = DEFAULT_EVENT_TYPE
    for name in (
        "Total_Visits__c",
        "Time_On_Website__c",
        "Page_Views_Per_Visit__c",
        "Activity_Score__c",
        "Profile_Score__c",
    ):
        if clean[name] is not None:
            clean[name] = float(clean[name])
    return clean


def parse_record(payload: bytes | str | Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """Decode (if needed), validate and normalize one record: (record, []) or (None, errors)."""
    if isinstance(payload, (bytes, bytearray)):
        try:
            payload = payload.decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [FieldError("$", f"not UTF-8 text: {exc.reason} at byte {exc.start}")]
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except json.JSONDecodeError as exc:
            return None, [FieldError("$", f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")]
        except (ValueError, RecursionError) as exc:  # an integer of > 4300 digits; nesting deeper than the stack
            reason = "nested too deeply" if isinstance(exc, RecursionError) else "holds an integer too long to read"
            return None, [FieldError("$", f"not a readable JSON record: {reason}")]
    errors = validate_record(payload)
    if errors:
        return None, errors
    return normalize_record(payload), []


def parse_record_strict(payload: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    record, errors = parse_record(payload)
    if errors:
        raise RecordValidationError(errors)
    assert record is not None
    return record

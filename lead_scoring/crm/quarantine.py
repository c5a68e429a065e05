"""What a worker does with a record it cannot take: which errors are the record's fault, and where it goes.

A worker's write fails for one of two reasons, decided here and nowhere else (`classify`):

* **Transient**: the warehouse is locked or unreachable, the broker is away, the CRM is over its API limit or
  answers 5xx, a connection dropped. The batch is retried with backoff and nothing is committed: the same
  records will land once the other side is back. Anything not known to be the record's fault is transient,
  so a bug or a misconfiguration stops the worker visibly (its heartbeat's `stuck`) instead of moving good
  records aside.
* **Permanent**: the record itself cannot be stored (a string DuckDB/Arrow cannot encode, a number or a
  timestamp out of range, a value the warehouse or the CRM rejects as invalid). Retrying changes nothing, so
  the worker splits the batch until that record is alone and quarantines it with the reason; the rest lands
  and the offsets are committed.

Quarantined score records go to `worker_quarantine` (worker, topic, partition, offset, key, a bounded prefix
of the raw bytes, the error, the time); records of `input_raw` go to `rejected_leads`, like every record that
breaks the contract. Both tables have `Id` and `payload` columns, so an erasure covers them.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Optional, Protocol

import duckdb
import pandas as pd
import pyarrow as pa
import requests
from confluent_kafka import KafkaException
from google.api_core import exceptions as google_exceptions
from pandas.errors import OutOfBoundsDatetime, OutOfBoundsTimedelta
from simple_salesforce.exceptions import SalesforceError

QUARANTINE_TABLE = "worker_quarantine"
MAX_PAYLOAD_BYTES = 10_000  # what is kept of a quarantined record: enough to read it, bounded for the table
MAX_KEY_CHARS = 1_000
MAX_ERROR_CHARS = 300
# Salesforce over a limit or unavailable (its writer retries these itself before giving up to the worker).
TRANSIENT_CODES = {"REQUEST_LIMIT_EXCEEDED", "SERVER_UNAVAILABLE", "UNABLE_TO_LOCK_ROW", "API_CURRENTLY_DISABLED"}
TRANSIENT_STATUS = {500, 502, 503, 504}
# Salesforce answers that are about the request's data, not the service (per-record rejections come back as
# failed results, not as exceptions; this is a whole-request rejection of a malformed upload). Any other
# answer (401, 403, 404: credentials, permissions, configuration) is not a record's fault: transient.
_SALESFORCE_PERMANENT_STATUS = (400,)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class ErrorKind(enum.Enum):
    TRANSIENT = "transient"  # retry the batch, commit nothing
    PERMANENT = "permanent"  # the record's fault: isolate it and quarantine it


class PoisonRecord(ValueError):
    """Raised by a handler for a record it knows it can never store (classified permanent)."""


# Errors that come from the values of a record: converting, encoding or storing them failed.
_PERMANENT_TYPES: tuple[type[BaseException], ...] = (
    PoisonRecord,
    RecursionError,  # json.loads of a deeply nested document
    UnicodeError,  # a lone surrogate (from a JSON "\ud800" escape) that no UTF-8 store accepts
    OverflowError,  # an integer too large for a float, an INT64 or a timestamp
    OutOfBoundsDatetime,
    OutOfBoundsTimedelta,
    json.JSONDecodeError,
    duckdb.DataError,  # ConversionException, OutOfRangeException, TypeMismatchException
    duckdb.InvalidInputException,  # "Python Conversion Failure" of a value DuckDB cannot take
    pa.ArrowInvalid,
    pa.ArrowTypeError,  # a value the BigQuery load's Parquet cannot hold
    google_exceptions.BadRequest,  # BigQuery: invalid data in a load or a statement (400)
)
# Errors of the other side; listed so the decision is explicit (the default is transient as well).
_TRANSIENT_TYPES: tuple[type[BaseException], ...] = (
    OSError,  # connection refused/reset, timeouts, requests' ConnectionError, a full disk
    duckdb.IOException,  # the file is locked by another process
    duckdb.TransactionException,
    duckdb.OperationalError,
    KafkaException,
    requests.RequestException,
    google_exceptions.ServerError,
    google_exceptions.TooManyRequests,
    google_exceptions.Forbidden,
)


def classify(exc: BaseException) -> ErrorKind:
    """Is `exc` (raised while decoding or writing records) the fault of a record, or of the other side?"""
    if isinstance(exc, _TRANSIENT_TYPES):
        return ErrorKind.TRANSIENT
    if isinstance(exc, SalesforceError):
        status = getattr(exc, "status", None)
        if salesforce_unavailable(exc):
            return ErrorKind.TRANSIENT
        return ErrorKind.PERMANENT if status in _SALESFORCE_PERMANENT_STATUS else ErrorKind.TRANSIENT
    if isinstance(exc, _PERMANENT_TYPES):
        return ErrorKind.PERMANENT
    return ErrorKind.TRANSIENT


def salesforce_error_code(exc: BaseException) -> str:
    """The `errorCode` of a Salesforce error answer ('' when it has none)."""
    content = getattr(exc, "content", None)
    if isinstance(content, list) and content and isinstance(content[0], dict):
        return str(content[0].get("errorCode", ""))
    if isinstance(content, dict):
        return str(content.get("errorCode", ""))
    return str(content or "")


def salesforce_unavailable(exc: BaseException) -> bool:
    """A Salesforce error answer meaning "over a limit or unavailable, try later"."""
    return getattr(exc, "status", None) in TRANSIENT_STATUS or any(
        code in salesforce_error_code(exc) for code in TRANSIENT_CODES
    )


def describe_error(exc: BaseException, limit: int = MAX_ERROR_CHARS) -> str:
    """`ExcType: message`, on one line and at most `limit` characters (heartbeats, logs, quarantine rows)."""
    text = safe_text(f"{type(exc).__name__}: {exc}".replace("\n", " "))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def safe_text(text: str) -> str:
    """`text` with lone surrogates escaped: what a UTF-8 store (DuckDB, BigQuery, a log) can always take."""
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


def payload_text(value: Optional[bytes], limit: int = MAX_PAYLOAD_BYTES) -> str:
    """The first `limit` bytes of a raw value as text: valid UTF-8 as is, other bytes and NUL as `\\xNN`."""
    if value is None:
        return ""
    return bytes(value[:limit]).decode("utf-8", errors="backslashreplace").replace("\x00", "\\x00")


def key_text(key: Optional[bytes]) -> Optional[str]:
    """A Kafka key as text (null stays null; bytes that are not UTF-8 are escaped), bounded."""
    if key is None:
        return None
    return payload_text(key, MAX_KEY_CHARS)


class RecordMessage(Protocol):
    topic: str
    partition: int
    offset: int
    key: Optional[bytes]
    value: Optional[bytes]


def quarantine_frame(worker: str, messages: Sequence[RecordMessage], errors: Sequence[str]) -> pd.DataFrame:
    """`worker_quarantine` rows of `messages`, each with its error."""
    now = pd.Timestamp.now(tz="UTC")
    return pd.DataFrame.from_records(
        [
            {
                "worker": worker,
                "topic": m.topic,
                "kafka_partition": m.partition,
                "kafka_offset": m.offset,
                "Id": key_text(m.key),
                "payload": payload_text(m.value),
                "payload_bytes": None if m.value is None else len(m.value),
                "error": safe_text(error)[: MAX_ERROR_CHARS * 4],
                "quarantined_at": now,
            }
            for m, error in zip(messages, errors, strict=True)
        ]
    )


QUARANTINE_KEY = ("worker", "topic", "kafka_partition", "kafka_offset")


def decode_safely(decode: Callable[[Any], tuple[Any, Any]], payload: Any) -> tuple[Any, Any]:
    """Run a pure decoder of one record's bytes; whatever it raises is that record's fault: (None, reason)."""
    try:
        return decode(payload)
    except Exception as exc:  # a pure function of the bytes: whatever it raises is the bytes' fault
        return None, f"$: cannot be decoded ({describe_error(exc)})"


def with_storable_text(record: dict[str, Any]) -> dict[str, Any]:
    """`record` with each lone surrogate and NUL character in its text replaced by U+FFFD.

    Both are valid in JSON (a "\\ud800" or "\\u0000" escape), pass the contract, and Flink scores such a lead
    (Java strings hold them), so they are kept, as the nearest text every store handles: no UTF-8 store takes a
    lone surrogate, and pandas' multi-column de-duplication compares text only up to a NUL (it dropped ""
    as a duplicate of "\\x00..." in `insert_new`)."""
    return {
        name: _UNSTORABLE.sub("\ufffd", value) if isinstance(value, str) else value for name, value in record.items()
    }

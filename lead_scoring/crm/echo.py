"""The local CRM's echo: what Salesforce does to the pipeline when a score is written back.

Writing a score updates the CRM record, which moves its `LastModifiedDate`; Salesforce's Bulk API 2.0 source
polls on `LastModifiedDate`, so every written record comes back to `input_raw` with the same features. The
local CRM does the same (on by default: `LocalCrm.echo`), so every local test and `scripts/up` runs against
the loop production has, and the pipeline's echo suppression (streaming/sql/unchanged.sql) is what ends it.

The echoed record is the CRM record as the warehouse has it (the latest `crm_leads_raw` row of the Id),
`_EventType = 'updated'`, `LastModifiedDate` = the time of the echo. A deleted Id is not echoed (a
deleted Salesforce record is not updated). A written Id whose record has not landed in `crm_leads_raw` yet (the
sink is a micro-batch behind the writeback) is waited for up to `wait_s`, then kept pending and echoed in a
later round, or dropped after `max_pending_s` (counted in the log, never an error).

The echo never holds up the CRM write: Salesforce accepts the write whether or not its source connector can
reach Kafka, and the record comes back on a later poll. So echoes are produced asynchronously; one Kafka does
not acknowledge (a broker outage, a full producer queue) is kept pending and sent again in a later round; and
`EchoingCrmWriter` echoes on its own thread. A client that is stuck rather than waiting (`ProducerWatch`) is
replaced, as `replay.Producer`'s is.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import orjson
import pandas as pd

from lead_scoring.contract.fields import FIELD_NAMES, LEAD_FIELDS, FieldType
from lead_scoring.crm.writeback import CrmWriter, WriteFailure
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.producer_watch import ProducerWatch
from lead_scoring.warehouse.resources import Warehouse

log = logging.getLogger(__name__)

_TIMESTAMPS = tuple(f.name for f in LEAD_FIELDS if f.type is FieldType.TIMESTAMP)


def iso_utc_ms(stamp: pd.Timestamp) -> str:
    """A timestamp as the contract's ISO-8601 UTC text with milliseconds."""
    return stamp.tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def record_payloads(frame: pd.DataFrame, **overrides: Any) -> Iterator[tuple[bytes, bytes]]:
    """(key, contract JSON) of each warehouse row: nulls left out, timestamps as ISO-8601 UTC with milliseconds,
    then `overrides` (a re-score request's `_EventType`, an echo's `LastModifiedDate`)."""
    frame = frame.copy()
    for name in _TIMESTAMPS:
        if name in frame.columns:
            stamps = pd.to_datetime(frame[name], utc=True)
            text = stamps.dt.strftime("%Y-%m-%dT%H:%M:%S.%f").str[:-3] + "Z"
            frame[name] = text.where(stamps.notna(), None)
    frame = frame.astype(object).where(frame.notna(), None)
    for row in frame.to_dict(orient="records"):
        record = {k: v for k, v in row.items() if v is not None}
        record.update(overrides)
        yield str(record["Id"]).encode(), orjson.dumps(record)


def latest_records_sql() -> str:
    """The latest `crm_leads_raw` row of each Id in @ids (both warehouses' SQL)."""
    columns = ", ".join(f"`{name}`" for name in FIELD_NAMES)
    return f"""
SELECT {columns}
FROM crm_leads_raw
WHERE Id IN UNNEST(@ids)
QUALIFY ROW_NUMBER() OVER (PARTITION BY Id ORDER BY LastModifiedDate DESC, _ingested_at DESC) = 1
""".strip()


class CrmEcho:
    """Sends written records back to `topic` (input_raw), as the Salesforce source does after a write."""

    def __init__(
        self,
        warehouse: Warehouse,
        kafka: KafkaResource,
        topic: str,
        *,
        wait_s: float = 2.0,
        poll_s: float = 0.2,
        max_pending_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.warehouse, self.kafka, self.topic = warehouse, kafka, topic
        self.wait_s, self.poll_s, self.max_pending_s = wait_s, poll_s, max_pending_s
        self.clock, self.sleep = clock, sleep
        self.pending: dict[str, float] = {}  # Id -> when it was first written without a landed record
        self._producer: Any = None
        self._in_flight = 0  # produced, no delivery report yet
        self.replaced = 0  # stuck clients replaced
        self._watch = ProducerWatch(kafka, topic, clock=clock)

    def echo(self, ids: Iterable[str]) -> int:
        """Echo the records of `ids` (just written) and of the pending ones; the number echoed."""
        self._replace_if_stuck()
        now = self.clock()
        wanted = dict.fromkeys(ids, now)
        wanted.update(self.pending)
        if not wanted:
            return 0
        found: dict[str, pd.Series] = {}
        deadline = now + self.wait_s
        while True:
            missing = sorted(set(wanted) - set(found))
            rows = self.warehouse.query(latest_records_sql(), {"ids": missing})
            for _, row in rows.iterrows():
                found[str(row["Id"])] = row
            if len(found) == len(wanted) or self.clock() >= deadline:
                break
            self.sleep(self.poll_s)
        written_at = iso_utc_ms(pd.Timestamp.now(tz="UTC"))
        records = [row for row in found.values() if (row.get("_EventType") or "created") != "deleted"]
        # pending first: delivery failures reported while producing add to it
        self.pending = {
            i: since for i, since in wanted.items() if i not in found and self.clock() - since < self.max_pending_s
        }
        dropped = len(wanted) - len(found) - len(self.pending)
        if dropped:
            log.warning(
                "crm echo: %d written record(s) never landed in crm_leads_raw within %.0f s: not echoed",
                dropped,
                self.max_pending_s,
            )
        if records:
            self._produce(pd.DataFrame(records), written_at, {str(r["Id"]): wanted[str(r["Id"])] for r in records})
        return len(records)

    def _produce(self, frame: pd.DataFrame, written_at: str, since: dict[str, float]) -> None:
        if self._producer is None:
            self._producer = self.kafka.producer()

        def delivered(err: Any, msg: Any) -> None:
            self._in_flight -= 1
            if err is None:
                self._watch.progressed()
            else:  # sent again with a later write, unless it has waited max_pending_s already
                self._undelivered(msg.key().decode(), since, str(err))

        for key, value in record_payloads(frame, _EventType="updated", LastModifiedDate=written_at):
            try:
                self._in_flight += 1
                self._producer.produce(self.topic, key=key, value=value, on_delivery=delivered)
            except BufferError:  # the producer's queue is full: Kafka has been away for a while
                self._in_flight -= 1
                self._undelivered(key.decode(), since, "producer queue full")
        self._producer.poll(0)  # serve the delivery reports of earlier echoes

    def _replace_if_stuck(self) -> None:
        """A stuck client (`ProducerWatch`) is purged and dropped: the purged echoes are reported undelivered,
        so pending, and this round produces them again with a new client."""
        if not self._watch.stuck(self._in_flight) or self._producer is None:  # looked at first: idle resets it
            return
        held = self._in_flight
        self._producer.purge()
        self._producer.poll(0)  # the purged echoes' reports
        log.warning(
            "crm echo: the Kafka producer acknowledged nothing for %.0f s with the broker up; replaced, %d echo(es) "
            "sent again",
            self._watch.stall_s,
            held,
        )
        self._producer, self._in_flight = None, 0
        self.replaced += 1
        self._watch.progressed()

    def _undelivered(self, rid: str, since: dict[str, float], reason: str) -> None:
        first = since.get(rid, self.clock())
        if self.clock() - first < self.max_pending_s:
            if not self.pending:
                log.warning(
                    "crm echo: not acknowledged by Kafka on %s (%s): sent again with a later write", self.topic, reason
                )
            self.pending.setdefault(rid, first)

    def flush(self, timeout_s: float) -> int:
        """Wait up to `timeout_s` for the echoes in flight; the number still unacknowledged."""
        return 0 if self._producer is None else int(self._producer.flush(timeout_s))


class EchoingCrmWriter:
    """A CRM writer whose successful writes come back to the pipeline through `CrmEcho`.

    The echo runs on its own thread, as Salesforce's source polls on its own: a write returns as soon as the CRM
    holds it (waiting for the echo in the write path put seconds on every CRM row, benchmarks/user_flow.py), and
    a record that has not landed in crm_leads_raw yet is looked for again every `interval_s`.
    """

    def __init__(self, inner: CrmWriter, echo: CrmEcho, interval_s: float = 1.0):
        self.inner, self.echo, self.interval_s = inner, echo, interval_s
        self.target = inner.target
        self._ids: queue.SimpleQueue[list[str]] = queue.SimpleQueue()
        self._progress = threading.Condition()
        self._submitted = self._handled = 0
        self._thread: threading.Thread | None = None
        self._closed = threading.Event()

    def write(self, records: list[dict[str, Any]]) -> list[WriteFailure]:
        failures = self.inner.write(records)
        failed = {f.record.get("Id") for f in failures}
        with self._progress:
            self._submitted += 1
        self._ids.put([r["Id"] for r in records if r["Id"] not in failed])
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="crm-echo", daemon=True)
            self._thread.start()
        return failures

    def clear(self, records: list[dict[str, Any]]) -> list[WriteFailure]:
        return self.inner.clear(records)

    def current(self, ids: list[str]) -> dict[str, dict[str, Any]]:
        return self.inner.current(ids)

    def drain(self, timeout_s: float) -> bool:
        """Wait until every write so far was echoed or left pending; False on timeout."""
        with self._progress:
            return self._progress.wait_for(lambda: self._handled >= self._submitted, timeout_s)

    def close(self, timeout_s: float = 10.0) -> None:
        """When the worker stops: echo what was written (what has not landed stays unechoed), then stop."""
        self.drain(timeout_s)
        self._closed.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        if self.echo.pending:
            log.info("crm echo: stopping with %d written record(s) not landed yet: not echoed", len(self.echo.pending))
        self.echo.flush(timeout_s)

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                batches = [self._ids.get(timeout=self.interval_s)]
            except queue.Empty:
                batches = []
            while True:
                try:
                    batches.append(self._ids.get_nowait())
                except queue.Empty:
                    break
            ids = [i for batch in batches for i in batch]
            if ids or self.echo.pending:
                try:
                    self.echo.echo(ids)
                except Exception as exc:  # the warehouse busy or away: looked for again with the next round
                    log.warning("crm echo: %s: %d record(s) kept pending", exc, len(ids))
                    now = self.echo.clock()
                    for rid in ids:
                        self.echo.pending.setdefault(rid, now)
            with self._progress:
                self._handled += len(batches)
                self._progress.notify_all()

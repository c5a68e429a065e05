"""Feed `input_raw` the way the CRM's source connector would: replay an export, or stream synthetic leads.

Records are contract section 1 JSON (nulls left out), key = `Id`, produced with the idempotent
acks=all producer at a steady rate (a token bucket; rate 0 = as fast as the broker takes them).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Optional

import pandas as pd
from confluent_kafka import KafkaError

from lead_scoring.contract import FIELD_NAMES
from lead_scoring.contract.samples import DEMO_ID_PREFIX, iso_ms
from lead_scoring.crm.importer import ExportMapping, import_export, validate_frame
from lead_scoring.crm.synthetic import frame_records, generate_leads, to_events
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.producer_watch import ProducerWatch

log = logging.getLogger(__name__)


@dataclass
class ReplaySummary:
    offered: int = 0
    sent: int = 0  # acknowledged by the broker
    failed: int = 0  # delivery failed (reasons in `errors`, first few)
    rejected: int = 0  # rows of the input that break the contract: not produced
    elapsed_s: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0


def load_events(
    path: Path, mapping: Optional[Path] = None, with_outcomes: bool = False, limit: Optional[int] = None
) -> tuple[pd.DataFrame, int]:
    """The events to replay from a CRM export and how many rows were rejected by the contract.

    Without `with_outcomes` every lead is a `created` event without `IsConverted`; with it, the
    `updated` events that carry the outcome follow once all leads were created, as the CRM emits
    them when a lead converts (or is closed). `limit` counts leads, not events.
    """
    if mapping is not None:
        result = import_export(path, ExportMapping.load(mapping))
    else:
        suffix = path.suffix.lower()
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype={"Id": str, "Lead_Number__c": str})
        elif suffix == ".parquet":
            frame = pd.read_parquet(path)
        elif suffix in (".jsonl", ".ndjson"):
            frame = pd.read_json(path, lines=True, dtype=False)
        else:
            raise ValueError(
                f"unsupported input {suffix!r}: a CRM export .csv with --mapping, or contract "
                "records as .csv, .parquet or .jsonl"
            )
        frame = frame.reindex(columns=list(FIELD_NAMES)).astype(object).where(lambda f: f.notna(), None)
        result = validate_frame(frame)
    leads = result.records
    if limit is not None:
        leads = leads.head(limit)
    events = to_events(leads.reset_index(drop=True))
    created = events[events["_EventType"] == "created"]
    ordered = created.sort_values("CreatedDate", kind="stable")
    if with_outcomes:
        updated = events[events["_EventType"] == "updated"].sort_values("LastModifiedDate", kind="stable")
        ordered = pd.concat([ordered, updated], ignore_index=True)
    return ordered.reset_index(drop=True), len(result.rejected)


class RateLimiter:
    """A steady pace: `rate` events per second on average, short bursts of at most one tick."""

    def __init__(
        self, rate: float, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep
    ):
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._start: Optional[float] = None
        self._count = 0

    def wait(self) -> None:
        if self.rate <= 0:
            return
        now = self._clock()
        if self._start is None:
            self._start = now
        due = self._start + self._count / self.rate
        if due > now:
            self._sleep(due - now)
        self._count += 1


WAIT_LOG_EVERY_S = 30.0
_PURGED = (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT)


class Producer:
    """Produce contract records to a topic, counting broker acknowledgements and failures.

    `make_producer` (default: `kafka.producer`) builds the Kafka client, again when a stuck one is replaced."""

    def __init__(
        self, kafka: KafkaResource, topic: str, rate: float = 0.0, make_producer: Optional[Callable[..., Any]] = None
    ):
        self.kafka = kafka
        # message.timeout.ms 0: a broker outage is waited out, not turned into failed records (idempotent
        # producer: the retries neither duplicate nor reorder); `close()` says what it is waiting for.
        self._make_producer = make_producer or kafka.producer
        self.producer = self._make_producer(**{"message.timeout.ms": 0})
        self.bootstrap = kafka.bootstrap_servers
        self.topic = topic
        self.limiter = RateLimiter(rate)
        self.summary = ReplaySummary()
        self.replaced = 0  # stuck clients replaced
        self._t0 = time.monotonic()
        self._last_wait_log = 0.0
        self._unacked: dict[int, tuple[bytes, bytes]] = {}  # sequence -> (key, value), until acknowledged
        self._sequence = 0
        self.watch = ProducerWatch(kafka, topic)

    def _waiting(self, what: str) -> None:
        """One log line per 30 s while Kafka does not take or acknowledge what we produce."""
        now = time.monotonic()
        if now - self._last_wait_log >= WAIT_LOG_EVERY_S:
            self._last_wait_log = now
            log.warning("waiting for Kafka at %s: %s", self.bootstrap, what)

    def _on_delivery(self, sequence: int, err: Any, _msg: Any) -> None:
        if err is not None and err.code() in _PURGED:
            return  # taken back from a stuck client: produced again by its replacement
        self._unacked.pop(sequence, None)
        self.watch.progressed()
        if err is None:
            self.summary.sent += 1
        else:
            self.summary.failed += 1
            if len(self.summary.errors) < 5:
                self.summary.errors.append(str(err))

    def _produce(self, key: bytes, value: bytes) -> None:
        if not self._unacked:  # nothing was waiting: the stall clock starts with this message
            self.watch.progressed()
        self._sequence += 1
        self._unacked[self._sequence] = (key, value)
        self.producer.produce(
            self.topic, key=key, value=value, on_delivery=functools.partial(self._on_delivery, self._sequence)
        )

    def _replace_if_stuck(self) -> None:
        """A stuck client (`ProducerWatch`): purge it and produce what it held again with a new one (a message
        the old one did write may then be in the topic twice; everything downstream is idempotent by record)."""
        if not self.watch.stuck(len(self._unacked)):
            return
        self.producer.purge()
        self.producer.flush(0)  # the purged ones' reports are ignored; one acknowledged meanwhile is counted
        held = list(self._unacked.values())
        log.warning(
            "the Kafka producer acknowledged nothing for %.0f s with the broker up; replaced, %d messages produced "
            "again",
            self.watch.stall_s,
            len(held),
        )
        self.producer = self._make_producer(**{"message.timeout.ms": 0})
        self.replaced += 1
        self._unacked = {}
        self.watch.progressed()
        for key, value in held:
            self._produce(key, value)

    def send(self, record: dict[str, Any]) -> None:
        self.limiter.wait()
        value = json.dumps(record, separators=(",", ":"), default=str).encode()
        key = str(record["Id"]).encode()
        while True:
            try:
                self._produce(key, value)
                break
            except BufferError:  # local queue full: let deliveries drain (during an outage: until it is back)
                self._unacked.pop(self._sequence, None)
                self.producer.poll(0.1)
                self._waiting(f"{len(self.producer)} messages queued, the local queue is full")
                self._replace_if_stuck()
        self.summary.offered += 1
        self.producer.poll(0)

    def close(self, timeout_s: Optional[float] = None) -> ReplaySummary:
        """Wait until the broker acknowledged every message (however long an outage lasts, unless `timeout_s`)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while remaining := self.producer.flush(min(5.0, timeout_s or 5.0)):
            if deadline is not None and time.monotonic() >= deadline:
                self.summary.failed += remaining
                self.summary.errors.append(f"{remaining} messages not acknowledged within {timeout_s:.0f} s")
                break
            self._waiting(f"{remaining} messages not acknowledged yet")
            self._replace_if_stuck()
        self.summary.elapsed_s = time.monotonic() - self._t0
        return self.summary


def replay(
    kafka: KafkaResource,
    records: Iterable[dict[str, Any]],
    topic: str,
    rate: float = 0.0,
    progress: Optional[Callable[[int], None]] = None,
    should_stop: Callable[[], bool] = lambda: False,
) -> ReplaySummary:
    """Produce `records` to `topic` at `rate` per second; returns what the broker acknowledged."""
    out = Producer(kafka, topic, rate)
    try:
        for record in records:
            if should_stop():
                break
            out.send(record)
            if progress is not None:
                progress(1)
    finally:
        summary = out.close()
    log.info(
        "replay: %d sent, %d failed in %.1f s (%.0f/s)", summary.sent, summary.failed, summary.elapsed_s, summary.rate
    )
    return summary


def synthetic_stream(
    seed: int = 7,
    chunk: int = 500,
    with_outcomes: bool = False,
    outcome_delay_s: float = 30.0,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Iterator[dict[str, Any]]:
    """An endless stream of new synthetic demo leads, stamped when they are emitted.

    Their Ids start with `DEMO_ID_PREFIX`, so the warehouse tags them `_source = 'demo'` and training
    ignores them once real leads exist. With `with_outcomes`, each decided lead's `updated` event
    (carrying `IsConverted`) follows about `outcome_delay_s` seconds after its `created` event.
    """
    pending: list[tuple[datetime, dict[str, Any]]] = []
    round_ = 0
    while True:
        frame = generate_leads(chunk, seed=seed * 100_003 + round_)
        round_ += 1
        for record in frame_records(frame):
            now = clock()
            while pending and pending[0][0] <= now:
                _, update = pending.pop(0)
                update["LastModifiedDate"] = iso_ms(now)
                yield update
            outcome = record.pop("IsConverted", None)
            record["Id"] = DEMO_ID_PREFIX + record["Id"]
            created = {
                **record,
                "_EventType": "created",
                "Status": "Open - Not Contacted",
                "CreatedDate": iso_ms(now),
                "LastModifiedDate": iso_ms(now),
            }
            yield created
            if with_outcomes and outcome is not None:
                due = now.timestamp() + outcome_delay_s
                update = {
                    **created,
                    "_EventType": "updated",
                    "IsConverted": bool(outcome),
                    "Status": "Closed - Converted" if outcome else "Closed - Not Converted",
                }
                pending.append((datetime.fromtimestamp(due, UTC), update))

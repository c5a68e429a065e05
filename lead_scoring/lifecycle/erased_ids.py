"""The `erased_ids` topic: every erasure produces its Ids there, and the scoring statements drop their records.

The erasure register in the warehouse (`erasure.ErasureRegister`) is what our own workers consult; the Flink
statements cannot read a warehouse, and the managed sinks of gcp consult nothing. So whatever records an erasure
also produces each Id to this compacted topic (key = value = Id, `streaming/topics.py`), and the scoring
statements of both dialects join against it (`streaming/sql/erased.sql`).

Producing is idempotent (one record per Id and compaction keeps the last; producing an Id twice changes nothing)
and waits for every acknowledgement: an erasure is only reported done once the statements can see it. Transient
faults (a broker away, a leader election, a timed-out delivery) are retried with the project's backoff until
`timeout_s`; anything else (no such topic, not authorized) fails at once, naming the topic and the fix.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, Optional

import tenacity
from confluent_kafka import KafkaError, KafkaException

from lead_scoring.retry import backoff
from lead_scoring.streaming.kafka import KafkaResource
from lead_scoring.streaming.topics import ERASED_IDS

log = logging.getLogger(__name__)

# How long one delivery may take before librdkafka reports it failed (and this module sends it again).
DELIVERY_TIMEOUT_MS = 10_000


# librdkafka's local errors that mean "Kafka is away for now", whether or not it flags them retriable
TRANSIENT_CODES = (KafkaError._MSG_TIMED_OUT, KafkaError._TRANSPORT, KafkaError._ALL_BROKERS_DOWN)


class ErasedIdsNotPublished(RuntimeError):
    """Some erased Ids could not be produced to the erased_ids topic (the statements would still score them)."""


class _TransientFault(Exception):
    """Ids still unacknowledged after a retriable error: produce them again."""


class ErasedIdsTopic:
    """Produces erased Ids to the `erased_ids` topic of `kafka` (`topic`: tests use a prefixed one)."""

    def __init__(
        self,
        kafka: KafkaResource,
        topic: str = ERASED_IDS,
        *,
        timeout_s: float = 60.0,
        sleep: Callable[[float], None] = tenacity.nap.sleep,
    ):
        self.kafka = kafka
        self.topic = topic
        self.timeout_s = timeout_s
        self._sleep = sleep
        self._producer: Optional[Any] = None

    def _client(self) -> Any:
        if self._producer is None:
            self._producer = self.kafka.producer(**{"message.timeout.ms": DELIVERY_TIMEOUT_MS})
        return self._producer

    def publish(self, ids: Iterable[str]) -> int:
        """Produce every Id of `ids` and wait until Kafka acknowledged each; returns how many were produced.

        Raises `ErasedIdsNotPublished` on a non-retriable error, or when transient faults outlast `timeout_s`."""
        wanted = sorted({i for i in ids if i})
        if not wanted:
            return 0
        pending = set(wanted)
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_delay(self.timeout_s),
            wait=backoff(),
            retry=tenacity.retry_if_exception_type(_TransientFault),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._attempt(pending)
        except _TransientFault as exc:
            raise ErasedIdsNotPublished(
                f"{len(pending)} erased Id(s) not acknowledged on topic {self.topic!r} within {self.timeout_s:.0f} s "
                f"({exc}): is Kafka reachable, and does the topic exist (materialize `streaming_topics`)? Run the "
                "erasure again once it is (it is idempotent)"
            ) from None
        log.info("erasure: %d Id(s) produced to %s", len(wanted), self.topic)
        return len(wanted)

    def _attempt(self, pending: set[str]) -> None:
        """Produce the `pending` Ids once; acknowledged ones leave `pending`."""
        producer = self._client()
        errors: dict[str, KafkaError] = {}

        def delivered(err: Optional[KafkaError], msg: Any) -> None:
            record_id = msg.key().decode("utf-8")
            if err is None:
                pending.discard(record_id)
            else:
                errors[record_id] = err

        for record_id in sorted(pending):
            value = record_id.encode("utf-8")
            try:
                producer.produce(self.topic, key=value, value=value, on_delivery=delivered)
            except BufferError:  # the local queue is full (Kafka away for a while): serve reports, try again later
                producer.poll(1.0)
                raise _TransientFault("producer queue full") from None
            except KafkaException as exc:
                _raise_unless_retriable(exc.args[0], self.topic)
                raise _TransientFault(str(exc.args[0])) from None
        producer.flush(DELIVERY_TIMEOUT_MS / 1000 + 5)
        for err in errors.values():
            _raise_unless_retriable(err, self.topic)
        if pending:
            reason = next(iter(errors.values()), "no acknowledgement yet")
            raise _TransientFault(str(reason))


def _raise_unless_retriable(err: KafkaError, topic: str) -> None:
    # a timed-out delivery (broker away for longer than DELIVERY_TIMEOUT_MS) is worth another try
    if err.retriable() or err.code() in TRANSIENT_CODES:
        return
    raise ErasedIdsNotPublished(
        f"producing erased Ids to topic {topic!r} failed: {err.str()} ({err.name()}); create the topic by "
        "materializing the `streaming_topics` asset (it is compacted), and grant the client WRITE on it"
    )

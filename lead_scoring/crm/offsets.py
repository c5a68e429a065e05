"""The offsets of written records, committed to the group asynchronously: nothing is committed that was not
written, and a commit Kafka did not confirm is kept and issued again."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from lead_scoring.crm.batches import Message

log = logging.getLogger(__name__)

# A commit that got no answer for this long is issued again (a later commit of the same partitions supersedes it).
COMMIT_STALL_S = 30.0
# The partitions are no longer ours: their new owner reads them again (idempotent writes), nothing to commit.
_NOT_OURS = (KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID)


class OffsetCommitter:
    """(topic, partition) -> the next offset to commit, for records already written.

    `on_failure(detail)`: a commit failed for a reason other than a rebalance (the worker reports "waiting for
    Kafka"); `on_success()`: a commit was confirmed."""

    def __init__(self, name: str, on_failure: Callable[[str], None], on_success: Callable[[], None]):
        self.name = name
        self.pending: dict[tuple[str, int], int] = {}
        self.issued_at: Optional[float] = None  # an asynchronous commit in flight since then (monotonic)
        self.next_at = 0.0  # no commit before then (after a failure)
        self._on_failure = on_failure
        self._on_success = on_success

    def written(self, batch: Sequence[Message]) -> None:
        for m in batch:
            key = (m.topic, m.partition)
            self.pending[key] = max(self.pending.get(key, 0), m.offset + 1)

    def forget(self) -> None:
        """The partitions were lost: whoever owns them now reads them again."""
        self.pending = {}

    def offsets(self) -> list[TopicPartition]:
        return [TopicPartition(t, p, o) for (t, p), o in sorted(self.pending.items())]

    def commit(self, consumer: Any) -> None:
        """Commit what was written, asynchronously; the result arrives in `on_commit` during `consume`.

        Never synchronously: librdkafka defers a commit issued while no broker is up until a coordinator is
        found again (librdkafka#3740), so a synchronous one held the loop, and with it the heartbeat's
        "waiting for Kafka", for the whole outage."""
        now = time.monotonic()
        if not self.pending or now < self.next_at:
            return
        if self.issued_at is not None and now - self.issued_at < COMMIT_STALL_S:
            return
        try:
            consumer.commit(offsets=self.offsets(), asynchronous=True)
        except KafkaException as exc:
            self._failed(exc.args[0] if exc.args else None, str(exc))
            return
        self.issued_at = now

    def on_commit(self, err: Optional[KafkaError], partitions: list) -> None:
        """librdkafka's commit callback (it runs inside poll/consume, on the worker's thread)."""
        self.issued_at = None
        failed = err if err is not None else next((tp.error for tp in partitions if tp.error is not None), None)
        for tp in partitions if err is None else ():
            key = (tp.topic, tp.partition)
            if tp.error is None and tp.offset >= self.pending.get(key, tp.offset + 1):
                del self.pending[key]
        if failed is not None:
            self._failed(failed, failed.str() if isinstance(failed, KafkaError) else str(failed))
        else:
            self._on_success()

    def commit_now(self, consumer: Any) -> None:
        """Before partitions leave (a clean stop, a rebalance), with the broker there: synchronously, so whoever
        reads them next starts after what was written."""
        if not self.pending:
            return
        try:
            consumer.commit(offsets=self.offsets(), asynchronous=False)
        except KafkaException as exc:
            log.warning("%s: final commit failed (%s)", self.name, exc)
            return
        self.pending = {}

    def _failed(self, err: Any, detail: str) -> None:
        if isinstance(err, KafkaError) and err.code() in _NOT_OURS:
            self.pending = {}
            return
        self.next_at = time.monotonic() + 1.0
        self._on_failure(f"commit failed: {detail}")
